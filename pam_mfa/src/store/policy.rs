//! The policy row (`policy`, one row with id 1): reading and writing it. What its values
//! mean, their defaults and which values an administrator may set are decided above the
//! store, in the library's `policy` module; here is only what the schema itself bounds.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::devices::MAX_DEVICES;
use crate::{Error, Result};

/// How long audit rows are kept unless the administrator says otherwise: a year covers
/// the yearly access reviews most audit rules ask for, and bounds the table (at the
/// registration rate limit, a user adds at most a few thousand rows a year). Here because
/// the audit table's retention trigger applies it inside SQLite.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 365;
/// The longest retention that may be set (the schema's bound): a hundred years.
pub const MAX_AUDIT_RETENTION_DAYS: u32 = 36_500;

/// The policy row as stored, before any meaning or default is given to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub self_service: String,
    pub max_devices: u32,
    pub no_device: String,
    pub max_failures: Option<u32>,
    pub lockout_seconds: Option<i64>,
    pub window: Option<u32>,
    pub audit_retention_days: Option<u32>,
    pub remember_seconds: u32,
    pub remember_local: String,
}

impl Row {
    /// The device limit the row sets, kept within what the schema allows even if the row
    /// was edited by hand.
    pub fn device_limit(&self) -> u32 {
        self.max_devices.clamp(1, MAX_DEVICES)
    }
}

/// The columns [`set`] may write: the name is checked against this list because it is
/// put into the statement's text, where a parameter cannot go.
const COLUMNS: &[&str] = &[
    "self_service",
    "max_devices",
    "no_device",
    "max_failures",
    "lockout_seconds",
    "window",
    "audit_retention_days",
    "remember_seconds",
    "remember_local",
];

/// Reads the row; `None` for a store that has none (impossible after migration, but cheap
/// to allow).
pub fn load(conn: &Connection) -> Result<Option<Row>> {
    Ok(conn
        .prepare_cached(
            "SELECT self_service, max_devices, no_device, max_failures, lockout_seconds, window,
                    audit_retention_days, remember_seconds, remember_local
             FROM policy WHERE id = 1",
        )?
        .query_row([], |r| {
            Ok(Row {
                self_service: r.get(0)?,
                max_devices: r.get(1)?,
                no_device: r.get(2)?,
                max_failures: r.get(3)?,
                lockout_seconds: r.get(4)?,
                window: r.get(5)?,
                audit_retention_days: r.get(6)?,
                remember_seconds: r.get(7)?,
                remember_local: r.get(8)?,
            })
        })
        .optional()?)
}

/// The device limit for everyone: the row's `max_devices`, [`MAX_DEVICES`] without a row.
/// Read whole, as the policy is, so that a row the policy would refuse to read is refused
/// here too.
pub fn device_limit(conn: &Connection) -> Result<u32> {
    Ok(load(conn)?.map_or(MAX_DEVICES, |row| row.device_limit()))
}

/// Writes one column of the row (creating the row first), in the caller's transaction so
/// that the audit row goes with it. The value was validated above.
pub fn set(conn: &Connection, column: &str, value: Value) -> Result<()> {
    if !COLUMNS.contains(&column) {
        return Err(Error::InvalidPolicy(format!(
            "unknown policy column {column:?}"
        )));
    }
    conn.execute(
        "INSERT INTO policy (id) VALUES (1) ON CONFLICT (id) DO NOTHING",
        [],
    )?;
    conn.execute(
        &format!("UPDATE policy SET {column} = ?1 WHERE id = 1"),
        params![value],
    )?;
    Ok(())
}
