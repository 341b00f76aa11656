//! Hardware token registration against a real store.

use super::*;
use crate::store::devices::{self, DeviceKind};
use crate::test_support::*;

fn register(
    ts: &mut TempStore,
    who: &str,
    name: &str,
    serial: &str,
    c1: &str,
    c2: &str,
    at: UnixTime,
) -> Result<Mode> {
    register_token(
        &mut ts.store,
        &user(who),
        &device(name),
        serial,
        c1.as_bytes(),
        c2.as_bytes(),
        at,
    )
}

fn hotp(counter: i64) -> String {
    oathtool_hotp(RFC4226_KEY_HEX, counter, &[])
}

fn register_own(ts: &mut TempStore, serial: &str, c1: &str, c2: &str) -> Result<Mode> {
    register_own_token(
        &mut ts.store,
        &user("alice"),
        &device("fob"),
        serial,
        c1.as_bytes(),
        c2.as_bytes(),
        LoginSettings::default(),
        T0,
    )
}

fn failures(ts: &TempStore) -> u32 {
    crate::store::auth_state::load(ts.store.conn(), "alice")
        .unwrap()
        .failures
}

// Issue 16, finding 4: at the device limit a known serial got "already has 1 active
// devices", an unknown one the generic answer, and neither counted. Now a user
// registering a token for themselves gets one answer for any serial and any codes,
// and every try counts until the lock-out stops them.
#[test]
fn a_users_own_token_gets_one_answer_that_counts() {
    let mut ts = temp_store();
    import_csv(
        &mut ts,
        &format!("H-1,{RFC4226_KEY_HEX},hotp\nH-2,{RFC4226_KEY_HEX},hotp\n"),
    );
    let tx = ts.store.write().unwrap();
    crate::policy::set(&tx, "max_devices", "1").unwrap();
    tx.commit().unwrap();
    register(&mut ts, "alice", "phone", "H-1", &hotp(0), &hotp(1), T0).unwrap();
    let tries = [
        ("H-2", hotp(7), hotp(9)),  // known, free, wrong codes
        ("H-2", hotp(0), hotp(1)),  // known, free, right codes
        ("H-1", hotp(2), hotp(3)),  // known, assigned (to her), right codes
        ("NOPE", hotp(0), hotp(1)), // not in the inventory
    ];
    for (n, (serial, c1, c2)) in tries.iter().enumerate() {
        let e = register_own(&mut ts, serial, c1, c2).unwrap_err();
        assert!(matches!(e, Error::TokenNotRegistered), "{serial}: {e:?}");
        assert_eq!(failures(&ts), n as u32 + 1, "{serial}");
    }
    // The fifth try (max_failures 5) starts the lock-out; then nothing is looked at.
    let e = register_own(&mut ts, "H-2", &hotp(0), &hotp(1)).unwrap_err();
    assert!(matches!(e, Error::LockedOut { .. }), "{e:?}");
    let e = register_own(&mut ts, "H-2", &hotp(0), &hotp(1)).unwrap_err();
    assert!(matches!(e, Error::LockedOut { .. }), "{e:?}");
    assert_eq!(failures(&ts), 5);
    // Root is still told exactly.
    let e = register(&mut ts, "alice", "fob", "H-2", &hotp(0), &hotp(1), T0).unwrap_err();
    assert!(matches!(e, Error::TooManyDevices { .. }), "{e:?}");
}

#[test]
fn a_users_own_token_registers_and_typing_errors_are_not_counted() {
    let mut ts = temp_store();
    import_csv(&mut ts, &format!("H-1,{RFC4226_KEY_HEX},hotp\n"));
    let e = register_own(&mut ts, "H-1", "12ab56", &hotp(1)).unwrap_err();
    assert!(matches!(e, Error::MalformedCode { .. }), "{e:?}");
    assert_eq!(failures(&ts), 0);
    let e = register_own(&mut ts, "H-1", &hotp(0), &hotp(2)).unwrap_err();
    assert!(matches!(e, Error::TokenNotRegistered), "{e:?}");
    assert_eq!(failures(&ts), 1);
    register_own(&mut ts, "H-1", &hotp(0), &hotp(1)).unwrap();
    assert_eq!(failures(&ts), 1, "a registration is not a login");
}

#[test]
fn an_unknown_serial_is_searched_for_like_a_token() {
    // The throw-away key's search runs to its end and is dropped: the answer is the
    // token's absence, whatever the codes.
    let mut ts = temp_store();
    for (c1, c2) in [("123456", "234567"), ("12345678", "23456789")] {
        let e = register(&mut ts, "alice", "fob", "NOPE", c1, c2, T0).unwrap_err();
        assert!(matches!(e, Error::TokenUnavailable { .. }), "{e:?}");
    }
}

