//! The store's side of a request: runs it, once it has the turn ([`crate::turns`]), to its
//! end through the library (the same functions the module calls), and logs each login's
//! outcome.

use pam_mfa::clock::UnixTime;
use std::path::{Path, PathBuf};

use pam_mfa::fido2::KeyFailure;
use pam_mfa::fido2::verify::Rejection;
use pam_mfa::login::{self, Readiness, Refusal};
use pam_mfa::names::UserName;
use pam_mfa::store::{Store, devices};
use pam_mfa::{clock, policy, recovery};
use pam_mfa_protocol::{
    AccountState, BeforePromptReply, CodeKind, DeviceEntry, ErrorKind, ErrorReply, LoginContext,
    NoDeviceRule, RecoveryOutcome, RefusalKind, Response, VerifyOutcome,
};

use crate::authorise::Work;
use crate::log::{Level, Log};
use crate::selfservice::{self, Tickets};

/// The store (`None` until the file exists), and the tickets
/// (proofs, recovery sets, key challenges) it has handed out.
pub struct Service {
    store: Option<Store>,
    db: PathBuf,
    tickets: Tickets,
    /// The daemon's: the store stays open from one request to the next, its WAL folded
    /// between them ([`Service::tidy`]). `mfa --db` opens it for a few requests instead.
    resident: bool,
    /// A change other than a login's was made since the WAL was last emptied: it may hold
    /// a removed secret's old pages ([`Store::empty_wal`]).
    scrub: bool,
}

impl Service {
    /// For `mfa --db`: the store as a short-lived process uses it.
    pub fn new(store: Option<Store>, db: PathBuf) -> Self {
        Self {
            store,
            db,
            tickets: Tickets::new(),
            resident: false,
            scrub: false,
        }
    }

    /// For the daemon: the store kept open as long as it runs.
    pub fn resident(store: Option<Store>, db: PathBuf) -> Self {
        Self {
            resident: true,
            ..Self::new(store, db)
        }
    }

    /// After a request, still in its turn: a store just opened (at start, by a request
    /// that created it, or again after it was replaced) becomes the daemon's resident
    /// connection. If it cannot, its connection is broken: closed like any store that
    /// failed, and opened afresh by the next request.
    fn settle(&mut self, log: &Log) {
        if !self.resident {
            return;
        }
        if let Some(store) = &mut self.store
            && let Err(e) = store.make_resident()
        {
            self.give_up_store(log, Some(&e));
        }
    }

    /// Closes the store, writing nothing, for the next request to open afresh; says why
    /// when it failed (a store merely replaced is not an error).
    fn give_up_store(&mut self, log: &Log, error: Option<&pam_mfa::Error>) {
        if let Some(e) = error {
            log.log(
                Level::Error,
                &format!("device store error: {e}; closing it until the next request"),
            );
        }
        if let Some(old) = self.store.take() {
            old.abandon();
        }
    }

    /// Between requests, in a turn of its own: folds the resident store's WAL when it is
    /// due ([`Store::fold_wal_if_due`]), so that no login's commit waits for it, or
    /// empties it after a change that may have removed a secret, when a reader kept
    /// [`Service::answer`] from doing so ([`Store::empty_wal`]).
    /// The store is checked again first, as before a request: pages folded into a file
    /// cut short or swapped since then would leave it half-written.
    pub fn tidy(&mut self, log: &Log) {
        let Some(store) = &self.store else {
            self.scrub = false;
            return;
        };
        if !self.scrub && !store.fold_due() {
            return;
        }
        match store.revalidate() {
            Ok(true) => {}
            Ok(false) => return self.give_up_store(log, None),
            Err(e) => return self.give_up_store(log, Some(&e)),
        }
        if self.scrub {
            // A reader holding the WAL (`mfa doctor`) makes this wait for a later request.
            self.scrub = !store.empty_wal();
        } else {
            store.fold_wal_if_due();
        }
    }

