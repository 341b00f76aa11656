//! Registering TOTP devices and bringing drifted ones back in sync.
//!
//! Registration is split the way the cloud APIs split it (create, then enable): a pending
//! device with a fresh secret, then two consecutive codes that prove the person has the
//! secret in a working authenticator right now. Only then is the device active, and the
//! step of the second code is recorded as used so neither code can log in afterwards.

use zeroize::Zeroizing;

use crate::code::{self, Code};
use crate::fido2::{self, Fido2Error};
use crate::names::{DeviceName, UserName};
use crate::otp::{PairError, TotpKey, TotpParams};
use crate::otpauth;
use crate::secret::Secret;
use crate::store::{Store, devices};
use crate::{Error, Result};

/// How long a registration may stay unfinished.
pub const PENDING_LIFETIME_SECS: i64 = 600;
/// The first of the two codes may be this many steps old (a person reading the QR code,
/// opening the app and typing two codes takes a few minutes)…
pub const CONFIRM_STEPS_BEFORE: i64 = 10;
/// …or one step ahead of this host's clock.
pub const CONFIRM_STEPS_AFTER: i64 = 1;
/// Resync searches about ±12 hours (at 30 s steps) for the device's clock.
pub const RESYNC_STEPS: i64 = 1500;

/// A registration waiting for its two codes. Holds the secret, to show it once.
pub struct PendingTotp {
    pub user: String,
    pub name: String,
    pub secret: Secret,
    pub params: TotpParams,
    pub uri: Zeroizing<String>,
    pub expires_at: i64,
}

/// Creates a pending TOTP device with a new random secret.
pub fn begin_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    issuer: &str,
    now: i64,
) -> Result<PendingTotp> {
    let secret = Secret::generate()?;
    let params = TotpParams::DEFAULT;
    let expires_at = now + PENDING_LIFETIME_SECS;
    let tx = store.write()?;
    // Checked here as well as at activation so nobody scans a QR code for nothing.
    devices::check_room(&tx, user.as_str())?;
    devices::insert_pending_totp(
        &tx,
        user.as_str(),
        name.as_str(),
        &secret,
        params,
        now,
        expires_at,
    )?;
    tx.commit()?;
    let uri = otpauth::build_totp_uri(issuer, user.as_str(), &secret, params);
    Ok(PendingTotp {
        user: user.to_string(),
        name: name.to_string(),
        secret,
        params,
        uri,
        expires_at,
    })
}

fn parse_pair(first: &[u8], second: &[u8]) -> Result<(Code, Code)> {
    let c1 = code::parse(first).map_err(|problem| Error::MalformedCode {
        which: "first",
        problem,
    })?;
    let c2 = code::parse(second).map_err(|problem| Error::MalformedCode {
        which: "second",
        problem,
    })?;
    Ok((c1, c2))
}

/// Activates a pending device once `first` and `second` are the codes of two consecutive
/// steps near now.
pub fn finish_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    first: &[u8],
    second: &[u8],
    now: i64,
) -> Result<()> {
    let (c1, c2) = parse_pair(first, second)?;
    // The codes are searched for before taking the write lock, so logins never wait on
    // this; activation then re-checks, inside the transaction, that the same pending
    // device is still there.
    let device = devices::totp_by_name(store.conn(), user.as_str(), name.as_str(), now)?
        .filter(|d| d.state == devices::DeviceState::Pending)
        .ok_or_else(|| Error::NoPendingDevice {
            user: user.to_string(),
            name: name.to_string(),
        })?;
    let key = TotpKey::new(&device.secret, device.params)?;
    let now_step = device.params.step_at(now);
    let near = now_step - CONFIRM_STEPS_BEFORE..=now_step + CONFIRM_STEPS_AFTER;
    let t = match key.find_consecutive(&c1, &c2, near) {
        Ok(t) => t,
        Err(e) => {
            // Right codes for the wrong time are almost always a phone with a wrong clock;
            // saying so saves the person from retyping codes that can never work.
            let wide = now_step - RESYNC_STEPS..=now_step + RESYNC_STEPS;
            if let Ok(t) = key.find_consecutive(&c1, &c2, wide) {
                let secs = (t - now_step) * i64::from(device.params.period);
                return Err(Error::ClockSkew {
                    minutes: (secs.abs() + 30) / 60,
                    direction: if secs > 0 { "ahead of" } else { "behind" },
                });
            }
            return Err(pair_error(e));
        }
    };
    let tx = store.write()?;
    if !devices::activate(&tx, user.as_str(), device.id, t + 1, now)? {
        return Err(Error::NoPendingDevice {
            user: user.to_string(),
            name: name.to_string(),
        });
    }
    tx.commit()?;
    Ok(())
}

