//! `mfa` as a client of `mfad` (issue 17): no setuid bit, no store opened by `mfa`. Each
//! test starts its own daemon on a private store and socket (`mfad --db --socket`) and
//! runs the built `mfa --socket` against it: as root, and as a test user with nothing
//! but their own uid (the daemon decides who is asking from the socket's peer
//! credentials).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pam_mfa_tests::accounts::{as_user, gid_of};
use pam_mfa_tests::{STEP, TestUser, mfa_bin, mfad_bin, real_now, require_root, totp};

/// A daemon of this test, on `DIR/store/devices.db` and `DIR/mfad.sock`; ended when dropped.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    /// `mfa`, copied where every user can run it (without any setuid bit).
    mfa: PathBuf,
}

impl Daemon {
    fn start() -> Self {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        // Reachable by the test users (the socket is 0666; the store stays root's 0600).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let mfa = dir.path().join("mfa");
        std::fs::copy(mfa_bin(), &mfa).expect("copy mfa");
        std::fs::set_permissions(&mfa, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // The store's own directory is root's alone, as mfad requires.
        let store = dir.path().join("store");
        std::fs::create_dir(&store).expect("mkdir");
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let child = Command::new(mfad_bin())
            .arg("--db")
            .arg(store.join("devices.db"))
            .arg("--socket")
            .arg(dir.path().join("mfad.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mfad");
        let socket = dir.path().join("mfad.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "mfad did not start serving");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, dir, mfa }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mfad.sock")
    }

    /// `mfa --socket SOCK ARGS…` as root, with `input` on stdin.
    fn root(&self, args: &[&str], input: &str) -> Output {
        let mut cmd = Command::new(&self.mfa);
        cmd.arg("--socket").arg(self.socket()).args(args);
        run(cmd, input)
    }

    /// `mfa --socket SOCK ARGS…` as `user` (real and effective ids: no setuid anywhere).
    fn user(&self, user: &TestUser, args: &[&str], input: &str) -> Output {
        let prefix = as_user(user);
        let mut cmd = Command::new(&prefix[0]);
        cmd.args(&prefix[1..])
            .arg(&self.mfa)
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .current_dir("/");
        run(cmd, input)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("TZ", "UTC")
        .spawn()
        .expect("run mfa");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("mfa")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "mfa failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

#[track_caller]
fn refused(out: &Output, wanted: &str) {
    let (stdout, stderr) = text(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains(wanted), "wanted {wanted:?} in:\n{stderr}");
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn names(out: &Output) -> Vec<String> {
    match json(&ok(out)) {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|d| d["name"].as_str().expect("name").to_owned())
            .collect(),
        other => panic!("list --json printed {other}"),
    }
}

/// Registers an app `name` for `user` as root (`--begin --json`, then `finish` with the
/// codes of the previous and the current step); its secret.
fn enroll(d: &Daemon, user: &str, name: &str) -> String {
    let begun = json(&ok(&d.root(
        &["--user", user, "enroll", "totp", name, "--begin", "--json"],
        "",
    )));
    let secret = begun["secret"].as_str().expect("secret").to_owned();
    assert_eq!(begun["user"], user);
    let now = real_now();
    let (c1, c2) = (totp(&secret, now - STEP), totp(&secret, now));
    let done = ok(&d.root(&["--user", user, "enroll", "finish", name, &c1, &c2], ""));
    assert!(done.contains("is active for"), "{done}");
    secret
}

#[test]
fn root_manages_devices_through_the_daemon() {
    let d = Daemon::start();
    let alice = TestUser::new();
    let a = alice.name();
    let policy = ok(&d.root(&["admin", "policy", "show"], ""));
    assert!(policy.contains("self_service         allow"), "{policy}");
    let secret = enroll(&d, a, "phone");
    assert_eq!(
        names(&d.root(&["--user", a, "list", "--json"], "")),
        ["phone"]
    );
    let table = ok(&d.root(&["--user", a, "list"], ""));
    assert!(
        table.starts_with("NAME ") && table.contains("phone  totp  active"),
        "{table}"
    );
    let renamed = ok(&d.root(&["--user", a, "rename", "phone", "pixel"], ""));
    assert_eq!(renamed, "Renamed \"phone\" to \"pixel\".\n");
    // Codes of the coming steps: never used, consecutive.
    let now = real_now();
    let (c1, c2) = (totp(&secret, now + STEP), totp(&secret, now + 2 * STEP));
    let synced = ok(&d.root(&["--user", a, "resync", "pixel", &c1, &c2], ""));
    assert!(
        synced.contains("Device \"pixel\" is back in sync"),
        "{synced}"
    );
    let codes = ok(&d.root(&["--user", a, "recovery", "generate"], ""));
    assert_eq!(
        codes.lines().filter(|l| l.starts_with("    ")).count(),
        10,
        "{codes}"
    );
    let all = json(&ok(&d.root(&["admin", "list", "--json"], "")));
    let entry = all
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["user"] == a)
        .expect("alice listed");
    assert_eq!(entry["recovery_codes_left"], 10, "{entry}");
    assert_eq!(entry["devices"][0]["name"], "pixel", "{entry}");
    let audit = ok(&d.root(&["admin", "audit", "--user", a], ""));
    assert!(audit.contains("uid 0"), "{audit}");
    ok(&d.root(&["--user", a, "remove", "pixel", "--yes"], ""));
    assert!(names(&d.root(&["--user", a, "list", "--json"], "")).is_empty());
    // Nothing listens at the default socket of this test's namespace-less host, or at a
    // path that is not a socket: one clear line, exit 1.
    let mut cmd = Command::new(&d.mfa);
    cmd.args(["--socket", "/nonexistent/mfad.sock", "list"]);
    let hint = if std::path::Path::new("/run/systemd/system").is_dir() {
        "systemctl status mfad.socket"
    } else {
        "without systemd, root starts /usr/sbin/mfad; root's mfa doctor says more"
    };
    refused(
        &run(cmd, ""),
        &format!(
            "cannot reach mfad at /nonexistent/mfad.sock: No such file or directory (os error 2); \
             is it running? ({hint})"
        ),
    );
    // --socket with --db is a usage error.
    let out = d.root(&["--db", "/tmp/x.db", "list"], "");
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
}

#[test]
fn a_user_reaches_only_their_own_devices_without_setuid() {
    let d = Daemon::start();
    let alice = TestUser::new();
    let bob = TestUser::new();
    let secret = enroll(&d, alice.name(), "phone");
    enroll(&d, bob.name(), "bob-phone");

    // Her own list works; another's does not, nor a store of her choosing.
    assert_eq!(names(&d.user(&alice, &["list", "--json"], "")), ["phone"]);
    refused(
        &d.user(&alice, &["--user", bob.name(), "list"], ""),
        "--user is for root only",
    );
    let db = d.dir.path().join("store/devices.db");
    let mut cmd = Command::new(&as_user(&alice)[0]);
    cmd.args(&as_user(&alice)[1..])
        .arg(&d.mfa)
        .arg("--db")
        .arg(&db)
        .arg("list");
    refused(&run(cmd, ""), "--db is for root only");
    // Administration is root's.
    refused(
        &d.user(&alice, &["admin", "list"], ""),
        "mfa admin is for root only",
    );

    // A change asks for a current code first: none given, nothing changes.
    refused(
        &d.user(&alice, &["rename", "phone", "pixel"], ""),
        "a current code from one of your devices is needed",
    );
    let wrong = pam_mfa_tests::wrong_code_now(&secret);
    refused(
        &d.user(&alice, &["rename", "phone", "pixel"], &format!("{wrong}\n")),
        "that is not a current code of any of your devices",
    );
    assert_eq!(names(&d.user(&alice, &["list", "--json"], "")), ["phone"]);
    let code = totp(&secret, real_now() + STEP);
    let out = d.user(&alice, &["rename", "phone", "pixel"], &format!("{code}\n"));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("To confirm it is you"), "{stderr}");
    assert_eq!(ok(&out), "Renamed \"phone\" to \"pixel\".\n");

    // A QR image is written by her own process: hers, private, where she may write.
    let home = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(home.path(), Some(alice.uid()), Some(gid_of(&alice))).expect("chown");
    let png = home.path().join("qr.png");
    // Her next proofs: recovery codes (a code of her phone's next step is used up).
    let codes = ok(&d.root(&["--user", alice.name(), "recovery", "generate"], ""));
    let codes: Vec<&str> = codes
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .collect();
    let code = codes[0];
    let out = d.user(
        &alice,
        &[
            "enroll",
            "totp",
            "laptop",
            "--begin",
            "--qr-png",
            png.to_str().expect("path"),
        ],
        &format!("{code}\n"),
    );
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("Recovery code accepted; you have 9 recovery codes left."),
        "{stderr}"
    );
    let stdout = ok(&out);
    assert!(stdout.contains("Pending device \"laptop\""), "{stdout}");
    let meta = std::fs::metadata(&png).expect("qr.png written");
    assert_eq!(meta.uid(), alice.uid());
    assert_eq!(meta.mode() & 0o777, 0o600);
    // Where she may not write, nor may the image go.
    let out = d.user(
        &alice,
        &[
            "enroll",
            "totp",
            "tablet",
            "--begin",
            "--qr-png",
            "/etc/qr.png",
        ],
        &format!("{}\n", codes[1]),
    );
    refused(&out, "cannot write /etc/qr.png");
    assert!(!Path::new("/etc/qr.png").exists());
    assert_eq!(names(&d.user(&bob, &["list", "--json"], "")), ["bob-phone"]);
}

/// `mfa --socket SOCK doctor` checks the store that daemon serves (its greeting names it),
/// not the default path; `--db` names another store to check, and so does `--root DIR`
/// (the system under DIR), and the report then says the daemon serves a different one.
#[test]
fn doctor_checks_the_store_the_daemon_serves() {
    let d = Daemon::start();
    let alice = TestUser::new();
    enroll(&d, alice.name(), "phone");
    // An empty system root, for the report on a system that is not this one.
    let root = tempfile::tempdir().expect("tempdir");
    let root_dir = root.path().to_str().expect("utf-8 path");
    let served = d.dir.path().join("store/devices.db");
    let served_shown = served.display().to_string();
    let findings = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = d.root(args, "");
        let (stdout, stderr) = text(&out);
        match json(&stdout) {
            serde_json::Value::Array(items) => items,
            other => panic!("doctor --json printed {other}; stderr: {stderr}"),
        }
    };
    let with = |items: &[serde_json::Value], check: &str, needle: &str| -> Vec<String> {
        items
            .iter()
            .filter(|f| f["check"] == check)
            .filter_map(|f| {
                let line = format!("{} {}", f["status"], f["message"]);
                line.contains(needle).then_some(line)
            })
            .collect()
    };

