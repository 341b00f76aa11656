//! Requests about accounts kept in the fleet's PostgreSQL database (issue 19): the same
//! requests the local store answers ([`crate::service`]), answered by the database's
//! functions through [`pam_mfa_fleet::Fleet`]. The database checks every code, records
//! every use and failure and writes the audit row, in one transaction on the primary
//! with the database's clock; this host never holds a device's secret (it passes one
//! through, once, to the person registering the device). For security keys this host is
//! the relying party, as for a local account ([`crate::keys`]): it reads a key's public
//! key and sign count, checks the answer itself, and the database records the login,
//! refusing a sign count that did not grow past the one any host stored.
//!
//! What is decided here, from the peer's credentials, is the same as for the local store:
//! a non-root caller acts only on its own account (checked before this point, by
//! [`crate::authorise`]), is held to the fleet's self-service switch, and needs a proof of
//! a device (a code checked by the database) for a change once the account has one.
//!
//! Remembered logins are this host's own, as for a local account: kept in the host's store
//! under its policy, in the database's time, and reached between calls to the database
//! ([`LocalStore`]); what ends them (a removal, an unlock, a lock-out, `mfa forget`) is
//! recorded in the database and ends them on every host.
//!
//! A database that cannot answer within the configured deadline is "unavailable" to the
//! caller, which the module turns into `PAM_AUTHINFO_UNAVAIL`: never a success.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pam_mfa::clock::{self, UnixTime};
use pam_mfa::enrollment::{self, PENDING_LIFETIME_SECS};
use pam_mfa::fido2::ceremony::Credential;
use pam_mfa::fido2::verify::Rejection;
use pam_mfa::fido2::{self, KeyFailure};
use pam_mfa::login::{self, Outcome};
use pam_mfa::login_hold::LoginHold;
use pam_mfa::names::{DeviceName, UserName};
use pam_mfa::otp::TotpParams;
use pam_mfa::policy::{self, NoDevice, SelfService};
use pam_mfa::recovery::Used;
use pam_mfa::selfservice::{self as rules, NotProved};
use pam_mfa::store::devices::Fido2Device;
use pam_mfa::store::secret::Secret;
use pam_mfa::{code, otpauth, recovery};
use pam_mfa_fleet::{
    CheckSettings, CodeOutcome, FinishOutcome, Fleet, FleetError, KeyLogin, RefusalCode,
    ResyncOutcome, TokenEnrollment, TokenImport, TokenRemoval,
};
use pam_mfa_protocol::{
    AccountState, BeforePromptReply, BypassReply, CodeKind, CodeUsed, DeviceEntry, ErrorKind,
    ErrorReply, KeyAssertion, KeyPurpose, NoDeviceRule, ProofReply, RecoveryOutcome, RefusalKind,
    Response, ResyncReply, SecretBytes, TokenEntry, VerifyOutcome,
};

use crate::authorise::{Admin, AtLogin, Change, Work};
use crate::held::{held_reply, hold_of, not_a_hold};
use crate::log::{Level, Log};
use crate::selfservice::{
    Tickets, fido2_gone, fido2_refused, fido2_registered, issue_failed, issue_fido2,
    new_recovery_set, pending_reply, proof_refused, raw_attestation, recovery_set_gone, refusal,
    take_fido2, take_recovery_set, token_refused, token_registered,
};
use crate::service::{convert, log_outcome, who};
use crate::turns::LocalStore;

/// The fleet's side of the daemon: its database connection and its own tickets (proofs
/// of a device), behind their own lock, and which accounts it keeps.
pub struct Side {
    /// The accounts this host keeps in its own SQLite store while the others are in the
    /// fleet's database (root and a break-glass administrator, say): they log in when the
    /// database is down.
    local_users: Vec<String>,
    inner: Mutex<Inner>,
}

struct Inner {
    fleet: Fleet,
    tickets: Tickets,
    /// Set when the database could not be reached within its deadline: until then, the
    /// requests waiting behind that one are answered "unavailable" at once instead of
    /// each waiting out a deadline of its own (which would outlast the module's).
    down_until: Option<Instant>,
}

/// How long a database that could not be reached is not tried again.
const DOWN_FOR: Duration = Duration::from_secs(1);

impl Side {
    pub fn new(fleet: Fleet, local_users: Vec<String>) -> Self {
        Self {
            local_users,
            inner: Mutex::new(Inner {
                fleet,
                tickets: Tickets::new(),
                down_until: None,
            }),
        }
    }

    /// Whether `work` is about an account kept in the fleet's database. Requests about no
    /// account, or about several (the administrator's listings), stay local, except the
    /// hardware token inventory's (`mfa admin tokens …`): with a fleet configured, the
    /// inventory is the fleet's, so that a token loaded through any host can be registered
    /// through every other. (Accounts kept locally register tokens from the host's own
    /// inventory, which is then no longer filled through `mfad`.)
    pub fn serves(&self, work: &Work) -> bool {
        if let Work::Admin(admin) = work
            && matches!(
                **admin,
                Admin::TokensImport { .. } | Admin::TokensList | Admin::TokensRemove { .. }
            )
        {
            return true;
        }
        match account_of(work) {
            Some(user) => !self.local_users.iter().any(|u| u == user.as_str()),
            None => false,
        }
    }

    /// Runs one authorised request about a fleet account to its end (the caller holds
    /// the fleet's turn).
    pub fn answer(&self, uid: u32, work: Work, log: &Log, local: &LocalStore<'_>) -> Response {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.down_until.is_some_and(|t| Instant::now() < t) {
            return error(
                ErrorKind::Unavailable,
                "the fleet database cannot answer (it could not be reached a moment ago)",
            );
        }
        let Inner { fleet, tickets, .. } = &mut *inner;
        let result = run(fleet, uid, work, tickets, log, local);
        inner.down_until = match &result {
            Err(FleetError::Unavailable(_)) => Some(Instant::now() + DOWN_FOR),
            _ => None,
        };
        match result {
            Ok(r) => r,
            Err(e) => failed(log, &e),
        }
    }
}

impl Side {
    /// For a view of every account (`mfa admin list`, `mfa admin audit`) or of one fleet
    /// account's audit rows, the same request for the fleet's part of it: the caller asks
    /// both stores and [`Side::merge`]s the answers.
    pub fn fleet_part(&self, work: &Work) -> Option<Work> {
        let Work::Admin(admin) = work else {
            return None;
        };
        match &**admin {
            Admin::List => Some(Work::Admin(Box::new(Admin::List))),
            // One fleet account's rows are in both stores too: the database's, and the
            // host's own about its remembered logins (each host remembers for itself).
            // A local account's are the host's alone, readable with the database down.
            Admin::Audit { account, since }
                if account
                    .as_ref()
                    .is_none_or(|a| !self.local_users.iter().any(|u| u == a.as_str())) =>
            {
                Some(Work::Admin(Box::new(Admin::Audit {
                    account: account.clone(),
                    since: since.clone(),
                })))
            }
            _ => None,
        }
    }

