//! Registering code devices (authenticator apps, hardware tokens from the inventory) and
//! bringing drifted ones back in sync.
//!
//! Registration is split the way the cloud APIs split it (create, then enable): a pending
//! device with a fresh secret, then two consecutive codes that prove the person has the
//! secret in a working authenticator right now. Only then is the device active, and the
//! step of the second code is recorded as used so neither code can log in afterwards.

use zeroize::Zeroizing;

use subtle::ConstantTimeEq;

use crate::code::{self, Code};
use crate::fido2::{self, Fido2Error};
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

/// A registration waiting for its two codes. Holds the secret, to show it once.
pub struct PendingTotp {
    pub user: String,
    pub name: String,
    pub secret: Secret,
    pub params: TotpParams,
    pub uri: Zeroizing<String>,
    pub expires_at: i64,
}

/// Creates a pending TOTP device with a new random secret, within the bounds of
/// [`crate::limits`].
pub fn begin_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    issuer: &str,
    now: i64,
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
    now: i64,
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
    now: i64,
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
enum ClockFix {
    /// A phone's clock is the person's to fix: codes for another time are refused with a
    /// message saying how far off it is, which saves retyping codes that can never work.
    Person,
    /// A hardware token's clock cannot be set and drifts over years in a drawer: its
    /// offset (within the resync range) is found and remembered, as resync would.
    Nobody,
}

/// Finds the step `t` of the first of two consecutive codes near now, and the device's
/// clock offset in steps (0 unless `fix` is [`ClockFix::Nobody`] and it is far off).
fn confirm_totp(
    key: &TotpKey,
    c1: &Code,
    c2: &Code,
    now: i64,
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
        Ok(t) => {
            let secs = (t - now_step) * i64::from(key.params().period);
            Err(Error::ClockSkew {
                minutes: (secs.abs() + 30) / 60,
                direction: if secs > 0 { "ahead of" } else { "behind" },
            })
        }
        Err(_) => Err(pair_error(e)),
    }
}

/// Assigns the inventory token `serial` to `user` as device `name` once `first` and
/// `second` are two consecutive codes of it: consecutive time steps near now for a TOTP
/// token, consecutive counter values within [`HOTP_RESYNC_LOOKAHEAD`] of its counter for
/// an HOTP one. Codes at or before any code the token ever had accepted (under a former
/// owner too) are refused. Returns how the token makes codes.
///
/// The errors are precise, for root; a user registering a token for themselves goes
/// through [`register_own_token`]. Either way the checks run in one order whatever the
/// serial: the user's own room and name first (which say nothing about any token), then
/// the token looked up and the codes searched for, against its key or, for a serial that
/// is not in the inventory, against a throw-away one ([`search_without_a_token`]), and
/// only then is a missing or assigned token refused.
pub fn register_token(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    serial: &str,
    first: &[u8],
    second: &[u8],
    now: i64,
) -> Result<Mode> {
    let (c1, c2) = parse_pair(first, second)?;
    let unavailable = || Error::TokenUnavailable {
        serial: serial.to_owned(),
    };
    // The cheap refusals first, so nobody presses buttons for nothing; the search for the
    // codes, up to a few thousand HMACs, is done before taking the write lock.
    check_room_for(store, user, name, now)?;
    let Some(token) = inventory::by_serial(store.conn(), serial)? else {
        search_without_a_token(Kind::Totp, &c1, &c2, now)?;
        search_without_a_token(Kind::Hotp, &c1, &c2, now)?;
        return Err(unavailable());
    };
    // An assigned token's codes are searched for all the same, so that it takes as long
    // to refuse as a free one with wrong codes; and the search a token of the other kind
    // would make is made too, so that neither the serial's existence nor its kind shows in
    // the time an answer takes.
    let start = token_start(&token, &c1, &c2, now);
    search_without_a_token(
        match token.mode {
            Mode::Totp { .. } => Kind::Hotp,
            Mode::Hotp { .. } => Kind::Totp,
        },
        &c1,
        &c2,
        now,
    )?;
    if token.assigned.is_some() {
        return Err(unavailable());
    }
    let start = start?;
    let tx = store.write()?;
    // Re-read inside the transaction: someone else may have registered the token, or its
    // codes moved on, since the codes were searched for.
    // `import --replace` keeps a token's row but may load another seed: the codes were
    // checked against this one, so the token must still hold it, with the same parameters.
    let current = inventory::by_serial(&tx, serial)?
        .filter(|t| {
            t.id == token.id
                && t.assigned.is_none()
                && t.algorithm == token.algorithm
                && t.digits == token.digits
                && t.mode.as_str() == token.mode.as_str()
                && bool::from(t.secret.as_bytes().ct_eq(token.secret.as_bytes()))
        })
        .ok_or_else(unavailable)?;
    let fresh = match (start, current.mode) {
        (TokenStart::Totp { last_step, .. }, _) => {
            current.last_step.is_none_or(|m| last_step - 1 > m)
        }
        (TokenStart::Hotp { counter }, Mode::Hotp { counter: next }) => counter - 2 >= next,
        (TokenStart::Hotp { .. }, Mode::Totp { .. }) => false,
    };
    if !fresh {
        return Err(Error::CodesAlreadyUsed);
    }
    devices::insert_token(&tx, user.as_str(), name.as_str(), token.id, start, now)?;
    tx.commit()?;
    Ok(token.mode)
}

