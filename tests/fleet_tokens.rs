//! Hardware OTP tokens in a fleet (issue 19): with a fleet configured, `mfa admin tokens`
//! keeps the fleet's inventory in its database, and `mfa enroll token` registers a token
//! for a fleet account there, its two codes checked by the database. Two hosts on one
//! real PostgreSQL, driven through the real `mfa` and the real `pam_mfa.so`; token codes
//! from `oathtool` (HOTP by counter; TOTP at the real time, the database's clock). And
//! the database's registration rule against the library's, on the same random tokens,
//! codes and times (`FLEET_TOKENS_SEED` replays a run, `FLEET_TOKENS_CASES` sizes it).

use std::collections::BTreeMap;
use std::process::Command;

use pam_mfa::enrollment;
use pam_mfa::names::{DeviceName, UserName};
use pam_mfa::otp::Algorithm;
use pam_mfa::secret::Secret;
use pam_mfa::store::Store;
use pam_mfa::tokens::{Mode, TokenSeed, inventory};
use pam_mfa_tests::fleet::{DB, Host, fleet_database, library_code, with_time_left_in_step};
use pam_mfa_tests::random::{Rng, env_number, random_seed};
use pam_mfa_tests::tokens::{self, KEY_B32, KEY_HEX, enroll, token};
use pam_mfa_tests::{PamCode, TestUser, real_now, totp};
use postgres::{Client, NoTls};
use serde_json::Value;

/// Another seed (20 bytes), for the TOTP token.
const KEY2_HEX: &str = "3031323334353637383930313233343536373839";
const KEY2_B32: &str = "GAYTEMZUGU3DOOBZGAYTEMZUGU3DOOBZ";

/// The HOTP code of the RFC secret for `counter`, from oathtool.
fn hotp(counter: i64) -> String {
    tokens::hotp(KEY_HEX, counter, 6)
}

/// The fleet's inventory as a host's `mfa admin tokens list --json` shows it (asserting
/// that no seed is in what it printed).
fn inventory(host: &Host) -> Vec<Value> {
    tokens::inventory_hiding(
        &host.env,
        &[KEY_HEX, KEY_B32, KEY2_HEX, KEY2_B32, "12345678901234567890"],
    )
}

/// Imports the seed file `text` (named `file`) through `host`.
fn import(host: &Host, file: &str, text: &str, extra: &[&str]) -> pam_mfa_tests::MfaOutput {
    tokens::import_text(&host.env, file, text, extra)
}

