//! The administrator's changes and views (`mfa admin …`), one implementation for `mfa`
//! (root's, on a store file) and `mfad` (root's requests over its socket).
//!
//! Callers decide who may ask (root only); everything here takes the caller's uid for
//! the audit rows it writes. Each change is one write transaction with its audit row, so
//! a change and its record commit or vanish together. The parsers return the sentence the
//! administrator reads, the same from either front end.

use crate::clock::UnixTime;
use std::collections::BTreeMap;

use rusqlite::Connection;
use zeroize::Zeroizing;

use crate::names::{DeviceName, UserName};
use crate::policy::{self, Policy};
use crate::recovery::{self, Outstanding};
use crate::store::devices::{self, DeviceInfo};
use crate::store::{Store, auth_state};
use crate::{Result, audit};

/// The longest a bypass code may live.
pub const MAX_BYPASS_SECS: i64 = 7 * 86_400;

/// `90s`, `30m`, `12h`, `7d` as seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    // The unit is the last byte; a text ending in a multi-byte character has no unit
    // (and `split_at` would panic off a character boundary).
    let at = text.len().checked_sub(1)?;
    let (digits, unit) = (text.get(..at)?, text.get(at..)?);
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

/// A length of time as [`parse_duration`] reads it, in its largest whole unit (`129600`
/// is `36h`, `604800` is `7d`): what an audit row says, so that the local store and the
/// fleet's database (whose `add_bypass_code_at` writes the same words from the same
/// seconds) record a bypass code alike, however the administrator spelled its lifetime.
pub fn duration_text(secs: i64) -> String {
    match [(86_400, 'd'), (3600, 'h'), (60, 'm')]
        .into_iter()
        .find(|(scale, _)| secs != 0 && secs % scale == 0)
    {
        Some((scale, unit)) => format!("{}{unit}", secs / scale),
        None => format!("{secs}s"),
    }
}

/// A bypass code's lifetime (`--expires`), in seconds: at most [`MAX_BYPASS_SECS`].
pub fn bypass_lifetime(expires: &str) -> std::result::Result<i64, String> {
    parse_duration(expires)
        .filter(|s| (1..=MAX_BYPASS_SECS).contains(s))
        .ok_or_else(|| {
            format!("--expires {expires:?}: give a duration such as 30m, 12h or 7d (at most 7d)")
        })
}

/// `--since`: unix seconds, or an age (`30m`, `12h`, `7d`, `90s`) before `now`.
pub fn parse_since(text: &str, now: UnixTime) -> std::result::Result<i64, String> {
    if let Ok(t) = text.parse::<i64>() {
        return Ok(t);
    }
    parse_duration(text)
        .map(|age| now.saturating_sub(age))
        .ok_or_else(|| {
            format!("--since {text:?}: give unix seconds or an age such as 30m, 12h, 7d")
        })
}

/// `--older-than` of an audit prune: a positive age.
pub fn prune_age(text: &str) -> std::result::Result<i64, String> {
    parse_duration(text)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("--older-than {text:?}: give an age such as 12h, 90d or 400d"))
}

/// Sets one policy key and records it, as `by_uid`.
pub fn set_policy(
    store: &mut Store,
    key: &str,
    value: &str,
    by_uid: u32,
    now: UnixTime,
) -> Result<()> {
    let tx = store.write()?;
    policy::set(&tx, key, value)?;
    audit::record(
        &tx,
        now,
        by_uid,
        "*",
        "policy",
        None,
        Some(&format!("{key}={value}")),
    )?;
    tx.commit()?;
    Ok(())
}

/// One account as `mfa admin list` shows it.
#[derive(Debug, Clone)]
pub struct AccountOverview {
    pub user: String,
    pub devices: Vec<DeviceInfo>,
    pub codes: Outstanding,
    /// Logins remembered without a code, so an administrator sees who can come back
    /// without one.
    pub remembered: Vec<crate::store::remembered::Remembered>,
}

