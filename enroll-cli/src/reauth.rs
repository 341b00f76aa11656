//! Proving an existing device before changing devices (issue 5, as the cloud consoles do).
//!
//! Someone who finds a user's terminal unlocked must not be able to add their own phone,
//! or remove the user's, with nothing but the open session. So a non-root caller who has
//! an active device types a current code from one of them first (or touches a key). The
//! code goes through [`pam_mfa::login::verify`], the very check a login makes: the same
//! window and replay rules, the code is used up, and wrong answers count towards the
//! lock-out. Root acts for users who lost their devices and skips this.
//!
//! A recovery or bypass code is accepted too, told apart and checked exactly as the PAM
//! module does ([`pam_mfa::recovery::normalize`], [`pam_mfa::login::verify_recovery`]:
//! used up, audited): a person who lost their phone and logged in with a recovery code
//! must be able to register a new phone and remove the lost one (issue 16, finding 7).

use pam_mfa::clock;
use pam_mfa::fido2::{self, ceremony};
use pam_mfa::login::{self, Factors, Outcome};
use pam_mfa::names::UserName;
use pam_mfa::recovery;
use pam_mfa::selfservice::{self, NotProved, Proved};
use pam_mfa::store::Store;

use crate::identity::Target;
use crate::{CliError, prompt};

pub const PROMPT: &str = "To confirm it is you, enter a current code from one of your devices \
                          (or a recovery code): ";
/// The prompt when the user could also touch a security key instead.
pub const PROMPT_OR_KEY: &str = "To confirm it is you, enter a current code from one of your \
                                 devices or a recovery code (or just press Enter to touch \
                                 your security key): ";
/// The prompt when the user's only devices are security keys.
pub const PROMPT_KEY_ONLY: &str = "To confirm it is you, press Enter and touch your security \
                                   key (or enter a recovery code): ";

pub fn prove_existing_device(target: &Target) -> Result<(), CliError> {
    // Root needs no proof, and no store yet (it may be about to create the first one).
    if target.caller_uid == 0 {
        return Ok(());
    }
    let Some(mut store) = Store::open_existing(&target.db)? else {
        return Ok(());
    };
    if !selfservice::needs_proof(&store, &target.user, target.caller_uid)? {
        return Ok(());
    }
    let factors = login::factors(&store, &target.user)?;
    let has_keys = !factors.fido2.is_empty();
    let question = match (factors.has_totp, has_keys) {
        (true, false) => PROMPT,
        (true, true) => PROMPT_OR_KEY,
        (false, _) => PROMPT_KEY_ONLY,
    };
    let proved = match prompt::ask_secret(question)? {
        Some(answer) if answer.trim().is_empty() && has_keys => selfservice::judge(
            touch_a_key(&mut store, &target.user, &factors)?,
            &target.user,
        ),
        // Keys only and no input at all (a script, as before recovery codes were asked
        // for here): the touch.
        None if has_keys && !factors.has_totp => selfservice::judge(
            touch_a_key(&mut store, &target.user, &factors)?,
            &target.user,
        ),
        Some(answer) => selfservice::prove(
            &mut store,
            &target.user,
            answer.as_bytes(),
            target.caller_uid,
            clock::now()?,
        )?,
        None => return Err(CliError::msg(selfservice::NEEDED)),
    };
    match proved {
        Ok(Proved::Device) => Ok(()),
        Ok(Proved::Code { kind, remaining }) => {
            recovery_accepted(target, kind, remaining);
            Ok(())
        }
        Err(NotProved(why)) => Err(CliError::msg(why)),
    }
}

/// A recovery or bypass code confirmed the change: the person is told how many are left,
/// as at a login, and syslog which kind confirmed it (never the code).
fn recovery_accepted(target: &Target, kind: recovery::Kind, remaining: u32) {
    crate::audit::record(
        target,
        &format!(
            "confirmed a change with a {} code ({remaining} left)",
            kind.as_str()
        ),
    );
    let s = if remaining == 1 { "" } else { "s" };
    match kind {
        recovery::Kind::Recovery => {
            eprintln!("Recovery code accepted; you have {remaining} recovery code{s} left.");
        }
        recovery::Kind::Bypass => {
            eprintln!("Temporary code accepted ({remaining} use{s} left).");
        }
    }
}

/// Proves the user with a touch of one of their security keys, plugged into this host.
/// The answer is checked and recorded exactly as at a login (sign count; a lock-out does
/// not stop a key, and a failed one counts nothing).
fn touch_a_key(store: &mut Store, user: &UserName, factors: &Factors) -> Result<Outcome, CliError> {
    let credentials: Vec<_> = factors.fido2.iter().map(|d| d.credential.clone()).collect();
    let answer = ceremony::authenticate(
        fido2::transport().as_ref(),
        &credentials,
        fido2::timeout(fido2::DEFAULT_TIMEOUT_SECS),
        &mut AtTerminal,
    )?;
    let now = clock::now()?;
    Ok(match answer {
        Ok(verified) => login::record_key_login(store, user, &factors.fido2, verified, now)?,
        Err(failure) => login::key_failure(failure),
    })
}

/// The person at the key, at this terminal: the PIN with echo off, the cue on stderr.
struct AtTerminal;

impl ceremony::Person<CliError> for AtTerminal {
    fn pin(&mut self) -> Result<Option<fido2::Pin>, CliError> {
        Ok(prompt::ask_secret("Security key PIN: ")?.filter(|p| !p.is_empty()))
    }

    fn touch_cue(&mut self) {
        eprintln!("Touch your security key now.");
    }
}
