//! `mfa enroll`: registering an authenticator app, interactively or in two scripted steps.

use std::io::{IsTerminal, Write};
use std::path::Path;

use pam_mfa::clock;
use pam_mfa::secret::Secret;
use pam_mfa_protocol::{PendingTotpReply, Request, Response, SecretBytes};
use zeroize::Zeroizing;

use crate::cli::EnrollTotp;
use crate::daemon::{Link, unexpected};
use crate::identity::Target;
use crate::{CliError, private_file, prompt, qr};

/// How many times an interactive registration lets a person retype the two codes.
const INTERACTIVE_ATTEMPTS: usize = 3;

/// A pending registration as the daemon sent it, in the forms this file prints.
struct Pending {
    user: String,
    name: String,
    /// The label's issuer and account, as the URI (and so the app) has them.
    issuer: String,
    account: String,
    secret: Secret,
    uri: Zeroizing<String>,
    algorithm: String,
    digits: u8,
    period: u32,
    expires_at: i64,
}

impl Pending {
    fn from_reply(p: PendingTotpReply) -> Result<Self, CliError> {
        let garbled = || CliError::msg("mfad sent a registration that is not readable");
        let secret = std::str::from_utf8(p.secret.as_bytes())
            .map_err(|_| garbled())
            .and_then(|s| Secret::from_base32(s).map_err(|_| garbled()))?;
        let uri = Zeroizing::new(
            std::str::from_utf8(p.uri.as_bytes())
                .map_err(|_| garbled())?
                .to_owned(),
        );
        let label = pam_mfa::otpauth::parse_totp_uri(&uri).map_err(|_| garbled())?;
        Ok(Self {
            user: p.user,
            name: p.name,
            issuer: label.issuer.unwrap_or(p.issuer),
            account: label.account,
            secret,
            uri,
            algorithm: p.algorithm,
            digits: p.digits,
            period: p.period,
            expires_at: p.expires_at,
        })
    }
}

pub fn totp(
    link: &mut Link,
    target: &Target,
    args: &EnrollTotp,
    proof: Option<SecretBytes>,
) -> Result<(), CliError> {
    if let Some(i) = &args.issuer {
        pam_mfa::selfservice::check_issuer(i)?;
    }
    let pending = match link.ask(Request::BeginTotp {
        user: target.user.as_str().to_owned(),
        name: args.name.clone(),
        issuer: args.issuer.clone(),
        proof,
    })? {
        Response::PendingTotp(p) => Pending::from_reply(p)?,
        other => return Err(unexpected(&other)),
    };

    write_qr_files(&pending, args)?;
    if args.begin {
        return print_begin(&pending, &finish_command(link, target, &pending), args.json);
    }

    let mut out = std::io::stdout().lock();
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let qr = Zeroizing::new(qr::terminal(&pending.uri, color).map_err(qr_error)?);
    // Everything that holds the secret is built in one buffer sized up front, so no
    // reallocation leaves an unwiped copy behind.
    let mut text = Zeroizing::new(String::with_capacity(qr.len() + 1024));
    text.push_str(&format!(
        "Registering authenticator app \"{}\" for {}.\n\
         Scan this QR code with your authenticator app:\n\n",
        pending.name, pending.user
    ));
    text.push_str(&qr);
    text.push('\n');
    if args.show_secret {
        text.push_str("Secret key (for manual entry): ");
        text.push_str(&pending.secret.to_base32_grouped());
        text.push_str(&format!(
            "\nType: time-based, {}, {} digits, every {} seconds\n\n",
            pending.algorithm, pending.digits, pending.period
        ));
    } else {
        text.push_str(
            "Cannot scan it? Run again with --show-secret to type the key in instead.\n\n",
        );
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::msg(format!("cannot write to standard output: {e}")))?;
    drop(out);

    let attempts = if prompt::stdin_is_terminal() {
        INTERACTIVE_ATTEMPTS
    } else {
        1
    };
    // At the end of input the prompt's line is ended first, so the message stands on a
    // line of its own, and nothing more is asked.
    let finish = finish_command(link, target, &pending);
    let unfinished = || {
        eprintln!();
        CliError::msg(format!(
            "registration not finished; within 10 minutes run `{finish}` (it asks for two \
             consecutive codes), or start again"
        ))
    };
    for attempt in 1..=attempts {
        let Some(first) = prompt::ask("Enter the code the app shows: ")? else {
            return Err(unfinished());
        };
        let Some(second) = prompt::ask("Wait for the next code and enter it: ")? else {
            return Err(unfinished());
        };
        match finish_request(link, &pending.user, &pending.name, &first, &second) {
            Ok(()) => {
                println!(
                    "Device \"{}\" is active for {}.",
                    pending.name, pending.user
                );
                return Ok(());
            }
            Err(e) if attempt < attempts && is_retryable(&e) => {
                eprintln!("mfa: {}", e.message);
            }
            Err(e) => return Err(e),
        }
    }
    Err(unfinished())
}

