//! `mfa admin fleet import` (issue 19): a host that used its own SQLite store joins the
//! fleet, and its accounts' devices, replay state, recovery and bypass codes and tokens
//! move into the fleet database, where they keep working through the host's `mfad`; the
//! local copies are gone afterwards, while mfad.conf's local_users stay local.
//!
//! Codes are the real time's (the database checks them with its own clock), from
//! `oathtool`; HOTP codes are the RFC 4226 secret's.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use pam_mfa_tests::fleet::{
    DB, fleet_database, printed_password, run_guide, with_time_left_in_step, write_config,
};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::recovery::codes_in;
use pam_mfa_tests::{
    PamCode, TestEnv, TestUser, enroll_now, mfa_bin, next_code, real_now, tool, totp,
};

/// The RFC 4226 test secret "12345678901234567890" in hex.
const KEY_HEX: &str = "3132333435363738393031323334353637383930";

fn hotp(counter: i64) -> String {
    let out = Command::new(tool("oathtool", "oathtool"))
        .args(["--hotp", "--digits=6", "-c"])
        .arg(counter.to_string())
        .arg(KEY_HEX)
        .output()
        .expect("run oathtool");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// `mfa admin fleet import` of `env`'s store with `config` as the database's superuser.
fn import(pg: &Postgres, env: &TestEnv, config: &Path, extra: &[&str]) -> Output {
    Command::new(mfa_bin())
        .args(["admin", "fleet", "import", "--db"])
        .arg(env.db())
        .arg("--config")
        .arg(config)
        .arg("--connection")
        .arg(pg.superuser(DB))
        .args(extra)
        .output()
        .expect("run mfa admin fleet import")
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "import failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A count from the local store, read with SQLite directly.
fn local_count(env: &TestEnv, sql: &str, user: &str) -> i64 {
    let conn = rusqlite::Connection::open(env.db()).expect("open the store");
    conn.query_row(sql, [user], |r| r.get(0)).expect(sql)
}

fn local_rows(env: &TestEnv, user: &str) -> (i64, i64) {
    (
        local_count(env, "SELECT count(*) FROM devices WHERE user = ?1", user),
        local_count(
            env,
            "SELECT count(*) FROM recovery_codes WHERE user = ?1",
            user,
        ),
    )
}

fn fleet_rows(pg: &Postgres, user: &str) -> String {
    pg.psql(
        DB,
        &format!(
            "SELECT name || ' ' || kind || ' ' || coalesce(last_step::text, '-') || ' ' \
                    || coalesce(counter::text, '-') || ' ' || coalesce(token_serial, '-') \
                    || ' ' || coalesce(sign_count::text, '-') \
             FROM pam_mfa_fleet.devices WHERE user_name = '{user}' ORDER BY name"
        ),
    )
}

/// Waits until the real time step is at least `step`.
fn wait_for_step(step: i64) {
    while real_now().div_euclid(30) < step {
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_hosts_store_moves_into_the_fleet_and_every_device_and_code_keeps_working() {
    let pg = fleet_database();
    // A host on its own store, as before the fleet.
    let env = TestEnv::new();
    env.write_service(&[]);
    let alice = TestUser::new();
    let bob = TestUser::new();
    let carol = TestUser::new();
    let dave = TestUser::new();

    // alice: an app, used once at this host (its replay state must move with it), a
    // recovery set, and an unfinished registration (not moved).
    with_time_left_in_step(12);
    let phone = enroll_now(&env, alice.name(), "phone");
    let used = next_code(&phone.secret);
    let used_step = real_now().div_euclid(30) + 1;
    env.pam(alice.name())
        .answer(&used)
        .real_time()
        .run()
        .assert_result(PamCode::Success);
    let out = env.mfa(&["--user", alice.name(), "recovery", "generate"]);
    out.assert_success();
    let recovery = codes_in(&out.stdout);
    assert_eq!(recovery.len(), 10, "{}", out.stdout);
    env.begin(alice.name(), "tablet", &[]);
    // bob: an app and a bypass code good for two logins.
    enroll_now(&env, bob.name(), "phone");
    let out = env
        .mfa_cmd(&[
            "admin",
            "bypass",
            bob.name(),
            "--uses",
            "2",
            "--expires",
            "1h",
        ])
        .real_time()
        .run();
    out.assert_success();
    let bypass = codes_in(&out.stdout).pop().expect("a bypass code");
    // carol: an event-based token from the inventory, registered with codes 0 and 1 and
    // used once here with code 2.
    let seeds = env.path("seeds.csv");
    std::fs::write(&seeds, format!("serial,secret,type\nH-1,{KEY_HEX},hotp\n")).expect("write");
    env.mfa(&["admin", "tokens", "import", seeds.to_str().expect("path")])
        .assert_success();
    env.mfa(&[
        "--user",
        carol.name(),
        "enroll",
        "token",
        "fob",
        "H-1",
        &hotp(0),
        &hotp(1),
    ])
    .assert_success();
    env.login(carol.name(), &hotp(2)).assert_success();
    // root: kept local.
    let root_phone = enroll_now(&env, "root", "phone");
    // dave: a security key (written as registration writes it: public values only).
    env.stop_mfad();
    rusqlite::Connection::open(env.db())
        .expect("open the store")
        .execute(
            "INSERT INTO devices (user, name, kind, state, created_at, credential_id,
                                  cose_public_key, sign_count, rp_id, uv_required)
             VALUES (?1, 'key', 'fido2', 'active', 1, x'c0ffee', x'a501', 7, 'pam://h', 0)",
            [dave.name()],
        )
        .expect("insert a key");

    // The host joins the fleet; root stays in its store.
    let password = printed_password(&run_guide(&pg, "fleet-add-host", "a"));
    let config = env.path("mfad.conf");
    write_config(
        &config,
        "mfa_host_a",
        &password,
        &pg,
        &["root"],
        &[format!("localhost:{}", pg.port())],
    );
    env.set_mfad_args(&[OsStr::new("--config"), config.as_os_str()]);

    // A dry run says what would happen and changes nothing.
    let store_before = std::fs::read(env.db()).expect("read the store");
    let dry = stdout_of(&import(&pg, &env, &config, &["--dry-run"]));
    for user in [&alice, &bob, &carol, &dave] {
        assert!(
            dry.contains(&format!("would move {}:", user.name())),
            "{dry}"
        );
    }
    assert!(dry.contains("local      root:"), "{dry}");
    assert!(dry.contains("nothing changed"), "{dry}");
    assert_eq!(
        pg.psql(
            DB,
            "SELECT (SELECT count(*) FROM pam_mfa_fleet.devices) \
                    + (SELECT count(*) FROM pam_mfa_fleet.recovery_codes) \
                    + (SELECT count(*) FROM pam_mfa_fleet.audit)"
        )
        .trim(),
        "0"
    );
    assert_eq!(std::fs::read(env.db()).expect("read"), store_before);

    // The import.
    let moved = stdout_of(&import(&pg, &env, &config, &[]));
    assert!(
        moved.contains(&format!(
            "moved      {}: 1 device, 10 recovery and bypass codes",
            alice.name()
        )),
        "{moved}"
    );
    assert!(
        moved.contains(&format!(
            "moved      {}: 1 device, 1 recovery and bypass code\n",
            bob.name()
        )),
        "{moved}"
    );
    assert!(moved.contains("4 accounts"), "{moved}");
    assert!(moved.contains("local      root:"), "{moved}");

    // In the fleet: each device with its replay state, audited with the importing role.
    assert_eq!(
        fleet_rows(&pg, alice.name()).trim(),
        format!("phone totp {used_step} - - -")
    );
    assert_eq!(fleet_rows(&pg, carol.name()).trim(), "fob token - 3 H-1 -");
    assert_eq!(fleet_rows(&pg, dave.name()).trim(), "key fido2 - - - 7");
    assert_eq!(fleet_rows(&pg, "root").trim(), "");
    assert_eq!(
        pg.psql(
            DB,
            &format!(
                "SELECT host || ' ' || action || ' ' || actor_uid FROM pam_mfa_fleet.audit \
                 WHERE user_name = '{}'",
                alice.name()
            )
        )
        .trim(),
        "postgres import 0"
    );

    // Gone from the store (its file read directly), root's devices still there.
    for user in [&alice, &bob, &carol, &dave] {
        assert_eq!(local_rows(&env, user.name()), (0, 0), "{}", user.name());
    }
    assert_eq!(
        local_count(&env, "SELECT count(*) FROM tokens WHERE serial = ?1", "H-1"),
        0
    );
    assert_eq!(local_rows(&env, "root").0, 1);

    // Through the host's mfad, now on the fleet: the code used at the host before is
    // refused as used, a fresh one logs in.
    let replay = env.pam(alice.name()).answer(&used).real_time().run();
    replay.assert_result(PamCode::AuthErr);
    assert!(
        replay.transcript().contains("already used") || env.mfad_logged("already used"),
        "the replay was not named: {}\n{}",
        replay.transcript(),
        env.mfad_stderr()
    );
    wait_for_step(used_step);
    with_time_left_in_step(8);
    env.pam(alice.name())
        .answer(&next_code(&phone.secret))
        .real_time()
        .run()
        .assert_result(PamCode::Success);
    // A recovery code works once.
    env.pam(alice.name())
        .answer(&recovery[0])
        .real_time()
        .run()
        .assert_result(PamCode::Success);
    assert!(
        !env.pam(alice.name())
            .answer(&recovery[0])
            .real_time()
            .run()
            .succeeded()
    );
    // The bypass code keeps its two uses.
    for _ in 0..2 {
        env.pam(bob.name())
            .answer(&bypass)
            .real_time()
            .run()
            .assert_result(PamCode::Success);
    }
    assert!(
        !env.pam(bob.name())
            .answer(&bypass)
            .real_time()
            .run()
            .succeeded()
    );
    // The token goes on from its counter: its used code is refused, the next one works.
    env.pam(carol.name())
        .answer(&hotp(2))
        .real_time()
        .run()
        .assert_result(PamCode::AuthErr);
    env.pam(carol.name())
        .answer(&hotp(3))
        .real_time()
        .run()
        .assert_result(PamCode::Success);
    // root logs in from the local store.
    env.pam("root")
        .answer(&totp(&root_phone.secret, real_now() + 30))
        .real_time()
        .run()
        .assert_result(PamCode::Success);

    // Running it again moves nothing and harms nothing.
    let again = stdout_of(&import(&pg, &env, &config, &[]));
    assert!(again.contains("Moved 0 accounts"), "{again}");
    assert_eq!(fleet_rows(&pg, carol.name()).trim(), "fob token - 4 H-1 -");

    // An account that the fleet has devices of already is skipped, its local copy kept
    // (written here as `mfa --db` writes the store, without the daemon).
    env.stop_mfad();
    let out = env
        .mfa_cmd(&[
            "--user",
            alice.name(),
            "enroll",
            "totp",
            "old",
            "--begin",
            "--json",
        ])
        .db(env.db())
        .real_time()
        .run();
    out.assert_success();
    let old = pam_mfa_tests::Enrolled::from_begin_json(out.json());
    let now = real_now();
    env.mfa_cmd(&[
        "--user",
        alice.name(),
        "enroll",
        "finish",
        "old",
        &totp(&old.secret, now - 30),
        &totp(&old.secret, now),
    ])
    .db(env.db())
    .real_time()
    .run()
    .assert_success();
    let skipped = stdout_of(&import(&pg, &env, &config, &[]));
    assert!(
        skipped.contains(&format!("skipped    {}:", alice.name())),
        "{skipped}"
    );
    assert!(skipped.contains("1 skipped"), "{skipped}");
    assert_eq!(local_rows(&env, alice.name()).0, 1);
    assert_eq!(
        fleet_rows(&pg, alice.name()).lines().count(),
        1,
        "nothing merged"
    );
}

#[test]
fn without_the_hosts_fleet_configuration_nothing_is_moved() {
    let pg = fleet_database();
    let env = TestEnv::new();
    env.write_service(&[]);
    let alice = TestUser::new();
    env.enroll(alice.name(), "phone");
    let out = import(&pg, &env, &env.path("missing.conf"), &[]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(local_rows(&env, alice.name()).0, 1);
    assert_eq!(
        pg.psql(DB, "SELECT count(*) FROM pam_mfa_fleet.devices")
            .trim(),
        "0"
    );
}

#[test]
fn a_device_the_fleet_cannot_take_fails_the_whole_import_and_nothing_is_removed() {
    let pg = fleet_database();
    let env = TestEnv::new();
    env.write_service(&[]);
    let alice = TestUser::new();
    let dave = TestUser::new();
    env.enroll(alice.name(), "phone");
    env.stop_mfad();
    rusqlite::Connection::open(env.db())
        .expect("open the store")
        .execute(
            "INSERT INTO devices (user, name, kind, state, created_at, credential_id,
                                  cose_public_key, sign_count, rp_id, uv_required)
             VALUES (?1, 'key', 'fido2', 'active', 1, x'c0ffee', x'a501', 7, 'pam://h', 0)",
            [dave.name()],
        )
        .expect("insert a key");
    // The fleet has dave's key under another account already.
    pg.psql(
        DB,
        "INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, created_at, \
         credential_id, cose_public_key, sign_count, rp_id, uv_required) \
         VALUES ('zed', 'key', 'fido2', 'active', 1, '\\xc0ffee', '\\xa501', 0, 'pam://h', false)",
    );
    // (The import never connects as the host: its configuration is read for local_users.)
    let config = env.path("mfad.conf");
    write_config(
        &config,
        "mfa_host_a",
        "unused",
        &pg,
        &["root"],
        &[format!("localhost:{}", pg.port())],
    );
    let out = import(&pg, &env, &config, &[]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("registered in the fleet already"),
        "{stderr}"
    );
    // Nothing moved, nothing removed: alice's app went neither in nor out.
    assert_eq!(fleet_rows(&pg, alice.name()).trim(), "");
    assert_eq!(local_rows(&env, alice.name()).0, 1);
    assert_eq!(local_rows(&env, dave.name()).0, 1);
    assert_eq!(
        pg.psql(DB, "SELECT count(*) FROM pam_mfa_fleet.audit")
            .trim(),
        "0"
    );
}

/// Selects the software authenticator of the workspace's debug build (tests/fido2.rs).
const SOFT_VAR: &str = "PAM_MFA_SOFT_FIDO2";

fn key_counter(path: &Path) -> i64 {
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("key state")).expect("JSON");
    s["counter"].as_i64().expect("a counter")
}

fn key_login(env: &TestEnv, user: &str, key: &Path) -> pam_mfa_tests::PamOutcome {
    env.pam(user)
        .env(SOFT_VAR, key)
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT")
        .run()
}

#[test]
fn a_security_key_registered_on_the_host_logs_in_through_the_fleet_with_its_sign_count() {
    let pg = fleet_database();
    let env = TestEnv::new();
    env.write_service(&[]);
    let alice = TestUser::new();
    let key = env.path("key-alice.json");
    env.mfa_cmd(&["--user", alice.name(), "enroll", "fido2", "yubi"])
        .env(SOFT_VAR, &key)
        .run()
        .assert_success();
    key_login(&env, alice.name(), &key).assert_success();
    let count = key_counter(&key);
    assert!(count > 0, "the key counts");
    env.stop_mfad();

    let password = printed_password(&run_guide(&pg, "fleet-add-host", "a"));
    let config = env.path("mfad.conf");
    write_config(
        &config,
        "mfa_host_a",
        &password,
        &pg,
        &["root"],
        &[format!("localhost:{}", pg.port())],
    );
    env.set_mfad_args(&[OsStr::new("--config"), config.as_os_str()]);
    stdout_of(&import(&pg, &env, &config, &[]));
    assert_eq!(
        fleet_rows(&pg, alice.name()).trim(),
        format!("yubi fido2 - - - {count}")
    );
    assert_eq!(local_rows(&env, alice.name()), (0, 0));

    // A touch logs in through the fleet, and the database's count follows the key's.
    key_login(&env, alice.name(), &key).assert_success();
    let now_count = key_counter(&key);
    assert!(now_count > count);
    assert_eq!(
        fleet_rows(&pg, alice.name()).trim(),
        format!("yubi fido2 - - - {now_count}")
    );
    // A clone that signs with the count the host had before the import is refused: the
    // count moved with the key.
    let mut s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key).expect("key state")).expect("JSON");
    s["counter"] = serde_json::json!(count - 1);
    std::fs::write(&key, serde_json::to_vec(&s).expect("JSON")).expect("write");
    key_login(&env, alice.name(), &key).assert_result(PamCode::AuthErr);
}
