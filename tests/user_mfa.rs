//! `mfa` run by real non-root users (issue 5's self-service; since issue 17 `mfa` is
//! installed without setuid and asks `mfad`, which decides from the peer's credentials).
//!
//! Each test copies the built `mfa` into a directory of its own, owned by root, mode 0755,
//! and runs it as a throw-away account inside a private mount namespace whose
//! `/var/lib/pam_mfa` is the test's store, served by the namespace's `mfad` on its default
//! socket, so the binary finds the daemon without `--socket`. The daemon runs at the
//! real time, and so do these tests (see `realtime`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pam_mfa_tests::accounts::gid_of;
use pam_mfa_tests::backend::Backend;
use pam_mfa_tests::process::{self, Finished};
use pam_mfa_tests::{
    Namespace, STEP, TestEnv, TestUser, enroll_now, mfa_bin, next_code, real_now, totp,
    wrong_code_now_for_all,
};
use serde_json::Value;

/// The built `mfa`, copied (mode 0755, as the packages install it) into a directory
/// everyone can reach.
struct UserMfa {
    _dir: tempfile::TempDir,
    bin: PathBuf,
}

impl UserMfa {
    fn install() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mfa-user-")
            .tempdir()
            .expect("temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the binary's directory");
        let bin = dir.path().join("mfa");
        std::fs::copy(mfa_bin(), &bin).expect("copy mfa");
        std::os::unix::fs::chown(&bin, Some(0), Some(0)).expect("chown mfa");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
            .expect("chmod 0755 mfa");
        Self { _dir: dir, bin }
    }

    /// Runs `mfa ARGS…` as `user` in the namespace with `envs` added to the
    /// cleared environment.
    fn run_as(
        &self,
        ns: &Namespace,
        user: &TestUser,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Finished {
        self.run_with_input(ns, user, args, envs, "")
    }

    /// As [`Self::run_as`], with `input` on stdin (the confirming code).
    fn run_with_input(
        &self,
        ns: &Namespace,
        user: &TestUser,
        args: &[&str],
        envs: &[(&str, &str)],
        input: &str,
    ) -> Finished {
        let mut cmd = ns.command_as(user, &self.bin);
        cmd.args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        process::run(
            cmd,
            format!("mfa {args:?} as {user}"),
            input.as_bytes().to_vec(),
        )
    }
}

fn assert_ok(out: &Finished) {
    assert!(
        out.status.success(),
        "expected success; stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}

fn assert_refused(out: &Finished, message: &str) {
    assert!(
        !out.status.success(),
        "expected a refusal; stdout:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(message),
        "stderr lacks {message:?}:\n{}",
        out.stderr
    );
}

fn names(out: &Finished) -> Vec<String> {
    assert_ok(out);
    let value: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout));
    let Value::Array(items) = value else {
        panic!("not an array: {}", out.stdout)
    };
    items
        .iter()
        .map(|d| d["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// The names of `user`'s devices as root's `mfa --user USER list --json` shows them at the
/// real time (pending devices expire by the real clock these tests run at).
fn names_now(env: &TestEnv, user: &str) -> Vec<String> {
    let out = env
        .mfa_cmd(&["--user", user, "list", "--json"])
        .real_time()
        .run();
    out.assert_success();
    let Value::Array(items) = out.json() else {
        panic!("list --json printed no array")
    };
    items
        .iter()
        .map(|d| d["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn has(env: &TestEnv, user: &str, name: &str) -> bool {
    names_now(env, user).iter().any(|n| n == name)
}

#[test]
fn a_user_sees_and_changes_only_their_own_devices() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let bob = TestUser::new();
    let phone = enroll_now(&env, alice.name(), "alice-phone");
    let tablet = enroll_now(&env, alice.name(), "alice-tablet");
    enroll_now(&env, bob.name(), "bob-phone");

    let listed = names(&mfa.run_as(&ns, &alice, &["list", "--json"], &[]));
    assert_eq!(listed, ["alice-phone", "alice-tablet"]);

    // Bob's device is not Alice's to touch, by its name or any other way.
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["remove", "bob-phone", "--yes"],
        &[],
        &format!("{}\n", next_code(&phone.secret)),
    );
    assert_refused(&out, "has no device named \"bob-phone\"");
    assert!(has(&env, bob.name(), "bob-phone"));

    // Her own pending device is created in the system store, under her name.
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "totp", "laptop", "--begin", "--json"],
        &[],
        &format!("{}\n", next_code(&tablet.secret)),
    );
    assert_ok(&out);
    assert!(has(&env, alice.name(), "laptop"));
    assert!(!has(&env, bob.name(), "laptop"));
}

#[test]
fn user_db_and_admin_options_are_refused_for_non_root() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let bob = TestUser::new();
    enroll_now(&env, bob.name(), "bob-phone");

    let out = mfa.run_as(&ns, &alice, &["--user", bob.name(), "list"], &[]);
    assert_refused(&out, "--user is for root only");
    // Even naming herself: the option is root's.
    let out = mfa.run_as(&ns, &alice, &["--user", alice.name(), "list"], &[]);
    assert_refused(&out, "--user is for root only");
    let out = mfa.run_as(&ns, &alice, &["--db", "/tmp/alice-owned.db", "list"], &[]);
    assert_refused(&out, "--db is for root only");
    assert!(!Path::new("/tmp/alice-owned.db").exists());
    let out = mfa.run_as(&ns, &alice, &["doctor"], &[]);
    assert!(!out.status.success(), "doctor ran for a non-root user");
    for admin in [
        &["admin", "policy", "show"][..],
        &["admin", "policy", "set", "self_service", "allow"][..],
        &["admin", "list"][..],
        &["admin", "audit"][..],
        &["admin", "unlock", bob.name()][..],
        &["admin", "remove", bob.name(), "bob-phone"][..],
    ] {
        let out = mfa.run_as(&ns, &alice, admin, &[]);
        assert_refused(&out, "mfa admin is for root only");
    }
    assert!(has(&env, bob.name(), "bob-phone"));
}

