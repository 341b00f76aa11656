//! The administrator's policy: what the one row in the store ([`crate::store::policy`])
//! means, its defaults, and which values may be set.
//!
//! It lives in the store rather than in a configuration file so that the module, `mfa`
//! and every service read the same decision, it changes atomically with everything else,
//! and only root (who alone can write the store) changes it. The module reads it once per
//! login with a single primary-key query ([`load`]).

use rusqlite::Connection;

use crate::store::policy as row;
pub use crate::store::policy::{DEFAULT_AUDIT_RETENTION_DAYS, MAX_AUDIT_RETENTION_DAYS};
use crate::{Error, MAX_DEVICES, Result};

/// Whether users may register and change their own devices with `mfa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfService {
    Allow,
    /// Only root changes devices; users are told to contact their administrator.
    Deny,
}

/// What a login does for a user without an active device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDevice {
    /// Let them through (as the module argument `nullok` does for one service).
    Allow,
    /// Refuse them (after a prompt, so the prompt does not tell who has enrolled).
    Deny,
    /// Register an authenticator app right there, through the PAM conversation.
    Enroll,
}

/// The policy row. `None` for a number means "the built-in default"; module arguments
/// override all three numbers for their service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub self_service: SelfService,
    pub max_devices: u32,
    pub no_device: NoDevice,
    pub max_failures: Option<u32>,
    pub lockout_seconds: Option<i64>,
    pub window: Option<u32>,
    /// How many days audit rows are kept; `None`: [`DEFAULT_AUDIT_RETENTION_DAYS`].
    pub audit_retention_days: Option<u32>,
    /// How long a successful second factor is remembered for the same user, service and
    /// remote host, in seconds; 0 (the default) asks every time. See crate::remembered.
    pub remember_seconds: u32,
    /// Whether a login without a remote host (a console, su, sudo, or a loopback one) may
    /// be remembered too: off unless said explicitly.
    pub remember_local: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            self_service: SelfService::Allow,
            max_devices: MAX_DEVICES,
            no_device: NoDevice::Deny,
            max_failures: None,
            lockout_seconds: None,
            window: None,
            audit_retention_days: None,
            remember_seconds: 0,
            remember_local: false,
        }
    }
}

impl Policy {
    /// The audit retention in effect, in days.
    pub fn audit_retention_days(&self) -> u32 {
        self.audit_retention_days
            .unwrap_or(DEFAULT_AUDIT_RETENTION_DAYS)
    }
}

/// The message a non-root user gets when `self_service` is `deny` (the "greyed-out" case).
pub use crate::error::MANAGED_BY_ADMIN;

/// The keys `mfa admin policy set` accepts, in the order `show` prints them.
pub const KEYS: &[&str] = &[
    "self_service",
    "max_devices",
    "no_device",
    "max_failures",
    "lockout_seconds",
    "window",
    "audit_retention_days",
    "remember_seconds",
    "remember_local",
];

/// The longest a login may be remembered: a working day. Past that a remembered context
/// is a standing exemption, not a convenience.
pub const MAX_REMEMBER_SECONDS: u32 = 12 * 3600;

impl SelfService {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl NoDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Enroll => "enroll",
        }
    }
}

/// Reads the policy; a store that predates it (impossible after migration, but cheap to
/// allow) has the defaults.
pub fn load(conn: &Connection) -> Result<Policy> {
    let Some(row) = row::load(conn)? else {
        return Ok(Policy::default());
    };
    Ok(Policy {
        self_service: if row.self_service == "deny" {
            SelfService::Deny
        } else {
            SelfService::Allow
        },
        max_devices: row.device_limit(),
        no_device: match row.no_device.as_str() {
            "allow" => NoDevice::Allow,
            "enroll" => NoDevice::Enroll,
            _ => NoDevice::Deny,
        },
        max_failures: row.max_failures,
        lockout_seconds: row.lockout_seconds,
        window: row.window,
        audit_retention_days: row.audit_retention_days,
        remember_seconds: row.remember_seconds.min(MAX_REMEMBER_SECONDS),
        remember_local: row.remember_local == "allow",
    })
}

