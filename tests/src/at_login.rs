//! Registration at login (policy `no_device enroll`, a line with `enroll_at_login`) after a
//! real password module: pam_wrapper's `pam_matrix.so`, reading a test password file.
//!
//! Shared by one host (`enroll_at_login.rs`) and a fleet (`fleet_selfservice.rs`), whose
//! dialogues are the same; only where the policy is set and which clock the two codes
//! follow differ, and those stay with the callers.

use crate::{PamOutcome, PamRun, SERVICE, TestEnv, TestUser, pam_wrapper_module};

/// The test user's password in the password file of [`password_then_mfa`].
pub const PASSWORD: &str = "correct horse";

/// The service `auth CONTROL pam_matrix.so` (the password [`PASSWORD`] of `user`) then
/// `auth required pam_mfa.so ARGS…`. The policy is the caller's to set.
pub fn password_then_mfa(env: &TestEnv, user: &TestUser, control: &str, args: &[&str]) {
    let passdb = env.path("passdb");
    std::fs::write(&passdb, format!("{}:{PASSWORD}:{SERVICE}\n", user.name()))
        .expect("write the password file");
    env.write_service_lines(&[
        format!(
            "auth {control} {} passdb={}",
            pam_wrapper_module("pam_matrix.so").display(),
            passdb.display()
        ),
        env.module_line("required", args),
    ]);
}

/// Runs `run` (whose answers go to the password and the device name) through the
/// registration dialogue: asks for the secret, reads it, and types the two consecutive
/// codes `codes` makes of it (from the test's clock, fake or real). The outcome and the
/// secret.
pub fn register_at_login(
    run: PamRun<'_>,
    codes: impl FnOnce(&str) -> (String, String),
) -> (PamOutcome, String) {
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
    let (c1, c2) = codes(&secret);
    child.write_stdin(format!("{c1}\n{c2}\n").as_bytes());
    child.close_stdin();
    (PamOutcome::from_finished(child.wait()), secret)
}

/// Asserts a login that registered the device `name` and succeeded as a whole: the
/// application's `pam_setcred` succeeded (which keeps the device), the module logged the
/// registration and told the person.
#[track_caller]
pub fn assert_registered_at_login(out: &PamOutcome, name: &str) {
    out.assert_success();
    assert_eq!(out.setcred.as_deref(), Some("PAM_SUCCESS"));
    out.assert_logged(&[&format!("registered device \"{name}\" at login")]);
    let told = format!("Device \"{name}\" is registered.");
    assert!(out.infos().contains(&told.as_str()), "{}", out.transcript());
}
