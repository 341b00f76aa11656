//! Self-service for accounts in the fleet database as on one host (issue 19): registration
//! at login (`no_device enroll`, a line with `enroll_at_login`), the hourly limits on a
//! person's changes (counted over every host), and remembered logins (per host). Two
//! hosts on one real PostgreSQL server, driven through the real `pam_mfa.so` and `mfa`;
//! the database's clock is the real one, so codes are the real time's.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use pam_mfa_tests::accounts::as_user;
use pam_mfa_tests::at_login::{self, PASSWORD, assert_registered_at_login};
use pam_mfa_tests::fleet::{DB, Host, enroll, fleet_database, with_time_left_in_step};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::{
    PamCode, PamOutcome, PamRun, TestUser, mfa_bin, next_code, real_now, totp,
    wrong_code_now_for_all,
};

/// The policy `no_device enroll`, set in the database (one policy for the fleet).
fn enroll_at_login_policy(pg: &Postgres) {
    pg.psql(DB, "SELECT pam_mfa_fleet.set_policy('no_device', 'enroll')");
}

/// Host `host`'s service: `auth CONTROL pam_matrix.so` (the password) then
/// `auth required pam_mfa.so enroll_at_login`.
fn password_then_mfa(host: &Host, user: &TestUser, control: &str) {
    at_login::password_then_mfa(&host.env, user, control, &["enroll_at_login"]);
}

/// Runs `run` (whose answers go to the password and the device name) through the
/// registration dialogue, asking for the secret and typing the codes of the real previous
/// and current steps. The outcome and the secret.
fn register_at_login(run: PamRun<'_>) -> (PamOutcome, String) {
    with_time_left_in_step(8);
    at_login::register_at_login(run, |secret| {
        let now = real_now();
        (totp(secret, now - 30), totp(secret, now))
    })
}

fn names_in_state(host: &Host, user: &TestUser, state: &str) -> Vec<String> {
    host.env.names_in_state(user.name(), state)
}

// A device registered at login on host A is the fleet's: once A's login succeeds as a
// whole (pam_setcred) it is active, and host B asks for it; its registration codes are
// used up fleet-wide.
#[test]
fn a_device_registered_at_login_on_one_host_logs_in_on_another() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    enroll_at_login_policy(&pg);
    let user = TestUser::new();
    password_then_mfa(&a, &user, "requisite");
    b.env.write_service(&["enroll_at_login"]);

    // Without pam_setcred it stays pending, on every host.
    let run = a.env.pam(user.name()).answer(PASSWORD).answer("phone");
    let (out, _) = register_at_login(run.no_setcred());
    out.assert_success();
    assert_eq!(out.setcred, None);
    assert_eq!(names_in_state(&b, &user, "active"), Vec::<String>::new());
    assert_eq!(names_in_state(&b, &user, "pending"), vec!["phone"]);

    // Again, with pam_setcred: the new registration replaces the unfinished one.
    let run = a.env.pam(user.name()).answer(PASSWORD).answer("phone");
    let (out, secret) = register_at_login(run);
    assert_registered_at_login(&out, "phone");
    assert_eq!(names_in_state(&b, &user, "active"), vec!["phone"]);
    let audit = pg.psql(
        DB,
        &format!(
            "SELECT host || ' ' || action || ' ' || coalesce(detail, '') \
             FROM pam_mfa_fleet.audit WHERE user_name = '{}' ORDER BY id",
            user.name()
        ),
    );
    assert!(
        audit.contains(&format!("{} activate totp", a.role)),
        "{audit}"
    );

    // The registration's current code is used up on B too; the next one logs in there.
    let used = totp(&secret, real_now());
    b.env
        .login(user.name(), &used)
        .assert_result(PamCode::AuthErr);
    b.env
        .login(user.name(), &next_code(&secret))
        .assert_success();
}

// Issue 16, finding 2, for a fleet account: a wrong password on a `required` line does not
// stop the registration dialogue, but the device is never activated, nobody can finish it
// with `mfa enroll finish` on any host, and the victim registers their own.
#[test]
fn a_device_registered_during_a_failed_login_is_not_kept_in_the_fleet() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    enroll_at_login_policy(&pg);
    let victim = TestUser::new();
    password_then_mfa(&a, &victim, "required");
    let attempt = a
        .env
        .pam(victim.name())
        .answer("wrong password")
        .answer("phone");
    let (out, secret) = register_at_login(attempt);
    assert_eq!(out.result, PamCode::AuthErr, "{}", out.transcript());
    assert_eq!(out.setcred, None);
    out.assert_logged(&["codes of device \"phone\" accepted at login"]);
    assert_eq!(names_in_state(&b, &victim, "active"), Vec::<String>::new());

    // Not finished by `mfa enroll finish`, on either host.
    with_time_left_in_step(5);
    let now = real_now() + 30;
    let (c1, c2) = (totp(&secret, now - 30), totp(&secret, now));
    for host in [&a, &b] {
        let out = host.env.finish(victim.name(), "phone", &c1, &c2);
        assert_ne!(out.code, Some(0), "{}", out.stdout);
    }
    assert_eq!(names_in_state(&b, &victim, "active"), Vec::<String>::new());

    // The victim's own registration, of the same name, through B; only it logs in.
    let own = enroll(&b, victim.name(), "phone");
    assert_eq!(names_in_state(&a, &victim, "active"), vec!["phone"]);
    b.env
        .login(victim.name(), &next_code(&secret))
        .assert_result(PamCode::AuthErr);
    b.env
        .login(victim.name(), &next_code(&own))
        .assert_success();
}