/// Where `token` stands once `c1`, `c2` are found among its codes.
fn token_start(
    token: &inventory::InventoryToken,
    c1: &Code,
    c2: &Code,
    now: i64,
) -> Result<TokenStart> {
    Ok(match token.mode {
        Mode::Totp { period } => {
            let params = TotpParams {
                algorithm: token.algorithm,
                digits: token.digits,
                period,
            };
            let key = TotpKey::new(&token.secret, params)?;
            let (t, drift) = confirm_totp(&key, c1, c2, now, ClockFix::Nobody)?;
            TokenStart::Totp {
                drift,
                last_step: t + 1,
            }
        }
        Mode::Hotp { counter } => TokenStart::Hotp {
            counter: find_hotp_pair(&token_hotp_key(token)?, c1, c2, counter)? + 2,
        },
    })
}

/// The cheap refusals of a registration that activates at once (a token, a key): no room
/// for another active device, or an active one of that name already; checked before the
/// person presses buttons or touches a key, and again when the device is inserted.
fn check_room_for(store: &Store, user: &UserName, name: &DeviceName, now: i64) -> Result<()> {
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

/// How long a user's failed token registration takes to answer, whatever its serial and
/// codes: longer than any search of the inventory's tokens takes, short enough for a
/// person not to notice. The caller waits it out with [`wait_out_token_refusal`] where
/// waiting blocks nobody else (`mfa`'s own process, `mfad`'s connection thread, never
/// `mfad` while it holds the store's turn).
pub const TOKEN_REFUSAL_TIME: std::time::Duration = std::time::Duration::from_millis(250);

/// Every search has the same shape whatever the serial (see `search_without_a_token`),
/// but a token of another period or hash takes longer or shorter: a non-root caller's
/// refusal is answered only once [`TOKEN_REFUSAL_TIME`] has passed since `started`, the
/// moment the request arrived, whatever the serial typed.
pub fn wait_out_token_refusal(started: std::time::Instant) {
    if let Some(rest) = TOKEN_REFUSAL_TIME.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
}

/// The two kinds of search a token registration makes.
#[derive(Clone, Copy)]
enum Kind {
    Totp,
    Hotp,
}

/// The search [`token_start`] makes for a token of `kind`, against a fresh random key
/// shaped like the usual hardware token (SHA-1, as many digits as were typed; 30 s when
/// time-based), whose codes nobody can know, so the search runs its full length (about
/// 2,900 HMACs time-based, 1,001 event-based) exactly as for such a token given wrong
/// codes. Every registration makes one search of each kind, a token's own and this one for
/// the other (both for a serial that is not in the inventory): refusing at once would
/// answer in microseconds where a real token takes milliseconds, and tell serials apart by
/// time alone. The result is dropped.
fn search_without_a_token(kind: Kind, c1: &Code, c2: &Code, now: i64) -> Result<()> {
    let digits = u8::try_from(c1.len()).unwrap_or(6).clamp(6, 8);
    match kind {
        Kind::Totp => {
            let params = TotpParams {
                digits,
                ..TotpParams::DEFAULT
            };
            let key = TotpKey::new(&Secret::generate()?, params)?;
            let _ = std::hint::black_box(confirm_totp(&key, c1, c2, now, ClockFix::Nobody));
        }
        Kind::Hotp => {
            let params = HotpParams {
                algorithm: crate::otp::Algorithm::Sha1,
                digits,
            };
            let key = HotpKey::new(&Secret::generate()?, params)?;
            let _ = std::hint::black_box(find_hotp_pair(&key, c1, c2, 0));
        }
    }
    Ok(())
}

/// [`register_token`] for a user registering a token for themselves (`mfa enroll token`
/// run by them, not by root). Every refusal that comes from the store's contents or the
/// codes, from "no room for another device" to "the second code is wrong", is the one
/// answer [`Error::TokenNotRegistered`] and counts toward the user's lock-out as a wrong
/// code at a login does: otherwise the answers would tell which serial numbers exist and
/// which are free, or which of two codes was right, to anyone who asks often enough.
/// Codes that are not codes (letters, the wrong length) are told as they are and not
/// counted: they say nothing about any token. Root, who holds the inventory, calls
/// [`register_token`] and is told exactly.
#[allow(clippy::too_many_arguments)]
pub fn register_own_token(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    serial: &str,
    first: &[u8],
    second: &[u8],
    settings: LoginSettings,
    now: i64,
) -> Result<Mode> {
    parse_pair(first, second)?;
    // Locked: not even the right codes of a free token are looked at.
    if let Some(until) = login::locked_until(store, user, now)? {
        return Err(Error::LockedOut { until });
    }
    match register_token(store, user, name, serial, first, second, now) {
        Ok(mode) => return Ok(mode),
        Err(e) if e.is_system() => return Err(e),
        Err(_) => {}
    }
    match login::count_refusal(store, user, Refusal::WrongCode, settings, now)? {
        Outcome::Locked { until }
        | Outcome::Refused {
            locked_until: Some(until),
            ..
        } => Err(Error::LockedOut { until }),
        _ => Err(Error::TokenNotRegistered),
    }
}

/// `mfa enroll token`'s rule, for `mfa` and `mfad` alike: root, who holds the inventory,
/// is told exactly what is wrong ([`register_token`]); anyone else registering a token for
/// themselves gets the one answer that counts ([`register_own_token`], issue 16, finding
/// 4), checked under the policy's lock-out (module arguments do not apply here). The
/// serial's form is checked first: it says nothing about the inventory.
#[allow(clippy::too_many_arguments)]
pub fn register_token_as(
    store: &mut Store,
    caller_uid: u32,
    user: &UserName,
    name: &DeviceName,
    serial: &str,
    first: &[u8],
    second: &[u8],
    now: i64,
) -> Result<Mode> {
    crate::tokens::check_serial(serial).map_err(Error::InvalidSerial)?;
    if caller_uid == 0 {
        return register_token(store, user, name, serial, first, second, now);
    }
    let policy = crate::policy::load(store.conn())?;
    let settings = crate::settings::Overrides::default().settings(&policy);
    register_own_token(store, user, name, serial, first, second, settings, now)
}

fn token_hotp_key(token: &inventory::InventoryToken) -> Result<HotpKey> {
    HotpKey::new(
        &token.secret,
        HotpParams {
            algorithm: token.algorithm,
            digits: token.digits,
        },
    )
}

/// The counter value of `c1` when `c1`, `c2` are two consecutive codes within
/// [`HOTP_RESYNC_LOOKAHEAD`] from `next`, the first value not used yet.
fn find_hotp_pair(key: &HotpKey, c1: &Code, c2: &Code, next: i64) -> Result<i64> {
    match key.find_consecutive(c1, c2, next..=next + HOTP_RESYNC_LOOKAHEAD) {
        Ok(c) => Ok(c),
        Err(PairError::NotConsecutive) => Err(Error::NotConsecutive),
        Err(_) => Err(Error::CounterNotFound {
            lookahead: HOTP_RESYNC_LOOKAHEAD,
        }),
    }
}

/// The first half of a key registration, before anything is asked of the key: the RP id
/// is one we accept, there is room for another active device named `name`, and the
/// credential ids the key must not register again (the user's active keys). `mfad` runs
/// it and its client asks the key (`pam_mfa_fido2::registration::register_over`).
pub fn begin_fido2(
    store: &Store,
    user: &UserName,
    name: &DeviceName,
    rp_id: &str,
    now: i64,
) -> Result<Vec<Vec<u8>>> {
    fido2::check_rp_id(rp_id)?;
    check_room_for(store, user, name, now)?;
    Ok(devices::active_fido2(store.conn(), user.as_str())?
        .into_iter()
        .map(|d| d.credential.credential_id)
        .collect())
}

/// The second half of a key registration: the key's `attestation` of `challenge` for
/// `rp_id` verified (with the UV flag when `needs_uv`), and the key stored as an active
/// device in one transaction (which checks the name, the room and the credential id
/// again).
#[allow(clippy::too_many_arguments)]
pub fn finish_fido2(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    rp_id: &str,
    needs_uv: bool,
    challenge: &[u8; 32],
    attestation: &fido2::transport::RawAttestation,
    now: i64,
) -> Result<fido2::verify::Registration> {
    let registration = fido2::verify::verify_registration(attestation, rp_id, challenge, needs_uv)
        .map_err(Fido2Error::Rejected)?;
    let tx = store.write()?;
    devices::insert_fido2(
        &tx,
        user.as_str(),
        name.as_str(),
        &devices::NewFido2 {
            credential_id: &registration.credential_id,
            cose_public_key: &registration.cose_public_key,
            sign_count: registration.sign_count,
            rp_id,
            uv_required: needs_uv,
        },
        now,
    )?;
    tx.commit()?;
    Ok(registration)
}

fn pair_error(e: PairError) -> Error {
    match e {
        PairError::FirstWrong => Error::FirstCodeWrong,
        PairError::SecondWrong => Error::SecondCodeWrong,
        PairError::NotConsecutive => Error::NotConsecutive,
    }
}

/// What a resync found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resynced {
    /// A time-based device's clock offset, in seconds (positive: it runs ahead).
    Clock { drift_secs: i64 },
    /// How many codes an event-based token had made without being used.
    Counter { skipped: i64 },
}

