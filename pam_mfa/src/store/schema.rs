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
    // 2: FIDO2 security keys (kind 'fido2'): the credential, its public key, the RP id it
    // was registered under, the last sign count, and whether it requires PIN/UV. TOTP rows
    // leave these NULL.
    "
    ALTER TABLE devices ADD COLUMN credential_id BLOB
        CHECK (credential_id IS NULL OR length(credential_id) BETWEEN 1 AND 1023);
    ALTER TABLE devices ADD COLUMN cose_public_key BLOB
        CHECK (cose_public_key IS NULL OR length(cose_public_key) BETWEEN 1 AND 1024);
    ALTER TABLE devices ADD COLUMN sign_count INTEGER
        CHECK (sign_count IS NULL OR sign_count BETWEEN 0 AND 4294967295);
    ALTER TABLE devices ADD COLUMN rp_id TEXT
        CHECK (rp_id IS NULL OR length(rp_id) BETWEEN 1 AND 255);
    ALTER TABLE devices ADD COLUMN uv_required INTEGER
        CHECK (uv_required IS NULL OR uv_required IN (0, 1));
    -- A credential belongs to one device of one user.
    CREATE UNIQUE INDEX devices_by_credential_id ON devices (credential_id)
        WHERE credential_id IS NOT NULL;
    CREATE TRIGGER devices_fido2_complete
    BEFORE INSERT ON devices
    WHEN NEW.kind = 'fido2'
     AND (NEW.credential_id IS NULL OR NEW.cose_public_key IS NULL OR NEW.sign_count IS NULL
          OR NEW.rp_id IS NULL OR NEW.uv_required IS NULL OR NEW.secret IS NOT NULL)
    BEGIN SELECT RAISE(ABORT, 'pam_mfa: incomplete FIDO2 device'); END;
    ",
    // 3: the administrator's policy (one row; NULL numbers mean the built-in default)
    // and the audit trail of every change, written in the same transaction as the change.
    "
    CREATE TABLE policy (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        self_service    TEXT    NOT NULL DEFAULT 'allow'
                                CHECK (self_service IN ('allow', 'deny')),
        max_devices     INTEGER NOT NULL DEFAULT 8 CHECK (max_devices BETWEEN 1 AND 8),
        no_device       TEXT    NOT NULL DEFAULT 'deny'
                                CHECK (no_device IN ('allow', 'deny', 'enroll')),
        max_failures    INTEGER CHECK (max_failures IS NULL OR max_failures BETWEEN 1 AND 1000),
        lockout_seconds INTEGER
                        CHECK (lockout_seconds IS NULL OR lockout_seconds BETWEEN 1 AND 604800),
        window          INTEGER CHECK (window IS NULL OR window BETWEEN 0 AND 10)
    );
    INSERT INTO policy (id) VALUES (1);
    CREATE TABLE audit (
        id              INTEGER PRIMARY KEY,
        at              INTEGER NOT NULL,
        actor_uid       INTEGER NOT NULL,
        user            TEXT    NOT NULL,
        action          TEXT    NOT NULL,
        device          TEXT,
        detail          TEXT
    );
    CREATE INDEX audit_by_user ON audit (user, at);
    CREATE INDEX audit_by_time ON audit (at);
    -- Recovery codes (one use each) and bypass codes (uses_left uses until expires_at),
    -- stored only as SHA-256 over a per-code salt and the code; see recovery.rs.
    CREATE TABLE recovery_codes (
        id              INTEGER PRIMARY KEY,
        user            TEXT    NOT NULL,
        kind            TEXT    NOT NULL CHECK (kind IN ('recovery', 'bypass')),
        salt            BLOB    NOT NULL CHECK (length(salt) = 16),
        hash            BLOB    NOT NULL CHECK (length(hash) = 32),
        uses_left       INTEGER NOT NULL CHECK (uses_left BETWEEN 0 AND 100),
        expires_at      INTEGER,
        created_at      INTEGER NOT NULL,
        created_by      INTEGER NOT NULL,
        CHECK (kind <> 'bypass' OR expires_at IS NOT NULL)
    );
    CREATE INDEX recovery_codes_by_user ON recovery_codes (user);
    ",
    // 4: registering a device first purges expired pending registrations; without an index
    // that was a scan of every device of every user (seconds with 100,000 users).
    "
    CREATE INDEX devices_pending_expiry ON devices (expires_at) WHERE state = 'pending';
    ",
    // 5: hardware OTP tokens. The inventory holds each token's seed and parameters under
    // its serial number; a token given to a user is a device of kind 'token' pointing at
    // it, one device per token at most. While it is assigned, the device row keeps the
    // replay state (TOTP: drift and last_step; HOTP: counter, the next value expected), so
    // logins and resync treat it like any code device; removing the device hands its
    // high-water mark back to the token, so no code is ever accepted again under a new
    // owner either. A token cannot leave the inventory while a device points at it.
    "
    CREATE TABLE tokens (
        id              INTEGER PRIMARY KEY,
        serial          TEXT    NOT NULL UNIQUE
                        CHECK (length(serial) BETWEEN 1 AND 64
                               AND serial NOT GLOB '*[^A-Za-z0-9._:/-]*'),
        type            TEXT    NOT NULL CHECK (type IN ('totp', 'hotp')),
        secret          BLOB    NOT NULL CHECK (length(secret) BETWEEN 16 AND 128),
        algorithm       TEXT    NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
        digits          INTEGER NOT NULL CHECK (digits BETWEEN 6 AND 8),
        period          INTEGER CHECK (period BETWEEN 1 AND 300),
        counter         INTEGER CHECK (counter BETWEEN 0 AND 281474976710656),
        last_step       INTEGER CHECK (last_step BETWEEN 0 AND 1099511627776),
        imported_at     INTEGER NOT NULL,
        CHECK ((type = 'totp') = (period IS NOT NULL)),
        CHECK ((type = 'hotp') = (counter IS NOT NULL)),
        CHECK (type = 'totp' OR last_step IS NULL)
    );
    ALTER TABLE devices ADD COLUMN token_id INTEGER REFERENCES tokens (id);
    ALTER TABLE devices ADD COLUMN counter INTEGER
        CHECK (counter IS NULL OR counter BETWEEN 0 AND 281474976710656);
    CREATE UNIQUE INDEX devices_by_token ON devices (token_id) WHERE token_id IS NOT NULL;
    -- A token device has no secret of its own, is active from the start (it is registered
    -- with two codes at once) and has a counter exactly when its token counts events.
    CREATE TRIGGER devices_token_complete
    BEFORE INSERT ON devices
    WHEN (NEW.kind = 'token') <> (NEW.token_id IS NOT NULL)
      OR (NEW.kind <> 'token' AND NEW.counter IS NOT NULL)
      OR (NEW.kind = 'token'
          AND (NEW.state <> 'active' OR NEW.secret IS NOT NULL OR NEW.credential_id IS NOT NULL
               OR (NEW.counter IS NOT NULL)
                  <> (SELECT type = 'hotp' FROM tokens WHERE id = NEW.token_id)))
    BEGIN SELECT RAISE(ABORT, 'pam_mfa: inconsistent hardware token device'); END;
    CREATE TRIGGER devices_token_fixed
    BEFORE UPDATE OF kind, token_id ON devices
    WHEN NEW.kind IS NOT OLD.kind OR NEW.token_id IS NOT OLD.token_id
    BEGIN SELECT RAISE(ABORT, 'pam_mfa: a device cannot change its kind or token'); END;
    CREATE TRIGGER devices_token_counter_forward
    BEFORE UPDATE OF counter ON devices
    WHEN NEW.counter IS NOT OLD.counter
     AND (OLD.counter IS NULL OR NEW.counter IS NULL OR NEW.counter < OLD.counter)
    BEGIN SELECT RAISE(ABORT, 'pam_mfa: an HOTP counter only moves forward'); END;
    CREATE TRIGGER devices_token_returned
    AFTER DELETE ON devices WHEN OLD.token_id IS NOT NULL
    BEGIN
        UPDATE tokens SET
            last_step = CASE WHEN OLD.last_step IS NULL OR type <> 'totp' THEN last_step
                             ELSE max(coalesce(last_step, OLD.last_step), OLD.last_step) END,
            counter = CASE WHEN OLD.counter IS NULL OR type <> 'hotp' THEN counter
                           ELSE max(counter, OLD.counter) END
        WHERE id = OLD.token_id;
    END;
    ",
    // 6: how long audit rows are kept (NULL: the built-in default), and registrations made
    // during a login that wait for that login to succeed as a whole: `login_hold` is the
    // SHA-256 of a random value only that login holds, and such a row stays pending (it
    // never counts, never logs anyone in) until the login's pam_setcred activates it.
    "
    ALTER TABLE policy ADD COLUMN audit_retention_days INTEGER
        CHECK (audit_retention_days IS NULL OR audit_retention_days BETWEEN 1 AND 36500);
    ALTER TABLE devices ADD COLUMN login_hold BLOB
        CHECK (login_hold IS NULL OR (length(login_hold) = 32 AND state = 'pending'));
    ",
    // 7: remembered login contexts: a successful second factor of `user` at
    // `service` from `rhost` lets the same user, service and host in without a code until
    // `until`, where the policy allows it (`remember_seconds`, 0 by default: off; local
    // logins only with `remember_local allow`).
    "
    ALTER TABLE policy ADD COLUMN remember_seconds INTEGER NOT NULL DEFAULT 0
        CHECK (remember_seconds BETWEEN 0 AND 43200);
    ALTER TABLE policy ADD COLUMN remember_local TEXT NOT NULL DEFAULT 'deny'
        CHECK (remember_local IN ('allow', 'deny'));
    CREATE TABLE remembered_logins (
        user            TEXT    NOT NULL,
        service         TEXT    NOT NULL CHECK (length(service) BETWEEN 1 AND 256),
        rhost           TEXT    NOT NULL CHECK (length(rhost) <= 1024),
        since           INTEGER NOT NULL,
        until           INTEGER NOT NULL CHECK (until > since),
        PRIMARY KEY (user, service, rhost)
    ) WITHOUT ROWID;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store as version 1 of pam_mfa left it, with one active TOTP device.
    fn version_1_store(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO devices (user, name, kind, state, secret, algorithm, digits, period,
                                  created_at, last_step)
             VALUES ('alice', 'phone', 'totp', 'active', x'0102030405', 'SHA1', 6, 30, 100, 7)",
            [],
        )
        .unwrap();
        conn
    }

    #[test]
    fn version_1_migrates_to_current_keeping_totp_devices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.db");
        let mut conn = version_1_store(&path);
        migrate(&mut conn, &path).unwrap();
        assert_eq!(read_header(&conn).unwrap().user_version, CURRENT_VERSION);
        assert_eq!(CURRENT_VERSION, 7);
        // Version 3 starts with the default policy row (that it means the default policy
        // is checked with the policy, on a new store, which goes through the same steps).
        assert_eq!(
            super::super::policy::load(&conn).unwrap(),
            Some(super::super::policy::Row {
                self_service: "allow".into(),
                max_devices: 8,
                no_device: "deny".into(),
                max_failures: None,
                lockout_seconds: None,
                window: None,
                audit_retention_days: None,
                remember_seconds: 0,
                remember_local: "deny".into(),
            })
        );
        let row: (String, Vec<u8>, i64, Option<Vec<u8>>, Option<i64>) = conn
            .query_row(
                "SELECT kind, secret, last_step, credential_id, sign_count FROM devices",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(row, ("totp".into(), vec![1, 2, 3, 4, 5], 7, None, None));
        let totp = crate::store::devices::active_totp(&conn, "alice").unwrap();
        assert_eq!(totp.len(), 1);
        // Migrating again is a no-op.
        migrate(&mut conn, &path).unwrap();
        assert_eq!(read_header(&conn).unwrap().user_version, CURRENT_VERSION);
        // Purging expired registrations uses the partial index, not a scan of every device.
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN DELETE FROM devices WHERE state = 'pending' AND expires_at <= 5",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("devices_pending_expiry"), "{plan}");
    }

    #[test]
    fn fido2_rows_must_be_complete_and_credentials_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.db");
        let mut conn = version_1_store(&path);
        migrate(&mut conn, &path).unwrap();
        let insert = |name: &str, cred: Option<&[u8]>, count: i64| {
            conn.execute(
                "INSERT INTO devices (user, name, kind, state, created_at, credential_id,
                                      cose_public_key, sign_count, rp_id, uv_required)
                 VALUES ('alice', ?1, 'fido2', 'active', 1, ?2, x'a0', ?3, 'pam://h', 0)",
                rusqlite::params![name, cred, count],
            )
        };
        insert("k1", Some(b"id-1"), 0).unwrap();
        assert!(insert("k2", None, 0).is_err(), "no credential id");
        assert!(
            insert("k3", Some(b"id-1"), 0).is_err(),
            "duplicate credential id"
        );
        assert!(insert("k4", Some(b""), 0).is_err(), "empty credential id");
        assert!(insert("k5", Some(b"id-5"), -1).is_err(), "negative count");
        assert!(
            insert("k6", Some(b"id-6"), 1 << 32).is_err(),
            "count too large"
        );
        // A TOTP row still needs its secret, and does not need FIDO2 columns.
        assert!(
            conn.execute(
                "INSERT INTO devices (user, name, kind, state, created_at)
                 VALUES ('alice', 't', 'totp', 'active', 1)",
                [],
            )
            .is_err()
        );
    }
}