    /// One answer from the local store's and the fleet's: each account from the store
    /// that keeps it (the local store's for `local_users`, the fleet's for the others:
    /// an account is listed once, never from a store that does not serve it), audit rows
    /// from both, in time order. Either failing fails the whole: an administrator must
    /// not take a partial list for the whole one.
    pub fn merge(&self, local: Response, fleet: Response) -> Response {
        let local_user = |user: &str| self.local_users.iter().any(|u| u == user);
        match (local, fleet) {
            (Response::Accounts(local), Response::Accounts(fleet)) => {
                let mut all: Vec<_> = local
                    .into_iter()
                    .filter(|a| local_user(&a.user))
                    .chain(fleet.into_iter().filter(|a| !local_user(&a.user)))
                    .collect();
                all.sort_by(|a, b| a.user.cmp(&b.user));
                Response::Accounts(all)
            }
            (Response::AuditRows(local), Response::AuditRows(fleet)) => {
                let mut all: Vec<_> = local.into_iter().chain(fleet).collect();
                // Stable: rows of one second keep each store's order.
                all.sort_by_key(|r| r.at);
                Response::AuditRows(all)
            }
            (local @ Response::Error(_), _) => local,
            (_, fleet @ Response::Error(_)) => fleet,
            _ => error(
                ErrorKind::Unavailable,
                "the local store and the fleet database gave answers of different kinds",
            ),
        }
    }
}

/// The one account a request is about, if it is about exactly one.
fn account_of(work: &Work) -> Option<&UserName> {
    match work {
        Work::BeforePrompt { account, .. }
        | Work::VerifyCode { account, .. }
        | Work::VerifyRecovery { account, .. } => account.as_ref(),
        Work::ListDevices { account }
        | Work::ListRemembered { account }
        | Work::Forget { account }
        | Work::MayChange { account }
        | Work::Reauth { account, .. }
        | Work::Change { account, .. }
        | Work::FinishTotp { account, .. }
        | Work::RecoveryCommit { account, .. }
        | Work::KeyChallenge { account, .. }
        | Work::KeyAnswer { account, .. }
        | Work::FinishFido2 { account, .. } => Some(account),
        Work::Admin(admin) => match &**admin {
            Admin::Unlock { account } | Admin::Remove { account, .. } => Some(account),
            Admin::Bypass { account, .. } => Some(account),
            _ => None,
        },
        Work::AtLogin(work) => match &**work {
            AtLogin::Begin { account, .. }
            | AtLogin::Confirm { account, .. }
            | AtLogin::Activate { account, .. } => Some(account),
        },
        Work::Hello => None,
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply::new(kind, message))
}

/// The answer to a request the fleet does not serve (yet): a clear refusal, never a
/// silent fallback to the local store (which would split an account over two stores).
fn not_served(what: &str) -> Response {
    error(
        ErrorKind::Invalid,
        format!("{what} is not available for accounts in the fleet database yet"),
    )
}

/// A refusal in the library's words (the same as for a local account).
fn refused(e: pam_mfa::Error) -> Response {
    refusal(e).unwrap_or_else(|e| error(ErrorKind::Unavailable, e.to_string()))
}

/// A refusal the database raised about a registration, in the library's words for the
/// same refusal of a local account (the numbers it names read back from the database);
/// any other error is passed on.
fn in_library_words(
    fleet: &mut Fleet,
    account: &UserName,
    name: &DeviceName,
    e: FleetError,
) -> Result<Response, FleetError> {
    let user = account.to_string();
    let code = match &e {
        FleetError::Refused { code, .. } => *code,
        _ => return Err(e),
    };
    Ok(refused(match code {
        RefusalCode::TooManyPending => {
            let pending = fleet.list_devices(account.as_str())?;
            let next_expiry = pending.iter().filter_map(|d| d.expires).min();
            pam_mfa::Error::TooManyPending {
                user,
                max: pam_mfa::limits::MAX_PENDING,
                next_expiry: next_expiry.unwrap_or_default(),
            }
        }
        RefusalCode::TooManyDevices => pam_mfa::Error::TooManyDevices {
            user,
            max: fleet.policy()?.max_devices,
        },
        RefusalCode::NameTaken => pam_mfa::Error::DuplicateName {
            user,
            name: name.to_string(),
        },
        _ => return Err(e),
    }))
}

/// The answer when the database fails: logged, and "unavailable" to the caller.
fn failed(log: &Log, e: &FleetError) -> Response {
    match e {
        FleetError::Refused { code, message } => {
            let kind = match code {
                RefusalCode::TooManyDevices | RefusalCode::TooManyPending => ErrorKind::Busy,
                _ => ErrorKind::Invalid,
            };
            error(kind, message.clone())
        }
        other => {
            log.log(
                Level::Error,
                &format!("fleet database error: {other}; refusing"),
            );
            error(
                ErrorKind::Unavailable,
                format!("the fleet database cannot answer: {other}"),
            )
        }
    }
}