/// Every account with a device or an outstanding recovery or bypass code, by name.
pub fn overview(conn: &Connection, now: UnixTime) -> Result<Vec<AccountOverview>> {
    let mut codes: BTreeMap<String, Outstanding> = recovery::outstanding(conn, now)?;
    let mut users = devices::users(conn)?;
    users.extend(codes.keys().cloned());
    users.sort();
    users.dedup();
    let mut listed = Vec::with_capacity(users.len());
    for user in users {
        let devices = devices::list(conn, &user, now)?;
        let codes = codes.remove(&user).unwrap_or_default();
        let remembered = crate::store::remembered::list(conn, &user, now)?;
        listed.push(AccountOverview {
            user,
            devices,
            codes,
            remembered,
        });
    }
    Ok(listed)
}

/// Removes any user's device (root's `mfa admin remove`); its audit row comes from the
/// connection's actor ([`audit::attach`] or [`audit::as_actor`]).
pub fn remove_device(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    now: UnixTime,
) -> Result<()> {
    let tx = store.write()?;
    devices::remove(&tx, user.as_str(), name.as_str(), now)?;
    crate::remembered::forget(&tx, user.as_str())?;
    tx.commit()?;
    Ok(())
}

/// Ends `user`'s lock-out and records it, as `by_uid`.
pub fn unlock(store: &mut Store, user: &UserName, by_uid: u32, now: UnixTime) -> Result<()> {
    let tx = store.write()?;
    auth_state::clear(&tx, user.as_str())?;
    crate::remembered::forget(&tx, user.as_str())?;
    audit::record(&tx, now, by_uid, user.as_str(), "unlock", None, None)?;
    tx.commit()?;
    Ok(())
}

/// Issues a bypass code for `user`, good for `uses` logins during `secs` seconds (from
/// [`bypass_lifetime`]), clears their lock-out and records it, as `by_uid`. Returns the
/// code, ungrouped, and when it expires.
pub fn issue_bypass(
    store: &mut Store,
    user: &UserName,
    uses: u32,
    secs: i64,
    by_uid: u32,
    now: UnixTime,
) -> Result<(Zeroizing<String>, i64)> {
    let expires_at = now.saturating_add(secs);
    let tx = store.write()?;
    let code = recovery::issue_bypass(&tx, user.as_str(), uses, expires_at, now, by_uid)?;
    audit::record(
        &tx,
        now,
        by_uid,
        user.as_str(),
        "bypass",
        None,
        Some(&format!(
            "{uses} use(s), expires in {}",
            duration_text(secs)
        )),
    )?;
    tx.commit()?;
    Ok((code, expires_at))
}

/// Deletes the audit rows older than `older_than` (an age from [`prune_age`] and its
/// text), or else past the policy's retention, and records the pruning, as `by_uid`.
/// Returns how many rows went and the rule, as "older than …".
pub fn prune_audit(
    store: &mut Store,
    older_than: Option<(i64, &str)>,
    by_uid: u32,
    now: UnixTime,
) -> Result<(usize, String)> {
    let tx = store.write()?;
    let (removed, rule) = match older_than {
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
        by_uid,
        "*",
        "audit-prune",
        None,
        Some(&format!("{removed} row(s) {rule}")),
    )?;
    tx.commit()?;
    Ok((removed, rule))
}

/// The policy of the store at `store` (the built-in one when there is no store yet).
pub fn policy_of(store: Option<&Store>) -> Result<Policy> {
    match store {
        Some(store) => policy::load(store.conn()),
        None => Ok(Policy::default()),
    }
}

#[cfg(test)]
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
        for odd in ["1é", "é", "5📱", "7d\u{301}"] {
            assert_eq!(parse_duration(odd), None, "{odd}");
            assert!(bypass_lifetime(odd).is_err(), "{odd}");
            assert!(parse_since(odd, 0).is_err(), "{odd}");
        }
        assert_eq!(bypass_lifetime("7d"), Ok(604_800));
        assert!(bypass_lifetime("8d").unwrap_err().contains("at most 7d"));
        assert!(prune_age("0d").is_err());
    }

    /// The audit's words for a lifetime: the largest whole unit, read back as the same
    /// seconds (the fleet's SQL writes the same; see tests/fleet_admin.rs).
    #[test]
    fn durations_are_written_in_their_largest_whole_unit() {
        for (secs, text) in [
            (604_800, "7d"),
            (129_600, "36h"),
            (5400, "90m"),
            (90, "90s"),
            (3600, "1h"),
            (86_399, "86399s"),
            (0, "0s"),
        ] {
            assert_eq!(duration_text(secs), text);
            assert_eq!(parse_duration(text), Some(secs), "{text}");
        }
    }
}
