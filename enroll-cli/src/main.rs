//! `mfa`: register and manage the devices pam_mfa asks for at login.
//!
//! Every check (codes, names, limits, the store's safety) lives in the `pam_mfa` library
//! that the PAM module uses too; this binary only parses the command line, talks to the
//! person at the terminal and prints results.

mod admin;
mod codes;
mod daemon;
mod doctor;
mod enroll;
mod enroll_fido2;
mod fleet;
mod hardening;
mod identity;
mod keys;
mod manage;
mod private_file;
mod prompt;
mod qr;
mod reauth;
mod recovery;
mod tokens;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use enroll_cli::cli;
use pam_mfa_protocol::ErrorKind;

/// An error for the person at the terminal: one line, no secrets; with the kind of the
/// daemon's refusal when the daemon refused.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub kind: Option<ErrorKind>,
}

impl CliError {
    pub fn msg(m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            kind: None,
        }
    }

    /// The daemon's refusal, in its words (the library's, as `mfa` always printed them).
    pub fn refused(kind: ErrorKind, m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            kind: Some(kind),
        }
    }
}

impl From<pam_mfa::Error> for CliError {
    fn from(e: pam_mfa::Error) -> Self {
        Self::msg(e.to_string())
    }
}

fn main() -> ExitCode {
    hardening::apply();
    let cli = cli::Cli::parse();
    if let Some(codes) = cli.command.two_codes()
        && let Err(usage) = codes::source(codes)
    {
        cli::Cli::command()
            .error(clap::error::ErrorKind::WrongNumberOfValues, usage)
            .exit();
    }
    // `--db` is the daemon's handlers without the daemon, so there is no socket to name;
    // the doctor alone takes both (the store to check, and the daemon to ask).
    if cli.db.is_some() && cli.socket.is_some() && !matches!(cli.command, cli::Command::Doctor(_)) {
        cli::Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--socket and --db cannot be used together: with --db, mfa works without \
                 the daemon",
            )
            .exit();
    }
    match run(cli) {
        Ok(code) => code,
        Err(CliError { message, .. }) => {
            eprintln!("mfa: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> Result<ExitCode, CliError> {
    // Before anything else, above all before the re-authentication prompt, at which `mfa`
    // may wait for minutes with its command line on show.
    let is_root = nix::unistd::getuid().is_root();
    if let Some(codes) = cli.command.two_codes() {
        codes::refuse_on_command_line(codes, is_root)?;
    }
    // The doctor acts on no one's devices, so it needs no target (and refuses non-root
    // callers itself); it reads the store and the configuration files itself.
    if let cli::Command::Doctor(args) = &cli.command {
        return doctor::run(
            cli.db.clone(),
            cli.socket.clone(),
            cli.user.as_deref(),
            args,
        );
    }
    // The fleet's administration talks to PostgreSQL itself: no daemon, no store.
    if let cli::Command::Admin(cli::Admin::Fleet(cmd)) = cli.command {
        if !is_root || cli.user.is_some() || cli.db.is_some() || cli.socket.is_some() {
            return Err(CliError::msg(
                "mfa admin fleet is for root only, and takes none of --user, --db, --socket",
            ));
        }
        return fleet::run(cmd).map(|()| ExitCode::SUCCESS);
    }
    let mut link = daemon::Link::open(cli.socket.as_deref(), cli.db.as_deref(), is_root)?;
    let target = identity::resolve(cli.user.as_deref())?;
    if matches!(cli.command, cli::Command::Admin(_)) && !target.is_root() {
        return Err(CliError::msg(
            "mfa admin is for root only; ask your administrator",
        ));
    }
    // Names are checked before the proof is asked for, so that a typo costs no code.
    check_names(&cli.command)?;
    let proof = if cli.command.needs_proof() {
        reauth::prove_existing_device(&mut link, &target)?
    } else {
        None
    };
    let link = &mut link;
    match cli.command {
        cli::Command::Doctor(_) => Ok(()),
        cli::Command::Admin(cmd) => admin::run(link, cmd),
        cli::Command::Recovery(cli::Recovery::Generate) => recovery::generate(link, &target, proof),
        cli::Command::Enroll(cli::Enroll::Totp(args)) => enroll::totp(link, &target, &args, proof),
        cli::Command::Enroll(cli::Enroll::Fido2(args)) => {
            enroll_fido2::fido2(link, &target, &args, proof)
        }
        cli::Command::Enroll(cli::Enroll::Token {
            name,
            serial,
            codes,
        }) => {
            let (code1, code2) = codes::obtain(codes, codes::Device::Token)?;
            tokens::enroll(link, &target, &name, &serial, &code1, &code2, proof)
        }
        cli::Command::Enroll(cli::Enroll::Finish { name, codes }) => {
            let (code1, code2) = codes::obtain(codes, codes::Device::App)?;
            enroll::finish(link, &target, &name, &code1, &code2)
        }
        cli::Command::List { json } => manage::list(link, &target, json),
        cli::Command::Forget => manage::forget(link, &target),
        cli::Command::Rename { name, new_name } => {
            manage::rename(link, &target, &name, &new_name, proof)
        }
        cli::Command::Remove { name, yes } => manage::remove(link, &target, &name, yes, proof),
        cli::Command::Resync { name, codes } => {
            let (code1, code2) = codes::obtain(codes, codes::Device::Any)?;
            manage::resync(link, &target, &name, &code1, &code2, proof)
        }
    }
    .map(|()| ExitCode::SUCCESS)
}

/// The device names a command gives, checked as the daemon checks them.
fn check_names(command: &cli::Command) -> Result<(), CliError> {
    use pam_mfa::names::DeviceName;
    match command {
        cli::Command::Enroll(cli::Enroll::Totp(cli::EnrollTotp { name, .. }))
        | cli::Command::Enroll(cli::Enroll::Fido2(cli::EnrollFido2 { name, .. }))
        | cli::Command::Enroll(cli::Enroll::Token { name, .. })
        | cli::Command::Enroll(cli::Enroll::Finish { name, .. }) => {
            DeviceName::parse(name)?;
        }
        cli::Command::Rename { name, new_name } => {
            DeviceName::existing(name)?;
            DeviceName::parse(new_name)?;
        }
        cli::Command::Remove { name, .. } | cli::Command::Resync { name, .. } => {
            DeviceName::existing(name)?;
        }
        _ => {}
    }
    if let cli::Command::Enroll(cli::Enroll::Token { serial, .. }) = command {
        pam_mfa::tokens::check_serial(serial).map_err(CliError::msg)?;
    }
    Ok(())
}
