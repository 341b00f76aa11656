//! Self-service for accounts in the fleet database as on one host (issue 19): registration
//! at login (`no_device enroll`, a line with `enroll_at_login`), the hourly limits on a
//! person's changes (counted over every host), and remembered logins (per host). Two
//! hosts on one real PostgreSQL server, driven through the real `pam_mfa.so` and `mfa`;
//! the database's clock is the real one, so codes are the real time's.

use pam_mfa_tests::fleet::{DB, Host, enroll, fleet_database, with_time_left_in_step};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::{
    PamCode, PamOutcome, PamRun, SERVICE, TestUser, next_code, pam_wrapper_module, real_now,
    totp,
};

const PASSWORD: &str = "correct horse";

/// The policy `no_device enroll`, set in the database (one policy for the fleet).
fn enroll_at_login_policy(pg: &Postgres) {
    pg.psql(
        DB,
        "SELECT pam_mfa_fleet.set_policy('no_device', 'enroll')",
    );
}

/// Host `host`'s service: `auth CONTROL pam_matrix.so` (the password) then
/// `auth required pam_mfa.so enroll_at_login`.
fn password_then_mfa(host: &Host, user: &TestUser, control: &str) {
    let env = &host.env;
    let passdb = env.path("passdb");
    std::fs::write(&passdb, format!("{}:{PASSWORD}:{SERVICE}\n", user.name()))
        .expect("write the password file");
    env.write_service_lines(&[
        format!(
            "auth {control} {} passdb={}",
            pam_wrapper_module("pam_matrix.so").display(),
            passdb.display()
        ),
        env.module_line("required", &["enroll_at_login"]),
    ]);
}

/// Runs `run` (whose answers go to the password and the device name) through the
/// registration dialogue, asking for the secret and typing the codes of the real previous
/// and current steps. The outcome and the secret.
fn register_at_login(run: PamRun<'_>) -> (PamOutcome, String) {
    with_time_left_in_step(8);
    let mut child = run.answer("secret").spawn_interactive();
    assert!(
        child.wait_for("the secret key", |out, _| out.contains("Secret key: ")),
        "{}",
        child.stdout()
    );
    let stdout = child.stdout();
    let secret: String = stdout
        .split("Secret key: ")
        .nth(1)
        .and_then(|rest| rest.split("\\n").next())
        .expect("the secret line")
        .replace(' ', "");
    let now = real_now();
    let (c1, c2) = (totp(&secret, now - 30), totp(&secret, now));
    child.write_stdin(format!("{c1}\n{c2}\n").as_bytes());
    child.close_stdin();
    (PamOutcome::from_finished(child.wait()), secret)
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
    out.assert_success();
    assert_eq!(out.setcred.as_deref(), Some("PAM_SUCCESS"));
    out.assert_logged(&["registered device \"phone\" at login"]);
    assert!(
        out.infos().contains(&"Device \"phone\" is registered."),
        "{}",
        out.transcript()
    );
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
        audit.contains(&format!("{} finish at login", a.role)),
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
    let attempt = a.env.pam(victim.name()).answer("wrong password").answer("phone");
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
