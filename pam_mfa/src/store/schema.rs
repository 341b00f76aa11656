//! The store's schema and its forward migrations.
//!
//! `PRAGMA user_version` records how many migrations have run; `PRAGMA application_id`
//! marks the file as ours so that another program's SQLite file is never mistaken for (or
//! turned into) a device store. Migrations run in one `BEGIN IMMEDIATE` transaction, so a
//! crash leaves the store at the old version or the new one, never between.

use rusqlite::{Connection, TransactionBehavior};

use crate::{Error, Result};
use std::path::Path;

/// "mfa1" in ASCII.
pub(crate) const APPLICATION_ID: i64 = 0x6d66_6131;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: TOTP devices, per-user failure counting.
    "
    CREATE TABLE devices (
        id              INTEGER PRIMARY KEY,
        user            TEXT    NOT NULL,
        name            TEXT    NOT NULL,
        kind            TEXT    NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'active')),
        secret          BLOB,
        algorithm       TEXT    CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
        digits          INTEGER CHECK (digits BETWEEN 6 AND 8),
        period          INTEGER CHECK (period BETWEEN 1 AND 300),
        drift           INTEGER NOT NULL DEFAULT 0,
        last_step       INTEGER,
        created_at      INTEGER NOT NULL,
        last_used_at    INTEGER,
        expires_at      INTEGER,
        UNIQUE (user, name),
        CHECK (kind <> 'totp' OR (secret IS NOT NULL AND algorithm IS NOT NULL
                                  AND digits IS NOT NULL AND period IS NOT NULL)),
        CHECK (state <> 'pending' OR expires_at IS NOT NULL)
    );
    -- The hard ceiling of 8 active devices, enforced by SQLite itself so that no code
    -- path (or a future one) can exceed it.
    CREATE TRIGGER devices_at_most_8_on_update
    BEFORE UPDATE OF state ON devices
    WHEN NEW.state = 'active' AND OLD.state <> 'active'
     AND (SELECT COUNT(*) FROM devices WHERE user = NEW.user AND state = 'active') >= 8
    BEGIN SELECT RAISE(ABORT, 'pam_mfa: at most 8 active devices per user'); END;
    CREATE TRIGGER devices_at_most_8_on_insert
    BEFORE INSERT ON devices
    WHEN NEW.state = 'active'
     AND (SELECT COUNT(*) FROM devices WHERE user = NEW.user AND state = 'active') >= 8
    BEGIN SELECT RAISE(ABORT, 'pam_mfa: at most 8 active devices per user'); END;

    CREATE TABLE auth_state (
        user            TEXT    PRIMARY KEY,
        failures        INTEGER NOT NULL,
        window_start    INTEGER NOT NULL,
        locked_until    INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX auth_state_by_window ON auth_state (window_start);
    ",
];

pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) struct Header {
    pub user_version: i64,
    pub application_id: i64,
    pub objects: i64,
}

pub(crate) fn read_header(conn: &Connection) -> rusqlite::Result<Header> {
    conn.query_row(
        "SELECT (SELECT user_version FROM pragma_user_version),
                (SELECT application_id FROM pragma_application_id),
                (SELECT COUNT(*) FROM sqlite_schema)",
        [],
        |r| {
            Ok(Header {
                user_version: r.get(0)?,
                application_id: r.get(1)?,
                objects: r.get(2)?,
            })
        },
    )
}

/// Brings the schema up to [`CURRENT_VERSION`], re-reading the version inside the write
/// transaction so that two processes upgrading at once do not both apply a step.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let header = read_header(&tx)?;
    if header.user_version > CURRENT_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_owned(),
            found: header.user_version,
            known: CURRENT_VERSION,
        });
    }
    if header.user_version == 0 {
        if header.objects != 0 {
            return Err(Error::NotADatabase {
                path: path.to_owned(),
                detail: "an SQLite database of another program".to_owned(),
            });
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    let from = usize::try_from(header.user_version).unwrap_or(usize::MAX);
    for sql in MIGRATIONS.iter().skip(from) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", CURRENT_VERSION)?;
    tx.commit()?;
    Ok(())
}
