//! Audit rows (`audit`): writing, listing and pruning them, and the retention they are
//! pruned by. Which changes are recorded, and as whom, is decided above the store (the
//! library's `audit` module, whose per-connection triggers write into this table).

use pam_mfa_protocol::UnixTime;
use rusqlite::{Connection, OptionalExtension, params};

use super::policy::DEFAULT_AUDIT_RETENTION_DAYS;
use crate::Result;

/// The oldest time still kept when a row is written at `now_expr` (an SQL expression):
/// the policy's retention, or the default. One definition, for [`record`] and for the
/// retention trigger the library's audit module adds to a connection it records on.
pub fn retention_cutoff_sql(now_expr: &str) -> String {
    format!(
        "{now_expr} - 86400 * coalesce((SELECT audit_retention_days FROM main.policy \
         WHERE id = 1), {DEFAULT_AUDIT_RETENTION_DAYS})"
    )
}

/// Deletes the rows older than the retention at `now`; how many went.
pub fn prune_expired(conn: &Connection, now: UnixTime) -> Result<usize> {
    let sql = format!(
        "DELETE FROM main.audit WHERE at < {}",
        retention_cutoff_sql("?1")
    );
    Ok(conn.prepare_cached(&sql)?.execute([now])?)
}

/// Deletes the rows from before `cutoff` (`mfa admin audit prune --older-than`); how
/// many went.
pub fn prune_before(conn: &Connection, cutoff: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM main.audit WHERE at < ?1")?
        .execute([cutoff])?)
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: UnixTime,
    pub actor_uid: u32,
    pub user: String,
    pub action: String,
    pub device: Option<String>,
    pub detail: Option<String>,
}

/// Appends a row inside the caller's transaction, and deletes the rows past the
/// retention.
pub fn record(
    conn: &Connection,
    at: UnixTime,
    actor_uid: u32,
    user: &str,
    action: &str,
    device: Option<&str>,
    detail: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor_uid, user, action, device, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![at, actor_uid, user, action, device, detail])?;
    prune_expired(conn, at)?;
    Ok(())
}

/// Rows for `user` (all users when `None`) at or after `since`, oldest first.
pub fn list(conn: &Connection, user: Option<&str>, since: Option<UnixTime>) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, actor_uid, user, action, device, detail FROM audit
         WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR at >= ?2)
         ORDER BY at, id",
    )?;
    let rows = stmt.query_map(params![user, since], |r| {
        Ok(Entry {
            at: r.get(0)?,
            actor_uid: r.get(1)?,
            user: r.get(2)?,
            action: r.get(3)?,
            device: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The time of the `n`-th most recent row about `user` written by a non-root actor after
/// `since` (of `action` only, if given), if there are that many: the registration limits
/// count a caller's recent changes from the rows the changes already write.
pub fn nth_recent_by_others(
    conn: &Connection,
    user: &str,
    action: Option<&str>,
    n: u32,
    since: UnixTime,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT at FROM audit
             WHERE user = ?1 AND at > ?2 AND actor_uid <> 0 AND (?4 IS NULL OR action = ?4)
             ORDER BY at DESC LIMIT 1 OFFSET ?3",
        )?
        .query_row(params![user, since, n.saturating_sub(1), action], |r| {
            r.get(0)
        })
        .optional()?)
}
