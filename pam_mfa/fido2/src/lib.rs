//! FIDO2 security keys, as pam_mfa's relying party: registering a credential and logging
//! in with a touch.
//!
//! A [`transport::Transport`] talks CTAP2 to a key (over USB HID in [`hid`], or the
//! software authenticator of the tests in `soft`), and everything a relying party must
//! check (the rpIdHash, the UP and UV flags, the attested credential data, the
//! attestation and assertion signatures, the sign counter) is done in [`verify`],
//! whichever transport answered. Nothing a key sends is trusted before it is parsed with
//! bounded lengths ([`auth_data`], [`cose`]) and verified.
//!
//! The challenge of every ceremony is 32 fresh random bytes; the clientDataHash the key
//! signs is SHA-256 of it (what the HID library sends), recomputed when verifying.
//!
//! This crate knows nothing of the device store: `pam_mfa` records what it decides. It is
//! a crate of its own so that the PAM module, which every login loads, does not carry it
//! (see [`plugin`]): `libpam_mfa_keys.so` runs the client half of a login
//! ([`ceremony::assert_over`]) for the module, `mfad` checks the answer
//! ([`ceremony::check_answer`]).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth_data;
pub mod ceremony;
pub mod cose;
pub mod hid;
pub use pam_mfa_keys_abi::{is_remote, panic_guard};
pub mod plugin;
pub mod registration;
#[cfg(feature = "soft-fido2")]
pub mod soft;
pub mod transport;
pub mod verify;

use std::time::Duration;

pub use ceremony::KeyFailure;
pub use transport::{Transport, TransportError};

/// The software authenticator is for tests on machines without USB keys. It holds its
/// private keys in a plain file and obeys test knobs; it must never be in a module that
/// guards real logins.
#[cfg(all(feature = "soft-fido2", not(debug_assertions)))]
compile_error!(
    "the soft-fido2 feature (a software FIDO2 authenticator for tests) must never be \
     compiled into a release build; build with `-p pam_mfa -p pam_mfa_keys -p enroll-cli` \
     without it"
);

/// The environment variable naming the software authenticator's state file (test builds
/// with the `soft-fido2` feature only; release builds never read it).
pub const SOFT_STATE_VAR: &str = "PAM_MFA_SOFT_FIDO2";

/// Whether this build contains the software authenticator (debug builds for tests only;
/// see the `compile_error!` above). A setuid `mfa` of such a build keeps
/// [`SOFT_STATE_VAR`] so the tests can prove a device with a touch as a real non-root
/// user; a release build has no software authenticator and drops it with the rest.
pub const SOFT_FIDO2_BUILT: bool = cfg!(feature = "soft-fido2");

/// The touch timeouts (one definition, in the keys interface the module shares).
pub use pam_mfa_keys_abi::{DEFAULT_TIMEOUT_SECS, MAX_TIMEOUT_SECS};
/// WebAuthn's bound on a credential id.
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// The key transport for this process: the software authenticator when this is a test
/// build and `PAM_MFA_SOFT_FIDO2` names its state file, otherwise USB HID.
pub fn transport() -> Box<dyn Transport> {
    #[cfg(feature = "soft-fido2")]
    if let Some(path) = std::env::var_os(SOFT_STATE_VAR).filter(|p| !p.is_empty()) {
        return Box::new(soft::SoftAuthenticator::new(path.into()));
    }
    Box::new(hid::HidTransport::new())
}

/// 32 random bytes from the kernel: challenges and user handles.
pub fn random32() -> Result<[u8; 32], getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(b)
}

/// A touch timeout from a number of seconds, within 1..=[`MAX_TIMEOUT_SECS`].
pub fn timeout(secs: u32) -> Duration {
    Duration::from_secs(u64::from(secs.clamp(1, MAX_TIMEOUT_SECS)))
}

/// A PIN as typed: wiped when dropped, never logged.
pub use pam_mfa_keys_abi::Pin;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_clamped() {
        assert_eq!(timeout(0), Duration::from_secs(1));
        assert_eq!(timeout(30), Duration::from_secs(30));
        assert_eq!(timeout(10_000), Duration::from_secs(120));
    }
}
