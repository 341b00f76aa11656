//! `mfa`: register and manage the devices pam_mfa asks for at login.
//!
//! Every check (codes, names, limits, the store's safety) lives in the `pam_mfa` library
//! that the PAM module uses too; this binary only parses the command line, talks to the
//! person at the terminal and prints results.

mod audit;
mod cli;
mod doctor;
mod enroll;
mod enroll_fido2;
mod hardening;
mod identity;
mod manage;
mod private_file;
mod prompt;
mod qr;

use std::process::ExitCode;

use clap::Parser;
use zeroize::Zeroizing;

/// An error for the person at the terminal: one line, no secrets.
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    pub fn msg(m: impl Into<String>) -> Self {
        Self(m.into())
    }
}

impl From<pam_mfa::Error> for CliError {
    fn from(e: pam_mfa::Error) -> Self {
        Self(e.to_string())
    }
}

fn main() -> ExitCode {
    hardening::apply();
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(CliError(message)) => {
            eprintln!("mfa: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> Result<ExitCode, CliError> {
    // The doctor acts on no one's devices, so it needs no target (and refuses non-root
    // callers itself).
    if let cli::Command::Doctor(args) = &cli.command {
        return doctor::run(cli.db.clone(), cli.user.as_deref(), args);
    }
    let target = identity::resolve(cli.user.as_deref(), cli.db)?;
    match cli.command {
        cli::Command::Doctor(_) => Ok(()),
        cli::Command::Enroll(cli::Enroll::Totp(args)) => enroll::totp(&target, &args),
        cli::Command::Enroll(cli::Enroll::Fido2(args)) => enroll_fido2::fido2(&target, &args),
        cli::Command::Enroll(cli::Enroll::Finish { name, code1, code2 }) => {
            let (code1, code2) = (Zeroizing::new(code1), Zeroizing::new(code2));
            enroll::finish(&target, &name, &code1, &code2)
        }
        cli::Command::List { json } => manage::list(&target, json),
        cli::Command::Rename { name, new_name } => manage::rename(&target, &name, &new_name),
        cli::Command::Remove { name, yes } => manage::remove(&target, &name, yes),
        cli::Command::Resync { name, code1, code2 } => {
            let (code1, code2) = (Zeroizing::new(code1), Zeroizing::new(code2));
            manage::resync(&target, &name, &code1, &code2)
        }
    }
    .map(|()| ExitCode::SUCCESS)
}
