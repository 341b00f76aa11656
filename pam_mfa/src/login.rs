//! The login decision: is this answer a fresh, valid code of one of the user's devices?
//!
//! This is where the replay check lives. Checking and recording happen in one
//! `BEGIN IMMEDIATE` transaction, so two logins racing with the same code are serialised by
//! SQLite and the second sees the first one's step: a code is accepted at most once.
//! The lock-out state is re-read inside the same transaction for the same reason.

use crate::Result;
use crate::code::{self, CodeError};
use crate::lockout::LockoutPolicy;
use crate::names::UserName;
use crate::otp::TotpKey;
use crate::store::{Store, auth_state, devices};

/// Largest `window` accepted: ±10 steps is ±5 minutes, already generous.
pub const MAX_WINDOW: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginSettings {
    /// Steps accepted on each side of the device's expected step.
    pub window: u32,
    pub lockout: LockoutPolicy,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            window: 1,
            lockout: LockoutPolicy::default(),
        }
    }
}

/// What is known about a user before asking for a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// No active device: policy decides (let through, or prompt and refuse).
    NoDevices,
    /// Too many recent failures; refused without a prompt until this time.
    Locked {
        until: i64,
    },
    Ready,
}

/// Read-only look before the prompt; the decision itself is re-made in [`verify`].
pub fn readiness(store: &Store, user: &UserName, now: i64) -> Result<Readiness> {
    let state = auth_state::load(store.conn(), user.as_str())?;
    if let Some(until) = state.locked_at(now) {
        return Ok(Readiness::Locked { until });
    }
    if !devices::has_active(store.conn(), user.as_str())? {
        return Ok(Readiness::NoDevices);
    }
    Ok(Readiness::Ready)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        device: String,
    },
    Refused {
        reason: Refusal,
        /// Set when this failure started a lock-out.
        locked_until: Option<i64>,
    },
    Locked {
        until: i64,
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
}

/// Checks `answer` for `user` and records the outcome, all in one write transaction.
pub fn verify(
    store: &mut Store,
    user: &UserName,
    answer: &[u8],
    settings: LoginSettings,
    now: i64,
) -> Result<Outcome> {
    let user = user.as_str();
    let tx = store.write()?;
    let state = auth_state::load(&tx, user)?;
    if let Some(until) = state.locked_at(now) {
        return Ok(Outcome::Locked { until });
    }

    let refusal = match code::parse(answer) {
        Err(e) => Refusal::Malformed(e),
        Ok(code) => {
            let devices = devices::active_totp(&tx, user)?;
            if devices.is_empty() {
                Refusal::NoDevices
            } else {
                let window = i64::from(settings.window.min(MAX_WINDOW));
                let mut replayed = None;
                for device in &devices {
                    let key = TotpKey::new(&device.secret, device.params)?;
                    let now_step = device.params.step_at(now);
                    let centre = now_step.saturating_add(device.drift);
                    let (lo, hi) = (centre - window, centre + window);
                    // The replay check: only steps after the last accepted one are
                    // searched, so a code that was already used (or an older one) is
                    // never accepted again.
                    let fresh_from = device.last_step.map_or(lo, |last| lo.max(last + 1));
                    if let Some(step) = key.find(&code, fresh_from..=hi) {
                        return accept(tx, user, device, step, now_step, now);
                    }
                    if fresh_from > lo && key.find(&code, lo..=(fresh_from - 1).min(hi)).is_some() {
                        replayed.get_or_insert_with(|| device.name.clone());
                    }
                }
                match replayed {
                    Some(device) => Refusal::Replayed { device },
                    None => Refusal::WrongCode,
                }
            }
        }
    };

    let next = state.after_failure(now, settings.lockout);
    auth_state::save(&tx, user, &next, now)?;
    tx.commit()?;
    Ok(Outcome::Refused {
        reason: refusal,
        locked_until: next.locked_until,
    })
}

fn accept(
    tx: rusqlite::Transaction<'_>,
    user: &str,
    device: &devices::TotpDevice,
    step: i64,
    now_step: i64,
    now: i64,
) -> Result<Outcome> {
    // Following the device's observed offset keeps slowly drifting hardware clocks in
    // sync (RFC 6238 section 6) without anyone running a resync.
    devices::record_use(&tx, device.id, step, step - now_step, now)?;
    auth_state::clear(&tx, user)?;
    tx.commit()?;
    Ok(Outcome::Accepted {
        device: device.name.clone(),
    })
}
