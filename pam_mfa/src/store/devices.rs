//! Device records: the queries behind listing, registering, renaming, removing and
//! checking devices. Functions take a `&Connection` so callers decide the transaction;
//! anything that reads then writes is called inside [`super::Store::write`].

use pam_mfa_protocol::UnixTime;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::params::{HotpParams, MAX_COUNTER, TotpParams, TotpParams as P};
use super::secret::Secret;
use crate::error::Fido2Error;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// An authenticator app showing time-based codes.
    Totp,
    /// A FIDO2 security key (or a platform authenticator reachable over CTAP2 HID).
    Fido2,
    /// A hardware OTP token from the inventory (time- or event-based), by serial number.
    Token,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Fido2 => "fido2",
            Self::Token => "token",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "totp" => Ok(Self::Totp),
            "fido2" => Ok(Self::Fido2),
            "token" => Ok(Self::Token),
            other => Err(Error::CorruptRecord(format!(
                "unknown device kind {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Created, waiting for two consecutive codes; expires and never counts toward 8.
    Pending,
    Active,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(Self::Pending),
            "active" => Ok(Self::Active),
            other => Err(Error::CorruptRecord(format!(
                "unknown device state {other:?}"
            ))),
        }
    }
}

/// What may be shown about a device: everything but its secret.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub name: String,
    pub kind: DeviceKind,
    pub state: DeviceState,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub expires_at: Option<UnixTime>,
}

/// A TOTP device with what is needed to check its codes.
#[derive(Debug)]
pub struct TotpDevice {
    pub id: i64,
    pub name: String,
    pub state: DeviceState,
    pub secret: Secret,
    pub params: TotpParams,
    /// How many steps the device's clock runs ahead of ours (negative: behind).
    pub drift: i64,
    /// The newest step whose code was accepted; no step at or before it ever is again.
    pub last_step: Option<i64>,
}

/// The most devices a user may have active at once (the cloud consoles' limit). It lives
/// with the store because the schema's triggers and the policy row's check enforce the same
/// number, so that no code path can exceed it.
pub const MAX_DEVICES: u32 = 8;

/// Resync searches about ±12 hours (at 30 s steps) for the device's clock. It lives with
/// the store because it also bounds the drift a stored device may have: anything larger
/// was never written by us and is refused as corruption.
pub const RESYNC_STEPS: i64 = 1500;

/// No time step is larger: 2^40 one-second steps is about 35,000 years.
pub const MAX_STEP: i64 = 1 << 40;

/// The columns of a time-based code device: an app's own, or those of its hardware
/// token (whose device row holds no secret), read from [`CODE_DEVICES`].
const TOTP_COLUMNS: &str = "d.id, d.name, d.state, coalesce(t.secret, d.secret),
    coalesce(t.algorithm, d.algorithm), coalesce(t.digits, d.digits),
    coalesce(t.period, d.period), d.drift, d.last_step, d.kind, t.type";

/// Devices with the inventory entry of those that are hardware tokens.
const CODE_DEVICES: &str = "devices d LEFT JOIN tokens t ON t.id = d.token_id";

/// Which rows of [`CODE_DEVICES`] show time-based codes.
const IS_TOTP: &str = "(d.kind = 'totp' OR (d.kind = 'token' AND t.type = 'totp'))";