/// How to register a security key.
#[derive(Debug, Clone, Copy)]
pub struct Fido2Options<'a> {
    /// Stored with the credential; `pam://HOSTNAME` unless the administrator chose one.
    pub rp_id: &'a str,
    /// `--pin`: the key must have a PIN, and logging in will ask for it.
    pub require_pin: bool,
    /// `--uv`: logging in requires user verification (the PIN, or the key's own).
    pub require_uv: bool,
    pub timeout: std::time::Duration,
}

/// Registers a FIDO2 key for `user`: makeCredential with a fresh challenge and user
/// handle and the user's existing credentials excluded, the answer verified, and the
/// device activated in one transaction.
///
/// `ask_pin` is called when the key has a PIN (`None`: nothing was typed); `cue` just
/// before the key waits for a touch.
#[allow(clippy::too_many_arguments)]
pub fn register_fido2(
    store: &mut Store,
    transport: &dyn fido2::Transport,
    user: &UserName,
    name: &DeviceName,
    options: Fido2Options<'_>,
    ask_pin: &mut dyn FnMut() -> Option<fido2::Pin>,
    cue: &mut dyn FnMut(),
    now: i64,
) -> Result<fido2::verify::Registration> {
    fido2::check_rp_id(options.rp_id)?;
    // The cheap refusals first, so nobody touches a key for nothing.
    devices::check_room(store.conn(), user.as_str())?;
    if devices::list(store.conn(), user.as_str(), now)?
        .iter()
        .any(|d| d.name == name.as_str() && d.state == devices::DeviceState::Active)
    {
        return Err(Error::DuplicateName {
            user: user.to_string(),
            name: name.to_string(),
        });
    }
    let exclude: Vec<Vec<u8>> = devices::active_fido2(store.conn(), user.as_str())?
        .into_iter()
        .map(|d| d.credential_id)
        .collect();
    if !transport.present() {
        return Err(Fido2Error::NoKey.into());
    }
    let info = transport.info().map_err(Fido2Error::from)?;
    let needs_uv = options.require_pin || options.require_uv;
    if options.require_pin && !info.pin_set {
        return Err(Fido2Error::NoPinSet.into());
    }
    let pin = if info.pin_set {
        Some(ask_pin().ok_or(Fido2Error::PinRequired)?)
    } else if needs_uv && !info.builtin_uv {
        return Err(Fido2Error::NoPinSet.into());
    } else {
        None
    };
    let challenge = fido2::random32()?;
    let user_id = fido2::random32()?;
    let request = fido2::transport::MakeCredentialRequest {
        rp_id: options.rp_id,
        challenge,
        user_id,
        user_name: user.as_str(),
        exclude: &exclude,
        pin: pin.as_ref().map(|p| p.as_str()),
        uv: needs_uv && pin.is_none(),
        timeout: options.timeout,
    };
    cue();
    let attestation = transport
        .make_credential(&request)
        .map_err(Fido2Error::from)?;
    drop(pin);
    let registration =
        fido2::verify::verify_registration(&attestation, options.rp_id, &challenge, needs_uv)
            .map_err(Fido2Error::Rejected)?;
    let tx = store.write()?;
    devices::insert_fido2(
        &tx,
        user.as_str(),
        name.as_str(),
        &devices::NewFido2 {
            credential_id: &registration.credential_id,
            cose_public_key: &registration.cose_public_key,
            sign_count: registration.sign_count,
            rp_id: options.rp_id,
            uv_required: needs_uv,
        },
        now,
    )?;
    tx.commit()?;
    Ok(registration)
}