    /// Runs one authorised request to its end and gives its answer.
    pub fn answer(&mut self, uid: u32, work: Work, log: &Log) -> Response {
        // The store as it is now, not as it was when the daemon opened it: removed or
        // replaced, it is opened again (or found missing) by the handler; spoiled, the
        // request is refused and the next one checks again.
        if let Some(store) = &self.store {
            match store.revalidate() {
                Ok(true) => {}
                Ok(false) => {
                    if let Some(old) = self.store.take() {
                        old.abandon();
                    }
                }
                Err(e) => {
                    if let Some(old) = self.store.take() {
                        old.abandon();
                    }
                    if !matches!(work, Work::Hello) {
                        return unavailable(log, &e);
                    }
                }
            }
        }
        let changes_before = self.store.as_ref().map(|s| s.conn().total_changes());
        let login_or_look = work.is_login_or_look();
        let (store, db) = (&mut self.store, self.db.as_path());
        let response = match work {
            Work::Reauth { .. } | Work::FinishTotp { .. } | Work::RecoveryCommit { .. } => {
                selfservice::handle(store, db, uid, work, &mut self.tickets, log)
            }
            Work::Change { .. } | Work::FinishFido2 { .. } => {
                selfservice::handle(store, db, uid, work, &mut self.tickets, log)
            }
            Work::KeyChallenge { account, purpose } => {
                crate::keys::challenge(store, db, uid, &account, purpose, &mut self.tickets, log)
            }
            Work::KeyAnswer {
                account,
                ticket,
                assertion,
                context,
            } => crate::keys::answer(
                store,
                db,
                uid,
                &account,
                (&ticket, &assertion),
                context.as_ref(),
                &mut self.tickets,
                log,
            ),
            Work::Admin(work) => crate::admin::handle(store, db, uid, *work, log),
            Work::AtLogin(work) => crate::held::handle(store, db, uid, *work, log),
            work => handle(store, db, uid, work, log),
        };
        // A store that failed (a disk error, a read-only remount, damage) is closed,
        // writing nothing, and opened afresh by the next request: the daemon recovers
        // when the store does, without a restart.
        if let Response::Error(e) = &response
            && e.kind == ErrorKind::Unavailable
            && let Some(old) = self.store.take()
        {
            old.abandon();
        }
        // Never let one request's actor (the uid its audit rows name) reach the next
        // request's rows: a connection that kept one is replaced.
        if let Some(s) = &self.store
            && !matches!(pam_mfa::audit::actor(s.conn()), Ok(None))
        {
            log.log(
                Level::Error,
                "the store connection kept an audit actor after a request; reopening it",
            );
            self.store = None;
        }
        if self.resident && !login_or_look {
            let changes_after = self.store.as_ref().map(|s| s.conn().total_changes());
            self.scrub |= changes_after.is_some() && changes_after != changes_before;
        }
        self.settle(log);
        // Emptied before the answer goes out, so that when `mfa remove` says done, the
        // secret is in no file; such changes are rare, and no login waits for it. A
        // reader holding the WAL (`mfa doctor`) leaves it to a later turn.
        if self.scrub
            && let Some(store) = &self.store
        {
            self.scrub = !store.empty_wal();
        }
        response
    }

    /// Whether the resident store's WAL is due to be emptied or folded ([`Service::tidy`]).
    pub fn wants_tidy(&self) -> bool {
        self.resident
            && self
                .store
                .as_ref()
                .is_some_and(|s| self.scrub || s.fold_due())
    }
}

impl Service {
    /// The store as it is now, for the fleet's side: a fleet account's remembered logins
    /// are this host's ([`crate::fleet`]). `None` when there is no store. Kept open and
    /// folded between requests as after [`Service::answer`].
    pub(crate) fn with_store<T>(
        &mut self,
        log: &Log,
        f: impl FnOnce(Option<&mut Store>) -> pam_mfa::Result<T>,
    ) -> pam_mfa::Result<T> {
        if let Some(store) = &self.store
            && !matches!(store.revalidate(), Ok(true))
            && let Some(old) = self.store.take()
        {
            old.abandon();
        }
        let result = f(store_now(&mut self.store, &self.db)?);
        if result.is_err()
            && let Some(old) = self.store.take()
        {
            old.abandon();
        }
        self.settle(log);
        result
    }
}

