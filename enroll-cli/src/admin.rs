//! `mfa admin …`: the policy, every user's devices, lock-outs and the audit trail.
//!
//! Root only: [`crate::run`] refuses a non-root caller before any of this runs. Every
//! change writes its audit row in its own transaction.

use pam_mfa::names::{self, UserName};
use pam_mfa::store::Store;
use pam_mfa::{admin, audit, clock};
use serde_json::json;

use crate::cli::{Admin, Audit, AuditCmd, PolicyCmd};
use crate::identity::Target;
use crate::{CliError, open_store};

pub fn run(target: &Target, cmd: Admin) -> Result<(), CliError> {
    match cmd {
        Admin::Policy(PolicyCmd::Show { json }) => show_policy(target, json),
        Admin::Policy(PolicyCmd::Set { key, value }) => set_policy(target, &key, &value),
        Admin::List { json } => list(target, json),
        Admin::Remove { user, name } => remove(target, &user, &name),
        Admin::Tokens(cmd) => crate::tokens::admin(target, cmd),
        Admin::Unlock { user } => unlock(target, &user),
        Admin::Bypass {
            user,
            uses,
            expires,
        } => bypass(target, &user, uses, &expires),
        Admin::Audit(Audit {
            command: Some(AuditCmd::Prune { older_than }),
            ..
        }) => prune_audit(target, older_than.as_deref()),
        Admin::Audit(Audit {
            command: None,
            user,
            since,
            json,
        }) => show_audit(target, user, since, json),
    }
}

fn account(user: &str) -> Result<UserName, CliError> {
    let given =
        UserName::parse(user).map_err(|_| CliError::msg(format!("no such user: {user:?}")))?;
    names::canonical_account(&given)?
        .ok_or_else(|| CliError::msg(format!("no such user: {user:?}")))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "default".to_owned(), |n| n.to_string())
}

fn show_policy(target: &Target, json: bool) -> Result<(), CliError> {
    let p = admin::policy_of(Store::open_existing(&target.db)?.as_ref())?;
    if json {
        println!(
            "{}",
            json!({
                "self_service": p.self_service.as_str(),
                "max_devices": p.max_devices,
                "no_device": p.no_device.as_str(),
                "max_failures": p.max_failures,
                "lockout_seconds": p.lockout_seconds,
                "window": p.window,
                "audit_retention_days": p.audit_retention_days,
            })
        );
        return Ok(());
    }
    let rows = [
        ("self_service", p.self_service.as_str().to_owned()),
        ("max_devices", p.max_devices.to_string()),
        ("no_device", p.no_device.as_str().to_owned()),
        ("max_failures", opt(p.max_failures)),
        ("lockout_seconds", opt(p.lockout_seconds)),
        ("window", opt(p.window)),
        (
            "audit_retention_days",
            p.audit_retention_days.map_or_else(
                || format!("default ({} days)", p.audit_retention_days()),
                |d| d.to_string(),
            ),
        ),
    ];
    for (key, value) in rows {
        println!("{key:<21}{value}");
    }
    Ok(())
}

fn set_policy(target: &Target, key: &str, value: &str) -> Result<(), CliError> {
    let mut store = open_store(target)?;
    admin::set_policy(&mut store, key, value, target.caller_uid, clock::now()?)?;
    println!("Policy {key} is now {value}.");
    Ok(())
}

