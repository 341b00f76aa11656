//! FIDO2 security keys: what pam_mfa itself decides about them (RP ids, whether a login
//! is remote, what a failure is called), over the relying party of [`pam_mfa_fido2`].
//!
//! The relying party (transports, ceremony, checks) is a crate of its own that pam_mfa.so
//! reaches only through `libpam_mfa_keys.so` ([`crate::pam::keys_library`]), so that the
//! module every login loads does not carry it; `mfa` links it. Its modules are re-exported
//! here so that the rest of pam_mfa names them in one place.

pub use pam_mfa_fido2::{
    DEFAULT_TIMEOUT_SECS, KeyFailure, MAX_CREDENTIAL_ID_LEN, MAX_TIMEOUT_SECS, Pin,
    SOFT_FIDO2_BUILT, SOFT_STATE_VAR, Transport, TransportError, auth_data, ceremony, cose,
    is_remote, plugin, timeout, transport, verify,
};

use std::fmt;

use crate::names::UserName;

/// Longest RP id accepted (DNS names are at most 253 characters).
pub const MAX_RP_ID_LEN: usize = 255;

/// The RP id a credential is registered under when none is given: fixed at registration
/// and stored with the credential, so renaming the host later locks nobody out.
pub fn default_rp_id(host: &str) -> String {
    format!("pam://{host}")
}

/// An RP id we accept: 1 to 255 printable ASCII characters without spaces. (CTAP keys
/// accept any string; this keeps what is stored and logged plain.)
pub fn check_rp_id(rp_id: &str) -> Result<(), Fido2Error> {
    if rp_id.is_empty()
        || rp_id.len() > MAX_RP_ID_LEN
        || !rp_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Fido2Error::InvalidRpId);
    }
    Ok(())
}

/// 32 random bytes from the kernel: challenges and user handles.
pub fn random32() -> crate::Result<[u8; 32]> {
    pam_mfa_fido2::random32().map_err(|e| crate::Error::Random(e.to_string()))
}

/// What can go wrong registering a key, worded for the person at the terminal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fido2Error {
    #[error("no security key found; plug it in and try again")]
    NoKey,
    #[error("the security key was not touched in time")]
    Timeout,
    #[error("this security key is already registered for this user")]
    AlreadyRegistered,
    #[error("the security key asks for its PIN")]
    PinRequired,
    #[error("wrong security key PIN")]
    PinInvalid,
    #[error(
        "the security key's PIN is blocked (too many wrong PINs); reset the key or use \
         another one"
    )]
    PinBlocked,
    #[error(
        "the security key has no PIN set; set one with the key maker's tool first, or \
         register it without --pin/--uv"
    )]
    NoPinSet,
    #[error("invalid RP id (1 to 255 printable ASCII characters, no spaces)")]
    InvalidRpId,
    #[error("the security key refused: {0}")]
    Device(String),
    #[error("the security key's answer does not verify: {0}")]
    Rejected(verify::Rejection),
}

impl From<TransportError> for Fido2Error {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::NoKey => Self::NoKey,
            TransportError::Timeout => Self::Timeout,
            TransportError::Excluded => Self::AlreadyRegistered,
            TransportError::PinRequired => Self::PinRequired,
            TransportError::PinInvalid => Self::PinInvalid,
            TransportError::PinBlocked => Self::PinBlocked,
            TransportError::NoCredentials => {
                Self::Device("it holds no credential for this request".to_owned())
            }
            TransportError::Device(d) => Self::Device(d),
        }
    }
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
