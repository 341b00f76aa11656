//! Rate limiting of guesses: the failure counter and lock-out rules, as pure functions so
//! they can be tested without a store or a clock.
//!
//! Only short codes (6–8 digits, from an app or a token) can be guessed, so only they are
//! rate limited: a security key answers with a signature, and recovery and bypass codes
//! carry 60 random bits, so none of those is refused because of a lock-out (the way back
//! in for someone locked out, whoever caused it) and none counts a failure.
//!
//! A wrong code is charged by what it could have hit: one typed code is compared with
//! every fresh code of every code device of the user, within each device's window, so a
//! user with 8 devices at window 10 gives a guess 56 times the odds of one device at
//! window 1. Each wrong code therefore counts one failure per [`CODES_PER_FAILURE`] codes it
//! was compared with (at least one), and a lock-out that more than `max_failures` failures
//! started lasts proportionally longer. Together this bounds an attacker who knows the
//! password to `CODES_PER_FAILURE × max_failures` codes compared per `lockout` seconds, on
//! average, whatever the devices and windows: the number the README states.
//!
//! Failures are counted in a window that starts at the first failure and lasts `lockout`
//! seconds; reaching `max_failures` within it locks the user until `lockout` seconds (times
//! the failures over `max_failures`) after that last failure. A right short code clears
//! everything; a key, recovery or bypass code lets the person in but clears nothing (it
//! says nothing about whoever is guessing codes, and would give them a fresh budget).
//! Codes typed while locked are refused without being checked, and do not extend the lock
//! (so a stream of attackers' attempts cannot keep the real user out forever).

use crate::clock::UnixTime;

/// Codes compared that make one failure: those of one device at the default window of 1
/// (the expected step and one either side), so that the common case, one device at the
/// default window, counts one failure per wrong code as it always has.
pub const CODES_PER_FAILURE: u32 = 3;

/// The failures a wrong answer counts after it was compared with `codes_compared` codes:
/// at least one (an answer that was not even a code still counts once).
pub fn charge(codes_compared: u32) -> u32 {
    codes_compared.div_ceil(CODES_PER_FAILURE).max(1)
}

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

/// One user's recent failures, as stored (defined with their table; the rules that move
/// them are here).
pub use crate::store::auth_state::FailureState;

impl FailureState {
    /// When the user is locked out at `now`, the time the lock ends.
    pub fn locked_at(&self, now: UnixTime) -> Option<i64> {
        self.locked_until.filter(|&until| now < until)
    }

    /// The state after a wrong answer that counts `charge` failures (see [`charge`]) at
    /// `now`.
    pub fn after_failure(self, now: UnixTime, policy: LockoutPolicy, charge: u32) -> Self {
        let window_open =
            self.failures > 0 && now.saturating_sub(self.window_start) < policy.lockout_secs;
        let (failures, window_start) = if window_open {
            (self.failures.saturating_add(charge), self.window_start)
        } else {
            (charge, now)
        };
        let locked_until = (failures >= policy.max_failures).then(|| {
            // `lockout` for `max_failures` failures, longer in proportion beyond them, so
            // that one guess compared with many codes buys no more odds per second than
            // several compared with few.
            let secs = i128::from(policy.lockout_secs) * i128::from(failures)
                / i128::from(policy.max_failures.max(1));
            now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
        });
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
        let s = FailureState::default().after_failure(1000, P, 1);
        assert_eq!(s.failures, 1);
        assert_eq!(s.locked_at(1000), None);
        let s = s.after_failure(1100, P, 1);
        assert_eq!(s.locked_at(1100), None);
        let s = s.after_failure(1200, P, 1);
        assert_eq!(s.failures, 3);
        assert_eq!(s.locked_at(1200), Some(1500));
        assert_eq!(s.locked_at(1499), Some(1500));
        assert_eq!(s.locked_at(1500), None);
    }

    #[test]
    fn failures_spread_out_never_lock() {
        let mut s = FailureState::default();
        for i in 0..20 {
            s = s.after_failure(1000 + i * 301, P, 1);
            assert_eq!(s.failures, 1);
            assert_eq!(s.locked_until, None);
        }
    }

    #[test]
    fn after_a_lock_expires_counting_starts_again() {
        let mut s = FailureState::default();
        for t in [1000, 1001, 1002] {
            s = s.after_failure(t, P, 1);
        }
        assert_eq!(s.locked_at(1002), Some(1302));
        let s = s.after_failure(1400, P, 1);
        assert_eq!((s.failures, s.locked_until), (1, None));
    }

    #[test]
    fn the_window_lasts_exactly_lockout_seconds_from_the_first_failure() {
        // A failure 299 s after the first one is in the same window...
        let s = FailureState::default().after_failure(1000, P, 1);
        let inside = s.after_failure(1299, P, 1);
        assert_eq!((inside.failures, inside.window_start), (2, 1000));
        // ...one 300 s after it starts a new window of its own.
        let outside = s.after_failure(1300, P, 1);
        assert_eq!((outside.failures, outside.window_start), (1, 1300));
        assert_eq!(outside.after_failure(1599, P, 1).failures, 2);
    }

    #[test]
    fn a_state_with_no_failures_starts_its_window_at_the_next_failure() {
        // No failures counted (a right code cleared them) but an old window start kept:
        // the next failure opens a window of its own, so failures `lockout` seconds apart
        // from it are still counted together.
        let cleared = FailureState {
            failures: 0,
            window_start: 1000,
            locked_until: None,
        };
        let s = cleared.after_failure(1100, P, 1);
        assert_eq!((s.failures, s.window_start), (1, 1100));
        let s = s.after_failure(1350, P, 1);
        assert_eq!(
            s.failures, 2,
            "1350 is 250 s after the window opened at 1100"
        );
    }