    // This system (its PAM files are read too; only the lines below are asserted).
    let report = findings(&["doctor", "--json"]);
    let store = with(&report, "store", &served_shown);
    assert!(
        store.len() == 1 && store[0].starts_with("\"ok\""),
        "{report:#?}"
    );
    let users = with(&report, "users", "1 user has active devices");
    assert_eq!(users.len(), 1, "{report:#?}");
    let daemon = with(&report, "daemon", "the store checked above");
    assert!(
        daemon.len() == 1 && daemon[0].starts_with("\"ok\""),
        "{report:#?}"
    );

    // --db names another store: that one is checked, and the daemon's line says so.
    let other = root.path().join("other.db");
    let other_shown = other.display().to_string();
    let report = findings(&["--db", &other_shown, "doctor", "--root", root_dir, "--json"]);
    assert!(
        !with(&report, "store", &other_shown).is_empty(),
        "{report:#?}"
    );
    let daemon = with(&report, "daemon", "but this report checked");
    assert!(
        daemon.len() == 1 && daemon[0].starts_with("\"warning\""),
        "{report:#?}"
    );

    // Another system's root: its own store is checked, not the one this daemon serves.
    let report = findings(&["doctor", "--root", root_dir, "--json"]);
    let under_root = root.path().join("var/lib/pam_mfa/devices.db");
    assert!(
        !with(&report, "store", &under_root.display().to_string()).is_empty(),
        "{report:#?}"
    );
    assert!(
        with(&report, "store", &served_shown).is_empty(),
        "{report:#?}"
    );
}
