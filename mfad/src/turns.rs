//! Whose turn it is at the store: one request at a time, each to its end, root's always
//! before any user's that is waiting, so no number of users' requests delays a login or
//! root's `mfa`; within each, first come, first served.
//!
//! The request runs in the thread of the connection it came on, once it has the turn: a
//! login costs no hand-over to another thread and back (the daemon's latency is most of a
//! login's), and the order among waiters is this gate's, not the scheduler's. The store
//! itself is only ever touched by the holder of the turn.
//!
//! With a fleet database ([`crate::fleet`]), requests about its accounts take their turn
//! at a second gate, with the same rules, and never the store's: a database that is slow
//! or down (each request waits for it up to the configured deadline) cannot delay the
//! logins of the accounts kept in the local store, the way back in for an administrator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use pam_mfa_protocol::{ErrorKind, ErrorReply, Response};

use crate::authorise::Work;
use crate::log::Log;
use crate::service::Service;

/// Requests of non-root callers waiting at once. Each connection has at most one
/// request outstanding, so the connection caps bound it already; this is a second fence.
pub const USERS_WAITING: usize = 256;

/// A line of waiting requests: tickets handed out and the ticket whose turn is next.
#[derive(Default)]
struct Line {
    issued: u64,
    next: u64,
}

impl Line {
    fn waiting(&self) -> u64 {
        self.issued - self.next
    }
}

#[derive(Default)]
struct State {
    busy: bool,
    root: Line,
    users: Line,
}

pub struct Turns {
    gate: Gate,
    service: Mutex<Service>,
    fleet: Option<(Gate, crate::fleet::Side)>,
    /// A request left the store's housekeeping due, to be done after its answer.
    tidy_due: AtomicBool,
}

/// One line of requests, root's first: whose turn it is.
#[derive(Default)]
struct Gate {
    state: Mutex<State>,
    turn: Condvar,
}

/// Holding the turn; giving it back however the request ends (a panic included, so that
/// one request's bug cannot stop every later login).
struct Held<'a>(&'a Gate);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.lock_state().busy = false;
        self.0.turn.notify_all();
    }
}

impl Turns {
    pub fn new(service: Service) -> Self {
        Self {
            gate: Gate::default(),
            service: Mutex::new(service),
            fleet: None,
            tidy_due: AtomicBool::new(false),
        }
    }

    /// Serves the fleet's accounts from its database, at their own gate.
    pub fn with_fleet(mut self, side: crate::fleet::Side) -> Self {
        self.fleet = Some((Gate::default(), side));
        self
    }

    /// Runs `work` for a peer of `uid` when its turn comes, to its end.
    pub fn run(&self, uid: u32, work: Work, log: &Log) -> Response {
        if let Some((gate, side)) = &self.fleet
            && side.serves(&work)
        {
            let Some(_turn) = gate.take(uid) else {
                return busy();
            };
            let local = self.local_store(uid, log);
            return side.answer(uid, work, log, &local);
        }
        if let Some((gate, side)) = &self.fleet
            && let Some(fleet_work) = side.fleet_part(&work)
        {
            // Each store at its own gate, one after the other (never both turns at once).
            let local = self.run_local(uid, work, log);
            if matches!(local, Response::Error(_)) {
                return local;
            }
            let Some(_turn) = gate.take(uid) else {
                return busy();
            };
            let store = self.local_store(uid, log);
            return side.merge(local, side.answer(uid, fleet_work, log, &store));
        }
        let prune = self.fleet.is_some()
            && matches!(&work, Work::Admin(a) if matches!(**a, crate::authorise::Admin::AuditPrune { .. }));
        let response = self.run_local(uid, work, log);
        match response {
            // The fleet's audit is not pruned through a host: say so, not "done".
            Response::Pruned { removed, rule } if prune => Response::Pruned {
                removed,
                rule: format!(
                    "{rule} in this host's store (the fleet database's audit rows are \
                     pruned by its owner, not through a host)"
                ),
            },
            other => other,
        }
    }

    /// After a connection's answer has gone out: the store's housekeeping
    /// ([`Service::tidy`]) if the request before it left some due. It waits for a turn of
    /// its own, as root's requests do: the answer is already out, no login's commit waits
    /// for a fold, and a fold due is never skipped for a request that came first.
    pub fn tidy(&self, log: &Log) {
        if !self.tidy_due.swap(false, Ordering::AcqRel) {
            return;
        }
        let Some(_turn) = self.gate.take(0) else {
            return;
        };
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tidy(log);
    }

    /// The local store, for a fleet request that needs it between its database calls.
    fn local_store<'a>(&'a self, uid: u32, log: &'a Log) -> LocalStore<'a> {
        LocalStore {
            gate: &self.gate,
            service: &self.service,
            tidy_due: &self.tidy_due,
            log,
            uid,
        }
    }

    /// Runs `work` on the local store when its turn comes.
    fn run_local(&self, uid: u32, work: Work, log: &Log) -> Response {
        let Some(_turn) = self.gate.take(uid) else {
            return busy();
        };
        let mut service = self.service.lock().unwrap_or_else(PoisonError::into_inner);
        let response = service.answer(uid, work, log);
        schedule_tidy(&service, &self.tidy_due);
        response
    }
}

/// After a turn at the store: marks its housekeeping due for [`Turns::tidy`] once the
/// answer has gone out, if the turn left some.
fn schedule_tidy(service: &Service, tidy_due: &AtomicBool) {
    if service.wants_tidy() {
        tidy_due.store(true, Ordering::Release);
    }
}

