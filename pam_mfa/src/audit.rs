//! The audit trail in the store (`audit`, schema version 3): who did what to whose
//! device, when, and from which uid.
//!
//! Rows are written with the connection of the change's own transaction, so a change and
//! its record commit or vanish together; syslog lines are a convenience on top, the
//! table is what `mfa admin audit` shows. Never a secret or a code.

use rusqlite::{Connection, params};

use crate::Result;

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: i64,
    pub actor_uid: u32,
    pub user: String,
    pub action: String,
    pub device: Option<String>,
    pub detail: Option<String>,
}

/// Appends a row inside the caller's transaction.
pub fn record(
    conn: &Connection,
    at: i64,
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
    Ok(())
}

/// Makes every later change to devices through `conn` write its audit row, as `actor_uid`,
/// inside the change's own transaction.
///
/// Done with TEMP triggers, which exist only on this connection: every code path of the
/// tool (registration, activation, rename, resync, removal, now and in future) is
/// recorded without each one having to remember to, and a crash can never leave a change
/// without its row or a row without its change. Logins (which only move `last_step`, an
/// HOTP token's `counter` and `last_used_at`) are not device changes and never run on
/// this connection (a re-authentication opens its own), so a counter moved here is a
/// resync. A hardware token's serial number goes into the detail of its rows.
pub fn attach(conn: &Connection, actor_uid: u32) -> Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS audit_actor (uid INTEGER NOT NULL);
         DELETE FROM temp.audit_actor;
         CREATE TEMP TRIGGER IF NOT EXISTS audit_device_insert AFTER INSERT ON main.devices
         BEGIN
           INSERT INTO main.audit (at, actor_uid, user, action, device, detail)
           SELECT unixepoch(), uid, NEW.user,
                  CASE NEW.state WHEN 'active' THEN 'register' ELSE 'begin' END,
                  NEW.name,
                  NEW.kind || coalesce(' ' || (SELECT serial FROM main.tokens
                                               WHERE id = NEW.token_id), '')
           FROM temp.audit_actor;
         END;
         CREATE TEMP TRIGGER IF NOT EXISTS audit_device_activate
         AFTER UPDATE OF state ON main.devices
         WHEN OLD.state <> 'active' AND NEW.state = 'active'
         BEGIN
           INSERT INTO main.audit (at, actor_uid, user, action, device, detail)
           SELECT unixepoch(), uid, NEW.user, 'activate', NEW.name, NEW.kind
           FROM temp.audit_actor;
         END;
         CREATE TEMP TRIGGER IF NOT EXISTS audit_device_rename
         AFTER UPDATE OF name ON main.devices WHEN OLD.name <> NEW.name
         BEGIN
           INSERT INTO main.audit (at, actor_uid, user, action, device, detail)
           SELECT unixepoch(), uid, NEW.user, 'rename', NEW.name, 'was ' || OLD.name
           FROM temp.audit_actor;
         END;
         CREATE TEMP TRIGGER IF NOT EXISTS audit_device_resync
         AFTER UPDATE OF drift ON main.devices WHEN OLD.drift <> NEW.drift
         BEGIN
           INSERT INTO main.audit (at, actor_uid, user, action, device, detail)
           SELECT unixepoch(), uid, NEW.user, 'resync', NEW.name,
                  'drift ' || NEW.drift || ' s'
           FROM temp.audit_actor;
         END;
         CREATE TEMP TRIGGER IF NOT EXISTS audit_device_delete AFTER DELETE ON main.devices
         BEGIN
           INSERT INTO main.audit (at, actor_uid, user, action, device, detail)
           SELECT unixepoch(), uid, OLD.user,
                  CASE OLD.state WHEN 'active' THEN 'remove' ELSE 'discard' END,
                  OLD.name,
                  OLD.kind || coalesce(' ' || (SELECT serial FROM main.tokens
                                               WHERE id = OLD.token_id), '')
           FROM temp.audit_actor;
         END;
         CREATE TEMP TRIGGER IF NOT EXISTS audit_device_counter_resync
         AFTER UPDATE OF counter ON main.devices WHEN OLD.counter <> NEW.counter
         BEGIN
           INSERT INTO main.audit (at, actor_uid, user, action, device, detail)
           SELECT unixepoch(), uid, NEW.user, 'resync', NEW.name,
                  'counter ' || NEW.counter
           FROM temp.audit_actor;
         END;",
    )?;
    conn.execute(
        "INSERT INTO temp.audit_actor (uid) VALUES (?1)",
        [actor_uid],
    )?;
    Ok(())
}

/// Rows for `user` (all users when `None`) at or after `since`, oldest first.
pub fn list(conn: &Connection, user: Option<&str>, since: Option<i64>) -> Result<Vec<Entry>> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn rows_commit_with_their_transaction_only() {
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        let tx = store.write().unwrap();
        record(&tx, 10, 1000, "alice", "remove", Some("phone"), None).unwrap();
        drop(tx); // rolled back
        assert!(list(store.conn(), None, None).unwrap().is_empty());
        let tx = store.write().unwrap();
        record(&tx, 10, 1000, "alice", "remove", Some("phone"), None).unwrap();
        record(&tx, 20, 0, "bob", "policy", None, Some("window=2")).unwrap();
        tx.commit().unwrap();
        let all = list(store.conn(), None, None).unwrap();
        assert_eq!(all.len(), 2);
        let bob = list(store.conn(), Some("bob"), None).unwrap();
        assert_eq!(bob.len(), 1);
        assert_eq!(bob[0].detail.as_deref(), Some("window=2"));
        assert_eq!(list(store.conn(), None, Some(15)).unwrap().len(), 1);
    }

    #[test]
    fn attached_connection_records_device_changes() {
        use crate::names::{DeviceName, UserName};
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        attach(store.conn(), 1234).unwrap();
        let user = UserName::parse("alice").unwrap();
        let name = DeviceName::parse("phone").unwrap();
        crate::enrollment::begin_totp(store, &user, &name, "host", 1_000_000).unwrap();
        let tx = store.write().unwrap();
        crate::store::devices::remove(&tx, "alice", "phone", 1_000_000).unwrap();
        tx.commit().unwrap();
        let rows = list(store.conn(), Some("alice"), None).unwrap();
        let actions: Vec<_> = rows.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["begin", "discard"]);
        assert!(rows.iter().all(|r| r.actor_uid == 1234));
    }
}