#[test]
fn the_fleets_inventory_serves_every_host_and_a_token_code_is_used_once_in_the_fleet() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    for host in [&a, &b] {
        host.env.write_service(&[]);
    }
    let alice = TestUser::new();
    let bob = TestUser::new();
    // A wrong HOTP code is compared with the 11 codes of the look-ahead and counts 4
    // failures (as locally): room for the refusals below.
    pg.psql(DB, "SELECT pam_mfa_fleet.set_policy('max_failures', '50')");

    // Loaded through host A, into the database (host A's own store holds no token).
    import(
        &a,
        "seeds.csv",
        &format!("serial,secret,type\nH-1,{KEY_HEX},hotp\nT-1,{KEY2_B32},totp\n"),
        &[],
    )
    .assert_success();
    assert!(!a.env.db().exists(), "host A's local store was used");
    // Listed through host B: serial, kind, no owner, no seed.
    let listed = inventory(&b);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(token(&listed, "H-1")["type"], "hotp");
    assert_eq!(token(&listed, "T-1")["type"], "totp");
    assert_eq!(token(&listed, "H-1")["user"], Value::Null);
    // The same file again: refused whole, as locally; with --replace it loads over the
    // unassigned tokens.
    import(&b, "again.csv", &format!("H-1,{KEY_HEX},hotp\n"), &[])
        .assert_error(&["already in the inventory"]);
    import(
        &b,
        "again.csv",
        &format!("H-1,{KEY_HEX},hotp\n"),
        &["--replace"],
    )
    .assert_success();

    // Alice registers the HOTP token through host B (codes 2 and 3: pressed twice before).
    enroll(&b.env, alice.name(), "fob", "H-1", &hotp(2), &hotp(3)).assert_success();
    let device = a.env.listed(alice.name(), "fob").expect("listed on A");
    assert_eq!(device["kind"], "token", "{device}");
    assert_eq!(token(&inventory(&a), "H-1")["user"], alice.name());
    // Nobody else gets it, and the administrator cannot take it out from under her.
    enroll(&a.env, bob.name(), "fob", "H-1", &hotp(4), &hotp(5))
        .assert_error(&["not in the inventory, or is already assigned"]);
    a.env
        .mfa(&["admin", "tokens", "remove", "H-1"])
        .assert_error(&["assigned to", alice.name()]);
    import(
        &a,
        "over.csv",
        &format!("H-1,{KEY_HEX},hotp\n"),
        &["--replace"],
    )
    .assert_error(&["assigned to", alice.name()]);

    // She logs in on host A; the code is refused on host B afterwards, and so is the one
    // it skipped; the next one works on B.
    a.env
        .login(alice.name(), &hotp(5))
        .assert_result(PamCode::Success);
    b.env
        .login(alice.name(), &hotp(5))
        .assert_result(PamCode::AuthErr);
    b.env
        .login(alice.name(), &hotp(4))
        .assert_result(PamCode::AuthErr);
    b.env
        .login(alice.name(), &hotp(6))
        .assert_result(PamCode::Success);

    // Removing her device (through A) returns the token to the inventory, its used
    // codes still used: Bob cannot register it with them, but can with the next two.
    a.env
        .mfa(&["admin", "remove", alice.name(), "fob"])
        .assert_success();
    assert_eq!(token(&inventory(&b), "H-1")["user"], Value::Null);
    b.env
        .login(alice.name(), &hotp(7))
        .assert_result(PamCode::AuthErr);
    enroll(&b.env, bob.name(), "fob", "H-1", &hotp(5), &hotp(6))
        .assert_error(&["no two consecutive codes"]);
    enroll(&b.env, bob.name(), "fob", "H-1", &hotp(7), &hotp(8)).assert_success();
    a.env
        .login(bob.name(), &hotp(9))
        .assert_result(PamCode::Success);

    // The TOTP token, at the database's clock: registered through A, used on B.
    with_time_left_in_step(5);
    let now = real_now();
    enroll(
        &a.env,
        alice.name(),
        "card",
        "T-1",
        &totp(KEY2_B32, now - 30),
        &totp(KEY2_B32, now),
    )
    .assert_success();
    b.env
        .login(alice.name(), &totp(KEY2_B32, real_now() + 30))
        .assert_result(PamCode::Success);

    // Taken out of the inventory for good once unassigned, through either host.
    b.env
        .mfa(&["admin", "tokens", "remove", "NOPE"])
        .assert_error(&["no token with serial number NOPE"]);
    a.env
        .mfa(&["admin", "remove", bob.name(), "fob"])
        .assert_success();
    b.env
        .mfa(&["admin", "tokens", "remove", "H-1"])
        .assert_success();
    let left = inventory(&a);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(token(&left, "T-1")["user"], alice.name());

    // Every step audited in the database, with the host that made it.
    let audit = pg.psql(
        DB,
        "SELECT host || ' ' || user_name || ' ' || action || ' ' || coalesce(detail, '') \
         FROM pam_mfa_fleet.audit WHERE action IN ('token-import', 'token-remove', \
         'register', 'remove') ORDER BY id",
    );
    let expect = [
        format!("{} * token-import 2 added, 0 replaced (CSV)", a.role),
        format!("{} * token-import 0 added, 1 replaced (CSV)", b.role),
        format!("{} {} register token H-1", b.role, alice.name()),
        format!("{} {} remove token H-1", a.role, alice.name()),
        format!("{} {} register token H-1", b.role, bob.name()),
        format!("{} {} register token T-1", a.role, alice.name()),
        format!("{} {} remove token H-1", a.role, bob.name()),
        format!("{} * token-remove serial H-1", b.role),
    ];
    let rows: Vec<&str> = audit.lines().collect();
    assert_eq!(rows, expect, "{audit}");

    // The seeds are only in the database's inventory (and in the devices made of them),
    // which no host role can read.
    let e = Command::new("psql")
        .args(["-X", "-A", "-t", "-h"])
        .arg(pg.socket_dir())
        .args([
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            "-d",
            DB,
            "-c",
        ])
        .arg(format!(
            "SET ROLE {}; SELECT secret FROM pam_mfa_fleet.tokens",
            a.role
        ))
        .output()
        .expect("run psql");
    assert!(!e.status.success(), "a host read the inventory");
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("permission denied"),
        "{e:?}"
    );
}