fn run(
    fleet: &mut Fleet,
    uid: u32,
    work: Work,
    tickets: &mut Tickets,
    log: &Log,
    local: &LocalStore<'_>,
) -> Result<Response, FleetError> {
    Ok(match work {
        Work::BeforePrompt {
            account,
            line,
            context,
            ..
        } => {
            let Some(user) = account else {
                return Ok(not_served("a login without an account"));
            };
            let state = fleet.login_state(user.as_str())?;
            let mut reply = BeforePromptReply {
                state: match (state.locked_until, state.code_devices + state.keys) {
                    (_, 0) => AccountState::NoDevice,
                    (Some(until), _) => AccountState::Locked { until },
                    (None, _) => AccountState::Ready,
                },
                has_code_device: state.code_devices > 0,
                keys: state.keys,
                no_device: match state.no_device {
                    NoDevice::Allow => NoDeviceRule::Allow,
                    NoDevice::Enroll => NoDeviceRule::Enroll,
                    NoDevice::Deny => NoDeviceRule::Deny,
                },
                store_exists: true,
                remembered_until: None,
                decision: None,
            };
            // Only an account ready for a code is let in by a remembered login.
            if let (AccountState::Ready, Some(ctx)) = (&reply.state, &context) {
                reply.remembered_until = let_in(fleet, local, &user, ctx, (uid, state.now), log)?;
            }
            reply.decision = line.map(|l| pam_mfa::decision::decide(&l, &reply));
            Response::BeforePrompt(reply)
        }
        Work::VerifyCode {
            account,
            answer,
            overrides,
            context,
        } => {
            let Some(user) = account else {
                log.log(
                    Level::Notice,
                    &format!("authentication failure: no such account (by uid {uid})"),
                );
                return Ok(Response::Verified(VerifyOutcome::Refused {
                    reason: RefusalKind::NoAccount,
                    locked_until: None,
                }));
            };
            if recovery::normalize(answer.as_bytes()).is_some() {
                let r = verify_recovery(fleet, Some(user.clone()), answer.as_bytes(), uid, log)?;
                return remembered_after(fleet, local, r, &user, context.as_ref(), uid, log);
            }
            // Only digits ever reach the database: what is not a code is sent as nothing,
            // which the database counts as a malformed answer.
            let parsed = code::parse(answer.as_bytes());
            let digits = parsed.as_ref().map(|c| c.as_str()).unwrap_or("");
            let settings = CheckSettings {
                window: overrides.window,
                hotp_window: overrides.hotp_window,
                max_failures: overrides.max_failures,
                lockout_secs: overrides.lockout_secs,
            };
            let outcome = fleet.check_code(user.as_str(), uid, digits, &settings)?;
            let outcome = as_library(outcome, parsed.err());
            log_outcome(log, &outcome, &who(&user, uid));
            let r = Response::Verified(convert(outcome, &user));
            remembered_after(fleet, local, r, &user, context.as_ref(), uid, log)?
        }
        Work::VerifyRecovery {
            account,
            code,
            context,
        } => {
            let r = verify_recovery(fleet, account.clone(), code.as_bytes(), uid, log)?;
            match account {
                Some(user) => remembered_after(fleet, local, r, &user, context.as_ref(), uid, log)?,
                None => r,
            }
        }
        Work::ListDevices { account } => Response::Devices(
            fleet
                .list_devices(account.as_str())?
                .into_iter()
                .map(|d| DeviceEntry {
                    name: d.name,
                    kind: d.kind.as_str().to_owned(),
                    state: d.state.as_str().to_owned(),
                    created: d.created,
                    last_used: d.last_used,
                    expires: d.expires,
                })
                .collect(),
        ),
        Work::ListRemembered { account } => {
            let (ended, now) = fleet.remembered_ended(account.as_str())?;
            local_store(local, log, |mut store| {
                if let Some(store) = store.as_deref_mut() {
                    drop_ended(store, &account, ended, now)?;
                }
                crate::remembered::list(store, &account, now)
            })?
        }
        Work::Forget { account } => {
            // Every host's, through the database's row; this host's, at once.
            fleet.forget_remembered(account.as_str(), uid, "mfa forget")?;
            let (_, now) = fleet.remembered_ended(account.as_str())?;
            local_store(local, log, |store| {
                crate::remembered::forget(store, &account, uid, now, log)
            })?
        }
        Work::MayChange { account } => match allowed(fleet, uid, &account)? {
            Ok(()) => Response::Done,
            Err(refused) => refused,
        },
        Work::Reauth { account, answer } => {
            if let Err(refused) = allowed(fleet, uid, &account)? {
                return Ok(refused);
            }
            // A recovery or bypass code proves the account too, as rules::prove has it.
            let mut code_used = None;
            if let Some(typed) = recovery::normalize(answer.as_bytes()) {
                match fleet.use_recovery_code(account.as_str(), uid, &typed)? {
                    Used::Accepted { kind, remaining } => {
                        log.log(
                            Level::Notice,
                            &format!(
                                "uid {uid} confirmed a change with a {} code ({remaining} \
                                 left) for user {account}",
                                kind.as_str()
                            ),
                        );
                        code_used = Some(CodeUsed {
                            kind: code_kind(kind),
                            remaining,
                        });
                    }
                    Used::NotFound => {
                        log.log(
                            Level::Notice,
                            &format!(
                                "refused a change: no device proved ({})",
                                who(&account, uid)
                            ),
                        );
                        return Ok(error(
                            ErrorKind::Denied,
                            "that is not a valid recovery code (or it was already used); \
                             nothing was changed",
                        ));
                    }
                }
            }
            let parsed = code::parse(answer.as_bytes());
            let outcome = match code_used {
                Some(_) => None,
                None => {
                    let digits = parsed.as_ref().map(|c| c.as_str()).unwrap_or("");
                    Some(fleet.check_code(
                        account.as_str(),
                        uid,
                        digits,
                        &CheckSettings::default(),
                    )?)
                }
            };
            // A lock-out this failure started ends the remembered logins, as at a login.
            if let Some(
                CodeOutcome::Wrong {
                    locked_until: Some(_),
                }
                | CodeOutcome::Replayed {
                    locked_until: Some(_),
                    ..
                }
                | CodeOutcome::Malformed {
                    locked_until: Some(_),
                },
            ) = &outcome
            {
                fleet.forget_remembered(account.as_str(), uid, "locked out")?;
            }
            // The library's verdict and words on the code as a proof, as for a local account.
            if let Some(outcome) = outcome
                && let Err(NotProved(why)) =
                    rules::judge(as_library(outcome, parsed.err()), &account)
            {
                log.log(
                    Level::Notice,
                    &format!(
                        "refused a change: no device proved ({})",
                        who(&account, uid)
                    ),
                );
                return Ok(error(ErrorKind::Denied, why));
            }
            let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
            match tickets.proofs.issue(uid, account.as_str(), (), now) {
                Ok((token, expires_at)) => Response::Proof(ProofReply {
                    proof: SecretBytes::from_slice(&token[..]),
                    expires_at,
                    code: code_used,
                }),
                Err(e) => match issue_failed(e) {
                    Ok(r) => r,
                    Err(e) => return Err(FleetError::Database(e.to_string())),
                },
            }
        }
        Work::Change {
            account,
            proof,
            change,
        } => {
            if let Err(refused) = allowed(fleet, uid, &account)? {
                return Ok(refused);
            }
            // As for the local store: a non-root caller whose account has an active
            // device proves one before any change.
            if uid != 0 {
                let state = fleet.login_state(account.as_str())?;
                if state.code_devices + state.keys > 0 {
                    let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
                    if let Some(refused) = proof_refused(tickets, proof, uid, &account, now, log) {
                        return Ok(refused);
                    }
                }
            }
            change_now(fleet, uid, &account, *change, tickets, log)?
        }
        Work::FinishTotp {
            account,
            name,
            code1,
            code2,
        } => {
            if let Err(refused) = allowed(fleet, uid, &account)? {
                return Ok(refused);
            }
            let name = match DeviceName::parse(&name) {
                Ok(n) => n,
                Err(e) => return Ok(error(ErrorKind::Invalid, e.to_string())),
            };
            let (c1, c2) = match enrollment::parse_pair(code1.as_bytes(), code2.as_bytes()) {
                Ok(pair) => pair,
                Err(e) => return Ok(refused(e)),
            };
            let finished = fleet.finish_totp(
                account.as_str(),
                uid,
                name.as_str(),
                c1.as_str(),
                c2.as_str(),
            );
            let finished = match finished {
                Ok(f) => f,
                Err(e) => return in_library_words(fleet, &account, &name, e),
            };
            let not_finished = match finished {
                FinishOutcome::Activated => {
                    changed(
                        log,
                        uid,
                        &account,
                        &format!("activated device {:?}", name.as_str()),
                    );
                    return Ok(Response::Done);
                }
                FinishOutcome::Wrong(why) => enrollment::pair_error(why),
                FinishOutcome::ClockSkew { secs } => enrollment::clock_skew(secs),
                FinishOutcome::AlreadyActive => pam_mfa::Error::AlreadyActive {
                    user: account.to_string(),
                    name: name.to_string(),
                },
                FinishOutcome::NoSuchDevice => pam_mfa::Error::NoPendingDevice {
                    user: account.to_string(),
                    name: name.to_string(),
                },
            };
            refused(not_finished)
        }
        Work::Admin(admin) => match *admin {
            Admin::Unlock { account } => {
                if fleet.unlock(account.as_str(), uid)? {
                    changed(log, uid, &account, "unlocked the account");
                }
                Response::Done
            }
            Admin::Remove { account, name } => remove(fleet, uid, &account, &name, log)?,
            Admin::Bypass {
                account,
                uses,
                expires_in,
            } => bypass(fleet, uid, &account, uses, &expires_in, log)?,
            Admin::TokensImport {
                seeds,
                format,
                replace,
            } => tokens_import(fleet, uid, &seeds, format, replace, log)?,
            Admin::TokensList => Response::Tokens(
                fleet
                    .list_tokens()?
                    .into_iter()
                    .map(|t| TokenEntry {
                        serial: t.serial,
                        kind: t.kind,
                        digits: t.digits,
                        assigned_to: t.assigned_to,
                        device: t.device,
                        imported: t.imported,
                    })
                    .collect(),
            ),
            Admin::TokensRemove { serial } => tokens_remove(fleet, uid, &serial, log)?,
            Admin::List => Response::Accounts(
                fleet
                    .admin_accounts()?
                    .into_iter()
                    .map(crate::admin::account_entry)
                    .collect(),
            ),
            Admin::Audit { account, since } => {
                let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
                let since = match since
                    .map(|s| pam_mfa::admin::parse_since(&s, now))
                    .transpose()
                {
                    Ok(s) => s,
                    Err(message) => return Ok(error(ErrorKind::Invalid, message)),
                };
                Response::AuditRows(
                    fleet
                        .audit_rows(account.as_ref().map(|a| a.as_str()), since)?
                        .into_iter()
                        .map(|r| {
                            // The host that wrote the row, where the local JSON has room.
                            let mut row = crate::admin::audit_entry(r.entry);
                            row.detail = Some(match row.detail {
                                Some(d) => format!("{d}; host {}", r.host),
                                None => format!("host {}", r.host),
                            });
                            row
                        })
                        .collect(),
                )
            }
            _ => not_served("this administrative command"),
        },
        Work::RecoveryCommit { account, ticket } => {
            if let Err(refused) = allowed(fleet, uid, &account)? {
                return Ok(refused);
            }
            let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
            let Some(codes) = take_recovery_set(tickets, &ticket, uid, &account, now) else {
                return Ok(recovery_set_gone());
            };
            // Only salted hashes leave this host, made as the local store makes them.
            let hashed = codes
                .iter()
                .map(|c| recovery::salted_hash(c))
                .collect::<pam_mfa::Result<Vec<_>>>()
                .map_err(|e| FleetError::Database(e.to_string()))?;
            fleet.set_recovery_codes(account.as_str(), uid, &hashed)?;
            changed(log, uid, &account, "generated new recovery codes");
            Response::Done
        }
        Work::KeyChallenge { account, purpose } => {
            if purpose == KeyPurpose::Proof
                && let Err(refused) = allowed(fleet, uid, &account)?
            {
                return Ok(refused);
            }
            let keys = fleet_keys(fleet, &account)?;
            let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
            crate::keys::issue_challenge(tickets, uid, &account, purpose, keys, now)
                .map_err(|e| FleetError::Database(e.to_string()))?
        }
        Work::KeyAnswer {
            account,
            ticket,
            assertion,
            context,
        } => {
            let r = key_answer(fleet, uid, &account, &ticket, &assertion, tickets, log)?;
            remembered_after(fleet, local, r, &account, context.as_ref(), uid, log)?
        }
        Work::FinishFido2 {
            account,
            ticket,
            attestation,
        } => {
            if let Err(refused) = allowed(fleet, uid, &account)? {
                return Ok(refused);
            }
            let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
            let Some(held) = take_fido2(tickets, &ticket, uid, &account, now) else {
                return Ok(fido2_gone());
            };
            let raw = raw_attestation(&attestation);
            let r =
                match enrollment::verify_fido2(&held.rp_id, held.needs_uv, &held.challenge, &raw) {
                    Ok(r) => r,
                    Err(e) => {
                        return fido2_refused(log, uid, &account, e)
                            .map_err(|e| FleetError::Database(e.to_string()));
                    }
                };
            let added = fleet.add_key(
                account.as_str(),
                uid,
                &Credential {
                    name: held.name.as_str().to_owned(),
                    credential_id: r.credential_id.clone(),
                    cose_public_key: r.cose_public_key.clone(),
                    sign_count: r.sign_count,
                    rp_id: held.rp_id.clone(),
                    uv_required: held.needs_uv,
                },
            );
            if let Err(FleetError::Refused { message, .. }) = &added {
                // Logged as the local store's refusals of a registration are.
                log.log(
                    Level::Notice,
                    &format!(
                        "refused a security key registration: {message} ({})",
                        who(&account, uid)
                    ),
                );
            }
            added?;
            fido2_registered(log, uid, &account, &held, &r)
        }
        Work::AtLogin(work) => at_login(fleet, uid, *work)?,
        Work::Hello => not_served("this request"),
    })
}