/// Brings a code device back in sync with two consecutive codes: a time-based one's clock
/// is searched for within about ±12 hours and its drift stored; an event-based token's
/// counter is searched for within the next [`HOTP_RESYNC_LOOKAHEAD`] codes and moved past
/// them.
pub fn resync(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    first: &[u8],
    second: &[u8],
    now: i64,
) -> Result<Resynced> {
    let (c1, c2) = parse_pair(first, second)?;
    if devices::kind_of(store.conn(), user.as_str(), name.as_str(), now)?
        == Some(devices::DeviceKind::Fido2)
    {
        return Err(Error::NotTotp {
            name: name.to_string(),
            action: "resynced",
        });
    }
    if let Some(device) = devices::hotp_by_name(store.conn(), user.as_str(), name.as_str())? {
        return resync_hotp(store, user, name, &device, &c1, &c2);
    }
    let device = devices::totp_by_name(store.conn(), user.as_str(), name.as_str(), now)?
        .ok_or_else(|| Error::NoSuchDevice {
            user: user.to_string(),
            name: name.to_string(),
        })?;
    if device.state != devices::DeviceState::Active {
        return Err(Error::DeviceNotActive {
            name: name.to_string(),
        });
    }
    // Thousands of HMACs: done before taking the write lock, so logins never wait on it.
    let key = TotpKey::new(&device.secret, device.params)?;
    let now_step = device.params.step_at(now);
    let t = key
        .find_consecutive(&c1, &c2, now_step - RESYNC_STEPS..=now_step + RESYNC_STEPS)
        .map_err(|_| Error::ResyncFailed)?;
    let tx = store.write()?;
    // Re-read inside the transaction: a login may have used a newer code meanwhile, and
    // resync codes are codes like any other, never accepted twice.
    let current = devices::totp_by_name(&tx, user.as_str(), name.as_str(), now)?
        .filter(|d| d.id == device.id && d.state == devices::DeviceState::Active)
        .ok_or_else(|| Error::NoSuchDevice {
            user: user.to_string(),
            name: name.to_string(),
        })?;
    if current.last_step.is_some_and(|last| t <= last) {
        return Err(Error::CodesAlreadyUsed);
    }
    let drift = t + 1 - now_step;
    devices::resync(&tx, device.id, drift, t + 1)?;
    tx.commit()?;
    Ok(Resynced::Clock {
        drift_secs: drift * i64::from(device.params.period),
    })
}