/// A user registering a token for themselves: every refusal is the one answer, counted
/// toward the lock-out by the database (here through its owner-only function at a
/// chosen time, as mfad's host function calls it with the server's clock).
#[test]
fn a_users_failed_token_registrations_are_one_answer_and_lock_them_out() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    import(&a, "seeds.csv", &format!("H-2,{KEY_HEX},hotp\n"), &[]).assert_success();
    let call = |serial: &str, c1: &str, c2: &str, now: i64| {
        pg.psql(
            DB,
            &format!(
                "SELECT outcome || ' ' || coalesce(mode, '-') || ' ' || \
                 coalesce(locked_until::text, '-') FROM pam_mfa_fleet.enroll_token_at(\
                 'carol', 1000, 'fob', '{serial}', '{c1}', '{c2}', {now})"
            ),
        )
        .trim()
        .to_owned()
    };
    let t0 = 2_000_000_000;
    // No such serial, wrong codes of a real one: the same answer, each counted.
    for (i, (serial, c1, c2)) in [
        ("NOPE", hotp(0), hotp(1)),
        ("H-2", hotp(0), hotp(5)),
        ("H-2", hotp(500), hotp(400)),
        ("NOPE", "123456".to_owned(), "654321".to_owned()),
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(call(serial, c1, c2, t0 + i as i64), "not_registered - -");
    }
    // The fifth failure (the default limit) locks her out: then nothing is looked at,
    // not even the right codes of a free token.
    let fifth = call("NOPE", "111111", "222222", t0 + 4);
    assert!(fifth.starts_with("not_registered - "), "{fifth}");
    assert_ne!(fifth, "not_registered - -");
    let locked = call("H-2", &hotp(0), &hotp(1), t0 + 5);
    assert!(locked.starts_with("locked - "), "{locked}");
    // Once the lock-out is over, the right codes register it.
    assert_eq!(
        call("H-2", &hotp(0), &hotp(1), t0 + 100_000),
        "registered hotp -"
    );
    // Root is told exactly.
    let root = pg.psql(
        DB,
        &format!(
            "SELECT outcome FROM pam_mfa_fleet.enroll_token_at('dave', 0, 'fob', 'H-2', \
             '{}', '{}', {})",
            hotp(2),
            hotp(3),
            t0 + 100_001
        ),
    );
    assert_eq!(root.trim(), "unavailable");
}

/// The library's registration outcome in the SQL's words.
fn local_outcome(r: &pam_mfa::Result<Mode>) -> &'static str {
    match r {
        Ok(_) => "registered",
        Err(pam_mfa::Error::CodesAlreadyUsed) => "already_used",
        Err(
            pam_mfa::Error::NotConsecutive
            | pam_mfa::Error::FirstCodeWrong
            | pam_mfa::Error::SecondCodeWrong
            | pam_mfa::Error::CounterNotFound { .. },
        ) => "codes_not_found",
        Err(e) => panic!("unexpected local refusal: {e:?}"),
    }
}