/// The host's store, for a fleet account's remembered logins: "busy" when too many
/// requests wait for it, "unavailable" when it fails.
fn local_store(
    local: &LocalStore<'_>,
    log: &Log,
    f: impl FnOnce(Option<&mut pam_mfa::store::Store>) -> pam_mfa::Result<Response>,
) -> Result<Response, FleetError> {
    match local.with(f) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Ok(error(
            ErrorKind::Busy,
            "too many requests waiting; try again later",
        )),
        Err(e) => Ok(crate::service::unavailable(log, &e)),
    }
}

/// Ends this host's remembered logins of `user` that began at or before `ended`, when
/// something ended them on some host of the fleet (see `remembered_ended` in fleet.sql).
fn drop_ended(
    store: &mut pam_mfa::store::Store,
    user: &UserName,
    ended: Option<UnixTime>,
    now: UnixTime,
) -> pam_mfa::Result<()> {
    let Some(ended) = ended else { return Ok(()) };
    let rows = pam_mfa::store::remembered::list(store.conn(), user.as_str(), now)?;
    if rows.iter().any(|r| r.since <= ended) {
        let tx = store.write()?;
        pam_mfa::remembered::forget(&tx, user.as_str())?;
        tx.commit()?;
    }
    Ok(())
}

/// Until when a remembered login lets `user` in without a code on this host in `ctx`
/// (remembered.rs with this host's policy and store, in the database's time `now`):
/// asked of the database only when this host remembers something of the user. `None`
/// whenever the store cannot say.
fn let_in(
    fleet: &mut Fleet,
    local: &LocalStore<'_>,
    user: &UserName,
    ctx: &pam_mfa_protocol::LoginContext,
    (uid, now): (u32, UnixTime),
    log: &Log,
) -> Result<Option<UnixTime>, FleetError> {
    let remembers = local.with(|store| {
        let Some(store) = store else { return Ok(false) };
        Ok(policy::load(store.conn())?.remember_seconds > 0
            && !pam_mfa::store::remembered::list(store.conn(), user.as_str(), now)?.is_empty())
    });
    if !matches!(remembers, Ok(Some(true))) {
        return Ok(None);
    }
    let (ended, now) = fleet.remembered_ended(user.as_str())?;
    let until = local.with(|store| {
        let Some(store) = store else { return Ok(None) };
        let policy = policy::load(store.conn())?;
        drop_ended(store, user, ended, now)?;
        crate::remembered::let_in(store, &policy, user, ctx, (uid, now), log)
    });
    Ok(match until {
        Ok(until) => until.flatten(),
        Err(e) => {
            log.log(
                Level::Error,
                &format!("device store error: {e}; not letting a remembered login in"),
            );
            None
        }
    })
}

