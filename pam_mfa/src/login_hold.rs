//! Registrations made during a login, kept only if that login succeeds as a whole.
//!
//! libpam runs every `required` module even after one has failed, so a module that
//! registered a device as soon as its codes were right would keep a device planted by
//! someone who got the password wrong. A registration at login is
//! therefore held: its pending row carries the SHA-256 of a random value only that login
//! holds ([`LoginHold`]), its two codes are checked (and used up) during
//! `pam_sm_authenticate` exactly as `mfa enroll finish` checks them, and it becomes active
//! only when the same login presents the value again from `pam_sm_setcred`, which
//! applications call only after the whole authentication stack succeeded. A held row
//! whose login never gets there is an unfinished registration like any other: it never
//! counts, never logs anyone in, expires after 10 minutes, gives way to the user's own
//! registration of the same name, and `mfa enroll finish` cannot finish it.

use crate::clock::UnixTime;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::enrollment::{self, PendingTotp};
use crate::names::{DeviceName, UserName};
use crate::store::{Store, devices};
use crate::{Error, Result};

/// The value a login holds for its registration; the store keeps only its hash, so
/// reading the store does not give the power to activate.
pub struct LoginHold(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for LoginHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginHold(..)")
    }
}

impl LoginHold {
    /// A new value from the kernel's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|e| Error::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The value as 64 lowercase hex digits, the form it travels in between processes.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(data_encoding::HEXLOWER.encode(self.0.as_slice()))
    }

    /// Reads [`LoginHold::to_hex`]'s form back; `None` for anything else.
    pub fn from_hex(text: &[u8]) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        data_encoding::HEXLOWER
            .decode_mut(text, bytes.as_mut_slice())
            .ok()?;
        Some(Self(bytes))
    }

    /// What a store keeps of the value (the local store's row, or the fleet database's,
    /// which mfad sends it): enough to recognise the login, not to act as it.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_slice()).into()
    }
}

/// Starts a registration at login: [`enrollment::begin_totp`], held for `hold`.
pub fn begin_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    issuer: &str,
    hold: &LoginHold,
    now: UnixTime,
) -> Result<PendingTotp> {
    enrollment::begin_totp_held(store, user, name, issuer, Some(&hold.digest()), now)
}

/// Checks the two consecutive codes of the held registration `name` as
/// [`enrollment::finish_totp`] does and uses them up, leaving it pending: only
/// [`activate_held`] with the same `hold` makes it active.
pub fn hold_totp(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    hold: &LoginHold,
    first: &[u8],
    second: &[u8],
    now: UnixTime,
) -> Result<()> {
    let (id, t) = enrollment::pending_pair(store, user, name, first, second, true, now)?;
    let tx = store.write()?;
    devices::check_room(&tx, user.as_str())?;
    if !devices::confirm_held(&tx, id, &hold.digest(), t + 1, now)? {
        return Err(Error::NoPendingDevice {
            user: user.to_string(),
            name: name.to_string(),
        });
    }
    tx.commit()?;
    Ok(())
}