/// The same random tokens, codes and times to the SQL's `enroll_token_at` and to the
/// library's `enrollment::register_token` (root's rule) on a real SQLite store: the same
/// answers, and the same replay state (drift, last step, counter) for the new device.
/// Then each device is removed and the token registered again with codes around its
/// high-water mark: the same answers again.
#[test]
fn sql_and_library_agree_on_token_registrations() {
    let pg = fleet_database();
    let mut c = Client::connect(&pg.superuser(DB), NoTls).expect("superuser connection");
    let seed = env_number("FLEET_TOKENS_SEED", random_seed());
    let cases = env_number("FLEET_TOKENS_CASES", 60);
    eprintln!("fleet_tokens differential: FLEET_TOKENS_SEED={seed} FLEET_TOKENS_CASES={cases}");
    let mut rng = Rng::seeded(seed);
    let dir = tempfile::tempdir_in("/dev/shm").expect("temp dir");
    let mut store =
        Store::open_or_create(&dir.path().join("store/devices.db")).expect("local store");
    let mut tally: BTreeMap<&str, u32> = BTreeMap::new();
    for case in 0..cases {
        let serial = format!("S-{case}");
        let secret: Vec<u8> = (0..20).map(|_| rng.below(256) as u8).collect();
        let alg = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][rng.below(3) as usize];
        let digits = 6 + rng.below(3) as u8;
        let event_based = rng.chance(50);
        let period = [30u32, 60][rng.below(2) as usize];
        let start = rng.below(50) as i64;
        let mode = if event_based {
            Mode::Hotp { counter: start }
        } else {
            Mode::Totp { period }
        };
        let now = 1_800_000_000 + rng.below(10_000_000) as i64;
        let seed_entry = TokenSeed::new(
            &serial,
            Secret::from_bytes(secret.clone()),
            alg,
            digits,
            mode,
        )
        .expect("a token");
        let tx = store.write().expect("write");
        inventory::import(&tx, std::slice::from_ref(&seed_entry), false, now).expect("import");
        tx.commit().expect("commit");
        let imported: String = c
            .query_one(
                "SELECT outcome FROM pam_mfa_fleet.import_tokens_at(0, 'csv', false, \
                 ARRAY[$1], ARRAY[$2], ARRAY[$3::bytea], ARRAY[$4], ARRAY[$5::int], \
                 ARRAY[$6::int], ARRAY[$7::bigint], $8)",
                &[
                    &serial,
                    &mode.as_str(),
                    &secret,
                    &alg.as_str(),
                    &i32::from(digits),
                    &(!event_based).then_some(period as i32),
                    &event_based.then_some(start),
                    &now,
                ],
            )
            .expect("import_tokens_at")
            .get(0);
        assert_eq!(imported, "imported");
        let user = format!("u{case}");
        let uname = UserName::parse(&user).expect("user name");
        let name = DeviceName::parse("fob").expect("device name");
        // Twice: a fresh token, then (its device removed) the same token again.
        let mut at = now;
        for round in 0..2 {
            // Where the first code is: around the counter, or around now in steps (near,
            // at the edges of the near and the 12-hour searches, and beyond), and the
            // second code after it, before it, or not next to it.
            let first = if event_based {
                let counter: Option<i64> = c
                    .query_one(
                        "SELECT counter FROM pam_mfa_fleet.tokens WHERE serial = $1",
                        &[&serial],
                    )
                    .expect("token")
                    .get(0);
                let counter = counter.expect("an HOTP token's counter");
                counter + [-3, -2, -1, 0, 0, 1, 7, 999, 1000, 1001][rng.below(10) as usize]
            } else {
                let span = 43_200 / i64::from(period);
                let now_step = at.div_euclid(i64::from(period));
                now_step
                    + [
                        -12,
                        -11,
                        -10,
                        -3,
                        -1,
                        0,
                        0,
                        1,
                        2,
                        40,
                        -span,
                        span - 1,
                        span,
                        -span - 1,
                    ][rng.below(14) as usize]
            };
            let second = first + [1, 1, 1, -1, 2][rng.below(5) as usize];
            if first < 0 || second < 0 {
                continue;
            }
            let (c1, c2) = (
                library_code(&secret, alg, digits, first),
                library_code(&secret, alg, digits, second),
            );
            let local = enrollment::register_token(
                &mut store,
                &uname,
                &name,
                &serial,
                c1.as_bytes(),
                c2.as_bytes(),
                at,
            );
            let sql: String = c
                .query_one(
                    "SELECT outcome FROM pam_mfa_fleet.enroll_token_at($1, 0, 'fob', $2, $3, \
                     $4, $5)",
                    &[&user, &serial, &c1, &c2, &at],
                )
                .expect("enroll_token_at")
                .get(0);
            let what = format!(
                "case {case} round {round} (seed {seed}): {mode:?} at {at}, codes of {first} \
                 and {second}: library {local:?}, SQL {sql}"
            );
            assert_eq!(local_outcome(&local), sql, "{what}");
            *tally.entry(local_outcome(&local)).or_default() += 1;
            if local.is_ok() {
                let local_state: (i64, Option<i64>, Option<i64>) = store
                    .conn()
                    .query_row(
                        "SELECT drift, last_step, counter FROM devices \
                         WHERE user = ?1 AND name = 'fob'",
                        [&user],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .expect("local device");
                let row = c
                    .query_one(
                        "SELECT drift, last_step, counter FROM pam_mfa_fleet.devices \
                         WHERE user_name = $1 AND name = 'fob'",
                        &[&user],
                    )
                    .expect("SQL device");
                let sql_state: (i64, Option<i64>, Option<i64>) =
                    (row.get(0), row.get(1), row.get(2));
                assert_eq!(local_state, sql_state, "{what}");
                pam_mfa::admin::remove_device(&mut store, &uname, &name, at).expect("local remove");
                let removed: bool = c
                    .query_one(
                        "SELECT pam_mfa_fleet.remove_device_at($1, 0, 'fob', $2)",
                        &[&user, &at],
                    )
                    .expect("remove_device_at")
                    .get(0);
                assert!(removed, "{what}");
            }
            at += [0, 30, 600][rng.below(3) as usize];
        }
    }
    eprintln!("fleet_tokens differential outcomes: {tally:?}");
    for outcome in ["registered", "codes_not_found", "already_used"] {
        assert!(
            tally.get(outcome).copied().unwrap_or(0) > 0,
            "no case ended {outcome}: {tally:?}"
        );
    }
}
