//! `mfa admin …`: the policy, every user's devices, lock-outs and the audit trail.
//!
//! Root only: [`crate::run`] refuses a non-root caller before any of this runs. Every
//! change writes its audit row in its own transaction.

use pam_mfa::clock;
use pam_mfa_protocol::{Request, Response};
use serde_json::json;

use crate::CliError;
use crate::cli::{Admin, Audit, AuditCmd, PolicyCmd};
use crate::daemon::{Link, unexpected};
use crate::identity::account;

pub fn run(link: &mut Link, cmd: Admin) -> Result<(), CliError> {
    match cmd {
        Admin::Policy(PolicyCmd::Show { json }) => show_policy(link, json),
        Admin::Policy(PolicyCmd::Set { key, value }) => set_policy(link, &key, &value),
        Admin::List { json } => list(link, json),
        Admin::Remove { user, name } => remove(link, &user, &name),
        Admin::Tokens(cmd) => crate::tokens::admin(link, cmd),
        Admin::Unlock { user } => unlock(link, &user),
        Admin::Bypass {
            user,
            uses,
            expires,
        } => bypass(link, &user, uses, &expires),
        Admin::Audit(Audit {
            command: Some(AuditCmd::Prune { older_than }),
            ..
        }) => prune_audit(link, older_than),
        Admin::Audit(Audit {
            command: None,
            user,
            since,
            json,
        }) => show_audit(link, user, since, json),
        // Dispatched before the daemon is reached (main.rs); here for completeness.
        Admin::Fleet(cmd) => crate::fleet::run(cmd),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "default".to_owned(), |n| n.to_string())
}