/// Whether the daemon refused the codes themselves (mistyped, not consecutive, a skewed
/// clock), which the person may retype, rather than the registration.
fn is_retryable(e: &CliError) -> bool {
    use pam_mfa::Error as E;
    if e.kind.is_none() {
        return false;
    }
    let m = e.message.as_str();
    [E::FirstCodeWrong, E::SecondCodeWrong, E::NotConsecutive]
        .iter()
        .any(|known| m == known.to_string())
        || m.starts_with("first code: ")
        || m.starts_with("second code: ")
        || m.starts_with("the codes belong to a time about ")
}

fn finish_request(
    link: &mut Link,
    user: &str,
    name: &str,
    code1: &str,
    code2: &str,
) -> Result<(), CliError> {
    match link.ask(Request::FinishTotp {
        user: user.to_owned(),
        name: name.to_owned(),
        code1: SecretBytes::from_slice(code1.as_bytes()),
        code2: SecretBytes::from_slice(code2.as_bytes()),
    })? {
        Response::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

pub fn finish(
    link: &mut Link,
    target: &Target,
    name: &str,
    code1: &str,
    code2: &str,
) -> Result<(), CliError> {
    let name = pam_mfa::names::DeviceName::parse(name)?;
    finish_request(link, target.user.as_str(), name.as_str(), code1, code2)?;
    println!("Device \"{}\" is active for {}.", name, target.user);
    Ok(())
}

/// What `--begin --json` prints; borrowed fields, so serialising makes no extra copies of
/// the secret beyond the zeroized output buffer.
#[derive(serde::Serialize)]
struct BeginJson<'a> {
    user: &'a str,
    name: &'a str,
    issuer: &'a str,
    account: &'a str,
    secret: &'a str,
    uri: &'a str,
    algorithm: &'a str,
    digits: u8,
    period: u32,
    expires_at: i64,
}

/// The command that finishes `pending`, as whoever began it types it: on the same
/// daemon or store (`link`), and root names the user whose registration it is.
fn finish_command(link: &Link, target: &Target, pending: &Pending) -> String {
    let for_user = if target.is_root() && target.user.as_str() != "root" {
        format!("--user {} ", shell_word(&pending.user))
    } else {
        String::new()
    };
    format!(
        "mfa {}{for_user}enroll finish {}",
        link.options(),
        shell_word(&pending.name)
    )
}

/// Prints a registration begun with `--begin`; `finish` is the command that activates it.
fn print_begin(p: &Pending, finish: &str, json: bool) -> Result<(), CliError> {
    let secret = p.secret.to_base32();
    let mut text = Zeroizing::new(Vec::with_capacity(1024));
    if json {
        let value = BeginJson {
            user: &p.user,
            name: &p.name,
            issuer: &p.issuer,
            account: &p.account,
            secret: &secret,
            uri: &p.uri,
            algorithm: &p.algorithm,
            digits: p.digits,
            period: p.period,
            expires_at: p.expires_at,
        };
        serde_json::to_writer(&mut *text, &value)
            .map_err(|e| CliError::msg(format!("cannot encode JSON: {e}")))?;
        text.push(b'\n');
    } else {
        text.extend_from_slice(
            format!(
                "Pending device \"{}\" for {} (expires {}).\nSecret key: ",
                p.name,
                p.user,
                clock::format_local(p.expires_at)
            )
            .as_bytes(),
        );
        text.extend_from_slice(p.secret.to_base32_grouped().as_bytes());
        text.extend_from_slice(b"\nURI: ");
        text.extend_from_slice(p.uri.as_bytes());
        text.extend_from_slice(format!("\nActivate it with: {finish}\n").as_bytes());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&text)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::msg(format!("cannot write to standard output: {e}")))
}

fn write_qr_files(p: &Pending, args: &EnrollTotp) -> Result<(), CliError> {
    if let Some(path) = &args.qr_png {
        let png = Zeroizing::new(qr::png(&p.uri).map_err(qr_error)?);
        write_file(path, &png, args.force)?;
    }
    if let Some(path) = &args.qr_svg {
        let svg = Zeroizing::new(qr::svg(&p.uri).map_err(qr_error)?);
        write_file(path, svg.as_bytes(), args.force)?;
    }
    Ok(())
}

/// Writes a QR image as this process, which is the caller's own: the file is theirs, and
/// a path they cannot write to fails as it would for them.
fn write_file(path: &Path, bytes: &[u8], force: bool) -> Result<(), CliError> {
    private_file::check_ancestors(path, nix::unistd::getuid().as_raw())
        .and_then(|()| private_file::write_private(path, bytes, force))
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                " (it exists; use --force to overwrite)"
            } else if e.raw_os_error() == Some(libc::ELOOP) {
                " (it is a symbolic link)"
            } else {
                ""
            };
            CliError::msg(format!("cannot write {}: {e}{hint}", path.display()))
        })
}

fn qr_error(e: qr::QrError) -> CliError {
    CliError::msg(e.to_string())
}

/// Quotes a device name for a command line the person can paste.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,+@%/:".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