/// After a login's answer `r`: a success (a code, a key, a recovery code; never a bypass
/// code) is remembered on this host in `ctx` where its policy allows it, as for a local
/// account; a lock-out it started ends `user`'s remembered logins on every host.
fn remembered_after(
    fleet: &mut Fleet,
    local: &LocalStore<'_>,
    r: Response,
    user: &UserName,
    ctx: Option<&pam_mfa_protocol::LoginContext>,
    uid: u32,
    log: &Log,
) -> Result<Response, FleetError> {
    let success = match &r {
        Response::Verified(VerifyOutcome::Accepted { .. }) => true,
        Response::Recovery(RecoveryOutcome::Accepted { kind, .. }) => *kind == CodeKind::Recovery,
        Response::Verified(VerifyOutcome::Refused {
            locked_until: Some(_),
            ..
        }) => {
            fleet.forget_remembered(user.as_str(), uid, "locked out")?;
            false
        }
        _ => false,
    };
    let remembers = |store: Option<&mut pam_mfa::store::Store>| match store {
        Some(store) => Ok(policy::load(store.conn())?.remember_seconds > 0),
        None => Ok(false),
    };
    if success
        && let Some(ctx) = ctx
        && matches!(local.with(remembers), Ok(Some(true)))
    {
        let (_, now) = fleet.remembered_ended(user.as_str())?;
        let remembered = local.with(|store| match store {
            Some(store) => crate::remembered::after_success(store, user, Some(ctx), uid, now, log),
            None => Ok(()),
        });
        if let Err(e) = remembered {
            log.log(
                Level::Error,
                &format!("device store error: {e}; the login is not remembered"),
            );
        }
    }
    Ok(r)
}

/// The account's active keys in the database, as the local store's rows would carry
/// them. The fleet's rows have no id here: the database finds the key again by its
/// credential id and public key when the login is recorded.
fn fleet_keys(fleet: &mut Fleet, account: &UserName) -> Result<Vec<Fido2Device>, FleetError> {
    Ok(fleet
        .keys(account.as_str())?
        .into_iter()
        .map(|credential| Fido2Device { id: 0, credential })
        .collect())
}

/// A key's answer to a challenge of this host, checked here with the local store's
/// code ([`crate::keys`]), then recorded by the database, which refuses a sign count
/// that did not grow (under the user's lock, on every host). As in the local store, a
/// refusal counts no failure and a lock-out does not stop a key; logged as service.rs
/// logs a key login.
fn key_answer(
    fleet: &mut Fleet,
    uid: u32,
    account: &UserName,
    ticket: &SecretBytes,
    assertion: &KeyAssertion,
    tickets: &mut Tickets,
    log: &Log,
) -> Result<Response, FleetError> {
    let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
    let Some(held) = crate::keys::take_challenge(tickets, ticket, uid, account, now, log) else {
        return Ok(crate::keys::challenge_gone());
    };
    if held.purpose() == KeyPurpose::Proof
        && let Err(refused) = allowed(fleet, uid, account)?
    {
        return Ok(refused);
    }
    let outcome = match held.check(assertion) {
        Ok(verified) => match held.keys().get(verified.index) {
            None => login::key_failure(KeyFailure::UnknownCredential),
            Some(key) => {
                let key = &key.credential;
                match fleet.record_key_login(
                    account.as_str(),
                    uid,
                    &key.credential_id,
                    &key.cose_public_key,
                    verified.sign_count,
                )? {
                    KeyLogin::Accepted { device } => Outcome::Accepted { device },
                    KeyLogin::CounterRegression { device, stored } => {
                        login::key_failure(KeyFailure::Rejected {
                            device,
                            why: Rejection::CounterRegression {
                                stored,
                                got: verified.sign_count,
                            },
                        })
                    }
                    KeyLogin::UnknownCredential => {
                        login::key_failure(KeyFailure::UnknownCredential)
                    }
                }
            }
        },
        Err(failure) => {
            let device = match &failure {
                KeyFailure::Rejected { device, .. } => Some(device.as_str()),
                _ => None,
            };
            fleet.key_refused(account.as_str(), uid, device, &fido2::failure_log(&failure))?;
            login::key_failure(failure)
        }
    };
    log_outcome(log, &outcome, &who(account, uid));
    if held.purpose() == KeyPurpose::Proof {
        return crate::keys::proof(uid, account, outcome, tickets, log, now)
            .map_err(|e| FleetError::Database(e.to_string()));
    }
    Ok(Response::Verified(convert(outcome, account)))
}

/// pam_mfa::selfservice::check_allowed for a fleet account: the fleet's self-service
/// switch, then the hourly limit on a person's changes, counted by the database over every
/// host (root is held to neither).
fn allowed(
    fleet: &mut Fleet,
    uid: u32,
    account: &UserName,
) -> Result<Result<(), Response>, FleetError> {
    if uid == 0 {
        return Ok(Ok(()));
    }
    let policy = fleet.policy()?;
    if policy.self_service != SelfService::Allow {
        return Ok(Err(error(
            ErrorKind::Denied,
            pam_mfa::Error::ManagedByAdmin.to_string(),
        )));
    }
    Ok(match fleet.change_room(account.as_str(), uid)? {
        None => Ok(()),
        Some(retry_at) => Err(error(
            ErrorKind::Busy,
            pam_mfa::Error::TooManyChanges {
                user: account.as_str().to_owned(),
                max: pam_mfa::limits::MAX_CHANGES,
                retry_at,
            }
            .to_string(),
        )),
    })
}