#[test]
fn self_service_deny_greys_out_every_change_but_not_root() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let phone = enroll_now(&env, alice.name(), "alice-phone");
    env.set_policy("self_service", "deny");

    const MESSAGE: &str = "Device registration is managed by your administrator; contact them";
    for change in [
        &["enroll", "totp", "laptop", "--begin"][..],
        &["rename", "alice-phone", "pixel"][..],
        &["remove", "alice-phone", "--yes"][..],
        &["resync", "alice-phone", "-"][..],
    ] {
        let out = mfa.run_as(&ns, &alice, change, &[]);
        assert_refused(&out, MESSAGE);
    }
    assert_eq!(names_now(&env, alice.name()), ["alice-phone"]);
    // Looking is not changing.
    assert_eq!(
        names(&mfa.run_as(&ns, &alice, &["list", "--json"], &[])),
        ["alice-phone"]
    );
    // Root still registers devices for her.
    env.mfa_cmd(&[
        "--user",
        alice.name(),
        "enroll",
        "totp",
        "laptop",
        "--begin",
    ])
    .real_time()
    .run()
    .assert_success();
    // Allowed again, she may change her own devices.
    env.set_policy("self_service", "allow");
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "totp", "tablet", "--begin"],
        &[],
        &format!("{}\n", next_code(&phone.secret)),
    );
    assert_ok(&out);
}

#[test]
fn every_change_has_an_audit_row_with_the_callers_uid() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let phone = enroll_now(&env, alice.name(), "alice-phone");
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "totp", "laptop", "--begin"],
        &[],
        &format!("{}\n", next_code(&phone.secret)),
    );
    assert_ok(&out);
    env.set_policy("window", "2");
    env.mfa_cmd(&["admin", "remove", alice.name(), "alice-phone"])
        .real_time()
        .run()
        .assert_success();

    let out = env.mfa_cmd(&["admin", "audit", "--json"]).real_time().run();
    out.assert_success();
    let Value::Array(rows) = out.json() else {
        panic!("audit --json printed no array")
    };
    let row = |uid: u64, user: &str, action: &str, device: Option<&str>| {
        rows.iter().any(|r| {
            r["uid"].as_u64() == Some(uid)
                && r["user"].as_str() == Some(user)
                && r["action"].as_str() == Some(action)
                && r["device"].as_str() == device
        })
    };
    let a = alice.name();
    assert!(row(0, a, "begin", Some("alice-phone")), "{rows:?}");
    assert!(row(0, a, "activate", Some("alice-phone")), "{rows:?}");
    assert!(
        row(u64::from(alice.uid()), a, "begin", Some("laptop")),
        "{rows:?}"
    );
    assert!(row(0, "*", "policy", None), "{rows:?}");
    assert!(row(0, a, "remove", Some("alice-phone")), "{rows:?}");
    // Filtering by user leaves out the policy change.
    let out = env
        .mfa_cmd(&["admin", "audit", "--user", a, "--since", "1h", "--json"])
        .real_time()
        .run();
    out.assert_success();
    let Value::Array(mine) = out.json() else {
        panic!("audit --json printed no array")
    };
    assert_eq!(mine.len(), rows.len() - 1);
}

#[test]
fn environment_tricks_change_nothing() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let root_like = [
        ("USER", "root"),
        ("LOGNAME", "root"),
        ("SUDO_USER", "root"),
        ("SUDO_UID", "0"),
        ("HOME", "/root"),
        ("TMPDIR", "/nonexistent"),
        ("SQLITE_TMPDIR", "/nonexistent"),
        ("PAM_MFA_SOFT_FIDO2", "/tmp/x"),
    ];
    let phone = enroll_now(&env, alice.name(), "alice-phone");
    enroll_now(&env, "root", "root-phone");

    let listed = names(&mfa.run_as(&ns, &alice, &["list", "--json"], &root_like));
    assert_eq!(listed, ["alice-phone"]);
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "totp", "tricked", "--begin", "--json"],
        &root_like,
        &format!("{}\n", next_code(&phone.secret)),
    );
    assert_ok(&out);
    assert!(has(&env, alice.name(), "tricked"));
    assert!(!has(&env, "root", "tricked"));
    // The store stays root's and private whatever umask or environment the caller had.
    let meta = std::fs::metadata(env.db()).expect("the store exists");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
}

