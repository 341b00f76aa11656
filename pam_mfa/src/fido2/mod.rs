//! FIDO2 security keys: registering a credential and logging in with a touch.
//!
//! The split follows the architecture: a [`transport::Transport`] talks CTAP2 to a key
//! (over USB HID in [`hid`], or the software authenticator of the tests in `soft`), and
//! everything a relying party must check (the rpIdHash, the UP and UV flags, the attested
//! credential data, the attestation and assertion signatures, the sign counter) is done
//! here, in [`verify`], whichever transport answered. Nothing a key sends is trusted
//! before it is parsed with bounded lengths ([`auth_data`], [`cose`]) and verified.
//!
//! The challenge of every ceremony is 32 fresh random bytes; the clientDataHash the key
//! signs is SHA-256 of it (what the HID library sends), recomputed here when verifying.

pub mod auth_data;
pub mod ceremony;
pub mod cose;
pub mod hid;
#[cfg(feature = "soft-fido2")]
pub mod soft;
pub mod transport;
pub mod verify;

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

pub use transport::{Transport, TransportError};

/// The software authenticator is for tests on machines without USB keys. It holds its
/// private keys in a plain file and obeys test knobs; it must never be in a module that
/// guards real logins.
#[cfg(all(feature = "soft-fido2", not(debug_assertions)))]
compile_error!(
    "the soft-fido2 feature (a software FIDO2 authenticator for tests) must never be \
     compiled into a release build; build with `-p pam_mfa -p enroll-cli` without it"
);

/// The environment variable naming the software authenticator's state file (test builds
/// with the `soft-fido2` feature only; release builds never read it).
pub const SOFT_STATE_VAR: &str = "PAM_MFA_SOFT_FIDO2";

/// Whether this build contains the software authenticator (debug builds for tests only;
/// see the `compile_error!` above). A setuid `mfa` of such a build keeps
/// [`SOFT_STATE_VAR`] so the tests can prove a device with a touch as a real non-root
/// user; a release build has no software authenticator and drops it with the rest.
pub const SOFT_FIDO2_BUILT: bool = cfg!(feature = "soft-fido2");

/// How long a key waits for a touch unless told otherwise.
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;
/// The longest touch timeout accepted (module argument and `mfa enroll fido2`).
pub const MAX_TIMEOUT_SECS: u32 = 120;
/// WebAuthn's bound on a credential id.
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;
/// Longest RP id accepted (DNS names are at most 253 characters).
pub const MAX_RP_ID_LEN: usize = 255;

/// The key transport for this process: the software authenticator when this is a test
/// build and `PAM_MFA_SOFT_FIDO2` names its state file, otherwise USB HID.
pub fn transport() -> Box<dyn Transport> {
    #[cfg(feature = "soft-fido2")]
    if let Some(path) = std::env::var_os(SOFT_STATE_VAR).filter(|p| !p.is_empty()) {
        return Box::new(soft::SoftAuthenticator::new(path.into()));
    }
    Box::new(hid::HidTransport::new())
}

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
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| crate::Error::Random(e.to_string()))?;
    Ok(b)
}

/// A touch timeout from a number of seconds, within 1..=[`MAX_TIMEOUT_SECS`].
pub fn timeout(secs: u32) -> Duration {
    Duration::from_secs(u64::from(secs.clamp(1, MAX_TIMEOUT_SECS)))
}

/// A PIN as typed: wiped when dropped, never logged.
pub type Pin = Zeroizing<String>;

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

    #[test]
    fn timeouts_are_clamped() {
        assert_eq!(timeout(0), Duration::from_secs(1));
        assert_eq!(timeout(30), Duration::from_secs(30));
        assert_eq!(timeout(10_000), Duration::from_secs(120));
    }
}
