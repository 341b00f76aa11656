//! FIDO2 security keys played by the software authenticator that the workspace's debug
//! build contains (feature `soft-fido2`, selected by [`SOFT_FIDO2_VAR`]): registered with
//! the real `mfa enroll fido2` and touched at logins through the real libpam.
//!
//! Shared by the keys of one host (`fido2.rs`) and those of a fleet (`fleet_keys.rs`), so
//! that both edit the authenticator's state file, plug it in and read its touch cue the
//! same way. (`mfad::SoftKey` is the same authenticator for tests that speak to `mfad`
//! directly, without a [`TestEnv`].)

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{MfaOutput, PamCode, PamOutcome, PamRun, TestEnv};

/// The variable naming the software authenticator's state file: the plugged-in key.
pub const SOFT_FIDO2_VAR: &str = "PAM_MFA_SOFT_FIDO2";
/// What the module says when it waits for a touch.
pub const TOUCH_CUE: &str = "Touch your security key.";

/// One software security key: its state file in the test's directory. The file is the
/// key: any host of a fleet may be given it.
pub struct SoftFido2Key {
    path: PathBuf,
}

impl SoftFido2Key {
    /// A fresh key (no file yet: no PIN, no credentials).
    pub fn new(env: &TestEnv, name: &str) -> Self {
        Self {
            path: env.path(&format!("key-{name}.json")),
        }
    }

    /// Its state file, to plug it in (with [`SOFT_FIDO2_VAR`]) or to edit it directly.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The authenticator's state (empty before its first use).
    pub fn state(&self) -> Value {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).expect("state file is JSON"),
            Err(_) => json!({}),
        }
    }

    /// Replaces the whole state.
    pub fn write(&self, s: &Value) {
        std::fs::write(&self.path, serde_json::to_vec_pretty(s).expect("JSON"))
            .expect("write the key's state file");
    }

    /// Sets one field of the state (e.g. its `pin` or `algorithm`).
    pub fn set(&self, field: &str, value: Value) -> &Self {
        let mut s = self.state();
        s[field] = value;
        self.write(&s);
        self
    }

    /// Turns one of the authenticator's misbehaviour knobs (see pam_mfa_fido2's `soft`)
    /// on or off.
    pub fn knob(&self, name: &str, on: bool) -> &Self {
        let mut s = self.state();
        s["knobs"][name] = json!(on);
        self.write(&s);
        self
    }

    /// The credentials it holds.
    pub fn credentials(&self) -> Vec<Value> {
        self.state()["credentials"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Its signature counter.
    pub fn counter(&self) -> u64 {
        self.state()["counter"].as_u64().expect("a counter")
    }

    /// Every private key the authenticator holds, in hex (must never leak).
    pub fn private_keys(&self) -> Vec<String> {
        self.credentials()
            .iter()
            .filter_map(|c| c["private_key"].as_str().map(str::to_owned))
            .collect()
    }
}

/// `mfa --user USER enroll fido2 NAME ARGS…` with `key` as the plugged-in key.
pub fn enroll_key(
    env: &TestEnv,
    user: &str,
    name: &str,
    key: &SoftFido2Key,
    args: &[&str],
) -> MfaOutput {
    enroll_key_stdin(env, user, name, key, args, "")
}

/// [`enroll_key`] with `stdin` as its input (a PIN).
pub fn enroll_key_stdin(
    env: &TestEnv,
    user: &str,
    name: &str,
    key: &SoftFido2Key,
    args: &[&str],
    stdin: &str,
) -> MfaOutput {
    let mut all = vec!["--user", user, "enroll", "fido2", name];
    all.extend_from_slice(args);
    env.mfa_cmd(&all)
        .env(SOFT_FIDO2_VAR, key.path())
        .stdin(stdin)
        .run()
}

/// A login at this computer (no remote host, not inside an SSH session) with `key`
/// plugged in.
pub fn at_console<'a>(env: &'a TestEnv, user: &str, key: &SoftFido2Key) -> PamRun<'a> {
    env.pam(user)
        .env(SOFT_FIDO2_VAR, key.path())
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT")
}

/// Asserts a login let in by a touch alone: no prompt, only the touch cue, and nothing
/// from the module on stderr.
#[track_caller]
pub fn assert_touched_and_accepted(out: &PamOutcome) {
    out.assert_success().assert_not_prompted();
    assert_eq!(out.infos(), [TOUCH_CUE], "{}", out.transcript());
    out.assert_module_silent();
}

/// Asserts a refused login with an error message containing `message` (what is logged
/// is the caller's to check: the module's syslog, or a fleet host's daemon).
#[track_caller]
pub fn assert_refused_saying(out: &PamOutcome, message: &str) {
    out.assert_result(PamCode::AuthErr);
    assert!(
        out.errors().iter().any(|e| e.contains(message)),
        "expected an error message with {message:?}\n{}",
        out.transcript()
    );
}
