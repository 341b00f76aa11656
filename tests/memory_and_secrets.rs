//! Memory and secrets (issue 8).
//!
//! * The module under valgrind memcheck: one `pam-client --script` process does many
//!   `pam_start` / `pam_authenticate` / `pam_end` cycles (libpam loads and unloads
//!   `pam_mfa.so` every time), with right, replayed, wrong and malformed codes. No invalid
//!   read or write, no use of uninitialised memory, and no definite or indirect leak
//!   (suppressions, each justified, are in `tests/valgrind.supp`).
//! * Where secrets and codes end up: after registrations, logins, failures, a lock-out, a
//!   resync and a removal, every secret and every code used is searched for in everything
//!   the product wrote: the module's syslog lines (captured through pam_wrapper), the
//!   conversation, `mfa`'s stdout and stderr, and the store's files.
//!
//! What counts as a leak (the rule the second test checks):
//! * A **code** (right or wrong) may appear nowhere: not in any output, not in any file
//!   of the store (the store keeps the last accepted time step, never a code).
//! * A **secret** is shown in base32 once, on the stdout of the `enroll totp --begin` that
//!   created it (the person registering it). Anywhere else, in any form (base32 in either
//!   case and with or without spaces, hex, raw bytes), it is a leak, with one exception:
//!   the raw bytes may be in the store's own `secret` column, i.e. in pages of the
//!   `devices` table, in the main database file and in the WAL. Which pages those are is
//!   found by walking the table's b-tree from its root page (from `sqlite_schema`) in the
//!   database file after the final checkpoint; the WAL is parsed
//!   minimally (a 32-byte header, then frames of 24 + page-size bytes, each naming its
//!   page) and the database file is cut into pages, so a secret in any other page (the
//!   audit trail, the schema, an index, a free page) is a leak.
//!   A rollback `-journal` must not exist in WAL mode, and the `-shm` wal-index holds only
//!   page numbers and hashes: neither may hold a secret.
//!   To keep the WAL of the whole run (SQLite checkpoints and deletes it when the last
//!   connection closes), the test holds a read connection open from the first
//!   registration on, so every page any process wrote stays in the WAL until the end.
//! * After that connection closes (a full checkpoint), the secret of the removed device is
//!   no longer in the database file at all (the store runs with `secure_delete`).
//!
//! `mfa` logs to the host's syslog (`/dev/log`), which this test does not capture; its
//! lines are checked by the `mfa_cli` tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pam_mfa_tests::{
    SERVICE, TestEnv, TestUser, fake_time_env, pam_client_bin, pam_wrapper_lib, tool,
    workspace_root, wrong_code,
};

// ----- valgrind -----

/// Exit status valgrind uses when it found an error (anything the other exits are not).
const VALGRIND_ERROR_EXIT: i32 = 97;

fn suppressions() -> PathBuf {
    workspace_root().join("tests/valgrind.supp")
}

/// Runs `lines` (`UNIXTIME ANSWER`) through one `pam-client --script` under memcheck;
/// returns (exit code, stdout, valgrind's log).
fn script_under_valgrind(env: &TestEnv, user: &str, lines: &[String]) -> (i32, String, String) {
    let valgrind = tool("valgrind", "valgrind");
    let log = env.path("valgrind.log");
    let mut cmd = Command::new(valgrind);
    cmd.arg("--tool=memcheck")
        .arg(format!("--error-exitcode={VALGRIND_ERROR_EXIT}"))
        .arg("--leak-check=full")
        .arg("--show-leak-kinds=definite,indirect")
        .arg("--errors-for-leak-kinds=definite,indirect")
        .arg("--track-origins=yes")
        .arg("--num-callers=40")
        .arg(format!("--suppressions={}", suppressions().display()))
        .arg("--gen-suppressions=all")
        .arg(format!("--log-file={}", log.display()))
        .arg(pam_client_bin())
        .args(["--service", SERVICE, "--user", user, "--script"]);
    let wrapper = pam_wrapper_lib();
    for (k, v) in fake_time_env(env.now(), &[&wrapper]) {
        cmd.env(k, v);
    }
    env.socket();
    cmd.env("FAKETIME_NO_CACHE", "1")
        .env("PAM_MFA_TEST_CLOCK_FILE", env.clock_file())
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_DEBUGLEVEL", "2")
        .env("PAM_WRAPPER_SERVICE_DIR", env.pam_dir())
        .current_dir(env.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot start valgrind");
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("cannot write the script");
        }
    }
    let out = child.wait_with_output().expect("cannot wait for valgrind");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        log,
    )
}

