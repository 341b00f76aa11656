//! `mfa list`, `rename`, `remove`, `resync` and `forget`.

use pam_mfa::clock;
use pam_mfa_protocol::{DeviceEntry, RememberedEntry, Request, Response, ResyncReply, SecretBytes};

use crate::daemon::{Link, unexpected};
use crate::identity::Target;
use crate::{CliError, prompt};

/// The account's devices, as the daemon lists them (no store means no devices).
pub fn devices(link: &mut Link, target: &Target) -> Result<Vec<DeviceEntry>, CliError> {
    match link.ask(Request::ListDevices {
        user: target.user.as_str().to_owned(),
    })? {
        Response::Devices(list) => Ok(list),
        other => Err(unexpected(&other)),
    }
}

/// The account's logins remembered without a code.
pub fn remembered(link: &mut Link, target: &Target) -> Result<Vec<RememberedEntry>, CliError> {
    match link.ask(Request::ListRemembered {
        user: target.user.as_str().to_owned(),
    })? {
        Response::Remembered(list) => Ok(list),
        other => Err(unexpected(&other)),
    }
}

/// The remembered logins as a table, under a line saying what they are; empty when there
/// are none.
pub fn remembered_table(list: &[RememberedEntry]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let rows: Vec<[String; 3]> = list
        .iter()
        .map(|r| {
            [
                r.service.clone(),
                if r.rhost.is_empty() {
                    "(this host)".to_owned()
                } else {
                    pam_mfa_protocol::escape_for_log(r.rhost.as_bytes())
                },
                clock::format_local(r.until),
            ]
        })
        .collect();
    format!(
        "Remembered logins (no code is asked there until they end; `mfa forget` ends them):\n{}",
        aligned(["SERVICE", "FROM", "UNTIL"], &rows)
    )
}

/// `mfa forget`: every remembered login of the account ends now.
pub fn forget(link: &mut Link, target: &Target) -> Result<(), CliError> {
    match link.ask(Request::Forget {
        user: target.user.as_str().to_owned(),
    })? {
        Response::Forgotten { removed } => {
            println!(
                "Forgot {removed} remembered login{} of {}: the next login asks for a code \
                 again.",
                if removed == 1 { "" } else { "s" },
                target.user
            );
            Ok(())
        }
        other => Err(unexpected(&other)),
    }
}

pub fn list(link: &mut Link, target: &Target, json: bool) -> Result<(), CliError> {
    let list = devices(link, target)?;
    if json {
        let items: Vec<_> = list
            .iter()
            .map(|d| {
                serde_json::json!({
                    "name": d.name,
                    "kind": d.kind,
                    "state": d.state,
                    "created": d.created,
                    "last_used": d.last_used,
                    "expires": d.expires,
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
    let remembered = remembered(link, target)?;
    if !remembered.is_empty() {
        print!("\n{}", remembered_table(&remembered));
    }
    Ok(())
}

fn table(list: &[DeviceEntry]) -> String {
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                d.kind.clone(),
                d.state.clone(),
                clock::format_local(d.created),
                d.last_used
                    .map_or_else(|| "never".to_owned(), clock::format_local),
            ]
        })
        .collect();
    aligned(["NAME", "KIND", "STATE", "CREATED", "LAST USED"], &rows)
}

/// A table with a header, each column as wide as its widest cell.
pub fn aligned<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut table = vec![header.map(str::to_owned)];
    table.extend_from_slice(rows);
    aligned_lines(&table)
        .into_iter()
        .map(|line| line + "\n")
        .collect()
}

/// `rows` as lines whose columns line up, two spaces apart, without trailing blanks.
pub fn aligned_lines<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

/// Sends a change and expects [`Response::Done`].
fn done(link: &mut Link, request: Request) -> Result<(), CliError> {
    match link.ask(request)? {
        Response::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

pub fn rename(
    link: &mut Link,
    target: &Target,
    name: &str,
    new_name: &str,
    proof: Option<SecretBytes>,
) -> Result<(), CliError> {
    done(
        link,
        Request::Rename {
            user: target.user.as_str().to_owned(),
            name: name.to_owned(),
            new_name: new_name.to_owned(),
            proof,
        },
    )?;
    let new_name = pam_mfa::names::DeviceName::parse(new_name)?;
    println!("Renamed \"{name}\" to \"{new_name}\".");
    Ok(())
}

pub fn remove(
    link: &mut Link,
    target: &Target,
    name: &str,
    yes: bool,
    proof: Option<SecretBytes>,
) -> Result<(), CliError> {
    if !devices(link, target)?.iter().any(|d| d.name == name) {
        return Err(pam_mfa::Error::NoSuchDevice {
            user: target.user.to_string(),
            name: name.to_owned(),
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
    done(
        link,
        Request::Remove {
            user: target.user.as_str().to_owned(),
            name: name.to_owned(),
            proof,
        },
    )?;
    println!("Removed \"{name}\".");
    Ok(())
}

pub fn resync(
    link: &mut Link,
    target: &Target,
    name: &str,
    code1: &str,
    code2: &str,
    proof: Option<SecretBytes>,
) -> Result<(), CliError> {
    let found = match link.ask(Request::Resync {
        user: target.user.as_str().to_owned(),
        name: name.to_owned(),
        code1: SecretBytes::from_slice(code1.as_bytes()),
        code2: SecretBytes::from_slice(code2.as_bytes()),
        proof,
    })? {
        Response::Resynced(r) => r,
        other => return Err(unexpected(&other)),
    };
    let said = match found {
        ResyncReply::Clock { drift_secs } => {
            let how = match drift_secs {
                0 => "in step with this host".to_owned(),
                d if d > 0 => format!("{d} seconds ahead of this host"),
                d => format!("{} seconds behind this host", -d),
            };
            format!("its clock is {how}")
        }
        ResyncReply::Counter { skipped } => format!("{skipped} unused codes were skipped"),
        _ => "the daemon found it".to_owned(),
    };
    println!("Device \"{name}\" is back in sync; {said}.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_whatever_the_widths_of_their_cells() {
        let rows = [
            ["phone".to_owned(), "totp".to_owned(), "active".to_owned()],
            ["pixel-7".to_owned(), "fido2".to_owned(), String::new()],
        ];
        assert_eq!(
            aligned_lines(&rows),
            ["phone    totp   active", "pixel-7  fido2"]
        );
        assert_eq!(
            aligned(["NAME", "KIND", "STATE"], &rows),
            "NAME     KIND   STATE\nphone    totp   active\npixel-7  fido2\n"
        );
        // Widths count characters, not bytes.
        let rows = [
            ["é".to_owned(), "x".to_owned()],
            ["ab".to_owned(), "y".to_owned()],
        ];
        assert_eq!(aligned_lines(&rows), ["é   x", "ab  y"]);
    }
}
