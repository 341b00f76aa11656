//! The inventory of hardware tokens (`tokens`): seeds by serial number, waiting to be
//! given to a user, or assigned to one as a device. What an import may replace and what it
//! keeps is decided above the store (the library's `tokens::inventory`).
//!
//! Functions take a `&Connection` so that the caller decides the transaction (an import
//! and its audit row commit together); only [`by_serial`] hands out a secret, to the
//! registration that checks a token's codes.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::params::Algorithm;
use super::secret::Secret;
use crate::{Error, Result};

/// How a token makes codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Time-based (RFC 6238), a code every `period` seconds.
    Totp { period: u32 },
    /// Event-based (RFC 4226): `counter` is the value whose code the token shows next.
    Hotp { counter: i64 },
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp { .. } => "totp",
            Self::Hotp { .. } => "hotp",
        }
    }
}

/// Who has a token, if anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub user: String,
    pub device: String,
}

/// What may be shown about a token: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub serial: String,
    pub mode: Mode,
    pub algorithm: Algorithm,
    pub digits: u8,
    pub imported_at: i64,
    pub assigned: Option<Assignment>,
}

/// A token with what registering it needs.
#[derive(Debug)]
pub struct InventoryToken {
    pub id: i64,
    pub serial: String,
    pub secret: Secret,
    pub algorithm: Algorithm,
    pub digits: u8,
    /// For an HOTP token, the counter value after the last code ever accepted from it.
    pub mode: Mode,
    /// For a TOTP token, the last step ever accepted from it (under any owner).
    pub last_step: Option<i64>,
    pub assigned: Option<Assignment>,
}

const COLUMNS: &str = "t.id, t.serial, t.type, t.algorithm, t.digits, t.period, t.counter,
    t.imported_at, d.user, d.name, t.last_step";
const FROM: &str = "tokens t LEFT JOIN devices d ON d.token_id = t.id";

/// The columns every query reads, secret aside; anything no import could have written is
/// corruption.
fn info_from_row(r: &Row<'_>) -> rusqlite::Result<Result<(i64, TokenInfo, Option<i64>)>> {
    let id: i64 = r.get(0)?;
    let serial: String = r.get(1)?;
    let (kind, algorithm): (String, String) = (r.get(2)?, r.get(3)?);
    let (digits, period, counter): (i64, Option<i64>, Option<i64>) =
        (r.get(4)?, r.get(5)?, r.get(6)?);
    let imported_at: i64 = r.get(7)?;
    let (user, device): (Option<String>, Option<String>) = (r.get(8)?, r.get(9)?);
    let last_step: Option<i64> = r.get(10)?;
    Ok((|| {
        let corrupt = || Error::CorruptRecord(format!("token {serial:?}"));
        let mode = match (kind.as_str(), period, counter) {
            ("totp", Some(p), None) => Mode::Totp {
                period: u32::try_from(p).map_err(|_| corrupt())?,
            },
            ("hotp", None, Some(c)) => Mode::Hotp { counter: c },
            _ => return Err(corrupt()),
        };
        let info = TokenInfo {
            algorithm: algorithm.parse()?,
            digits: u8::try_from(digits).map_err(|_| corrupt())?,
            mode,
            imported_at,
            assigned: user
                .zip(device)
                .map(|(user, device)| Assignment { user, device }),
            serial,
        };
        Ok((id, info, last_step))
    })())
}

/// Every token, by serial number.
pub fn list(conn: &Connection) -> Result<Vec<TokenInfo>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} ORDER BY t.serial"))?;
    let rows = stmt
        .query_map([], info_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|row| row.map(|(_, info, _)| info))
        .collect()
}

/// One token with its secret, assigned or not.
pub fn by_serial(conn: &Connection, serial: &str) -> Result<Option<InventoryToken>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, t.secret FROM {FROM} WHERE t.serial = ?1"
        ))?
        .query_row([serial], |r| {
            let secret = zeroize::Zeroizing::new(r.get::<_, Vec<u8>>(11)?);
            Ok(info_from_row(r)?.map(|info| (info, secret)))
        })
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let ((id, info, last_step), secret) = row?;
    Ok(Some(InventoryToken {
        id,
        serial: info.serial,
        secret: Secret::from_bytes(secret.to_vec()),
        algorithm: info.algorithm,
        digits: info.digits,
        mode: info.mode,
        last_step,
        assigned: info.assigned,
    }))
}

/// A token to write: everything an import knows about it, and what the store already knew
/// about codes used (a counter inside `mode`, `last_step`) that the import decided to keep.
pub struct NewToken<'a> {
    pub serial: &'a str,
    pub secret: &'a Secret,
    pub algorithm: Algorithm,
    pub digits: u8,
    pub mode: Mode,
    pub last_step: Option<i64>,
    pub imported_at: i64,
}

/// Adds a token, or overwrites the one with the same serial number.
pub fn upsert(conn: &Connection, t: &NewToken<'_>) -> Result<()> {
    let (kind, period, counter) = match t.mode {
        Mode::Totp { period } => ("totp", Some(period), None),
        Mode::Hotp { counter } => ("hotp", None, Some(counter)),
    };
    conn.prepare_cached(
        "INSERT INTO tokens (serial, type, secret, algorithm, digits, period, counter,
                             last_step, imported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (serial) DO UPDATE SET
             type = excluded.type, secret = excluded.secret,
             algorithm = excluded.algorithm, digits = excluded.digits,
             period = excluded.period, counter = excluded.counter,
             last_step = excluded.last_step, imported_at = excluded.imported_at",
    )?
    .execute(params![
        t.serial,
        kind,
        t.secret.as_bytes(),
        t.algorithm.as_str(),
        t.digits,
        period,
        counter,
        t.last_step,
        t.imported_at
    ])?;
    Ok(())
}

/// Deletes the token with row id `id` (from [`by_serial`]).
pub fn delete(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM tokens WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}
