//! Logging in (or proving a device before a change) with a touch of a security key, with
//! the daemon as the relying party: it issues the challenge and checks the answer; the
//! client (the module through `libpam_mfa_keys.so`, or the user's own `mfa`) only carries
//! them to and from the key.
//!
//! A challenge is 32 random bytes held in memory under a single-use ticket ([`crate::tickets`])
//! bound to the peer's uid and the account, for [`KEY_CHALLENGE_LIFETIME_SECS`], together
//! with the account's active keys as they were when it was issued. The answer is checked
//! against that snapshot ([`ceremony::check_answer`], the relying-party checks the module
//! makes today), then recorded with [`login::record_key_login`], which looks the key up
//! again and checks its sign count again inside its write transaction: a key revoked, or
//! used by another login, in the meantime does not count.
//!
//! The same challenge, ticket and checks serve accounts kept in the fleet's database
//! ([`crate::fleet`]): only the keys come from the database, and the login is recorded by
//! its `record_key_login`, which checks the sign count again under the user's lock.

use pam_mfa::clock::UnixTime;
use std::path::Path;

use pam_mfa::fido2::ceremony::{self, Credential};
use pam_mfa::fido2::transport::RawAssertion;
use pam_mfa::login::{self, Outcome};
use pam_mfa::names::UserName;
use pam_mfa::selfservice as rules;
use pam_mfa::store::{Store, devices::Fido2Device};
use pam_mfa::{clock, fido2};
use pam_mfa_protocol::{
    ErrorKind, ErrorReply, KeyAssertion, KeyChallengeReply, KeyCredential, KeyPurpose,
    LoginContext, ProofReply, PublicBytes, Response, SecretBytes,
};

use crate::log::{Level, Log};
use crate::selfservice::{Tickets, issue_failed};
use crate::service::{convert, log_outcome, store_now, unavailable, who};

/// What a key challenge's ticket holds until it is answered.
pub struct KeyTicket {
    purpose: KeyPurpose,
    challenge: [u8; 32],
    /// The account's active keys when the challenge was issued.
    keys: Vec<Fido2Device>,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply::new(kind, message))
}

/// A fresh challenge for a touch of one of `account`'s keys.
pub fn challenge(
    store: &mut Option<Store>,
    db: &Path,
    uid: u32,
    account: &UserName,
    purpose: KeyPurpose,
    tickets: &mut Tickets,
    log: &Log,
) -> Response {
    let mut run = || -> pam_mfa::Result<Response> {
        let now = clock::now()?;
        let Some(store) = store_now(store, db)? else {
            return Ok(no_keys(account));
        };
        if purpose == KeyPurpose::Proof
            && let Err(e) = rules::check_allowed(store, account, uid, now)
        {
            return crate::selfservice::refusal(e);
        }
        let keys = login::factors(store, account)?.fido2;
        issue_challenge(tickets, uid, account, purpose, keys, now)
    };
    run().unwrap_or_else(|e| unavailable(log, &e))
}

/// A fresh challenge for a touch of one of `keys` (the account's active keys, in either
/// store), held under a single-use ticket with that snapshot of them.
pub(crate) fn issue_challenge(
    tickets: &mut Tickets,
    uid: u32,
    account: &UserName,
    purpose: KeyPurpose,
    keys: Vec<Fido2Device>,
    now: UnixTime,
) -> pam_mfa::Result<Response> {
    if keys.is_empty() {
        return Ok(no_keys(account));
    }
    let credentials = keys
        .iter()
        .map(|d| KeyCredential {
            name: d.credential.name.clone(),
            credential_id: PublicBytes(d.credential.credential_id.clone()),
            rp_id: d.credential.rp_id.clone(),
            uv_required: d.credential.uv_required,
        })
        .collect();
    let challenge = fido2::random32()?;
    let held = KeyTicket {
        purpose,
        challenge,
        keys,
    };
    match tickets.keys.issue(uid, account.as_str(), held, now) {
        Ok((ticket, expires_at)) => Ok(Response::KeyChallenge(KeyChallengeReply {
            ticket: SecretBytes::from_slice(&ticket[..]),
            challenge: PublicBytes(challenge.to_vec()),
            credentials,
            expires_at,
        })),
        Err(e) => issue_failed(e),
    }
}

/// Takes the challenge held under `ticket` (used up here, whatever the answer turns out
/// to be); `None`, logged, when it expired, was answered or is not this caller's (then
/// the answer is [`challenge_gone`]).
pub(crate) fn take_challenge(
    tickets: &mut Tickets,
    ticket: &SecretBytes,
    uid: u32,
    account: &UserName,
    now: UnixTime,
    log: &Log,
) -> Option<KeyTicket> {
    let held = tickets
        .keys
        .take(ticket.as_bytes(), uid, account.as_str(), now);
    if held.is_none() {
        log.log(
            Level::Notice,
            &format!(
                "authentication failure: a security key answer to a challenge that \
                 expired, was already answered or is not this caller's ({})",
                who(account, uid)
            ),
        );
    }
    held
}

