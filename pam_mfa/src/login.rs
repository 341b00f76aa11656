//! The login decision: is this answer a fresh, valid code of one of the user's devices?
//!
//! This is where the replay check lives. Checking and recording happen in one
//! `BEGIN IMMEDIATE` transaction, so two logins racing with the same code are serialised by
//! SQLite and the second sees the first one's step: a code is accepted at most once. An
//! HOTP token's counter is moved past the accepted code the same way.
//! The lock-out state is re-read inside the same transaction for the same reason.
//!
//! Only short codes are held back by a lock-out (see [`crate::lockout`]): security keys,
//! recovery and bypass codes are checked whatever the failure state, and their failures
//! count nothing. A user without a device is never locked out either, so a made-up user
//! name and a real account without a device look the same to whoever types at the prompt.

use crate::clock::UnixTime;
use crate::code::{self, Code, CodeError};
use crate::fido2;
use crate::fido2::ceremony::Verified;
use crate::hotp::HotpKey;
use crate::lockout::{self, FailureState, LockoutPolicy};
use crate::names::UserName;
use crate::otp::TotpKey;
use crate::store::{Store, auth_state, devices};
use crate::{Error, Result};
/// The largest `window` and `hotp_window` a login may use (one definition with the
/// module's arguments, in the protocol).
pub use pam_mfa_protocol::limits::{MAX_HOTP_WINDOW, MAX_WINDOW};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginSettings {
    /// Steps accepted on each side of the device's expected step.
    pub window: u32,
    /// How many counter values past the next expected one an HOTP token's code may be
    /// (presses of its button that never reached a login).
    pub hotp_window: u32,
    pub lockout: LockoutPolicy,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            window: 1,
            hotp_window: 10,
            lockout: LockoutPolicy::default(),
        }
    }
}

/// What is known about a user before asking for a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// No active device: policy decides (let through, or prompt and refuse).
    NoDevices,
    /// Too many recent failures: short codes are refused until this time (security keys,
    /// recovery and bypass codes still work).
    Locked {
        until: UnixTime,
    },
    Ready,
}

/// Read-only look before the prompt; the decision itself is re-made in [`verify`].
pub fn readiness(store: &Store, user: &UserName, now: UnixTime) -> Result<Readiness> {
    if !devices::has_active(store.conn(), user.as_str())? {
        return Ok(Readiness::NoDevices);
    }
    let state = auth_state::load(store.conn(), user.as_str())?;
    Ok(match state.locked_at(now) {
        Some(until) => Readiness::Locked { until },
        None => Readiness::Ready,
    })
}

/// When `user` is locked out at `now`, the time the lock ends, whether or not they have a
/// device (a user's own token registrations count failures before they have one).
pub fn locked_until(store: &Store, user: &UserName, now: UnixTime) -> Result<Option<i64>> {
    Ok(auth_state::load(store.conn(), user.as_str())?.locked_at(now))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        device: String,
    },
    Refused {
        reason: Refusal,
        /// Set when this failure started a lock-out.
        locked_until: Option<UnixTime>,
    },
    Locked {
        until: UnixTime,
    },
}

/// Why an answer was refused, for the log (never shown to the person at the prompt,
/// which would help an attacker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Malformed(CodeError),
    WrongCode,
    /// The code was right but its step was already used: someone is replaying it.
    Replayed {
        device: String,
    },
    NoDevices,
    /// A security-key login failed.
    Key(KeyFailure),
}

impl Refusal {
    /// The syslog wording (never a code), the same in the module and the daemon.
    pub fn log_text(&self) -> String {
        match self {
            Self::Malformed(e) => format!("malformed code: {e}"),
            Self::WrongCode => "wrong code".to_owned(),
            Self::Replayed { device } => format!(
                "replayed code of device \"{}\" (already used)",
                device.escape_debug()
            ),
            Self::NoDevices => "no active device".to_owned(),
            Self::Key(f) => crate::fido2::failure_log(f),
        }
    }
}

/// Why a security-key login failed (decided by the relying party in [`crate::fido2`]).
pub use crate::fido2::KeyFailure;

/// What a user can log in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factors {
    pub fido2: Vec<devices::Fido2Device>,
    pub has_totp: bool,
}

/// The user's active security keys and whether they also have a code device.
pub fn factors(store: &Store, user: &UserName) -> Result<Factors> {
    Ok(Factors {
        fido2: devices::active_fido2(store.conn(), user.as_str())?,
        has_totp: devices::has_active_totp(store.conn(), user.as_str())?,
    })
}

/// What a login needs to know before its prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeforePrompt {
    pub readiness: Readiness,
    /// Empty when the user has no device; `fido2` is read only when asked for.
    pub factors: Factors,
}

/// [`readiness`] and, with `with_keys`, [`factors`] as one look: the failure state and
/// one query of the user's active devices. Called inside [`Store::read`] so that it and
/// the policy share one snapshot.
pub fn before_prompt(
    store: &Store,
    user: &UserName,
    now: UnixTime,
    with_keys: bool,
) -> Result<BeforePrompt> {
    let active = devices::active(store.conn(), user.as_str(), with_keys)?;
    if !active.any {
        return Ok(BeforePrompt {
            readiness: Readiness::NoDevices,
            factors: Factors {
                fido2: Vec::new(),
                has_totp: false,
            },
        });
    }
    let state = auth_state::load(store.conn(), user.as_str())?;
    Ok(BeforePrompt {
        readiness: match state.locked_at(now) {
            Some(until) => Readiness::Locked { until },
            None => Readiness::Ready,
        },
        factors: Factors {
            fido2: active.fido2,
            has_totp: active.codes,
        },
    })
}

/// Records a security-key login whose answer verified (`verified`, from
/// [`crate::fido2::ceremony::authenticate`] over `credentials`, made from the user's
/// active keys before the prompt): the new sign count, the failure counter, the last-used
/// time, all in one write transaction.
///
/// The credential is looked up again inside the transaction, and its sign count is
/// checked again against the count stored now: the key may have been revoked, or another
/// login may have used it, while this one waited for the touch. A lock-out does not stop
/// a key, and a refused key counts no failure (there is nothing to guess in a signature).
pub fn record_key_login(
    store: &mut Store,
    user: &UserName,
    credentials: &[devices::Fido2Device],
    verified: Verified,
    now: UnixTime,
) -> Result<Outcome> {
    let attempt = Attempt::begin(store, user.as_str())?;
    let asked = credentials.get(verified.index);
    let current = devices::active_fido2(&attempt.tx, attempt.user)?;
    let device = asked.and_then(|asked| {
        current.iter().find(|d| {
            d.id == asked.id
                && d.credential.credential_id == asked.credential.credential_id
                && d.credential.cose_public_key == asked.credential.cose_public_key
        })
    });
    let failure = match device {
        None => KeyFailure::UnknownCredential,
        Some(device) => {
            match fido2::verify::check_counter(device.credential.sign_count, verified.sign_count) {
                Ok(count) => {
                    devices::record_fido2_use(&attempt.tx, device.id, count, now)?;
                    return attempt.accept_key(&device.credential.name);
                }
                Err(why) => KeyFailure::Rejected {
                    device: device.credential.name.clone(),
                    why,
                },
            }
        }
    };
    // Nothing to record: the transaction ends without a write.
    Ok(key_failure(failure))
}