#[test]
fn repeated_logins_under_memcheck_are_clean() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.enroll(user.name(), "phone");
    // Right, replayed, wrong, malformed, then right again at later steps: the success,
    // refusal and lock-out-counting paths, each a full load/authenticate/unload cycle.
    let mut lines = Vec::new();
    let mut expected = Vec::new();
    for round in 0..3 {
        env.advance_steps(1);
        let code = env.code(&dev.secret);
        let t = env.now();
        lines.push(format!("{t} {code}"));
        expected.push("PAM_SUCCESS");
        lines.push(format!("{t} {code}"));
        expected.push("PAM_AUTH_ERR");
        lines.push(format!("{t} {}", wrong_code(&dev.secret, t, 2)));
        expected.push("PAM_AUTH_ERR");
        if round == 0 {
            lines.push(format!("{t} 12ab56"));
            expected.push("PAM_AUTH_ERR");
        }
    }
    let (status, stdout, log) = script_under_valgrind(&env, user.name(), &lines);
    let results: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("login: "))
        .collect();
    assert_eq!(
        results, expected,
        "the logins under valgrind went wrong\nstdout:\n{stdout}\nvalgrind:\n{log}"
    );
    assert_eq!(
        status, 0,
        "valgrind found errors or leaks (exit {status}):\n{log}"
    );
    // For the record (visible with --nocapture): valgrind's summary.
    for line in log.lines().filter(|l| {
        [
            "ERROR SUMMARY",
            "lost:",
            "reachable:",
            "suppressed:",
            "in use at exit",
        ]
        .iter()
        .any(|k| l.contains(k))
    }) {
        println!("{line}");
    }
    // Belt and braces: the summary says so too.
    assert!(
        log.contains("ERROR SUMMARY: 0 errors"),
        "valgrind reports errors:\n{log}"
    );
    for kind in ["definitely lost: ", "indirectly lost: "] {
        if let Some(line) = log.lines().find(|l| l.contains(kind)) {
            assert!(
                line.contains(&format!("{kind}0 bytes")),
                "valgrind reports a leak: {line}\n{log}"
            );
        }
    }
}

// ----- secrets and codes -----

/// A secret in every form it could leak in.
struct SecretForms {
    base32: String,
    hex: String,
    raw: Vec<u8>,
}

impl SecretForms {
    fn new(base32: &str) -> Self {
        let raw = decode_base32(base32);
        let hex = raw.iter().map(|b| format!("{b:02X}")).collect();
        Self {
            base32: base32.trim_end_matches('=').to_ascii_uppercase(),
            hex,
            raw,
        }
    }

    /// Whether `text` shows the secret in a textual form (spaces and case ignored).
    fn in_text(&self, text: &[u8]) -> bool {
        let squashed: Vec<u8> = text
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .map(u8::to_ascii_uppercase)
            .collect();
        contains(&squashed, self.base32.as_bytes()) || contains(&squashed, self.hex.as_bytes())
    }
}