#[test]
fn hotp_token_registers_with_two_presses_within_the_look_ahead() {
    let mut ts = temp_store();
    import_csv(&mut ts, &format!("H-1,{RFC4226_KEY_HEX},hotp\n"));
    // Pressed three times in the office first: codes 3 and 4.
    let mode = register(&mut ts, "alice", "fob", "H-1", &hotp(3), &hotp(4), T0).unwrap();
    assert_eq!(mode, Mode::Hotp { counter: 0 });
    let d = devices::hotp_by_name(ts.store.conn(), "alice", "fob")
        .unwrap()
        .unwrap();
    assert_eq!(d.counter, 5);
    let listed = devices::list(ts.store.conn(), "alice", T0).unwrap();
    assert_eq!(listed[0].kind, DeviceKind::Token);
    // One owner at a time: bob gets a refusal that does not say who has it.
    let e = register(&mut ts, "bob", "fob", "H-1", &hotp(5), &hotp(6), T0).unwrap_err();
    assert!(matches!(e, Error::TokenUnavailable { .. }), "{e:?}");
    assert!(!e.to_string().contains("alice"));
    let e = register(&mut ts, "bob", "fob", "NOPE", &hotp(5), &hotp(6), T0).unwrap_err();
    assert!(matches!(e, Error::TokenUnavailable { .. }), "{e:?}");
    // Two presses, but not in a row; then beyond the look-ahead.
    import_csv(&mut ts, &format!("H-2,{RFC4226_KEY_HEX},hotp\n"));
    let e = register(&mut ts, "bob", "fob", "H-2", &hotp(1), &hotp(3), T0).unwrap_err();
    assert!(matches!(e, Error::NotConsecutive), "{e:?}");
    let far = HOTP_RESYNC_LOOKAHEAD + 1;
    let e = register(&mut ts, "bob", "fob", "H-2", &hotp(far), &hotp(far + 1), T0).unwrap_err();
    assert!(matches!(e, Error::CounterNotFound { .. }), "{e:?}");
    assert!(
        devices::list(ts.store.conn(), "bob", T0)
            .unwrap()
            .is_empty()
    );
    // Two presses typed the other way round are the same proof: both are used up.
    register(&mut ts, "bob", "fob", "H-2", &hotp(2), &hotp(1), T0).unwrap();
    let d = devices::hotp_by_name(ts.store.conn(), "bob", "fob")
        .unwrap()
        .unwrap();
    assert_eq!(d.counter, 3);
}

#[test]
fn removing_the_device_returns_the_token_with_its_codes_used_up() {
    let mut ts = temp_store();
    import_csv(&mut ts, &format!("H-1,{RFC4226_KEY_HEX},hotp\n"));
    register(&mut ts, "alice", "fob", "H-1", &hotp(0), &hotp(1), T0).unwrap();
    // A login moves the counter on to 8.
    let tx = ts.store.write().unwrap();
    let d = devices::hotp_by_name(&tx, "alice", "fob").unwrap().unwrap();
    devices::advance_counter(&tx, d.id, 8, Some(T0)).unwrap();
    tx.commit().unwrap();
    // The store refuses to move it back.
    assert!(
        ts.store
            .conn()
            .execute("UPDATE devices SET counter = 2 WHERE name = 'fob'", [])
            .is_err()
    );
    // A token with an owner cannot leave the inventory.
    let tx = ts.store.write().unwrap();
    assert!(matches!(
        inventory::remove(&tx, "H-1"),
        Err(Error::TokenAssigned { .. })
    ));
    assert!(tx.execute("DELETE FROM tokens", []).is_err(), "foreign key");
    devices::remove(&tx, "alice", "fob", T0).unwrap();
    tx.commit().unwrap();
    let t = inventory::by_serial(ts.store.conn(), "H-1")
        .unwrap()
        .unwrap();
    assert!(t.assigned.is_none());
    assert_eq!(t.mode, Mode::Hotp { counter: 8 });
    // Codes alice used cannot register it again; the next ones can.
    let e = register(&mut ts, "bob", "key", "H-1", &hotp(6), &hotp(7), T0).unwrap_err();
    assert!(matches!(e, Error::CounterNotFound { .. }), "{e:?}");
    register(&mut ts, "bob", "key", "H-1", &hotp(8), &hotp(9), T0).unwrap();
}

#[test]
fn totp_token_registers_and_its_drift_is_found() {
    let mut ts = temp_store();
    let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    import_csv(&mut ts, &format!("T-1,{b32},totp-sha256,8\nT-2,{b32}\n"));
    let code = |t: i64| oathtool_with(b32, t, &["--digits=8", "--totp=sha256"]);
    let mode = register(
        &mut ts,
        "alice",
        "card",
        "T-1",
        &code(T0 - 30),
        &code(T0),
        T0,
    )
    .unwrap();
    assert_eq!(mode, Mode::Totp { period: 30 });
    let d = devices::totp_by_name(ts.store.conn(), "alice", "card", T0)
        .unwrap()
        .unwrap();
    assert_eq!((d.drift, d.last_step), (0, Some(T0 / 30)));
    assert_eq!(d.params.digits, 8);
    // A token whose clock runs 20 minutes fast is taken with its offset.
    let fast = |t: i64| oathtool(b32, t + 1200);
    register(&mut ts, "bob", "fob", "T-2", &fast(T0 - 30), &fast(T0), T0).unwrap();
    let d = devices::totp_by_name(ts.store.conn(), "bob", "fob", T0)
        .unwrap()
        .unwrap();
    assert_eq!(d.drift, 40);
    // Removing it hands the last used step back: those codes are spent for good.
    let tx = ts.store.write().unwrap();
    devices::remove(&tx, "bob", "fob", T0).unwrap();
    tx.commit().unwrap();
    let e = register(
        &mut ts,
        "carol",
        "fob",
        "T-2",
        &fast(T0 - 30),
        &fast(T0),
        T0 + 5,
    )
    .unwrap_err();
    assert!(matches!(e, Error::CodesAlreadyUsed), "{e:?}");
}