fn totp_from_row(r: &Row<'_>) -> rusqlite::Result<Result<TotpDevice>> {
    let kind: String = r.get(9)?;
    let token_type: Option<String> = r.get(10)?;
    let state: String = r.get(2)?;
    let secret: Option<zeroize::Zeroizing<Vec<u8>>> =
        r.get::<_, Option<Vec<u8>>>(3)?.map(zeroize::Zeroizing::new);
    let algorithm: Option<String> = r.get(4)?;
    let digits: Option<i64> = r.get(5)?;
    let period: Option<i64> = r.get(6)?;
    let (id, name, drift, last_step): (i64, String, i64, Option<i64>) =
        (r.get(0)?, r.get(1)?, r.get(7)?, r.get(8)?);
    Ok((|| {
        match (DeviceKind::parse(&kind)?, token_type.as_deref()) {
            (DeviceKind::Totp, None) | (DeviceKind::Token, Some("totp")) => {}
            _ => return Err(Error::CorruptRecord("not a TOTP device".to_owned())),
        }
        let corrupt = |what: &str| Error::CorruptRecord(format!("device {name:?}: bad {what}"));
        let secret = secret
            .filter(|s| !s.is_empty())
            .ok_or_else(|| corrupt("secret"))?;
        let params = P {
            algorithm: algorithm.ok_or_else(|| corrupt("algorithm"))?.parse()?,
            digits: digits
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| corrupt("digits"))?,
            period: period
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| corrupt("period"))?,
        }
        .validate()?;
        // Bounds that every value we write respects; anything else is corruption, refused
        // here so that step arithmetic never has to cope with extreme values.
        let max_drift = RESYNC_STEPS + 1;
        if !(-max_drift..=max_drift).contains(&drift) {
            return Err(corrupt("drift"));
        }
        if last_step.is_some_and(|s: i64| !(0..=MAX_STEP).contains(&s)) {
            return Err(corrupt("last used step"));
        }
        Ok(TotpDevice {
            id,
            state: DeviceState::parse(&state)?,
            name,
            secret: Secret::from_bytes(secret.to_vec()),
            params,
            drift,
            last_step,
        })
    })())
}

fn collect_totp(rows: Vec<Result<TotpDevice>>) -> Result<Vec<TotpDevice>> {
    rows.into_iter().collect()
}

/// The user's active TOTP devices, oldest first.
///
/// The queries a login runs sort in Rust rather than with `ORDER BY`, and those that join
/// `tokens` compare the user with `(SELECT ?1)`: otherwise SQLite's plan depends on the
/// bound user, so it marks the statement to be prepared again whenever its bindings
/// change, and rusqlite clears a cached statement's bindings each time it is put back.
/// In `mfad`, which keeps its statements, that was a new preparation of these statements
/// at every login (a sixth of its time). The user is still found through the index
/// (`EXPLAIN QUERY PLAN`), and a user has at most 8 devices to sort. Tested by
/// `login::tests::logins_reuse_their_statements_without_preparing_them_again`.
pub fn active_totp(conn: &Connection, user: &str) -> Result<Vec<TotpDevice>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOTP_COLUMNS} FROM {CODE_DEVICES}
         WHERE d.user = (SELECT ?1) AND d.state = 'active' AND {IS_TOTP}"
    ))?;
    let rows = stmt
        .query_map([user], totp_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut devices = collect_totp(rows)?;
    devices.sort_by_key(|d| d.id);
    Ok(devices)
}

/// Whether the user has any active device (of any kind).
pub fn has_active(conn: &Connection, user: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE user = ?1 AND state = 'active')",
        )?
        .query_row([user], |r| r.get(0))?)
}

pub fn count_active(conn: &Connection, user: &str) -> Result<u32> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM devices WHERE user = ?1 AND state = 'active'")?
        .query_row([user], |r| r.get(0))?)
}

/// One TOTP device (app or token) by name, in any state (expired pending ones excluded).
pub fn totp_by_name(
    conn: &Connection,
    user: &str,
    name: &str,
    now: UnixTime,
) -> Result<Option<TotpDevice>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {TOTP_COLUMNS} FROM {CODE_DEVICES} WHERE d.user = ?1 AND d.name = ?2
               AND {IS_TOTP} AND (d.state = 'active' OR d.expires_at > ?3)"
        ))?
        .query_row(params![user, name, now], totp_from_row)
        .optional()?;
    row.transpose()
}

/// All of the user's devices (pending ones until they expire), oldest first.
pub fn list(conn: &Connection, user: &str, now: UnixTime) -> Result<Vec<DeviceInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, kind, state, created_at, last_used_at, expires_at FROM devices
         WHERE user = ?1 AND (state = 'active' OR expires_at > ?2) ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![user, now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(
            |(name, kind, state, created_at, last_used_at, expires_at)| {
                Ok(DeviceInfo {
                    name,
                    kind: DeviceKind::parse(&kind)?,
                    state: DeviceState::parse(&state)?,
                    created_at,
                    last_used_at,
                    expires_at,
                })
            },
        )
        .collect()
}

