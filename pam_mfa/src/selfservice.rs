//! The rules of a person's changes to their own devices, one implementation for `mfa`
//! (which opens the store itself today) and `mfad` (which serves `mfa` over its socket).
//!
//! * [`check_allowed`]: the administrator may turn self-service off, and a non-root
//!   caller's changes are rate limited ([`crate::limits::check_changes`]).
//! * [`needs_proof`] and [`prove`]: a user who already has an active device proves one of
//!   them (a current code, or a recovery or bypass code) before adding, removing or
//!   resyncing devices, unless root acts for them (ARCHITECTURE.md). The answer is
//!   checked exactly as at a login: the same window and replay rules, the code is used
//!   up, wrong codes count towards the lock-out, a recovery code is used up and audited.
//! * [`rename`], [`remove`], [`commit_recovery_codes`]: the changes themselves, each one
//!   write transaction.

use crate::clock::UnixTime;
use zeroize::Zeroizing;

use crate::login::{self, Outcome, Refusal};
use crate::names::{DeviceName, UserName};
use crate::store::{Store, devices};
use crate::{Error, Result, clock, fido2, policy, recovery};

/// Refuses a non-root caller's change when the administrator turned self-service off, or
/// when their changes within the hour reached [`crate::limits::MAX_CHANGES`].
pub fn check_allowed(store: &Store, user: &UserName, caller_uid: u32, now: UnixTime) -> Result<()> {
    if caller_uid == 0 {
        return Ok(());
    }
    if policy::load(store.conn())?.self_service == policy::SelfService::Deny {
        return Err(Error::ManagedByAdmin);
    }
    crate::limits::check_changes(store.conn(), user.as_str(), now)
}

/// Whether `caller_uid` must prove an existing device of `user` before a change: not for
/// root, nor for an account without an active device.
pub fn needs_proof(store: &Store, user: &UserName, caller_uid: u32) -> Result<bool> {
    Ok(caller_uid != 0 && devices::has_active(store.conn(), user.as_str())?)
}

/// What confirmed the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proved {
    /// A current code of one of their devices (or a touch of a key).
    Device,
    /// A recovery or bypass code, now used up; `remaining` of its kind are left.
    Code {
        kind: recovery::Kind,
        remaining: u32,
    },
}

/// Why the person was not confirmed: a sentence for the person at the terminal, ending in
/// "nothing was changed" (and the lock-out this failure started, if it did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotProved(pub String);

/// What to say when no answer was given at all.
pub const NEEDED: &str = "a current code from one of your devices is needed to change your \
                          devices (or one of your recovery codes)";

/// Checks a typed `answer` (a current code, or a recovery or bypass code, told apart as
/// the PAM module tells them apart) for `user` and records the outcome, as a login would;
/// `actor_uid` goes into the audit row of a recovery code's use.
pub fn prove(
    store: &mut Store,
    user: &UserName,
    answer: &[u8],
    actor_uid: u32,
    now: UnixTime,
) -> Result<std::result::Result<Proved, NotProved>> {
    if let Some(code) = recovery::normalize(answer) {
        return Ok(
            match login::verify_recovery(store, user, &code, actor_uid, now)? {
                login::RecoveryOutcome::Accepted { kind, remaining } => {
                    Ok(Proved::Code { kind, remaining })
                }
                login::RecoveryOutcome::Refused => Err(refused(
                    "that is not a valid recovery code (or it was already used)",
                    None,
                )),
            },
        );
    }
    let policy = policy::load(store.conn())?;
    let settings =
        crate::settings::Effective::settings(&crate::settings::Overrides::default(), &policy);
    let outcome = login::verify(store, user, answer, settings, now)?;
    Ok(judge(outcome, user))
}

/// The verdict on a code's or a key's [`Outcome`] as a proof.
pub fn judge(outcome: Outcome, user: &UserName) -> std::result::Result<Proved, NotProved> {
    match outcome {
        Outcome::Accepted { .. } => Ok(Proved::Device),
        Outcome::Locked { until } => Err(NotProved(format!(
            "too many failed attempts: locked until {}",
            clock::format_local(until)
        ))),
        Outcome::Refused {
            reason,
            locked_until,
        } => {
            let why = match reason {
                Refusal::Key(failure) => as_clause(&fido2::failure_message(&failure, user)),
                _ => "that is not a current code of any of your devices (or it was already used)"
                    .to_owned(),
            };
            Err(refused(&why, locked_until))
        }
    }
}

/// "WHY; nothing was changed", and the lock-out this failure started, if it did.
fn refused(why: &str, locked_until: Option<UnixTime>) -> NotProved {
    NotProved(format!(
        "{why}; nothing was changed{}",
        locked_until.map_or_else(String::new, |t| format!(
            "; locked until {}",
            clock::format_local(t)
        ))
    ))
}

/// "The key was not touched in time." → "the key was not touched in time", to go before
/// "; nothing was changed".
fn as_clause(sentence: &str) -> String {
    let s = sentence.trim_end_matches('.');
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// Checks an issuer given for an authenticator app's entry.
pub fn check_issuer(issuer: &str) -> Result<String> {
    if issuer.is_empty() || issuer.chars().count() > 64 || issuer.chars().any(char::is_control) {
        return Err(Error::InvalidIssuer);
    }
    Ok(issuer.to_owned())
}

/// The issuer shown in the app when none is given: this host's name.
pub fn default_issuer() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty() && !h.chars().any(char::is_control))
        .unwrap_or_else(|| "pam_mfa".to_owned())
}

/// Renames `user`'s device `old` to `new`, in one write transaction.
pub fn rename(
    store: &mut Store,
    user: &UserName,
    old: &DeviceName,
    new: &DeviceName,
    now: UnixTime,
) -> Result<()> {
    let tx = store.write()?;
    devices::rename(&tx, user.as_str(), old.as_str(), new.as_str(), now)?;
    tx.commit()?;
    Ok(())
}

/// Removes `user`'s device `name`, in one write transaction.
pub fn remove(store: &mut Store, user: &UserName, name: &DeviceName, now: UnixTime) -> Result<()> {
    let tx = store.write()?;
    devices::remove(&tx, user.as_str(), name.as_str(), now)?;
    // A device gone (lost, stolen) ends every login remembered with any of them.
    crate::remembered::forget(&tx, user.as_str())?;
    tx.commit()?;
    Ok(())
}

/// Replaces `user`'s recovery codes with `codes` and records it in the audit trail as
/// `by_uid`, in one write transaction. Called only once the person has the codes written
/// out in full: until then the earlier codes keep working.
pub fn commit_recovery_codes(
    store: &mut Store,
    user: &UserName,
    codes: &[Zeroizing<String>],
    by_uid: u32,
    now: UnixTime,
) -> Result<()> {
    let tx = store.write()?;
    recovery::replace_set(&tx, user.as_str(), codes, now, by_uid)?;
    crate::audit::record(
        &tx,
        now,
        by_uid,
        user.as_str(),
        "recovery-generate",
        None,
        Some(&format!(
            "{} codes; earlier codes no longer work",
            codes.len()
        )),
    )?;
    tx.commit()?;
    Ok(())
}