    #[test]
    fn max_failures_of_one_locks_at_once() {
        let p = LockoutPolicy {
            max_failures: 1,
            lockout_secs: 60,
        };
        let s = FailureState::default().after_failure(10, p, 1);
        assert_eq!(s.locked_at(10), Some(70));
    }

    #[test]
    fn charge_counts_codes_compared_in_threes() {
        assert_eq!(charge(0), 1, "an answer that was not a code still counts");
        assert_eq!(charge(1), 1);
        assert_eq!(charge(3), 1, "one device at window 1: one failure, as ever");
        assert_eq!(charge(4), 2);
        assert_eq!(charge(24), 8, "8 devices at window 1");
        assert_eq!(charge(168), 56, "8 devices at window 10");
    }

    #[test]
    fn a_lock_past_max_failures_lasts_in_proportion() {
        // The guessing budget: one guess against 8 devices at window 10
        // (168 codes, 56 failures) with max_failures 5 locks for 56/5 of `lockout`.
        let p = LockoutPolicy {
            max_failures: 5,
            lockout_secs: 300,
        };
        let s = FailureState::default().after_failure(1000, p, charge(168));
        assert_eq!(s.locked_at(1000), Some(1000 + 300 * 56 / 5));
        // Reaching exactly max_failures locks for exactly `lockout`.
        let mut s = FailureState::default();
        for t in 0..5 {
            s = s.after_failure(2000 + t, p, 1);
        }
        assert_eq!(s.locked_at(2004), Some(2304));
    }

    /// Codes an attacker who knows the password gets compared in `seconds`, guessing
    /// every `every` seconds whenever not locked, against a user whose every guess is
    /// compared with `per_guess` codes.
    fn codes_compared(policy: LockoutPolicy, per_guess: u32, every: i64, seconds: i64) -> u64 {
        codes_compared_with_user(policy, per_guess, every, None, seconds).0
    }

    /// [`codes_compared`] while the user also logs in with a right code every
    /// `user_every` seconds whenever codes are not locked (a success clears the count);
    /// also how many times the user did.
    fn codes_compared_with_user(
        policy: LockoutPolicy,
        per_guess: u32,
        every: i64,
        user_every: Option<i64>,
        seconds: i64,
    ) -> (u64, u64) {
        let mut state = FailureState::default();
        let (mut total, mut successes) = (0u64, 0u64);
        let mut now = 0;
        while now < seconds {
            if user_every.is_some_and(|u| now % u == 0) && state.locked_at(now).is_none() {
                state = FailureState::default();
                successes += 1;
            }
            if now % every == 0 && state.locked_at(now).is_none() {
                total += u64::from(per_guess);
                state = state.after_failure(now, policy, charge(per_guess));
            }
            now += 1;
        }
        (total, successes)
    }

    #[test]
    fn the_guessing_budget_holds_whatever_the_devices_and_windows() {
        // The guessing budget: per `lockout` seconds an attacker gets at
        // most CODES_PER_FAILURE × max_failures codes compared on average, however many
        // devices the user has and however wide their windows, so the README can state
        // one number per day. Allow one lock period's worth on top for the edges.
        const DAY: i64 = 86_400;
        for policy in [
            LockoutPolicy::default(),
            LockoutPolicy {
                max_failures: 1,
                lockout_secs: 60,
            },
            LockoutPolicy {
                max_failures: 20,
                lockout_secs: 900,
            },
        ] {
            let m = u64::from(policy.max_failures);
            let periods = (DAY / policy.lockout_secs) as u64;
            // 1 device at window 0 and 1, 8 at window 1, 8 at window 10, 8 HOTP tokens at
            // hotp_window 100.
            for per_guess in [1u32, 3, 24, 168, 808] {
                let bound = u64::from(CODES_PER_FAILURE) * m * periods
                    + u64::from(CODES_PER_FAILURE) * m
                    + u64::from(per_guess);
                for every in [1, 7, 59, 61, 299, 301] {
                    let got = codes_compared(policy, per_guess, every, DAY);
                    assert!(
                        got <= bound,
                        "{policy:?}, {per_guess} codes a guess, a guess every {every} s: \
                         {got} codes compared in a day, bound {bound}"
                    );
                }
            }
        }
        // Each login of the user with a right code clears the count, and so gives the
        // attacker at most one more budget: 3 × max_failures codes and one guess. (Logins
        // with a key, a recovery or a bypass code clear nothing.)
        let defaults = LockoutPolicy::default();
        for per_guess in [3u32, 24, 168] {
            for (every, user_every) in [(1, 7), (13, 60), (1, 600), (299, 301)] {
                let (got, successes) =
                    codes_compared_with_user(defaults, per_guess, every, Some(user_every), DAY);
                let budget = u64::from(CODES_PER_FAILURE) * 5 + u64::from(per_guess);
                let bound = 4_320 + budget * (1 + successes);
                assert!(
                    got <= bound,
                    "{per_guess} codes a guess, every {every} s, the user every {user_every} \
                     s: {got} codes compared, bound {bound} ({successes} user logins)"
                );
            }
        }
        // At the defaults: 4,335 codes a day for one device at window 1 (a 6-digit code is
        // guessed with a chance of at most 0.44% a day), 5,143 at the largest settings (8
        // devices at hotp_window 100: 0.52%). README, "Guessing odds".
        let defaults = LockoutPolicy::default();
        for (per_guess, most) in [(3, 4_335), (168, 5_143), (808, 5_143)] {
            let fastest = (1..=301)
                .map(|every| codes_compared(defaults, per_guess, every, DAY))
                .max()
                .unwrap_or(0);
            assert!(fastest <= most, "{per_guess}: {fastest} > {most}");
        }
    }
}
