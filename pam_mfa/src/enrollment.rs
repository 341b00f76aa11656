//! Registering TOTP devices and bringing drifted ones back in sync.
//!
//! Registration is split the way the cloud APIs split it (create, then enable): a pending
//! device with a fresh secret, then two consecutive codes that prove the person has the
//! secret in a working authenticator right now. Only then is the device active, and the
//! step of the second code is recorded as used so neither code can log in afterwards.

use zeroize::Zeroizing;

use crate::code::{self, Code};
use crate::names::{DeviceName, UserName};
use crate::otp::{PairError, TotpKey, TotpParams};
use crate::otpauth;
use crate::secret::Secret;
use crate::store::{Store, devices};
use crate::{Error, MAX_DEVICES, Result};

/// How long a registration may stay unfinished.
pub const PENDING_LIFETIME_SECS: i64 = 600;
/// The first of the two codes may be this many steps old (a person reading the QR code,
/// opening the app and typing two codes takes a few minutes)…
pub const CONFIRM_STEPS_BEFORE: i64 = 10;
/// …or one step ahead of this host's clock.
pub const CONFIRM_STEPS_AFTER: i64 = 1;
/// Resync searches about ±12 hours (at 30 s steps) for the device's clock.
pub const RESYNC_STEPS: i64 = 1500;

/// A registration waiting for its two codes. Holds the secret, to show it once.
pub struct PendingTotp {
    pub user: String,
    pub name: String,
    pub secret: Secret,
    pub params: TotpParams,
    pub uri: Zeroizing<String>,
    pub expires_at: i64,
}

/// Creates a pending TOTP device with a new random secret.
pub fn begin_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    issuer: &str,
    now: i64,
) -> Result<PendingTotp> {
    let secret = Secret::generate()?;
    let params = TotpParams::DEFAULT;
    let expires_at = now + PENDING_LIFETIME_SECS;
    let tx = store.write()?;
    // Checked here as well as at activation so nobody scans a QR code for nothing.
    if devices::count_active(&tx, user.as_str())? >= MAX_DEVICES {
        return Err(Error::TooManyDevices {
            user: user.to_string(),
            max: MAX_DEVICES,
        });
    }
    devices::insert_pending_totp(
        &tx,
        user.as_str(),
        name.as_str(),
        &secret,
        params,
        now,
        expires_at,
    )?;
    tx.commit()?;
    let uri = otpauth::build_totp_uri(issuer, user.as_str(), &secret, params);
    Ok(PendingTotp {
        user: user.to_string(),
        name: name.to_string(),
        secret,
        params,
        uri,
        expires_at,
    })
}

fn parse_pair(first: &[u8], second: &[u8]) -> Result<(Code, Code)> {
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

/// Activates a pending device once `first` and `second` are the codes of two consecutive
/// steps near now.
pub fn finish_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    first: &[u8],
    second: &[u8],
    now: i64,
) -> Result<()> {
    let (c1, c2) = parse_pair(first, second)?;
    let tx = store.write()?;
    let device = devices::totp_by_name(&tx, user.as_str(), name.as_str(), now)?
        .filter(|d| d.state == devices::DeviceState::Pending)
        .ok_or_else(|| Error::NoPendingDevice {
            user: user.to_string(),
            name: name.to_string(),
        })?;
    let key = TotpKey::new(&device.secret, device.params)?;
    let now_step = device.params.step_at(now);
    let near = now_step - CONFIRM_STEPS_BEFORE..=now_step + CONFIRM_STEPS_AFTER;
    let t = match key.find_consecutive(&c1, &c2, near) {
        Ok(t) => t,
        Err(e) => {
            // Right codes for the wrong time are almost always a phone with a wrong clock;
            // saying so saves the person from retyping codes that can never work.
            let wide = now_step - RESYNC_STEPS..=now_step + RESYNC_STEPS;
            if let Ok(t) = key.find_consecutive(&c1, &c2, wide) {
                let secs = (t - now_step) * i64::from(device.params.period);
                return Err(Error::ClockSkew {
                    minutes: (secs.abs() + 30) / 60,
                    direction: if secs > 0 { "ahead of" } else { "behind" },
                });
            }
            return Err(pair_error(e));
        }
    };
    devices::activate(&tx, user.as_str(), device.id, t + 1, now)?;
    tx.commit()?;
    Ok(())
}

fn pair_error(e: PairError) -> Error {
    match e {
        PairError::FirstWrong => Error::FirstCodeWrong,
        PairError::SecondWrong => Error::SecondCodeWrong,
        PairError::NotConsecutive => Error::NotConsecutive,
    }
}

/// Finds the device's clock from two consecutive codes within about ±12 hours and stores
/// its drift; returns the drift in seconds (positive: the device runs ahead).
pub fn resync(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    first: &[u8],
    second: &[u8],
    now: i64,
) -> Result<i64> {
    let (c1, c2) = parse_pair(first, second)?;
    let tx = store.write()?;
    let device =
        devices::totp_by_name(&tx, user.as_str(), name.as_str(), now)?.ok_or_else(|| {
            Error::NoSuchDevice {
                user: user.to_string(),
                name: name.to_string(),
            }
        })?;
    if device.state != devices::DeviceState::Active {
        return Err(Error::DeviceNotActive {
            name: name.to_string(),
        });
    }
    let key = TotpKey::new(&device.secret, device.params)?;
    let now_step = device.params.step_at(now);
    let t = key
        .find_consecutive(&c1, &c2, now_step - RESYNC_STEPS..=now_step + RESYNC_STEPS)
        .map_err(|_| Error::ResyncFailed)?;
    // Resync codes are codes like any other: never accepted twice.
    if device.last_step.is_some_and(|last| t <= last) {
        return Err(Error::CodesAlreadyUsed);
    }
    let drift = t + 1 - now_step;
    devices::resync(&tx, device.id, drift, t + 1)?;
    tx.commit()?;
    Ok(drift * i64::from(device.params.period))
}
