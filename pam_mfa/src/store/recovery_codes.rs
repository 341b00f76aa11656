//! Recovery and bypass code rows (`recovery_codes`): only their salts and hashes, never a
//! code. Making codes, hashing and comparing them, and deciding what a use does are the
//! library's `recovery` module's business; here is only the table.

use pam_mfa_protocol::UnixTime;
use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use crate::{Error, Result};

/// The kinds of row in `recovery_codes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Recovery,
    Bypass,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recovery => "recovery",
            Self::Bypass => "bypass",
        }
    }
}

/// One row to store: whose, which kind, its salted hash, how many uses, until when.
pub struct NewRow<'a> {
    pub user: &'a str,
    pub kind: Kind,
    pub salt: &'a [u8],
    pub hash: &'a [u8],
    pub uses: u32,
    pub expires_at: Option<UnixTime>,
    pub now: UnixTime,
    pub by_uid: u32,
}

pub fn insert(conn: &Connection, new: &NewRow<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO recovery_codes (user, kind, salt, hash, uses_left, expires_at,
                                     created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        new.user,
        new.kind.as_str(),
        new.salt,
        new.hash,
        new.uses,
        new.expires_at,
        new.now,
        new.by_uid
    ])?;
    Ok(())
}

/// Removes `user`'s recovery set (bypass codes stay).
pub fn delete_recovery_set(conn: &Connection, user: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM recovery_codes WHERE user = ?1 AND kind = 'recovery'",
        [user],
    )?;
    Ok(())
}

/// How many unused recovery codes `user` has.
pub fn remaining(conn: &Connection, user: &str) -> Result<u32> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM recovery_codes
             WHERE user = ?1 AND kind = 'recovery' AND uses_left > 0",
        )?
        .query_row([user], |r| r.get(0))?)
}

/// Deletes `user`'s rows that are used up or expired at `now`.
pub fn purge_spent(conn: &Connection, user: &str, now: UnixTime) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM recovery_codes
         WHERE user = ?1 AND (uses_left <= 0 OR (expires_at IS NOT NULL AND expires_at <= ?2))",
    )?
    .execute(params![user, now])?;
    Ok(())
}

/// A stored code a typed one is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub kind: Kind,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub uses_left: u32,
}

/// Every row of `user` (call [`purge_spent`] first to leave only usable ones).
pub fn of_user(conn: &Connection, user: &str) -> Result<Vec<Stored>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, salt, hash, uses_left FROM recovery_codes WHERE user = ?1",
    )?;
    let rows = stmt.query_map([user], |r| {
        let kind: String = r.get(1)?;
        Ok(Stored {
            id: r.get(0)?,
            // Only "bypass" is anything but a recovery code, as it always was read.
            kind: if kind == "bypass" {
                Kind::Bypass
            } else {
                Kind::Recovery
            },
            salt: r.get(2)?,
            hash: r.get(3)?,
            uses_left: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Sets how many uses a row has left; a row with none left is deleted rather than kept.
pub fn set_uses_left(conn: &Connection, id: i64, left: u32) -> Result<()> {
    if left == 0 {
        conn.execute("DELETE FROM recovery_codes WHERE id = ?1", [id])?;
    } else {
        conn.execute(
            "UPDATE recovery_codes SET uses_left = ?2 WHERE id = ?1",
            params![id, left],
        )?;
    }
    Ok(())
}

/// A live bypass code, as `mfa admin list` shows it (never the code or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bypass {
    pub uses_left: u32,
    pub expires_at: UnixTime,
    pub created_at: UnixTime,
    pub created_by: u32,
}

/// One user's outstanding ways back in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outstanding {
    /// Unused codes of the user's recovery set.
    pub recovery_left: u32,
    /// Bypass codes that can still be used, oldest first.
    pub bypass: Vec<Bypass>,
}

/// Every user's unused recovery codes and live bypass codes at `now`, by user: an
/// administrator must be able to see that a temporary way in is still open.
pub fn outstanding(conn: &Connection, now: UnixTime) -> Result<BTreeMap<String, Outstanding>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user, kind, uses_left, expires_at, created_at, created_by FROM recovery_codes
         WHERE uses_left > 0 AND (expires_at IS NULL OR expires_at > ?1)
         ORDER BY user, created_at, id",
    )?;
    let rows = stmt.query_map([now], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, u32>(5)?,
        ))
    })?;
    let mut by_user = BTreeMap::<String, Outstanding>::new();
    for row in rows {
        let (user, kind, uses_left, expires_at, created_at, created_by) = row?;
        let entry = by_user.entry(user).or_default();
        match (kind.as_str(), expires_at) {
            ("bypass", Some(expires_at)) => entry.bypass.push(Bypass {
                uses_left,
                expires_at,
                created_at,
                created_by,
            }),
            ("recovery", _) => entry.recovery_left = entry.recovery_left.saturating_add(1),
            _ => {
                return Err(Error::CorruptRecord(format!(
                    "recovery code of kind {kind:?}"
                )));
            }
        }
    }
    Ok(by_user)
}