fn list(target: &Target, json: bool) -> Result<(), CliError> {
    let Some(store) = Store::open_existing(&target.db)? else {
        if json {
            println!("[]");
        } else {
            println!("No devices.");
        }
        return Ok(());
    };
    let listed = admin::overview(store.conn(), clock::now()?)?;
    if json {
        let out: Vec<_> = listed
            .iter()
            .map(
                |admin::AccountOverview {
                     user,
                     devices,
                     codes,
                 }| {
                    json!({
                        "user": user,
                        "devices": devices.iter().map(|d| json!({
                            "name": d.name,
                            "kind": d.kind.as_str(),
                            "state": d.state.as_str(),
                            "created": d.created_at,
                            "last_used": d.last_used_at,
                        })).collect::<Vec<_>>(),
                        "recovery_codes_left": codes.recovery_left,
                        "bypass_codes": codes.bypass.iter().map(|b| json!({
                            "uses_left": b.uses_left,
                            "expires": b.expires_at,
                            "issued": b.created_at,
                            "issued_by_uid": b.created_by,
                        })).collect::<Vec<_>>(),
                    })
                },
            )
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return Ok(());
    }
    if listed.is_empty() {
        println!("No devices.");
    }
    for admin::AccountOverview {
        user,
        devices,
        codes,
    } in &listed
    {
        println!("{user}");
        if devices.is_empty() {
            println!("  no devices");
        }
        for d in devices {
            println!(
                "  {}  {}  {}  last used {}",
                d.name,
                d.kind.as_str(),
                d.state.as_str(),
                d.last_used_at
                    .map_or_else(|| "never".to_owned(), clock::format_local)
            );
        }
        if codes.recovery_left > 0 {
            println!("  {} unused recovery code(s)", codes.recovery_left);
        }
        for b in &codes.bypass {
            println!(
                "  bypass code: {} use(s) left, expires {}, issued by uid {}",
                b.uses_left,
                clock::format_local(b.expires_at),
                b.created_by
            );
        }
    }
    Ok(())
}

fn remove(target: &Target, user: &str, name: &str) -> Result<(), CliError> {
    let user = account(user)?;
    let name = pam_mfa::names::DeviceName::existing(name)?;
    let mut store = open_store(target)?;
    admin::remove_device(&mut store, &user, &name, clock::now()?)?;
    println!("Removed \"{name}\" of {user}.");
    Ok(())
}

fn unlock(target: &Target, user: &str) -> Result<(), CliError> {
    let user = account(user)?;
    let mut store = open_store(target)?;
    admin::unlock(&mut store, &user, target.caller_uid, clock::now()?)?;
    println!("{user} is no longer locked out.");
    Ok(())
}

fn bypass(target: &Target, user: &str, uses: u32, expires: &str) -> Result<(), CliError> {
    let secs = admin::bypass_lifetime(expires).map_err(CliError::msg)?;
    let user = account(user)?;
    let mut store = open_store(target)?;
    let now = clock::now()?;
    let (code, expires_at) = admin::issue_bypass(
        &mut store,
        &user,
        uses,
        secs,
        expires,
        target.caller_uid,
        now,
    )?;
    let shown = zeroize::Zeroizing::new(pam_mfa::recovery::grouped(&code));
    println!(
        "Temporary code for {user}: {}\nGood for {uses} login(s) until {}; they type it at \
         the verification code prompt.",
        shown.as_str(),
        clock::format_local(expires_at)
    );
    Ok(())
}

/// `mfa admin audit prune`: the rows past the retention (or older than `older_than`) go
/// now rather than at the next change; the pruning is itself recorded.
fn prune_audit(target: &Target, older_than: Option<&str>) -> Result<(), CliError> {
    let age = older_than
        .map(|text| admin::prune_age(text).map(|age| (age, text)))
        .transpose()
        .map_err(CliError::msg)?;
    let mut store = open_store(target)?;
    let (removed, rule) = admin::prune_audit(&mut store, age, target.caller_uid, clock::now()?)?;
    println!("Removed {removed} audit row(s) {rule}.");
    Ok(())
}

fn show_audit(
    target: &Target,
    user: Option<String>,
    since: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let user = user.map(|u| account(&u)).transpose()?;
    let since = since
        .map(|s| admin::parse_since(&s, clock::now()?).map_err(CliError::msg))
        .transpose()?;
    let rows = match Store::open_existing(&target.db)? {
        Some(store) => audit::list(store.conn(), user.as_ref().map(UserName::as_str), since)?,
        None => Vec::new(),
    };
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "at": r.at,
                    "uid": r.actor_uid,
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
            r.actor_uid,
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