#[test]
fn qr_image_is_written_as_the_user_and_links_are_refused() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let bob = TestUser::new();
    let home = ns.create_home(&alice);

    let png = format!("{home}/qr.png");
    let out = mfa.run_as(
        &ns,
        &alice,
        &["enroll", "totp", "phone", "--begin", "--qr-png", &png],
        &[],
    );
    assert_ok(&out);
    let meta = std::fs::symlink_metadata(ns.path(&png)).expect("the QR image exists");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (alice.uid(), gid_of(&alice), 0o600),
        "the QR image must be the user's own private file"
    );

    // A symlink at the target (here to a root-only file) is refused, even with --force.
    let link = format!("{home}/link.png");
    std::os::unix::fs::symlink("/etc/shadow", ns.path(&link)).expect("symlink");
    for extra in [&[][..], &["--force"][..]] {
        let mut args = vec!["enroll", "totp", "phone2", "--begin", "--qr-png", &link];
        args.extend_from_slice(extra);
        let out = mfa.run_as(&ns, &alice, &args, &[]);
        assert_refused(&out, "cannot write");
    }

    // A directory reached through someone else's symlink is refused.
    let sub = format!("{home}/real");
    std::fs::create_dir(ns.path(&sub)).expect("mkdir");
    std::os::unix::fs::chown(ns.path(&sub), Some(alice.uid()), None).expect("chown");
    let via = format!("{home}/via-bob");
    std::os::unix::fs::symlink(&sub, ns.path(&via)).expect("symlink");
    std::os::unix::fs::lchown(ns.path(&via), Some(bob.uid()), None).expect("lchown");
    let target = format!("{via}/qr.png");
    let out = mfa.run_as(
        &ns,
        &alice,
        // The refused attempts reuse one name: each leaves its registration pending,
        // and a user may have three unfinished at once (issue 16, finding 3).
        &["enroll", "totp", "phone2", "--begin", "--qr-png", &target],
        &[],
    );
    assert_refused(&out, "symbolic link owned by uid");
    assert!(!ns.path(&format!("{sub}/qr.png")).exists());

    // A directory the user cannot write is not written through root's rights.
    let out = mfa.run_as(
        &ns,
        &alice,
        &[
            "enroll",
            "totp",
            "phone2",
            "--begin",
            "--qr-png",
            "/etc/mfa-qr.png",
        ],
        &[],
    );
    assert_refused(&out, "Permission denied");
    assert!(!ns.path("/etc/mfa-qr.png").exists());
}

#[test]
fn changing_devices_needs_a_current_code_which_is_then_used_up() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let phone = enroll_now(&env, alice.name(), "phone");
    let tablet = enroll_now(&env, alice.name(), "tablet");
    let rename = ["rename", "phone", "pixel"];

    // No code, or a wrong one: nothing changes.
    let out = mfa.run_as(&ns, &alice, &rename, &[]);
    assert_refused(&out, "a current code from one of your devices is needed");
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &rename,
        &[],
        &format!(
            "{}\n",
            wrong_code_now_for_all(&[&phone.secret, &tablet.secret])
        ),
    );
    assert_refused(&out, "not a current code");
    assert_eq!(names_now(&env, alice.name()), ["phone", "tablet"]);

    // A current code of either device: the change is made.
    let code = next_code(&tablet.secret);
    let out = mfa.run_with_input(&ns, &alice, &rename, &[], &format!("{code}\n"));
    assert_ok(&out);
    assert!(
        out.stderr.contains("To confirm it is you"),
        "{}",
        out.stderr
    );
    assert_eq!(names_now(&env, alice.name()), ["pixel", "tablet"]);

    // The same code again is a replay, as at a login.
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["remove", "pixel", "--yes"],
        &[],
        &format!("{code}\n"),
    );
    assert_refused(&out, "not a current code");
    for change in [
        &["enroll", "totp", "laptop", "--begin"][..],
        &["resync", "pixel", "-"][..],
    ] {
        let out = mfa.run_as(&ns, &alice, change, &[]);
        assert_refused(&out, "a current code from one of your devices is needed");
    }
    assert_eq!(names_now(&env, alice.name()), ["pixel", "tablet"]);

    // Root needs no code.
    env.mfa_cmd(&["--user", alice.name(), "remove", "pixel", "--yes"])
        .real_time()
        .run()
        .assert_success();
    assert_eq!(names_now(&env, alice.name()), ["tablet"]);
}

/// The software security key's state file, with `knob` set to `on` (see fido2.rs).
fn set_key_knob(key: &Path, knob: &str, on: bool) {
    let mut state: Value =
        serde_json::from_slice(&std::fs::read(key).expect("key state")).expect("key JSON");
    state["knobs"][knob] = Value::Bool(on);
    std::fs::write(key, serde_json::to_vec(&state).expect("JSON")).expect("write key state");
}