/// Activates `user`'s registration held for `hold` whose codes were right, in one
/// transaction with the device limit (and the audit row, where the connection records
/// them); its name.
pub fn activate_held(
    store: &mut Store,
    user: &UserName,
    hold: &LoginHold,
    now: UnixTime,
) -> Result<String> {
    let tx = store.write()?;
    let name = devices::activate_held(&tx, user.as_str(), &hold.digest(), now)?
        .ok_or(Error::HeldRegistrationGone)?;
    tx.commit()?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::{PENDING_LIFETIME_SECS, finish_totp};
    use crate::store::devices::DeviceState;
    use crate::test_support::*;

    fn codes(p: &PendingTotp, at: UnixTime) -> (String, String) {
        let s = p.secret.to_base32().to_string();
        (oathtool(&s, at - 30), oathtool(&s, at))
    }

    fn state(ts: &TempStore, who: &str, name: &str, at: UnixTime) -> Option<DeviceState> {
        devices::list(ts.store.conn(), who, at)
            .unwrap()
            .into_iter()
            .find(|d| d.name == name)
            .map(|d| d.state)
    }

    // A device registered during a login stays pending until that
    // login's own value activates it; nothing else can.
    #[test]
    fn a_held_registration_is_activated_only_by_its_login() {
        let mut ts = temp_store();
        let hold = LoginHold::generate().unwrap();
        let p = begin_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            "h",
            &hold,
            T0,
        )
        .unwrap();
        let (c1, c2) = codes(&p, T0);
        // Before its codes: not activatable, even with the right value.
        assert!(matches!(
            activate_held(&mut ts.store, &user("alice"), &hold, T0),
            Err(Error::HeldRegistrationGone)
        ));
        // `mfa enroll finish` cannot finish it, before or after the codes.
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
        hold_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            &hold,
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        assert_eq!(state(&ts, "alice", "phone", T0), Some(DeviceState::Pending));
        assert!(!devices::has_active(ts.store.conn(), "alice").unwrap());
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
        // Another value, another user: nothing.
        let other = LoginHold::generate().unwrap();
        assert!(activate_held(&mut ts.store, &user("alice"), &other, T0).is_err());
        assert!(activate_held(&mut ts.store, &user("bob"), &hold, T0).is_err());
        // The login's own value: active, its codes used up.
        let name = activate_held(&mut ts.store, &user("alice"), &hold, T0 + 1).unwrap();
        assert_eq!(name, "phone");
        let d = devices::totp_by_name(ts.store.conn(), "alice", "phone", T0)
            .unwrap()
            .unwrap();
        assert_eq!(d.state, DeviceState::Active);
        assert_eq!(d.last_step, Some(T0 / 30));
        assert!(activate_held(&mut ts.store, &user("alice"), &hold, T0 + 2).is_err());
    }

    // A held registration whose login failed neither counts nor stands
    // in the way of the user's own registrations, and it expires.
    #[test]
    fn a_held_registration_blocks_nothing_and_expires() {
        let mut ts = temp_store();
        let hold = LoginHold::generate().unwrap();
        let p = begin_totp(&mut ts.store, &user("bob"), &device("evil"), "h", &hold, T0).unwrap();
        let (c1, c2) = codes(&p, T0);
        hold_totp(
            &mut ts.store,
            &user("bob"),
            &device("evil"),
            &hold,
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        // Bob registers his own phone, under another name and under the same one.
        for name in ["phone", "evil"] {
            let mine = enrollment::begin_totp(&mut ts.store, &user("bob"), &device(name), "h", T0)
                .unwrap();
            let (m1, m2) = codes(&mine, T0);
            finish_totp(
                &mut ts.store,
                &user("bob"),
                &device(name),
                m1.as_bytes(),
                m2.as_bytes(),
                T0,
            )
            .unwrap();
        }
        assert_eq!(devices::count_active(ts.store.conn(), "bob").unwrap(), 2);
        // The same name replaced the held row: the failed login's value activates nothing.
        assert!(activate_held(&mut ts.store, &user("bob"), &hold, T0).is_err());

        // A held row past its 10 minutes is gone.
        let hold = LoginHold::generate().unwrap();
        let p = begin_totp(&mut ts.store, &user("carol"), &device("x"), "h", &hold, T0).unwrap();
        let (c1, c2) = codes(&p, T0);
        hold_totp(
            &mut ts.store,
            &user("carol"),
            &device("x"),
            &hold,
            c1.as_bytes(),
            c2.as_bytes(),
            T0,
        )
        .unwrap();
        let later = T0 + PENDING_LIFETIME_SECS;
        assert!(matches!(
            activate_held(&mut ts.store, &user("carol"), &hold, later),
            Err(Error::HeldRegistrationGone)
        ));
        assert_eq!(state(&ts, "carol", "x", later), None);
    }

    #[test]
    fn the_value_round_trips_and_nothing_else_parses() {
        let hold = LoginHold::generate().unwrap();
        let back = LoginHold::from_hex(hold.to_hex().as_bytes()).unwrap();
        assert_eq!(back.digest(), hold.digest());
        assert_ne!(
            hold.digest(),
            LoginHold::generate().unwrap().digest(),
            "random"
        );
        for bad in [&b""[..], b"00", &[b'A'; 64], &[b'0'; 65], &[b'g'; 64]] {
            assert!(LoginHold::from_hex(bad).is_none(), "{bad:?}");
        }
        assert!(!format!("{hold:?}").contains(&hold.to_hex()[..8]));
    }
}
