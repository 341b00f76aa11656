//! Codes for the real clock.
//!
//! The PAM-level tests run every product process under libfaketime. Real logins cannot:
//! sudo and su are setuid, and the dynamic loader ignores `LD_PRELOAD` for them, so the
//! module inside them sees the real time. These helpers register devices and compute codes
//! for the real clock, still with `oathtool`.
//!
//! A code is accepted at most once per device and only for a step after the last accepted
//! one. Registration uses up the current step (its two codes are those of the previous
//! and the current step), so a login right after it answers with the code of the *next*
//! step, which the default window of ±1 step accepts whether or not the clock crossed a
//! step boundary in between. The same device cannot log in twice within one step, so a
//! test that needs several successful logins registers one device per login rather than
//! waiting for the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::{STEP, totp, wrong_code};
use crate::env::{Enrolled, TestEnv};

/// The real unix time.
pub fn real_now() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(d.as_secs()).expect("the time fits in i64")
}

/// Registers an active TOTP device `name` for `user` with the real `mfa` at the real
/// time: `--begin --json`, then `finish` with the codes of the previous and the current
/// step.
pub fn enroll_now(env: &TestEnv, user: &str, name: &str) -> Enrolled {
    let out = env
        .mfa_cmd(&["--user", user, "enroll", "totp", name, "--begin", "--json"])
        .real_time()
        .run();
    out.assert_success();
    let dev = Enrolled::from_begin_json(out.json());
    let now = real_now();
    let (c1, c2) = (totp(&dev.secret, now - STEP), totp(&dev.secret, now));
    env.mfa_cmd(&["--user", user, "enroll", "finish", name, &c1, &c2])
        .real_time()
        .run()
        .assert_success();
    dev
}

/// The code of the step after the current real one: what a login right after
/// [`enroll_now`] (or after this device's last login, if that was a step ago) types.
pub fn next_code(secret: &str) -> String {
    totp(secret, real_now() + STEP)
}

/// A well-formed code that is wrong for `secret` at every step within ±3 of now.
pub fn wrong_code_now(secret: &str) -> String {
    wrong_code(secret, real_now(), 3)
}

/// A well-formed code that is wrong for every one of `secrets` (a user's devices: a login
/// checks them all) at every step within ±3 of now.
pub fn wrong_code_now_for_all(secrets: &[&str]) -> String {
    crate::clock::wrong_code_for_all(secrets, real_now(), 3)
}
