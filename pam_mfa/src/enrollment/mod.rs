//! Registering devices, one file per kind (`totp`: authenticator apps; `token`: hardware
//! tokens from the inventory; `fido2`: security keys) and bringing drifted code devices
//! back in sync (`resync`). What they share is here.
//!
//! Registration is split the way the cloud APIs split it (create, then enable): a pending
//! device with a fresh secret, then two consecutive codes that prove the person has the
//! secret in a working authenticator right now. Only then is the device active, and the
//! step of the second code is recorded as used so neither code can log in afterwards.

use crate::clock::UnixTime;
use zeroize::Zeroizing;

use subtle::ConstantTimeEq;

use crate::code::{self, Code};
use crate::fido2::Fido2Error;
use crate::hotp::{HotpKey, HotpParams};
use crate::login::{self, LoginSettings, Outcome, Refusal};
use crate::names::{DeviceName, UserName};
use crate::otp::{PairError, TotpKey, TotpParams};
use crate::otpauth;
use crate::secret::Secret;
use crate::store::devices::TokenStart;
use crate::store::{Store, devices};
use crate::tokens::{Mode, inventory};
use crate::{Error, Result};

/// How long a registration may stay unfinished.
pub const PENDING_LIFETIME_SECS: i64 = 600;
/// The first of the two codes may be this many steps old (a person reading the QR code,
/// opening the app and typing two codes takes a few minutes)…
pub const CONFIRM_STEPS_BEFORE: i64 = 10;
/// …or one step ahead of this host's clock.
pub const CONFIRM_STEPS_AFTER: i64 = 1;
/// Resync searches about ±12 hours (at 30 s steps) for the device's clock.
pub use crate::store::devices::RESYNC_STEPS;
/// How far a hardware token's clock may be off when it is registered, in seconds: the
/// same ±12 hours whatever its time step (a 300 s token must not get ±125 hours).
pub const TOKEN_DRIFT_SECS: i64 = 12 * 3600;
/// How far past its stored counter an event-based token is searched for two consecutive
/// codes, at registration and resync: presses away from any login (a token tried out in
/// the office, a child playing with it) are common, and two consecutive codes among a
/// thousand are still one chance in a billion to guess.
pub const HOTP_RESYNC_LOOKAHEAD: i64 = 1000;

mod fido2;
mod resync;
mod token;
mod totp;

pub use fido2::{begin_fido2, finish_fido2, verify_fido2};
pub use resync::{Resynced, resync};
pub use token::{
    TOKEN_REFUSAL_TIME, register_own_token, register_token, register_token_as,
    wait_out_token_refusal,
};
pub use totp::{PendingTotp, begin_totp, finish_totp};
pub(crate) use totp::{begin_totp_held, pending_pair};

pub fn parse_pair(first: &[u8], second: &[u8]) -> Result<(Code, Code)> {
    let c1 = code::parse(first).map_err(|problem| Error::MalformedCode {
        which: "first",
        problem,
    })?;
    let c2 = code::parse(second).map_err(|problem| Error::MalformedCode {
        which: "second",
        problem,
    })?;
    Ok((c1, c2))
}

/// The cheap refusals of a registration that activates at once (a token, a key): no room
/// for another active device, or an active one of that name already; checked before the
/// person presses buttons or touches a key, and again when the device is inserted.
pub(super) fn check_room_for(
    store: &Store,
    user: &UserName,
    name: &DeviceName,
    now: UnixTime,
) -> Result<()> {
    devices::check_room(store.conn(), user.as_str())?;
    if devices::list(store.conn(), user.as_str(), now)?
        .iter()
        .any(|d| d.name == name.as_str() && d.state == devices::DeviceState::Active)
    {
        return Err(Error::DuplicateName {
            user: user.to_string(),
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The refusal of two codes that are a pair of another time, `secs` seconds from the
/// clock: the phone's clock is off by about that much, and saying so saves retyping codes
/// that can never work.
pub fn clock_skew(secs: i64) -> Error {
    Error::ClockSkew {
        minutes: (secs.abs() + 30) / 60,
        direction: if secs > 0 { "ahead of" } else { "behind" },
    }
}

pub fn pair_error(e: PairError) -> Error {
    match e {
        PairError::FirstWrong => Error::FirstCodeWrong,
        PairError::SecondWrong => Error::SecondCodeWrong,
        PairError::NotConsecutive => Error::NotConsecutive,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_tests;
