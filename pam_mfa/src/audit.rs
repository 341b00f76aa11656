//! The audit trail: who did what to whose device, when, and from which uid. The table is
//! [`crate::store::audit`]; here is what gets recorded, and as whom.
//!
//! Rows are written with the connection of the change's own transaction, so a change and
//! its record commit or vanish together; syslog lines are a convenience on top, the
//! table is what `mfa admin audit` shows. Never a secret or a code.
//!
//! Rows are kept for the policy's `audit_retention_days` (otherwise any user could add
//! rows without end, and a full disk stops every login): every write of a row
//! also deletes the rows older than that, through the `audit_by_time` index, so the table
//! never holds more than the retention's worth and pruning never needs a job of its own.

use rusqlite::{Connection, OptionalExtension};

use crate::Result;
use crate::store::audit::retention_cutoff_sql;
pub use crate::store::audit::{Entry, list, prune_before, prune_expired, record};

/// The uid that [`attach`] records device changes on `conn` as, if it was called: the
/// caller whose registrations [`crate::limits`] rate-limits.
pub fn actor(conn: &Connection) -> Result<Option<u32>> {
    let attached: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM temp.sqlite_schema
                            WHERE type = 'table' AND name = 'audit_actor')",
        )?
        .query_row([], |r| r.get(0))?;
    if !attached {
        return Ok(None);
    }
    Ok(conn
        .prepare_cached("SELECT uid FROM temp.audit_actor")?
        .query_row([], |r| r.get(0))
        .optional()?)
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
                  'drift ' || (NEW.drift * coalesce(NEW.period,
                                                    (SELECT period FROM main.tokens
                                                     WHERE id = NEW.token_id))) || ' s'
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
    // Every row written through this connection, by the triggers above or by
    // [`record`], also removes the rows past the retention.
    conn.execute_batch(&format!(
        "CREATE TEMP TRIGGER IF NOT EXISTS audit_retention AFTER INSERT ON main.audit
         BEGIN
           DELETE FROM main.audit WHERE at < {};
         END;",
        retention_cutoff_sql("NEW.at")
    ))?;
    conn.execute(
        "INSERT INTO temp.audit_actor (uid) VALUES (?1)",
        [actor_uid],
    )?;
    Ok(())
}

/// Undoes [`attach`]: later changes through `conn` write no audit row of their own.
/// The triggers stay (they write one row per actor in `temp.audit_actor`, which is now
/// empty).
pub fn detach(conn: &Connection) -> Result<()> {
    let attached: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM temp.sqlite_schema
                            WHERE type = 'table' AND name = 'audit_actor')",
        )?
        .query_row([], |r| r.get(0))?;
    if attached {
        conn.execute("DELETE FROM temp.audit_actor", [])?;
    }
    Ok(())
}

/// Runs `f` with the device changes it makes through `store` recorded as `actor_uid`
/// (see [`attach`]), then detaches, whatever `f` returned: on a connection that serves
/// many callers one after another (`mfad`), one request's actor must never be written
/// into the next request's rows. If detaching fails, that error is returned and the
/// caller must not use the connection again (mfad then reopens the store).
pub fn as_actor<T>(
    store: &mut crate::store::Store,
    actor_uid: u32,
    f: impl FnOnce(&mut crate::store::Store) -> Result<T>,
) -> Result<T> {
    attach(store.conn(), actor_uid)?;
    let result = f(store);
    detach(store.conn())?;
    result
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

    // mfad serves many callers on one connection: the actor of one request must never be
    // written into the rows of the next.
    #[test]
    fn as_actor_records_its_changes_only() {
        use crate::enrollment;
        use crate::test_support::{device, user};
        let mut ts = crate::test_support::temp_store();
        let now = crate::clock::now().unwrap();
        let alice = user("alice");
        as_actor(&mut ts.store, 1000, |_| Ok(())).unwrap();
        assert_eq!(actor(ts.store.conn()).unwrap(), None);
        // A failing request detaches too.
        let failed: Result<()> =
            as_actor(&mut ts.store, 1000, |_| Err(crate::Error::ManagedByAdmin));
        assert!(failed.is_err());
        assert_eq!(actor(ts.store.conn()).unwrap(), None);
        // Inside, a change is recorded as the actor…
        attach(ts.store.conn(), 1000).unwrap();
        enrollment::begin_totp(&mut ts.store, &alice, &device("phone"), "host", now).unwrap();
        detach(ts.store.conn()).unwrap();
        // …and after it, the next change through the same connection writes no row.
        enrollment::begin_totp(&mut ts.store, &alice, &device("tablet"), "host", now).unwrap();
        let rows = list(ts.store.conn(), Some("alice"), None).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].actor_uid, 1000);
        assert_eq!(rows[0].device.as_deref(), Some("phone"));
    }

    // Rows that were never removed would let anyone grow the table without end.
    #[test]
    fn rows_past_the_retention_go_at_the_next_write() {
        const DAY: i64 = 86_400;
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        let now = crate::clock::now().unwrap();
        let ages = |store: &crate::store::Store| -> Vec<i64> {
            list(store.conn(), None, None)
                .unwrap()
                .iter()
                .map(|r| (now - r.at) / DAY)
                .collect()
        };
        let at = |days: i64| now - days * DAY;
        let tx = store.write().unwrap();
        for days in [400, 366, 364] {
            record(&tx, at(days), 0, "alice", "unlock", None, None).unwrap();
        }
        tx.commit().unwrap();
        // Each was kept at its own write: none was a year older than the newest then.
        assert_eq!(ages(store), [400, 366, 364]);
        // The next write removes what is older than a year now.
        let tx = store.write().unwrap();
        record(&tx, now, 0, "bob", "unlock", None, None).unwrap();
        tx.commit().unwrap();
        assert_eq!(ages(store), [364, 0]);
        // A shorter retention takes effect at the next write.
        let tx = store.write().unwrap();
        crate::policy::set(&tx, "audit_retention_days", "30").unwrap();
        record(&tx, at(31), 0, "bob", "unlock", None, None).unwrap();
        record(&tx, at(2), 0, "bob", "unlock", None, None).unwrap();
        tx.commit().unwrap();
        assert_eq!(ages(store), [31, 2, 0]);
        // Rows written by the attached connection's triggers (a device change) prune too.
        attach(store.conn(), 1234).unwrap();
        let user = crate::names::UserName::parse("carol").unwrap();
        let name = crate::names::DeviceName::parse("phone").unwrap();
        crate::enrollment::begin_totp(store, &user, &name, "host", now).unwrap();
        assert_eq!(ages(store), [2, 0, 0]);
        // By hand: everything before a moment, counted.
        let tx = store.write().unwrap();
        assert_eq!(prune_before(&tx, now - DAY).unwrap(), 1);
        tx.commit().unwrap();
        assert_eq!(ages(store), [0, 0]);
        let tx = store.write().unwrap();
        assert_eq!(prune_expired(&tx, now).unwrap(), 0);
        tx.commit().unwrap();
        // The deletion uses the index on the time, not a scan of the table.
        let plan: String = store
            .conn()
            .query_row(
                "EXPLAIN QUERY PLAN DELETE FROM main.audit WHERE at < 5",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("audit_by_time"), "{plan}");
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