fn pair_error(e: PairError) -> Error {
    match e {
        PairError::FirstWrong => Error::FirstCodeWrong,
        PairError::SecondWrong => Error::SecondCodeWrong,
        PairError::NotConsecutive => Error::NotConsecutive,
    }
}

/// Finds the device's clock from two consecutive codes within about ±12 hours and stores
/// its drift; returns the drift in seconds (positive: the device runs ahead).
pub fn resync(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    first: &[u8],
    second: &[u8],
    now: i64,
) -> Result<i64> {
    let (c1, c2) = parse_pair(first, second)?;
    if devices::kind_of(store.conn(), user.as_str(), name.as_str(), now)?
        == Some(devices::DeviceKind::Fido2)
    {
        return Err(Error::NotTotp {
            name: name.to_string(),
            action: "resynced",
        });
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
    Ok(drift * i64::from(device.params.period))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::devices::{self, DeviceState};
    use crate::test_support::*;

    fn begin(ts: &mut TempStore, who: &str, name: &str, now: i64) -> String {
        let p = begin_totp(&mut ts.store, &user(who), &device(name), "host", now).unwrap();
        p.secret.to_base32().to_string()
    }

    #[test]
    fn two_consecutive_codes_activate() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
        finish_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        let list = devices::list(ts.store.conn(), "alice", T0).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].state, DeviceState::Active);
        // Finishing again: there is no pending device any more.
        assert!(matches!(
            finish_totp(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                c1.as_bytes(),
                c2.as_bytes(),
                T0
            ),
            Err(Error::NoPendingDevice { .. })
        ));
    }

    #[test]
    fn which_code_was_wrong() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let f = |a: &str, b: &str, ts: &mut TempStore| {
            finish_totp(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                a.as_bytes(),
                b.as_bytes(),
                T0,
            )
            .unwrap_err()
        };
        let now = oathtool(&s, T0);
        let next = oathtool(&s, T0 + 30);
        let prev = oathtool(&s, T0 - 30);
        assert!(matches!(f("000000", &now, &mut ts), Error::FirstCodeWrong) || prev == "000000");
        assert!(matches!(
            f(&prev, "12345", &mut ts),
            Error::MalformedCode {
                which: "second",
                ..
            }
        ));
        assert!(matches!(
            f("12a456", &now, &mut ts),
            Error::MalformedCode { which: "first", .. }
        ));
        assert!(matches!(f(&prev, &next, &mut ts), Error::NotConsecutive));
        // Stale: the pair from 20 steps ago is outside the 10-step allowance…
        let old1 = oathtool(&s, T0 - 600);
        let old2 = oathtool(&s, T0 - 570);
        assert!(matches!(
            f(&old1, &old2, &mut ts),
            Error::ClockSkew {
                minutes: 10,
                direction: "behind"
            }
        ));
        // …and a phone 2 hours fast is reported as such.
        let fast1 = oathtool(&s, T0 + 7200);
        let fast2 = oathtool(&s, T0 + 7230);
        assert!(matches!(
            f(&fast1, &fast2, &mut ts),
            Error::ClockSkew {
                minutes: 120,
                direction: "ahead of"
            }
        ));
        // None of that activated anything.
        let list = devices::list(ts.store.conn(), "alice", T0).unwrap();
        assert_eq!(list[0].state, DeviceState::Pending);
    }

    #[test]
    fn pending_devices_expire_and_do_not_count() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let later = T0 + PENDING_LIFETIME_SECS + 1;
        let (c1, c2) = (oathtool(&s, later - 30), oathtool(&s, later));
        assert!(matches!(
            finish_totp(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                c1.as_bytes(),
                c2.as_bytes(),
                later
            ),
            Err(Error::NoPendingDevice { .. })
        ));
        assert!(
            devices::list(ts.store.conn(), "alice", later)
                .unwrap()
                .is_empty()
        );
        // Restarting a registration under the same name replaces the pending one.
        let s1 = begin(&mut ts, "alice", "tablet", T0);
        let s2 = begin(&mut ts, "alice", "tablet", T0 + 1);
        assert_ne!(s1, s2);
        let list = devices::list(ts.store.conn(), "alice", T0 + 1).unwrap();
        assert_eq!(list.iter().filter(|d| d.name == "tablet").count(), 1);
    }

    #[test]
    fn at_most_eight_active_devices() {
        let mut ts = temp_store();
        for i in 0..8 {
            let name = format!("d{i}");
            let s = begin(&mut ts, "bob", &name, T0);
            let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
            finish_totp(
                &mut ts.store,
                &user("bob"),
                &device(&name),
                c1.as_bytes(),
                c2.as_bytes(),
                T0,
            )
            .unwrap();
        }
        assert!(matches!(
            begin_totp(&mut ts.store, &user("bob"), &device("d8"), "host", T0),
            Err(Error::TooManyDevices { max: 8, .. })
        ));
        // Even a pending device created behind the check's back cannot be activated: the
        // store's trigger refuses a 9th.
        let secret = Secret::generate().unwrap();
        devices::insert_pending_totp(
            ts.store.conn(),
            "bob",
            "sneaky",
            &secret,
            TotpParams::DEFAULT,
            T0,
            T0 + 600,
        )
        .unwrap();
        let s = secret.to_base32().to_string();
        let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
        assert!(matches!(
            finish_totp(
                &mut ts.store,
                &user("bob"),
                &device("sneaky"),
                c1.as_bytes(),
                c2.as_bytes(),
                T0
            ),
            Err(Error::TooManyDevices { .. })
        ));
        let err = ts
            .store
            .conn()
            .execute(
                "UPDATE devices SET state = 'active', expires_at = NULL WHERE name = 'sneaky'",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("at most 8"), "{err}");
        assert_eq!(devices::count_active(ts.store.conn(), "bob").unwrap(), 8);
        // Another user is not affected.
        begin(&mut ts, "carol", "phone", T0);
    }

    #[test]
    fn names_are_unique_per_user() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
        finish_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        assert!(matches!(
            begin_totp(&mut ts.store, &user("alice"), &device("phone"), "host", T0),
            Err(Error::DuplicateName { .. })
        ));
        begin(&mut ts, "bob", "phone", T0);
    }

    #[test]
    fn resync_finds_a_drifted_clock_and_burns_its_codes() {
        let mut ts = temp_store();
        let s = begin(&mut ts, "alice", "phone", T0);
        let (c1, c2) = (oathtool(&s, T0 - 30), oathtool(&s, T0));
        finish_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        let now = T0 + 3600;
        let ahead = now + 600;
        let (r1, r2) = (oathtool(&s, ahead - 30), oathtool(&s, ahead));
        let drift = resync(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            r1.as_bytes(),
            r2.as_bytes(),
            now,
        )
        .unwrap();
        assert_eq!(drift, 600);
        // The same codes again: already used.
        assert!(matches!(
            resync(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                r1.as_bytes(),
                r2.as_bytes(),
                now
            ),
            Err(Error::CodesAlreadyUsed)
        ));
        // 13 hours off is outside the search.
        let far = now + 13 * 3600;
        let (f1, f2) = (oathtool(&s, far), oathtool(&s, far + 30));
        assert!(matches!(
            resync(
                &mut ts.store,
                &user("alice"),
                &device("phone"),
                f1.as_bytes(),
                f2.as_bytes(),
                now
            ),
            Err(Error::ResyncFailed)
        ));
        assert!(matches!(
            resync(
                &mut ts.store,
                &user("alice"),
                &device("tablet"),
                f1.as_bytes(),
                f2.as_bytes(),
                now
            ),
            Err(Error::NoSuchDevice { .. })
        ));
    }
}