fn decode_base32(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=' && c != b' ') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("not base32: {text:?}"));
        acc = (acc << 5) | u32::try_from(v).unwrap_or(0);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
    }
    assert!(
        out.len() >= 10,
        "secret {text:?} is too short to search for"
    );
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether `code` occurs in `hay` as a whole number (not inside a longer run of digits,
/// such as a time stamp).
fn contains_code(hay: &[u8], code: &str) -> bool {
    let c = code.as_bytes();
    hay.windows(c.len()).enumerate().any(|(i, w)| {
        w == c
            && (i == 0 || !hay[i - 1].is_ascii_digit())
            && hay.get(i + c.len()).is_none_or(|b| !b.is_ascii_digit())
    })
}

/// Everything the product printed or logged, labelled.
#[derive(Default)]
struct Outputs {
    texts: Vec<(String, String)>,
    /// The `enroll totp --begin` outputs, where one secret is shown legitimately.
    shown: Vec<(String, String)>,
}

impl Outputs {
    fn mfa(&mut self, env: &TestEnv, args: &[&str]) -> pam_mfa_tests::MfaOutput {
        let out = env.mfa(args);
        self.texts
            .push((format!("stdout of {}", out.what), out.stdout.clone()));
        self.texts
            .push((format!("stderr of {}", out.what), out.stderr.clone()));
        out
    }

    /// `enroll totp NAME --begin --json`: its stdout shows the secret (once, legitimately).
    fn begin(&mut self, env: &TestEnv, user: &str, name: &str) -> String {
        let out = env.mfa(&["--user", user, "enroll", "totp", name, "--begin", "--json"]);
        out.assert_success();
        self.texts
            .push((format!("stderr of {}", out.what), out.stderr.clone()));
        let secret = out
            .json()
            .get("secret")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_else(|| panic!("no secret in {}", out.stdout))
            .to_owned();
        self.shown.push((secret.clone(), out.stdout.clone()));
        secret
    }

    fn login(&mut self, env: &TestEnv, user: &str, answer: &str) -> pam_mfa_tests::PamOutcome {
        let out = env.login(user, answer);
        let what = format!("login of {user} answering {answer:?}");
        let syslog: Vec<String> = out.syslog().into_iter().map(|(_, m)| m).collect();
        self.texts
            .push((format!("syslog of {what}"), syslog.join("\n")));
        // pam-client prints the conversation and the result; the answers it was given are
        // on its command line, not in its output.
        self.texts
            .push((format!("conversation of {what}"), out.stdout.clone()));
        self.texts
            .push((format!("stderr of {what}"), out.stderr.clone()));
        out
    }
}

/// The WAL's frames: (page number, page bytes).
fn wal_frames(wal: &[u8]) -> Vec<(u32, &[u8])> {
    if wal.len() < 32 {
        return Vec::new();
    }
    let magic = u32::from_be_bytes([wal[0], wal[1], wal[2], wal[3]]);
    assert!(
        magic == 0x377f_0682 || magic == 0x377f_0683,
        "not a WAL file (magic {magic:#x})"
    );
    let page_size = match u32::from_be_bytes([wal[8], wal[9], wal[10], wal[11]]) {
        1 => 65536,
        n => usize::try_from(n).unwrap_or(0),
    };
    assert!(page_size >= 512, "bad WAL page size {page_size}");
    wal[32..]
        .chunks_exact(24 + page_size)
        .map(|f| (u32::from_be_bytes([f[0], f[1], f[2], f[3]]), &f[24..]))
        .collect()
}

/// The pages of the table b-tree rooted at `root` in the database file `db` (interior
/// pages 0x05 point to their children; 20-byte secrets never spill to overflow pages).
fn table_pages(db: &[u8], page_size: usize, root: u32) -> Vec<u32> {
    let u16_at = |b: &[u8], i: usize| usize::from(u16::from_be_bytes([b[i], b[i + 1]]));
    let u32_at = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        assert!(p >= 1 && !out.contains(&p), "bad b-tree page {p}");
        out.push(p);
        let start = (usize::try_from(p).unwrap_or(usize::MAX) - 1) * page_size;
        let page = &db[start..start + page_size];
        let hdr = if p == 1 { 100 } else { 0 };
        match page[hdr] {
            0x0d => {}
            0x05 => {
                for i in 0..u16_at(page, hdr + 3) {
                    todo.push(u32_at(page, u16_at(page, hdr + 12 + 2 * i)));
                }
                todo.push(u32_at(page, hdr + 8));
            }
            t => panic!("page {p} of the devices table has type {t:#x}"),
        }
    }
    out
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[test]
fn secrets_and_codes_appear_nowhere_but_the_secret_column() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let u = user.name();
    env.write_service(&["max_failures=3", "lockout=120"]);
    let mut out = Outputs::default();
    let mut secrets: Vec<String> = Vec::new();
    let mut codes: Vec<String> = Vec::new();

    // Register "phone": first with wrong codes (refused), then with the right ones.
    let phone = out.begin(&env, u, "phone");
    secrets.push(phone.clone());
    // Holds the WAL of everything that follows (see the module comment).
    let observer = rusqlite::Connection::open(env.db()).expect("cannot open the store");
    let _: i64 = observer
        .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
        .expect("cannot read the store");
    let w1 = wrong_code(&phone, env.now(), 2);
    let w2 = wrong_code(&phone, env.now() + 10 * 30, 12);
    codes.extend([w1.clone(), w2.clone()]);
    let refused = out.mfa(&env, &["--user", u, "enroll", "finish", "phone", &w1, &w2]);
    assert_ne!(refused.code, Some(0), "wrong codes activated the device");
    let (c1, c2) = (env.code_at_step(&phone, -1), env.code(&phone));
    codes.extend([c1.clone(), c2.clone()]);
    out.mfa(&env, &["--user", u, "enroll", "finish", "phone", &c1, &c2])
        .assert_success();

    // Register "tablet" (removed later).
    env.advance_steps(1);
    let tablet = out.begin(&env, u, "tablet");
    secrets.push(tablet.clone());
    let (t1, t2) = (env.code_at_step(&tablet, -1), env.code(&tablet));
    codes.extend([t1.clone(), t2.clone()]);
    out.mfa(&env, &["--user", u, "enroll", "finish", "tablet", &t1, &t2])
        .assert_success();

    // A registration left pending: its secret was shown but never confirmed.
    let pending = out.begin(&env, u, "spare");
    secrets.push(pending);

    // Logins: right, replayed, wrong, malformed; then enough wrong ones to lock out.
    env.advance_steps(1);
    let right = env.code(&phone);
    codes.push(right.clone());
    out.login(&env, u, &right).assert_success();
    assert!(!out.login(&env, u, &right).succeeded(), "a replay got in");
    env.advance_steps(1);
    let tablet_code = env.code(&tablet);
    codes.push(tablet_code.clone());
    out.login(&env, u, &tablet_code).assert_success();
    env.advance_steps(1);
    for _ in 0..3 {
        let wrong = wrong_code(&phone, env.now(), 2);
        codes.push(wrong.clone());
        assert!(!out.login(&env, u, &wrong).succeeded());
    }
    let while_locked = env.code(&phone);
    codes.push(while_locked.clone());
    assert!(!out.login(&env, u, &while_locked).succeeded(), "locked out");
    out.login(&env, u, "12 ab 56");

    // Resync "phone" to a clock 20 steps ahead, remove "tablet", list.
    env.advance_steps(10);
    let (r1, r2) = (env.code_at_step(&phone, 20), env.code_at_step(&phone, 21));
    codes.extend([r1.clone(), r2.clone()]);
    out.mfa(&env, &["--user", u, "resync", "phone", &r1, &r2])
        .assert_success();
    out.mfa(&env, &["--user", u, "remove", "tablet", "--yes"])
        .assert_success();
    out.mfa(&env, &["--user", u, "list"]).assert_success();
    out.mfa(&env, &["--user", u, "list", "--json"])
        .assert_success();
    env.advance_steps(1);
    let after = env.code_at_step(&phone, 21);
    codes.push(after.clone());
    out.login(&env, u, &after).assert_success();

    codes.sort();
    codes.dedup();
    let forms: Vec<SecretForms> = secrets.iter().map(|s| SecretForms::new(s)).collect();

    // 1. Outputs: no code; no secret in any form, except each secret on its own --begin.
    let mut problems = Vec::new();
    for (what, text) in &out.texts {
        for c in &codes {
            if contains_code(text.as_bytes(), c) {
                problems.push(format!("code {c} in {what}"));
            }
        }
        for (s, f) in secrets.iter().zip(&forms) {
            if f.in_text(text.as_bytes()) || contains(text.as_bytes(), &f.raw) {
                problems.push(format!("secret {s} in {what}"));
            }
        }
    }
    for (shown_secret, text) in &out.shown {
        for c in &codes {
            if contains_code(text.as_bytes(), c) {
                problems.push(format!("code {c} in the output of --begin"));
            }
        }
        for (s, f) in secrets.iter().zip(&forms) {
            if s != shown_secret && f.in_text(text.as_bytes()) {
                problems.push(format!(
                    "secret {s} in the --begin output of another device"
                ));
            }
        }
    }

    // 2. The store's files while the WAL holds the whole run.
    let db = env.db().to_owned();
    let wal_path = sibling(&db, "-wal");
    let wal = std::fs::read(&wal_path).unwrap_or_default();
    assert!(
        !wal.is_empty(),
        "the WAL is empty: the test no longer sees what the product wrote"
    );
    let root: u32 = observer
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = 'devices'",
            [],
            |r| r.get(0),
        )
        .expect("cannot find the devices table");
    let frames_with_secrets: Vec<(u32, String)> = wal_frames(&wal)
        .into_iter()
        .flat_map(|(page, data)| {
            secrets
                .iter()
                .zip(&forms)
                .filter(move |(_, f)| contains(data, &f.raw))
                .map(move |(s, _)| (page, s.clone()))
        })
        .collect();
    for (page, data) in wal_frames(&wal) {
        for c in &codes {
            if contains_code(data, c) {
                problems.push(format!("code {c} in the WAL (page {page})"));
            }
        }
        for (s, f) in secrets.iter().zip(&forms) {
            if f.in_text(data) {
                problems.push(format!("secret {s} as text in the WAL (page {page})"));
            }
        }
    }
    assert!(
        !frames_with_secrets.is_empty(),
        "no WAL frame holds a secret: the WAL check checks nothing"
    );
    for suffix in ["-shm", "-journal"] {
        let bytes = std::fs::read(sibling(&db, suffix)).unwrap_or_default();
        for c in &codes {
            if contains_code(&bytes, c) {
                problems.push(format!("code {c} in {suffix}"));
            }
        }
        for (s, f) in secrets.iter().zip(&forms) {
            if f.in_text(&bytes) || contains(&bytes, &f.raw) {
                problems.push(format!("secret {s} in {suffix}"));
            }
        }
    }

    // 3. After the last connection closes (checkpoint): the database file itself. The
    // daemon's is one of them.
    env.halt_mfad();
    drop(observer);
    assert!(
        !wal_path.exists() || std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0) == 0,
        "the WAL outlived the last connection"
    );
    let main = std::fs::read(&db).expect("cannot read the store");
    for c in &codes {
        if contains_code(&main, c) {
            problems.push(format!("code {c} in the database file"));
        }
    }
    for (s, f) in secrets.iter().zip(&forms) {
        if f.in_text(&main) {
            problems.push(format!("secret {s} as text in the database file"));
        }
    }
    let page_size = match u16::from_be_bytes([main[16], main[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    let devices_pages = table_pages(&main, page_size, root);
    for (page, s) in &frames_with_secrets {
        if !devices_pages.contains(page) {
            problems.push(format!(
                "secret {s} in the WAL outside the devices table (page {page})"
            ));
        }
    }
    for (i, page) in main.chunks(page_size).enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        for (s, f) in secrets.iter().zip(&forms) {
            if contains(page, &f.raw) && !devices_pages.contains(&number) {
                problems.push(format!(
                    "secret {s} in the database file outside the devices table (page {number})"
                ));
            }
        }
    }
    assert!(
        contains(&main, &forms[0].raw),
        "the active device's secret is not in the database file: wrong secret decoding?"
    );
    if contains(&main, &forms[1].raw) {
        problems.push("the removed device's secret is still in the database file".to_owned());
    }

    assert!(
        problems.is_empty(),
        "secrets or codes leaked:\n{}",
        problems.join("\n")
    );
}
