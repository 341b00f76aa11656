//! Authenticator apps: a pending device with a fresh secret, then two consecutive codes
//! that activate it (and the same two codes for a registration held by a login).

use super::*;
use crate::clock::UnixTime;

/// A registration waiting for its two codes. Holds the secret, to show it once.
pub struct PendingTotp {
    pub user: String,
    pub name: String,
    pub secret: Secret,
    pub params: TotpParams,
    pub uri: Zeroizing<String>,
    pub expires_at: UnixTime,
}

/// Creates a pending TOTP device with a new random secret, within the bounds of
/// [`crate::limits`].
pub fn begin_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    issuer: &str,
    now: UnixTime,
) -> Result<PendingTotp> {
    begin_totp_held(store, user, name, issuer, None, now)
}

/// [`begin_totp`], the pending row held for a login from the start when `hold` (the hash
/// of the login's value, see [`crate::login_hold`]) is given, in the same transaction.
pub(crate) fn begin_totp_held(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    issuer: &str,
    hold: Option<&[u8; 32]>,
    now: UnixTime,
) -> Result<PendingTotp> {
    let secret = Secret::generate()?;
    let params = TotpParams::DEFAULT;
    let expires_at = now + PENDING_LIFETIME_SECS;
    let tx = store.write()?;
    // Checked here as well as at activation so nobody scans a QR code for nothing.
    devices::check_room(&tx, user.as_str())?;
    crate::limits::check_begin(&tx, user.as_str(), name.as_str(), hold.is_some(), now)?;
    devices::insert_pending_totp(
        &tx,
        user.as_str(),
        name.as_str(),
        &secret,
        params,
        now,
        expires_at,
    )?;
    if let Some(hold) = hold {
        devices::set_login_hold(&tx, tx.last_insert_rowid(), hold)?;
    }
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

/// Activates a pending device once `first` and `second` are the codes of two consecutive
/// steps near now.
pub fn finish_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    first: &[u8],
    second: &[u8],
    now: UnixTime,
) -> Result<()> {
    // A registration held for a login is that login's alone (see crate::login_hold).
    let (id, t) = pending_pair(store, user, name, first, second, false, now)?;
    let tx = store.write()?;
    if !devices::activate(&tx, user.as_str(), id, t + 1, now)? {
        return Err(Error::NoPendingDevice {
            user: user.to_string(),
            name: name.to_string(),
        });
    }
    tx.commit()?;
    Ok(())
}

/// The pending TOTP registration `name` of `user` (one held for a login exactly when
/// `held`) and the step of `first` when `first` and `second` are its codes of two
/// consecutive steps near now.
///
/// The codes are searched for before taking the write lock, so logins never wait on this;
/// the caller then re-checks, inside its transaction, that the same pending device is
/// still there.
pub(crate) fn pending_pair(
    store: &Store,
    user: &UserName,
    name: &DeviceName,
    first: &[u8],
    second: &[u8],
    held: bool,
    now: UnixTime,
) -> Result<(i64, i64)> {
    let (c1, c2) = parse_pair(first, second)?;
    let no_pending = || Error::NoPendingDevice {
        user: user.to_string(),
        name: name.to_string(),
    };
    let device = devices::totp_by_name(store.conn(), user.as_str(), name.as_str(), now)?
        .ok_or_else(no_pending)?;
    if device.state == devices::DeviceState::Active {
        return Err(Error::AlreadyActive {
            user: user.to_string(),
            name: name.to_string(),
        });
    }
    if devices::is_held(store.conn(), device.id)? != held {
        return Err(no_pending());
    }
    let key = TotpKey::new(&device.secret, device.params)?;
    let (t, _) = confirm_totp(&key, &c1, &c2, now, ClockFix::Person)?;
    Ok((device.id, t))
}

/// Who can set a time-based device's clock, which decides what registering it with codes
/// for another time means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClockFix {
    /// A phone's clock is the person's to fix: codes for another time are refused with a
    /// message saying how far off it is, which saves retyping codes that can never work.
    Person,
    /// A hardware token's clock cannot be set and drifts over years in a drawer: its
    /// offset (within the resync range) is found and remembered, as resync would.
    Nobody,
}

/// Finds the step `t` of the first of two consecutive codes near now, and the device's
/// clock offset in steps (0 unless `fix` is [`ClockFix::Nobody`] and it is far off).
pub(super) fn confirm_totp(
    key: &TotpKey,
    c1: &Code,
    c2: &Code,
    now: UnixTime,
    fix: ClockFix,
) -> Result<(i64, i64)> {
    let now_step = key.params().step_at(now);
    let near = now_step - CONFIRM_STEPS_BEFORE..=now_step + CONFIRM_STEPS_AFTER;
    let e = match key.find_consecutive(c1, c2, near) {
        Ok(t) => return Ok((t, 0)),
        Err(e) => e,
    };
    let span = match fix {
        ClockFix::Person => RESYNC_STEPS,
        ClockFix::Nobody => TOKEN_DRIFT_SECS / i64::from(key.params().period.max(1)),
    };
    let wide = now_step - span..=now_step + span;
    match key.find_consecutive(c1, c2, wide) {
        Ok(t) if fix == ClockFix::Nobody => Ok((t, t + 1 - now_step)),
        Ok(t) => Err(super::clock_skew(
            (t - now_step) * i64::from(key.params().period),
        )),
        Err(_) => Err(pair_error(e)),
    }
}