/// `mfa`, copied where every user can run it (no setuid bit), run as a test user against
/// a host's socket: the daemon knows the caller from the socket's peer credentials.
struct UserMfa {
    _dir: tempfile::TempDir,
    bin: PathBuf,
}

impl UserMfa {
    fn install(hosts: &[&Host]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let bin = dir.path().join("mfa");
        std::fs::copy(mfa_bin(), &bin).expect("copy mfa");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // The hosts' sockets (0666) reachable by the test users; their stores stay in
        // their own 0700 directories.
        for host in hosts {
            host.env.socket();
            std::fs::set_permissions(host.env.root(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        Self { _dir: dir, bin }
    }

    /// `mfa --socket HOST'S-SOCKET ARGS…` as `user`.
    fn run(&self, host: &Host, user: &TestUser, args: &[&str]) -> Output {
        let prefix = as_user(user);
        let mut cmd = Command::new(&prefix[0]);
        cmd.args(&prefix[1..])
            .arg(&self.bin)
            .arg("--socket")
            .arg(host.env.socket())
            .args(args)
            .current_dir("/")
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        cmd.output().expect("run mfa")
    }
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(needle),
        "expected a refusal with {needle:?}: {stderr}"
    );
}

/// The audit rows of `user` in the fleet's database.
fn audit_rows(pg: &Postgres, user: &TestUser) -> i64 {
    pg.psql(
        DB,
        &format!(
            "SELECT count(*) FROM pam_mfa_fleet.audit WHERE user_name = '{}'",
            user.name()
        ),
    )
    .trim()
    .parse()
    .expect("a count")
}

// Issue 16, finding 3, for a fleet account: ten registrations begun an hour, counted over
// every host (five on A and five on B leave none for either), root not limited, room
// again once they are an hour old.
#[test]
fn registrations_begun_are_limited_over_the_whole_fleet() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let mfa = UserMfa::install(&[&a, &b]);
    let alice = TestUser::new();
    // Starting "c" over replaces it (no more than one unfinished), but counts as begun.
    for run in 0..10 {
        let host = if run % 2 == 0 { &a } else { &b };
        assert_ok(&mfa.run(host, &alice, &["enroll", "totp", "c", "--begin", "--json"]));
    }
    for host in [&a, &b] {
        let out = mfa.run(host, &alice, &["enroll", "totp", "c", "--begin"]);
        assert_refused(&out, "began 10 registrations in the last hour");
        assert_refused(&out, "try again after");
    }
    // Root is not rate-limited.
    a.env
        .mfa_cmd(&["--user", alice.name(), "enroll", "totp", "c", "--begin"])
        .real_time()
        .run()
        .assert_success();
    // An hour later (her begins moved an hour into the past) she may begin again.
    pg.psql(
        DB,
        &format!(
            "UPDATE pam_mfa_fleet.audit SET at = at - 3600 \
             WHERE user_name = '{}' AND action = 'begin'",
            alice.name()
        ),
    );
    assert_ok(&mfa.run(&b, &alice, &["enroll", "totp", "c", "--begin"]));
}

// Issue 16, finding 3 (the second review), for a fleet account: sixty changes an hour by a
// person's own commands, whatever they are and on whichever host; a refused change
// writes nothing; root is not limited.
#[test]
fn changes_are_limited_over_the_whole_fleet() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let mfa = UserMfa::install(&[&a, &b]);
    let alice = TestUser::new();
    for run in 0..60 {
        let host = if run % 2 == 0 { &a } else { &b };
        let out = mfa.run(host, &alice, &["recovery", "generate"]);
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(audit_rows(&pg, &alice), 60);
    for host in [&a, &b] {
        for change in [
            &["recovery", "generate"][..],
            &["enroll", "totp", "x", "--begin"],
        ] {
            let out = mfa.run(host, &alice, change);
            assert_refused(&out, "changes to their devices in the last hour");
            assert_refused(&out, "try again after");
        }
    }
    assert_eq!(audit_rows(&pg, &alice), 60, "a refused change wrote a row");
    // Root is not limited.
    b.env
        .mfa_cmd(&["--user", alice.name(), "recovery", "generate"])
        .real_time()
        .run()
        .assert_success();
}

const HOST: &str = "192.0.2.7";

/// A login from `rhost` that answers no prompt: it succeeds only when nothing is asked.
fn login_without_answer(host: &Host, user: &TestUser, rhost: &str) -> PamOutcome {
    host.env.pam(user.name()).rhost(rhost).run()
}

#[track_caller]
fn assert_let_in_without_prompt(out: &PamOutcome) {
    out.assert_success();
    assert!(out.prompts().is_empty(), "{}", out.transcript());
    out.assert_logged(&["let through: remembered login"]);
}

#[track_caller]
fn assert_asked(out: &PamOutcome, after: &str) {
    assert_eq!(
        out.prompts().len(),
        1,
        "after {after}: {}",
        out.transcript()
    );
    assert_ne!(out.result, PamCode::Success, "{}", out.transcript());
}

/// A login on `host` from HOST with the next code of a device registered for it now, so
/// that each login has a code no other login used.
/// Returns the device's secret.
fn login_with_a_new_device(host: &Host, via: &Host, user: &TestUser, name: &str) -> String {
    let secret = enroll(via, user.name(), name);
    host.env
        .pam(user.name())
        .rhost(HOST)
        .answer(&next_code(&secret))
        .run()
        .assert_success();
    secret
}

// Remembered logins of a fleet account are the host's own (this host remembers the
// logins it saw, by its own policy), but a device removal, `mfa forget` or an unlock on
// any host ends them on every host.
#[test]
fn a_host_remembers_its_own_logins_and_the_fleet_ends_them() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    for host in [&a, &b] {
        host.env
            .mfa(&["admin", "policy", "set", "remember_seconds", "3600"])
            .assert_success();
    }
    let alice = TestUser::new();
    let phone = login_with_a_new_device(&a, &a, &alice, "phone");

