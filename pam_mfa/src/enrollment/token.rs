//! Hardware tokens from the inventory: assigned to a user by serial number and two
//! consecutive codes, with refusals that say nothing about the inventory to a non-root
//! caller.

use super::totp::{ClockFix, confirm_totp};
use super::*;
use crate::clock::UnixTime;

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
    now: UnixTime,
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
pub(super) fn token_start(
    token: &inventory::InventoryToken,
    c1: &Code,
    c2: &Code,
    now: UnixTime,
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
pub(super) enum Kind {
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
pub(super) fn search_without_a_token(
    kind: Kind,
    c1: &Code,
    c2: &Code,
    now: UnixTime,
) -> Result<()> {
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
    now: UnixTime,
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
/// themselves gets the one answer that counts ([`register_own_token`]: which serials
/// exist is nobody else's business), checked under the policy's lock-out (module arguments do not apply here). The
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
    now: UnixTime,
) -> Result<Mode> {
    crate::tokens::check_serial(serial).map_err(Error::InvalidSerial)?;
    if caller_uid == 0 {
        return register_token(store, user, name, serial, first, second, now);
    }
    let policy = crate::policy::load(store.conn())?;
    let settings =
        crate::settings::Effective::settings(&crate::settings::Overrides::default(), &policy);
    register_own_token(store, user, name, serial, first, second, settings, now)
}

pub(super) fn token_hotp_key(token: &inventory::InventoryToken) -> Result<HotpKey> {
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
pub(super) fn find_hotp_pair(key: &HotpKey, c1: &Code, c2: &Code, next: i64) -> Result<i64> {
    match key.find_consecutive(c1, c2, next..=next + HOTP_RESYNC_LOOKAHEAD) {
        Ok(c) => Ok(c),
        Err(PairError::NotConsecutive) => Err(Error::NotConsecutive),
        Err(_) => Err(Error::CounterNotFound {
            lookahead: HOTP_RESYNC_LOOKAHEAD,
        }),
    }
}
