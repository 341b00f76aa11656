//! `mfa admin tokens …` (the inventory of hardware OTP tokens, root only) and
//! `mfa enroll token` (giving one of them to a user).

use std::io::Read;
use std::path::Path;

use pam_mfa::names::DeviceName;
use pam_mfa::store::Store;
use pam_mfa::tokens::pskc::PreSharedKey;
use pam_mfa::tokens::{self, Format, Mode, inventory};
use pam_mfa::{audit, clock, enrollment};
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::{SeedFormat, Tokens};
use crate::identity::Target;
use crate::{CliError, open_store};

/// A pre-shared key file holds 32 hex digits; anything much longer is not one.
const MAX_KEY_FILE_BYTES: u64 = 4096;

pub fn admin(target: &Target, cmd: Tokens) -> Result<(), CliError> {
    match cmd {
        Tokens::Import {
            file,
            format,
            password_file,
            replace,
        } => import(target, &file, format, password_file.as_deref(), replace),
        Tokens::List { json } => list(target, json),
        Tokens::Remove { serial } => remove(target, &serial),
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

fn import(
    target: &Target,
    file: &Path,
    format: Option<SeedFormat>,
    password_file: Option<&Path>,
    replace: bool,
) -> Result<(), CliError> {
    let psk = match password_file {
        Some(path) => {
            let data = read_capped(path, MAX_KEY_FILE_BYTES, "a key file")?;
            let text = std::str::from_utf8(&data).map_err(|_| {
                CliError::msg(format!("{}: the key file is not text", path.display()))
            })?;
            Some(
                PreSharedKey::from_hex(text)
                    .map_err(|e| CliError::msg(format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let data = read_capped(file, tokens::MAX_FILE_BYTES, "the seed file is")?;
    let format = format.map(|f| match f {
        SeedFormat::Pskc => Format::Pskc,
        SeedFormat::Csv => Format::Csv,
    });
    let format = format.unwrap_or_else(|| Format::sniff(&data));
    let seeds = tokens::parse(&data, Some(format), psk.as_ref())
        .map_err(|e| CliError::msg(format!("{}: {e}", file.display())))?;
    drop(data);
    let mut store = open_store(target)?;
    let now = clock::now()?;
    let tx = store.write()?;
    let done = inventory::import(&tx, &seeds, replace, now)?;
    let format_name = match format {
        Format::Pskc => "PSKC",
        Format::Csv => "CSV",
    };
    audit::record(
        &tx,
        now,
        target.caller_uid,
        "*",
        "token-import",
        None,
        Some(&format!(
            "{} added, {} replaced from {} ({format_name})",
            done.added,
            done.replaced,
            file.display()
        )),
    )?;
    tx.commit().map_err(pam_mfa::Error::from)?;
    crate::audit::record(
        target,
        &format!(
            "imported {} hardware tokens ({} replaced) from {:?}",
            done.added + done.replaced,
            done.replaced,
            file.display().to_string()
        ),
    );
    println!(
        "Imported {} token{} from {} ({} new, {} replaced).",
        seeds.len(),
        if seeds.len() == 1 { "" } else { "s" },
        file.display(),
        done.added,
        done.replaced
    );
    Ok(())
}

fn list(target: &Target, json: bool) -> Result<(), CliError> {
    let list = match Store::open_existing(&target.db)? {
        Some(store) => inventory::list(store.conn())?,
        None => Vec::new(),
    };
    if json {
        let items: Vec<_> = list
            .iter()
            .map(|t| {
                json!({
                    "serial": t.serial,
                    "type": t.mode.as_str(),
                    "algorithm": t.algorithm.as_str(),
                    "digits": t.digits,
                    "period": match t.mode {
                        Mode::Totp { period } => Some(period),
                        Mode::Hotp { .. } => None,
                    },
                    "imported": t.imported_at,
                    "user": t.assigned.as_ref().map(|a| &a.user),
                    "device": t.assigned.as_ref().map(|a| &a.device),
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
            let kind = match t.mode {
                Mode::Totp { period } => {
                    format!("totp {} {} digits {period}s", t.algorithm, t.digits)
                }
                Mode::Hotp { .. } => format!("hotp {} {} digits", t.algorithm, t.digits),
            };
            let owner = t.assigned.as_ref().map_or_else(
                || "(unassigned)".to_owned(),
                |a| format!("{} \"{}\"", a.user, a.device),
            );
            [
                t.serial.clone(),
                kind,
                owner,
                clock::format_local(t.imported_at),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::manage::aligned(["SERIAL", "TYPE", "ASSIGNED TO", "IMPORTED"], &rows)
    );
    Ok(())
}

fn remove(target: &Target, serial: &str) -> Result<(), CliError> {
    let mut store = open_store(target)?;
    let now = clock::now()?;
    let tx = store.write()?;
    inventory::remove(&tx, serial)?;
    audit::record(
        &tx,
        now,
        target.caller_uid,
        "*",
        "token-remove",
        None,
        Some(&format!("serial {serial}")),
    )?;
    tx.commit().map_err(pam_mfa::Error::from)?;
    crate::audit::record(target, &format!("removed hardware token {serial:?}"));
    println!("Removed token {serial} from the inventory.");
    Ok(())
}

pub fn enroll(
    target: &Target,
    name: &str,
    serial: &str,
    code1: &str,
    code2: &str,
) -> Result<(), CliError> {
    let name = DeviceName::parse(name)?;
    // Checked before the store is opened (or created), as register_token_as does again.
    tokens::check_serial(serial).map_err(CliError::msg)?;
    let mut store = open_store(target)?;
    // Root, who holds the inventory, is told exactly what is wrong; a user registering a
    // token for themselves gets one answer for all of it, and each try counts toward
    // their lock-out (the rule is the library's, shared with mfad).
    let started = std::time::Instant::now();
    let registered = enrollment::register_token_as(
        &mut store,
        target.caller_uid,
        &target.user,
        &name,
        serial,
        code1.as_bytes(),
        code2.as_bytes(),
        clock::now()?,
    );
    if registered.is_err() && target.caller_uid != 0 {
        enrollment::wait_out_token_refusal(started);
    }
    let mode = registered?;
    crate::audit::record(
        target,
        &format!(
            "registered hardware token {serial:?} as device {:?}",
            name.as_str()
        ),
    );
    println!(
        "Hardware token {serial} ({}) is active for {} as \"{name}\".",
        match mode {
            Mode::Totp { .. } => "time-based",
            Mode::Hotp { .. } => "event-based",
        },
        target.user
    );
    Ok(())
}
