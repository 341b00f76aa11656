//! `mfa admin tokens …` (the inventory of hardware OTP tokens, root only) and
//! `mfa enroll token` (giving one of them to a user).

use std::io::Read;
use std::path::Path;

use pam_mfa::clock;
use pam_mfa::tokens::pskc::PreSharedKey;
use pam_mfa::tokens::{self, Format};
use pam_mfa_protocol::{Request, Response, SecretBytes};
use serde_json::json;
use zeroize::Zeroizing;

use crate::CliError;
use crate::cli::{SeedFormat, Tokens};
use crate::daemon::{Link, unexpected};
use crate::identity::Target;

/// A pre-shared key file holds 32 hex digits; anything much longer is not one.
const MAX_KEY_FILE_BYTES: u64 = 4096;

pub fn admin(link: &mut Link, cmd: Tokens) -> Result<(), CliError> {
    match cmd {
        Tokens::Import {
            file,
            format,
            password_file,
            replace,
        } => import(link, &file, format, password_file.as_deref(), replace),
        Tokens::List { json } => list(link, json),
        Tokens::Remove { serial } => remove(link, &serial),
    }
}

/// Reads at most `limit` bytes of `path`, refusing a longer file without reading the rest
/// (its size as stat reports it is not trusted: a pipe or /proc file has none).
fn read_capped(path: &Path, limit: u64, what: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let cannot = |e: std::io::Error| CliError::msg(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut data = Zeroizing::new(Vec::new());
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(cannot)?;
    if data.len() as u64 > limit {
        return Err(CliError::msg(format!(
            "{}: {what} larger than {limit} bytes; nothing was imported",
            path.display()
        )));
    }
    Ok(data)
}

/// The files are read by this process (root's, as `mfa admin` is root's only); the seeds
/// are parsed here too, so that a bad file is reported against its name before anything
/// is sent, and then parsed and stored by the daemon, all or nothing.
fn import(
    link: &mut Link,
    file: &Path,
    format: Option<SeedFormat>,
    password_file: Option<&Path>,
    replace: bool,
) -> Result<(), CliError> {
    let (psk, key_text) = match password_file {
        Some(path) => {
            let data = read_capped(path, MAX_KEY_FILE_BYTES, "a key file")?;
            let text = std::str::from_utf8(&data).map_err(|_| {
                CliError::msg(format!("{}: the key file is not text", path.display()))
            })?;
            let psk = PreSharedKey::from_hex(text)
                .map_err(|e| CliError::msg(format!("{}: {e}", path.display())))?;
            (
                Some(psk),
                Some(SecretBytes::from_slice(text.trim().as_bytes())),
            )
        }
        None => (None, None),
    };
    let data = read_capped(file, tokens::MAX_FILE_BYTES, "the seed file is")?;
    let format = format.map(|f| match f {
        SeedFormat::Pskc => Format::Pskc,
        SeedFormat::Csv => Format::Csv,
    });
    let format = format.unwrap_or_else(|| Format::sniff(&data));
    let seeds = tokens::parse(&data, Some(format), psk.as_ref())
        .map_err(|e| CliError::msg(format!("{}: {e}", file.display())))?;
    let count = seeds.len();
    drop(seeds);
    let done = match link.ask(Request::TokensImport {
        data: SecretBytes::from_slice(&data),
        format: Some(
            match format {
                Format::Pskc => "pskc",
                Format::Csv => "csv",
            }
            .to_owned(),
        ),
        key: key_text,
        replace,
    })? {
        Response::TokensImported(done) => done,
        other => return Err(unexpected(&other)),
    };
    println!(
        "Imported {count} token{} from {} ({} new, {} replaced).",
        if count == 1 { "" } else { "s" },
        file.display(),
        done.added,
        done.replaced
    );
    Ok(())
}

fn list(link: &mut Link, json: bool) -> Result<(), CliError> {
    let list = match link.ask(Request::TokensList)? {
        Response::Tokens(list) => list,
        other => return Err(unexpected(&other)),
    };
    if json {
        let items: Vec<_> = list
            .iter()
            .map(|t| {
                json!({
                    "serial": t.serial,
                    "type": t.kind,
                    "digits": t.digits,
                    "imported": t.imported,
                    "user": t.assigned_to,
                    "device": t.device,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    if list.is_empty() {
        println!("No tokens. Load a vendor's seed file with: mfa admin tokens import FILE");
        return Ok(());
    }
    let rows: Vec<[String; 4]> = list
        .iter()
        .map(|t| {
            let owner = match (&t.assigned_to, &t.device) {
                (Some(user), Some(device)) => format!("{user} \"{device}\""),
                (Some(user), None) => user.clone(),
                _ => "(unassigned)".to_owned(),
            };
            [
                t.serial.clone(),
                format!("{} {} digits", t.kind, t.digits),
                owner,
                clock::format_local(t.imported),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::manage::aligned(["SERIAL", "TYPE", "ASSIGNED TO", "IMPORTED"], &rows)
    );
    Ok(())
}

fn remove(link: &mut Link, serial: &str) -> Result<(), CliError> {
    match link.ask(Request::TokensRemove {
        serial: serial.to_owned(),
    })? {
        Response::Done => {}
        other => return Err(unexpected(&other)),
    }
    println!("Removed token {serial} from the inventory.");
    Ok(())
}

/// Registers a hardware token from the inventory. The daemon tells root exactly what is
/// wrong; a user registering a token for themselves gets one answer for all of it, after
/// a fixed time (the daemon waits it out), and each try counts toward their lock-out (the library's rule).
pub fn enroll(
    link: &mut Link,
    target: &Target,
    name: &str,
    serial: &str,
    code1: &str,
    code2: &str,
    proof: Option<SecretBytes>,
) -> Result<(), CliError> {
    let name = pam_mfa::names::DeviceName::parse(name)?;
    let reply = match link.ask(Request::EnrollToken {
        user: target.user.as_str().to_owned(),
        name: name.as_str().to_owned(),
        serial: serial.to_owned(),
        code1: SecretBytes::from_slice(code1.as_bytes()),
        code2: SecretBytes::from_slice(code2.as_bytes()),
        proof,
    })? {
        Response::TokenRegistered(reply) => reply,
        other => return Err(unexpected(&other)),
    };
    println!(
        "Hardware token {serial} ({}) is active for {} as \"{name}\".",
        if reply.event_based {
            "event-based"
        } else {
            "time-based"
        },
        reply.user
    );
    Ok(())
}
