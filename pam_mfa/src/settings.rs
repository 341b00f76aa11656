//! The numbers that tune code checking at a login (window, HOTP look-ahead, lock-out),
//! and how a caller's overrides combine with the store's policy.
//!
//! One rule, used by the PAM module's arguments, by `mfa`'s re-authentication and by
//! `mfad` for a root caller's overrides: an override that is given wins, otherwise the
//! policy's number, otherwise the built-in default. Overrides are checked against the same
//! bounds wherever they come from, so a request to the daemon cannot reach values the
//! module arguments would refuse.

use crate::login::{LoginSettings, MAX_HOTP_WINDOW, MAX_WINDOW};
use crate::policy::Policy;

/// Longest lock-out (a week: longer ones are an administrator's job, not a rate limit)
/// and most failures allowed before one; defined with the module's argument ranges.
pub use pam_mfa_protocol::limits::{MAX_LOCKOUT_SECS, MAX_MAX_FAILURES};

/// Numbers a caller sets for its own logins; `None` leaves the policy's (or the default).
/// One type with the protocol's, which carries them from the module to the daemon; the
/// rules for them are [`Effective`]'s.
pub use pam_mfa_protocol::Overrides;

/// An override outside its bounds: which one, and the bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be from {min} to {max}")]
pub struct OutOfRange {
    pub name: &'static str,
    pub min: i64,
    pub max: i64,
}

/// The bounds of each override, as (name, min, max); the module arguments use the same.
pub const WINDOW_RANGE: (u32, u32) = (0, MAX_WINDOW);
pub const HOTP_WINDOW_RANGE: (u32, u32) = (0, MAX_HOTP_WINDOW);
pub const MAX_FAILURES_RANGE: (u32, u32) = (1, MAX_MAX_FAILURES);
pub const LOCKOUT_RANGE: (i64, i64) = (1, MAX_LOCKOUT_SECS);

fn check<T: Copy + PartialOrd + Into<i64>>(
    name: &'static str,
    value: Option<T>,
    (min, max): (T, T),
) -> Result<(), OutOfRange> {
    match value {
        Some(v) if v < min || v > max => Err(OutOfRange {
            name,
            min: min.into(),
            max: max.into(),
        }),
        _ => Ok(()),
    }
}

/// What overrides mean: their bounds, and the settings they give with a policy.
pub trait Effective {
    /// Refuses values outside the bounds the module arguments allow.
    fn check(&self) -> Result<(), OutOfRange>;

    /// The settings in effect: each override given, else the policy's number, else the
    /// built-in default. Values are clamped to their bounds, so even an unchecked
    /// override or a hand-edited policy row cannot widen the window past its limit.
    fn settings(&self, policy: &Policy) -> LoginSettings;
}

impl Effective for Overrides {
    fn check(&self) -> Result<(), OutOfRange> {
        check("window", self.window, WINDOW_RANGE)?;
        check("hotp_window", self.hotp_window, HOTP_WINDOW_RANGE)?;
        check("max_failures", self.max_failures, MAX_FAILURES_RANGE)?;
        check("lockout", self.lockout_secs, LOCKOUT_RANGE)
    }

    fn settings(&self, policy: &Policy) -> LoginSettings {
        let default = LoginSettings::default();
        LoginSettings {
            window: self
                .window
                .or(policy.window)
                .unwrap_or(default.window)
                .min(MAX_WINDOW),
            hotp_window: self
                .hotp_window
                .unwrap_or(default.hotp_window)
                .min(MAX_HOTP_WINDOW),
            lockout: crate::lockout::LockoutPolicy {
                max_failures: self
                    .max_failures
                    .or(policy.max_failures)
                    .unwrap_or(default.lockout.max_failures)
                    .clamp(1, MAX_MAX_FAILURES),
                lockout_secs: self
                    .lockout_secs
                    .or(policy.lockout_seconds)
                    .unwrap_or(default.lockout.lockout_secs)
                    .clamp(1, MAX_LOCKOUT_SECS),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_then_policy_then_default() {
        let policy = Policy {
            window: Some(3),
            max_failures: Some(7),
            lockout_seconds: None,
            ..Policy::default()
        };
        let none = Overrides::default().settings(&policy);
        assert_eq!(none.window, 3);
        assert_eq!(none.hotp_window, 10);
        assert_eq!(none.lockout.max_failures, 7);
        assert_eq!(none.lockout.lockout_secs, 300);
        let some = Overrides {
            window: Some(0),
            hotp_window: Some(2),
            max_failures: Some(1),
            lockout_secs: Some(60),
        }
        .settings(&policy);
        assert_eq!(some.window, 0);
        assert_eq!(some.hotp_window, 2);
        assert_eq!(some.lockout.max_failures, 1);
        assert_eq!(some.lockout.lockout_secs, 60);
    }

    #[test]
    fn bounds() {
        assert!(Overrides::default().check().is_ok());
        let bad = [
            Overrides {
                window: Some(MAX_WINDOW + 1),
                ..Overrides::default()
            },
            Overrides {
                hotp_window: Some(MAX_HOTP_WINDOW + 1),
                ..Overrides::default()
            },
            Overrides {
                max_failures: Some(0),
                ..Overrides::default()
            },
            Overrides {
                lockout_secs: Some(0),
                ..Overrides::default()
            },
            Overrides {
                lockout_secs: Some(MAX_LOCKOUT_SECS + 1),
                ..Overrides::default()
            },
        ];
        for o in bad {
            assert!(o.check().is_err(), "{o:?}");
            // Clamped even when unchecked.
            let s = o.settings(&Policy::default());
            assert!(s.window <= MAX_WINDOW && s.lockout.max_failures >= 1);
            assert!((1..=MAX_LOCKOUT_SECS).contains(&s.lockout.lockout_secs));
        }
    }
}
