//! Bounds on how fast and how far registrations can grow the store: without them, 500
//! runs of `mfa enroll totp NAME --begin` by an ordinary user added 205 KB in 3.8 s, and
//! a full disk stops every login on the host.
//!
//! Two rules, both checked inside the write transaction that inserts the pending row, so
//! that simultaneous registrations cannot slip past them together:
//!
//! * at most [`MAX_PENDING`] unfinished registrations per user at once, whoever begins
//!   them. Root is held to it too: root's registrations for someone go one at a time
//!   anyway, and a registration at login runs as root inside sshd, where the person
//!   typing may be anyone who reached the prompt. Registrations held for a login (see
//!   [`crate::login_hold`]) are counted apart from the others, each against the same cap:
//!   whoever reaches a registration at login (behind a first factor that did not end the
//!   stack) can then never use up the slots of the user's own `mfa enroll`.
//! * at most [`MAX_BEGUN`] registrations begun per user in [`BEGUN_WINDOW_SECS`] by a
//!   non-root caller. Counted from the audit rows every begin already writes (actor uid
//!   and time, indexed by user and time), so no table of its own is needed. Root is not
//!   limited: an administrator enrolling a room full of people must not be stopped, and
//!   only root can write root's rows. Registrations at login are recorded as the service's
//!   uid (root for sshd), so only the cap applies to them.

use crate::clock::UnixTime;
use rusqlite::Connection;

use crate::store::devices;
use crate::{Error, Result, audit};

/// Unfinished registrations a user may have at once. One is the usual case; a second and
/// third cover a person setting up a phone and a tablet side by side, or starting over
/// under a new name. More is never needed, since starting over under the same name
/// replaces the earlier attempt.
pub const MAX_PENDING: u32 = 3;

/// Registrations a non-root caller may begin per [`BEGUN_WINDOW_SECS`]. A person who
/// fumbles a QR code starts over two or three times; ten an hour leaves room for that
/// and caps a script at 240 rows a day.
pub const MAX_BEGUN: u32 = 10;

/// The window of [`MAX_BEGUN`] and [`MAX_CHANGES`]: an hour.
pub const BEGUN_WINDOW_SECS: i64 = 3600;

/// Audit rows a non-root caller's own commands may write for their account per
/// [`BEGUN_WINDOW_SECS`]: every change a user can make (begin, finish, rename, remove,
/// resync, new recovery codes, a recovery code at `mfa`'s prompt) writes one or two, so
/// this is some thirty commands an hour, far beyond a person's needs, and caps what a
/// script can add to the store at 1,440 rows a day (kept for the audit retention).
pub const MAX_CHANGES: u32 = 60;

/// Refuses a non-root caller's change to their own devices at `now` when their commands
/// already wrote [`MAX_CHANGES`] audit rows within the hour: any write a user can cause,
/// not only a registration's start, grows the root-owned store.
pub fn check_changes(conn: &Connection, user: &str, now: UnixTime) -> Result<()> {
    match nth_recent(conn, user, None, MAX_CHANGES, now)? {
        Some(at) => Err(Error::TooManyChanges {
            user: user.to_owned(),
            max: MAX_CHANGES,
            retry_at: at + BEGUN_WINDOW_SECS,
        }),
        None => Ok(()),
    }
}

/// The time of the `n`-th most recent audit row of `user` written by a non-root actor
/// within the last [`BEGUN_WINDOW_SECS`] (of `action` only, if given), if there are that
/// many: once it leaves the window there is room again.
fn nth_recent(
    conn: &Connection,
    user: &str,
    action: Option<&str>,
    n: u32,
    now: UnixTime,
) -> Result<Option<i64>> {
    crate::store::audit::nth_recent_by_others(conn, user, action, n, now - BEGUN_WINDOW_SECS)
}

/// Refuses to begin registering `name` for `user` at `now` when that would exceed either
/// bound; `held`: the new row is held for a login. Runs inside the transaction that then
/// inserts the pending row; an attempt of the same name is replaced by the new one, so it
/// does not count.
pub fn check_begin(
    conn: &Connection,
    user: &str,
    name: &str,
    held: bool,
    now: UnixTime,
) -> Result<()> {
    check_pending(conn, user, name, held, now)?;
    if audit::actor(conn)?.is_some_and(|uid| uid != 0) {
        check_begun(conn, user, now)?;
    }
    Ok(())
}