/// The outcome of a security-key login that failed (no key, timeout, wrong PIN, a bad
/// answer). It counts no failure: a key cannot be guessed, and a lock-out must not be
/// reachable by pulling a key or waiting out its timeout.
pub fn key_failure(failure: KeyFailure) -> Outcome {
    Outcome::Refused {
        reason: Refusal::Key(failure),
        locked_until: None,
    }
}

/// Counts a refusal that was decided elsewhere toward `user`'s lock-out, as a wrong code
/// at a login is (unless the user is locked out already): for guesses that are not
/// logins, such as a user registering a hardware token with codes that do not match.
pub fn count_refusal(
    store: &mut Store,
    user: &UserName,
    reason: Refusal,
    settings: LoginSettings,
    now: UnixTime,
) -> Result<Outcome> {
    let attempt = Attempt::begin(store, user.as_str())?;
    if let Some(until) = attempt.state.locked_at(now) {
        return Ok(Outcome::Locked { until });
    }
    attempt.refuse(reason, settings, now, 1)
}

/// What a recovery or bypass code typed at the prompt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryOutcome {
    Accepted {
        kind: crate::recovery::Kind,
        remaining: u32,
    },
    Refused,
}

/// Checks a recovery or bypass `code` (already normalised, see
/// [`crate::recovery::normalize`]) and records the outcome in one write transaction: the
/// code is used up, and the audit trail names `actor_uid` (the process making a login:
/// root for sshd, the user for a screen locker; the caller of `mfa`). A lock-out does
/// not stop it (it is the way back in for someone locked out) and a wrong one counts no
/// failure: a 60-bit random code cannot be guessed. Nor does a right one clear the
/// failures of short codes (see [`Attempt::succeed`]).
pub fn verify_recovery(
    store: &mut Store,
    user: &UserName,
    code: &str,
    actor_uid: u32,
    now: UnixTime,
) -> Result<RecoveryOutcome> {
    let attempt = Attempt::begin(store, user.as_str())?;
    match crate::recovery::consume(&attempt.tx, attempt.user, code, now)? {
        crate::recovery::Used::Accepted { kind, remaining } => {
            // A way in that bypassed every device is an administrative event: it goes in
            // the audit trail with the code's use, in the same transaction.
            let (action, left) = match kind {
                crate::recovery::Kind::Recovery => ("recovery-login", "recovery codes"),
                crate::recovery::Kind::Bypass => ("bypass-login", "uses of this bypass code"),
            };
            crate::audit::record(
                &attempt.tx,
                now,
                actor_uid,
                attempt.user,
                action,
                None,
                Some(&format!("{remaining} {left} left")),
            )?;
            attempt.succeed()?;
            Ok(RecoveryOutcome::Accepted { kind, remaining })
        }
        crate::recovery::Used::NotFound => Ok(RecoveryOutcome::Refused),
    }
}

/// Checks `answer` for `user` and records the outcome, all in one write transaction.
pub fn verify(
    store: &mut Store,
    user: &UserName,
    answer: &[u8],
    settings: LoginSettings,
    now: UnixTime,
) -> Result<Outcome> {
    let attempt = Attempt::begin(store, user.as_str())?;
    let (tx, user) = (&attempt.tx, attempt.user);
    let devices = devices::active_totp(tx, user)?;
    let tokens = devices::active_hotp(tx, user)?;
    if devices.is_empty() && tokens.is_empty() {
        // Nothing to guess, so nothing is counted: a user without a device is never
        // locked out, exactly like a name that is no account at all.
        return Ok(Outcome::Refused {
            reason: Refusal::NoDevices,
            locked_until: None,
        });
    }
    if let Some(until) = attempt.state.locked_at(now) {
        return Ok(Outcome::Locked { until });
    }
    // How many codes the answer was compared with: what a wrong one is charged.
    let mut compared: u32 = 0;
    let refusal = match code::parse(answer) {
        Err(e) => Refusal::Malformed(e),
        Ok(code) => {
            let window = i64::from(settings.window.min(MAX_WINDOW));
            let mut replayed = None;
            for device in &devices {
                let key = TotpKey::new(&device.secret, device.params)?;
                let Some((lo, hi)) = search_range(device, now, window) else {
                    return Err(Error::CorruptRecord(format!(
                        "device {:?}: drift out of range",
                        device.name
                    )));
                };
                // The replay check: only steps after the last accepted one are
                // searched, so a code that was already used (or an older one) is
                // never accepted again.
                let fresh_from = match device.last_step {
                    None => lo,
                    Some(last) => lo.max(last.saturating_add(1)),
                };
                if let Some(step) = key.find(&code, fresh_from..=hi) {
                    devices::record_use(tx, device.id, step, now)?;
                    return attempt.accept_code(&device.name);
                }
                compared = compared.saturating_add(steps_in(fresh_from, hi));
                let used_up_to = fresh_from.saturating_sub(1).min(hi);
                if fresh_from > lo && key.find(&code, lo..=used_up_to).is_some() {
                    replayed.get_or_insert_with(|| device.name.clone());
                }
            }
            let hotp_window = i64::from(settings.hotp_window.min(MAX_HOTP_WINDOW));
            for device in &tokens {
                compared = compared.saturating_add(steps_in(0, hotp_window));
                match check_hotp(device, &code, hotp_window)? {
                    HotpMatch::Fresh(counter) => {
                        // Past the accepted value, in the transaction that checked
                        // it: this code and every earlier one are used up.
                        devices::advance_counter(tx, device.id, counter + 1, Some(now))?;
                        return attempt.accept_code(&device.name);
                    }
                    HotpMatch::Used => {
                        replayed.get_or_insert_with(|| device.name.clone());
                    }
                    HotpMatch::No => {}
                }
            }
            match replayed {
                Some(device) => Refusal::Replayed { device },
                None => Refusal::WrongCode,
            }
        }
    };
    attempt.refuse(refusal, settings, now, lockout::charge(compared))
}

/// How many values `lo..=hi` holds (none when it is empty).
fn steps_in(lo: i64, hi: i64) -> u32 {
    u32::try_from(hi.saturating_sub(lo).saturating_add(1).max(0)).unwrap_or(u32::MAX)
}

/// The steps a login may match for `device`: `window` either side of now plus its drift;
/// `None` only for values no store we wrote can hold.
fn search_range(device: &devices::TotpDevice, now: UnixTime, window: i64) -> Option<(i64, i64)> {
    let centre = device.params.step_at(now).checked_add(device.drift)?;
    Some((centre.checked_sub(window)?, centre.checked_add(window)?))
}

/// One login attempt's write transaction (`BEGIN IMMEDIATE`), with the user's failure
/// state as read inside it: the check, the recording of a used code, and the failure
/// count all commit together, or not at all.
struct Attempt<'s> {
    tx: rusqlite::Transaction<'s>,
    user: &'s str,
    state: FailureState,
}

impl<'s> Attempt<'s> {
    /// Starts an attempt. Whether a lock-out stops it is the caller's rule: only short
    /// codes are held back by one.
    fn begin(store: &'s mut Store, user: &'s str) -> Result<Self> {
        let tx = store.write()?;
        let state = auth_state::load(&tx, user)?;
        Ok(Self { tx, user, state })
    }

    /// Ends a successful attempt with a security key, a recovery or a bypass code: the
    /// caller has recorded what was used, and it commits. The failures of short codes are
    /// left as they are: such a success says nothing about whoever is guessing codes, and
    /// clearing them would hand that guesser a fresh budget every time the user logs in
    /// with a key (README, "Lock-out and guessing odds").
    fn succeed(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }

