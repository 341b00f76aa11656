//! `mfa`'s self-service through the daemon: proving a device, registering an app,
//! renaming, removing, resyncing, new recovery codes. Each runs the library calls `mfa`
//! runs (one implementation), with `mfa`'s rules, decided here from the peer's uid:
//!
//! * a non-root caller is held to the policy's self-service switch and the change-rate
//!   limit ([`pam_mfa::selfservice::check_allowed`]);
//! * a non-root caller whose account has an active device must carry a proof from
//!   [`Work::Reauth`] with every change (see the protocol crate's "Proofs"); root needs
//!   none;
//! * the audit rows of device changes name the peer's uid: the store's connection is
//!   attached to it for the one request ([`pam_mfa::audit::as_actor`]) and checked to be
//!   detached afterwards; if it is not, the connection is dropped and reopened, so one
//!   request's actor can never be written into another's rows.

use pam_mfa::clock::UnixTime;
use std::path::Path;

use pam_mfa::fido2::transport::RawAttestation;
use pam_mfa::names::{DeviceName, UserName};
use pam_mfa::selfservice::{self as rules, NotProved, Proved};
use pam_mfa::store::Store;
use pam_mfa::{Error, audit, clock, enrollment, fido2, recovery};
use pam_mfa_protocol::{
    CodeKind, CodeUsed, ErrorKind, ErrorReply, Fido2ChallengeReply, Fido2Reply,
    KEY_CHALLENGE_LIFETIME_SECS, KeyAttestation, PendingTotpReply, ProofReply, PublicBytes,
    RecoveryCodesReply, Response, ResyncReply, SecretBytes, TokenReply,
};
use zeroize::Zeroizing;

use crate::authorise::{Change, Work};
use crate::keys::KeyTicket;
use crate::log::{Level, Log};
use crate::service::{open_store, unavailable, who};
use crate::tickets::{Held, IssueError};

/// The daemon's single-use tickets: proofs of a device, recovery-code sets waiting to
/// be committed, security-key challenges, and key registrations waiting for the key's
/// answer.
pub struct Tickets {
    pub(crate) proofs: Held<()>,
    codes: Held<Vec<Zeroizing<String>>>,
    pub(crate) keys: Held<KeyTicket>,
    fido2: Held<Fido2Ticket>,
}

impl Tickets {
    pub fn new() -> Self {
        Self {
            proofs: Held::new(),
            codes: Held::new(),
            keys: Held::with_lifetime(KEY_CHALLENGE_LIFETIME_SECS),
            fido2: Held::with_lifetime(KEY_CHALLENGE_LIFETIME_SECS),
        }
    }
}

/// A key registration begun ([`Change::BeginFido2`]) and waiting for the key's
/// attestation: what the attestation must match.
pub(crate) struct Fido2Ticket {
    pub(crate) name: DeviceName,
    pub(crate) rp_id: String,
    pub(crate) needs_uv: bool,
    pub(crate) challenge: [u8; 32],
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply::new(kind, message))
}

/// A library error as the person should read it; `Err` for the store's own failures,
/// which fail closed as "unavailable".
pub(crate) fn refusal(e: Error) -> Result<Response, Error> {
    if e.is_system() {
        return Err(e);
    }
    let kind = match &e {
        Error::ManagedByAdmin => ErrorKind::Denied,
        Error::TooManyChanges { .. }
        | Error::TooManyBegun { .. }
        | Error::TooManyPending { .. } => ErrorKind::Busy,
        _ => ErrorKind::Invalid,
    };
    Ok(error(kind, e.to_string()))
}

pub(crate) fn issue_failed(e: IssueError) -> Result<Response, Error> {
    match e {
        IssueError::Random(e) => Err(Error::Random(e)),
        IssueError::Full => Ok(error(
            ErrorKind::Busy,
            "too many confirmations are waiting; try again in a few minutes",
        )),
    }
}

pub fn handle(
    store: &mut Option<Store>,
    db: &Path,
    uid: u32,
    work: Work,
    tickets: &mut Tickets,
    log: &Log,
) -> Response {
    // A change creates the store, as `mfa` does.
    match open_store(store, db, true) {
        Ok(Some(s)) => run(s, uid, work, tickets, log).unwrap_or_else(|e| unavailable(log, &e)),
        Ok(None) => error(ErrorKind::Unavailable, "the device store cannot answer"),
        Err(e) => unavailable(log, &e),
    }
}