#[test]
fn a_security_key_proves_the_user_with_a_touch() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    // The keys are plugged into Alice's session: her own `mfa` (no longer setuid) talks
    // to them, so their state files are hers, in a directory she can reach.
    let keys = tempfile::Builder::new()
        .prefix("soft-keys-")
        .tempdir()
        .expect("temporary directory");
    std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the keys' directory");
    std::os::unix::fs::chown(keys.path(), Some(alice.uid()), None)
        .expect("chown the keys' directory");
    let key = keys.path().join("key-alice.json");
    let other_key = keys.path().join("key-other.json");
    let hand_to_alice = |k: &Path| {
        std::os::unix::fs::chown(k, Some(alice.uid()), None).expect("chown the key");
    };
    let key_env = |k: &Path| {
        [(
            "PAM_MFA_SOFT_FIDO2",
            k.to_str().expect("UTF-8 path").to_owned(),
        )]
    };
    env.mfa_cmd(&["--user", alice.name(), "enroll", "fido2", "yubi"])
        .env("PAM_MFA_SOFT_FIDO2", &key)
        .real_time()
        .run()
        .assert_success();
    hand_to_alice(&key);
    let run = |args: &[&str], k: &Path, input: &str| {
        let e = key_env(k);
        let envs: Vec<(&str, &str)> = e.iter().map(|(a, b)| (*a, b.as_str())).collect();
        mfa.run_with_input(&ns, &alice, args, &envs, input)
    };
    let rename = ["rename", "yubi", "yubikey"];

    // The key is not plugged in: refused, nothing changed.
    set_key_knob(&key, "absent", true);
    let out = run(&rename, &key, "");
    assert_refused(&out, "no security key found");
    assert_refused(&out, "nothing was changed");
    assert_eq!(names_now(&env, alice.name()), ["yubi"]);

    // Someone else's key (it holds none of alice's credentials): refused.
    env.mfa_cmd(&["--user", alice.name(), "enroll", "fido2", "spare"])
        .env("PAM_MFA_SOFT_FIDO2", &other_key)
        .real_time()
        .run()
        .assert_success();
    env.mfa_cmd(&["--user", alice.name(), "remove", "spare", "--yes"])
        .real_time()
        .run()
        .assert_success();
    hand_to_alice(&other_key);
    let out = run(&rename, &other_key, "");
    assert_refused(&out, "not registered for");
    assert_eq!(names_now(&env, alice.name()), ["yubi"]);

    // Her key, plugged in and touched: the change is made.
    set_key_knob(&key, "absent", false);
    let out = run(&rename, &key, "");
    assert_ok(&out);
    assert!(
        out.stderr.contains("Touch your security key"),
        "{}",
        out.stderr
    );
    assert_eq!(names_now(&env, alice.name()), ["yubikey"]);

    // With a code device as well, the code is asked for, and an empty answer means the key.
    let phone = enroll_now(&env, alice.name(), "phone");
    let out = run(&["rename", "yubikey", "key"], &key, "\n");
    assert_ok(&out);
    assert!(out.stderr.contains("or just press Enter"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Touch your security key"),
        "{}",
        out.stderr
    );
    assert_eq!(names_now(&env, alice.name()), ["key", "phone"]);
    // …and a code still works on its own, with no key plugged in.
    set_key_knob(&key, "absent", true);
    let out = run(
        &["rename", "key", "yubi"],
        &key,
        &format!("{}\n", next_code(&phone.secret)),
    );
    assert_ok(&out);
    assert!(
        !out.stderr.contains("Touch your security key"),
        "{}",
        out.stderr
    );
    assert_eq!(names_now(&env, alice.name()), ["yubi", "phone"]);
}

/// Issue 17: `mfa` is the user's own process (their uids, no store open, no privilege),
/// so stopping it, which the user may, holds up nobody: the daemon holds the store.
#[test]
fn a_users_mfa_is_their_own_process_and_stopping_it_holds_up_nobody() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let bob = TestUser::new();
    enroll_now(&env, bob.name(), "bobs-phone");
    // `mfa enroll totp` waits at its code prompt, its stdin a FIFO the shell keeps open;
    // Alice stops it there (as ^Z would) and leaves it stopped.
    let script = format!(
        r#"d=$(mktemp -d) && mkfifo "$d/in" || exit 3
{bin} enroll totp phone < "$d/in" > /dev/null 2>&1 &
pid=$!
exec 3> "$d/in"
for i in $(seq 100); do
    grep -q '^State:.*S' /proc/$pid/status && [ -e /proc/$pid/fd/0 ] && break
    sleep 0.1
done
sleep 0.5
grep '^Uid:' /proc/$pid/status
ls -l /proc/$pid/fd | grep -c 'devices.db' || true
if kill -STOP $pid 2>/dev/null; then echo SIGNALLED; else echo REFUSED; fi
echo "pid $pid""#,
        bin = mfa.bin.display()
    );
    let mut cmd = ns.command_as(&alice, Path::new("/bin/sh"));
    cmd.arg("-c").arg(script);
    let out = process::run(cmd, "stop mfa as its caller", Vec::new());
    assert!(
        out.stdout.contains("SIGNALLED"),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let uid_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid line");
    let uid = alice.uid().to_string();
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        [uid.as_str(); 4],
        "{uid_line}"
    );
    // No descriptor of the store in her process.
    assert!(
        out.stdout.lines().any(|l| l.trim() == "0"),
        "{}",
        out.stdout
    );
    // While it stays stopped, Bob's and root's requests are answered.
    let listed = names(&mfa.run_as(&ns, &bob, &["list", "--json"], &[]));
    assert_eq!(listed, ["bobs-phone"]);
    assert!(has(&env, bob.name(), "bobs-phone"));
    let pid = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .expect("the pid");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status();
}