    /// Ends a successful attempt with a short code: what was used is recorded by the
    /// caller, the failures are forgotten (the person typing codes is the user), and it
    /// all commits at once. With nothing stored (the usual case) there is no row to
    /// delete, and one statement less. (A time-based device's drift is left as `mfa
    /// resync` set it: following every login's offset would let one early or late code
    /// shift the window for all later ones.)
    fn accept_code(self, device: &str) -> Result<Outcome> {
        if self.state != FailureState::default() {
            auth_state::clear(&self.tx, self.user)?;
        }
        self.tx.commit()?;
        Ok(Outcome::Accepted {
            device: device.to_owned(),
        })
    }

    /// [`Self::succeed`] for a security key that answered.
    fn accept_key(self, device: &str) -> Result<Outcome> {
        self.succeed()?;
        Ok(Outcome::Accepted {
            device: device.to_owned(),
        })
    }

    /// Counts `charge` failures (see [`lockout::charge`]) for a refused answer and
    /// commits; the outcome names the lock-out it started, if any.
    fn refuse(
        self,
        reason: Refusal,
        settings: LoginSettings,
        now: UnixTime,
        charge: u32,
    ) -> Result<Outcome> {
        let next = self.state.after_failure(now, settings.lockout, charge);
        auth_state::save(&self.tx, self.user, &next, now)?;
        // Someone is guessing: no login of this user goes without a code any more.
        if next.locked_at(now).is_some() && self.state.locked_at(now).is_none() {
            crate::remembered::forget(&self.tx, self.user)?;
        }
        self.tx.commit()?;
        Ok(Outcome::Refused {
            reason,
            locked_until: next.locked_until,
        })
    }
}

/// What a code is to an event-based token.
enum HotpMatch {
    /// The code of this counter value, at or after the next one expected.
    Fresh(i64),
    /// The code of a value already used: a replay.
    Used,
    No,
}

