//! The daemon's command line, in the library so that `gen-docs` (packaging/) writes
//! mfad(8) from the same definition `mfad` parses with.

use std::path::PathBuf;

use clap::Parser;

use crate::DEFAULT_SOCKET;

/// The pam_mfa daemon: serves logins and `mfa` from the device store.
#[derive(Debug, Parser)]
#[command(name = "mfad", version)]
pub struct Args {
    /// The device store.
    #[arg(long, value_name = "PATH", default_value = pam_mfa::store::DEFAULT_PATH)]
    pub db: PathBuf,
    /// The socket to listen on (ignored when systemd passes one).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The fleet configuration: when this file exists, accounts other than its
    /// `local_users` are kept in the fleet's PostgreSQL database (root-owned, mode 0600,
    /// or the daemon does not start).
    #[arg(long, value_name = "PATH", default_value = crate::DEFAULT_CONFIG)]
    pub config: PathBuf,
}