#[test]
fn closed_standard_descriptors_are_reopened_on_dev_null() {
    let env = TestEnv::new();
    let alice = TestUser::new();
    // Started with stdout and stderr closed, `mfa` must hold /dev/null open read-write on
    // fds 1 and 2 (O_RDWR = 2 in the low bits of fdinfo's octal flags) before it opens
    // anything, so that no file it opens later (the store, a QR image) can become
    // "standard error" and receive its messages. Rust's runtime does this before `main`
    // on Linux, and `hardening::ensure_standard_fds` makes sure of it whatever starts
    // `main`; SQLite's own guard would open /dev/null read-only, which this tells apart.
    // It waits at its code prompt on a FIFO meanwhile; root runs it, since /proc of a
    // non-dumpable process is root's to read.
    let script = format!(
        r#"d=$(mktemp -d) && mkfifo "$d/in" || exit 3
{bin} --db {db} --user {user} enroll totp phone < "$d/in" 1>&- 2>&- &
pid=$!
exec 3> "$d/in"
for i in $(seq 100); do
    ls -l /proc/$pid/fd 2>/dev/null | grep -q 'devices.db$' && break
    sleep 0.1
done
for fd in 1 2; do
    echo "fd$fd $(readlink /proc/$pid/fd/$fd) $(awk '/^flags:/ {{print $2}}' /proc/$pid/fdinfo/$fd)"
done
exec 3>&-
wait $pid
echo "exit $?"
rm -rf "$d""#,
        bin = mfa_bin().display(),
        db = env.db().display(),
        user = alice.name(),
    );
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    let out = process::run(cmd, "mfa with fds 1 and 2 closed", Vec::new());
    for fd in ["fd1", "fd2"] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(fd))
            .unwrap_or_else(|| panic!("no {fd} line:\n{}\n{}", out.stdout, out.stderr));
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.get(1), Some(&"/dev/null"), "{line}");
        let flags = parts
            .get(2)
            .and_then(|f| u32::from_str_radix(f, 8).ok())
            .unwrap_or_else(|| panic!("no flags: {line}"));
        assert_eq!(flags & 0o3, 0o2, "not opened read-write by mfa: {line}");
    }
    // At the end of its input it gave up cleanly: the registration stays pending (until
    // it expires), never active.
    assert!(out.stdout.contains("exit 1"), "{}", out.stdout);
    let list = env
        .mfa_cmd(&["--user", alice.name(), "list", "--json"])
        .real_time()
        .run();
    list.assert_success();
    let Value::Array(items) = list.json() else {
        panic!("list --json printed no array")
    };
    assert!(items.iter().all(|d| d["state"] == "pending"), "{items:?}");
}

/// The HOTP code of the RFC 4226 test secret for `counter`, from oathtool.
fn rfc4226_hotp(counter: i64) -> String {
    let out = std::process::Command::new(pam_mfa_tests::tool("oathtool", "oathtool"))
        .args(["--hotp", "-c", &counter.to_string()])
        .arg("3132333435363738393031323334353637383930")
        .output()
        .expect("run oathtool");
    assert!(out.status.success(), "oathtool: {out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

#[test]
fn a_user_registers_a_token_as_they_register_an_app() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let bob = TestUser::new();
    let phone = enroll_now(&env, alice.name(), "phone");
    let seeds = env.path("seeds.csv");
    std::fs::write(
        &seeds,
        "H-1,3132333435363738393031323334353637383930,hotp\n\
         H-2,3132333435363738393031323334353637383930,hotp\n",
    )
    .expect("write the seed file");
    env.mfa_cmd(&["admin", "tokens", "import", seeds.to_str().expect("path")])
        .real_time()
        .run()
        .assert_success();
    let (c0, c1) = (rfc4226_hotp(0), rfc4226_hotp(1));
    // Codes from standard input, after the confirming code where one is asked for.
    let enroll = ["enroll", "token", "fob", "H-1", "-"];

    // The inventory is root's.
    let out = mfa.run_as(&ns, &alice, &["admin", "tokens", "list"], &[]);
    assert_refused(&out, "mfa admin is for root only");
    // She has a device: without a current code of it, no token.
    let out = mfa.run_as(&ns, &alice, &enroll, &[]);
    assert_refused(&out, "a current code from one of your devices is needed");
    assert_eq!(names_now(&env, alice.name()), ["phone"]);
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &enroll,
        &[],
        &format!("{}\n{c0}\n{c1}\n", next_code(&phone.secret)),
    );
    assert_ok(&out);
    assert_eq!(names_now(&env, alice.name()), ["phone", "fob"]);
    // The token is hers now; bob (no device yet, so no code asked) cannot have it.
    let token = |serial: &str, c1: &str, c2: &str| {
        mfa.run_with_input(
            &ns,
            &bob,
            &["enroll", "token", "fob", serial, "-"],
            &[],
            &format!("{c1}\n{c2}\n"),
        )
    };
    let out = token("H-1", &rfc4226_hotp(2), &rfc4226_hotp(3));
    assert_refused(
        &out,
        "no unassigned token with that serial number shows these two codes",
    );
    assert!(!out.stderr.contains(alice.name()), "{}", out.stderr);
    // A free token with a wrong second code gets the very same answer (which of the two
    // codes was wrong is not told), and so does a serial that does not exist; each try
    // counts toward bob's lock-out, which then stops him before any code is looked at.
    let wrong_second = token("H-2", &c0, &rfc4226_hotp(5));
    assert_eq!(wrong_second.stderr, out.stderr);
    let no_such = token("H-9", &c0, &c1);
    assert_eq!(no_such.stderr, out.stderr);
    let out = token("H-9", &c0, &c1);
    assert_refused(&out, "no unassigned token");
    // The fifth wrong try (max_failures=5 by default) locks him out.
    let out = token("H-9", &c0, &c1);
    assert_refused(&out, "too many failed attempts");
    // Locked: even the right codes of the free token are not looked at.
    let out = token("H-2", &c0, &c1);
    assert_refused(&out, "too many failed attempts");
    assert!(names_now(&env, bob.name()).is_empty());
    env.mfa_cmd(&["admin", "unlock", bob.name()])
        .real_time()
        .run()
        .assert_success();
    // Where self-service is off, tokens are greyed out like everything else.
    env.set_policy("self_service", "deny");
    let out = token("H-2", &c0, &c1);
    assert_refused(&out, "managed by your administrator");
    assert!(names_now(&env, bob.name()).is_empty());
}