#[test]
fn a_token_clock_is_searched_12_hours_either_way_whatever_its_step() {
    let mut ts = temp_store();
    let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    import_csv(
        &mut ts,
        &format!("S-1,{b32},totp,6,300\nS-2,{b32},totp,6,300\n"),
    );
    let at = |offset: i64| {
        move |t: i64| oathtool_with(b32, t + offset, &["--totp", "--time-step-size=300s"])
    };
    // 11 hours fast: found (with its offset in 300 s steps).
    let c = at(11 * 3600);
    register(&mut ts, "alice", "slow", "S-1", &c(T0 - 300), &c(T0), T0).unwrap();
    let d = devices::totp_by_name(ts.store.conn(), "alice", "slow", T0)
        .unwrap()
        .unwrap();
    assert_eq!(d.drift, 11 * 12);
    // 13 hours: not, though 13 hours is only 156 of its 300 s steps.
    let c = at(13 * 3600);
    let e = register(&mut ts, "bob", "far", "S-2", &c(T0 - 300), &c(T0), T0).unwrap_err();
    assert!(matches!(e, Error::FirstCodeWrong), "{e:?}");
}

#[test]
fn tokens_count_toward_the_eight_devices() {
    let mut ts = temp_store();
    let mut csv = String::new();
    for i in 0..9 {
        csv.push_str(&format!("S{i},{RFC4226_KEY_HEX},hotp\n"));
    }
    import_csv(&mut ts, &csv);
    for i in 0..8 {
        register(
            &mut ts,
            "alice",
            &format!("t{i}"),
            &format!("S{i}"),
            &hotp(0),
            &hotp(1),
            T0,
        )
        .unwrap();
    }
    let e = register(&mut ts, "alice", "t8", "S8", &hotp(0), &hotp(1), T0).unwrap_err();
    assert!(matches!(e, Error::TooManyDevices { max: 8, .. }), "{e:?}");
    // The trigger counts them too, whatever the code path.
    let id: i64 = ts
        .store
        .conn()
        .query_row("SELECT id FROM tokens WHERE serial = 'S8'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let r = ts.store.conn().execute(
        "INSERT INTO devices (user, name, kind, state, created_at, token_id, counter)
         VALUES ('alice', 'x', 'token', 'active', 0, ?1, 2)",
        [id],
    );
    assert!(r.unwrap_err().to_string().contains("at most 8"));
}

#[test]
fn the_schema_keeps_token_devices_consistent() {
    let mut ts = temp_store();
    import_csv(
        &mut ts,
        &format!("H,{RFC4226_KEY_HEX},hotp\nT,{RFC4226_KEY_HEX}\n"),
    );
    let conn = ts.store.conn();
    let id = |serial: &str| -> i64 {
        conn.query_row("SELECT id FROM tokens WHERE serial = ?1", [serial], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let insert = |name: &str, kind: &str, token: Option<i64>, counter: Option<i64>, state: &str| {
        conn.execute(
            "INSERT INTO devices (user, name, kind, state, created_at, token_id, counter,
                                  expires_at)
             VALUES ('u', ?1, ?2, ?3, 0, ?4, ?5, 99)",
            rusqlite::params![name, kind, state, token, counter],
        )
    };
    assert!(
        insert("a", "token", None, Some(0), "active").is_err(),
        "no token"
    );
    assert!(
        insert("b", "token", Some(id("H")), None, "active").is_err(),
        "hotp without counter"
    );
    assert!(
        insert("c", "token", Some(id("T")), Some(0), "active").is_err(),
        "totp with counter"
    );
    assert!(
        insert("d", "token", Some(id("H")), Some(0), "pending").is_err(),
        "pending token"
    );
    assert!(
        insert("e", "fido2", Some(id("H")), None, "active").is_err(),
        "token on a key"
    );
    assert!(
        insert("f", "token", Some(12345), Some(0), "active").is_err(),
        "no such token"
    );
    insert("g", "token", Some(id("H")), Some(0), "active").unwrap();
    assert!(
        insert("h", "token", Some(id("H")), Some(0), "active").is_err(),
        "second owner"
    );
    assert!(
        conn.execute(
            "UPDATE devices SET token_id = ?1 WHERE name = 'g'",
            [id("T")]
        )
        .is_err(),
        "a device's token is fixed"
    );
}
