//! pam_mfa: multi-factor login for Linux PAM.
//!
//! The library: device store, OTP checking, enrollment, lock-out, policy. `mfad` (which
//! alone opens the store) and `mfa --db` run every check through it. The PAM module is a
//! crate of its own (`pam_mfa/module`, `pam_mfa_module`) that links neither this library
//! nor SQLite: it asks `mfad` over its socket, so that a login needs no access to the
//! store and every check runs in one process.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod audit;
pub mod clock;
pub mod code;
pub mod decision;
pub mod enrollment;
pub mod error;
pub mod fido2;
pub mod hotp;
pub mod limits;
pub mod lockout;
pub mod login;
pub mod login_hold;
pub mod names;
pub mod otp;
pub mod otpauth;
pub mod policy;
pub mod qr;
pub mod recovery;
pub mod remembered;
pub mod selfservice;
pub mod settings;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod tokens;

pub use error::{Error, Result};
pub use store::devices::MAX_DEVICES;
/// Secrets are defined with the store, which keeps them; the path `crate::secret` stays.
pub use store::secret;
