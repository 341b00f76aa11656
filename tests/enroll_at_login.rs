//! Registration at login (policy `no_device enroll`) through the real libpam under
//! pam_wrapper: offered only on a line with `enroll_at_login`, and the device is kept only
//! when the whole login succeeds, i.e. when the application calls `pam_setcred` (issue 16,
//! finding 2). The first factor is pam_wrapper's `pam_matrix.so`, a real password module
//! reading a test password file.

use pam_mfa_tests::PamCode;
use pam_mfa_tests::at_login::{self, PASSWORD, assert_registered_at_login};
use pam_mfa_tests::backend::Backend;
use pam_mfa_tests::{PamOutcome, PamRun, TestEnv, TestUser};

/// The service `auth CONTROL pam_matrix.so` (the password) then
/// `auth required pam_mfa.so ARGS…`, and the policy `no_device enroll`.
fn password_then_mfa(env: &TestEnv, user: &TestUser, control: &str, args: &[&str]) {
    at_login::password_then_mfa(env, user, control, args);
    env.set_policy("no_device", "enroll");
}

/// Runs `run` (whose answers go to the password and the device name) through the
/// registration dialogue, asking for the secret and typing two consecutive codes of it
/// (the previous and the current step of the test's fake clock). The outcome and the
/// secret.
fn register_at_login(env: &TestEnv, run: PamRun<'_>) -> (PamOutcome, String) {
    at_login::register_at_login(run, |secret| {
        (env.code_at_step(secret, -1), env.code(secret))
    })
}

// Issue 16, finding 2: under `no_device enroll`, a line without `enroll_at_login` treats a
// user without a device as `no_device deny`: prompted for a code and refused, never
// offered a registration, and syslog says why.
#[test]
fn a_line_without_enroll_at_login_does_not_offer_registration() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    env.set_policy("no_device", "enroll");
    let out = env.pam(user.name()).answer("phone").answer("").run();
    assert!(!out.succeeded(), "{}", out.transcript());
    out.assert_prompted("Verification code: ", false);
    assert_eq!(out.prompts().len(), 1, "{}", out.transcript());
    assert!(
        !out.stdout.contains("Name for the new device"),
        "{}",
        out.transcript()
    );
    out.assert_logged(&["this line cannot register a device", "enroll_at_login"]);
    assert!(env.list(user.name()).is_empty());
}

// Issue 16, finding 2: the attack. A wrong password on a `required` line does not stop
// libpam from running pam_mfa's registration dialogue, but the device registered there is
// not kept: the application never calls pam_setcred after a failed login, the device never
// becomes active, `mfa enroll finish` cannot finish it, and the victim registers their own.
#[test]
fn a_device_registered_during_a_failed_login_is_not_kept() {
    let env = TestEnv::new();
    let victim = TestUser::new();
    password_then_mfa(&env, &victim, "required", &["enroll_at_login"]);
    let attempt = env
        .pam(victim.name())
        .answer("wrong password")
        .answer("phone");
    let (out, secret) = register_at_login(&env, attempt);
    assert_eq!(out.result, PamCode::AuthErr, "{}", out.transcript());
    assert_eq!(out.setcred, None);
    out.assert_logged(&["codes of device \"phone\" accepted at login"]);
    assert_eq!(
        env.names_in_state(victim.name(), "active"),
        Vec::<String>::new()
    );

    // Nobody can finish the held registration with the attacker's codes.
    env.advance_steps(2);
    let (c1, c2) = (env.code_at_step(&secret, -1), env.code(&secret));
    env.finish(victim.name(), "phone", &c1, &c2)
        .assert_error(&["no pending registration"]);
    assert_eq!(
        env.names_in_state(victim.name(), "active"),
        Vec::<String>::new()
    );

    // The victim registers their own device (under the same name, too), and only it
    // logs in.
    env.advance_steps(1);
    let own = env.enroll(victim.name(), "phone");
    assert_eq!(env.names_in_state(victim.name(), "active"), vec!["phone"]);
    env.advance_steps(1);
    env.pam(victim.name())
        .answer(PASSWORD)
        .answer(&env.code(&secret))
        .run()
        .assert_result(PamCode::AuthErr);
    env.pam(victim.name())
        .answer(PASSWORD)
        .answer(&env.code(&own.secret))
        .run()
        .assert_success();
}

// Issue 16, finding 2: after a right password the registration is kept, but only once the
// application calls pam_setcred (what sshd, sudo, su and login do after a whole stack
// succeeded); an application that stops after pam_authenticate leaves it pending.
#[test]
fn a_device_registered_at_login_is_active_only_after_setcred() {
    let env = TestEnv::new();
    let user = TestUser::new();
    password_then_mfa(&env, &user, "requisite", &["enroll_at_login"]);

    let run = env.pam(user.name()).answer(PASSWORD).answer("phone");
    let (out, _) = register_at_login(&env, run.no_setcred());
    out.assert_success();
    assert_eq!(out.setcred, None);
    assert_eq!(
        env.names_in_state(user.name(), "active"),
        Vec::<String>::new()
    );
    assert_eq!(env.names_in_state(user.name(), "pending"), vec!["phone"]);

    // The same user again, this time with pam_setcred: the new registration replaces the
    // unfinished one and becomes active.
    env.advance_steps(2);
    let run = env.pam(user.name()).answer(PASSWORD).answer("phone");
    let (out, secret) = register_at_login(&env, run);
    assert_registered_at_login(&out, "phone");
    assert_eq!(env.names_in_state(user.name(), "active"), vec!["phone"]);
    // (A fleet account's audit rows are in the fleet's database, which `mfa admin audit`
    // does not read yet: tests/fleet_selfservice.rs checks them there.)
    if env.backend() == Backend::Local {
        let audit = env.mfa(&["admin", "audit", "--user", user.name(), "--json"]);
        assert!(audit.stdout.contains("\"activate\""), "{}", audit.stdout);
    }

    // From now on the device is asked for, like any other.
    env.advance_steps(1);
    env.pam(user.name())
        .answer(PASSWORD)
        .answer(&env.code(&secret))
        .run()
        .assert_success();
}
