//! `mfa`: register and manage the devices pam_mfa asks for at login.
//!
//! Every check (codes, names, limits, the store's safety) lives in the `pam_mfa` library
//! that the PAM module uses too; this binary only parses the command line, talks to the
//! person at the terminal and prints results.

mod admin;
mod audit;
mod codes;
mod doctor;
mod enroll;
mod enroll_fido2;
mod hardening;
mod identity;
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
    if let Some(codes) = cli.command.two_codes()
        && let Err(usage) = codes::source(codes)
    {
        cli::Cli::command()
            .error(clap::error::ErrorKind::WrongNumberOfValues, usage)
            .exit();
    }
    match run(cli) {
        Ok(code) => code,
        Err(CliError(message)) => {
            eprintln!("mfa: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Opens (creating if needed) the store for a change, with every device change through
/// this connection recorded in the audit table as the caller, in the change's own
/// transaction (see `pam_mfa::audit::attach`).
pub fn open_store(target: &identity::Target) -> Result<pam_mfa::store::Store, CliError> {
    let store = pam_mfa::store::Store::open_or_create(&target.db)?;
    pam_mfa::audit::attach(store.conn(), target.caller_uid)?;
    Ok(store)
}

/// Refuses a non-root caller's change when the administrator turned self-service off
/// (the "greyed-out" case), or when their changes within the hour reached the limit
/// (one rule for `mfa` and `mfad`: [`pam_mfa::selfservice::check_allowed`]).
fn check_self_service(target: &identity::Target) -> Result<(), CliError> {
    if target.caller_uid == 0 {
        return Ok(());
    }
    let Some(store) = pam_mfa::store::Store::open_existing(&target.db)? else {
        return Ok(());
    };
    pam_mfa::selfservice::check_allowed(
        &store,
        &target.user,
        target.caller_uid,
        pam_mfa::clock::now()?,
    )?;
    Ok(())
}

fn run(cli: cli::Cli) -> Result<ExitCode, CliError> {
    // Before anything else, above all before the re-authentication prompt, at which `mfa`
    // may wait for minutes with its command line on show.
    if let Some(codes) = cli.command.two_codes() {
        codes::refuse_on_command_line(codes, nix::unistd::getuid().is_root())?;
    }
    // The doctor acts on no one's devices, so it needs no target (and refuses non-root
    // callers itself).
    if let cli::Command::Doctor(args) = &cli.command {
        return doctor::run(cli.db.clone(), cli.user.as_deref(), args);
    }
    let target = identity::resolve(cli.user.as_deref(), cli.db)?;
    if matches!(cli.command, cli::Command::Admin(_)) && target.caller_uid != 0 {
        return Err(CliError::msg(
            "mfa admin is for root only; ask your administrator",
        ));
    }
    // From here on the caller is `target.caller_uid`, whatever getuid() says.
    hardening::become_root_entirely().map_err(CliError::msg)?;
    if matches!(
        cli.command,
        cli::Command::Enroll(_)
            | cli::Command::Rename { .. }
            | cli::Command::Remove { .. }
            | cli::Command::Resync { .. }
            | cli::Command::Recovery(_)
    ) {
        check_self_service(&target)?;
    }
    // Changing devices needs a current code of one of them; finishing a registration
    // does not, as beginning it did.
    if matches!(
        cli.command,
        cli::Command::Enroll(
            cli::Enroll::Totp(_) | cli::Enroll::Fido2(_) | cli::Enroll::Token { .. }
        ) | cli::Command::Rename { .. }
            | cli::Command::Remove { .. }
            | cli::Command::Resync { .. }
            | cli::Command::Recovery(_)
    ) {
        reauth::prove_existing_device(&target)?;
    }
    match cli.command {
        cli::Command::Doctor(_) => Ok(()),
        cli::Command::Admin(cmd) => admin::run(&target, cmd),
        cli::Command::Recovery(cli::Recovery::Generate) => recovery::generate(&target),
        cli::Command::Enroll(cli::Enroll::Totp(args)) => enroll::totp(&target, &args),
        cli::Command::Enroll(cli::Enroll::Fido2(args)) => enroll_fido2::fido2(&target, &args),
        cli::Command::Enroll(cli::Enroll::Token {
            name,
            serial,
            codes,
        }) => {
            let (code1, code2) = codes::obtain(codes, codes::Device::Token)?;
            tokens::enroll(&target, &name, &serial, &code1, &code2)
        }
        cli::Command::Enroll(cli::Enroll::Finish { name, codes }) => {
            let (code1, code2) = codes::obtain(codes, codes::Device::App)?;
            enroll::finish(&target, &name, &code1, &code2)
        }
        cli::Command::List { json } => manage::list(&target, json),
        cli::Command::Rename { name, new_name } => manage::rename(&target, &name, &new_name),
        cli::Command::Remove { name, yes } => manage::remove(&target, &name, yes),
        cli::Command::Resync { name, codes } => {
            let (code1, code2) = codes::obtain(codes, codes::Device::Any)?;
            manage::resync(&target, &name, &code1, &code2)
        }
    }
    .map(|()| ExitCode::SUCCESS)
}
