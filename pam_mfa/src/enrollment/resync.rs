//! Bringing a drifted code device back in sync with two consecutive codes.

use super::token::find_hotp_pair;
use super::*;
use crate::clock::UnixTime;

/// What a resync found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resynced {
    /// A time-based device's clock offset, in seconds (positive: it runs ahead).
    Clock { drift_secs: i64 },
    /// How many codes an event-based token had made without being used.
    Counter { skipped: i64 },
}

/// Brings a code device back in sync with two consecutive codes: a time-based one's clock
/// is searched for within about ±12 hours and its drift stored; an event-based token's
/// counter is searched for within the next [`HOTP_RESYNC_LOOKAHEAD`] codes and moved past
/// them.
pub fn resync(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    first: &[u8],
    second: &[u8],
    now: UnixTime,
) -> Result<Resynced> {
    let (c1, c2) = parse_pair(first, second)?;
    if devices::kind_of(store.conn(), user.as_str(), name.as_str(), now)?
        == Some(devices::DeviceKind::Fido2)
    {
        return Err(Error::NotTotp {
            name: name.to_string(),
            action: "resynced",
        });
    }
    if let Some(device) = devices::hotp_by_name(store.conn(), user.as_str(), name.as_str())? {
        return resync_hotp(store, user, name, &device, &c1, &c2);
    }
    let device = devices::totp_by_name(store.conn(), user.as_str(), name.as_str(), now)?
        .ok_or_else(|| Error::NoSuchDevice {
            user: user.to_string(),
            name: name.to_string(),
        })?;
    if device.state != devices::DeviceState::Active {
        return Err(Error::DeviceNotActive {
            name: name.to_string(),
        });
    }
    // Thousands of HMACs: done before taking the write lock, so logins never wait on it.
    let key = TotpKey::new(&device.secret, device.params)?;
    let now_step = device.params.step_at(now);
    let t = key
        .find_consecutive(&c1, &c2, now_step - RESYNC_STEPS..=now_step + RESYNC_STEPS)
        .map_err(|_| Error::ResyncFailed)?;
    let tx = store.write()?;
    // Re-read inside the transaction: a login may have used a newer code meanwhile, and
    // resync codes are codes like any other, never accepted twice.
    let current = devices::totp_by_name(&tx, user.as_str(), name.as_str(), now)?
        .filter(|d| d.id == device.id && d.state == devices::DeviceState::Active)
        .ok_or_else(|| Error::NoSuchDevice {
            user: user.to_string(),
            name: name.to_string(),
        })?;
    if current.last_step.is_some_and(|last| t <= last) {
        return Err(Error::CodesAlreadyUsed);
    }
    let drift = t + 1 - now_step;
    devices::resync(&tx, device.id, drift, t + 1)?;
    tx.commit()?;
    Ok(Resynced::Clock {
        drift_secs: drift * i64::from(device.params.period),
    })
}

pub(super) fn resync_hotp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    device: &devices::HotpDevice,
    c1: &Code,
    c2: &Code,
) -> Result<Resynced> {
    let key = HotpKey::new(&device.secret, device.params)?;
    let c = find_hotp_pair(&key, c1, c2, device.counter)?;
    let tx = store.write()?;
    // As for time-based devices: a login may have used these codes meanwhile.
    let current = devices::hotp_by_name(&tx, user.as_str(), name.as_str())?
        .filter(|d| d.id == device.id)
        .ok_or_else(|| Error::NoSuchDevice {
            user: user.to_string(),
            name: name.to_string(),
        })?;
    if c < current.counter {
        return Err(Error::CodesAlreadyUsed);
    }
    devices::advance_counter(&tx, device.id, c + 2, None)?;
    tx.commit()?;
    Ok(Resynced::Counter {
        skipped: c - device.counter,
    })
}
