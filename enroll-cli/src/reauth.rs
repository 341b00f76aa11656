//! Proving an existing device before changing devices (issue 5, as the cloud consoles do).
//!
//! Someone who finds a user's terminal unlocked must not be able to add their own phone,
//! or remove the user's, with nothing but the open session. So a non-root caller who has
//! an active code device types a current code from one of them first. The code goes
//! through [`pam_mfa::login::verify`], the very check a login makes: the same window and
//! replay rules, the code is used up, and wrong answers count towards the lock-out. Root
//! acts for users who lost their devices and skips this.

use pam_mfa::clock;
use pam_mfa::fido2::{self, ceremony};
use pam_mfa::login::{self, Factors, Outcome};
use pam_mfa::names::UserName;
use pam_mfa::pam::args::ModuleArgs;
use pam_mfa::store::Store;
use pam_mfa::store::devices;

use crate::identity::Target;
use crate::{CliError, prompt};

pub const PROMPT: &str = "To confirm it is you, enter a current code from one of your devices: ";
/// The prompt when the user could also touch a security key instead.
pub const PROMPT_OR_KEY: &str = "To confirm it is you, enter a current code from one of your \
                                 devices (or just press Enter to touch your security key): ";

pub fn prove_existing_device(target: &Target) -> Result<(), CliError> {
    if target.caller_uid == 0 {
        return Ok(());
    }
    let Some(mut store) = Store::open_existing(&target.db)? else {
        return Ok(());
    };
    let user = target.user.as_str();
    if !devices::has_active(store.conn(), user)? {
        return Ok(());
    }
    let factors = login::factors(&store, &target.user)?;
    let policy = pam_mfa::policy::load(store.conn())?;
    let settings = ModuleArgs::default().effective_settings(&policy);
    let outcome = if factors.has_totp {
        let question = if factors.fido2.is_empty() {
            PROMPT
        } else {
            PROMPT_OR_KEY
        };
        match prompt::ask_secret(question)? {
            Some(code) if code.trim().is_empty() && !factors.fido2.is_empty() => {
                touch_a_key(&mut store, &target.user, &factors)?
            }
            Some(code) => login::verify(
                &mut store,
                &target.user,
                code.as_bytes(),
                settings,
                clock::now()?,
            )?,
            None => {
                return Err(CliError::msg(
                    "a current code from one of your devices is needed to change your devices",
                ));
            }
        }
    } else {
        touch_a_key(&mut store, &target.user, &factors)?
    };
    match outcome {
        Outcome::Accepted { .. } => Ok(()),
        Outcome::Locked { until } => Err(CliError::msg(format!(
            "too many failed attempts: locked until {}",
            clock::format_local(until)
        ))),
        Outcome::Refused {
            reason,
            locked_until,
        } => {
            let why = match reason {
                login::Refusal::Key(failure) => {
                    as_clause(&fido2::failure_message(&failure, &target.user))
                }
                _ => "that is not a current code of any of your devices (or it was already used)"
                    .to_owned(),
            };
            Err(CliError::msg(format!(
                "{why}; nothing was changed{}",
                locked_until.map_or_else(String::new, |t| format!(
                    "; locked until {}",
                    clock::format_local(t)
                ))
            )))
        }
    }
}

/// Proves the user with a touch of one of their security keys, plugged into this host.
/// The answer is checked and recorded exactly as at a login (sign count, failure count).
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

/// "The key was not touched in time." → "the key was not touched in time", to go before
/// "; nothing was changed" in `mfa`'s one-line error.
fn as_clause(sentence: &str) -> String {
    let s = sentence.trim_end_matches('.');
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}
