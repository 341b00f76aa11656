//! FIDO2 security keys: what pam_mfa itself decides about them (RP ids, whether a login
//! is remote, what a failure is called), over the relying party of [`pam_mfa_fido2`].
//!
//! The relying party (transports, ceremony, checks) is a crate of its own that pam_mfa.so
//! reaches only through `libpam_mfa_keys.so` ([`crate::pam::keys_library`]), so that the
//! module every login loads does not carry it; `mfa` links it. Its modules are re-exported
//! here so that the rest of pam_mfa names them in one place.

pub use pam_mfa_fido2::{
    DEFAULT_TIMEOUT_SECS, KeyFailure, MAX_CREDENTIAL_ID_LEN, MAX_TIMEOUT_SECS, Pin,
    SOFT_FIDO2_BUILT, SOFT_STATE_VAR, Transport, TransportError, auth_data, ceremony, cose, plugin,
    timeout, transport, verify,
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

/// Whether a login comes from somewhere a key plugged into this host cannot be touched.
///
/// Remote means: `PAM_RHOST` names anything but this host's loopback (`localhost`,
/// 127.0.0.0/8, `::1`, `::ffff:127.x.y.z`), or, with no remote host given, the service runs
/// inside an SSH session (`sudo` or `su` typed over SSH: `in_ssh_session`, from
/// `SSH_CONNECTION`/`SSH_CLIENT`). The environment is the caller's to set, which is
/// harmless here: claiming to be remote only swaps the touch for a code (or, with
/// `fido2=require`, refuses), and hiding it only leads to a touch request that whoever
/// cannot reach the key cannot answer.
pub fn is_remote(rhost: Option<&[u8]>, in_ssh_session: bool) -> bool {
    let host = rhost
        .and_then(|h| std::str::from_utf8(h).ok())
        .map(str::trim)
        .unwrap_or_default();
    if host.is_empty() {
        return rhost.is_some_and(|h| !h.is_empty() && std::str::from_utf8(h).is_err())
            || in_ssh_session;
    }
    if in_ssh_session {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.eq_ignore_ascii_case("localhost") || bare.eq_ignore_ascii_case("localhost.") {
        return false;
    }
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => !v4.is_loopback(),
        Ok(std::net::IpAddr::V6(v6)) => {
            !(v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
        }
        Err(_) => true,
    }
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

    #[test]
    fn remote_or_local() {
        let r = |h: &str| is_remote(Some(h.as_bytes()), false);
        for local in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "",
        ] {
            assert!(!r(local), "{local:?}");
        }
        for remote in [
            "192.0.2.7",
            "2001:db8::1",
            "host.example",
            "10.0.0.1",
            "0.0.0.0",
            "localhost.example",
            "::ffff:192.0.2.1",
        ] {
            assert!(r(remote), "{remote:?}");
        }
        assert!(!is_remote(None, false));
        assert!(is_remote(None, true));
        assert!(is_remote(Some(b"127.0.0.1"), true));
        assert!(is_remote(Some(b"\xff\xfe"), false));
    }
}