fn run(
    store: &mut Store,
    uid: u32,
    work: Work,
    tickets: &mut Tickets,
    log: &Log,
) -> pam_mfa::Result<Response> {
    let now = clock::now()?;
    match work {
        Work::Reauth { account, answer } => {
            if let Err(e) = rules::check_allowed(store, &account, uid, now) {
                return refusal(e);
            }
            match rules::prove(store, &account, answer.as_bytes(), uid, now)? {
                Ok(proved) => {
                    let code = match proved {
                        Proved::Device => None,
                        Proved::Code { kind, remaining } => {
                            log.log(
                                Level::Notice,
                                &format!(
                                    "uid {uid} confirmed a change with a {} code ({remaining} \
                                     left) for user {account}",
                                    kind.as_str()
                                ),
                            );
                            Some(CodeUsed {
                                kind: match kind {
                                    recovery::Kind::Recovery => CodeKind::Recovery,
                                    recovery::Kind::Bypass => CodeKind::Bypass,
                                },
                                remaining,
                            })
                        }
                    };
                    match tickets.proofs.issue(uid, account.as_str(), (), now) {
                        Ok((token, expires_at)) => Ok(Response::Proof(ProofReply {
                            proof: SecretBytes::from_slice(&token[..]),
                            expires_at,
                            code,
                        })),
                        Err(e) => issue_failed(e),
                    }
                }
                Err(NotProved(why)) => {
                    log.log(
                        Level::Notice,
                        &format!(
                            "refused a change: no device proved ({})",
                            who(&account, uid)
                        ),
                    );
                    Ok(error(ErrorKind::Denied, why))
                }
            }
        }
        Work::Change {
            account,
            proof,
            change,
        } => {
            if let Err(e) = rules::check_allowed(store, &account, uid, now) {
                return refusal(e);
            }
            if rules::needs_proof(store, &account, uid)?
                && let Some(refused) = proof_refused(tickets, proof, uid, &account, now, log)
            {
                return Ok(refused);
            }
            change_now(store, uid, &account, *change, tickets, log, now)
        }
        Work::FinishTotp {
            account,
            name,
            code1,
            code2,
        } => {
            if let Err(e) = rules::check_allowed(store, &account, uid, now) {
                return refusal(e);
            }
            let result = DeviceName::parse(&name).and_then(|name| {
                audit::as_actor(store, uid, |s| {
                    enrollment::finish_totp(
                        s,
                        &account,
                        &name,
                        code1.as_bytes(),
                        code2.as_bytes(),
                        now,
                    )
                })
                .map(|()| name)
            });
            match result {
                Ok(name) => {
                    changed(
                        log,
                        uid,
                        &account,
                        &format!("activated device {:?}", name.as_str()),
                    );
                    Ok(Response::Done)
                }
                Err(e) => refusal(e),
            }
        }
        Work::RecoveryCommit { account, ticket } => {
            if let Err(e) = rules::check_allowed(store, &account, uid, now) {
                return refusal(e);
            }
            let Some(codes) = take_recovery_set(tickets, &ticket, uid, &account, now) else {
                return Ok(recovery_set_gone());
            };
            match rules::commit_recovery_codes(store, &account, &codes, uid, now) {
                Ok(()) => {
                    changed(log, uid, &account, "generated new recovery codes");
                    Ok(Response::Done)
                }
                Err(e) => refusal(e),
            }
        }
        Work::FinishFido2 {
            account,
            ticket,
            attestation,
        } => {
            if let Err(e) = rules::check_allowed(store, &account, uid, now) {
                return refusal(e);
            }
            let Some(held) = take_fido2(tickets, &ticket, uid, &account, now) else {
                return Ok(fido2_gone());
            };
            let raw = raw_attestation(&attestation);
            let registered = audit::as_actor(store, uid, |s| {
                enrollment::finish_fido2(
                    s,
                    &account,
                    &held.name,
                    &held.rp_id,
                    held.needs_uv,
                    &held.challenge,
                    &raw,
                    now,
                )
            });
            match registered {
                Ok(r) => Ok(fido2_registered(log, uid, &account, &held, &r)),
                Err(e) => fido2_refused(log, uid, &account, e),
            }
        }
        _ => Ok(error(ErrorKind::UnknownRequest, "not served here")),
    }
}

