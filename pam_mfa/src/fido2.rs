//! FIDO2 security keys: what pam_mfa itself decides about them (RP ids, whether a login
//! is remote, what a failure is called), over the relying party of [`pam_mfa_fido2`].
//!
//! The relying party (transports, the login and registration ceremonies, checks) is a
//! crate of its own that pam_mfa.so reaches only through `libpam_mfa_keys.so` (the
//! module's `keys_library`), so that the module every login loads does not carry it;
//! `mfa` links it. Its modules are re-exported
//! here so that the rest of pam_mfa names them in one place.

pub use pam_mfa_fido2::{
    DEFAULT_TIMEOUT_SECS, KeyFailure, MAX_CREDENTIAL_ID_LEN, MAX_TIMEOUT_SECS, Pin,
    SOFT_FIDO2_BUILT, SOFT_STATE_VAR, Transport, TransportError, auth_data, ceremony, cose,
    is_remote, plugin, registration, timeout, transport, verify,
};

pub use crate::error::Fido2Error;
/// What is stored of an RP id is checked with the store, which refuses rows outside it.
pub use crate::store::devices::{MAX_RP_ID_LEN, check_rp_id};

use std::fmt;

use crate::names::UserName;

/// The RP id a credential is registered under when none is given: fixed at registration
/// and stored with the credential, so renaming the host later locks nobody out.
pub fn default_rp_id(host: &str) -> String {
    format!("pam://{host}")
}

/// 32 random bytes from the kernel: challenges and user handles.
pub fn random32() -> crate::Result<[u8; 32]> {
    pam_mfa_fido2::random32().map_err(|e| crate::Error::Random(e.to_string()))
}

/// The syslog wording of a security-key failure (never a PIN): it may say more than
/// [`failure_message`] tells the person. Failures of the client half are worded once, in
/// `pam_mfa_keys_abi` (the PAM module says them without this library).
pub fn failure_log(f: &KeyFailure) -> String {
    match f {
        KeyFailure::UnknownCredential => {
            "the security key answered with a credential that is not one of the user's".to_owned()
        }
        KeyFailure::Rejected { device, why } => {
            format!("security key \"{}\" refused: {why}", device.escape_debug())
        }
        other => plugin::client_failure(other.clone()).log_text(),
    }
}

/// What the person is told about a security-key failure (at the login prompt, or by
/// `mfa`); the log wording, which may say more, is [`failure_log`].
pub fn failure_message(f: &KeyFailure, user: &UserName) -> String {
    match f {
        KeyFailure::UnknownCredential => {
            format!("This security key is not registered for {user}.")
        }
        KeyFailure::Rejected { .. } => "The security key's answer was not accepted.".to_owned(),
        other => plugin::client_failure(other.clone()).message(&user.to_string()),
    }
}

/// Lowercase hex, for short log identifiers of credential ids (never secrets).
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rp_ids() {
        assert_eq!(default_rp_id("host1"), "pam://host1");
        assert!(check_rp_id("pam://host1").is_ok());
        assert!(check_rp_id("example.com").is_ok());
        for bad in ["", "a b", "caf\u{e9}", "x\n", &"a".repeat(256)] {
            assert_eq!(check_rp_id(bad), Err(Fido2Error::InvalidRpId), "{bad:?}");
        }
    }
}