/// The answer when the store cannot answer: what is wrong is in the daemon's log and in
/// the answer (a path and a reason, never a secret), so that the module's log line and
/// `mfa`'s error say it where the administrator looks.
pub fn unavailable(log: &Log, e: &pam_mfa::Error) -> Response {
    log.log(Level::Error, &format!("device store error: {e}; refusing"));
    Response::Error(ErrorReply::new(
        ErrorKind::Unavailable,
        format!("the device store cannot answer: {e}"),
    ))
}

/// Opens the store if it has come into existence since the last request.
pub(crate) fn store_now<'s>(
    store: &'s mut Option<Store>,
    db: &Path,
) -> pam_mfa::Result<Option<&'s mut Store>> {
    open_store(store, db, false)
}

/// Opens the store if it is not open: creating it (as `mfa` always did) for a request
/// that changes something, `creates`; otherwise a missing store stays `None` (nobody has
/// a device).
pub(crate) fn open_store<'s>(
    store: &'s mut Option<Store>,
    db: &Path,
    creates: bool,
) -> pam_mfa::Result<Option<&'s mut Store>> {
    if store.is_none() {
        *store = if creates {
            Some(Store::open_or_create(db)?)
        } else {
            Store::open_existing(db)?
        };
    }
    Ok(store.as_mut())
}

fn handle(store: &mut Option<Store>, db: &Path, uid: u32, work: Work, log: &Log) -> Response {
    match work {
        Work::Hello => Response::Hello {
            protocol: pam_mfa_protocol::PROTOCOL_VERSION,
            daemon: env!("CARGO_PKG_VERSION").to_owned(),
            store: db.display().to_string(),
        },
        work => match store_now(store, db).and_then(|s| run_work(s, uid, work, log)) {
            Ok(r) => r,
            Err(e) => unavailable(log, &e),
        },
    }
}

pub fn who(user: &UserName, uid: u32) -> String {
    format!("user={user} by uid {uid}")
}

