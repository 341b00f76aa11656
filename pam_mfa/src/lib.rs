//! pam_mfa: multi-factor login for Linux PAM.
//!
//! One crate holds both the library (device store, OTP checking, enrollment, lock-out)
//! and the `pam_mfa.so` PAM module built on it, so that the module and the `mfa` tool
//! share a single implementation of every check. The PAM entry points in [`pam`] stay a
//! thin layer: parse arguments, talk through the conversation, call [`login`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod audit;
pub mod clock;
pub mod code;
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
pub mod pam;
pub mod policy;
pub mod recovery;
pub mod secret;
pub mod selfservice;
pub mod settings;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod tokens;

pub use error::{Error, Result};

/// The most devices a user may have active at once (the cloud consoles' limit).
pub const MAX_DEVICES: u32 = 8;