fn done(link: &mut Link, request: Request) -> Result<(), CliError> {
    match link.ask(request)? {
        Response::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

fn show_policy(link: &mut Link, json: bool) -> Result<(), CliError> {
    let p = match link.ask(Request::PolicyShow)? {
        Response::Policy(p) => p,
        other => return Err(unexpected(&other)),
    };
    if json {
        println!(
            "{}",
            json!({
                "self_service": p.self_service,
                "max_devices": p.max_devices,
                "no_device": p.no_device,
                "max_failures": p.max_failures,
                "lockout_seconds": p.lockout_seconds,
                "window": p.window,
                "audit_retention_days": p.audit_retention_days,
                "remember_seconds": p.remember_seconds,
                "remember_local": p.remember_local,
            })
        );
        return Ok(());
    }
    let rows = [
        ("self_service", p.self_service.clone()),
        ("max_devices", p.max_devices.to_string()),
        ("no_device", p.no_device.clone()),
        ("max_failures", opt(p.max_failures)),
        ("lockout_seconds", opt(p.lockout_seconds)),
        ("window", opt(p.window)),
        (
            "audit_retention_days",
            p.audit_retention_days.map_or_else(
                || format!("default ({} days)", p.audit_retention_days_in_effect),
                |d| d.to_string(),
            ),
        ),
        (
            "remember_seconds",
            if p.remember_seconds == 0 {
                "0 (every login asks)".to_owned()
            } else {
                p.remember_seconds.to_string()
            },
        ),
        ("remember_local", p.remember_local.clone()),
    ];
    for (key, value) in rows {
        println!("{key:<21}{value}");
    }
    Ok(())
}

fn set_policy(link: &mut Link, key: &str, value: &str) -> Result<(), CliError> {
    done(
        link,
        Request::PolicySet {
            key: key.to_owned(),
            value: value.to_owned(),
        },
    )?;
    println!("Policy {key} is now {value}.");
    Ok(())
}

fn list(link: &mut Link, json: bool) -> Result<(), CliError> {
    let listed = match link.ask(Request::AdminList)? {
        Response::Accounts(a) => a,
        other => return Err(unexpected(&other)),
    };
    if json {
        let out: Vec<_> = listed
            .iter()
            .map(|a| {
                json!({
                    "user": a.user,
                    "devices": a.devices.iter().map(|d| json!({
                        "name": d.name,
                        "kind": d.kind,
                        "state": d.state,
                        "created": d.created,
                        "last_used": d.last_used,
                    })).collect::<Vec<_>>(),
                    "recovery_codes_left": a.recovery_codes_left,
                    "bypass_codes": a.bypass_codes.iter().map(|b| json!({
                        "uses_left": b.uses_left,
                        "expires": b.expires,
                        "issued": b.issued,
                        "issued_by_uid": b.issued_by_uid,
                    })).collect::<Vec<_>>(),
                    "remembered": a.remembered.iter().map(|r| json!({
                        "service": r.service,
                        "rhost": r.rhost,
                        "since": r.since,
                        "until": r.until,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return Ok(());
    }
    if listed.is_empty() {
        println!("No devices.");
    }
    for a in &listed {
        println!("{}", a.user);
        if a.devices.is_empty() {
            println!("  no devices");
        }
        let devices: Vec<[String; 4]> = a
            .devices
            .iter()
            .map(|d| {
                [
                    d.name.clone(),
                    d.kind.clone(),
                    d.state.clone(),
                    format!(
                        "last used {}",
                        d.last_used
                            .map_or_else(|| "never".to_owned(), clock::format_local)
                    ),
                ]
            })
            .collect();
        for line in crate::manage::aligned_lines(&devices) {
            println!("  {line}");
        }
        if a.recovery_codes_left > 0 {
            println!("  {} unused recovery code(s)", a.recovery_codes_left);
        }
        for b in &a.bypass_codes {
            println!(
                "  bypass code: {} use(s) left, expires {}, issued by uid {}",
                b.uses_left,
                clock::format_local(b.expires),
                b.issued_by_uid
            );
        }
        for r in &a.remembered {
            println!(
                "  remembered login: {} from {} until {}",
                r.service,
                if r.rhost.is_empty() {
                    "this host".to_owned()
                } else {
                    pam_mfa_protocol::escape_for_log(r.rhost.as_bytes())
                },
                clock::format_local(r.until)
            );
        }
    }
    Ok(())
}

fn remove(link: &mut Link, user: &str, name: &str) -> Result<(), CliError> {
    let user = account(user)?;
    let name = pam_mfa::names::DeviceName::existing(name)?;
    done(
        link,
        Request::AdminRemove {
            user: user.as_str().to_owned(),
            name: name.as_str().to_owned(),
        },
    )?;
    println!("Removed \"{name}\" of {user}.");
    Ok(())
}

fn unlock(link: &mut Link, user: &str) -> Result<(), CliError> {
    let user = account(user)?;
    done(
        link,
        Request::Unlock {
            user: user.as_str().to_owned(),
        },
    )?;
    println!("{user} is no longer locked out.");
    Ok(())
}

fn bypass(link: &mut Link, user: &str, uses: u32, expires: &str) -> Result<(), CliError> {
    pam_mfa::admin::bypass_lifetime(expires).map_err(CliError::msg)?;
    let user = account(user)?;
    let reply = match link.ask(Request::Bypass {
        user: user.as_str().to_owned(),
        uses,
        expires_in: expires.to_owned(),
    })? {
        Response::BypassCode(b) => b,
        other => return Err(unexpected(&other)),
    };
    let code = std::str::from_utf8(reply.code.as_bytes())
        .map_err(|_| CliError::msg("mfad sent a code that is not text"))?;
    let shown = zeroize::Zeroizing::new(pam_mfa::recovery::grouped(code));
    println!(
        "Temporary code for {user}: {}\nGood for {uses} login(s) until {}; they type it at \
         the verification code prompt.",
        shown.as_str(),
        clock::format_local(reply.expires_at)
    );
    Ok(())
}

/// `mfa admin audit prune`: the rows past the retention (or older than `older_than`) go
/// now rather than at the next change; the pruning is itself recorded.
fn prune_audit(link: &mut Link, older_than: Option<String>) -> Result<(), CliError> {
    if let Some(text) = &older_than {
        pam_mfa::admin::prune_age(text).map_err(CliError::msg)?;
    }
    let (removed, rule) = match link.ask(Request::AuditPrune { older_than })? {
        Response::Pruned { removed, rule } => (removed, rule),
        other => return Err(unexpected(&other)),
    };
    println!("Removed {removed} audit row(s) {rule}.");
    Ok(())
}

fn show_audit(
    link: &mut Link,
    user: Option<String>,
    since: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let user = user.map(|u| account(&u)).transpose()?;
    if let Some(s) = &since {
        pam_mfa::admin::parse_since(s, clock::now()?).map_err(CliError::msg)?;
    }
    let rows = match link.ask(Request::Audit {
        user: user.map(|u| u.as_str().to_owned()),
        since,
    })? {
        Response::AuditRows(rows) => rows,
        other => return Err(unexpected(&other)),
    };
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "at": r.at,
                    "uid": r.uid,
                    "user": r.user,
                    "action": r.action,
                    "device": r.device,
                    "detail": r.detail,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return Ok(());
    }
    for r in &rows {
        println!(
            "{}  uid {}  {}  {}{}{}",
            clock::format_local(r.at),
            r.uid,
            r.user,
            r.action,
            r.device
                .as_deref()
                .map_or_else(String::new, |d| format!(" \"{d}\"")),
            r.detail
                .as_deref()
                .map_or_else(String::new, |d| format!(" ({d})")),
        );
    }
    Ok(())
}