/// How many unfinished registrations `user` has at `now` other than one named `name`
/// (held for a login, or not, as `held` says), and when the first of them expires.
pub fn pending_others(
    conn: &Connection,
    user: &str,
    name: &str,
    held: bool,
    now: UnixTime,
) -> Result<(u32, Option<i64>)> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*), min(expires_at) FROM devices
             WHERE user = ?1 AND state = 'pending' AND expires_at > ?3 AND name <> ?2
               AND (login_hold IS NOT NULL) = ?4",
        )?
        .query_row(params![user, name, now, held], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?)
}

/// Every user with a device row (pending or active), by name.
pub fn users(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT user FROM devices ORDER BY user")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Drops pending registrations that were never finished in time.
pub fn purge_expired(conn: &Connection, now: UnixTime) -> Result<()> {
    conn.prepare_cached("DELETE FROM devices WHERE state = 'pending' AND expires_at <= ?1")?
        .execute([now])?;
    Ok(())
}

/// Makes `name` free for a new device of `user`: an unfinished registration of that name
/// is replaced (starting over is what a person does after closing the terminal by
/// mistake), an active device keeps it.
fn claim_name(conn: &Connection, user: &str, name: &str, now: UnixTime) -> Result<()> {
    purge_expired(conn, now)?;
    let existing: Option<String> = conn
        .prepare_cached("SELECT state FROM devices WHERE user = ?1 AND name = ?2")?
        .query_row([user, name], |r| r.get(0))
        .optional()?;
    match existing.as_deref() {
        Some("pending") => {
            conn.prepare_cached("DELETE FROM devices WHERE user = ?1 AND name = ?2")?
                .execute([user, name])?;
            Ok(())
        }
        Some(_) => Err(Error::DuplicateName {
            user: user.to_owned(),
            name: name.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Records a new pending TOTP device, replacing an unfinished registration of the same
/// name (starting over is what a person does after closing the terminal by mistake).
pub fn insert_pending_totp(
    conn: &Connection,
    user: &str,
    name: &str,
    secret: &Secret,
    params: TotpParams,
    now: UnixTime,
    expires_at: UnixTime,
) -> Result<()> {
    claim_name(conn, user, name, now)?;
    conn.prepare_cached(
        "INSERT INTO devices (user, name, kind, state, secret, algorithm, digits, period,
                              created_at, expires_at)
         VALUES (?1, ?2, 'totp', 'pending', ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        user,
        name,
        secret.as_bytes(),
        params.algorithm.as_str(),
        params.digits,
        params.period,
        now,
        expires_at
    ])?;
    Ok(())
}

/// Refuses when `user` already has as many active devices as the policy's `max_devices`
/// (never more than [`MAX_DEVICES`], which the schema's triggers enforce as well).
pub fn check_room(conn: &Connection, user: &str) -> Result<()> {
    let max = super::policy::device_limit(conn)?.min(MAX_DEVICES);
    if count_active(conn, user)? >= max {
        return Err(Error::TooManyDevices {
            user: user.to_owned(),
            max,
        });
    }
    Ok(())
}

/// Makes a pending device active, enforcing the per-user limit inside the caller's
/// transaction. `last_step` burns the codes used to confirm it. `false` when the pending
/// device is gone (expired, or replaced by a new registration of the same name) or is held
/// for a login, which only that login's success activates ([`activate_held`]).
pub fn activate(
    conn: &Connection,
    user: &str,
    id: i64,
    last_step: i64,
    now: UnixTime,
) -> Result<bool> {
    check_room(conn, user)?;
    let n = conn
        .prepare_cached(
            "UPDATE devices SET state = 'active', last_step = ?2, expires_at = NULL
             WHERE id = ?1 AND state = 'pending' AND expires_at > ?3
               AND login_hold IS NULL",
        )?
        .execute(params![id, last_step, now])?;
    Ok(n == 1)
}

/// Marks the pending device `id` as belonging to the login that holds the value hashed to
/// `hold` (see `crate::login_hold`): only that login's success can activate it.
pub fn set_login_hold(conn: &Connection, id: i64, hold: &[u8; 32]) -> Result<()> {
    conn.prepare_cached("UPDATE devices SET login_hold = ?2 WHERE id = ?1 AND state = 'pending'")?
        .execute(params![id, hold.as_slice()])?;
    Ok(())
}

/// Whether device `id` is held for a login (and so not for `mfa enroll finish`).
pub fn is_held(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1 AND login_hold IS NOT NULL)",
        )?
        .query_row([id], |r| r.get(0))?)
}

/// Records that the two codes of the held registration `id` were right: the step of the
/// second (so neither code ever logs in), which is also what marks it ready for
/// [`activate_held`]. `false` when the held row is gone or expired.
pub fn confirm_held(
    conn: &Connection,
    id: i64,
    hold: &[u8; 32],
    last_step: i64,
    now: UnixTime,
) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE devices SET last_step = ?3
             WHERE id = ?1 AND login_hold = ?2 AND state = 'pending' AND expires_at > ?4
               AND last_step IS NULL",
        )?
        .execute(params![id, hold.as_slice(), last_step, now])?;
    Ok(n == 1)
}

