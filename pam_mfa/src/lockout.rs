//! Rate limiting of guesses: the failure counter and lock-out rules, as pure functions so
//! they can be tested without a store or a clock.
//!
//! Failures are counted in a window that starts at the first failure and lasts `lockout`
//! seconds; reaching `max_failures` within it locks the user until `lockout` seconds after
//! that last failure. A success clears everything. Attempts while locked are refused
//! without being checked, and do not extend the lock (so a stream of attackers' attempts
//! cannot keep the real user out forever).

/// The settings that decide when guessing stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub lockout_secs: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout_secs: 300,
        }
    }
}

/// One user's recent failures, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureState {
    pub failures: u32,
    pub window_start: i64,
    pub locked_until: Option<i64>,
}

impl FailureState {
    /// When the user is locked out at `now`, the time the lock ends.
    pub fn locked_at(&self, now: i64) -> Option<i64> {
        self.locked_until.filter(|&until| now < until)
    }

    /// The state after one more failure at `now`.
    pub fn after_failure(self, now: i64, policy: LockoutPolicy) -> Self {
        let window_open =
            self.failures > 0 && now.saturating_sub(self.window_start) < policy.lockout_secs;
        let (failures, window_start) = if window_open {
            (self.failures.saturating_add(1), self.window_start)
        } else {
            (1, now)
        };
        let locked_until = if failures >= policy.max_failures {
            Some(now.saturating_add(policy.lockout_secs))
        } else {
            None
        };
        Self {
            failures,
            window_start,
            locked_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: LockoutPolicy = LockoutPolicy {
        max_failures: 3,
        lockout_secs: 300,
    };

    #[test]
    fn locks_after_max_failures_within_the_window() {
        let s = FailureState::default().after_failure(1000, P);
        assert_eq!(s.failures, 1);
        assert_eq!(s.locked_at(1000), None);
        let s = s.after_failure(1100, P);
        assert_eq!(s.locked_at(1100), None);
        let s = s.after_failure(1200, P);
        assert_eq!(s.failures, 3);
        assert_eq!(s.locked_at(1200), Some(1500));
        assert_eq!(s.locked_at(1499), Some(1500));
        assert_eq!(s.locked_at(1500), None);
    }

    #[test]
    fn failures_spread_out_never_lock() {
        let mut s = FailureState::default();
        for i in 0..20 {
            s = s.after_failure(1000 + i * 301, P);
            assert_eq!(s.failures, 1);
            assert_eq!(s.locked_until, None);
        }
    }

    #[test]
    fn after_a_lock_expires_counting_starts_again() {
        let mut s = FailureState::default();
        for t in [1000, 1001, 1002] {
            s = s.after_failure(t, P);
        }
        assert_eq!(s.locked_at(1002), Some(1302));
        let s = s.after_failure(1400, P);
        assert_eq!((s.failures, s.locked_until), (1, None));
    }

    #[test]
    fn max_failures_of_one_locks_at_once() {
        let p = LockoutPolicy {
            max_failures: 1,
            lockout_secs: 60,
        };
        let s = FailureState::default().after_failure(10, p);
        assert_eq!(s.locked_at(10), Some(70));
    }
}