fn change_now(
    fleet: &mut Fleet,
    uid: u32,
    account: &UserName,
    change: Change,
    tickets: &mut Tickets,
    log: &Log,
) -> Result<Response, FleetError> {
    Ok(match change {
        Change::BeginTotp { name, issuer } => {
            match begin(fleet, uid, account, &name, issuer, None)? {
                Ok((pending, issuer)) => {
                    changed(
                        log,
                        uid,
                        account,
                        &format!("began registering device {:?}", pending.name),
                    );
                    Response::PendingTotp(pending_reply(&pending, issuer))
                }
                Err(refused) => refused,
            }
        }
        Change::Rename { name, new_name } => {
            let (old, new) = match DeviceName::existing(&name)
                .and_then(|old| Ok((old, DeviceName::parse(&new_name)?)))
            {
                Ok(x) => x,
                Err(e) => return Ok(error(ErrorKind::Invalid, e.to_string())),
            };
            match fleet.rename_device(account.as_str(), uid, old.as_str(), new.as_str())? {
                pam_mfa_fleet::RenameOutcome::Renamed => {
                    changed(
                        log,
                        uid,
                        account,
                        &format!("renamed device {:?} to {:?}", old.as_str(), new.as_str()),
                    );
                    Response::Done
                }
                pam_mfa_fleet::RenameOutcome::NoSuchDevice => {
                    error(ErrorKind::Invalid, no_such_device(account, old.as_str()))
                }
                pam_mfa_fleet::RenameOutcome::NameTaken => error(
                    ErrorKind::Invalid,
                    format!("a device named {:?} already exists", new.as_str()),
                ),
            }
        }
        Change::Remove { name } => remove(fleet, uid, account, &name, log)?,
        Change::Resync { name, code1, code2 } => {
            let name = match DeviceName::existing(&name) {
                Ok(n) => n,
                Err(e) => return Ok(error(ErrorKind::Invalid, e.to_string())),
            };
            let (c1, c2) = match enrollment::parse_pair(code1.as_bytes(), code2.as_bytes()) {
                Ok(pair) => pair,
                Err(e) => return Ok(refused(e)),
            };
            let not_resynced = match fleet.resync(
                account.as_str(),
                uid,
                name.as_str(),
                c1.as_str(),
                c2.as_str(),
            )? {
                ResyncOutcome::Clock { drift_secs } => {
                    changed(
                        log,
                        uid,
                        account,
                        &format!("resynced device {:?} (drift {drift_secs} s)", name.as_str()),
                    );
                    return Ok(Response::Resynced(ResyncReply::Clock { drift_secs }));
                }
                ResyncOutcome::Counter { skipped } => {
                    changed(
                        log,
                        uid,
                        account,
                        &format!(
                            "resynced device {:?} ({skipped} codes skipped)",
                            name.as_str()
                        ),
                    );
                    return Ok(Response::Resynced(ResyncReply::Counter { skipped }));
                }
                // The library's refusals, as enrollment::resync makes them.
                ResyncOutcome::NotFound => pam_mfa::Error::ResyncFailed,
                ResyncOutcome::CounterNotFound => pam_mfa::Error::CounterNotFound {
                    lookahead: enrollment::HOTP_RESYNC_LOOKAHEAD,
                },
                ResyncOutcome::NotConsecutive => pam_mfa::Error::NotConsecutive,
                ResyncOutcome::AlreadyUsed => pam_mfa::Error::CodesAlreadyUsed,
                ResyncOutcome::NoSuchDevice => pam_mfa::Error::NoSuchDevice {
                    user: account.to_string(),
                    name: name.to_string(),
                },
                ResyncOutcome::NotActive => pam_mfa::Error::DeviceNotActive {
                    name: name.to_string(),
                },
                ResyncOutcome::NotTotp => pam_mfa::Error::NotTotp {
                    name: name.to_string(),
                    action: "resynced",
                },
            };
            refused(not_resynced)
        }
        Change::RecoveryGenerate => {
            let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
            new_recovery_set(tickets, uid, account, now)
                .map_err(|e| FleetError::Database(e.to_string()))?
        }
        Change::BeginFido2 {
            name,
            rp_id,
            require_pin,
            require_uv,
        } => {
            // As enrollment::begin_fido2 checks it, with the database's room and names.
            let rp_id = rp_id.unwrap_or_else(|| fido2::default_rp_id(&rules::default_issuer()));
            let name = match fido2::check_rp_id(&rp_id)
                .map_err(pam_mfa::Error::from)
                .and_then(|()| DeviceName::parse(&name))
            {
                Ok(n) => n,
                Err(e) => return Ok(error(ErrorKind::Invalid, e.to_string())),
            };
            let exclude = fleet.begin_key(account.as_str(), name.as_str())?;
            let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
            issue_fido2(
                tickets,
                uid,
                account,
                (name, rp_id, exclude),
                (require_pin, require_uv),
                now,
                log,
            )
            .map_err(|e| FleetError::Database(e.to_string()))?
        }
        Change::EnrollToken {
            name,
            serial,
            code1,
            code2,
        } => enroll_token(fleet, uid, account, &name, serial, &code1, &code2, log)?,
    })
}

/// enrollment::begin_totp for a fleet account (held for a login when `hold` is given):
/// the database makes the secret; the pending registration as the local store's, and
/// its issuer. A refusal is the answer to send.
fn begin(
    fleet: &mut Fleet,
    uid: u32,
    account: &UserName,
    name: &str,
    issuer: Option<String>,
    hold: Option<&LoginHold>,
) -> Result<Result<(enrollment::PendingTotp, String), Response>, FleetError> {
    let issuer = match issuer {
        Some(i) => rules::check_issuer(&i),
        None => Ok(rules::default_issuer()),
    };
    let (issuer, name) = match issuer.and_then(|i| Ok((i, DeviceName::parse(name)?))) {
        Ok(x) => x,
        Err(e) => return Ok(Err(error(ErrorKind::Invalid, e.to_string()))),
    };
    let params = TotpParams::DEFAULT;
    let (alg, digits) = (params.algorithm, u32::from(params.digits));
    let begun = match hold {
        None => fleet.begin_totp(
            account.as_str(),
            uid,
            name.as_str(),
            alg,
            digits,
            params.period,
        ),
        Some(hold) => fleet.begin_totp_held(
            account.as_str(),
            uid,
            name.as_str(),
            alg,
            digits,
            params.period,
            &hold.digest(),
        ),
    };
    let secret = match begun {
        Err(FleetError::Refused {
            code: RefusalCode::TooManyBegun,
            message,
        }) => {
            // The database says from when there is room again; worded as the library's.
            let retry_at = message
                .rsplit(' ')
                .next()
                .and_then(|t| t.parse::<UnixTime>().ok())
                .ok_or_else(|| FleetError::Database(format!("begin_totp: {message}")))?;
            return Ok(Err(error(
                ErrorKind::Busy,
                pam_mfa::Error::TooManyBegun {
                    user: account.as_str().to_owned(),
                    max: pam_mfa::limits::MAX_BEGUN,
                    retry_at,
                }
                .to_string(),
            )));
        }
        Ok(secret) => secret,
        Err(e) => return in_library_words(fleet, account, &name, e).map(Err),
    };
    let now = clock::now().map_err(|e| FleetError::Database(e.to_string()))?;
    let secret = Secret::from_bytes(secret.to_vec());
    Ok(Ok((
        enrollment::PendingTotp {
            user: account.as_str().to_owned(),
            name: name.as_str().to_owned(),
            uri: otpauth::build_totp_uri(&issuer, account.as_str(), &secret, params),
            secret,
            params,
            expires_at: now + PENDING_LIFETIME_SECS,
        },
        issuer,
    )))
}

