//! Proving an existing device before changing devices (issue 5, as the cloud consoles do).
//!
//! Someone who finds a user's terminal unlocked must not be able to add their own phone,
//! or remove the user's, with nothing but the open session. So a non-root caller who has
//! an active code device types a current code from one of them first. The code goes
//! through [`pam_mfa::login::verify`], the very check a login makes: the same window and
//! replay rules, the code is used up, and wrong answers count towards the lock-out. Root
//! acts for users who lost their devices and skips this.

use pam_mfa::clock;
use pam_mfa::login::{self, Outcome};
use pam_mfa::pam::args::ModuleArgs;
use pam_mfa::store::Store;
use pam_mfa::store::devices;

use crate::identity::Target;
use crate::{CliError, prompt};

pub const PROMPT: &str = "To confirm it is you, enter a current code from one of your devices: ";

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
    if !devices::has_active_totp(store.conn(), user)? {
        return Err(CliError::msg(
            "your only devices are security keys, and confirming a change with a touch is \
             not supported yet; ask your administrator to make the change",
        ));
    }
    let Some(code) = prompt::ask_secret(PROMPT)? else {
        return Err(CliError::msg(
            "a current code from one of your devices is needed to change your devices",
        ));
    };
    let policy = pam_mfa::policy::load(store.conn())?;
    let settings = ModuleArgs::default().effective_settings(&policy);
    match login::verify(
        &mut store,
        &target.user,
        code.as_bytes(),
        settings,
        clock::now()?,
    )? {
        Outcome::Accepted { .. } => Ok(()),
        Outcome::Locked { until } => Err(CliError::msg(format!(
            "too many failed attempts: locked until {}",
            clock::format_local(until)
        ))),
        Outcome::Refused { locked_until, .. } => Err(CliError::msg(format!(
            "that is not a current code of any of your devices (or it was already used); \
             nothing was changed{}",
            locked_until.map_or_else(String::new, |t| format!(
                "; locked until {}",
                clock::format_local(t)
            ))
        ))),
    }
}
