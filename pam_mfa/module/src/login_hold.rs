//! The value of a registration made during a login (`mfad`'s `HeldTotpReply::hold`, 32
//! random bytes of which the daemon keeps only the hash) travels from
//! `pam_sm_authenticate` to `pam_sm_setcred`, which has the daemon activate the device
//! (`ActivateHeld`).
//!
//! Two carriers, because applications differ: `pam_set_data` where both calls happen in
//! one process (sudo, su, login, display managers), and the PAM environment variable
//! [`ENV_NAME`] for OpenSSH, which runs keyboard-interactive authentication in a forked
//! child and brings back only the PAM environment to the process that calls
//! `pam_setcred`. `pam_sm_setcred` removes the variable before it does anything else, so
//! it never reaches the session, and it asks the daemon only when a value is there.
//! OpenSSH (auth-pam.c, checked with 9.2) imports the child's PAM environment only when
//! `pam_authenticate` and `pam_acct_mgmt` succeeded there, and calls `pam_setcred` in its
//! monitor once every authentication method succeeded, before it builds the session's
//! environment from the PAM environment (tests/real_logins.rs drives the real sshd).
//!
//! Activation failing in `pam_sm_setcred` does not fail the login: the whole stack has
//! already authenticated the person (under `no_device=enroll` a user without a device is
//! trusted on the first factor alone, the registration adds nothing to that proof), and
//! refusing now would only lock them out for a reason that is not theirs. It is logged,
//! the person is told the device was not registered, and the next login asks again.

use std::ffi::{CStr, CString, c_char, c_int};

use pam::constants::{
    PAM_ESTABLISH_CRED, PAM_REINITIALIZE_CRED, PAM_SILENT, PamFlag, PamResultCode,
};
use pam::module::PamHandle;
use zeroize::{Zeroize, Zeroizing};

use pam_mfa_protocol::{Request, Response, SecretBytes, escape_for_log};

use super::client::Daemon;
use super::conversation::Converse;
use super::syslog::{Level, Logger};

/// The PAM environment variable that carries the value across OpenSSH's processes.
pub(super) const ENV_NAME: &str = "PAM_MFA_ENROLL_HOLD";
/// The `pam_set_data` key; the data is an `Option<Zeroizing<String>>` (the hex form).
const DATA_KEY: &str = "pam_mfa_enroll_hold";

type HeldData = Option<Zeroizing<String>>;

unsafe extern "C" {
    fn pam_getenv(pamh: *const PamHandle, name: *const c_char) -> *const c_char;
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
}

fn env_name() -> Result<CString, PamResultCode> {
    CString::new(ENV_NAME).map_err(|_| PamResultCode::PAM_BUF_ERR)
}

/// `pam_putenv` of `text` (`NAME=VALUE` sets, `NAME` removes), wiping our copy after.
fn putenv(pamh: &mut PamHandle, text: Zeroizing<Vec<u8>>) -> Result<(), PamResultCode> {
    let c = CString::new(text.to_vec()).map_err(|_| PamResultCode::PAM_BUF_ERR)?;
    // SAFETY: `pamh` is the live handle libpam passed to this call; `c` is a
    // NUL-terminated string that outlives the call (libpam copies it).
    let rc = unsafe { pam_putenv(pamh, c.as_ptr()) };
    c.into_bytes_with_nul().zeroize();
    if rc == PamResultCode::PAM_SUCCESS as c_int {
        Ok(())
    } else {
        // libpam's pam_putenv fails only for a bad argument or lack of memory.
        Err(PamResultCode::PAM_BUF_ERR)
    }
}