fn resync_hotp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    device: &devices::HotpDevice,
    c1: &Code,
    c2: &Code,
) -> Result<Resynced> {
    let key = HotpKey::new(&device.secret, device.params)?;
    let c = find_hotp_pair(&key, c1, c2, device.counter)?;
    let tx = store.write()?;
    // As for time-based devices: a login may have used these codes meanwhile.
    let current = devices::hotp_by_name(&tx, user.as_str(), name.as_str())?
        .filter(|d| d.id == device.id)
        .ok_or_else(|| Error::NoSuchDevice {
            user: user.to_string(),
            name: name.to_string(),
        })?;
    if c < current.counter {
        return Err(Error::CodesAlreadyUsed);
    }
    devices::advance_counter(&tx, device.id, c + 2, None)?;
    tx.commit()?;
    Ok(Resynced::Counter {
        skipped: c - device.counter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::devices::{self, DeviceState};
    use crate::test_support::*;

    fn begin(ts: &mut TempStore, who: &str, name: &str, now: i64) -> String {
        let p = begin_totp(&mut ts.store, &user(who), &device(name), "host", now).unwrap();
        p.secret.to_base32().to_string()
    }

    #[test]
    fn two_consecutive_codes_activate() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
        finish_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        let list = devices::list(ts.store.conn(), "alice", T0).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].state, DeviceState::Active);
        // Finishing again: it is already active, and says so.
        assert!(matches!(
            finish_totp(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                c1.as_bytes(),
                c2.as_bytes(),
                T0
            ),
            Err(Error::AlreadyActive { .. })
        ));
    }

    #[test]
    fn which_code_was_wrong() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let f = |a: &str, b: &str, ts: &mut TempStore| {
            finish_totp(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                a.as_bytes(),
                b.as_bytes(),
                T0,
            )
            .unwrap_err()
        };
        let now = oathtool(&s, T0);
        let next = oathtool(&s, T0 + 30);
        let prev = oathtool(&s, T0 - 30);
        assert!(matches!(f("000000", &now, &mut ts), Error::FirstCodeWrong) || prev == "000000");
        assert!(matches!(
            f(&prev, "12345", &mut ts),
            Error::MalformedCode {
                which: "second",
                ..
            }
        ));
        assert!(matches!(
            f("12a456", &now, &mut ts),
            Error::MalformedCode { which: "first", .. }
        ));
        assert!(matches!(f(&prev, &next, &mut ts), Error::NotConsecutive));
        // Stale: the pair from 20 steps ago is outside the 10-step allowance…
        let old1 = oathtool(&s, T0 - 600);
        let old2 = oathtool(&s, T0 - 570);
        assert!(matches!(
            f(&old1, &old2, &mut ts),
            Error::ClockSkew {
                minutes: 10,
                direction: "behind"
            }
        ));
        // …and a phone 2 hours fast is reported as such.
        let fast1 = oathtool(&s, T0 + 7200);
        let fast2 = oathtool(&s, T0 + 7230);
        assert!(matches!(
            f(&fast1, &fast2, &mut ts),
            Error::ClockSkew {
                minutes: 120,
                direction: "ahead of"
            }
        ));
        // None of that activated anything.
        let list = devices::list(ts.store.conn(), "alice", T0).unwrap();
        assert_eq!(list[0].state, DeviceState::Pending);
    }

    #[test]
    fn pending_devices_expire_and_do_not_count() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let later = T0 + PENDING_LIFETIME_SECS + 1;
        let (c1, c2) = (oathtool(&s, later - 30), oathtool(&s, later));
        assert!(matches!(
            finish_totp(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                c1.as_bytes(),
                c2.as_bytes(),
                later
            ),
            Err(Error::NoPendingDevice { .. })
        ));
        assert!(
            devices::list(ts.store.conn(), "alice", later)
                .unwrap()
                .is_empty()
        );
        // Restarting a registration under the same name replaces the pending one.
        let s1 = begin(&mut ts, "alice", "tablet", T0);
        let s2 = begin(&mut ts, "alice", "tablet", T0 + 1);
        assert_ne!(s1, s2);
        let list = devices::list(ts.store.conn(), "alice", T0 + 1).unwrap();
        assert_eq!(list.iter().filter(|d| d.name == "tablet").count(), 1);
    }

    #[test]
    fn at_most_eight_active_devices() {
        let mut ts = temp_store();
        for i in 0..8 {
            let name = format!("d{i}");
            let s = begin(&mut ts, "bob", &name, T0);
            let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
            finish_totp(
                &mut ts.store,
                &user("bob"),
                &device(&name),
                c1.as_bytes(),
                c2.as_bytes(),
                T0,
            )
            .unwrap();
        }
        assert!(matches!(
            begin_totp(&mut ts.store, &user("bob"), &device("d8"), "host", T0),
            Err(Error::TooManyDevices { max: 8, .. })
        ));
        // Even a pending device created behind the check's back cannot be activated: the
        // store's trigger refuses a 9th.
        let secret = Secret::generate().unwrap();
        devices::insert_pending_totp(
            ts.store.conn(),
            "bob",
            "sneaky",
            &secret,
            TotpParams::DEFAULT,
            T0,
            T0 + 600,
        )
        .unwrap();
        let s = secret.to_base32().to_string();
        let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
        assert!(matches!(
            finish_totp(
                &mut ts.store,
                &user("bob"),
                &device("sneaky"),
                c1.as_bytes(),
                c2.as_bytes(),
                T0
            ),
            Err(Error::TooManyDevices { .. })
        ));
        let err = ts
            .store
            .conn()
            .execute(
                "UPDATE devices SET state = 'active', expires_at = NULL WHERE name = 'sneaky'",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("at most 8"), "{err}");
        assert_eq!(devices::count_active(ts.store.conn(), "bob").unwrap(), 8);
        // Another user is not affected.
        begin(&mut ts, "carol", "phone", T0);
    }

    #[test]
    fn names_are_unique_per_user() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
        finish_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        assert!(matches!(
            begin_totp(&mut ts.store, &user("alice"), &device("phone"), "host", T0),
            Err(Error::DuplicateName { .. })
        ));
        begin(&mut ts, "bob", "phone", T0);
    }

    #[test]
    fn resync_finds_a_drifted_clock_and_burns_its_codes() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
        finish_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        let now = T0 + 3600;
        let ahead = now + 600;
        let (r1, r2) = (oathtool(&s, ahead - 30), oathtool(&s, ahead));
        let drift = resync(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            r1.as_bytes(),
            r2.as_bytes(),
            now,
        )
        .unwrap();
        assert_eq!(drift, Resynced::Clock { drift_secs: 600 });
        // The same codes again: already used.
        assert!(matches!(
            resync(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                r1.as_bytes(),
                r2.as_bytes(),
                now
            ),
            Err(Error::CodesAlreadyUsed)
        ));
        // 13 hours off is outside the search.
        let far = now + 13 * 3600;
        let (f1, f2) = (oathtool(&s, far), oathtool(&s, far + 30));
        assert!(matches!(
            resync(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                f1.as_bytes(),
                f2.as_bytes(),
                now
            ),
            Err(Error::ResyncFailed)
        ));
        assert!(matches!(
            resync(
                &mut ts.store,
                &user("alice"),
                &device("tablet"),
                f1.as_bytes(),
                f2.as_bytes(),
                now
            ),
            Err(Error::NoSuchDevice { .. })
        ));
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;
    use crate::store::devices::{self, DeviceKind};
    use crate::test_support::*;

    fn register(
        ts: &mut TempStore,
        who: &str,
        name: &str,
        serial: &str,
        c1: &str,
        c2: &str,
        at: i64,
    ) -> Result<Mode> {
        register_token(
            &mut ts.store,
            &user(who),
            &device(name),
            serial,
            c1.as_bytes(),
            c2.as_bytes(),
            at,
        )
    }

    fn hotp(counter: i64) -> String {
        oathtool_hotp(RFC4226_KEY_HEX, counter, &[])
    }

    fn register_own(ts: &mut TempStore, serial: &str, c1: &str, c2: &str) -> Result<Mode> {
        register_own_token(
            &mut ts.store,
            &user("alice"),
            &device("fob"),
            serial,
            c1.as_bytes(),
            c2.as_bytes(),
            LoginSettings::default(),
            T0,
        )
    }

    fn failures(ts: &TempStore) -> u32 {
        crate::store::auth_state::load(ts.store.conn(), "alice")
            .unwrap()
            .failures
    }

    // Issue 16, finding 4: at the device limit a known serial got "already has 1 active
    // devices", an unknown one the generic answer, and neither counted. Now a user
    // registering a token for themselves gets one answer for any serial and any codes,
    // and every try counts until the lock-out stops them.
    #[test]
    fn a_users_own_token_gets_one_answer_that_counts() {
        let mut ts = temp_store();
        import_csv(
            &mut ts,
            &format!("H-1,{RFC4226_KEY_HEX},hotp\nH-2,{RFC4226_KEY_HEX},hotp\n"),
        );
        let tx = ts.store.write().unwrap();
        crate::policy::set(&tx, "max_devices", "1").unwrap();
        tx.commit().unwrap();
        register(&mut ts, "alice", "phone", "H-1", &hotp(0), &hotp(1), T0).unwrap();
        let tries = [
            ("H-2", hotp(7), hotp(9)),  // known, free, wrong codes
            ("H-2", hotp(0), hotp(1)),  // known, free, right codes
            ("H-1", hotp(2), hotp(3)),  // known, assigned (to her), right codes
            ("NOPE", hotp(0), hotp(1)), // not in the inventory
        ];
        for (n, (serial, c1, c2)) in tries.iter().enumerate() {
            let e = register_own(&mut ts, serial, c1, c2).unwrap_err();
            assert!(matches!(e, Error::TokenNotRegistered), "{serial}: {e:?}");
            assert_eq!(failures(&ts), n as u32 + 1, "{serial}");
        }
        // The fifth try (max_failures 5) starts the lock-out; then nothing is looked at.
        let e = register_own(&mut ts, "H-2", &hotp(0), &hotp(1)).unwrap_err();
        assert!(matches!(e, Error::LockedOut { .. }), "{e:?}");
        let e = register_own(&mut ts, "H-2", &hotp(0), &hotp(1)).unwrap_err();
        assert!(matches!(e, Error::LockedOut { .. }), "{e:?}");
        assert_eq!(failures(&ts), 5);
        // Root is still told exactly.
        let e = register(&mut ts, "alice", "fob", "H-2", &hotp(0), &hotp(1), T0).unwrap_err();
        assert!(matches!(e, Error::TooManyDevices { .. }), "{e:?}");
    }

    #[test]
    fn a_users_own_token_registers_and_typing_errors_are_not_counted() {
        let mut ts = temp_store();
        import_csv(&mut ts, &format!("H-1,{RFC4226_KEY_HEX},hotp\n"));
        let e = register_own(&mut ts, "H-1", "12ab56", &hotp(1)).unwrap_err();
        assert!(matches!(e, Error::MalformedCode { .. }), "{e:?}");
        assert_eq!(failures(&ts), 0);
        let e = register_own(&mut ts, "H-1", &hotp(0), &hotp(2)).unwrap_err();
        assert!(matches!(e, Error::TokenNotRegistered), "{e:?}");
        assert_eq!(failures(&ts), 1);
        register_own(&mut ts, "H-1", &hotp(0), &hotp(1)).unwrap();
        assert_eq!(failures(&ts), 1, "a registration is not a login");
    }

    #[test]
    fn an_unknown_serial_is_searched_for_like_a_token() {
        // The throw-away key's search runs to its end and is dropped: the answer is the
        // token's absence, whatever the codes.
        let mut ts = temp_store();
        for (c1, c2) in [("123456", "234567"), ("12345678", "23456789")] {
            let e = register(&mut ts, "alice", "fob", "NOPE", c1, c2, T0).unwrap_err();
            assert!(matches!(e, Error::TokenUnavailable { .. }), "{e:?}");
        }
    }

    #[test]
    fn hotp_token_registers_with_two_presses_within_the_look_ahead() {
        let mut ts = temp_store();
        import_csv(&mut ts, &format!("H-1,{RFC4226_KEY_HEX},hotp\n"));
        // Pressed three times in the office first: codes 3 and 4.
        let mode = register(&mut ts, "alice", "fob", "H-1", &hotp(3), &hotp(4), T0).unwrap();
        assert_eq!(mode, Mode::Hotp { counter: 0 });
        let d = devices::hotp_by_name(ts.store.conn(), "alice", "fob")
            .unwrap()
            .unwrap();
        assert_eq!(d.counter, 5);
        let listed = devices::list(ts.store.conn(), "alice", T0).unwrap();
        assert_eq!(listed[0].kind, DeviceKind::Token);
        // One owner at a time: bob gets a refusal that does not say who has it.
        let e = register(&mut ts, "bob", "fob", "H-1", &hotp(5), &hotp(6), T0).unwrap_err();
        assert!(matches!(e, Error::TokenUnavailable { .. }), "{e:?}");
        assert!(!e.to_string().contains("alice"));
        let e = register(&mut ts, "bob", "fob", "NOPE", &hotp(5), &hotp(6), T0).unwrap_err();
        assert!(matches!(e, Error::TokenUnavailable { .. }), "{e:?}");
        // Two presses, but not in a row; then beyond the look-ahead.
        import_csv(&mut ts, &format!("H-2,{RFC4226_KEY_HEX},hotp\n"));
        let e = register(&mut ts, "bob", "fob", "H-2", &hotp(1), &hotp(3), T0).unwrap_err();
        assert!(matches!(e, Error::NotConsecutive), "{e:?}");
        let far = HOTP_RESYNC_LOOKAHEAD + 1;
        let e = register(&mut ts, "bob", "fob", "H-2", &hotp(far), &hotp(far + 1), T0).unwrap_err();
        assert!(matches!(e, Error::CounterNotFound { .. }), "{e:?}");
        assert!(
            devices::list(ts.store.conn(), "bob", T0)
                .unwrap()
                .is_empty()
        );
        // Two presses typed the other way round are the same proof: both are used up.
        register(&mut ts, "bob", "fob", "H-2", &hotp(2), &hotp(1), T0).unwrap();
        let d = devices::hotp_by_name(ts.store.conn(), "bob", "fob")
            .unwrap()
            .unwrap();
        assert_eq!(d.counter, 3);
    }

    #[test]
    fn removing_the_device_returns_the_token_with_its_codes_used_up() {
        let mut ts = temp_store();
        import_csv(&mut ts, &format!("H-1,{RFC4226_KEY_HEX},hotp\n"));
        register(&mut ts, "alice", "fob", "H-1", &hotp(0), &hotp(1), T0).unwrap();
        // A login moves the counter on to 8.
        let tx = ts.store.write().unwrap();
        let d = devices::hotp_by_name(&tx, "alice", "fob").unwrap().unwrap();
        devices::advance_counter(&tx, d.id, 8, Some(T0)).unwrap();
        tx.commit().unwrap();
        // The store refuses to move it back.
        assert!(
            ts.store
                .conn()
                .execute("UPDATE devices SET counter = 2 WHERE name = 'fob'", [])
                .is_err()
        );
        // A token with an owner cannot leave the inventory.
        let tx = ts.store.write().unwrap();
        assert!(matches!(
            inventory::remove(&tx, "H-1"),
            Err(Error::TokenAssigned { .. })
        ));
        assert!(tx.execute("DELETE FROM tokens", []).is_err(), "foreign key");
        devices::remove(&tx, "alice", "fob", T0).unwrap();
        tx.commit().unwrap();
        let t = inventory::by_serial(ts.store.conn(), "H-1")
            .unwrap()
            .unwrap();
        assert!(t.assigned.is_none());
        assert_eq!(t.mode, Mode::Hotp { counter: 8 });
        // Codes alice used cannot register it again; the next ones can.
        let e = register(&mut ts, "bob", "key", "H-1", &hotp(6), &hotp(7), T0).unwrap_err();
        assert!(matches!(e, Error::CounterNotFound { .. }), "{e:?}");
        register(&mut ts, "bob", "key", "H-1", &hotp(8), &hotp(9), T0).unwrap();
    }

    #[test]
    fn totp_token_registers_and_its_drift_is_found() {
        let mut ts = temp_store();
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        import_csv(&mut ts, &format!("T-1,{b32},totp-sha256,8\nT-2,{b32}\n"));
        let code = |t: i64| oathtool_with(b32, t, &["--digits=8", "--totp=sha256"]);
        let mode = register(
            &mut ts,
            "alice",
            "card",
            "T-1",
            &code(T0 - 30),
            &code(T0),
            T0,
        )
        .unwrap();
        assert_eq!(mode, Mode::Totp { period: 30 });
        let d = devices::totp_by_name(ts.store.conn(), "alice", "card", T0)
            .unwrap()
            .unwrap();
        assert_eq!((d.drift, d.last_step), (0, Some(T0 / 30)));
        assert_eq!(d.params.digits, 8);
        // A token whose clock runs 20 minutes fast is taken with its offset.
        let fast = |t: i64| oathtool(b32, t + 1200);
        register(&mut ts, "bob", "fob", "T-2", &fast(T0 - 30), &fast(T0), T0).unwrap();
        let d = devices::totp_by_name(ts.store.conn(), "bob", "fob", T0)
            .unwrap()
            .unwrap();
        assert_eq!(d.drift, 40);
        // Removing it hands the last used step back: those codes are spent for good.
        let tx = ts.store.write().unwrap();
        devices::remove(&tx, "bob", "fob", T0).unwrap();
        tx.commit().unwrap();
        let e = register(
            &mut ts,
            "carol",
            "fob",
            "T-2",
            &fast(T0 - 30),
            &fast(T0),
            T0 + 5,
        )
        .unwrap_err();
        assert!(matches!(e, Error::CodesAlreadyUsed), "{e:?}");
    }

    #[test]
    fn a_token_clock_is_searched_12_hours_either_way_whatever_its_step() {
        let mut ts = temp_store();
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        import_csv(
            &mut ts,
            &format!("S-1,{b32},totp,6,300\nS-2,{b32},totp,6,300\n"),
        );
        let at = |offset: i64| {
            move |t: i64| oathtool_with(b32, t + offset, &["--totp", "--time-step-size=300s"])
        };
        // 11 hours fast: found (with its offset in 300 s steps).
        let c = at(11 * 3600);
        register(&mut ts, "alice", "slow", "S-1", &c(T0 - 300), &c(T0), T0).unwrap();
        let d = devices::totp_by_name(ts.store.conn(), "alice", "slow", T0)
            .unwrap()
            .unwrap();
        assert_eq!(d.drift, 11 * 12);
        // 13 hours: not, though 13 hours is only 156 of its 300 s steps.
        let c = at(13 * 3600);
        let e = register(&mut ts, "bob", "far", "S-2", &c(T0 - 300), &c(T0), T0).unwrap_err();
        assert!(matches!(e, Error::FirstCodeWrong), "{e:?}");
    }

    #[test]
    fn tokens_count_toward_the_eight_devices() {
        let mut ts = temp_store();
        let mut csv = String::new();
        for i in 0..9 {
            csv.push_str(&format!("S{i},{RFC4226_KEY_HEX},hotp\n"));
        }
        import_csv(&mut ts, &csv);
        for i in 0..8 {
            register(
                &mut ts,
                "alice",
                &format!("t{i}"),
                &format!("S{i}"),
                &hotp(0),
                &hotp(1),
                T0,
            )
            .unwrap();
        }
        let e = register(&mut ts, "alice", "t8", "S8", &hotp(0), &hotp(1), T0).unwrap_err();
        assert!(matches!(e, Error::TooManyDevices { max: 8, .. }), "{e:?}");
        // The trigger counts them too, whatever the code path.
        let id: i64 = ts
            .store
            .conn()
            .query_row("SELECT id FROM tokens WHERE serial = 'S8'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let r = ts.store.conn().execute(
            "INSERT INTO devices (user, name, kind, state, created_at, token_id, counter)
             VALUES ('alice', 'x', 'token', 'active', 0, ?1, 2)",
            [id],
        );
        assert!(r.unwrap_err().to_string().contains("at most 8"));
    }

    #[test]
    fn the_schema_keeps_token_devices_consistent() {
        let mut ts = temp_store();
        import_csv(
            &mut ts,
            &format!("H,{RFC4226_KEY_HEX},hotp\nT,{RFC4226_KEY_HEX}\n"),
        );
        let conn = ts.store.conn();
        let id = |serial: &str| -> i64 {
            conn.query_row("SELECT id FROM tokens WHERE serial = ?1", [serial], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let insert =
            |name: &str, kind: &str, token: Option<i64>, counter: Option<i64>, state: &str| {
                conn.execute(
                    "INSERT INTO devices (user, name, kind, state, created_at, token_id, counter,
                                      expires_at)
                 VALUES ('u', ?1, ?2, ?3, 0, ?4, ?5, 99)",
                    rusqlite::params![name, kind, state, token, counter],
                )
            };
        assert!(
            insert("a", "token", None, Some(0), "active").is_err(),
            "no token"
        );
        assert!(
            insert("b", "token", Some(id("H")), None, "active").is_err(),
            "hotp without counter"
        );
        assert!(
            insert("c", "token", Some(id("T")), Some(0), "active").is_err(),
            "totp with counter"
        );
        assert!(
            insert("d", "token", Some(id("H")), Some(0), "pending").is_err(),
            "pending token"
        );
        assert!(
            insert("e", "fido2", Some(id("H")), None, "active").is_err(),
            "token on a key"
        );
        assert!(
            insert("f", "token", Some(12345), Some(0), "active").is_err(),
            "no such token"
        );
        insert("g", "token", Some(id("H")), Some(0), "active").unwrap();
        assert!(
            insert("h", "token", Some(id("H")), Some(0), "active").is_err(),
            "second owner"
        );
        assert!(
            conn.execute(
                "UPDATE devices SET token_id = ?1 WHERE name = 'g'",
                [id("T")]
            )
            .is_err(),
            "a device's token is fixed"
        );
    }
}