fn bad(key: &str, problem: &str) -> Error {
    Error::InvalidPolicy(format!("{key}: {problem}"))
}

fn number(key: &str, value: &str, min: i64, max: i64) -> Result<Option<i64>> {
    if value == "default" {
        return Ok(None);
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(key, "must be a number or \"default\""));
    }
    let n: i64 = value
        .parse()
        .map_err(|_| bad(key, &format!("must be from {min} to {max}")))?;
    if !(min..=max).contains(&n) {
        return Err(bad(key, &format!("must be from {min} to {max}")));
    }
    Ok(Some(n))
}

/// Sets one key, validating it strictly (a typo never becomes a silent default). Runs in
/// the caller's transaction so the audit row goes with it.
pub fn set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    let one_of = |allowed: &[&str]| -> Result<()> {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(bad(key, &format!("must be one of {}", allowed.join(", "))))
        }
    };
    // The column name comes from this fixed list, never from the input.
    let (column, sql_value): (&str, rusqlite::types::Value) = match key {
        "self_service" => {
            one_of(&["allow", "deny"])?;
            ("self_service", value.to_owned().into())
        }
        "no_device" => {
            one_of(&["allow", "deny", "enroll"])?;
            ("no_device", value.to_owned().into())
        }
        "max_devices" => match number(key, value, 1, i64::from(MAX_DEVICES))? {
            Some(n) => ("max_devices", n.into()),
            None => ("max_devices", i64::from(MAX_DEVICES).into()),
        },
        "max_failures" => ("max_failures", number(key, value, 1, 1000)?.into()),
        "lockout_seconds" => ("lockout_seconds", number(key, value, 1, 7 * 86_400)?.into()),
        "window" => (
            "window",
            number(
                key,
                value,
                0,
                i64::from(pam_mfa_protocol::limits::MAX_WINDOW),
            )?
            .into(),
        ),
        "audit_retention_days" => (
            "audit_retention_days",
            number(key, value, 1, i64::from(MAX_AUDIT_RETENTION_DAYS))?.into(),
        ),
        "remember_seconds" => (
            "remember_seconds",
            number(key, value, 0, i64::from(MAX_REMEMBER_SECONDS))?
                .unwrap_or(0)
                .into(),
        ),
        "remember_local" => {
            one_of(&["allow", "deny"])?;
            ("remember_local", value.to_owned().into())
        }
        _ => {
            return Err(Error::InvalidPolicy(format!(
                "unknown policy key {key:?}; keys are {}",
                KEYS.join(", ")
            )));
        }
    };
    row::set(conn, column, sql_value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_set_and_load() {
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        assert_eq!(load(store.conn()).unwrap(), Policy::default());
        let tx = store.write().unwrap();
        set(&tx, "self_service", "deny").unwrap();
        set(&tx, "max_devices", "2").unwrap();
        set(&tx, "no_device", "enroll").unwrap();
        set(&tx, "window", "0").unwrap();
        set(&tx, "max_failures", "3").unwrap();
        set(&tx, "lockout_seconds", "60").unwrap();
        set(&tx, "audit_retention_days", "90").unwrap();
        tx.commit().unwrap();
        let p = load(store.conn()).unwrap();
        assert_eq!(p.self_service, SelfService::Deny);
        assert_eq!(p.max_devices, 2);
        assert_eq!(p.no_device, NoDevice::Enroll);
        assert_eq!(
            (p.window, p.max_failures, p.lockout_seconds),
            (Some(0), Some(3), Some(60))
        );
        assert_eq!(
            (p.audit_retention_days, p.audit_retention_days()),
            (Some(90), 90)
        );
        let tx = store.write().unwrap();
        set(&tx, "window", "default").unwrap();
        tx.commit().unwrap();
        assert_eq!(load(store.conn()).unwrap().window, None);
    }

    // The audit retention is a policy key, from 1 day to 100 years: the table must not
    // grow without end, and audit rules ask for different periods.
    #[test]
    fn audit_retention_days_is_checked_and_defaults_to_a_year() {
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        assert_eq!(load(store.conn()).unwrap().audit_retention_days(), 365);
        let tx = store.write().unwrap();
        for bad in ["0", "36501", "-1", "1y", "", "99999999999999999999"] {
            let e = set(&tx, "audit_retention_days", bad).unwrap_err();
            assert!(matches!(e, Error::InvalidPolicy(_)), "{bad:?}: {e:?}");
        }
        for (good, days) in [("1", 1), ("36500", 36_500), ("default", 365)] {
            set(&tx, "audit_retention_days", good).unwrap();
            assert_eq!(load(&tx).unwrap().audit_retention_days(), days, "{good}");
        }
        assert!(KEYS.contains(&"audit_retention_days"));
    }

    /// Remembering skips a factor, so it is off unless the administrator sets it, at most 12 hours,
    /// and local logins need their own explicit yes.
    #[test]
    fn remembering_is_off_by_default_and_bounded() {
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        let p = load(store.conn()).unwrap();
        assert_eq!((p.remember_seconds, p.remember_local), (0, false));
        let tx = store.write().unwrap();
        for bad in ["43201", "-1", "1h", "", "yes"] {
            assert!(
                matches!(
                    set(&tx, "remember_seconds", bad),
                    Err(Error::InvalidPolicy(_))
                ),
                "{bad:?}"
            );
        }
        assert!(set(&tx, "remember_local", "yes").is_err());
        set(&tx, "remember_seconds", "43200").unwrap();
        set(&tx, "remember_local", "allow").unwrap();
        let p = load(&tx).unwrap();
        assert_eq!((p.remember_seconds, p.remember_local), (43_200, true));
        set(&tx, "remember_seconds", "default").unwrap();
        assert_eq!(load(&tx).unwrap().remember_seconds, 0);
    }

    /// Every value of the named settings is stored and read back as itself, under the
    /// name `mfa admin policy show` prints (as_str) and `set` takes.
    #[test]
    fn every_named_value_is_stored_and_read_back() {
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        let tx = store.write().unwrap();
        for (v, name) in [
            (NoDevice::Allow, "allow"),
            (NoDevice::Deny, "deny"),
            (NoDevice::Enroll, "enroll"),
        ] {
            assert_eq!(v.as_str(), name);
            set(&tx, "no_device", v.as_str()).unwrap();
            assert_eq!(load(&tx).unwrap().no_device, v, "{name}");
        }
        for (v, name) in [(SelfService::Deny, "deny"), (SelfService::Allow, "allow")] {
            assert_eq!(v.as_str(), name);
            set(&tx, "self_service", v.as_str()).unwrap();
            assert_eq!(load(&tx).unwrap().self_service, v, "{name}");
        }
    }

    #[test]
    fn a_number_is_digits_only() {
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        let tx = store.write().unwrap();
        for v in ["+5", " 5", "5 ", "0x5", "５"] {
            assert!(
                matches!(set(&tx, "max_failures", v), Err(Error::InvalidPolicy(_))),
                "{v:?}"
            );
        }
        set(&tx, "max_failures", "5").unwrap();
        assert_eq!(load(&tx).unwrap().max_failures, Some(5));
        // A lock-out lasts at most a week.
        set(&tx, "lockout_seconds", "604800").unwrap();
        assert_eq!(load(&tx).unwrap().lockout_seconds, Some(604_800));
        assert!(set(&tx, "lockout_seconds", "604801").is_err());
    }

    #[test]
    fn invalid_values_are_refused() {
        let mut ts = crate::test_support::temp_store();
        let store = &mut ts.store;
        let tx = store.write().unwrap();
        for (k, v) in [
            ("self_service", "maybe"),
            ("max_devices", "0"),
            ("max_devices", "9"),
            ("no_device", "nullok"),
            ("window", "-1"),
            ("window", "99"),
            ("max_failures", "0"),
            ("lockout_seconds", "1e3"),
            ("colour", "blue"),
        ] {
            assert!(
                matches!(set(&tx, k, v), Err(Error::InvalidPolicy(_))),
                "{k}={v}"
            );
        }
    }
}
