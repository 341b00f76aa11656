//! The two consecutive codes of `resync`, `enroll finish` and `enroll token`: asked for at
//! the terminal with echo off, read from standard input with `-`, or, for root's scripts
//! only, taken from the command line.
//!
//! Every user of the host can read every process's command line (`ps`, /proc/PID/cmdline)
//! for as long as it runs, and `mfa` may wait at its re-authentication prompt for minutes
//! So a non-root caller's codes on the command line are refused
//! before anything else happens; root, whose scripts run where nobody else looks, keeps
//! the positional form.

use zeroize::Zeroizing;

use crate::cli::TwoCodes;
use crate::{CliError, prompt};

/// Where the two codes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    Prompt,
    Stdin,
}

/// What the codes are read from the person for: it words the prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// An authenticator app being registered.
    App,
    /// A hardware token being registered.
    Token,
    /// A registered code device (app or token) being resynced.
    Any,
}

impl Device {
    fn prompts(self) -> (&'static str, &'static str) {
        const NEXT: &str = "Enter the next code (wait for it, or press the token's button \
                            again): ";
        match self {
            Self::App => (
                "Enter the code the app shows: ",
                "Wait for the next code and enter it: ",
            ),
            Self::Token => ("Enter the code the token shows: ", NEXT),
            Self::Any => ("Enter the code the device shows: ", NEXT),
        }
    }
}

/// The source the arguments name, or the usage error (exit 2) of a malformed pair.
pub fn source(codes: &TwoCodes) -> Result<Source, &'static str> {
    match (codes.code1.as_deref(), codes.code2.as_deref()) {
        (None, None) => Ok(Source::Prompt),
        (Some("-"), None) => Ok(Source::Stdin),
        (Some(c1), Some(c2)) if c1 != "-" && c2 != "-" => Ok(Source::CommandLine),
        _ => Err(
            "give both codes (root only), none to be asked for them, or - to read them from \
             standard input",
        ),
    }
}

/// Refuses a non-root caller's codes on the command line, with what to do instead.
pub fn refuse_on_command_line(codes: &TwoCodes, caller_is_root: bool) -> Result<(), CliError> {
    if caller_is_root || source(codes) != Ok(Source::CommandLine) {
        return Ok(());
    }
    Err(CliError::msg(
        "codes on the command line can be read by every user of this host (ps, /proc), so \
         these were not used: wait for new ones, then leave them out to be asked for them, \
         or give - to read them from standard input, one per line; nothing was changed",
    ))
}

/// The two codes, from wherever the arguments say (see [`source`]).
pub fn obtain(
    codes: TwoCodes,
    device: Device,
) -> Result<(Zeroizing<String>, Zeroizing<String>), CliError> {
    let from = source(&codes).map_err(CliError::msg)?;
    let TwoCodes { code1, code2 } = codes;
    let (code1, code2) = (
        Zeroizing::new(code1.unwrap_or_default()),
        Zeroizing::new(code2.unwrap_or_default()),
    );
    let (first, second) = match from {
        Source::CommandLine => return Ok((code1, code2)),
        Source::Prompt => {
            let (q1, q2) = device.prompts();
            (prompt::ask_secret(q1)?, prompt::ask_secret(q2)?)
        }
        Source::Stdin => (prompt::read_line()?, prompt::read_line()?),
    };
    match (first, second) {
        (Some(first), Some(second)) => Ok((first, second)),
        _ if from == Source::Stdin => Err(CliError::msg(
            "standard input ended before two codes were read (one per line); nothing was \
             changed",
        )),
        _ => Err(CliError::msg(
            "two consecutive codes are needed; nothing was changed",
        )),
    }
}
