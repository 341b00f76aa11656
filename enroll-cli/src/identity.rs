//! Who is running `mfa`, and whose devices it asks the daemon about.
//!
//! The caller is the real uid, looked up in the password database: never `$USER`,
//! `$LOGNAME` or `SUDO_USER`, which the caller controls. The daemon decides again from
//! the connection's peer credentials whatever this process claims; what is checked here
//! only gives the person the same clear refusals as before, without a round trip.

use nix::unistd::{User, getuid};
use pam_mfa::names::{self, UserName};

use crate::CliError;

pub struct Target {
    /// The real uid of the caller.
    pub caller_uid: u32,
    /// The account whose devices are being managed (canonical, as the daemon keys them).
    pub user: UserName,
}

impl Target {
    pub fn is_root(&self) -> bool {
        self.caller_uid == 0
    }
}

pub fn resolve(user: Option<&str>) -> Result<Target, CliError> {
    let uid = getuid();
    if !uid.is_root() && user.is_some() {
        return Err(CliError::msg(
            "--user is for root only; without it mfa manages your own devices",
        ));
    }
    let user = match user {
        Some(u) => account(u)?,
        None => {
            let caller = User::from_uid(uid)
                .map_err(|e| CliError::msg(format!("cannot look up uid {uid}: {e}")))?
                .ok_or_else(|| CliError::msg(format!("uid {uid} has no account name")))?;
            UserName::parse(&caller.name).map_err(|_| {
                CliError::msg(format!("user name {:?} cannot have devices", caller.name))
            })?
        }
    };
    Ok(Target {
        caller_uid: uid.as_raw(),
        user,
    })
}

/// The canonical account `user` names (so `--user toor` and `--user root` mean the same
/// account, as the daemon resolves it), or "no such user".
pub fn account(user: &str) -> Result<UserName, CliError> {
    let given =
        UserName::parse(user).map_err(|_| CliError::msg(format!("no such user: {user:?}")))?;
    names::canonical_account(&given)?
        .ok_or_else(|| CliError::msg(format!("no such user: {user:?}")))
}
