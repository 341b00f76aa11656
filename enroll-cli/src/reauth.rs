//! Proving an existing device before changing devices (as the cloud consoles do).
//!
//! Someone who finds a user's terminal unlocked must not be able to add their own phone,
//! or remove the user's, with nothing but the open session. So a non-root caller who has
//! an active device types a current code from one of them first (or touches a key). The
//! daemon checks it exactly as at a login (the same window and replay rules, the code is
//! used up, wrong answers count towards the lock-out) and answers with a single-use
//! proof that the change request then carries; it refuses a change without one. Root
//! acts for users who lost their devices and skips this.
//!
//! A recovery or bypass code is accepted too: a person who lost
//! their phone and logged in with a recovery code must be able to register a new phone
//! and remove the lost one.

use pam_mfa::login;
use pam_mfa::selfservice::{self, NotProved};
use pam_mfa_protocol::{
    AccountState, CodeKind, ErrorKind, KeyPurpose, ProofReply, Request, Response, SecretBytes,
};

use crate::daemon::{Link, unexpected};
use crate::identity::Target;
use crate::{CliError, keys, prompt};

pub const PROMPT: &str = "To confirm it is you, enter a current code from one of your devices \
                          (or a recovery code): ";
/// The prompt when the user could also touch a security key instead.
pub const PROMPT_OR_KEY: &str = "To confirm it is you, enter a current code from one of your \
                                 devices or a recovery code (or just press Enter to touch \
                                 your security key): ";
/// The prompt when the user's only devices are security keys.
pub const PROMPT_KEY_ONLY: &str = "To confirm it is you, press Enter and touch your security \
                                   key (or enter a recovery code): ";

/// The proof to send with the change, or `None` when none is needed (root, or an account
/// without an active device).
pub fn prove_existing_device(
    link: &mut Link,
    target: &Target,
) -> Result<Option<SecretBytes>, CliError> {
    if target.is_root() {
        return Ok(None);
    }
    may_change(link, target)?;
    let user = target.user.as_str().to_owned();
    let state = match link.ask(Request::BeforePrompt {
        line: None,
        user: user.clone(),
        want_keys: true,
        context: None,
    })? {
        Response::BeforePrompt(b) => b,
        other => return Err(unexpected(&other)),
    };
    if matches!(
        state.state,
        AccountState::NoDevice | AccountState::NoAccount
    ) {
        return Ok(None);
    }
    let has_keys = state.keys > 0;
    let question = match (state.has_code_device, has_keys) {
        (true, false) => PROMPT,
        (true, true) => PROMPT_OR_KEY,
        (false, _) => PROMPT_KEY_ONLY,
    };
    let proof = match prompt::ask_secret(question)? {
        Some(answer) if answer.trim().is_empty() && has_keys => touch_a_key(link, target)?,
        // Keys only and no input at all (a script): the touch.
        None if has_keys && !state.has_code_device => touch_a_key(link, target)?,
        Some(answer) => match link.ask(Request::Reauth {
            user,
            answer: SecretBytes::from_slice(answer.as_bytes()),
        })? {
            Response::Proof(p) => p,
            other => return Err(unexpected(&other)),
        },
        None => return Err(CliError::msg(selfservice::NEEDED)),
    };
    if let Some(used) = proof.code {
        let remaining = used.remaining;
        let s = if remaining == 1 { "" } else { "s" };
        match used.kind {
            CodeKind::Recovery => {
                eprintln!("Recovery code accepted; you have {remaining} recovery code{s} left.");
            }
            _ => {
                eprintln!("Temporary code accepted ({remaining} use{s} left).");
            }
        }
    }
    Ok(Some(proof.proof))
}

/// Refuses before the prompt, as `mfa` always did, a change the daemon would refuse
/// whatever the proof: self-service turned off by the administrator, or too many changes
/// within the hour (the daemon's `MayChange`, which changes and counts nothing).
fn may_change(link: &mut Link, target: &Target) -> Result<(), CliError> {
    match link.exchange(Request::MayChange {
        user: target.user.as_str().to_owned(),
    })? {
        Response::Error(e) if matches!(e.kind, ErrorKind::Denied | ErrorKind::Busy) => {
            Err(CliError::refused(e.kind, e.message))
        }
        _ => Ok(()),
    }
}

/// Proves the user with a touch of one of their security keys, plugged into this host:
/// the daemon issues the challenge and checks the answer, recorded as at a login (sign
/// count; a lock-out does not stop a key). A key that could not answer reaches nobody and
/// counts nothing.
fn touch_a_key(link: &mut Link, target: &Target) -> Result<ProofReply, CliError> {
    let user = target.user.as_str().to_owned();
    let challenge = match link.ask(Request::KeyChallenge {
        user: user.clone(),
        purpose: KeyPurpose::Proof,
    })? {
        Response::KeyChallenge(c) => c,
        other => return Err(unexpected(&other)),
    };
    let transport = pam_mfa::fido2::transport();
    match keys::assert(transport.as_ref(), &challenge)? {
        Ok(assertion) => match link.ask(Request::KeyAnswer {
            user,
            ticket: challenge.ticket,
            assertion,
            context: None,
        })? {
            Response::Proof(p) => Ok(p),
            other => Err(unexpected(&other)),
        },
        Err(failure) => {
            let verdict = selfservice::judge(login::key_failure(failure), &target.user);
            match verdict {
                Err(NotProved(why)) => Err(CliError::msg(why)),
                Ok(_) => Err(CliError::msg(selfservice::NEEDED)),
            }
        }
    }
}