fn check_pending(
    conn: &Connection,
    user: &str,
    name: &str,
    held: bool,
    now: UnixTime,
) -> Result<()> {
    let (count, next_expiry) = devices::pending_others(conn, user, name, held, now)?;
    if count >= MAX_PENDING {
        return Err(Error::TooManyPending {
            user: user.to_owned(),
            max: MAX_PENDING,
            next_expiry: next_expiry.unwrap_or(now),
        });
    }
    Ok(())
}

fn check_begun(conn: &Connection, user: &str, now: UnixTime) -> Result<()> {
    match nth_recent(conn, user, Some("begin"), MAX_BEGUN, now)? {
        Some(at) => Err(Error::TooManyBegun {
            user: user.to_owned(),
            max: MAX_BEGUN,
            retry_at: at + BEGUN_WINDOW_SECS,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::{PENDING_LIFETIME_SECS, begin_totp, finish_totp};
    use crate::test_support::*;

    fn begin(ts: &mut TempStore, who: &str, name: &str, now: UnixTime) -> Result<String> {
        begin_totp(&mut ts.store, &user(who), &device(name), "host", now)
            .map(|p| p.secret.to_base32().to_string())
    }

    // Unlimited pending registrations would let anyone fill the disk.
    #[test]
    fn a_fourth_pending_registration_is_refused_until_one_is_finished_or_expires() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "a", T0).unwrap();
        begin(&mut ts, "alice", "b", T0 + 10).unwrap();
        begin(&mut ts, "alice", "c", T0 + 20).unwrap();
        let e = begin(&mut ts, "alice", "d", T0 + 30).unwrap_err();
        assert!(
            matches!(e, Error::TooManyPending { max: 3, next_expiry, .. }
                if next_expiry == T0 + PENDING_LIFETIME_SECS),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("mfa enroll finish") && text.contains("mfa list"),
            "{text}"
        );
        // Starting one over under its own name replaces it: still three.
        begin(&mut ts, "alice", "c", T0 + 40).unwrap();
        // Root is held to it too (registrations at login run as root).
        crate::audit::attach(ts.store.conn(), 0).unwrap();
        assert!(matches!(
            begin(&mut ts, "alice", "d", T0 + 50),
            Err(Error::TooManyPending { .. })
        ));
        // Other users are not affected.
        begin(&mut ts, "bob", "d", T0 + 50).unwrap();
        // Finishing one frees its slot.
        let (c1, c2) = (oathtool(&s, T0 + 60 - 30), oathtool(&s, T0 + 60));
        finish_totp(
            &mut ts.store,
            &user("alice"),
            &device("a"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0 + 60,
        )
        .unwrap();
        begin(&mut ts, "alice", "d", T0 + 60).unwrap();
        assert!(begin(&mut ts, "alice", "e", T0 + 70).is_err());
        // So does expiry: "b" expires first.
        begin(&mut ts, "alice", "e", T0 + 10 + PENDING_LIFETIME_SECS).unwrap();
    }

    #[test]
    fn registrations_held_for_a_login_never_use_up_the_users_own_slots() {
        // Whoever reaches a registration at login (behind a
        // first factor that did not end the stack) holds rows for the victim; they are
        // capped too, but apart, so the victim's own `mfa enroll` still has its slots.
        let mut ts = temp_store();
        for (i, name) in ["h1", "h2", "h3"].iter().enumerate() {
            let hold = [u8::try_from(i).unwrap(); 32];
            crate::enrollment::begin_totp_held(
                &mut ts.store,
                &user("alice"),
                &device(name),
                "host",
                Some(&hold),
                T0,
            )
            .unwrap();
        }
        let fourth = crate::enrollment::begin_totp_held(
            &mut ts.store,
            &user("alice"),
            &device("h4"),
            "host",
            Some(&[9; 32]),
            T0,
        );
        assert!(matches!(fourth, Err(Error::TooManyPending { .. })));
        for name in ["a", "b", "c"] {
            begin(&mut ts, "alice", name, T0 + 1).unwrap();
        }
        assert!(matches!(
            begin(&mut ts, "alice", "d", T0 + 2),
            Err(Error::TooManyPending { .. })
        ));
    }

    /// Writes `n` begin rows for `who` by `uid` at `at`, as the audit trigger does.
    #[test]
    fn a_non_root_caller_makes_at_most_sixty_changes_an_hour() {
        // Every write a user can cause grows the store, not only a
        // registration's start (a loop of `mfa recovery generate`, or of renames).
        let mut ts = temp_store();
        let now = T0;
        let changed = |ts: &mut TempStore, who: &str, uid: u32, at: UnixTime, n: u32| {
            let tx = ts.store.write().unwrap();
            for _ in 0..n {
                crate::audit::record(&tx, at, uid, who, "rename", Some("a"), None).unwrap();
            }
            tx.commit().unwrap();
        };
        changed(&mut ts, "alice", 1000, now - 3000, 59);
        // Root's rows, other users' rows and rows older than the hour do not count.
        changed(&mut ts, "alice", 0, now - 10, 100);
        changed(&mut ts, "bob", 1001, now - 10, 100);
        changed(&mut ts, "alice", 1000, now - 4000, 100);
        check_changes(ts.store.conn(), "alice", now).unwrap();
        changed(&mut ts, "alice", 1000, now - 10, 1);
        let e = check_changes(ts.store.conn(), "alice", now).unwrap_err();
        assert!(
            matches!(e, Error::TooManyChanges { max: 60, retry_at, .. }
                if retry_at == now - 3000 + BEGUN_WINDOW_SECS),
            "{e:?}"
        );
        assert!(e.to_string().contains("try again after"), "{e}");
        check_changes(ts.store.conn(), "alice", now - 3000 + BEGUN_WINDOW_SECS).unwrap();
    }

    #[test]
    fn only_the_asked_action_and_recent_rows_count() {
        let mut ts = temp_store();
        begun(&mut ts, "alice", 1000, T0, 2);
        assert_eq!(
            nth_recent(ts.store.conn(), "alice", Some("begin"), 2, T0).unwrap(),
            Some(T0)
        );
        assert_eq!(
            nth_recent(ts.store.conn(), "alice", Some("begin"), 3, T0).unwrap(),
            None
        );
        assert_eq!(
            nth_recent(ts.store.conn(), "alice", Some("rename"), 1, T0).unwrap(),
            None
        );
    }

    fn begun(ts: &mut TempStore, who: &str, uid: u32, at: UnixTime, n: u32) {
        let tx = ts.store.write().unwrap();
        for i in 0..n {
            let name = format!("x{i}");
            crate::audit::record(&tx, at, uid, who, "begin", Some(&name), Some("totp")).unwrap();
        }
        tx.commit().unwrap();
    }

    // Without a bound a non-root user could begin registrations without end.
    #[test]
    fn a_non_root_caller_begins_at_most_ten_an_hour() {
        let mut ts = temp_store();
        // The audit rows of real begins carry the real time.
        let now = crate::clock::now().unwrap();
        crate::audit::attach(ts.store.conn(), 1000).unwrap();
        // Nine begun 50 minutes ago, by the user; root's and other users' do not count.
        begun(&mut ts, "alice", 1000, now - 3000, 9);
        begun(&mut ts, "alice", 0, now - 100, 5);
        begun(&mut ts, "bob", 1001, now - 100, 5);
        // Begins older than the hour do not count either.
        begun(&mut ts, "alice", 1000, now - 4000, 5);
        begin(&mut ts, "alice", "tenth", now).unwrap();
        let e = begin(&mut ts, "alice", "eleventh", now).unwrap_err();
        assert!(
            matches!(e, Error::TooManyBegun { max: 10, retry_at, .. }
                if retry_at == now - 3000 + BEGUN_WINDOW_SECS),
            "{e:?}"
        );
        assert!(e.to_string().contains("try again after"), "{e}");
        // The refused attempt left no row: the wait does not grow by trying.
        let rows = crate::audit::list(ts.store.conn(), Some("alice"), None).unwrap();
        assert!(!rows.iter().any(|r| r.device.as_deref() == Some("eleventh")));
        // Once the nine leave the window there is room again.
        begin(&mut ts, "alice", "eleventh", now - 3000 + BEGUN_WINDOW_SECS).unwrap();
        // Root is not limited.
        crate::audit::attach(ts.store.conn(), 0).unwrap();
        begun(&mut ts, "carol", 1002, now, 10);
        begin(&mut ts, "carol", "phone", now).unwrap();
    }
}