fn run_work(
    store: Option<&mut Store>,
    uid: u32,
    work: Work,
    log: &Log,
) -> pam_mfa::Result<Response> {
    let now = clock::now()?;
    Ok(match work {
        Work::BeforePrompt {
            account,
            want_keys,
            context,
            line,
        } => {
            // The login decision, where the module sent its line's rules.
            let decided = |mut reply: BeforePromptReply| {
                reply.decision = line.map(|l| pam_mfa::decision::decide(&l, &reply));
                Response::BeforePrompt(reply)
            };
            let Some(store) = store else {
                return Ok(decided(BeforePromptReply {
                    state: if account.is_some() {
                        AccountState::NoDevice
                    } else {
                        AccountState::NoAccount
                    },
                    has_code_device: false,
                    keys: 0,
                    no_device: NoDeviceRule::Deny,
                    store_exists: false,
                    remembered_until: None,
                    decision: None,
                }));
            };
            let (policy, before) = store.read(|s| {
                let policy = policy::load(s.conn())?;
                let before = match &account {
                    Some(user) => Some(login::before_prompt(s, user, now, want_keys)?),
                    None => None,
                };
                Ok((policy, before))
            })?;
            let no_device = match policy.no_device {
                policy::NoDevice::Allow => NoDeviceRule::Allow,
                policy::NoDevice::Deny => NoDeviceRule::Deny,
                policy::NoDevice::Enroll => NoDeviceRule::Enroll,
            };
            let reply = match before {
                None => BeforePromptReply {
                    state: AccountState::NoAccount,
                    has_code_device: false,
                    keys: 0,
                    no_device,
                    store_exists: true,
                    remembered_until: None,
                    decision: None,
                },
                Some(b) => BeforePromptReply {
                    // Only an account ready for a code is let in by a remembered login:
                    // one without a device, or locked out, is asked as always.
                    remembered_until: match (&account, &context, &b.readiness) {
                        (Some(user), Some(ctx), Readiness::Ready)
                            if policy.remember_seconds > 0 =>
                        {
                            crate::remembered::let_in(store, &policy, user, ctx, (uid, now), log)?
                        }
                        _ => None,
                    },
                    state: match b.readiness {
                        Readiness::NoDevices => AccountState::NoDevice,
                        Readiness::Locked { until } => AccountState::Locked { until },
                        Readiness::Ready => AccountState::Ready,
                    },
                    has_code_device: b.factors.has_totp,
                    keys: u32::try_from(b.factors.fido2.len()).unwrap_or(u32::MAX),
                    no_device,
                    store_exists: true,
                    decision: None,
                },
            };
            decided(reply)
        }
        Work::VerifyCode {
            account,
            answer,
            overrides,
            context,
        } => {
            if recovery::normalize(answer.as_bytes()).is_some() {
                return verify_recovery(
                    account,
                    store,
                    answer.as_bytes(),
                    context.as_ref(),
                    uid,
                    now,
                    log,
                );
            }
            let outcome = match (account, store) {
                (None, _) => {
                    log.log(
                        Level::Notice,
                        &format!("authentication failure: no such account (by uid {uid})"),
                    );
                    VerifyOutcome::Refused {
                        reason: RefusalKind::NoAccount,
                        locked_until: None,
                    }
                }
                (Some(user), None) => {
                    log.log(
                        Level::Notice,
                        &format!(
                            "authentication failure: no active device ({})",
                            who(&user, uid)
                        ),
                    );
                    VerifyOutcome::Refused {
                        reason: RefusalKind::NoDevices,
                        locked_until: None,
                    }
                }
                (Some(user), Some(store)) => {
                    let policy = policy::load(store.conn())?;
                    let settings = pam_mfa::settings::Effective::settings(&overrides, &policy);
                    let outcome = login::verify(store, &user, answer.as_bytes(), settings, now)?;
                    log_outcome(log, &outcome, &who(&user, uid));
                    if matches!(outcome, login::Outcome::Accepted { .. }) {
                        crate::remembered::after_success_under(
                            store,
                            &policy,
                            &user,
                            context.as_ref(),
                            (uid, now),
                            log,
                        )?;
                    }
                    convert(outcome, &user)
                }
            };
            Response::Verified(outcome)
        }
        Work::VerifyRecovery {
            account,
            code,
            context,
        } => verify_recovery(
            account,
            store,
            code.as_bytes(),
            context.as_ref(),
            uid,
            now,
            log,
        )?,
        Work::ListRemembered { account } => crate::remembered::list(store, &account, now)?,
        Work::Forget { account } => crate::remembered::forget(store, &account, uid, now, log)?,
        // Answered by `handle` without the store.
        Work::Hello
        | Work::Reauth { .. }
        | Work::Change { .. }
        | Work::FinishTotp { .. }
        | Work::RecoveryCommit { .. }
        | Work::Admin(_)
        | Work::KeyChallenge { .. }
        | Work::KeyAnswer { .. }
        | Work::FinishFido2 { .. }
        | Work::AtLogin(_) => Response::Error(ErrorReply::new(
            ErrorKind::UnknownRequest,
            "not served here",
        )),
        Work::MayChange { account } => match store {
            Some(store) => match pam_mfa::selfservice::check_allowed(store, &account, uid, now) {
                Ok(()) => Response::Done,
                Err(e) => selfservice::refusal(e)?,
            },
            // No store yet: nothing limits a first registration.
            None => Response::Done,
        },
        Work::ListDevices { account } => {
            let list = match store {
                Some(store) => devices::list(store.conn(), account.as_str(), now)?,
                None => Vec::new(),
            };
            Response::Devices(list.into_iter().map(entry).collect())
        }
    })
}