/// Takes the proof of a device a change carries (used up when presented, whatever the
/// change does); `Some` refusal, logged, when there is none or it is not valid for this
/// caller and account.
pub(crate) fn proof_refused(
    tickets: &mut Tickets,
    proof: Option<SecretBytes>,
    uid: u32,
    account: &UserName,
    now: UnixTime,
    log: &Log,
) -> Option<Response> {
    let proved = proof.is_some_and(|p| {
        tickets
            .proofs
            .take(p.as_bytes(), uid, account.as_str(), now)
            .is_some()
    });
    if proved {
        return None;
    }
    log.log(
        Level::Notice,
        &format!(
            "refused a change without a valid proof of a device ({})",
            who(account, uid)
        ),
    );
    Some(error(ErrorKind::Denied, rules::NEEDED))
}

/// A syslog line for a change, as `mfa` writes one (never a secret or a code).
/// A hardware token registered (`mfa enroll token`): logged and answered the same way for
/// the local store and the fleet's.
pub(crate) fn token_registered(
    log: &Log,
    uid: u32,
    account: &UserName,
    name: &DeviceName,
    serial: String,
    event_based: bool,
) -> Response {
    changed(
        log,
        uid,
        account,
        &format!(
            "registered hardware token {serial:?} as device {:?}",
            name.as_str()
        ),
    );
    Response::TokenRegistered(TokenReply {
        user: account.as_str().to_owned(),
        name: name.as_str().to_owned(),
        serial,
        event_based,
    })
}

/// A hardware token registration refused: a user's is logged (never which check failed),
/// and the answer is the library's words, for either store.
pub(crate) fn token_refused(
    log: &Log,
    uid: u32,
    account: &UserName,
    e: Error,
) -> Result<Response, Error> {
    if uid != 0 && !e.is_system() {
        log.log(
            Level::Notice,
            &format!(
                "refused a hardware token registration ({})",
                who(account, uid)
            ),
        );
    }
    refusal(e)
}

fn changed(log: &Log, uid: u32, user: &UserName, what: &str) {
    log.log(
        Level::Notice,
        &format!("uid {uid} {what} for user {}", user.as_str().escape_debug()),
    );
}