/// Activates `user`'s registration held under `hold` whose codes were confirmed, enforcing
/// the per-user limit inside the caller's transaction. Its name, or `None` when there is
/// no such registration (expired, or replaced by another of the same name).
pub fn activate_held(
    conn: &Connection,
    user: &str,
    hold: &[u8; 32],
    now: UnixTime,
) -> Result<Option<String>> {
    let found: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, name FROM devices
             WHERE user = ?1 AND login_hold = ?2 AND state = 'pending' AND expires_at > ?3
               AND last_step IS NOT NULL",
        )?
        .query_row(params![user, hold.as_slice(), now], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((id, name)) = found else {
        return Ok(None);
    };
    check_room(conn, user)?;
    let n = conn
        .prepare_cached(
            "UPDATE devices SET state = 'active', expires_at = NULL, login_hold = NULL
             WHERE id = ?1 AND state = 'pending'",
        )?
        .execute([id])?;
    Ok((n == 1).then_some(name))
}

/// Records an accepted code: its step (for the replay check) and when it was used.
pub fn record_use(conn: &Connection, id: i64, step: i64, now: UnixTime) -> Result<()> {
    conn.prepare_cached("UPDATE devices SET last_step = ?2, last_used_at = ?3 WHERE id = ?1")?
        .execute(params![id, step, now])?;
    Ok(())
}

pub fn rename(conn: &Connection, user: &str, old: &str, new: &str, now: UnixTime) -> Result<()> {
    purge_expired(conn, now)?;
    let taken: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM devices WHERE user = ?1 AND name = ?2)")?
        .query_row([user, new], |r| r.get(0))?;
    if taken && old != new {
        return Err(Error::DuplicateName {
            user: user.to_owned(),
            name: new.to_owned(),
        });
    }
    let n = conn
        .prepare_cached("UPDATE devices SET name = ?3 WHERE user = ?1 AND name = ?2")?
        .execute([user, old, new])?;
    if n == 0 {
        return Err(Error::NoSuchDevice {
            user: user.to_owned(),
            name: old.to_owned(),
        });
    }
    Ok(())
}