/// Registration at login (`enroll_at_login`) for a fleet account, as [`crate::held`]
/// does it for a local one: begun and confirmed during the login's authentication, held
/// in the database for that login, and made active only by the same login's value.
fn at_login(fleet: &mut Fleet, uid: u32, work: AtLogin) -> Result<Response, FleetError> {
    let system = |e: pam_mfa::Error| FleetError::Database(e.to_string());
    let refusal = |e: pam_mfa::Error| crate::selfservice::refusal(e).map_err(system);
    match work {
        AtLogin::Begin {
            account,
            name,
            issuer,
        } => {
            let hold = LoginHold::generate().map_err(system)?;
            match begin(fleet, uid, &account, &name, issuer, Some(&hold))? {
                Ok((p, issuer)) => held_reply(&p, issuer, &hold).map_err(system),
                Err(refused) => Ok(refused),
            }
        }
        AtLogin::Confirm {
            account,
            name,
            hold,
            code1,
            code2,
        } => {
            let Some(hold) = hold_of(&hold) else {
                return Ok(not_a_hold());
            };
            let name = match DeviceName::parse(&name) {
                Ok(n) => n,
                Err(e) => return refusal(e),
            };
            let (c1, c2) = match enrollment::parse_pair(code1.as_bytes(), code2.as_bytes()) {
                Ok(pair) => pair,
                Err(e) => return refusal(e),
            };
            let user = account.as_str();
            let held = fleet.hold_totp(
                user,
                uid,
                name.as_str(),
                &hold.digest(),
                c1.as_str(),
                c2.as_str(),
            );
            let not_held = match held {
                Ok(FinishOutcome::Activated) => return Ok(Response::Done),
                Ok(FinishOutcome::Wrong(why)) => enrollment::pair_error(why),
                Ok(FinishOutcome::ClockSkew { secs }) => enrollment::clock_skew(secs),
                Ok(FinishOutcome::AlreadyActive) => pam_mfa::Error::AlreadyActive {
                    user: user.to_owned(),
                    name: name.to_string(),
                },
                Ok(FinishOutcome::NoSuchDevice) => pam_mfa::Error::NoPendingDevice {
                    user: user.to_owned(),
                    name: name.to_string(),
                },
                Err(e) => return in_library_words(fleet, &account, &name, e),
            };
            refusal(not_held)
        }
        AtLogin::Activate { account, hold } => {
            let Some(hold) = hold_of(&hold) else {
                return Ok(not_a_hold());
            };
            match fleet.activate_held(account.as_str(), uid, &hold.digest())? {
                Some(name) => Ok(Response::Activated { name }),
                None => refusal(pam_mfa::Error::HeldRegistrationGone),
            }
        }
    }
}

fn remove(
    fleet: &mut Fleet,
    uid: u32,
    account: &UserName,
    name: &str,
    log: &Log,
) -> Result<Response, FleetError> {
    let name = match DeviceName::existing(name) {
        Ok(n) => n,
        Err(e) => return Ok(error(ErrorKind::Invalid, e.to_string())),
    };
    Ok(
        if fleet.remove_device(account.as_str(), uid, name.as_str())? {
            changed(
                log,
                uid,
                account,
                &format!("removed device {:?}", name.as_str()),
            );
            Response::Done
        } else {
            error(ErrorKind::Invalid, no_such_device(account, name.as_str()))
        },
    )
}

/// The refusal for a device the account does not have, in the local store's words.
fn no_such_device(account: &UserName, name: &str) -> String {
    pam_mfa::Error::NoSuchDevice {
        user: account.as_str().to_owned(),
        name: name.to_owned(),
    }
    .to_string()
}

/// A recovery or bypass code typed at a login (sent as such, or as the answer to the
/// code prompt, told apart by `recovery::normalize` as for the local store), used up
/// fleet-wide by the database with its audit row as the caller's uid; logged as
/// service.rs logs it.
fn verify_recovery(
    fleet: &mut Fleet,
    account: Option<UserName>,
    code: &[u8],
    uid: u32,
    log: &Log,
) -> Result<Response, FleetError> {
    let outcome = match (account, recovery::normalize(code)) {
        (Some(user), Some(code)) => match fleet.use_recovery_code(user.as_str(), uid, &code)? {
            Used::Accepted { kind, remaining } => {
                log.log(
                    Level::Notice,
                    &format!(
                        "authenticated with a {} code; {remaining} left ({})",
                        kind.as_str(),
                        who(&user, uid)
                    ),
                );
                RecoveryOutcome::Accepted {
                    kind: code_kind(kind),
                    remaining,
                }
            }
            Used::NotFound => RecoveryOutcome::Refused,
        },
        _ => RecoveryOutcome::Refused,
    };
    if outcome == RecoveryOutcome::Refused {
        log.log(
            Level::Notice,
            &format!("authentication failure: not a valid recovery or bypass code (by uid {uid})"),
        );
    }
    Ok(Response::Recovery(outcome))
}

fn code_kind(kind: recovery::Kind) -> CodeKind {
    match kind {
        recovery::Kind::Recovery => CodeKind::Recovery,
        recovery::Kind::Bypass => CodeKind::Bypass,
    }
}

/// `mfa admin bypass` for a fleet account: the code is made here, shown once to root, and
/// only its salted hash goes to the database, which also clears the lock-out. Its expiry
/// is counted from the database's clock, the fleet's one time.
fn bypass(
    fleet: &mut Fleet,
    uid: u32,
    account: &UserName,
    uses: u32,
    expires_in: &str,
    log: &Log,
) -> Result<Response, FleetError> {
    let secs = match pam_mfa::admin::bypass_lifetime(expires_in) {
        Ok(s) => s,
        Err(message) => return Ok(error(ErrorKind::Invalid, message)),
    };
    let code = recovery::new_code().map_err(|e| FleetError::Database(e.to_string()))?;
    let (salt, hash) =
        recovery::salted_hash(&code).map_err(|e| FleetError::Database(e.to_string()))?;
    let expires_at = fleet.add_bypass_code(account.as_str(), uid, &salt, &hash, uses, secs)?;
    changed(
        log,
        uid,
        account,
        &format!(
            "issued a bypass code ({uses} use(s), expires in {})",
            expires_in.escape_debug()
        ),
    );
    Ok(Response::BypassCode(BypassReply {
        user: account.as_str().to_owned(),
        code: SecretBytes::from_slice(code.as_bytes()),
        uses,
        expires_at,
    }))
}