/// A recovery or bypass code typed at a login (sent as such, or as the answer to the
/// code prompt, which the daemon tells apart: one rule, `recovery::normalize`), checked
/// and used up, with its audit row as the caller's uid.
fn verify_recovery(
    account: Option<UserName>,
    store: Option<&mut Store>,
    code: &[u8],
    context: Option<&LoginContext>,
    uid: u32,
    now: UnixTime,
    log: &Log,
) -> pam_mfa::Result<Response> {
    let outcome = match (account, store, recovery::normalize(code)) {
        (Some(user), Some(store), Some(code)) => {
            match login::verify_recovery(store, &user, &code, uid, now)? {
                login::RecoveryOutcome::Accepted { kind, remaining } => {
                    log.log(
                        Level::Notice,
                        &format!(
                            "authenticated with a {} code; {remaining} left ({})",
                            kind.as_str(),
                            who(&user, uid)
                        ),
                    );
                    // A bypass code is the administrator's one-off way in: never
                    // remembered.
                    if kind == recovery::Kind::Recovery {
                        crate::remembered::after_success(store, &user, context, uid, now, log)?;
                    }
                    RecoveryOutcome::Accepted {
                        kind: match kind {
                            recovery::Kind::Recovery => CodeKind::Recovery,
                            recovery::Kind::Bypass => CodeKind::Bypass,
                        },
                        remaining,
                    }
                }
                login::RecoveryOutcome::Refused => RecoveryOutcome::Refused,
            }
        }
        _ => RecoveryOutcome::Refused,
    };
    if outcome == RecoveryOutcome::Refused {
        log.log(
            Level::Notice,
            &format!(
                "authentication failure: not a valid recovery or bypass code (by uid \
                 {uid})"
            ),
        );
    }
    Ok(Response::Recovery(outcome))
}

/// A device as the protocol shows it (`mfa list --json`'s names and meanings).
pub fn entry(d: devices::DeviceInfo) -> DeviceEntry {
    DeviceEntry {
        name: d.name,
        kind: d.kind.as_str().to_owned(),
        state: d.state.as_str().to_owned(),
        created: d.created_at,
        last_used: d.last_used_at,
        expires: d.expires_at,
    }
}

/// The syslog line of a login's outcome, in the module's words. A security key whose
/// sign count went backwards (what a cloned key looks like) is logged as an error.
pub(crate) fn log_outcome(log: &Log, outcome: &login::Outcome, who: &str) {
    let lock_note = |until: Option<UnixTime>| match until {
        Some(t) => format!("; locked out until {}", clock::format_local(t)),
        None => String::new(),
    };
    let (level, line) = match outcome {
        login::Outcome::Accepted { device } => (
            Level::Info,
            format!(
                "authenticated with device \"{}\" ({who})",
                device.escape_debug()
            ),
        ),
        login::Outcome::Locked { until } => (
            Level::Notice,
            format!(
                "refused: locked out until {} ({who})",
                clock::format_local(*until)
            ),
        ),
        login::Outcome::Refused {
            reason,
            locked_until,
        } => (
            if clone_suspected(reason) {
                Level::Error
            } else {
                Level::Notice
            },
            format!(
                "authentication failure: {}{} ({who})",
                reason.log_text(),
                lock_note(*locked_until)
            ),
        ),
    };
    log.log(level, &line);
}

fn clone_suspected(reason: &Refusal) -> bool {
    matches!(
        reason,
        Refusal::Key(KeyFailure::Rejected {
            why: Rejection::CounterRegression { .. },
            ..
        })
    )
}

/// A login's outcome as the protocol carries it; `user` names the account in a key
/// failure's message for the person.
pub(crate) fn convert(outcome: login::Outcome, user: &UserName) -> VerifyOutcome {
    match outcome {
        login::Outcome::Accepted { device } => VerifyOutcome::Accepted { device },
        login::Outcome::Locked { until } => VerifyOutcome::Locked { until },
        login::Outcome::Refused {
            reason,
            locked_until,
        } => VerifyOutcome::Refused {
            reason: match reason {
                Refusal::Malformed(e) => RefusalKind::Malformed { why: e.to_string() },
                Refusal::Replayed { device } => RefusalKind::Replayed { device },
                Refusal::NoDevices => RefusalKind::NoDevices,
                Refusal::WrongCode => RefusalKind::WrongCode,
                ref key @ Refusal::Key(ref failure) => RefusalKind::Key {
                    message: pam_mfa::fido2::failure_message(failure, user),
                    log: pam_mfa::fido2::failure_log(failure),
                    clone_suspected: clone_suspected(key),
                },
            },
            locked_until,
        },
    }
}