/// Looks for `code` among the token's next `window + 1` counter values (the next one and
/// `window` presses beyond it) and, for the log, among the `window + 1` before them.
fn check_hotp(device: &devices::HotpDevice, code: &Code, window: i64) -> Result<HotpMatch> {
    let key = HotpKey::new(&device.secret, device.params)?;
    let next = device.counter;
    if let Some(counter) = key.find(code, next..=next + window) {
        return Ok(HotpMatch::Fresh(counter));
    }
    // The values before `next` a replay may be: none before the first press (the range
    // is then empty).
    let used = (next - 1 - window).max(0)..=next.saturating_sub(1);
    if key.find(code, used).is_some() {
        return Ok(HotpMatch::Used);
    }
    Ok(HotpMatch::No)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::{begin_totp, finish_totp, resync};
    use crate::test_support::*;

    /// Alice with one active device registered at T0 − 1 h; returns its secret.
    pub(super) fn enrolled(ts: &mut TempStore, who: &str, name: &str) -> String {
        let t = T0 - 3600;
        let p = begin_totp(&mut ts.store, &user(who), &device(name), "host", t).unwrap();
        let s = p.secret.to_base32().to_string();
        let (c1, c2) = (oathtool(&s, t - 30), oathtool(&s, t));
        finish_totp(
            &mut ts.store,
            &user(who),
            &device(name),
            c1.as_bytes(),
            c2.as_bytes(),
            t,
        )
        .unwrap();
        s
    }

    fn try_code(ts: &mut TempStore, who: &str, code: &str, at: UnixTime, window: u32) -> Outcome {
        let settings = LoginSettings {
            window,
            ..LoginSettings::default()
        };
        verify(&mut ts.store, &user(who), code.as_bytes(), settings, at).unwrap()
    }

    fn accepted(o: &Outcome) -> bool {
        matches!(o, Outcome::Accepted { .. })
    }

    /// How often each statement of the store's connection was prepared again.
    fn reprepared(ts: &TempStore) -> std::collections::HashMap<String, i32> {
        let mut out = std::collections::HashMap::new();
        // SAFETY: the handle is the store's open connection, used on this thread only;
        // sqlite3_next_stmt walks its statements (none is finalized meanwhile), and
        // sqlite3_stmt_status and sqlite3_sql only read a statement.
        unsafe {
            let db = ts.store.conn().handle();
            let mut stmt = rusqlite::ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
            while !stmt.is_null() {
                let n = rusqlite::ffi::sqlite3_stmt_status(
                    stmt,
                    rusqlite::ffi::SQLITE_STMTSTATUS_REPREPARE,
                    0,
                );
                let sql = std::ffi::CStr::from_ptr(rusqlite::ffi::sqlite3_sql(stmt));
                out.insert(sql.to_string_lossy().into_owned(), n);
                stmt = rusqlite::ffi::sqlite3_next_stmt(db, stmt);
            }
        }
        out
    }

    /// A login's statements are prepared once and reused as they are (mfad keeps them):
    /// none is prepared again at later logins (see `devices::active_totp` for what made
    /// SQLite do that at every login).
    #[test]
    fn logins_reuse_their_statements_without_preparing_them_again() {
        let mut ts = temp_store();
        let s = enrolled(&mut ts, "alice", "phone");
        let b = enrolled(&mut ts, "bob", "phone");
        let login = |ts: &mut TempStore, i: i64, who: &str, secret: &str| {
            let at = T0 + 30 * i;
            ts.store
                .read(|st| before_prompt(st, &user(who), at, true).map(|_| ()))
                .unwrap();
            assert!(accepted(&try_code(ts, who, &oathtool(secret, at), at, 1)));
        };
        // Every statement of a login prepared once.
        login(&mut ts, 0, "alice", &s);
        login(&mut ts, 1, "bob", &b);
        let before = reprepared(&ts);
        for i in 2..8 {
            let (who, secret) = if i % 2 == 0 {
                ("alice", &s)
            } else {
                ("bob", &b)
            };
            login(&mut ts, i, who, secret);
        }
        let again: Vec<_> = reprepared(&ts)
            .into_iter()
            .filter(|(sql, n)| before.get(sql).copied().unwrap_or(0) < *n)
            .collect();
        assert!(again.is_empty(), "{again:#?}");
    }

    #[test]
    fn right_code_once_then_replay_refused() {
        let mut ts = temp_store();
        let s = enrolled(&mut ts, "alice", "phone");
        let code = oathtool(&s, T0);
        assert_eq!(
            try_code(&mut ts, "alice", &code, T0, 1),
            Outcome::Accepted {
                device: "phone".into()
            }
        );
        assert!(matches!(
            try_code(&mut ts, "alice", &code, T0 + 1, 1),
            Outcome::Refused {
                reason: Refusal::Replayed { .. },
                ..
            }
        ));
        // An older code (still inside the window) is refused too.
        let older = oathtool(&s, T0 - 30);
        assert!(!accepted(&try_code(&mut ts, "alice", &older, T0 + 2, 1)));
        // The next step's code works.
        let next = oathtool(&s, T0 + 30);
        assert!(accepted(&try_code(&mut ts, "alice", &next, T0 + 30, 1)));
    }

    #[test]
    fn window_bounds() {
        let mut ts = temp_store();
        let s = enrolled(&mut ts, "alice", "phone");
        let two_ahead = oathtool(&s, T0 + 60);
        assert!(!accepted(&try_code(&mut ts, "alice", &two_ahead, T0, 1)));
        assert!(accepted(&try_code(&mut ts, "alice", &two_ahead, T0, 2)));
        let two_behind = oathtool(&s, T0 + 300 - 60);
        assert!(!accepted(&try_code(
            &mut ts,
            "alice",
            &two_behind,
            T0 + 300,
            0
        )));
        assert!(!accepted(&try_code(
            &mut ts,
            "alice",
            &two_behind,
            T0 + 300,
            1
        )));
        assert!(accepted(&try_code(
            &mut ts,
            "alice",
            &two_behind,
            T0 + 300,
            2
        )));
    }

    #[test]
    fn codes_of_other_users_and_wrong_codes_are_refused() {
        let mut ts = temp_store();
        let _alice = enrolled(&mut ts, "alice", "phone");
        let bob = enrolled(&mut ts, "bob", "phone");
        let bobs = oathtool(&bob, T0);
        assert!(matches!(
            try_code(&mut ts, "alice", &bobs, T0, 1),
            Outcome::Refused {
                reason: Refusal::WrongCode,
                ..
            }
        ));
        // A day later, nothing of alice's window was used yet: still a wrong code, not
        // a replay.
        let later = T0 + 86_400;
        let bobs = oathtool(&bob, later);
        let o = try_code(&mut ts, "alice", &bobs, later, 1);
        assert!(
            matches!(
                o,
                Outcome::Refused {
                    reason: Refusal::WrongCode,
                    ..
                }
            ),
            "{o:?}"
        );
        for junk in ["", "abcdef", "12345", "123456789", "12 34 5x"] {
            assert!(matches!(
                try_code(&mut ts, "bob", junk, T0, 1),
                Outcome::Refused {
                    reason: Refusal::Malformed(_),
                    ..
                }
            ));
        }
        assert!(matches!(
            try_code(&mut ts, "nobody", "123456", T0, 1),
            Outcome::Refused {
                reason: Refusal::NoDevices,
                ..
            }
        ));
    }

    #[test]
    fn any_of_several_devices_and_each_keeps_its_own_replay_mark() {
        let mut ts = temp_store();
        let phone = enrolled(&mut ts, "alice", "phone");
        let tablet = enrolled(&mut ts, "alice", "tablet");
        let o = try_code(&mut ts, "alice", &oathtool(&tablet, T0), T0, 1);
        assert_eq!(
            o,
            Outcome::Accepted {
                device: "tablet".into()
            }
        );
        let o = try_code(&mut ts, "alice", &oathtool(&phone, T0), T0, 1);
        assert_eq!(
            o,
            Outcome::Accepted {
                device: "phone".into()
            }
        );
    }

    /// The syslog line says why, in words an administrator can act on, and never a code.
    #[test]
    fn refusals_are_logged_by_their_reason() {
        assert_eq!(Refusal::WrongCode.log_text(), "wrong code");
        assert_eq!(Refusal::NoDevices.log_text(), "no active device");
        assert_eq!(
            Refusal::Replayed {
                device: "phone\n".into()
            }
            .log_text(),
            "replayed code of device \"phone\\n\" (already used)"
        );
        let malformed = Refusal::Malformed(crate::code::CodeError::Letters).log_text();
        assert!(
            malformed.starts_with("malformed code: it has letters"),
            "{malformed}"
        );
    }

    #[test]
    fn lockout_counts_refuses_and_releases() {
        let mut ts = temp_store();
        let s = enrolled(&mut ts, "alice", "phone");
        let settings = LoginSettings {
            window: 1,
            lockout: LockoutPolicy {
                max_failures: 3,
                lockout_secs: 300,
            },
            ..LoginSettings::default()
        };
        let u = user("alice");
        for i in 0..3 {
            let o = verify(&mut ts.store, &u, b"000000", settings, T0 + i).unwrap();
            let locked = matches!(
                o,
                Outcome::Refused {
                    locked_until: Some(_),
                    ..
                }
            );
            assert_eq!(locked, i == 2, "attempt {i}: {o:?}");
        }
        assert_eq!(
            readiness(&ts.store, &u, T0 + 10).unwrap(),
            Readiness::Locked { until: T0 + 302 }
        );
        // The same lock as a user's own token registration sees it.
        assert_eq!(
            locked_until(&ts.store, &u, T0 + 10).unwrap(),
            Some(T0 + 302)
        );
        assert_eq!(locked_until(&ts.store, &u, T0 + 302).unwrap(), None);
        // The right code while locked is refused without being checked or counted.
        let right = oathtool(&s, T0 + 60);
        assert_eq!(
            verify(&mut ts.store, &u, right.as_bytes(), settings, T0 + 60).unwrap(),
            Outcome::Locked { until: T0 + 302 }
        );
        // After the lock-out it works, and a success clears the counter.
        let later = T0 + 302;
        let right = oathtool(&s, later);
        assert!(accepted(
            &verify(&mut ts.store, &u, right.as_bytes(), settings, later).unwrap()
        ));
        assert_eq!(readiness(&ts.store, &u, later).unwrap(), Readiness::Ready);
        // Other users are never affected by alice's lock.
        assert_eq!(
            readiness(&ts.store, &user("bob"), T0 + 10).unwrap(),
            Readiness::NoDevices
        );
    }

    /// Remembered logins end when guessing starts a lock-out, not at every wrong code (a
    /// typo must not cost the user every remembered host).
    #[test]
    fn only_the_refusal_that_starts_a_lock_out_forgets_remembered_logins() {
        let mut ts = temp_store();
        enrolled(&mut ts, "alice", "phone");
        crate::store::remembered::remember(
            ts.store.conn(),
            "alice",
            "sshd",
            "192.0.2.7",
            T0,
            T0 + 3600,
        )
        .unwrap();
        let remembered = |ts: &TempStore, at| {
            crate::store::remembered::get(ts.store.conn(), "alice", "sshd", "192.0.2.7", at)
                .unwrap()
                .is_some()
        };
        let settings = LoginSettings {
            lockout: LockoutPolicy {
                max_failures: 3,
                lockout_secs: 300,
            },
            ..LoginSettings::default()
        };
        let u = user("alice");
        for i in 0..2 {
            verify(&mut ts.store, &u, b"000000", settings, T0 + i).unwrap();
            assert!(remembered(&ts, T0 + i), "forgotten after wrong code {i}");
        }
        verify(&mut ts.store, &u, b"000000", settings, T0 + 2).unwrap();
        assert!(
            !remembered(&ts, T0 + 2),
            "still remembered after the lock-out began"
        );
    }

    #[test]
    fn recovery_codes_work_while_locked_and_wrong_ones_count_nothing() {
        // The lock-out limits guessing of short codes only; a
        // recovery code (60 random bits) is the way back in for someone locked out.
        let mut ts = temp_store();
        enrolled(&mut ts, "alice", "phone");
        let u = user("alice");
        let settings = LoginSettings {
            lockout: LockoutPolicy {
                max_failures: 2,
                lockout_secs: 300,
            },
            ..LoginSettings::default()
        };
        let codes = {
            let tx = ts.store.write().unwrap();
            let codes = crate::recovery::generate_set(&tx, "alice", T0, 0).unwrap();
            tx.commit().unwrap();
            codes
        };
        for t in 0..2 {
            verify(&mut ts.store, &u, b"000000", settings, T0 + t).unwrap();
        }
        assert!(matches!(
            readiness(&ts.store, &u, T0 + 5).unwrap(),
            Readiness::Locked { .. }
        ));
        // Wrong recovery codes: refused, and they neither lengthen nor start anything.
        for _ in 0..10 {
            assert_eq!(
                verify_recovery(&mut ts.store, &u, "aaaaaaaaaaaa", 0, T0 + 6).unwrap(),
                RecoveryOutcome::Refused
            );
        }
        assert_eq!(
            readiness(&ts.store, &u, T0 + 7).unwrap(),
            Readiness::Locked { until: T0 + 301 }
        );
        let code = crate::recovery::normalize(codes[0].as_bytes()).unwrap();
        assert!(matches!(
            verify_recovery(&mut ts.store, &u, &code, 1234, T0 + 8).unwrap(),
            RecoveryOutcome::Accepted { remaining: 9, .. }
        ));
        // The success lets the person in but leaves the short codes locked: it says
        // nothing about whoever was guessing them.
        assert_eq!(
            readiness(&ts.store, &u, T0 + 9).unwrap(),
            Readiness::Locked { until: T0 + 301 }
        );
        // The audit trail names the actor given (the caller of `mfa`, or the process
        // making the login).
        let actor: i64 = ts
            .store
            .conn()
            .query_row(
                "SELECT actor_uid FROM audit WHERE action = 'recovery-login'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(actor, 1234);
    }

    #[test]
    fn users_without_a_device_are_never_locked_out() {
        // Made-up names are never locked out (nothing is stored for
        // them), so neither is a real account without a device, or the lock-out message
        // would tell which names are accounts.
        let mut ts = temp_store();
        let settings = LoginSettings {
            lockout: LockoutPolicy {
                max_failures: 1,
                lockout_secs: 300,
            },
            ..LoginSettings::default()
        };
        let u = user("nodevice");
        for t in 0..10 {
            assert_eq!(
                verify(&mut ts.store, &u, b"000000", settings, T0 + t).unwrap(),
                Outcome::Refused {
                    reason: Refusal::NoDevices,
                    locked_until: None
                }
            );
        }
        assert_eq!(
            readiness(&ts.store, &u, T0 + 10).unwrap(),
            Readiness::NoDevices
        );
        let rows: i64 = ts
            .store
            .conn()
            .query_row("SELECT COUNT(*) FROM auth_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            rows, 0,
            "a failure was stored for a user with nothing to guess"
        );
    }

    #[test]
    fn a_wrong_code_is_charged_by_the_codes_it_was_compared_with() {
        // 8 devices at window 10 give one guess
        // 168 chances; it costs 56 failures, so with max_failures 5 the first wrong code
        // locks for 56/5 of the lock-out time.
        let mut ts = temp_store();
        let mut secrets = Vec::new();
        for i in 0..8 {
            secrets.push(enrolled(&mut ts, "alice", &format!("phone{i}")));
        }
        let u = user("alice");
        let wide = LoginSettings {
            window: 10,
            ..LoginSettings::default()
        };
        // A code none of the 8 devices shows anywhere in the window.
        let taken: Vec<String> = secrets
            .iter()
            .flat_map(|s| (-12..=12).map(move |k| oathtool(s, T0 + 30 * k)))
            .collect();
        let wrong = (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|c| !taken.contains(c))
            .unwrap();
        assert_eq!(
            verify(&mut ts.store, &u, wrong.as_bytes(), wide, T0).unwrap(),
            Outcome::Refused {
                reason: Refusal::WrongCode,
                locked_until: Some(T0 + 300 * 56 / 5)
            }
        );
        // The same user with one device at the default window: one failure a guess.
        let mut ts = temp_store();
        enrolled(&mut ts, "bob", "phone");
        let narrow = LoginSettings::default();
        for t in 0..4 {
            let o = verify(&mut ts.store, &user("bob"), b"000000", narrow, T0 + t).unwrap();
            assert!(
                matches!(
                    o,
                    Outcome::Refused {
                        locked_until: None,
                        ..
                    }
                ),
                "{o:?}"
            );
        }
    }

    #[test]
    fn resync_moves_the_window_to_the_device_clock() {
        let mut ts = temp_store();
        let s = enrolled(&mut ts, "alice", "phone");
        let ahead = |t: i64| oathtool(&s, t + 600);
        assert!(!accepted(&try_code(&mut ts, "alice", &ahead(T0), T0, 1)));
        let (r1, r2) = (ahead(T0 + 30), ahead(T0 + 60));
        resync(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            r1.as_bytes(),
            r2.as_bytes(),
            T0 + 60,
        )
        .unwrap();
        assert!(accepted(&try_code(
            &mut ts,
            "alice",
            &ahead(T0 + 90),
            T0 + 90,
            1
        )));
        assert!(accepted(&try_code(
            &mut ts,
            "alice",
            &ahead(T0 + 120),
            T0 + 120,
            1
        )));
    }

    #[test]
    fn eight_digit_sha256_devices() {
        let mut ts = temp_store();
        let secret = crate::secret::Secret::generate().unwrap();
        let params = crate::otp::TotpParams {
            algorithm: crate::otp::Algorithm::Sha256,
            digits: 8,
            period: 30,
        };
        crate::store::devices::insert_pending_totp(
            ts.store.conn(),
            "dave",
            "token",
            &secret,
            params,
            T0,
            T0 + 600,
        )
        .unwrap();
        let s = secret.to_base32().to_string();
        let code = |t: i64| oathtool_with(&s, t, &["--digits=8", "--totp=sha256"]);
        let (c1, c2) = (code(T0 - 30), code(T0));
        finish_totp(
            &mut ts.store,
            &user("dave"),
            &device("token"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        assert!(accepted(&try_code(
            &mut ts,
            "dave",
            &code(T0 + 30),
            T0 + 30,
            1
        )));
        // Its 6-digit truncation is not a valid answer.
        let six = &code(T0 + 60)[2..];
        assert!(!accepted(&try_code(&mut ts, "dave", six, T0 + 60, 1)));
    }

    #[test]
    fn corrupt_replay_state_is_refused_not_wrapped_around() {
        let mut ts = temp_store();
        let s = enrolled(&mut ts, "alice", "phone");
        let code = oathtool(&s, T0);
        for (column, value) in [
            ("last_step", i64::MAX),
            ("drift", i64::MIN),
            ("drift", 5000),
        ] {
            ts.store
                .conn()
                .execute(&format!("UPDATE devices SET {column} = ?1"), [value])
                .unwrap();
            let settings = LoginSettings::default();
            let r = verify(&mut ts.store, &user("alice"), code.as_bytes(), settings, T0);
            assert!(
                matches!(r, Err(crate::Error::CorruptRecord(_))),
                "{column}={value}: {r:?}"
            );
            ts.store
                .conn()
                .execute("UPDATE devices SET last_step = 0, drift = 0", [])
                .unwrap();
        }
        assert!(accepted(&try_code(&mut ts, "alice", &code, T0, 1)));
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use crate::fido2::auth_data::{FLAG_UP, build};
    use crate::fido2::ceremony::{self, Person};
    use crate::fido2::cose::CoseKey;
    use crate::fido2::transport::{
        GetAssertionRequest, KeyInfo, MakeCredentialRequest, RawAssertion, RawAttestation,
        Transport, TransportError,
    };
    use crate::fido2::verify::{Rejection, client_data_hash, rp_id_hash};
    use crate::test_support::*;
    use p256::ecdsa::signature::Signer as _;
    use std::cell::Cell;
    use std::time::Duration;

    const RP: &str = "pam://host";

    struct TestKey {
        sk: p256::ecdsa::SigningKey,
        id: Vec<u8>,
        counter: Cell<u32>,
    }

    /// How a key's answer departs from a good one.
    #[derive(Clone, Copy, PartialEq)]
    enum Answer {
        /// Counts up by this much and signs the request.
        Step(u32),
        /// Leaves the credential id out.
        WithoutId,
        /// Signs another challenge than the one asked.
        OtherChallenge,
    }

    impl TestKey {
        fn register(ts: &mut TempStore, who: &str, name: &str, seed: u8) -> Self {
            let sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
            let id = format!("cred-{who}-{name}").into_bytes();
            let cose = CoseKey::Es256(*sk.verifying_key()).to_cose();
            let tx = ts.store.write().unwrap();
            devices::insert_fido2(
                &tx,
                who,
                name,
                &devices::NewFido2 {
                    credential_id: &id,
                    cose_public_key: &cose,
                    sign_count: 1,
                    rp_id: RP,
                    uv_required: false,
                },
                T0,
            )
            .unwrap();
            tx.commit().unwrap();
            Self {
                sk,
                id,
                counter: Cell::new(1),
            }
        }
    }

    /// A plugged-in key answering as told.
    struct Plugged<'a>(&'a TestKey, Answer);

    impl Transport for Plugged<'_> {
        fn name(&self) -> &'static str {
            "test"
        }
        fn present(&self) -> bool {
            true
        }
        fn info(&self) -> Result<KeyInfo, TransportError> {
            Ok(KeyInfo::default())
        }
        fn make_credential(
            &self,
            _: &MakeCredentialRequest<'_>,
        ) -> Result<RawAttestation, TransportError> {
            Err(TransportError::Device("not in these tests".into()))
        }
        fn get_assertion(
            &self,
            req: &GetAssertionRequest<'_>,
        ) -> Result<RawAssertion, TransportError> {
            let Plugged(key, how) = *self;
            if let Answer::Step(n) = how {
                key.counter.set(key.counter.get() + n);
            }
            let ad = build(&rp_id_hash(RP), FLAG_UP, key.counter.get(), None);
            let challenge = match how {
                Answer::OtherChallenge => [2; 32],
                _ => req.challenge,
            };
            let mut m = ad.clone();
            m.extend_from_slice(&client_data_hash(&challenge));
            let sig: p256::ecdsa::Signature = key.sk.sign(&m);
            Ok(RawAssertion {
                credential_id: (how != Answer::WithoutId).then(|| key.id.clone()),
                auth_data: ad,
                signature: sig.to_der().as_bytes().to_vec(),
            })
        }
    }

    struct Nobody;

    impl Person<()> for Nobody {
        fn pin(&mut self) -> std::result::Result<Option<crate::fido2::Pin>, ()> {
            Ok(None)
        }
        fn touch_cue(&mut self) {}
    }

    /// A key login of `who` with `key` answering `how`: the ceremony as `mfa` and
    /// libpam_mfa_keys.so run it, then the store's record of it.
    fn login_with(ts: &mut TempStore, who: &str, key: &TestKey, how: Answer) -> Outcome {
        let u = user(who);
        let snapshot = devices::active_fido2(ts.store.conn(), who).unwrap();
        let credentials: Vec<_> = snapshot.iter().map(|d| d.credential.clone()).collect();
        let answer = ceremony::authenticate(
            &Plugged(key, how),
            &credentials,
            Duration::from_secs(1),
            &mut Nobody,
        )
        .unwrap();
        match answer {
            Ok(v) => record_key_login(&mut ts.store, &u, &snapshot, v, T0).unwrap(),
            Err(f) => key_failure(f),
        }
    }

    fn refused_with(o: &Outcome) -> Option<&KeyFailure> {
        match o {
            Outcome::Refused {
                reason: Refusal::Key(f),
                ..
            } => Some(f),
            _ => None,
        }
    }

    #[test]
    fn accepted_assertion_stores_the_count_and_a_regression_is_refused() {
        let mut ts = temp_store();
        let key = TestKey::register(&mut ts, "alice", "yubi", 3);
        assert_eq!(
            login_with(&mut ts, "alice", &key, Answer::Step(4)),
            Outcome::Accepted {
                device: "yubi".into()
            }
        );
        let stored = devices::active_fido2(ts.store.conn(), "alice").unwrap();
        assert_eq!(stored[0].credential.sign_count, 5);
        // The same count again (a cloned key, or a replay): refused.
        let o = login_with(&mut ts, "alice", &key, Answer::Step(0));
        assert!(
            matches!(
                refused_with(&o),
                Some(KeyFailure::Rejected {
                    why: Rejection::CounterRegression { stored: 5, got: 5 },
                    ..
                })
            ),
            "{o:?}"
        );
        // No failure is counted: a key cannot be guessed (the lock-out is for short codes).
        assert_eq!(
            auth_state::load(ts.store.conn(), "alice").unwrap().failures,
            0
        );
        assert!(matches!(
            login_with(&mut ts, "alice", &key, Answer::Step(1)),
            Outcome::Accepted { .. }
        ));
        assert_eq!(
            auth_state::load(ts.store.conn(), "alice").unwrap().failures,
            0
        );
        // A key omitting the credential with a one-entry allow list is fine.
        key.counter.set(key.counter.get() + 1);
        assert!(matches!(
            login_with(&mut ts, "alice", &key, Answer::WithoutId),
            Outcome::Accepted { .. }
        ));
    }

    #[test]
    fn credentials_of_other_users_or_without_an_id_among_several_are_refused() {
        let mut ts = temp_store();
        let alice = TestKey::register(&mut ts, "alice", "yubi", 3);
        let bob = TestKey::register(&mut ts, "bob", "yubi", 4);
        assert_eq!(
            refused_with(&login_with(&mut ts, "alice", &bob, Answer::Step(1))),
            Some(&KeyFailure::UnknownCredential)
        );
        // A wrong challenge.
        assert!(matches!(
            refused_with(&login_with(
                &mut ts,
                "alice",
                &alice,
                Answer::OtherChallenge
            )),
            Some(KeyFailure::Rejected {
                why: Rejection::Signature(_),
                ..
            })
        ));
        // No credential id with two allowed: which one was it?
        let _second = TestKey::register(&mut ts, "alice", "spare", 5);
        alice.counter.set(alice.counter.get() + 1);
        assert_eq!(
            refused_with(&login_with(&mut ts, "alice", &alice, Answer::WithoutId)),
            Some(&KeyFailure::UnknownCredential)
        );
    }

    /// What changed while the key waited for its touch is seen when the login is recorded:
    /// a key revoked meanwhile, or a count another login already stored.
    #[test]
    fn the_record_checks_the_store_as_it_is_now() {
        let mut ts = temp_store();
        let _key = TestKey::register(&mut ts, "alice", "yubi", 3);
        let u = user("alice");
        let snapshot = devices::active_fido2(ts.store.conn(), "alice").unwrap();
        let v = |sign_count| Verified {
            index: 0,
            sign_count,
        };
        // Another login stored 9 meanwhile: an answer with 7 is refused.
        ts.store
            .conn()
            .execute("UPDATE devices SET sign_count = 9", [])
            .unwrap();
        let o = record_key_login(&mut ts.store, &u, &snapshot, v(7), T0).unwrap();
        assert!(
            matches!(
                refused_with(&o),
                Some(KeyFailure::Rejected {
                    why: Rejection::CounterRegression { stored: 9, got: 7 },
                    ..
                })
            ),
            "{o:?}"
        );
        // An index the request did not have.
        let o = record_key_login(
            &mut ts.store,
            &u,
            &snapshot,
            Verified {
                index: 1,
                sign_count: 10,
            },
            T0,
        )
        .unwrap();
        assert_eq!(refused_with(&o), Some(&KeyFailure::UnknownCredential));
        // The row the prompt saw now holds another credential or another public key
        // (replaced meanwhile): not the key that answered.
        for change in [0, 1] {
            let mut replaced = snapshot.clone();
            if change == 0 {
                replaced[0].credential.credential_id.push(0);
            } else {
                replaced[0].credential.cose_public_key.push(0);
            }
            let o = record_key_login(&mut ts.store, &u, &replaced, v(10), T0).unwrap();
            assert_eq!(refused_with(&o), Some(&KeyFailure::UnknownCredential));
        }
        // Revoked meanwhile.
        ts.store.conn().execute("DELETE FROM devices", []).unwrap();
        let o = record_key_login(&mut ts.store, &u, &snapshot, v(10), T0).unwrap();
        assert_eq!(refused_with(&o), Some(&KeyFailure::UnknownCredential));
    }

    #[test]
    fn keys_count_toward_the_eight_devices() {
        let mut ts = temp_store();
        for i in 0..8u8 {
            TestKey::register(&mut ts, "alice", &format!("key{i}"), i + 1);
        }
        let tx = ts.store.write().unwrap();
        let r = devices::insert_fido2(
            &tx,
            "alice",
            "key9",
            &devices::NewFido2 {
                credential_id: b"nine",
                cose_public_key: &[0xa0],
                sign_count: 0,
                rp_id: RP,
                uv_required: false,
            },
            T0,
        );
        assert!(
            matches!(r, Err(crate::Error::TooManyDevices { .. })),
            "{r:?}"
        );
        drop(tx);
        let r =
            crate::enrollment::begin_totp(&mut ts.store, &user("alice"), &device("app"), "h", T0);
        assert!(matches!(r, Err(crate::Error::TooManyDevices { .. })));
        // A duplicate credential id (another user) is refused as already registered.
        let tx = ts.store.write().unwrap();
        let r = devices::insert_fido2(
            &tx,
            "bob",
            "key",
            &devices::NewFido2 {
                credential_id: b"cred-alice-key0",
                cose_public_key: &[0xa0],
                sign_count: 0,
                rp_id: RP,
                uv_required: false,
            },
            T0,
        );
        assert!(
            matches!(
                r,
                Err(crate::Error::Fido2(
                    crate::fido2::Fido2Error::AlreadyRegistered
                ))
            ),
            "{r:?}"
        );
    }

    #[test]
    fn keys_are_neither_counted_nor_stopped_by_the_lock_out() {
        // The lock-out limits guessing of short codes only. A key
        // failure counts nothing, and a locked-out user's key still logs them in.
        let mut ts = temp_store();
        let key = TestKey::register(&mut ts, "alice", "yubi", 3);
        let secret = super::tests::enrolled(&mut ts, "alice", "phone");
        let settings = LoginSettings {
            lockout: LockoutPolicy {
                max_failures: 2,
                lockout_secs: 300,
            },
            ..LoginSettings::default()
        };
        let u = user("alice");
        assert_eq!(
            key_failure(KeyFailure::Timeout),
            Outcome::Refused {
                reason: Refusal::Key(KeyFailure::Timeout),
                locked_until: None
            }
        );
        // A refused answer (a credential that is not the user's) counts nothing either.
        let snapshot = devices::active_fido2(ts.store.conn(), "alice").unwrap();
        let bad = Verified {
            index: 7,
            sign_count: key.counter.get() + 1,
        };
        for t in 0..5 {
            let o = record_key_login(&mut ts.store, &u, &snapshot, bad, T0 + t).unwrap();
            assert_eq!(refused_with(&o), Some(&KeyFailure::UnknownCredential));
        }
        assert_eq!(readiness(&ts.store, &u, T0 + 5).unwrap(), Readiness::Ready);
        // Two wrong codes lock the codes out...
        for t in 0..2 {
            verify(&mut ts.store, &u, b"000000", settings, T0 + 10 + t).unwrap();
        }
        assert_eq!(
            readiness(&ts.store, &u, T0 + 12).unwrap(),
            Readiness::Locked { until: T0 + 311 }
        );
        let right = oathtool(&secret, T0 + 60);
        assert_eq!(
            verify(&mut ts.store, &u, right.as_bytes(), settings, T0 + 60).unwrap(),
            Outcome::Locked { until: T0 + 311 }
        );
        // ...but not the key. Its success leaves the codes' lock-out as it was: it says
        // nothing about whoever was guessing codes.
        let good = Verified {
            index: 0,
            sign_count: key.counter.get() + 1,
        };
        assert_eq!(
            record_key_login(&mut ts.store, &u, &snapshot, good, T0 + 61).unwrap(),
            Outcome::Accepted {
                device: "yubi".into()
            }
        );
        assert_eq!(
            readiness(&ts.store, &u, T0 + 62).unwrap(),
            Readiness::Locked { until: T0 + 311 }
        );
        let f = factors(&ts.store, &u).unwrap();
        assert_eq!(f.fido2.len(), 1);
        assert!(f.has_totp);
    }

    /// The one look a login takes before its prompt agrees with the separate ones.
    #[test]
    fn before_prompt_agrees_with_readiness_and_factors() {
        let mut ts = temp_store();
        let enrolled = |ts: &mut TempStore, who: &str| {
            let t = T0 - 3600;
            let (u, d) = (user(who), device("phone"));
            let p = crate::enrollment::begin_totp(&mut ts.store, &u, &d, "host", t).unwrap();
            let s = p.secret.to_base32().to_string();
            let (c1, c2) = (oathtool(&s, t - 30), oathtool(&s, t));
            crate::enrollment::finish_totp(&mut ts.store, &u, &d, c1.as_bytes(), c2.as_bytes(), t)
                .unwrap();
        };
        enrolled(&mut ts, "alice");
        TestKey::register(&mut ts, "alice", "yubi", 3);
        TestKey::register(&mut ts, "carol", "yubi", 4);
        enrolled(&mut ts, "dave");
        let settings = LoginSettings {
            lockout: LockoutPolicy {
                max_failures: 1,
                lockout_secs: 300,
            },
            ..LoginSettings::default()
        };
        verify(&mut ts.store, &user("dave"), b"000000", settings, T0).unwrap();
        for who in ["alice", "bob", "carol", "dave"] {
            let u = user(who);
            for with_keys in [false, true] {
                let b = ts
                    .store
                    .read(|s| before_prompt(s, &u, T0 + 1, with_keys))
                    .unwrap();
                let readiness = readiness(&ts.store, &u, T0 + 1).unwrap();
                assert_eq!(b.readiness, readiness, "{who}");
                if readiness == Readiness::Ready {
                    let f = factors(&ts.store, &u).unwrap();
                    assert_eq!(b.factors.has_totp, f.has_totp, "{who}");
                    let expected = if with_keys { f.fido2 } else { Vec::new() };
                    assert_eq!(b.factors.fido2, expected, "{who}");
                }
            }
        }
        assert!(matches!(
            ts.store
                .read(|s| before_prompt(s, &user("dave"), T0 + 1, true))
                .unwrap()
                .readiness,
            Readiness::Locked { .. }
        ));
        // A failed look ends its transaction: the next write starts normally.
        let r: Result<()> = ts
            .store
            .read(|_| Err(Error::CorruptRecord("test".to_owned())));
        assert!(r.is_err());
        assert!(ts.store.conn().is_autocommit());
        drop(ts.store.write().unwrap());
    }
}

#[cfg(test)]
mod hotp_tests {
    use super::*;
    use crate::enrollment::{Resynced, register_token, resync};
    use crate::test_support::*;

    fn hotp(counter: i64) -> String {
        oathtool_hotp(RFC4226_KEY_HEX, counter, &[])
    }

    /// Alice with the HOTP token "fob", registered with the codes of counters 0 and 1.
    fn with_token() -> TempStore {
        let mut ts = temp_store();
        import_csv(&mut ts, &format!("H-1,{RFC4226_KEY_HEX},hotp\n"));
        register_token(
            &mut ts.store,
            &user("alice"),
            &device("fob"),
            "H-1",
            hotp(0).as_bytes(),
            hotp(1).as_bytes(),
            T0,
        )
        .unwrap();
        ts
    }

    fn try_code(ts: &mut TempStore, code: &str, hotp_window: u32) -> Outcome {
        let settings = LoginSettings {
            hotp_window,
            ..LoginSettings::default()
        };
        verify(&mut ts.store, &user("alice"), code.as_bytes(), settings, T0).unwrap()
    }

    fn counter(ts: &TempStore) -> i64 {
        devices::active_hotp(ts.store.conn(), "alice").unwrap()[0].counter
    }

    #[test]
    fn next_code_once_then_replay_refused() {
        let mut ts = with_token();
        assert!(factors(&ts.store, &user("alice")).unwrap().has_totp);
        // The registration codes are used up.
        assert!(matches!(
            try_code(&mut ts, &hotp(1), 10),
            Outcome::Refused {
                reason: Refusal::Replayed { .. },
                ..
            }
        ));
        assert_eq!(
            try_code(&mut ts, &hotp(2), 10),
            Outcome::Accepted {
                device: "fob".into()
            }
        );
        assert_eq!(counter(&ts), 3);
        assert!(matches!(
            try_code(&mut ts, &hotp(2), 10),
            Outcome::Refused {
                reason: Refusal::Replayed { .. },
                ..
            }
        ));
        // The success cleared the first refusal's count; only the replay after it counts,
        // charged for the 11 codes (hotp_window 10) it was compared with.
        assert_eq!(
            auth_state::load(ts.store.conn(), "alice").unwrap().failures,
            crate::lockout::charge(11)
        );
    }

    /// A used code is named a replay as far back as the window before the next counter
    /// (`window + 1` values), and only a code older than that is merely wrong.
    #[test]
    fn a_used_code_is_a_replay_back_to_the_window_before_the_next_counter() {
        let mut ts = with_token();
        // Registered with counters 0 and 1; the code of 4 moves the next counter to 5.
        assert!(matches!(
            try_code(&mut ts, &hotp(4), 3),
            Outcome::Accepted { .. }
        ));
        assert_eq!(counter(&ts), 5);
        // With hotp_window 3, the values 1..=4 before 5 are replays, the oldest included.
        for used in [1, 4] {
            assert!(
                matches!(
                    try_code(&mut ts, &hotp(used), 3),
                    Outcome::Refused {
                        reason: Refusal::Replayed { .. },
                        ..
                    }
                ),
                "counter {used}"
            );
        }
        assert!(matches!(
            try_code(&mut ts, &hotp(0), 3),
            Outcome::Refused {
                reason: Refusal::WrongCode,
                ..
            }
        ));
    }

    #[test]
    fn look_ahead_is_hotp_window_presses() {
        let mut ts = with_token();
        // Next expected: 2. With hotp_window=3, counters 2..=5 are accepted, 6 is not.
        assert!(matches!(
            try_code(&mut ts, &hotp(6), 3),
            Outcome::Refused {
                reason: Refusal::WrongCode,
                ..
            }
        ));
        assert_eq!(counter(&ts), 2);
        assert!(matches!(
            try_code(&mut ts, &hotp(5), 3),
            Outcome::Accepted { .. }
        ));
        assert_eq!(counter(&ts), 6);
        // Skipped codes are gone with it.
        assert!(!matches!(
            try_code(&mut ts, &hotp(4), 3),
            Outcome::Accepted { .. }
        ));
        // hotp_window=0: only the very next code.
        assert!(!matches!(
            try_code(&mut ts, &hotp(7), 0),
            Outcome::Accepted { .. }
        ));
        assert!(matches!(
            try_code(&mut ts, &hotp(6), 0),
            Outcome::Accepted { .. }
        ));
        // The default window is 10 presses.
        assert!(!matches!(
            try_code(&mut ts, &hotp(18), 10),
            Outcome::Accepted { .. }
        ));
        assert!(matches!(
            try_code(&mut ts, &hotp(17), 10),
            Outcome::Accepted { .. }
        ));
    }

    #[test]
    fn resync_finds_the_counter_far_ahead_and_burns_its_codes() {
        let mut ts = with_token();
        let (r1, r2) = (hotp(500), hotp(501));
        let r = resync(
            &mut ts.store,
            &user("alice"),
            &device("fob"),
            r1.as_bytes(),
            r2.as_bytes(),
            T0,
        )
        .unwrap();
        assert_eq!(r, Resynced::Counter { skipped: 498 });
        assert_eq!(counter(&ts), 502);
        assert!(!matches!(
            try_code(&mut ts, &r2, 10),
            Outcome::Accepted { .. }
        ));
        assert!(matches!(
            try_code(&mut ts, &hotp(502), 10),
            Outcome::Accepted { .. }
        ));
        // Beyond the 1,000-code look-ahead: not found; the same codes again: not found
        // either, since they are behind the counter now.
        for (a, b) in [(1600, 1601), (500, 501)] {
            let r = resync(
                &mut ts.store,
                &user("alice"),
                &device("fob"),
                hotp(a).as_bytes(),
                hotp(b).as_bytes(),
                T0,
            );
            assert!(matches!(r, Err(Error::CounterNotFound { .. })), "{r:?}");
        }
    }

    #[test]
    fn eight_digit_sha512_hotp_tokens() {
        let mut ts = temp_store();
        let key = "3132333435363738393031323334353637383930313233343536373839303132";
        import_csv(&mut ts, &format!("H-8,{key},hotp-sha512,8\n"));
        let code = |c: i64| oathtool_hotp_sha2(key, c, "sha512", 8);
        // The same way gives RFC 4226 Appendix D for SHA-1.
        assert_eq!(oathtool_hotp_sha2(RFC4226_KEY_HEX, 1, "sha1", 6), "287082");
        let (c1, c2) = (code(0), code(1));
        assert_eq!(c1.len(), 8);
        register_token(
            &mut ts.store,
            &user("alice"),
            &device("fob"),
            "H-8",
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        assert!(matches!(
            try_code(&mut ts, &code(3), 10),
            Outcome::Accepted { .. }
        ));
        assert!(!matches!(
            try_code(&mut ts, &code(4)[2..], 10),
            Outcome::Accepted { .. }
        ));
    }
}
