//! `mfa list`, `rename`, `remove` and `resync`.

use pam_mfa::clock;
use pam_mfa::enrollment::{self, Resynced};
use pam_mfa::names::DeviceName;
use pam_mfa::store::Store;
use pam_mfa::store::devices::{self, DeviceInfo};

use crate::identity::Target;
use crate::{CliError, audit, prompt};

pub fn list(target: &Target, json: bool) -> Result<(), CliError> {
    // Listing never creates a store; no store means no devices.
    let list = match Store::open_existing(&target.db)? {
        Some(store) => devices::list(store.conn(), target.user.as_str(), clock::now()?)?,
        None => Vec::new(),
    };
    if json {
        let items: Vec<_> = list
            .iter()
            .map(|d| {
                serde_json::json!({
                    "name": d.name,
                    "kind": d.kind.as_str(),
                    "state": d.state.as_str(),
                    "created": d.created_at,
                    "last_used": d.last_used_at,
                    "expires": d.expires_at,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    if list.is_empty() {
        println!(
            "{} has no devices. Register one with: mfa enroll totp NAME",
            target.user
        );
        return Ok(());
    }
    print!("{}", table(&list));
    Ok(())
}

fn table(list: &[DeviceInfo]) -> String {
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                d.kind.as_str().to_owned(),
                d.state.as_str().to_owned(),
                clock::format_local(d.created_at),
                d.last_used_at
                    .map_or_else(|| "never".to_owned(), clock::format_local),
            ]
        })
        .collect();
    aligned(["NAME", "KIND", "STATE", "CREATED", "LAST USED"], &rows)
}

/// A table with a header, each column as wide as its widest cell.
pub fn aligned<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn rename(target: &Target, name: &str, new_name: &str) -> Result<(), CliError> {
    let old = DeviceName::existing(name)?;
    let new = DeviceName::parse(new_name)?;
    let mut store = crate::open_store(target)?;
    pam_mfa::selfservice::rename(&mut store, &target.user, &old, &new, clock::now()?)?;
    audit::record(
        target,
        &format!("renamed device {:?} to {:?}", old.as_str(), new.as_str()),
    );
    println!("Renamed \"{old}\" to \"{new}\".");
    Ok(())
}

pub fn remove(target: &Target, name: &str, yes: bool) -> Result<(), CliError> {
    let name = DeviceName::existing(name)?;
    let mut store = crate::open_store(target)?;
    let now = clock::now()?;
    if !devices::list(store.conn(), target.user.as_str(), now)?
        .iter()
        .any(|d| d.name == name.as_str())
    {
        return Err(pam_mfa::Error::NoSuchDevice {
            user: target.user.to_string(),
            name: name.to_string(),
        }
        .into());
    }
    if !yes {
        if !prompt::stdin_is_terminal() {
            return Err(CliError::msg(
                "not removing without --yes when standard input is not a terminal",
            ));
        }
        if !prompt::confirm(&format!(
            "Remove device \"{name}\" of {}? It will no longer work for logging in.",
            target.user
        ))? {
            return Err(CliError::msg("nothing removed"));
        }
    }
    pam_mfa::selfservice::remove(&mut store, &target.user, &name, now)?;
    audit::record(target, &format!("removed device {:?}", name.as_str()));
    println!("Removed \"{name}\".");
    Ok(())
}

pub fn resync(target: &Target, name: &str, code1: &str, code2: &str) -> Result<(), CliError> {
    let name = DeviceName::existing(name)?;
    let mut store = crate::open_store(target)?;
    let found = enrollment::resync(
        &mut store,
        &target.user,
        &name,
        code1.as_bytes(),
        code2.as_bytes(),
        clock::now()?,
    )?;
    let (logged, said) = match found {
        Resynced::Clock { drift_secs } => {
            let how = match drift_secs {
                0 => "in step with this host".to_owned(),
                d if d > 0 => format!("{d} seconds ahead of this host"),
                d => format!("{} seconds behind this host", -d),
            };
            (
                format!("drift {drift_secs} s"),
                format!("its clock is {how}"),
            )
        }
        Resynced::Counter { skipped } => (
            format!("{skipped} codes skipped"),
            format!("{skipped} unused codes were skipped"),
        ),
    };
    audit::record(
        target,
        &format!("resynced device {:?} ({logged})", name.as_str()),
    );
    println!("Device \"{name}\" is back in sync; {said}.");
    Ok(())
}
