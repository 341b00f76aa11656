//! `mfa admin …`: the policy, every user's devices, lock-outs and the audit trail.
//!
//! Root only: [`crate::run`] refuses a non-root caller before any of this runs. Every
//! change writes its audit row in its own transaction.

use pam_mfa::names::{self, UserName};
use pam_mfa::policy::{self, Policy};
use pam_mfa::store::Store;
use pam_mfa::store::{auth_state, devices};
use pam_mfa::{audit, clock};
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
    let p = match Store::open_existing(&target.db)? {
        Some(store) => policy::load(store.conn())?,
        None => Policy::default(),
    };
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
    let now = clock::now()?;
    let tx = store.write()?;
    policy::set(&tx, key, value)?;
    audit::record(
        &tx,
        now,
        target.caller_uid,
        "*",
        "policy",
        None,
        Some(&format!("{key}={value}")),
    )?;
    tx.commit().map_err(pam_mfa::Error::from)?;
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
    let now = clock::now()?;
    let mut codes = pam_mfa::recovery::outstanding(store.conn(), now)?;
    let mut users: Vec<String> = {
        let mut stmt = store
            .conn()
            .prepare("SELECT DISTINCT user FROM devices ORDER BY user")
            .map_err(pam_mfa::Error::from)?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(pam_mfa::Error::from)?;
        rows.collect::<Result<_, _>>()
            .map_err(pam_mfa::Error::from)?
    };
    users.extend(codes.keys().cloned());
    users.sort();
    users.dedup();
    let mut listed = Vec::new();
    for user in users {
        let devices = devices::list(store.conn(), &user, now)?;
        let outstanding = codes.remove(&user).unwrap_or_default();
        listed.push((user, devices, outstanding));
    }
    if json {
        let out: Vec<_> = listed
            .iter()
            .map(|(user, devices, codes)| {
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
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return Ok(());
    }
    if listed.is_empty() {
        println!("No devices.");
    }
    for (user, devices, codes) in &listed {
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
    let tx = store.write()?;
    devices::remove(&tx, user.as_str(), name.as_str(), clock::now()?)?;
    tx.commit().map_err(pam_mfa::Error::from)?;
    println!("Removed \"{name}\" of {user}.");
    Ok(())
}

fn unlock(target: &Target, user: &str) -> Result<(), CliError> {
    let user = account(user)?;
    let mut store = open_store(target)?;
    let now = clock::now()?;
    let tx = store.write()?;
    auth_state::clear(&tx, user.as_str())?;
    audit::record(
        &tx,
        now,
        target.caller_uid,
        user.as_str(),
        "unlock",
        None,
        None,
    )?;
    tx.commit().map_err(pam_mfa::Error::from)?;
    println!("{user} is no longer locked out.");
    Ok(())
}

/// The longest a bypass code may live.
const MAX_BYPASS_SECS: i64 = 7 * 86_400;

/// `90s`, `30m`, `12h`, `7d` as seconds.
fn parse_duration(text: &str) -> Option<i64> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale)
}

fn bypass(target: &Target, user: &str, uses: u32, expires: &str) -> Result<(), CliError> {
    let secs = parse_duration(expires)
        .filter(|s| (1..=MAX_BYPASS_SECS).contains(s))
        .ok_or_else(|| {
            CliError::msg(format!(
                "--expires {expires:?}: give a duration such as 30m, 12h or 7d (at most 7d)"
            ))
        })?;
    let user = account(user)?;
    let mut store = open_store(target)?;
    let now = clock::now()?;
    let tx = store.write()?;
    let code = pam_mfa::recovery::issue_bypass(
        &tx,
        user.as_str(),
        uses,
        now.saturating_add(secs),
        now,
        target.caller_uid,
    )?;
    audit::record(
        &tx,
        now,
        target.caller_uid,
        user.as_str(),
        "bypass",
        None,
        Some(&format!("{uses} use(s), expires in {expires}")),
    )?;
    tx.commit().map_err(pam_mfa::Error::from)?;
    let shown = zeroize::Zeroizing::new(pam_mfa::recovery::grouped(&code));
    println!(
        "Temporary code for {user}: {}\nGood for {uses} login(s) until {}; they type it at \
         the verification code prompt.",
        shown.as_str(),
        clock::format_local(now.saturating_add(secs))
    );
    Ok(())
}

/// `--since`: unix seconds, or an age (`30m`, `12h`, `7d`, `90s`) before now.
fn parse_since(text: &str, now: i64) -> Result<i64, CliError> {
    let bad = || {
        CliError::msg(format!(
            "--since {text:?}: give unix seconds or an age such as 30m, 12h, 7d"
        ))
    };
    if let Ok(t) = text.parse::<i64>() {
        return Ok(t);
    }
    let age = parse_duration(text).ok_or_else(bad)?;
    Ok(now.saturating_sub(age))
}

/// `mfa admin audit prune`: the rows past the retention (or older than `older_than`) go
/// now rather than at the next change; the pruning is itself recorded.
fn prune_audit(target: &Target, older_than: Option<&str>) -> Result<(), CliError> {
    let age = older_than
        .map(|text| {
            parse_duration(text).filter(|s| *s > 0).ok_or_else(|| {
                CliError::msg(format!(
                    "--older-than {text:?}: give an age such as 12h, 90d or 400d"
                ))
            })
        })
        .transpose()?;
    let mut store = open_store(target)?;
    let now = clock::now()?;
    let tx = store.write()?;
    let (removed, rule) = match age.zip(older_than) {
        Some((age, text)) => (
            audit::prune_before(&tx, now.saturating_sub(age))?,
            format!("older than {text}"),
        ),
        None => {
            let days = policy::load(&tx)?.audit_retention_days();
            (
                audit::prune_expired(&tx, now)?,
                format!("older than the retention of {days} days"),
            )
        }
    };
    audit::record(
        &tx,
        now,
        target.caller_uid,
        "*",
        "audit-prune",
        None,
        Some(&format!("{removed} row(s) {rule}")),
    )?;
    tx.commit().map_err(pam_mfa::Error::from)?;
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
    let since = since.map(|s| parse_since(&s, clock::now()?)).transpose()?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_seconds_and_ages() {
        assert_eq!(parse_since("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(parse_since("2h", 10_000).unwrap(), 10_000 - 7200);
        assert_eq!(parse_since("7d", 1_000_000).unwrap(), 1_000_000 - 604_800);
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("5w", 0).is_err());
        assert!(parse_since("", 0).is_err());
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("-5m"), None);
    }
}
