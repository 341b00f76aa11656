//! Registration and resync against a real store, with codes from `oathtool`.

use super::*;
use crate::store::devices::{self, DeviceState};
use crate::test_support::*;

fn begin(ts: &mut TempStore, who: &str, name: &str, now: UnixTime) -> String {
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
    // Finishing again: it is already active, and says so.
    assert!(matches!(
        finish_totp(
            &mut ts.store,
            &user("alice"),
            &device("phone"),
            c1.as_bytes(),
            c2.as_bytes(),
            T0
        ),
        Err(Error::AlreadyActive { .. })
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
    assert_eq!(drift, Resynced::Clock { drift_secs: 600 });
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