pub(crate) fn challenge_gone() -> Response {
    error(
        ErrorKind::Invalid,
        "the security key's challenge expired or was already answered; ask for a new one",
    )
}

impl KeyTicket {
    pub(crate) fn purpose(&self) -> KeyPurpose {
        self.purpose
    }

    /// The keys the challenge was issued for.
    pub(crate) fn keys(&self) -> &[Fido2Device] {
        &self.keys
    }

    /// The relying party's checks of `assertion` against the challenge and the keys as
    /// they were when it was issued ([`ceremony::check_answer`]); the sign count is
    /// checked again by whichever store records the login.
    pub(crate) fn check(
        &self,
        assertion: &KeyAssertion,
    ) -> Result<ceremony::Verified, fido2::KeyFailure> {
        let credentials: Vec<Credential> = self.keys.iter().map(|d| d.credential.clone()).collect();
        // The allow list of the request the key answered: the challenge's credentials
        // under the RP id it names.
        let allow: Vec<Vec<u8>> = credentials
            .iter()
            .filter(|c| c.rp_id == assertion.rp_id)
            .map(|c| c.credential_id.clone())
            .collect();
        let raw = RawAssertion {
            credential_id: assertion.credential_id.as_ref().map(|c| c.0.clone()),
            auth_data: assertion.auth_data.0.clone(),
            signature: assertion.signature.0.clone(),
        };
        ceremony::check_answer(&credentials, &allow, &raw, &self.challenge)
    }
}

fn no_keys(account: &UserName) -> Response {
    error(
        ErrorKind::Invalid,
        format!("{account} has no security key registered"),
    )
}

/// Checks and records the answer (`assertion`) to the challenge held under `ticket`; a
/// login's success is remembered in its `context` where the policy allows it.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    store: &mut Option<Store>,
    db: &Path,
    uid: u32,
    account: &UserName,
    (ticket, assertion): (&SecretBytes, &KeyAssertion),
    context: Option<&LoginContext>,
    tickets: &mut Tickets,
    log: &Log,
) -> Response {
    let mut run = || -> pam_mfa::Result<Response> {
        let now = clock::now()?;
        let Some(held) = take_challenge(tickets, ticket, uid, account, now, log) else {
            return Ok(challenge_gone());
        };
        let Some(store) = store_now(store, db)? else {
            return Ok(no_keys(account));
        };
        if held.purpose == KeyPurpose::Proof
            && let Err(e) = rules::check_allowed(store, account, uid, now)
        {
            return crate::selfservice::refusal(e);
        }
        let outcome = match held.check(assertion) {
            Ok(verified) => login::record_key_login(store, account, &held.keys, verified, now)?,
            Err(failure) => login::key_failure(failure),
        };
        log_outcome(log, &outcome, &who(account, uid));
        if held.purpose == KeyPurpose::Login && matches!(outcome, Outcome::Accepted { .. }) {
            crate::remembered::after_success(store, account, context, uid, now, log)?;
        }
        match held.purpose {
            KeyPurpose::Proof => proof(uid, account, outcome, tickets, log, now),
            _ => Ok(Response::Verified(convert(outcome, account))),
        }
    };
    run().unwrap_or_else(|e| unavailable(log, &e))
}

/// A proof of a device, as [`pam_mfa_protocol::Request::Reauth`] gives one, for a touch
/// that counted; the person's message otherwise.
pub(crate) fn proof(
    uid: u32,
    account: &UserName,
    outcome: Outcome,
    tickets: &mut Tickets,
    log: &Log,
    now: UnixTime,
) -> pam_mfa::Result<Response> {
    match outcome {
        Outcome::Accepted { .. } => match tickets.proofs.issue(uid, account.as_str(), (), now) {
            Ok((token, expires_at)) => Ok(Response::Proof(ProofReply {
                proof: SecretBytes::from_slice(&token[..]),
                expires_at,
                code: None,
            })),
            Err(e) => issue_failed(e),
        },
        Outcome::Refused { reason, .. } => {
            log.log(
                Level::Notice,
                &format!("refused a change: no device proved ({})", who(account, uid)),
            );
            let message = match reason {
                login::Refusal::Key(f) => fido2::failure_message(&f, account),
                _ => rules::NEEDED.to_owned(),
            };
            Ok(error(ErrorKind::Denied, message))
        }
        Outcome::Locked { .. } => Ok(error(ErrorKind::Denied, rules::NEEDED)),
    }
}