/// The TOTP code of `secret` at unix time `at`, from oathtool.
fn code_at(secret: &str, at: i64) -> String {
    pam_mfa_tests::totp(secret, at)
}

#[test]
fn a_users_codes_on_the_command_line_are_refused_before_anything_else() {
    // Issue 16, finding 5: `mfa resync phone C1 C2` waited at its re-authentication prompt
    // with the codes in /proc/PID/cmdline, which every user can read.
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let phone = enroll_now(&env, alice.name(), "phone");
    let tablet = enroll_now(&env, alice.name(), "tablet");
    env.mfa_cmd(&[
        "--user",
        alice.name(),
        "enroll",
        "totp",
        "laptop",
        "--begin",
    ])
    .real_time()
    .run()
    .assert_success();
    // The phone's clock runs ten minutes fast: these two codes would resync it.
    let now = pam_mfa_tests::real_now();
    let (c1, c2) = (
        code_at(&phone.secret, now + 600),
        code_at(&phone.secret, now + 600 + pam_mfa_tests::STEP),
    );
    // A current code of the tablet stands ready on stdin, as a person would type it.
    let confirm = format!("{}\n", next_code(&tablet.secret));
    for args in [
        &["resync", "phone", &c1, &c2][..],
        &["enroll", "finish", "laptop", &c1, &c2][..],
        &["enroll", "token", "fob", "H-1", &c1, &c2][..],
    ] {
        let out = mfa.run_with_input(&ns, &alice, args, &[], &confirm);
        assert_refused(&out, "can be read by every user");
        assert_refused(&out, "leave them out to be asked for them, or give -");
        assert!(
            !out.stderr.contains("To confirm it is you"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(names_now(&env, alice.name()), ["phone", "tablet", "laptop"]);

    // The same codes from standard input: the confirming code (not used up above), then
    // the two codes, one per line.
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["resync", "phone", "-"],
        &[],
        &format!("{confirm}{c1}\n{c2}\n"),
    );
    assert_ok(&out);
    assert!(out.stdout.contains("is back in sync"), "{}", out.stdout);
    // Input that ends early changes nothing.
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "finish", "laptop", "-"],
        &[],
        "123456\n",
    );
    assert_refused(&out, "standard input ended before two codes were read");
    // (Root's scripts keep the positional form: `enroll_now` uses it.)
}

/// The command line of the one process running `bin`, as its words.
fn cmdline_of(bin: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let words: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        if words.first().map(Path::new) == Some(bin) {
            found.push(words);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "processes running {}: {found:?}",
        bin.display()
    );
    found.remove(0)
}

#[test]
fn a_prompted_resync_keeps_the_codes_off_the_command_line_and_the_screen() {
    // Issue 16, finding 5: left out, the codes are asked for with echo off.
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let bob = TestUser::new();
    let phone = enroll_now(&env, bob.name(), "phone");
    let tablet = enroll_now(&env, bob.name(), "tablet");
    let now = pam_mfa_tests::real_now();
    let confirm = next_code(&tablet.secret);
    let (c1, c2) = (
        code_at(&phone.secret, now + 600),
        code_at(&phone.secret, now + 600 + pam_mfa_tests::STEP),
    );

    let mut cmd = ns.command_as(&bob, &mfa.bin);
    cmd.args(["resync", "phone"]);
    let mut session = pam_mfa_tests::PtySession::spawn(cmd, "mfa resync phone on a terminal");
    session.expect("To confirm it is you");
    session.expect(": ");
    session.send_line(&confirm);
    session.expect("Enter the code the device shows: ");
    let waiting = cmdline_of(&mfa.bin);
    assert_eq!(waiting[1..], ["resync", "phone"], "{waiting:?}");
    session.send_line(&c1);
    session.expect("Enter the next code");
    assert_eq!(cmdline_of(&mfa.bin)[1..], ["resync", "phone"]);
    session.send_line(&c2);
    let done = session.finish();
    assert!(done.status.success(), "{}", done.transcript);
    assert!(
        done.transcript.contains("is back in sync"),
        "{}",
        done.transcript
    );
    // Echo was off: no code typed shows on the terminal.
    for code in [&confirm, &c1, &c2] {
        assert!(
            !done.transcript.contains(code.as_str()),
            "{}",
            done.transcript
        );
    }
}