/// The host's own store, for a request about a fleet account that needs it (the host's
/// remembered logins): reached at the store's gate, like any request of the store, and
/// only between calls to the database, so that a slow database never holds the store.
pub struct LocalStore<'a> {
    gate: &'a Gate,
    service: &'a Mutex<Service>,
    /// Set when what `with` wrote leaves the WAL due for a fold ([`Turns::tidy`]).
    tidy_due: &'a AtomicBool,
    log: &'a Log,
    uid: u32,
}

impl LocalStore<'_> {
    /// Runs `f` on the store (`None`: there is none) when the store's turn comes;
    /// `Ok(None)` when too many requests are waiting for it.
    pub fn with<T>(
        &self,
        f: impl FnOnce(Option<&mut pam_mfa::store::Store>) -> pam_mfa::Result<T>,
    ) -> pam_mfa::Result<Option<T>> {
        let Some(_turn) = self.gate.take(self.uid) else {
            return Ok(None);
        };
        let mut service = self.service.lock().unwrap_or_else(PoisonError::into_inner);
        let result = service.with_store(self.log, f);
        schedule_tidy(&service, self.tidy_due);
        result.map(Some)
    }
}

fn busy() -> Response {
    Response::Error(ErrorReply::new(
        ErrorKind::Busy,
        "too many requests waiting; try again later",
    ))
}

impl Gate {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the turn of a request of `uid` (root first) and takes it; `None` when a
    /// user's request finds too many others waiting.
    fn take(&self, uid: u32) -> Option<Held<'_>> {
        let root = uid == 0;
        let mut state = self.lock_state();
        if !root && state.users.waiting() >= USERS_WAITING as u64 {
            return None;
        }
        let line = if root {
            &mut state.root
        } else {
            &mut state.users
        };
        let ticket = line.issued;
        line.issued += 1;
        loop {
            let mine = if root { &state.root } else { &state.users };
            let first = mine.next == ticket;
            if !state.busy && first && (root || state.root.waiting() == 0) {
                break;
            }
            state = self
                .turn
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if root {
            state.root.next += 1;
        } else {
            state.users.next += 1;
        }
        state.busy = true;
        Some(Held(self))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn turns() -> Arc<Turns> {
        Arc::new(Turns::new(Service::new(
            None,
            "/nonexistent/devices.db".into(),
        )))
    }

    /// What a fleet request writes into the host's store (its remembered logins) goes
    /// through the daemon's resident connection and is folded between requests, as a
    /// local request's writes are: never left to a login's commit.
    #[test]
    fn the_fleets_writes_to_the_local_store_are_folded_between_requests() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store/devices.db");
        pam_mfa::store::Store::open_or_create(&db).unwrap();
        let wal = db.with_file_name("devices.db-wal");
        let t = Turns::new(Service::resident(None, db.clone()));
        let log = Log::syslog_only();
        let local = t.local_store(0, &log);
        let write = |n: u32| {
            local
                .with(|store| {
                    let tx = store.unwrap().write()?;
                    if n == 0 {
                        tx.execute_batch("CREATE TABLE scratch (n INTEGER)")?;
                    }
                    tx.execute("INSERT INTO scratch VALUES (?1)", [n])?;
                    Ok(tx.commit()?)
                })
                .unwrap()
                .unwrap();
        };
        let mut n = 0;
        while !t.tidy_due.load(Ordering::Acquire) {
            write(n);
            n += 1;
            assert!(n <= 300, "the fold was never scheduled");
        }
        assert!(n >= 200, "scheduled after {n} commits: before it was due");
        let len = |path: &std::path::Path| std::fs::metadata(path).unwrap().len();
        let (wal_before, db_before) = (len(&wal), len(&db));
        t.tidy(&log);
        assert!(!t.tidy_due.load(Ordering::Acquire));
        assert!(len(&db) > db_before, "nothing was folded into the database");
        // The next commit writes over the WAL from its start instead of growing it.
        write(n);
        assert_eq!(len(&wal), wal_before);
    }

    /// With the turn held, a user's request and then root's wait; root's goes first.
    #[test]
    fn root_first() {
        let t = turns();
        let held = t.gate.take(1000).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |uid: u32| {
            let (t, order) = (t.clone(), order.clone());
            std::thread::spawn(move || {
                let turn = t.gate.take(uid).unwrap();
                order.lock().unwrap().push(uid);
                drop(turn);
            })
        };
        let user = spawn(1001);
        while t.gate.lock_state().users.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let root = spawn(0);
        while t.gate.lock_state().root.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        user.join().unwrap();
        root.join().unwrap();
        assert_eq!(*order.lock().unwrap(), [0, 1001]);
    }

    #[test]
    fn users_waiting_are_bounded_and_root_is_never_turned_away() {
        let t = turns();
        t.gate.lock_state().users.issued = USERS_WAITING as u64;
        assert!(t.gate.take(1000).is_none(), "the users' lane is bounded");
        assert!(t.gate.take(0).is_some(), "root is never turned away");
    }

    /// Root's requests are served in the order they came.
    #[test]
    fn first_come_first_served() {
        let t = turns();
        let held = t.gate.take(0).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..5u32 {
            let (t2, order) = (t.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let turn = t2.gate.take(0).unwrap();
                order.lock().unwrap().push(i);
                drop(turn);
            }));
            while t.gate.lock_state().root.waiting() < u64::from(i) + 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(held);
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    }

    /// A request that panics gives the turn back.
    #[test]
    fn the_turn_survives_a_panic() {
        let t = turns();
        let t2 = t.clone();
        let _ = std::thread::spawn(move || {
            let _turn = t2.gate.take(0).unwrap();
            panic!("a bug in a request");
        })
        .join();
        assert!(!t.gate.lock_state().busy);
        assert!(t.gate.take(1000).is_some());
    }
}
