//! Who is running `mfa`, and whose devices it may touch.
//!
//! The caller is always the real uid, looked up in the password database: never `$USER`,
//! `$LOGNAME` or `SUDO_USER`, which the caller controls. Only root may name another user or
//! another store, so that once `mfa` is setuid root a user can reach nothing but their own
//! devices in the system store.

use std::path::PathBuf;

use nix::unistd::{User, getgid, getuid};
use pam_mfa::names::{self, UserName};
use pam_mfa::store::DEFAULT_PATH;

use crate::CliError;

pub struct Target {
    /// The real uid of the caller, for audit lines and for writing files as them.
    pub caller_uid: u32,
    /// The real gid of the caller, for writing files as them.
    pub caller_gid: u32,
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
        return Err(CliError::msg(
            "--db is for root only; mfa always uses the system device store for you",
        ));
    }
    if !is_root && user.is_some() {
        return Err(CliError::msg(
            "--user is for root only; without it mfa manages your own devices",
        ));
    }
    let user = match user {
        Some(u) => {
            let given =
                UserName::parse(u).map_err(|_| CliError::msg(format!("no such user: {u:?}")))?;
            // Devices are keyed by the account's canonical name, exactly as the module
            // looks them up, so `--user toor` and `--user root` mean the same account.
            names::canonical_account(&given)?
                .ok_or_else(|| CliError::msg(format!("no such user: {u:?}")))?
        }
        None => UserName::parse(&caller.name).map_err(|_| {
            CliError::msg(format!("user name {:?} cannot have devices", caller.name))
        })?,
    };
    Ok(Target {
        caller_uid: uid.as_raw(),
        caller_gid: getgid().as_raw(),
        user,
        db: db.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
    })
}