/// The variable's value, if set.
fn getenv(pamh: &PamHandle) -> Option<Zeroizing<Vec<u8>>> {
    let name = env_name().ok()?;
    // SAFETY: `pamh` is the live handle libpam passed to this call and `name` a
    // NUL-terminated string; the result is null or points into libpam's environment.
    let p = unsafe { pam_getenv(pamh, name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null result of pam_getenv is a NUL-terminated string owned by libpam,
    // valid until the environment changes; it is copied at once.
    Some(Zeroizing::new(
        unsafe { CStr::from_ptr(p) }.to_bytes().to_vec(),
    ))
}

fn get_data(pamh: &PamHandle) -> Option<Zeroizing<Vec<u8>>> {
    // SAFETY: only this module uses DATA_KEY, and it always stores a `HeldData` there.
    let data = unsafe { pamh.get_data::<HeldData>(DATA_KEY) }.ok()?;
    data.as_ref()
        .map(|hex| Zeroizing::new(hex.as_bytes().to_vec()))
}

/// The value's hex form (what both carriers hold).
fn to_hex(bytes: &[u8]) -> Zeroizing<String> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// The value from its hex form: exactly 32 bytes, or `None`.
fn from_hex(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = Zeroizing::new(Vec::with_capacity(32));
    for pair in text.chunks(2) {
        out.push(digit(pair[0])? << 4 | digit(pair[1])?);
    }
    Some(out)
}

/// Keeps `hold` for this login's `pam_sm_setcred`, by both carriers.
pub(super) fn remember(pamh: &mut PamHandle, hold: &[u8]) -> Result<(), PamResultCode> {
    let hex = to_hex(hold);
    let mut text = Zeroizing::new(Vec::with_capacity(ENV_NAME.len() + 1 + hex.len()));
    text.extend_from_slice(ENV_NAME.as_bytes());
    text.push(b'=');
    text.extend_from_slice(hex.as_bytes());
    putenv(pamh, text)?;
    let data: Box<HeldData> = Box::new(Some(hex));
    pamh.set_data(DATA_KEY, data)
}

/// Drops any value this handle carries, so it activates nothing: called at the start of
/// every authentication (a value from an earlier, failed attempt on the same handle must
/// not ride on a later success) and by `pam_sm_setcred` once it has read it.
pub(super) fn forget(pamh: &mut PamHandle) {
    if get_data(pamh).is_some() {
        let none: Box<HeldData> = Box::new(None);
        let _ = pamh.set_data(DATA_KEY, none);
    }
    if getenv(pamh).is_some() {
        let _ = putenv(pamh, Zeroizing::new(ENV_NAME.as_bytes().to_vec()));
    }
}

/// `pam_sm_setcred`: activates the registration this login made, if it made one. Returns
/// `PAM_SUCCESS` in every case (see the module documentation).
pub(super) fn setcred(pamh: &mut PamHandle, raw_args: &[&CStr], flags: PamFlag) -> PamResultCode {
    if flags & (PAM_ESTABLISH_CRED | PAM_REINITIALIZE_CRED) == 0 {
        // Refreshing or deleting credentials activates nothing, and the value has no
        // further use: it must not linger in the PAM environment either.
        forget(pamh);
        return PamResultCode::PAM_SUCCESS;
    }
    // The cheap path of every login without a registration: no store, no arguments.
    let Some(text) = get_data(pamh).or_else(|| getenv(pamh)) else {
        return PamResultCode::PAM_SUCCESS;
    };
    forget(pamh);
    let raw_user = match pamh.get_item::<pam::items::User>() {
        Ok(Some(u)) => u.0.to_bytes().to_vec(),
        _ => Vec::new(),
    };
    let who = format!("user={}", escape_for_log(&raw_user));
    let silent = flags & PAM_SILENT != 0;
    let result = super::panic_guard::catch(|| activate(raw_args, &raw_user, &text))
        .unwrap_or_else(|panic| Err(format!("internal error ({panic})")));
    match result {
        Ok(name) => {
            Logger::new(pamh).log(
                Level::Notice,
                &format!(
                    "registered device \"{}\" at login (no_device=enroll) ({who})",
                    name.escape_debug()
                ),
            );
            pamh.tell(silent, &format!("Device \"{name}\" is registered."));
        }
        Err(why) => {
            Logger::new(pamh).log(
                Level::Error,
                &format!("device registered at login not kept: {why} ({who})"),
            );
            pamh.warn(
                silent,
                "Your new device was NOT registered; you will be asked to register one at \
                 your next login, or run `mfa enroll totp NAME`.",
            );
        }
    }
    PamResultCode::PAM_SUCCESS
}

/// Has the daemon activate the registration held for `text`; its name, or why not.
fn activate(raw_args: &[&CStr], raw_user: &[u8], text: &[u8]) -> Result<String, String> {
    let hold = from_hex(text).ok_or("the value carried is malformed")?;
    let args =
        super::args::parse(raw_args.iter().map(|a| a.to_bytes())).map_err(|e| e.to_string())?;
    let user = super::user_for_daemon(raw_user).ok_or("invalid user name")?;
    let daemon = Daemon::new(&args.socket, args.timeout);
    match daemon
        .ask(&Request::ActivateHeld {
            user,
            hold: SecretBytes::from_slice(&hold),
        })
        .map_err(|e| e.0)?
    {
        Ok(Response::Activated { name }) => Ok(name),
        Ok(_) => Err("mfad answered activate-held with something else".to_owned()),
        Err(e) => Err(format!("mfad refused it: {}", e.message.escape_debug())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let v: Vec<u8> = (0..32).collect();
        let h = to_hex(&v);
        assert_eq!(from_hex(h.as_bytes()).unwrap().as_slice(), v.as_slice());
        assert!(from_hex(b"00").is_none());
        assert!(from_hex(&[b'g'; 64]).is_none());
    }
}