pub fn remove(conn: &Connection, user: &str, name: &str, now: UnixTime) -> Result<()> {
    purge_expired(conn, now)?;
    let n = conn
        .prepare_cached("DELETE FROM devices WHERE user = ?1 AND name = ?2")?
        .execute([user, name])?;
    if n == 0 {
        return Err(Error::NoSuchDevice {
            user: user.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Stores the outcome of a resync: the new drift, and the step of the second code so it
/// cannot be replayed (never moving the replay mark backwards).
pub fn resync(conn: &Connection, id: i64, drift: i64, used_step: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE devices SET drift = ?2, last_step = MAX(COALESCE(last_step, ?3), ?3)
         WHERE id = ?1",
    )?
    .execute(params![id, drift, used_step])?;
    Ok(())
}

/// The kind of the user's device `name` (active, or pending and not expired), if any.
pub fn kind_of(
    conn: &Connection,
    user: &str,
    name: &str,
    now: UnixTime,
) -> Result<Option<DeviceKind>> {
    let kind: Option<String> = conn
        .prepare_cached(
            "SELECT kind FROM devices WHERE user = ?1 AND name = ?2
               AND (state = 'active' OR expires_at > ?3)",
        )?
        .query_row(params![user, name, now], |r| r.get(0))
        .optional()?;
    kind.as_deref().map(DeviceKind::parse).transpose()
}

/// Longest RP id accepted (DNS names are at most 253 characters).
pub const MAX_RP_ID_LEN: usize = 255;

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

/// A registered FIDO2 credential: its row, and the credential as the relying party
/// checks it (the COSE key's length is checked when read; it is parsed where it is used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fido2Device {
    pub id: i64,
    pub credential: pam_mfa_fido2::ceremony::Credential,
}

/// What registration stores for a new FIDO2 credential.
#[derive(Debug, Clone)]
pub struct NewFido2<'a> {
    pub credential_id: &'a [u8],
    pub cose_public_key: &'a [u8],
    pub sign_count: u32,
    pub rp_id: &'a str,
    pub uv_required: bool,
}

const FIDO2_COLUMNS: &str =
    "id, name, kind, state, credential_id, cose_public_key, sign_count, rp_id, uv_required";

fn fido2_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Fido2Device>> {
    let (id, name, kind, state): (i64, String, String, String) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
    let credential_id: Option<Vec<u8>> = r.get(4)?;
    let cose_public_key: Option<Vec<u8>> = r.get(5)?;
    let sign_count: Option<i64> = r.get(6)?;
    let rp_id: Option<String> = r.get(7)?;
    let uv_required: Option<i64> = r.get(8)?;
    Ok((|| {
        if DeviceKind::parse(&kind)? != DeviceKind::Fido2
            || DeviceState::parse(&state)? != DeviceState::Active
        {
            return Err(Error::CorruptRecord(
                "not an active FIDO2 device".to_owned(),
            ));
        }
        let corrupt = |what: &str| Error::CorruptRecord(format!("device {name:?}: bad {what}"));
        let credential_id = credential_id
            .filter(|c| (1..=pam_mfa_fido2::MAX_CREDENTIAL_ID_LEN).contains(&c.len()))
            .ok_or_else(|| corrupt("credential id"))?;
        // Only its length here: parsing it needs the relying party's code, which the
        // module does not carry (crate::fido2). A key that does not parse is refused
        // where it is used, like a wrong signature.
        let cose_public_key = cose_public_key
            .filter(|k| (1..=pam_mfa_fido2::cose::MAX_COSE_KEY_LEN).contains(&k.len()))
            .ok_or_else(|| corrupt("public key"))?;
        let sign_count = sign_count
            .and_then(|c| u32::try_from(c).ok())
            .ok_or_else(|| corrupt("sign count"))?;
        let rp_id = rp_id
            .filter(|r| check_rp_id(r).is_ok())
            .ok_or_else(|| corrupt("RP id"))?;
        let uv_required = match uv_required {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(corrupt("uv_required")),
        };
        Ok(Fido2Device {
            id,
            credential: pam_mfa_fido2::ceremony::Credential {
                name,
                credential_id,
                cose_public_key,
                sign_count,
                rp_id,
                uv_required,
            },
        })
    })())
}

/// The user's active FIDO2 devices, oldest first.
pub fn active_fido2(conn: &Connection, user: &str) -> Result<Vec<Fido2Device>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FIDO2_COLUMNS} FROM devices
         WHERE user = ?1 AND state = 'active' AND kind = 'fido2'"
    ))?;
    let rows = stmt
        .query_map([user], fido2_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut devices: Vec<Fido2Device> = rows.into_iter().collect::<Result<_>>()?;
    devices.sort_by_key(|d| d.id);
    Ok(devices)
}