#[test]
fn a_recovery_code_gets_a_person_back_in_fully() {
    // Issue 16, finding 7: a user who logged in with a recovery code was told to register
    // a new device, but `mfa` refused recovery codes at its re-authentication prompt.
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    env.write_service(&[]);
    // Three logins and changes follow within a few real seconds, each using up a step of
    // the new phone: a window of 2 accepts the third without waiting for the clock.
    env.set_policy("window", "2");
    let lost = enroll_now(&env, alice.name(), "phone");
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["recovery", "generate"],
        &[],
        &format!("{}\n", next_code(&lost.secret)),
    );
    assert_ok(&out);
    let codes = pam_mfa_tests::recovery::codes_in(&out.stdout);
    assert_eq!(codes.len(), 10, "{}", out.stdout);
    let login = |code: &str| env.pam(alice.name()).answer(code).real_time().run();

    // The phone is lost: from here on its secret is never used again.
    let out = login(&codes[0]);
    out.assert_success();
    assert!(
        out.infos()
            .iter()
            .any(|i| i.contains("register a new device")),
        "{}",
        out.transcript()
    );
    // A new phone, confirmed with a second recovery code, which the prompt offers.
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "totp", "new-phone", "--begin", "--json"],
        &[],
        &format!("{}\n", codes[1]),
    );
    assert_ok(&out);
    assert!(out.stderr.contains("or a recovery code"), "{}", out.stderr);
    assert!(
        out.stderr.contains("8 recovery codes left"),
        "{}",
        out.stderr
    );
    let phone = pam_mfa_tests::Enrolled::from_begin_json(
        serde_json::from_str(&out.stdout).expect("--begin --json prints JSON"),
    );
    let t0 = pam_mfa_tests::real_now();
    let step = pam_mfa_tests::STEP;
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "finish", "new-phone", "-"],
        &[],
        &format!(
            "{}\n{}\n",
            code_at(&phone.secret, t0 - step),
            code_at(&phone.secret, t0)
        ),
    );
    assert_ok(&out);
    // The lost phone goes, confirmed with the new one.
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["remove", "phone", "--yes"],
        &[],
        &format!("{}\n", code_at(&phone.secret, t0 + step)),
    );
    assert_ok(&out);
    assert_eq!(names_now(&env, alice.name()), ["new-phone"]);
    // The new phone logs in; the used recovery codes never work again, here or in `mfa`.
    login(&code_at(&phone.secret, t0 + 2 * step)).assert_success();
    for used in &codes[..2] {
        assert!(!login(used).succeeded(), "{used} worked twice");
    }
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["rename", "new-phone", "pixel"],
        &[],
        &format!("{}\n", codes[1]),
    );
    assert_refused(&out, "not a valid recovery code");
    assert_eq!(names_now(&env, alice.name()), ["new-phone"]);
}

/// How many failed attempts the store holds against `user`.
fn failures(env: &TestEnv, user: &str) -> i64 {
    env.failures(user)
}

// Issue 16, finding 4: at the device limit, `mfa enroll token` run by a user said
// "already has 1 active devices" for a serial in the inventory and the generic answer for
// any other, and that answer was not counted. Now every refusal is the same, byte for
// byte, whatever the serial and the codes, and each one counts toward the lock-out.
#[test]
fn a_user_at_the_device_limit_cannot_tell_serials_apart() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let root = |args: &[&str]| {
        env.mfa_cmd(args).real_time().run().assert_success();
    };
    let seeds = env.path("seeds.csv");
    std::fs::write(
        &seeds,
        "H-1,3132333435363738393031323334353637383930,hotp\n\
         H-2,3132333435363738393031323334353637383930,hotp\n",
    )
    .expect("write the seed file");
    root(&["admin", "tokens", "import", seeds.to_str().expect("path")]);
    env.set_policy("max_devices", "1");
    // Her one device is token H-1 (event-based: each proof of it below takes a press, no
    // wait for a new time step).
    let (c0, c1) = (rfc4226_hotp(0), rfc4226_hotp(1));
    root(&[
        "--user",
        alice.name(),
        "enroll",
        "token",
        "fob",
        "H-1",
        &c0,
        &c1,
    ]);
    let mut press = 2;
    let mut try_token = |serial: &str, a: &str, b: &str| {
        root(&["admin", "unlock", alice.name()]);
        // The proof of her device, then the two codes (from standard input: a user's codes
        // never go on the command line).
        let input = format!("{}\n{a}\n{b}\n", rfc4226_hotp(press));
        press += 1;
        let out = mfa.run_with_input(
            &ns,
            &alice,
            &["enroll", "token", "key", serial, "-"],
            &[],
            &input,
        );
        assert!(
            failures(&env, alice.name()) >= 1,
            "{serial}: the refusal was not counted: {}",
            out.stderr
        );
        out
    };
    let known_wrong = try_token("H-2", &c0, &rfc4226_hotp(5));
    let known_right = try_token("H-2", &c0, &c1);
    let assigned = try_token("H-1", &rfc4226_hotp(7), &rfc4226_hotp(8));
    let unknown = try_token("NO-SUCH-1", &c0, &c1);
    assert_refused(&known_wrong, "the token was not registered");
    for out in [&known_right, &assigned, &unknown] {
        assert_eq!(out.status.code(), known_wrong.status.code());
        assert_eq!(out.stderr, known_wrong.stderr);
        assert_eq!(out.stdout, known_wrong.stdout);
    }
    assert!(!known_wrong.stderr.contains("active devices"));
    assert_eq!(names_now(&env, alice.name()), ["fob"]);

    // Proving her token clears her failures as a login does, so here the lock-out is
    // shown at max_failures 1: the next try is the one that locks her out, and then even
    // the proof of her own device is refused.
    env.set_policy("max_failures", "1");
    let out = try_token("NO-SUCH-2", &c0, &c1);
    assert_refused(&out, "too many failed attempts");
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "token", "key", "H-2", "-"],
        &[],
        &format!("{}\n{c0}\n{c1}\n", rfc4226_hotp(press)),
    );
    assert_refused(&out, "too many failed attempts");
    assert_eq!(names_now(&env, alice.name()), ["fob"]);
}