fn change_now(
    store: &mut Store,
    uid: u32,
    account: &UserName,
    change: Change,
    tickets: &mut Tickets,
    log: &Log,
    now: UnixTime,
) -> pam_mfa::Result<Response> {
    let done = match change {
        Change::BeginTotp { name, issuer } => {
            let issuer = match issuer {
                Some(i) => rules::check_issuer(&i),
                None => Ok(rules::default_issuer()),
            };
            let pending = issuer.and_then(|issuer| {
                let name = DeviceName::parse(&name)?;
                let p = audit::as_actor(store, uid, |s| {
                    enrollment::begin_totp(s, account, &name, &issuer, now)
                })?;
                Ok((p, issuer))
            });
            let (p, issuer) = match pending {
                Ok(p) => p,
                Err(e) => return refusal(e),
            };
            changed(
                log,
                uid,
                account,
                &format!("began registering device {:?}", p.name),
            );
            return Ok(Response::PendingTotp(pending_reply(&p, issuer)));
        }
        Change::Rename { name, new_name } => DeviceName::existing(&name).and_then(|old| {
            let new = DeviceName::parse(&new_name)?;
            audit::as_actor(store, uid, |s| rules::rename(s, account, &old, &new, now))?;
            Ok(format!(
                "renamed device {:?} to {:?}",
                old.as_str(),
                new.as_str()
            ))
        }),
        Change::Remove { name } => DeviceName::existing(&name).and_then(|name| {
            audit::as_actor(store, uid, |s| rules::remove(s, account, &name, now))?;
            Ok(format!("removed device {:?}", name.as_str()))
        }),
        Change::Resync { name, code1, code2 } => {
            let found = DeviceName::existing(&name).and_then(|name| {
                let found = audit::as_actor(store, uid, |s| {
                    enrollment::resync(s, account, &name, code1.as_bytes(), code2.as_bytes(), now)
                })?;
                Ok((name, found))
            });
            let (name, found) = match found {
                Ok(f) => f,
                Err(e) => return refusal(e),
            };
            let (logged, reply) = match found {
                enrollment::Resynced::Clock { drift_secs } => (
                    format!("drift {drift_secs} s"),
                    ResyncReply::Clock { drift_secs },
                ),
                enrollment::Resynced::Counter { skipped } => (
                    format!("{skipped} codes skipped"),
                    ResyncReply::Counter { skipped },
                ),
            };
            changed(
                log,
                uid,
                account,
                &format!("resynced device {:?} ({logged})", name.as_str()),
            );
            return Ok(Response::Resynced(reply));
        }
        Change::EnrollToken {
            name,
            serial,
            code1,
            code2,
        } => {
            let registered = DeviceName::parse(&name).and_then(|name| {
                let mode = audit::as_actor(store, uid, |s| {
                    enrollment::register_token_as(
                        s,
                        uid,
                        account,
                        &name,
                        &serial,
                        code1.as_bytes(),
                        code2.as_bytes(),
                        now,
                    )
                })?;
                Ok((name, mode))
            });
            return Ok(match registered {
                Ok((name, mode)) => token_registered(
                    log,
                    uid,
                    account,
                    &name,
                    serial,
                    matches!(mode, pam_mfa::tokens::Mode::Hotp { .. }),
                ),
                Err(e) => token_refused(log, uid, account, e)?,
            });
        }
        Change::BeginFido2 {
            name,
            rp_id,
            require_pin,
            require_uv,
        } => {
            let rp_id = rp_id.unwrap_or_else(|| fido2::default_rp_id(&rules::default_issuer()));
            let begun = DeviceName::parse(&name).and_then(|name| {
                let exclude = enrollment::begin_fido2(store, account, &name, &rp_id, now)?;
                Ok((name, exclude))
            });
            let (name, exclude) = match begun {
                Ok(b) => b,
                Err(e) => return refusal(e),
            };
            return issue_fido2(
                tickets,
                uid,
                account,
                (name, rp_id, exclude),
                (require_pin, require_uv),
                now,
                log,
            );
        }
        Change::RecoveryGenerate => return new_recovery_set(tickets, uid, account, now),
    };
    match done {
        Ok(what) => {
            changed(log, uid, account, &what);
            Ok(Response::Done)
        }
        Err(e) => refusal(e),
    }
}

/// A key registration's ticket and the challenge the person's key is to answer, for a
/// registration begun in either store (`exclude`: the credential ids already registered).
pub(crate) fn issue_fido2(
    tickets: &mut Tickets,
    uid: u32,
    account: &UserName,
    (name, rp_id, exclude): (DeviceName, String, Vec<Vec<u8>>),
    (require_pin, require_uv): (bool, bool),
    now: UnixTime,
    log: &Log,
) -> Result<Response, Error> {
    let challenge = fido2::random32()?;
    let user_id = fido2::random32()?;
    let needs_uv = require_pin || require_uv;
    let shown = name.as_str().to_owned();
    let held = Fido2Ticket {
        name,
        rp_id: rp_id.clone(),
        needs_uv,
        challenge,
    };
    match tickets.fido2.issue(uid, account.as_str(), held, now) {
        Ok((ticket, expires_at)) => {
            changed(
                log,
                uid,
                account,
                &format!("began registering security key {shown:?}"),
            );
            Ok(Response::Fido2Challenge(Fido2ChallengeReply {
                ticket: SecretBytes::from_slice(&ticket[..]),
                rp_id,
                challenge: PublicBytes(challenge.to_vec()),
                user_id: PublicBytes(user_id.to_vec()),
                user_name: account.as_str().to_owned(),
                exclude: exclude.into_iter().map(PublicBytes).collect(),
                needs_uv,
                needs_pin: require_pin,
                expires_at,
            }))
        }
        Err(e) => issue_failed(e),
    }
}

/// Takes a key registration's ticket (used up here); `None` when it is gone (then the
/// answer is [`fido2_gone`]).
pub(crate) fn take_fido2(
    tickets: &mut Tickets,
    ticket: &SecretBytes,
    uid: u32,
    account: &UserName,
    now: UnixTime,
) -> Option<Fido2Ticket> {
    tickets
        .fido2
        .take(ticket.as_bytes(), uid, account.as_str(), now)
}