/// A fleet code check's outcome as the library's `login::verify` would have it (the
/// parser's complaint for a malformed answer, which only digits left this host as).
fn as_library(outcome: CodeOutcome, malformed: Option<code::CodeError>) -> login::Outcome {
    use login::{Outcome, Refusal};
    let refused = |reason, locked_until| Outcome::Refused {
        reason,
        locked_until,
    };
    match outcome {
        CodeOutcome::Accepted { device } => Outcome::Accepted { device },
        CodeOutcome::Locked { until } => Outcome::Locked { until },
        CodeOutcome::Wrong { locked_until } => refused(Refusal::WrongCode, locked_until),
        CodeOutcome::Replayed {
            device,
            locked_until,
        } => refused(Refusal::Replayed { device }, locked_until),
        CodeOutcome::Malformed { locked_until } => refused(
            Refusal::Malformed(malformed.unwrap_or(code::CodeError::Empty)),
            locked_until,
        ),
        CodeOutcome::NoDevices => refused(Refusal::NoDevices, None),
    }
}

/// A syslog line for a change, as for the local store (never a secret or a code).
fn changed(log: &Log, uid: u32, user: &UserName, what: &str) {
    log.log(
        Level::Notice,
        &format!("uid {uid} {what} for user {}", user.as_str().escape_debug()),
    );
}

// ----- Hardware tokens: the fleet's inventory (`mfa admin tokens`) and `mfa enroll token` -----

/// A library error as the administrator reads it, for a refusal the database reported.
fn admin_refusal(e: pam_mfa::Error) -> Response {
    error(ErrorKind::Invalid, e.to_string())
}

/// `mfa admin tokens import` into the fleet's inventory: the whole file in one call (the
/// database writes its audit row), logged and answered as for the local inventory.
fn tokens_import(
    fleet: &mut Fleet,
    uid: u32,
    seeds: &[pam_mfa::tokens::TokenSeed],
    format: pam_mfa::tokens::Format,
    replace: bool,
    log: &Log,
) -> Result<Response, FleetError> {
    Ok(match fleet.import_tokens(uid, seeds, format, replace)? {
        TokenImport::Imported { added, replaced } => {
            let done = pam_mfa::tokens::inventory::Imported {
                added: added as usize,
                replaced: replaced as usize,
            };
            crate::admin::tokens_imported(log, uid, done, format)
        }
        TokenImport::Duplicate { serial } => {
            admin_refusal(pam_mfa::Error::DuplicateSerial { serial })
        }
        TokenImport::Assigned {
            serial,
            user,
            device,
        } => admin_refusal(pam_mfa::Error::TokenAssigned {
            serial,
            user,
            device,
        }),
    })
}

/// `mfa admin tokens remove` from the fleet's inventory.
fn tokens_remove(
    fleet: &mut Fleet,
    uid: u32,
    serial: &str,
    log: &Log,
) -> Result<Response, FleetError> {
    Ok(match fleet.remove_token(uid, serial)? {
        TokenRemoval::Removed => crate::admin::token_removed(log, uid, serial),
        TokenRemoval::NoSuchToken => admin_refusal(pam_mfa::Error::NoSuchToken {
            serial: serial.to_owned(),
        }),
        TokenRemoval::Assigned { user, device } => admin_refusal(pam_mfa::Error::TokenAssigned {
            serial: serial.to_owned(),
            user,
            device,
        }),
    })
}

/// `mfa enroll token` for a fleet account: the name, serial and codes checked for their
/// form here as `enrollment::register_token_as` does (in its order: they say nothing
/// about the inventory), the token and its codes in the database. Root is told exactly
/// what is wrong; anyone else gets the one answer, counted by the database toward the
/// lock-out, and (in `conn`) only after the fixed time every refusal takes.
#[allow(clippy::too_many_arguments)]
fn enroll_token(
    fleet: &mut Fleet,
    uid: u32,
    account: &UserName,
    name: &str,
    serial: String,
    code1: &SecretBytes,
    code2: &SecretBytes,
    log: &Log,
) -> Result<Response, FleetError> {
    let checked = DeviceName::parse(name).and_then(|name| {
        pam_mfa::tokens::check_serial(&serial).map_err(pam_mfa::Error::InvalidSerial)?;
        let parse = |which: &'static str, answer: &SecretBytes| {
            code::parse(answer.as_bytes())
                .map_err(|problem| pam_mfa::Error::MalformedCode { which, problem })
        };
        Ok((name, parse("first", code1)?, parse("second", code2)?))
    });
    let (name, c1, c2) = match checked {
        Ok(x) => x,
        Err(e) => return system(token_refused(log, uid, account, e)),
    };
    let user = account.as_str();
    let refused =
        match fleet.enroll_token(user, uid, name.as_str(), &serial, c1.as_str(), c2.as_str())? {
            TokenEnrollment::Registered { event_based } => {
                return Ok(token_registered(
                    log,
                    uid,
                    account,
                    &name,
                    serial,
                    event_based,
                ));
            }
            TokenEnrollment::TooManyDevices => pam_mfa::Error::TooManyDevices {
                user: user.to_owned(),
                max: fleet.policy()?.max_devices,
            },
            TokenEnrollment::NameTaken => pam_mfa::Error::DuplicateName {
                user: user.to_owned(),
                name: name.as_str().to_owned(),
            },
            TokenEnrollment::Unavailable => pam_mfa::Error::TokenUnavailable { serial },
            TokenEnrollment::CodesNotFound { event_based: true } => {
                pam_mfa::Error::CounterNotFound {
                    lookahead: enrollment::HOTP_RESYNC_LOOKAHEAD,
                }
            }
            // Searched for within 12 hours of the database's clock, as a token's are locally.
            TokenEnrollment::CodesNotFound { event_based: false } => pam_mfa::Error::ResyncFailed,
            TokenEnrollment::AlreadyUsed => pam_mfa::Error::CodesAlreadyUsed,
            TokenEnrollment::Locked { until }
            | TokenEnrollment::NotRegistered {
                locked_until: Some(until),
            } => pam_mfa::Error::LockedOut { until },
            TokenEnrollment::NotRegistered { locked_until: None } => {
                pam_mfa::Error::TokenNotRegistered
            }
        };
    system(token_refused(log, uid, account, refused))
}

/// A library error that is the system's (none of the above is) as the database's.
fn system(r: pam_mfa::Result<Response>) -> Result<Response, FleetError> {
    r.map_err(|e| FleetError::Database(e.to_string()))
}