/// Issue 16, finding 3: any local user could grow the root-owned store without limit
/// (500 `mfa enroll totp nI --begin` in 3.8 s). A user may now have three unfinished
/// registrations at once and begin ten an hour; root is not rate-limited.
#[test]
fn a_user_cannot_grow_the_store_with_registrations() {
    // The hour is passed by moving the local store's audit rows back; the fleet's limits,
    // counted over every host, are tested in fleet_selfservice.rs the same way.
    let env = TestEnv::with_backend(Backend::Local);
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    let begin = |name: &str| {
        mfa.run_as(
            &ns,
            &alice,
            &["enroll", "totp", name, "--begin", "--json"],
            &[],
        )
    };
    let first = begin("a");
    assert_ok(&first);
    let secret_a = serde_json::from_str::<Value>(&first.stdout).expect("JSON")["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    assert_ok(&begin("b"));
    assert_ok(&begin("c"));
    // A fourth unfinished registration is refused, saying how to go on.
    let out = begin("d");
    assert_refused(&out, "3 unfinished registrations");
    assert_refused(&out, "mfa enroll finish");
    assert_eq!(names_now(&env, alice.name()), ["a", "b", "c"]);

    // Starting "c" over replaces it, but counts as begun: 3 + 7 = 10 in this hour.
    for _ in 0..7 {
        assert_ok(&begin("c"));
    }
    let out = begin("c");
    assert_refused(&out, "began 10 registrations in the last hour");
    assert_refused(&out, "try again after");
    // Root is not rate-limited (the cap still holds for root: "c" is started over).
    env.mfa_cmd(&["--user", alice.name(), "enroll", "totp", "c", "--begin"])
        .real_time()
        .run()
        .assert_success();
    // An hour later (her begins moved an hour into the past) she may begin again.
    let store = rusqlite::Connection::open(env.db()).expect("open the store");
    let moved = store
        .execute(
            "UPDATE audit SET at = at - 3600 WHERE user = ?1 AND action = 'begin'",
            [alice.name()],
        )
        .expect("move the audit rows");
    assert!(moved >= 11, "{moved} begin rows");
    drop(store);
    assert_ok(&begin("c"));

    // Finishing a registration frees its slot (the next change needs a code of "a").
    let now = real_now();
    let (c1, c2) = (totp(&secret_a, now - STEP), totp(&secret_a, now));
    assert_ok(&mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "finish", "a", "-"],
        &[],
        &format!("{c1}\n{c2}\n"),
    ));
    let out = mfa.run_with_input(
        &ns,
        &alice,
        &["enroll", "totp", "d", "--begin"],
        &[],
        &format!("{}\n", next_code(&secret_a)),
    );
    assert_ok(&out);
    assert_eq!(names_now(&env, alice.name()), ["a", "b", "c", "d"]);
}

/// Issue 16, finding 3 (as the second review found): not only registrations grow the
/// store. A user with no device, so asked for no proof, looped `mfa recovery generate`
/// (one audit row a run, kept for a year); now sixty changes an hour is the most.
#[test]
fn a_user_cannot_grow_the_store_with_any_change() {
    // The hour is passed by moving the local store's audit rows back; the fleet's limits,
    // counted over every host, are tested in fleet_selfservice.rs the same way.
    let env = TestEnv::with_backend(Backend::Local);
    let ns = Namespace::with_daemon(&env);
    let mfa = UserMfa::install();
    let alice = TestUser::new();
    for run in 0..60 {
        let out = mfa.run_as(&ns, &alice, &["recovery", "generate"], &[]);
        assert!(out.status.success(), "run {run}: {}", out.stderr);
    }
    let rows = |env: &TestEnv| -> i64 {
        let store = rusqlite::Connection::open(env.db()).expect("open the store");
        store
            .query_row(
                "SELECT COUNT(*) FROM audit WHERE user = ?1",
                [alice.name()],
                |r| r.get(0),
            )
            .expect("count audit rows")
    };
    assert_eq!(rows(&env), 60);
    for change in [
        &["recovery", "generate"][..],
        &["enroll", "totp", "x", "--begin"],
    ] {
        let out = mfa.run_as(&ns, &alice, change, &[]);
        assert_refused(&out, "changes to their devices in the last hour");
        assert_refused(&out, "try again after");
    }
    assert_eq!(rows(&env), 60, "a refused change wrote a row");
    // Root is not limited.
    env.mfa_cmd(&["--user", alice.name(), "recovery", "generate"])
        .real_time()
        .run()
        .assert_success();
}