pub(crate) fn fido2_gone() -> Response {
    error(
        ErrorKind::Invalid,
        "this security key registration expired or was already finished; nothing was \
         registered: begin it again",
    )
}

pub(crate) fn raw_attestation(attestation: &KeyAttestation) -> RawAttestation {
    RawAttestation {
        fmt: attestation.fmt.clone(),
        auth_data: attestation.auth_data.0.clone(),
        alg: attestation.alg,
        sig: attestation.sig.0.clone(),
        x5c: attestation.x5c.iter().map(|c| c.0.clone()).collect(),
    }
}

/// The log line and the reply for a key registration stored (in either store).
pub(crate) fn fido2_registered(
    log: &Log,
    uid: u32,
    account: &UserName,
    held: &Fido2Ticket,
    r: &fido2::verify::Registration,
) -> Response {
    changed(
        log,
        uid,
        account,
        &format!(
            "registered security key {:?} ({}, {} attestation, relying party {})",
            held.name.as_str(),
            r.algorithm,
            r.attestation,
            held.rp_id.escape_debug()
        ),
    );
    Response::Fido2Registered(Fido2Reply {
        user: account.as_str().to_owned(),
        name: held.name.as_str().to_owned(),
        attestation: r.attestation.to_owned(),
        uv_required: held.needs_uv,
    })
}

/// The log line and the reply for a key registration refused (in either store).
pub(crate) fn fido2_refused(
    log: &Log,
    uid: u32,
    account: &UserName,
    e: Error,
) -> Result<Response, Error> {
    if !e.is_system() {
        log.log(
            Level::Notice,
            &format!(
                "refused a security key registration: {e} ({})",
                who(account, uid)
            ),
        );
    }
    refusal(e)
}

/// A new recovery set, shown to the caller and held under a ticket until the caller says
/// it was written out ([`Work::RecoveryCommit`]): the same for both stores, which differ
/// only in how the set is then stored.
pub(crate) fn new_recovery_set(
    tickets: &mut Tickets,
    uid: u32,
    account: &UserName,
    now: UnixTime,
) -> pam_mfa::Result<Response> {
    let codes = recovery::new_set()?;
    let shown: Vec<SecretBytes> = codes
        .iter()
        .map(|c| SecretBytes::from_slice(c.as_bytes()))
        .collect();
    match tickets.codes.issue(uid, account.as_str(), codes, now) {
        Ok((ticket, expires_at)) => Ok(Response::RecoveryCodes(RecoveryCodesReply {
            ticket: SecretBytes::from_slice(&ticket[..]),
            codes: shown,
            expires_at,
        })),
        Err(e) => issue_failed(e),
    }
}

/// The set held under `ticket` for this caller and account, once ([`new_recovery_set`]).
pub(crate) fn take_recovery_set(
    tickets: &mut Tickets,
    ticket: &SecretBytes,
    uid: u32,
    account: &UserName,
    now: UnixTime,
) -> Option<Vec<Zeroizing<String>>> {
    tickets
        .codes
        .take(ticket.as_bytes(), uid, account.as_str(), now)
}

/// The answer to a commit whose set is no longer held.
pub(crate) fn recovery_set_gone() -> Response {
    error(
        ErrorKind::Invalid,
        "these recovery codes expired or were already saved; nothing was changed, the \
         earlier codes still work: run mfa recovery generate again",
    )
}

/// A registration waiting for its two codes, as the person registering gets it (the
/// only answers that carry a device's secret: `BeginTotp` and `BeginHeld`).
pub(crate) fn pending_reply(p: &enrollment::PendingTotp, issuer: String) -> PendingTotpReply {
    PendingTotpReply {
        user: p.user.clone(),
        name: p.name.clone(),
        issuer,
        secret: SecretBytes::from_slice(p.secret.to_base32().as_bytes()),
        uri: SecretBytes::from_slice(p.uri.as_bytes()),
        algorithm: p.params.algorithm.as_str().to_owned(),
        digits: p.params.digits,
        period: p.params.period,
        expires_at: p.expires_at,
    }
}