/// A user's active devices as a login sees them before its prompt: see [`active`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActiveDevices {
    /// Any active device at all.
    pub any: bool,
    /// An active device that answers with a code (every kind but a security key).
    pub codes: bool,
    /// The active security keys, oldest first; read only when asked for.
    pub fido2: Vec<Fido2Device>,
}

/// The user's active devices in one query, where [`has_active`], [`has_active_totp`] and
/// [`active_fido2`] take three (each statement a login prepares costs it tens of µs).
/// Security keys are read (and checked) only with `with_keys`.
pub fn active(conn: &Connection, user: &str, with_keys: bool) -> Result<ActiveDevices> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FIDO2_COLUMNS} FROM devices WHERE user = ?1 AND state = 'active'"
    ))?;
    let mut rows = stmt.query([user])?;
    let mut out = ActiveDevices::default();
    while let Some(row) = rows.next()? {
        out.any = true;
        let kind: String = row.get(2)?;
        if kind != DeviceKind::Fido2.as_str() {
            out.codes = true;
        } else if with_keys {
            out.fido2.push(fido2_from_row(row)??);
        }
    }
    out.fido2.sort_by_key(|d| d.id);
    Ok(out)
}

/// Whether the user has an active device that shows codes (an authenticator app or a
/// hardware token): what decides whether a code prompt can be answered at all.
pub fn has_active_totp(conn: &Connection, user: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM devices
                            WHERE user = ?1 AND state = 'active' AND kind IN ('totp', 'token'))",
        )?
        .query_row([user], |r| r.get(0))?)
}

/// Registers an active FIDO2 device, enforcing the per-user limit and unique names inside
/// the caller's transaction. An unfinished TOTP registration of the same name is replaced,
/// as a new TOTP registration would replace it.
pub fn insert_fido2(
    conn: &Connection,
    user: &str,
    name: &str,
    new: &NewFido2<'_>,
    now: UnixTime,
) -> Result<()> {
    claim_name(conn, user, name, now)?;
    check_room(conn, user)?;
    let taken: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM devices WHERE credential_id = ?1)")?
        .query_row([new.credential_id], |r| r.get(0))?;
    if taken {
        return Err(Fido2Error::AlreadyRegistered.into());
    }
    conn.prepare_cached(
        "INSERT INTO devices (user, name, kind, state, created_at, credential_id,
                              cose_public_key, sign_count, rp_id, uv_required)
         VALUES (?1, ?2, 'fido2', 'active', ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        user,
        name,
        now,
        new.credential_id,
        new.cose_public_key,
        new.sign_count,
        new.rp_id,
        new.uv_required
    ])?;
    Ok(())
}

/// Records an accepted assertion: the new sign count and when the key was used.
pub fn record_fido2_use(conn: &Connection, id: i64, sign_count: u32, now: UnixTime) -> Result<()> {
    conn.prepare_cached(
        "UPDATE devices SET sign_count = ?2, last_used_at = ?3 WHERE id = ?1 AND kind = 'fido2'",
    )?
    .execute(params![id, sign_count, now])?;
    Ok(())
}

/// An event-based hardware token assigned to a user, with what is needed to check codes.
#[derive(Debug)]
pub struct HotpDevice {
    pub id: i64,
    pub name: String,
    pub secret: Secret,
    pub params: HotpParams,
    /// The counter value whose code the token should show next; every lower one is used.
    pub counter: i64,
}

const HOTP_COLUMNS: &str = "d.id, d.name, t.secret, t.algorithm, t.digits, d.counter";

