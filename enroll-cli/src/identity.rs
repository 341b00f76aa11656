//! Who is running `mfa`, and whose devices it may touch.
//!
//! The caller is always the real uid, looked up in the password database: never `$USER`,
//! `$LOGNAME` or `SUDO_USER`, which the caller controls. Only root may name another user or
//! another store, so that once `mfa` is setuid root a user can reach nothing but their own
//! devices in the system store.

use std::path::PathBuf;

use nix::unistd::{User, getuid};
use pam_mfa::names::UserName;
use pam_mfa::store::DEFAULT_PATH;

use crate::CliError;

pub struct Target {
    /// The real uid of the caller, for audit lines.
    pub caller_uid: u32,
    /// The account whose devices are being managed.
    pub user: UserName,
    pub db: PathBuf,
}

pub fn resolve(user: Option<&str>, db: Option<PathBuf>) -> Result<Target, CliError> {
    let uid = getuid();
    let is_root = uid.is_root();
    let caller = User::from_uid(uid)
        .map_err(|e| CliError::msg(format!("cannot look up uid {uid}: {e}")))?
        .ok_or_else(|| CliError::msg(format!("uid {uid} has no account name")))?;
    if !is_root && db.is_some() {
        return Err(CliError::msg("--db is for root only"));
    }
    let name = match user {
        Some(u) if u != caller.name && !is_root => {
            return Err(CliError::msg(
                "only root can manage another user's devices (--user)",
            ));
        }
        Some(u) => {
            let account = User::from_name(u)
                .map_err(|e| CliError::msg(format!("cannot look up user {u:?}: {e}")))?
                .ok_or_else(|| CliError::msg(format!("no such user: {u:?}")))?;
            account.name
        }
        None => caller.name,
    };
    let user = UserName::parse(&name)
        .map_err(|_| CliError::msg(format!("user name {name:?} cannot have devices")))?;
    Ok(Target {
        caller_uid: uid.as_raw(),
        user,
        db: db.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
    })
}