    // A lets her in again without a code; B never saw that login and asks.
    assert_let_in_without_prompt(&login_without_answer(&a, &alice, HOST));
    assert_asked(&login_without_answer(&b, &alice, HOST), "a login on A only");
    let listed = a.env.mfa(&["--user", alice.name(), "list"]);
    listed.assert_success();
    assert!(
        listed.stdout.contains("Remembered logins") && listed.stdout.contains(HOST),
        "{listed:?}"
    );
    let listed = b.env.mfa(&["--user", alice.name(), "list"]);
    listed.assert_success();
    assert!(!listed.stdout.contains(HOST), "{listed:?}");

    // A device removed through B ends A's remembered login.
    enroll(&b, alice.name(), "spare");
    b.env
        .mfa(&["--user", alice.name(), "remove", "spare", "--yes"])
        .assert_success();
    assert_asked(&login_without_answer(&a, &alice, HOST), "a removal on B");
    let listed = a.env.mfa(&["--user", alice.name(), "list"]);
    assert!(!listed.stdout.contains(HOST), "{listed:?}");

    // `mfa forget` on B ends it too (B itself remembered nothing).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let tablet = login_with_a_new_device(&a, &b, &alice, "tablet");
    assert_let_in_without_prompt(&login_without_answer(&a, &alice, HOST));
    let out = b.env.mfa(&["--user", alice.name(), "forget"]);
    out.assert_success();
    assert_asked(&login_without_answer(&a, &alice, HOST), "mfa forget on B");

    // And `mfa admin unlock` on B.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let laptop = login_with_a_new_device(&a, &b, &alice, "laptop");
    assert_let_in_without_prompt(&login_without_answer(&a, &alice, HOST));
    b.env
        .mfa(&["admin", "unlock", alice.name()])
        .assert_success();
    assert_asked(
        &login_without_answer(&a, &alice, HOST),
        "mfa admin unlock on B",
    );

    // And a lock-out started on B (wrong codes from another address): A's remembered
    // login is gone, and stays gone once the lock-out is over.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let pager = login_with_a_new_device(&a, &b, &alice, "pager");
    assert_let_in_without_prompt(&login_without_answer(&a, &alice, HOST));
    b.env.write_service(&["max_failures=2", "lockout=2"]);
    for _ in 0..2 {
        b.env
            .pam(alice.name())
            .rhost("198.51.100.9")
            .answer(&wrong_code_now_for_all(&[&phone, &tablet, &laptop, &pager]))
            .run()
            .assert_result(PamCode::AuthErr);
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_asked(&login_without_answer(&a, &alice, HOST), "a lock-out on B");

    // On A itself, `mfa forget` says how many A forgot.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    login_with_a_new_device(&a, &b, &alice, "watch");
    let out = a.env.mfa(&["--user", alice.name(), "forget"]);
    out.assert_success();
    assert!(out.stdout.contains("Forgot 1 remembered login"), "{out:?}");
    assert_asked(&login_without_answer(&a, &alice, HOST), "mfa forget on A");
}