fn hotp_from_row(r: &Row<'_>) -> rusqlite::Result<Result<HotpDevice>> {
    let (id, name): (i64, String) = (r.get(0)?, r.get(1)?);
    let secret: Option<zeroize::Zeroizing<Vec<u8>>> =
        r.get::<_, Option<Vec<u8>>>(2)?.map(zeroize::Zeroizing::new);
    let (algorithm, digits, counter): (Option<String>, Option<i64>, Option<i64>) =
        (r.get(3)?, r.get(4)?, r.get(5)?);
    Ok((|| {
        let corrupt = |what: &str| Error::CorruptRecord(format!("device {name:?}: bad {what}"));
        let secret = secret
            .filter(|s| !s.is_empty())
            .ok_or_else(|| corrupt("secret"))?;
        let params = HotpParams {
            algorithm: algorithm.ok_or_else(|| corrupt("algorithm"))?.parse()?,
            digits: digits
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| corrupt("digits"))?,
        }
        .validate()?;
        // Refused here, like a TOTP device's extreme steps, so that look-ahead arithmetic
        // never meets a value no store we wrote can hold.
        let counter = counter
            .filter(|c| (0..=MAX_COUNTER).contains(c))
            .ok_or_else(|| corrupt("counter"))?;
        Ok(HotpDevice {
            id,
            name,
            secret: Secret::from_bytes(secret.to_vec()),
            params,
            counter,
        })
    })())
}

/// The user's active event-based tokens, oldest first.
pub fn active_hotp(conn: &Connection, user: &str) -> Result<Vec<HotpDevice>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {HOTP_COLUMNS} FROM devices d JOIN tokens t ON t.id = d.token_id
         WHERE d.user = (SELECT ?1) AND d.state = 'active' AND d.kind = 'token' AND t.type = 'hotp'"
    ))?;
    let rows = stmt
        .query_map([user], hotp_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut devices: Vec<HotpDevice> = rows.into_iter().collect::<Result<_>>()?;
    devices.sort_by_key(|d| d.id);
    Ok(devices)
}

/// One of the user's event-based tokens by device name.
pub fn hotp_by_name(conn: &Connection, user: &str, name: &str) -> Result<Option<HotpDevice>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {HOTP_COLUMNS} FROM devices d JOIN tokens t ON t.id = d.token_id
             WHERE d.user = ?1 AND d.name = ?2 AND d.kind = 'token' AND t.type = 'hotp'"
        ))?
        .query_row([user, name], hotp_from_row)
        .optional()?;
    row.transpose()
}

/// Moves an event-based token's counter forward to `next` (never back: the store's
/// trigger refuses that too), and records the use when `used_at` is given (a login; a
/// resync is not a use).
pub fn advance_counter(conn: &Connection, id: i64, next: i64, used_at: Option<i64>) -> Result<()> {
    conn.prepare_cached(
        "UPDATE devices SET counter = max(counter, ?2),
                            last_used_at = coalesce(?3, last_used_at)
         WHERE id = ?1 AND kind = 'token'",
    )?
    .execute(params![id, next, used_at])?;
    Ok(())
}

/// Where a newly assigned token starts: the replay state its first two codes leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStart {
    /// A time-based token: its clock offset in steps, and the step of the second code.
    Totp { drift: i64, last_step: i64 },
    /// An event-based token: the counter value after the second code.
    Hotp { counter: i64 },
}

/// Assigns inventory token `token_id` to `user` as active device `name`, enforcing the
/// per-user limit, unique names and one owner per token inside the caller's transaction.
pub fn insert_token(
    conn: &Connection,
    user: &str,
    name: &str,
    token_id: i64,
    start: TokenStart,
    now: UnixTime,
) -> Result<()> {
    claim_name(conn, user, name, now)?;
    check_room(conn, user)?;
    let (drift, last_step, counter) = match start {
        TokenStart::Totp { drift, last_step } => (drift, Some(last_step), None),
        TokenStart::Hotp { counter } => (0, None, Some(counter)),
    };
    conn.prepare_cached(
        "INSERT INTO devices (user, name, kind, state, created_at, token_id, drift,
                              last_step, counter)
         VALUES (?1, ?2, 'token', 'active', ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        user, name, now, token_id, drift, last_step, counter
    ])?;
    Ok(())
}
