//! The fleet database's SQL (`pam_mfa/fleet/sql/fleet.sql`, issue 19) on a real PostgreSQL:
//! its codes against the RFC vectors, its answers against the Rust library's on the same
//! random devices, codes and times, what a host role can and cannot do, concurrent logins
//! with one code, a lock-out shared by two hosts, and an init run twice.
//!
//! The superuser drives the owner-only `*_at` functions at chosen times over the cluster's
//! Unix socket; hosts log in over TLS with their own roles (the harness refuses plain TCP),
//! as `mfad` does. Needs root and Debian's `postgresql` (the harness's requirements).
//! `FLEET_SQL_SEED` replays a differential run; `FLEET_SQL_CASES` sizes it (default 300).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Barrier};

use openssl::ssl::{SslConnector, SslMethod};
use pam_mfa::lockout::LockoutPolicy;
use pam_mfa::login::{self, LoginSettings, Outcome, Refusal};
use pam_mfa::names::UserName;
use pam_mfa::otp::Algorithm;
use pam_mfa::store::{Store, auth_state};
use pam_mfa_tests::fleet::library_code;
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::random::{Rng, env_number, random_seed};
use postgres::{Client, NoTls};
use postgres_openssl::MakeTlsConnector;

const DB: &str = "pam_mfa";

/// The host functions of the contract, with arguments that make each do something.
const HOST_CALLS: &[&str] = &[
    "SELECT * FROM pam_mfa_fleet.login_state('alice')",
    "SELECT * FROM pam_mfa_fleet.check_code('alice', 0, '123456', NULL, NULL, NULL, NULL)",
    "SELECT * FROM pam_mfa_fleet.finish_totp('alice', 0, 'phone', '123456', '654321')",
    "SELECT * FROM pam_mfa_fleet.resync('alice', 0, 'phone', '123456', '654321')",
    "SELECT * FROM pam_mfa_fleet.list_devices('alice')",
    "SELECT * FROM pam_mfa_fleet.rename_device('alice', 0, 'nothing', 'other')",
    "SELECT * FROM pam_mfa_fleet.remove_device('alice', 0, 'nothing')",
    "SELECT * FROM pam_mfa_fleet.policy()",
    "SELECT * FROM pam_mfa_fleet.unlock('alice', 0)",
    "SELECT * FROM pam_mfa_fleet.set_recovery_codes('alice', 0, \
     ARRAY[decode(repeat('01', 16), 'hex')], ARRAY[decode(repeat('02', 32), 'hex')])",
    "SELECT * FROM pam_mfa_fleet.recovery_codes_left('alice')",
    "SELECT * FROM pam_mfa_fleet.use_recovery_code('alice', 0, 'abcdefghijkm')",
    "SELECT * FROM pam_mfa_fleet.add_bypass_code('alice', 0, decode(repeat('03', 16), 'hex'), \
     decode(repeat('04', 32), 'hex'), 1, extract(epoch FROM now())::bigint + 3600)",
    // Security keys (tests/fleet_keys.rs): public keys and sign counts only.
    "SELECT * FROM pam_mfa_fleet.keys('alice')",
    "SELECT * FROM pam_mfa_fleet.begin_key('alice', 'key')",
    "SELECT * FROM pam_mfa_fleet.record_key_login('alice', 0, '\\x01', '\\x02', 1)",
    "SELECT * FROM pam_mfa_fleet.key_refused('alice', 0, NULL, 'a test')",
    // Hardware tokens: a seed loaded (it says "the-secret"), listed, registered, removed.
    "SELECT * FROM pam_mfa_fleet.import_tokens(0, 'csv', false, ARRAY['SN-1'], ARRAY['hotp'], \
     ARRAY[convert_to('the-secret-of-token-sn-1', 'UTF8')], ARRAY['SHA1'], ARRAY[6], \
     ARRAY[NULL]::int[], ARRAY[0]::bigint[])",
    "SELECT * FROM pam_mfa_fleet.list_tokens()",
    "SELECT * FROM pam_mfa_fleet.enroll_token('alice', 0, 'fob', 'SN-1', '123456', '654321')",
    "SELECT * FROM pam_mfa_fleet.remove_token(0, 'nothing')",
    // The administrator's views (tests/fleet_admin.rs): no secret, salt or hash.
    "SELECT * FROM pam_mfa_fleet.admin_accounts()",
    "SELECT * FROM pam_mfa_fleet.audit_rows('alice', NULL)",
    "SELECT * FROM pam_mfa_fleet.audit_rows(NULL, 0)",
];

const TABLES: &[&str] = &[
    "devices",
    "auth_state",
    "audit",
    "policy",
    "schema_version",
    "recovery_codes",
    "tokens",
];

/// A cluster with the fleet schema installed in database [`DB`].
struct Fleet {
    pg: Postgres,
}

impl Fleet {
    fn new() -> Self {
        let pg = Postgres::start();
        pg.create_database(DB);
        let fleet = Self { pg };
        fleet.init();
        fleet
    }

    /// Runs fleet.sql as the superuser, as an administrator would.
    fn init(&self) {
        let sql = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pam_mfa/fleet/sql/fleet.sql");
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.pg.superuser(DB))
            .arg("-f")
            .arg(&sql)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "fleet.sql failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn admin(&self) -> Client {
        Client::connect(&self.pg.superuser(DB), NoTls).expect("superuser connection")
    }

    /// Creates the host role `mfa_host_NAME` and returns its password.
    fn add_host(&self, name: &str) -> String {
        let password = pam_mfa_tests::users::random_hex(24);
        self.admin()
            .batch_execute(&format!(
                "CREATE ROLE mfa_host_{name} LOGIN PASSWORD '{password}' IN ROLE pam_mfa_host"
            ))
            .expect("create host role");
        password
    }

    /// A host's connection: TLS to 127.0.0.1, the server's certificate verified.
    fn host(&self, name: &str, password: &str) -> Client {
        let mut tls = SslConnector::builder(SslMethod::tls()).expect("TLS connector");
        tls.set_ca_file(self.pg.ca_file()).expect("CA file");
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=mfa_host_{name} password={password} dbname={DB} \
                 sslmode=require",
                self.pg.port()
            ),
            MakeTlsConnector::new(tls.build()),
        )
        .expect("host connection")
    }
}

#[allow(clippy::too_many_arguments)]
fn add_totp(
    c: &mut Client,
    user: &str,
    name: &str,
    secret: &[u8],
    alg: Algorithm,
    digits: u8,
    period: u32,
    drift: i64,
    last_step: Option<i64>,
) {
    c.execute(
        "INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, secret, algorithm,
                                            digits, period, drift, last_step, created_at)
         VALUES ($1, $2, 'totp', 'active', $3, $4, $5, $6, $7, $8, 0)",
        &[
            &user,
            &name,
            &secret,
            &alg.as_str(),
            &i32::from(digits),
            &(period as i32),
            &drift,
            &last_step,
        ],
    )
    .expect("insert TOTP device");
}

fn add_hotp(
    c: &mut Client,
    user: &str,
    name: &str,
    secret: &[u8],
    alg: Algorithm,
    digits: u8,
    counter: i64,
) {
    c.execute(
        "INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, secret, algorithm,
                                            digits, counter, created_at)
         VALUES ($1, $2, 'token', 'active', $3, $4, $5, $6, 0)",
        &[
            &user,
            &name,
            &secret,
            &alg.as_str(),
            &i32::from(digits),
            &counter,
        ],
    )
    .expect("insert HOTP token");
}

/// What check_code(_at) answered: outcome, device, locked_until.
type Answer = (String, Option<String>, Option<i64>);

fn check_at(
    c: &mut Client,
    user: &str,
    code: &str,
    window: Option<i32>,
    hotp_window: Option<i32>,
    now: i64,
) -> Answer {
    let row = c
        .query_one(
            "SELECT outcome, device, locked_until
             FROM pam_mfa_fleet.check_code_at($1, 0, $2, $3, $4, NULL, NULL, $5)",
            &[&user, &code, &window, &hotp_window, &now],
        )
        .expect("check_code_at");
    (row.get(0), row.get(1), row.get(2))
}

fn check(c: &mut Client, user: &str, code: &str) -> Answer {
    let row = c
        .query_one(
            "SELECT outcome, device, locked_until
             FROM pam_mfa_fleet.check_code($1, 0, $2, NULL, NULL, NULL, NULL)",
            &[&user, &code],
        )
        .expect("check_code");
    (row.get(0), row.get(1), row.get(2))
}

fn server_now(c: &mut Client) -> i64 {
    c.query_one("SELECT pam_mfa_fleet.now_()", &[])
        .expect("now")
        .get(0)
}

fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

/// RFC 6238 Appendix B (8 digits, 30 s) and RFC 4226 Appendix D, through check_code_at:
/// the right code is accepted once, at its time only.
#[test]
fn rfc_vectors_through_check_code_at() {
    let fleet = Fleet::new();
    let mut c = fleet.admin();
    let seeds: [&[u8]; 3] = [
        b"12345678901234567890",
        b"12345678901234567890123456789012",
        b"1234567890123456789012345678901234567890123456789012345678901234",
    ];
    let vectors: &[(i64, [&str; 3])] = &[
        (59, ["94287082", "46119246", "90693936"]),
        (1111111109, ["07081804", "68084774", "25091201"]),
        (1111111111, ["14050471", "67062674", "99943326"]),
        (1234567890, ["89005924", "91819424", "93441116"]),
        (2000000000, ["69279037", "90698825", "38618901"]),
        (20000000000, ["65353130", "77737706", "47863826"]),
    ];
    for (i, (time, codes)) in vectors.iter().enumerate() {
        for (a, alg) in ALGORITHMS.iter().enumerate() {
            let user = format!("rfc{i}-{alg}");
            add_totp(&mut c, &user, "app", seeds[a], *alg, 8, 30, 0, None);
            // Another time's code is wrong here (window 0: this step only).
            let other = vectors[(i + 1) % vectors.len()].1[a];
            assert_eq!(
                check_at(&mut c, &user, other, Some(0), None, *time).0,
                "wrong",
                "{alg} at {time}"
            );
            // One step later, the right code is out of a window of 0.
            assert_eq!(
                check_at(&mut c, &user, codes[a], Some(0), None, time + 30).0,
                "wrong",
                "{alg} at {time} + 30"
            );
            assert_eq!(
                check_at(&mut c, &user, codes[a], Some(0), None, *time),
                ("accepted".to_owned(), Some("app".to_owned()), None),
                "{alg} at {time}"
            );
            assert_eq!(
                check_at(&mut c, &user, codes[a], Some(0), None, *time),
                ("replayed".to_owned(), Some("app".to_owned()), None),
                "{alg} at {time}, again"
            );
        }
    }
    // Six digits are the low digits; an 8-digit answer to a 6-digit device is wrong.
    add_totp(
        &mut c,
        "six",
        "app",
        seeds[0],
        Algorithm::Sha1,
        6,
        30,
        0,
        None,
    );
    assert_eq!(
        check_at(&mut c, "six", "94287082", Some(0), None, 59).0,
        "wrong"
    );
    assert_eq!(
        check_at(&mut c, "six", "287082", Some(0), None, 59).0,
        "accepted"
    );
    // RFC 4226 Appendix D: counters 0..9 one after the other, with no look-ahead.
    let hotp = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    add_hotp(&mut c, "fob", "fob", seeds[0], Algorithm::Sha1, 6, 0);
    assert_eq!(
        check_at(&mut c, "fob", hotp[1], None, Some(0), 1).0,
        "wrong"
    );
    for (counter, want) in hotp.iter().enumerate() {
        assert_eq!(
            check_at(&mut c, "fob", want, None, Some(0), 1).0,
            "accepted",
            "HOTP counter {counter}"
        );
    }
    assert_eq!(
        check_at(&mut c, "fob", hotp[9], None, Some(0), 1).0,
        "replayed"
    );
    // And the SQL's codes agree with the library's for every algorithm and length.
    for alg in ALGORITHMS {
        for digits in 6..=8u8 {
            for counter in [0i64, 1, 59_999_999, 1 << 40] {
                let sql: String = c
                    .query_one(
                        "SELECT pam_mfa_fleet.otp_code($1, $2, $3, $4)",
                        &[&seeds[1], &alg.as_str(), &i32::from(digits), &counter],
                    )
                    .expect("otp_code")
                    .get(0);
                assert_eq!(
                    sql,
                    library_code(seeds[1], alg, digits, counter),
                    "{alg} {digits}"
                );
            }
        }
    }
}

/// One random case's device, as both stores hold it.
struct Dev {
    name: String,
    secret: Vec<u8>,
    alg: Algorithm,
    digits: u8,
    /// Some(period) for a time-based device, None for an HOTP token.
    period: Option<u32>,
    drift: i64,
}

fn local_add(store: &Store, user: &str, d: &Dev, last_step: Option<i64>, counter: i64) {
    let conn = store.conn();
    match d.period {
        Some(period) => {
            conn.execute(
                "INSERT INTO devices (user, name, kind, state, secret, algorithm, digits, period,
                                      drift, last_step, created_at)
                 VALUES (?1, ?2, 'totp', 'active', ?3, ?4, ?5, ?6, ?7, ?8, 0)",
                rusqlite::params![
                    user,
                    d.name,
                    d.secret,
                    d.alg.as_str(),
                    d.digits,
                    period,
                    d.drift,
                    last_step
                ],
            )
            .expect("local TOTP device");
        }
        None => {
            conn.execute(
                "INSERT INTO tokens (serial, type, secret, algorithm, digits, counter, imported_at)
                 VALUES (?1, 'hotp', ?2, ?3, ?4, 0, 0)",
                rusqlite::params![
                    format!("{user}.{}", d.name),
                    d.secret,
                    d.alg.as_str(),
                    d.digits
                ],
            )
            .expect("local token");
            conn.execute(
                "INSERT INTO devices (user, name, kind, state, created_at, token_id, counter)
                 VALUES (?1, ?2, 'token', 'active', 0, last_insert_rowid(), ?3)",
                rusqlite::params![user, d.name, counter],
            )
            .expect("local token device");
        }
    }
}

/// The library's outcome in the SQL's terms.
fn local_answer(o: &Outcome) -> Answer {
    match o {
        Outcome::Accepted { device } => ("accepted".into(), Some(device.clone()), None),
        Outcome::Locked { until } => ("locked".into(), None, Some(*until)),
        Outcome::Refused {
            reason,
            locked_until,
        } => match reason {
            Refusal::Malformed(_) => ("malformed".into(), None, *locked_until),
            Refusal::WrongCode => ("wrong".into(), None, *locked_until),
            Refusal::Replayed { device } => {
                ("replayed".into(), Some(device.clone()), *locked_until)
            }
            Refusal::NoDevices => ("no_devices".into(), None, None),
            Refusal::Key(_) => ("key".into(), None, *locked_until),
        },
    }
}

/// Failure state and each device's replay state, from either store.
type State = (
    (i64, i64, Option<i64>),
    Vec<(String, Option<i64>, Option<i64>, Option<i64>)>,
);

fn local_state(store: &Store, user: &str) -> State {
    let s = auth_state::load(store.conn(), user).expect("local auth state");
    let mut stmt = store
        .conn()
        .prepare(
            "SELECT name, last_step, counter, last_used_at FROM devices WHERE user = ?1
             ORDER BY id",
        )
        .expect("prepare");
    let devices = stmt
        .query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("rows");
    (
        (i64::from(s.failures), s.window_start, s.locked_until),
        devices,
    )
}

fn sql_state(c: &mut Client, user: &str) -> State {
    let failures = c
        .query_opt(
            "SELECT failures, window_start, locked_until FROM pam_mfa_fleet.auth_state
             WHERE user_name = $1",
            &[&user],
        )
        .expect("auth_state")
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap_or((0, 0, None));
    let devices = c
        .query(
            "SELECT name, last_step, counter, last_used_at FROM pam_mfa_fleet.devices
             WHERE user_name = $1 ORDER BY id",
            &[&user],
        )
        .expect("devices")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    (failures, devices)
}

/// The same random devices, codes and times to the SQL and to `pam_mfa::login::verify` on
/// a real SQLite store: the same answers, failure counts, lock-outs and replay marks.
#[test]
fn sql_and_library_agree_on_random_logins() {
    let fleet = Fleet::new();
    let mut c = fleet.admin();
    let seed = env_number("FLEET_SQL_SEED", random_seed());
    let cases = env_number("FLEET_SQL_CASES", 300);
    eprintln!("fleet_sql differential: FLEET_SQL_SEED={seed} FLEET_SQL_CASES={cases}");
    let mut rng = Rng::seeded(seed);
    // In memory: thousands of commits, each synced, would make this a disk benchmark.
    let dir = tempfile::tempdir_in("/dev/shm").expect("temp dir");
    let mut store =
        Store::open_or_create(&dir.path().join("store/devices.db")).expect("local store");
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    let mut now = 1_800_000_005i64;
    for case in 0..cases {
        let user = format!("u{case}");
        let uname = UserName::parse(&user).expect("user name");
        // The policy's lock-out numbers, and the window from the caller or the policy.
        let max_failures = 1 + rng.below(10) as u32;
        let lockout_secs = [30i64, 300, 300, 100_000][rng.below(4) as usize];
        let policy_window = rng.chance(50).then(|| rng.below(4) as u32);
        let given_window = rng.chance(70).then(|| rng.below(4) as u32);
        let hotp_window = rng.below(13) as u32;
        // The PAM line's lock-out arguments, when given, override the policy's.
        let given_max_failures = rng.chance(30).then(|| 1 + rng.below(10) as u32);
        let given_lockout_secs = rng.chance(30).then(|| [60i64, 600][rng.below(2) as usize]);
        for (key, value) in [
            ("max_failures", max_failures.to_string()),
            ("lockout_seconds", lockout_secs.to_string()),
            (
                "window",
                policy_window.map_or("default".to_owned(), |w| w.to_string()),
            ),
        ] {
            c.execute("SELECT pam_mfa_fleet.set_policy($1, $2)", &[&key, &value])
                .expect("set_policy");
        }
        let settings = LoginSettings {
            window: given_window.or(policy_window).unwrap_or(1),
            hotp_window,
            lockout: LockoutPolicy {
                max_failures: given_max_failures.unwrap_or(max_failures),
                lockout_secs: given_lockout_secs.unwrap_or(lockout_secs),
            },
        };
        // Time moves on between cases (sometimes past a day, so old failures are forgotten).
        now += [1, 40, 400, 90_000][rng.below(4) as usize];
        let mut devices = Vec::new();
        for i in 0..1 + rng.below(3) {
            let alg = ALGORITHMS[rng.below(3) as usize];
            let digits = 6 + rng.below(3) as u8;
            let secret: Vec<u8> = (0..16 + rng.below(49))
                .map(|_| rng.next_u64() as u8)
                .collect();
            let totp = rng.chance(70);
            let period = totp.then(|| [30u32, 30, 60, 15, 5][rng.below(5) as usize]);
            let drift = if rng.chance(10) {
                [-1500i64, 1500][rng.below(2) as usize]
            } else {
                rng.below(7) as i64 - 3
            };
            let d = Dev {
                name: format!("d{i}"),
                secret,
                alg,
                digits,
                period,
                drift: if totp { drift } else { 0 },
            };
            let last_step = period
                .filter(|_| rng.chance(60))
                .map(|p| now.div_euclid(i64::from(p)) + d.drift + rng.below(6) as i64 - 3);
            let counter = rng.below(40) as i64;
            match d.period {
                Some(p) => add_totp(
                    &mut c, &user, &d.name, &d.secret, alg, digits, p, d.drift, last_step,
                ),
                None => add_hotp(&mut c, &user, &d.name, &d.secret, alg, digits, counter),
            }
            local_add(&store, &user, &d, last_step, counter);
            devices.push(d);
        }
        let mut used: Vec<String> = Vec::new();
        for attempt in 0..8 {
            now += [0i64, 1, 7, 30, 200, 400][rng.below(6) as usize];
            let d = &devices[rng.below(devices.len() as u64) as usize];
            let w = i64::from(settings.window);
            let answer = match rng.below(10) {
                0 => format!(
                    "{:0width$}",
                    rng.below(100_000_000),
                    width = 6 + rng.below(3) as usize
                ),
                1 => ["12a456", "", "12345", "123456789", "1234567890"][rng.below(5) as usize]
                    .to_owned(),
                2 if !used.is_empty() => used[rng.below(used.len() as u64) as usize].clone(),
                _ => match d.period {
                    Some(p) => {
                        let centre = now.div_euclid(i64::from(p)) + d.drift;
                        let step = centre + rng.below(2 * w as u64 + 5) as i64 - w - 2;
                        library_code(&d.secret, d.alg, d.digits, step.max(0))
                    }
                    None => {
                        // The stored counter moves; ask the SQL store for it.
                        let now_counter: i64 = c
                            .query_one(
                                "SELECT counter FROM pam_mfa_fleet.devices
                                 WHERE user_name = $1 AND name = $2",
                                &[&user, &d.name],
                            )
                            .expect("counter")
                            .get(0);
                        let at = now_counter + rng.below(u64::from(hotp_window) + 6) as i64 - 3;
                        library_code(&d.secret, d.alg, d.digits, at.max(0))
                    }
                },
            };
            let sql = c
                .query_one(
                    "SELECT outcome, device, locked_until
                     FROM pam_mfa_fleet.check_code_at($1, 1000, $2, $3, $4, $5, $6, $7)",
                    &[
                        &user,
                        &answer,
                        &given_window.map(|w| w as i32),
                        &(hotp_window as i32),
                        &given_max_failures.map(|n| n as i32),
                        &given_lockout_secs,
                        &now,
                    ],
                )
                .map(|r| -> Answer { (r.get(0), r.get(1), r.get(2)) })
                .expect("check_code_at");
            let local = local_answer(
                &login::verify(&mut store, &uname, answer.as_bytes(), settings, now)
                    .expect("library verify"),
            );
            let context = format!(
                "seed {seed}, case {case}, attempt {attempt}, answer {answer:?}, now {now}, \
                 {settings:?}, given window {given_window:?}"
            );
            assert_eq!(sql, local, "{context}");
            assert_eq!(
                sql_state(&mut c, &user),
                local_state(&store, &user),
                "{context}"
            );
            if sql.0 == "accepted" {
                used.push(answer);
            }
            *tally.entry(sql.0).or_default() += 1;
        }
    }
    eprintln!("outcomes: {tally:?}");
    // The random cases reached every outcome a code can have.
    for outcome in ["accepted", "replayed", "wrong", "malformed", "locked"] {
        assert!(
            tally.get(outcome).copied().unwrap_or(0) > 0,
            "no {outcome} in {tally:?}"
        );
    }
}

/// A host role reads no table, changes none, calls no owner-only function, cannot become
/// the owner or another host, and gets no secret back from any function but begin_totp.
#[test]
fn a_host_role_reaches_the_data_only_through_the_host_functions() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    let secret = b"the-secret-of-alice-phone".to_vec();
    add_totp(
        &mut admin,
        "alice",
        "phone",
        &secret,
        Algorithm::Sha1,
        6,
        30,
        0,
        None,
    );
    let password = fleet.add_host("a");
    fleet.add_host("b");
    let mut host = fleet.host("a", &password);
    // Tables: every statement refused (42501 insufficient_privilege).
    for table in TABLES {
        let column: String = admin
            .query_one(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'pam_mfa_fleet' AND table_name = $1
                 ORDER BY ordinal_position DESC LIMIT 1",
                &[table],
            )
            .expect("a column")
            .get(0);
        for sql in [
            format!("SELECT * FROM pam_mfa_fleet.{table}"),
            format!("SELECT count(*) FROM pam_mfa_fleet.{table}"),
            format!("UPDATE pam_mfa_fleet.{table} SET \"{column}\" = \"{column}\""),
            format!("DELETE FROM pam_mfa_fleet.{table}"),
            format!("INSERT INTO pam_mfa_fleet.{table} DEFAULT VALUES"),
            format!("TRUNCATE pam_mfa_fleet.{table}"),
            format!("COPY pam_mfa_fleet.{table} TO STDOUT"),
        ] {
            let e = host.batch_execute(&sql).expect_err(&sql);
            assert_eq!(sqlstate(&e), "42501", "{sql}: {e}");
        }
    }
    // Every function of ours that is not a host function: EXECUTE refused.
    let host_functions = [
        "login_state",
        "check_code",
        "begin_totp",
        "finish_totp",
        "resync",
        "list_devices",
        "remove_device",
        "rename_device",
        "policy",
        "unlock",
        "use_recovery_code",
        "set_recovery_codes",
        "add_bypass_code",
        "recovery_codes_left",
        "keys",
        "begin_key",
        "add_key",
        "record_key_login",
        "key_refused",
        "import_tokens",
        "list_tokens",
        "remove_token",
        "enroll_token",
        "begin_totp_held",
        "hold_totp",
        "activate_held",
        "change_room",
        "remembered_ended",
        "forget_remembered",
        "admin_accounts",
        "audit_rows",
    ];
    let functions = admin
        .query(
            "SELECT p.proname::text,
                    array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t)
             FROM pg_proc p
             WHERE p.pronamespace = 'pam_mfa_fleet'::regnamespace
               AND p.proowner = 'pam_mfa_owner'::regrole",
            &[],
        )
        .expect("functions");
    let mut owner_only = 0;
    for f in &functions {
        let (name, args): (String, Vec<String>) = (f.get(0), f.get(1));
        if host_functions.contains(&name.as_str()) {
            continue;
        }
        let call = format!(
            "SELECT pam_mfa_fleet.{name}({})",
            args.iter()
                // Not NULL: a STRICT function with a NULL argument is folded away
                // before its privileges are looked at.
                .map(|t| match t.as_str() {
                    "bytea" => "'\\x00'::bytea".to_owned(),
                    "bytea[]" => "ARRAY['\\x00'::bytea]".to_owned(),
                    "text" => "'x'::text".to_owned(),
                    "text[]" => "ARRAY['x']::text[]".to_owned(),
                    "integer[]" => "ARRAY[1]::integer[]".to_owned(),
                    "bigint[]" => "ARRAY[1]::bigint[]".to_owned(),
                    "boolean" => "true".to_owned(),
                    // count_failure_'s row of the user's lock.
                    "pam_mfa_fleet.auth_state" => "NULL::pam_mfa_fleet.auth_state".to_owned(),
                    other => format!("1::{other}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let e = host.batch_execute(&call).expect_err(&call);
        assert_eq!(sqlstate(&e), "42501", "{call}: {e}");
        owner_only += 1;
    }
    assert!(
        owner_only >= 15,
        "only {owner_only} owner-only functions found"
    );
    for name in [
        "check_code_at",
        "begin_totp_at",
        "set_policy",
        "otp_code",
        "lock_user",
    ] {
        assert!(
            functions.iter().any(|f| f.get::<_, String>(0) == name),
            "{name} not found"
        );
    }
    // The host functions' results hold no bytea but begin_totp's.
    let bytea = admin
        .query(
            "SELECT p.proname::text FROM pg_proc p
             WHERE p.pronamespace = 'pam_mfa_fleet'::regnamespace
               AND p.proname = ANY($1)
               AND (p.prorettype = 'bytea'::regtype
                    OR 'bytea'::regtype = ANY(coalesce(p.proallargtypes, '{}')))",
            &[&host_functions.to_vec()],
        )
        .expect("bytea results")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>();
    // (The security-key functions' bytea are credential ids and public keys: see
    // tests/fleet_keys.rs for what they return; begin_totp_held is begin_totp for a
    // registration at login, the new secret returned once.)
    let mut bytea = bytea;
    bytea.sort();
    assert_eq!(
        bytea,
        [
            "begin_key",
            "begin_totp",
            "begin_totp_held",
            "keys",
            "record_key_login"
        ]
    );
    // Each host function runs for the host, and nothing it prints holds the secret.
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    for sql in HOST_CALLS {
        for message in host.simple_query(sql).expect(sql) {
            if let postgres::SimpleQueryMessage::Row(row) = message {
                for i in 0..row.len() {
                    let value = row.get(i).unwrap_or("");
                    assert!(
                        !value.contains(&hex) && !value.contains("the-secret"),
                        "{sql} returned a secret"
                    );
                }
            }
        }
    }
    // The policy in effect, numbers and all (the built-in defaults here).
    let p = host
        .query_one(
            "SELECT self_service, max_devices, no_device, max_failures, lockout_seconds, \"window\"
             FROM pam_mfa_fleet.policy()",
            &[],
        )
        .expect("policy");
    assert_eq!(
        (
            p.get::<_, String>(0),
            p.get::<_, i32>(1),
            p.get::<_, String>(2),
            p.get::<_, i32>(3),
            p.get::<_, i32>(4),
            p.get::<_, i32>(5)
        ),
        ("allow".to_owned(), 8, "deny".to_owned(), 5, 300, 1)
    );
    // begin_totp returns the new secret once; it is the one stored.
    let new: Vec<u8> = host
        .query_one(
            "SELECT pam_mfa_fleet.begin_totp('alice', 0, 'tablet', 'SHA1', 6, 30)",
            &[],
        )
        .expect("begin_totp")
        .get(0);
    assert_eq!(new.len(), 20);
    let stored: Vec<u8> = admin
        .query_one(
            "SELECT secret FROM pam_mfa_fleet.devices WHERE user_name = 'alice' AND name = 'tablet'",
            &[],
        )
        .expect("stored")
        .get(0);
    assert_eq!(new, stored);
    // Nor can a host become the owner, another host or anyone else.
    for sql in [
        "SET ROLE pam_mfa_owner",
        "SET ROLE mfa_host_b",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION pam_mfa_owner",
        "SET SESSION AUTHORIZATION mfa_host_b",
        "CREATE TABLE pam_mfa_fleet.mine (x int)",
        "CREATE FUNCTION pam_mfa_fleet.mine() RETURNS int LANGUAGE sql RETURN 1",
        "GRANT pam_mfa_owner TO mfa_host_a",
        "ALTER ROLE mfa_host_a SUPERUSER",
    ] {
        let e = host.batch_execute(sql).expect_err(sql);
        assert_eq!(sqlstate(&e), "42501", "{sql}: {e}");
    }
    // The audit names the host by its login role.
    let hosts: Vec<String> = admin
        .query(
            "SELECT DISTINCT host FROM pam_mfa_fleet.audit ORDER BY host",
            &[],
        )
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hosts, ["mfa_host_a"]);
}

/// 16 logins at once over 16 connections of two hosts with one right code: one accepted.
#[test]
fn sixteen_concurrent_logins_with_one_code_accept_it_once() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    let hosts = [("a", fleet.add_host("a")), ("b", fleet.add_host("b"))];
    let secret = b"0123456789abcdef0123".to_vec();
    // Made once (a SCRAM login is slow in a debug build), used for every round.
    let mut clients: Vec<Client> = (0..16)
        .map(|i| {
            let (name, password) = &hosts[i % 2];
            fleet.host(name, password)
        })
        .collect();
    for round in 0..5 {
        let user = format!("race{round}");
        add_totp(
            &mut admin,
            &user,
            "phone",
            &secret,
            Algorithm::Sha1,
            6,
            30,
            0,
            None,
        );
        // After a first round with no auth_state row yet (the racers then queue on its
        // insertion), the row exists: only the lock taken on it serialises them.
        if round > 0 {
            assert_eq!(check(&mut admin, &user, "000000").0, "wrong");
        }
        let step = server_now(&mut admin).div_euclid(30);
        let right = library_code(&secret, Algorithm::Sha1, 6, step);
        let barrier = Arc::new(Barrier::new(16));
        let threads: Vec<_> = clients
            .drain(..)
            .map(|mut client| {
                let (barrier, user, right) = (barrier.clone(), user.clone(), right.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let answer = check(&mut client, &user, &right);
                    (client, answer)
                })
            })
            .collect();
        let mut answers: Vec<Answer> = Vec::new();
        for t in threads {
            let (client, answer) = t.join().expect("login thread");
            clients.push(client);
            answers.push(answer);
        }
        let accepted = answers.iter().filter(|a| a.0 == "accepted").count();
        assert_eq!(accepted, 1, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|a| ["accepted", "replayed", "locked"].contains(&a.0.as_str())),
            "{answers:?}"
        );
    }
}

/// Recovery codes hashed by the library (`recovery::salted_hash`) are found by the
/// database's SHA-256: 16 uses at once of one code over two hosts accept it once, for
/// each of three codes; a made-up code counts no failure, and a lock-out does not stop a
/// right code, which clears nothing either (lockout.rs).
#[test]
fn sixteen_concurrent_uses_of_one_recovery_code_accept_it_once() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    let hosts = [("a", fleet.add_host("a")), ("b", fleet.add_host("b"))];
    let mut clients: Vec<Client> = (0..16)
        .map(|i| {
            let (name, password) = &hosts[i % 2];
            fleet.host(name, password)
        })
        .collect();
    let codes = pam_mfa::recovery::new_set().expect("codes");
    let hashed: Vec<([u8; 16], [u8; 32])> = codes
        .iter()
        .map(|c| pam_mfa::recovery::salted_hash(c).expect("hash"))
        .collect();
    let salts: Vec<&[u8]> = hashed.iter().map(|(s, _)| &s[..]).collect();
    let hashes: Vec<&[u8]> = hashed.iter().map(|(_, h)| &h[..]).collect();
    clients[0]
        .execute(
            "SELECT pam_mfa_fleet.set_recovery_codes('rec', 0, $1, $2)",
            &[&salts, &hashes],
        )
        .expect("set_recovery_codes");
    let use_code = |c: &mut Client, code: &str| -> Option<(String, i32)> {
        c.query(
            "SELECT kind, remaining FROM pam_mfa_fleet.use_recovery_code('rec', 7, $1)",
            &[&code],
        )
        .expect("use_recovery_code")
        .first()
        .map(|r| (r.get(0), r.get(1)))
    };
    for (round, code) in codes.iter().take(3).enumerate() {
        let code = code.as_str().to_owned();
        let barrier = Arc::new(Barrier::new(16));
        let threads: Vec<_> = clients
            .drain(..)
            .map(|mut client| {
                let (barrier, code) = (barrier.clone(), code.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let answer = use_code(&mut client, &code);
                    (client, answer)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in threads {
            let (client, answer) = t.join().expect("use thread");
            clients.push(client);
            answers.push(answer);
        }
        let accepted: Vec<_> = answers.iter().flatten().collect();
        let left = 9 - i32::try_from(round).expect("round");
        assert_eq!(accepted, [&("recovery".to_owned(), left)], "{answers:?}");
    }
    let left: i32 = clients[1]
        .query_one("SELECT pam_mfa_fleet.recovery_codes_left('rec')", &[])
        .expect("left")
        .get(0);
    assert_eq!(left, 7);
    // Made-up codes and things that are not codes: refused, nothing counted.
    for made_up in [
        "abcdefghijkm",
        "ABCDEFGHIJKM",
        "abcd-efgh-jkmn",
        "123456",
        "",
    ] {
        assert_eq!(use_code(&mut clients[0], made_up), None, "{made_up}");
    }
    let failures = |admin: &mut Client| -> (i64, Option<i64>) {
        let r = admin
            .query_one(
                "SELECT failures, locked_until FROM pam_mfa_fleet.auth_state
                 WHERE user_name = 'rec'",
                &[],
            )
            .expect("auth_state");
        (r.get(0), r.get(1))
    };
    assert_eq!(failures(&mut admin), (0, None));
    // Locked out: a right code still gets in, and the lock stays.
    let until = server_now(&mut admin) + 300;
    admin
        .execute(
            "UPDATE pam_mfa_fleet.auth_state SET failures = 5, window_start = $1,              locked_until = $2 WHERE user_name = 'rec'",
            &[&(until - 300), &until],
        )
        .expect("lock");
    assert_eq!(
        use_code(&mut clients[1], &codes[5]),
        Some(("recovery".to_owned(), 6))
    );
    assert_eq!(failures(&mut admin), (5, Some(until)));
    // Every use is audited once, by the host that made it.
    let logins: i64 = admin
        .query_one(
            "SELECT count(*) FROM pam_mfa_fleet.audit
             WHERE user_name = 'rec' AND action = 'recovery-login' AND actor_uid = 7
               AND host IN ('mfa_host_a', 'mfa_host_b')",
            &[],
        )
        .expect("audit")
        .get(0);
    assert_eq!(logins, 4);
}

/// Failures on two hosts count toward one lock-out, which then holds on both.
#[test]
fn failures_on_two_hosts_lock_the_user_on_both() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    let (pa, pb) = (fleet.add_host("a"), fleet.add_host("b"));
    let (mut a, mut b) = (fleet.host("a", &pa), fleet.host("b", &pb));
    let secret = b"lock-out-secret-0123".to_vec();
    add_totp(
        &mut admin,
        "carol",
        "phone",
        &secret,
        Algorithm::Sha1,
        6,
        30,
        0,
        None,
    );
    // The server's time as a host sees it.
    let right = |c: &mut Client| {
        let now: i64 = c
            .query_one("SELECT now FROM pam_mfa_fleet.login_state('carol')", &[])
            .expect("login_state")
            .get(0);
        library_code(&secret, Algorithm::Sha1, 6, now.div_euclid(30))
    };
    // The default policy: 5 failures lock for 300 s. A code no window holds (far away).
    let wrong = library_code(&secret, Algorithm::Sha1, 6, 1000);
    for i in 0..4 {
        let host = if i % 2 == 0 { &mut a } else { &mut b };
        let answer = check(host, "carol", &wrong);
        assert_eq!(
            (answer.0.as_str(), answer.2),
            ("wrong", None),
            "failure {i}"
        );
    }
    let fifth = check(&mut b, "carol", &wrong);
    assert_eq!(fifth.0, "wrong");
    let until = fifth.2.expect("the fifth failure locks");
    let now = server_now(&mut admin);
    assert!((now + 295..=now + 300).contains(&until), "{until} {now}");
    // Locked on both hosts, even with the right code, which is not checked.
    for host in [&mut a, &mut b] {
        let code = right(host);
        assert_eq!(
            check(host, "carol", &code),
            ("locked".into(), None, Some(until))
        );
        let state = host
            .query_one(
                "SELECT locked_until FROM pam_mfa_fleet.login_state('carol')",
                &[],
            )
            .expect("login_state");
        assert_eq!(state.get::<_, Option<i64>>(0), Some(until));
    }
    // The audit has each host's refusals under its own name.
    let per_host: Vec<(String, i64)> = admin
        .query(
            "SELECT host, count(*) FROM pam_mfa_fleet.audit
             WHERE action = 'login-refused' GROUP BY host ORDER BY host",
            &[],
        )
        .expect("audit")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        per_host,
        [("mfa_host_a".to_owned(), 3), ("mfa_host_b".to_owned(), 4)]
    );
    // An unlock on one host ends it for both (true: there was something to clear).
    assert!(
        a.query_one("SELECT pam_mfa_fleet.unlock('carol', 0)", &[])
            .expect("unlock")
            .get::<_, bool>(0)
    );
    assert!(
        !b.query_one("SELECT pam_mfa_fleet.unlock('carol', 0)", &[])
            .expect("unlock")
            .get::<_, bool>(0)
    );
    let code = right(&mut b);
    assert_eq!(check(&mut b, "carol", &code).0, "accepted");
    assert_eq!(check(&mut a, "carol", &code).0, "replayed");
}

/// The devices table itself refuses a row no function writes, whichever rule it breaks
/// (since schema version 5 the rules are the `devices_valid` trigger, not CHECK
/// constraints: a CHECK is prepared again at every UPDATE, a login's included), with the
/// rule's name; a login's own write (the last step and when) passes, and its range is
/// still checked.
#[test]
fn the_devices_table_refuses_rows_that_break_its_rules() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    add_totp(
        &mut admin,
        "erin",
        "phone",
        b"a-secret-of-20-bytes",
        Algorithm::Sha1,
        6,
        30,
        0,
        None,
    );
    add_hotp(
        &mut admin,
        "erin",
        "fob",
        b"a-secret-of-20-bytes",
        Algorithm::Sha1,
        6,
        0,
    );
    admin
        .execute(
            "INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, credential_id,
                 cose_public_key, sign_count, rp_id, uv_required, created_at)
             VALUES ('erin', 'key', 'fido2', 'active', '\\x01', '\\x02', 0, 'host', false, 0)",
            &[],
        )
        .expect("a valid key");
    let device =
        |name: &str| format!("(SELECT id FROM pam_mfa_fleet.devices WHERE name = '{name}')");
    let cases: &[(&str, &str, &str)] = &[
        ("phone", "user_name = ''", "devices_user_name_check"),
        ("phone", "name = repeat('n', 65)", "devices_name_check"),
        ("phone", "kind = 'sms'", "devices_kind_check"),
        ("phone", "state = 'gone'", "devices_state_check"),
        ("phone", "secret = ''", "devices_secret_check"),
        ("phone", "algorithm = 'MD5'", "devices_algorithm_check"),
        ("phone", "digits = 9", "devices_digits_check"),
        ("phone", "period = 301", "devices_period_check"),
        ("phone", "drift = 1502", "devices_drift_check"),
        ("fob", "counter = -1", "devices_counter_check"),
        ("phone", "token_serial = ''", "devices_token_serial_check"),
        ("key", "credential_id = ''", "devices_credential_id_check"),
        (
            "key",
            "cose_public_key = ''",
            "devices_cose_public_key_check",
        ),
        ("key", "sign_count = 4294967296", "devices_sign_count_check"),
        ("key", "rp_id = ''", "devices_rp_id_check"),
        ("phone", "secret = NULL", "devices_check"),
        ("phone", "period = NULL", "devices_check"),
        (
            "phone",
            "kind = 'totp', period = 30, counter = 5",
            "devices_check",
        ),
        ("fob", "kind = 'totp'", "devices_check1"),
        ("key", "uv_required = NULL", "devices_check2"),
        (
            "phone",
            "state = 'pending', expires_at = NULL",
            "devices_check3",
        ),
        ("phone", "token_id = 1", "devices_token_from_inventory"),
        ("phone", "login_hold = '\\x01'", "devices_login_hold_check"),
        ("phone", "last_step = -1", "devices_last_step_check"),
        (
            "phone",
            "last_step = 1099511627777, last_used_at = 1",
            "devices_last_step_check",
        ),
    ];
    for (name, set, rule) in cases {
        let sql = format!(
            "UPDATE pam_mfa_fleet.devices SET {set} WHERE id = {}",
            device(name)
        );
        let e = admin.batch_execute(&sql).expect_err(&sql);
        let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        assert_eq!(db.code().code(), "23514", "{sql}: {db}");
        assert_eq!(db.constraint(), Some(*rule), "{sql}: {db}");
    }
    // A new row is held to the same rules.
    let e = admin
        .batch_execute(
            "INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, secret, algorithm,
                 digits, period, created_at)
             VALUES ('erin', 'tablet', 'totp', 'active', '\\x01', 'SHA1', 5, 30, 0)",
        )
        .expect_err("a 5-digit device");
    assert_eq!(
        e.as_db_error().and_then(|d| d.constraint()),
        Some("devices_digits_check")
    );
    // What a login writes, and what the functions write, passes; nothing above was kept.
    admin
        .batch_execute(&format!(
            "UPDATE pam_mfa_fleet.devices SET last_step = 5, last_used_at = 7 WHERE id = {};
             UPDATE pam_mfa_fleet.devices SET counter = 3 WHERE id = {};
             UPDATE pam_mfa_fleet.devices SET sign_count = 9 WHERE id = {}",
            device("phone"),
            device("fob"),
            device("key")
        ))
        .expect("a login's writes");
    let rows: Vec<String> = admin
        .query(
            "SELECT format('%s %s %s %s %s', name, digits, last_step, counter, sign_count)
             FROM pam_mfa_fleet.devices ORDER BY name",
            &[],
        )
        .expect("devices")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, ["fob 6  3 ", "key    9", "phone 6 5  "]);
}

/// A bypass code's audit row says its lifetime as the local store's does
/// (`admin::duration_text`), also when the host's clock reading (from which it computed
/// the expiry) was a few seconds before the database's. (The price of that: a lifetime
/// typed as up to 5 s short of a whole minute, hour or day reads as that unit in the
/// fleet's row.)
#[test]
fn a_bypass_codes_audit_row_says_its_lifetime_as_the_local_store_does() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    let now: i64 = 1_800_000_000;
    for (lifetime, late, text) in [
        (7 * 86_400, 0, "7d"),
        (7 * 86_400, 1, "7d"),
        (129_600, 3, "36h"),
        (3600, 5, "1h"),
        (5400, 2, "90m"),
        (90, 0, "90s"),
        (86_389, 0, "86389s"),
        (1, 0, "1s"),
    ] {
        admin
            .execute(
                "SELECT pam_mfa_fleet.add_bypass_code_at('erin', 0, \
                 decode(repeat('03', 16), 'hex'), decode(repeat('04', 32), 'hex'), 1, \
                 $1::bigint, $2::bigint)",
                &[&(now + lifetime), &(now + late)],
            )
            .expect("add a bypass code");
        let detail: String = admin
            .query_one(
                "SELECT detail FROM pam_mfa_fleet.audit WHERE action = 'bypass' \
                 ORDER BY id DESC LIMIT 1",
                &[],
            )
            .expect("audit row")
            .get(0);
        assert!(
            detail.starts_with(&format!("1 use(s), expires in {text}")),
            "{lifetime} s, {late} s late: {detail}"
        );
        assert_eq!(
            pam_mfa::admin::duration_text(lifetime),
            text,
            "the local store's words"
        );
    }
}

/// How many audit rows are older than `age` seconds before `now`.
fn audit_rows_older(c: &mut Client, now: i64, age: i64) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pam_mfa_fleet.audit WHERE at < $1",
        &[&(now - age)],
    )
    .expect("count audit rows")
    .get(0)
}

/// The fleet keeps audit rows for the policy's `audit_retention_days` (365 by default),
/// as a local store does: rows past it go as new rows are written, a thousand at most at
/// a time (every 64th row written prunes), so that no login is held up by a backlog.
#[test]
fn audit_rows_past_the_retention_go_as_rows_are_written_in_bounded_batches() {
    const DAY: i64 = 86_400;
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    let now = server_now(&mut admin);
    let write = |c: &mut Client, n: usize| {
        for _ in 0..n {
            c.execute(
                "SELECT pam_mfa_fleet.audit_($1, 0, 'erin', 'unlock', NULL, NULL)",
                &[&now],
            )
            .expect("write an audit row");
        }
    };
    let old = |c: &mut Client, n: i32, age: i64| {
        c.execute(
            "INSERT INTO pam_mfa_fleet.audit (at, actor_uid, user_name, action, host)
             SELECT $1, 0, 'erin', 'unlock', 'old' FROM generate_series(1, $2)",
            &[&(now - age), &n],
        )
        .expect("old audit rows");
    };
    let set = |c: &mut Client, value: &str| {
        c.execute(
            "SELECT pam_mfa_fleet.set_policy('audit_retention_days', $1)",
            &[&value],
        )
    };

    // The default keeps a year: rows of 300 days stay however many rows are written.
    old(&mut admin, 20, 300 * DAY);
    write(&mut admin, 130);
    assert_eq!(audit_rows_older(&mut admin, now, 299 * DAY), 20);
    let retention: i32 = admin
        .query_one(
            "SELECT audit_retention_days FROM pam_mfa_fleet.policy_at(0)",
            &[],
        )
        .expect("policy")
        .get(0);
    assert_eq!(retention, 365);

    // Five days: a prune deletes at most a thousand of the rows past it, oldest first,
    // and leaves the rows within it. (The old rows are written after the policy's own
    // audit row, which may itself have pruned, so that what this prune finds is known.)
    admin
        .execute("DELETE FROM pam_mfa_fleet.audit WHERE host = 'old'", &[])
        .expect("a clean start");
    set(&mut admin, "5").expect("retention 5 days");
    old(&mut admin, 20, 300 * DAY);
    old(&mut admin, 1500, 10 * DAY);
    old(&mut admin, 7, 4 * DAY);
    admin
        .execute("SELECT pam_mfa_fleet.prune_audit_($1)", &[&now])
        .expect("prune");
    assert_eq!(
        audit_rows_older(&mut admin, now, 5 * DAY),
        20 + 1500 - 1000,
        "the 300-day rows go first, then 980 of the 10-day ones"
    );
    assert_eq!(audit_rows_older(&mut admin, now, 299 * DAY), 0);
    // Writing goes on: the rest go within the next 128 rows, and the 4-day rows stay.
    write(&mut admin, 128);
    assert_eq!(audit_rows_older(&mut admin, now, 5 * DAY), 0);
    assert_eq!(audit_rows_older(&mut admin, now, 3 * DAY), 7);

    // The policy's range is the local store's: 1 to 36500 days, or default.
    for bad in ["0", "36501", "a year"] {
        let e = set(&mut admin, bad).expect_err(bad);
        assert_eq!(sqlstate(&e), "MF005", "{bad}: {e}");
    }
    set(&mut admin, "default").expect("back to the default");
    old(&mut admin, 3, 10 * DAY);
    write(&mut admin, 130);
    assert_eq!(audit_rows_older(&mut admin, now, 5 * DAY), 3);
}

/// A wrong code deletes other users' stale failure rows (a day without a failure, not
/// locked), as a local store does, but not the reset rows that are their users' locks,
/// nor a lock-out still running; a reset row goes with its user's last device.
#[test]
fn a_wrong_code_clears_stale_failures_but_keeps_other_users_locks() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    let now = server_now(&mut admin);
    let phone = |c: &mut Client, user: &str| {
        add_totp(
            c,
            user,
            "phone",
            b"12345678901234567890",
            Algorithm::Sha1,
            6,
            30,
            0,
            None,
        );
    };
    let rows = |c: &mut Client| -> Vec<String> {
        c.query(
            "SELECT user_name FROM pam_mfa_fleet.auth_state ORDER BY user_name",
            &[],
        )
        .expect("auth_state")
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    phone(&mut admin, "dave");
    // idle: a user with a device who has not logged in for long (their lock row).
    phone(&mut admin, "idle");
    admin
        .execute(
            "INSERT INTO pam_mfa_fleet.auth_state (user_name, failures, window_start,
                                                   locked_until)
             VALUES ('idle', 0, 0, NULL), ('stale', 2, $1, NULL),
                    ('locked', 5, $1, $2), ('recent', 1, $3, NULL)",
            &[&(now - 2 * 86_400), &(now + 1000), &(now - 60)],
        )
        .expect("auth_state rows");
    let password = fleet.add_host("a");
    let mut host = fleet.host("a", &password);
    assert_eq!(check(&mut host, "dave", "000000").0, "wrong");
    assert_eq!(rows(&mut admin), ["dave", "idle", "locked", "recent"]);

    // A backlog goes at most 100 rows per wrong code, the oldest first.
    admin
        .execute(
            "INSERT INTO pam_mfa_fleet.auth_state (user_name, failures, window_start)
             SELECT 'stale' || lpad(g::text, 3, '0'), 1, $1::bigint - g FROM generate_series(1, 150) g",
            &[&(now - 2 * 86_400)],
        )
        .expect("stale rows");
    let stale = |c: &mut Client| -> Vec<String> {
        rows(c)
            .into_iter()
            .filter(|u| u.starts_with("stale"))
            .collect()
    };
    assert_eq!(check(&mut host, "dave", "000000").0, "wrong");
    let left = stale(&mut admin);
    let newest: Vec<String> = (1..=50).map(|g| format!("stale{g:03}")).collect();
    assert_eq!(left, newest, "the 100 oldest go first");
    assert_eq!(check(&mut host, "dave", "000000").0, "wrong");
    assert!(stale(&mut admin).is_empty());
    assert_eq!(rows(&mut admin), ["dave", "idle", "locked", "recent"]);

    // Removing a user's last device takes their row with it when it counts nothing
    // (erin), and keeps one that counts failures (dave, who just had a wrong code).
    phone(&mut admin, "erin");
    admin
        .execute(
            "INSERT INTO pam_mfa_fleet.auth_state (user_name) VALUES ('erin')",
            &[],
        )
        .expect("erin's row");
    for user in ["erin", "dave"] {
        let removed: bool = host
            .query_one(
                "SELECT pam_mfa_fleet.remove_device($1, 0, 'phone')",
                &[&user],
            )
            .expect("remove the device")
            .get(0);
        assert!(removed, "{user}");
    }
    assert_eq!(rows(&mut admin), ["dave", "idle", "locked", "recent"]);
}

/// Every host function called for a name that has nothing leaves no `auth_state` row that
/// says nothing: a row stays only for a user with a device, a recovery or bypass code, or
/// failures counted (a compromised host calling `unlock` for made-up names cannot grow
/// the table). Rows of users who have something are kept.
#[test]
fn host_calls_for_a_name_with_nothing_leave_no_row() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    add_totp(
        &mut admin,
        "alice",
        "phone",
        b"12345678901234567890",
        Algorithm::Sha1,
        6,
        30,
        0,
        None,
    );
    let password = fleet.add_host("a");
    let mut host = fleet.host("a", &password);
    // A row that counts nothing for a user with nothing, or one made by the calls below.
    let idle_rows = |c: &mut Client| -> Vec<String> {
        c.query(
            "SELECT a.user_name FROM pam_mfa_fleet.auth_state a
             WHERE a.failures = 0 AND a.window_start = 0 AND a.locked_until IS NULL
               AND NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.devices d
                               WHERE d.user_name = a.user_name)
               AND NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.recovery_codes r
                               WHERE r.user_name = a.user_name)
             ORDER BY 1",
            &[],
        )
        .expect("auth_state")
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let row_of = |c: &mut Client, user: &str| -> bool {
        c.query_one(
            "SELECT EXISTS (SELECT 1 FROM pam_mfa_fleet.auth_state WHERE user_name = $1)",
            &[&user],
        )
        .expect("row")
        .get(0)
    };
    for call in [
        "SELECT * FROM pam_mfa_fleet.unlock('ghost', 0)",
        "SELECT * FROM pam_mfa_fleet.rename_device('ghost', 0, 'nothing', 'other')",
        "SELECT * FROM pam_mfa_fleet.remove_device('ghost', 0, 'nothing')",
    ] {
        host.batch_execute(call).expect(call);
        assert!(!row_of(&mut admin, "ghost"), "{call} left a row");
    }
    // Alice's lock stays, whatever the calls (her row is made by the first).
    for call in [
        "SELECT * FROM pam_mfa_fleet.unlock('alice', 0)",
        "SELECT * FROM pam_mfa_fleet.remove_device('alice', 0, 'nothing')",
    ] {
        host.batch_execute(call).expect(call);
        assert!(row_of(&mut admin, "alice"), "{call}");
    }
    // Every host function, for a name that has nothing: rows stay only where the call
    // gave the name something (a pending registration, recovery or bypass codes, a
    // failure counted).
    for call in HOST_CALLS {
        let call = call.replace("'alice'", "'ghost'");
        // Some refuse (no such token, a malformed answer): what they leave is looked at too.
        let _ = host.batch_execute(&call);
        assert_eq!(idle_rows(&mut admin), Vec::<String>::new(), "{call}");
    }
    assert!(
        row_of(&mut admin, "ghost"),
        "the codes set for ghost keep its row"
    );
    assert!(row_of(&mut admin, "alice"));
    // A host that makes the trigger immediate (anyone may) gets an error, not a function
    // that makes and loses the row for ever.
    let e = host
        .batch_execute(
            "BEGIN; SET LOCAL statement_timeout = '10s'; SET CONSTRAINTS ALL IMMEDIATE;
             SELECT pam_mfa_fleet.unlock('nobody', 0); COMMIT;",
        )
        .expect_err("an unlock that cannot keep its row");
    assert_eq!(sqlstate(&e), "55P03", "{e:?}");
    host.batch_execute("ROLLBACK").expect("rollback");
    assert!(!row_of(&mut admin, "nobody"));
}

/// A database initialised by the last version (5) is upgraded with its data: the
/// policy gains audit_retention_days (long enough for the rows it kept), every host
/// function keeps its signature, and hosts read the policy as before.
#[test]
fn init_upgrades_a_version_5_database() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    // What a host of the previous version calls: every host function's arguments and
    // result, which the upgrade must leave as they are.
    let host_functions = |c: &mut Client| -> Vec<String> {
        c.query(
            "SELECT p.oid::regprocedure::text || ' -> ' || pg_get_function_result(p.oid)
             FROM pg_proc p
             WHERE p.pronamespace = 'pam_mfa_fleet'::regnamespace
               AND has_function_privilege('pam_mfa_host', p.oid, 'EXECUTE')
               AND p.proowner = 'pam_mfa_owner'::regrole
             ORDER BY 1",
            &[],
        )
        .expect("host functions")
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let before = host_functions(&mut admin);
    assert!(before.len() > 20, "{before:?}");
    let now = server_now(&mut admin);
    // Rows older than the default retention, kept by a fleet that deleted none.
    admin
        .execute(
            "INSERT INTO pam_mfa_fleet.audit (at, actor_uid, user_name, action, host)
             VALUES ($1, 0, 'erin', 'unlock', 'old')",
            &[&(now - 400 * 86_400)],
        )
        .expect("an old audit row");
    // Version 5 as it was: no retention column, policy_at without it.
    admin
        .batch_execute(
            "SET ROLE pam_mfa_owner;
             DROP FUNCTION pam_mfa_fleet.policy_at(bigint);
             CREATE FUNCTION pam_mfa_fleet.policy_at(p_now bigint)
             RETURNS TABLE(self_service text, max_devices int, no_device text,
                           max_failures int, lockout_seconds int, \"window\" int)
             LANGUAGE sql STABLE AS $$
             SELECT p.self_service, least(p.max_devices, 8), p.no_device,
                    coalesce(p.max_failures, 5), coalesce(p.lockout_seconds, 300),
                    coalesce(p.\"window\", 1)
             FROM pam_mfa_fleet.policy p WHERE p.id = 1 $$;
             ALTER TABLE pam_mfa_fleet.policy DROP COLUMN audit_retention_days;
             DROP TRIGGER auth_state_unused ON pam_mfa_fleet.auth_state;
             INSERT INTO pam_mfa_fleet.auth_state (user_name) VALUES ('ghost');
             UPDATE pam_mfa_fleet.schema_version SET version = 5;
             UPDATE pam_mfa_fleet.policy SET max_failures = 4;
             RESET ROLE;",
        )
        .expect("make a version 5 database");
    // The administrator's newer mfa says what to do rather than failing on a new key.
    let mut newer = pam_mfa_fleet::admin::Admin::connect(Some(&fleet.pg.superuser(DB)))
        .expect("administrator connection");
    for e in [
        newer
            .policy()
            .map(|_| ())
            .expect_err("policy of a version 5 database"),
        newer
            .set_policy("audit_retention_days", "30")
            .expect_err("a key version 5 lacks"),
    ] {
        assert!(
            e.to_string().contains("version 5") && e.to_string().contains("fleet init"),
            "{e}"
        );
    }
    fleet.init();
    assert!(newer.policy().is_ok());
    let row = admin
        .query_one(
            "SELECT v.version, p.max_failures, p.audit_retention_days
             FROM pam_mfa_fleet.schema_version v, pam_mfa_fleet.policy_at(0) p",
            &[],
        )
        .expect("upgraded");
    // The retention covers the 400-day row: the upgrade deletes nothing that was kept.
    assert_eq!(
        (
            row.get::<_, i32>(0),
            row.get::<_, i32>(1),
            row.get::<_, i32>(2)
        ),
        (7, 4, 402)
    );
    // Version 7: the row an earlier version left for a name with nothing went.
    let ghost: i64 = admin
        .query_one(
            "SELECT count(*) FROM pam_mfa_fleet.auth_state WHERE user_name = 'ghost'",
            &[],
        )
        .expect("ghost")
        .get(0);
    assert_eq!(ghost, 0);
    admin
        .execute("SELECT pam_mfa_fleet.prune_audit_($1)", &[&now])
        .expect("prune");
    assert_eq!(audit_rows_older(&mut admin, now, 399 * 86_400), 1);
    assert_eq!(host_functions(&mut admin), before);
    let password = fleet.add_host("a");
    let mut host = fleet.host("a", &password);
    let max_failures: Option<i32> = host
        .query_one("SELECT max_failures FROM pam_mfa_fleet.policy()", &[])
        .expect("policy for a host")
        .get(0);
    assert_eq!(max_failures, Some(4));
}

/// fleet.sql run again (and again) keeps every row and every grant.
#[test]
fn init_twice_keeps_the_data() {
    let fleet = Fleet::new();
    let mut admin = fleet.admin();
    let password = fleet.add_host("a");
    let secret = b"kept-across-inits-01".to_vec();
    add_totp(
        &mut admin,
        "dave",
        "phone",
        &secret,
        Algorithm::Sha1,
        6,
        30,
        0,
        Some(5),
    );
    admin
        .execute("SELECT pam_mfa_fleet.set_policy('max_failures', '7')", &[])
        .expect("policy");
    let mut host = fleet.host("a", &password);
    assert_eq!(check(&mut host, "dave", "000000").0, "wrong");
    let snapshot = |c: &mut Client| -> Vec<String> {
        [
            "SELECT string_agg(format('%s', d), ';' ORDER BY id) FROM pam_mfa_fleet.devices d",
            "SELECT string_agg(format('%s', a), ';') FROM pam_mfa_fleet.auth_state a",
            "SELECT string_agg(format('%s', a), ';' ORDER BY id) FROM pam_mfa_fleet.audit a",
            "SELECT string_agg(format('%s', p), ';') FROM pam_mfa_fleet.policy p",
            "SELECT string_agg(format('%s', v), ';') FROM pam_mfa_fleet.schema_version v",
        ]
        .iter()
        .map(|sql| {
            c.query_one(*sql, &[])
                .expect(sql)
                .get::<_, Option<String>>(0)
                .unwrap_or_default()
        })
        .collect()
    };
    let before = snapshot(&mut admin);
    assert_eq!(before[4], "(7)");
    fleet.init();
    fleet.init();
    assert_eq!(snapshot(&mut admin), before);
    // The host keeps its rights (and no more), on a new connection and the old one.
    let mut again = fleet.host("a", &password);
    for host in [&mut host, &mut again] {
        let policy = host
            .query_one("SELECT max_failures FROM pam_mfa_fleet.policy()", &[])
            .expect("policy");
        assert_eq!(policy.get::<_, Option<i32>>(0), Some(7));
        let e = host
            .batch_execute("SELECT * FROM pam_mfa_fleet.devices")
            .expect_err("table read");
        assert_eq!(sqlstate(&e), "42501");
    }
    let now = server_now(&mut admin);
    let right = library_code(&secret, Algorithm::Sha1, 6, now.div_euclid(30));
    assert_eq!(check(&mut again, "dave", &right).0, "accepted");
}

/// Registration, resync, rename and removal through the `_at` functions at chosen times,
/// and the errors the contract names.
#[test]
fn registration_and_device_changes() {
    let fleet = Fleet::new();
    let mut c = fleet.admin();
    let t = 1_800_000_005i64;
    let step = t.div_euclid(30);
    let begin = |c: &mut Client, name: &str, at: i64| -> Result<Vec<u8>, String> {
        c.query_one(
            "SELECT pam_mfa_fleet.begin_totp_at('erin', 1000, $1, 'SHA1', 6, 30, $2)",
            &[&name, &at],
        )
        .map(|r| r.get(0))
        .map_err(|e| sqlstate(&e))
    };
    let text = |c: &mut Client,
                sql: &str,
                args: &[&(dyn postgres::types::ToSql + Sync)]|
     -> String { c.query_one(sql, args).expect(sql).get(0) };
    let finish = "SELECT pam_mfa_fleet.finish_totp_at('erin', 1000, $1, $2, $3, $4)";
    let phone = begin(&mut c, "phone", t).expect("begin");
    assert_eq!(phone.len(), 20);
    let (c1, c2) = (
        library_code(&phone, Algorithm::Sha1, 6, step - 1),
        library_code(&phone, Algorithm::Sha1, 6, step),
    );
    assert_eq!(
        text(&mut c, finish, &[&"phone", &c1, &c1, &t]),
        "not_consecutive"
    );
    assert_eq!(
        text(&mut c, finish, &[&"none", &c1, &c2, &t]),
        "no_such_device"
    );
    // Either order; the later step is burnt.
    assert_eq!(text(&mut c, finish, &[&"phone", &c2, &c1, &t]), "activated");
    assert_eq!(
        text(&mut c, finish, &[&"phone", &c1, &c2, &t]),
        "already_active"
    );
    assert_eq!(check_at(&mut c, "erin", &c2, None, None, t).0, "replayed");
    let next = library_code(&phone, Algorithm::Sha1, 6, step + 1);
    assert_eq!(check_at(&mut c, "erin", &next, None, None, t).0, "accepted");
    // Names: taken by an active device; a pending one of the same name is replaced.
    assert_eq!(begin(&mut c, "phone", t), Err("MF001".into()));
    for name in ["p1", "p2", "p3"] {
        begin(&mut c, name, t).expect(name);
    }
    begin(&mut c, "p3", t + 1).expect("starting over");
    assert_eq!(begin(&mut c, "p4", t), Err("MF003".into()));
    // Pending ones expire after 600 s.
    assert_eq!(
        text(&mut c, finish, &[&"p1", &c1, &c2, &(t + 600)]),
        "no_such_device"
    );
    begin(&mut c, "p4", t + 600).expect("after expiry");
    let listed: Vec<(String, String, String)> = c
        .query(
            "SELECT name, kind, state FROM pam_mfa_fleet.list_devices_at('erin', $1)",
            &[&(t + 600)],
        )
        .expect("list")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        listed,
        [
            ("phone".into(), "totp".into(), "active".into()),
            ("p3".into(), "totp".into(), "pending".into()),
            ("p4".into(), "totp".into(), "pending".into())
        ]
    );
    // The policy's device limit.
    c.execute("SELECT pam_mfa_fleet.set_policy('max_devices', '1')", &[])
        .expect("policy");
    assert_eq!(begin(&mut c, "p5", t + 600), Err("MF002".into()));
    c.execute(
        "SELECT pam_mfa_fleet.set_policy('max_devices', 'default')",
        &[],
    )
    .expect("policy");
    // Bad arguments.
    for (sql, state) in [
        (
            "SELECT pam_mfa_fleet.begin_totp_at('erin', 0, 'x', 'MD5', 6, 30, 0)",
            "MF005",
        ),
        (
            "SELECT pam_mfa_fleet.begin_totp_at('erin', 0, 'x', 'SHA1', 9, 30, 0)",
            "MF005",
        ),
        (
            "SELECT pam_mfa_fleet.begin_totp_at('erin', 0, '', 'SHA1', 6, 30, 0)",
            "MF005",
        ),
        (
            "SELECT pam_mfa_fleet.begin_totp_at('', 0, 'x', 'SHA1', 6, 30, 0)",
            "MF005",
        ),
        (
            "SELECT * FROM pam_mfa_fleet.check_code_at('erin', 0, '123456', -1, 0, NULL, NULL, 0)",
            "MF005",
        ),
    ] {
        let e = c.batch_execute(sql).expect_err(sql);
        assert_eq!(sqlstate(&e), state, "{sql}");
    }
    // Only READ COMMITTED transactions (what is read after the user's lock must be what
    // its previous holder committed).
    let e = c
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ;
             SELECT * FROM pam_mfa_fleet.check_code_at('erin', 0, '123456', 1, 0, NULL, NULL, 0)",
        )
        .expect_err("repeatable read");
    assert_eq!(sqlstate(&e), "MF005", "{e}");
    c.batch_execute("ROLLBACK").expect("rollback");
    // Resync: the phone's clock 2 hours ahead (240 steps).
    let resync = "SELECT pam_mfa_fleet.resync_at('erin', 1000, $1, $2, $3, $4)";
    let later = t + 3600;
    let ls = later.div_euclid(30);
    let (r1, r2) = (
        library_code(&phone, Algorithm::Sha1, 6, ls + 240),
        library_code(&phone, Algorithm::Sha1, 6, ls + 241),
    );
    assert_eq!(check_at(&mut c, "erin", &r2, None, None, later).0, "wrong");
    assert_eq!(
        text(&mut c, resync, &[&"phone", &r1, &"000000", &later]),
        "not_found"
    );
    assert_eq!(
        text(&mut c, resync, &[&"none", &r1, &r2, &later]),
        "no_such_device"
    );
    assert_eq!(
        text(&mut c, resync, &[&"p4", &r1, &r2, &later]),
        "no_such_device"
    );
    let resynced = text(&mut c, resync, &[&"phone", &r1, &r2, &later]);
    assert!(
        resynced.starts_with("resynced clock "),
        "resync answered {resynced:?}"
    );
    assert_eq!(
        text(&mut c, resync, &[&"phone", &r1, &r2, &later]),
        "already_used"
    );
    let ahead = library_code(&phone, Algorithm::Sha1, 6, ls + 242);
    assert_eq!(
        check_at(&mut c, "erin", &ahead, None, None, later).0,
        "accepted"
    );
    // Rename and remove.
    let rename = "SELECT pam_mfa_fleet.rename_device_at('erin', 1000, $1, $2, $3)";
    assert_eq!(text(&mut c, rename, &[&"phone", &"p4", &later]), "renamed");
    assert_eq!(text(&mut c, rename, &[&"p4", &"p4", &later]), "renamed");
    assert_eq!(
        text(&mut c, rename, &[&"none", &"x", &later]),
        "no_such_device"
    );
    begin(&mut c, "pending", later).expect("begin");
    assert_eq!(
        text(&mut c, rename, &[&"p4", &"pending", &later]),
        "name_taken"
    );
    let remove = "SELECT pam_mfa_fleet.remove_device_at('erin', 1000, $1, $2)";
    let removed = |c: &mut Client, name: &str| -> bool {
        c.query_one(remove, &[&name, &later])
            .expect("remove")
            .get(0)
    };
    assert!(removed(&mut c, "p4"));
    assert!(!removed(&mut c, "p4"));
    assert_eq!(
        check_at(&mut c, "erin", &ahead, None, None, later).0,
        "no_devices"
    );
    let actions: Vec<String> = c
        .query(
            "SELECT action FROM pam_mfa_fleet.audit WHERE user_name = 'erin' ORDER BY id",
            &[],
        )
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for action in [
        "begin",
        "activate",
        "login-accepted",
        "resync",
        "rename",
        "remove",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    // The rows read as the local store's for the same changes (audit::attach's triggers).
    let rows: Vec<(String, Option<String>, Option<String>)> = c
        .query(
            "SELECT action, device, detail FROM pam_mfa_fleet.audit
             WHERE user_name = 'erin' AND action NOT LIKE 'login-%' ORDER BY id",
            &[],
        )
        .expect("audit")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let row = |action: &str, device: &str, detail: &str| {
        (
            action.to_owned(),
            Some(device.to_owned()),
            Some(detail.to_owned()),
        )
    };
    for expected in [
        row("activate", "phone", "totp"),
        row("resync", "phone", "drift 7230 s"),
        row("rename", "p4", "was phone"),
        row("remove", "p4", "totp"),
    ] {
        assert!(rows.contains(&expected), "{expected:?}: {rows:?}");
    }
    // Keeping a name is no change, and writes no row.
    assert_eq!(
        rows.iter().filter(|r| r.0 == "rename").count(),
        1,
        "{rows:?}"
    );
}

/// A registration or resync answer of the library in the SQL's terms, refusal by refusal
/// (mfad turns each SQL refusal back into the library's error: tests/mfa_cli.rs checks
/// the words).
fn local_change(r: pam_mfa::Result<impl Into<String>>) -> String {
    use pam_mfa::Error as E;
    match r {
        Ok(done) => done.into(),
        Err(E::NoPendingDevice { .. } | E::NoSuchDevice { .. }) => "no_such_device".to_owned(),
        Err(E::DeviceNotActive { .. }) => "not_active".to_owned(),
        Err(E::AlreadyActive { .. }) => "already_active".to_owned(),
        Err(E::FirstCodeWrong) => "first_wrong".to_owned(),
        Err(E::SecondCodeWrong) => "second_wrong".to_owned(),
        Err(E::NotConsecutive) => "not_consecutive".to_owned(),
        Err(E::ClockSkew { minutes, direction }) => {
            format!("clock_skew {minutes} minutes {direction}")
        }
        Err(E::ResyncFailed) => "not_found".to_owned(),
        Err(E::CodesAlreadyUsed) => "already_used".to_owned(),
        Err(E::CounterNotFound { .. }) => "counter_not_found".to_owned(),
        Err(E::NotTotp { .. }) => "not_totp".to_owned(),
        Err(other) => panic!("unexpected library error: {other:?}"),
    }
}

/// The SQL's answer in [`local_change`]'s terms: `clock_skew SECONDS` as the library's
/// `enrollment::clock_skew` words it, the rest as it is.
fn sql_change(answer: String) -> String {
    match answer.strip_prefix("clock_skew ") {
        Some(secs) => local_change(Err::<String, _>(pam_mfa::enrollment::clock_skew(
            secs.parse().expect("clock_skew's seconds"),
        ))),
        None => answer,
    }
}

/// The same random registrations (two codes), resyncs and logins to the SQL and to the
/// library's `enrollment::finish_totp`, `enrollment::resync` and `login::verify`.
#[test]
fn sql_and_library_agree_on_registrations_and_resyncs() {
    let fleet = Fleet::new();
    let mut c = fleet.admin();
    let seed = env_number("FLEET_SQL_SEED", random_seed());
    // A third as many: a resync searches 3,000 steps on both sides.
    let cases = env_number("FLEET_SQL_CASES", 300) / 3;
    eprintln!(
        "fleet_sql registrations: FLEET_SQL_SEED={seed} FLEET_SQL_CASES={}",
        cases * 3
    );
    let mut rng = Rng::seeded(seed ^ 0x5eed);
    // In memory: thousands of commits, each synced, would make this a disk benchmark.
    let dir = tempfile::tempdir_in("/dev/shm").expect("temp dir");
    let mut store =
        Store::open_or_create(&dir.path().join("store/devices.db")).expect("local store");
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    let settings = LoginSettings::default();
    let mut now = 1_800_000_005i64;
    for case in 0..cases {
        let user = format!("r{case}");
        let uname = UserName::parse(&user).expect("user name");
        now += 1000;
        // A pending app registration, and sometimes an HOTP token beside it.
        let alg = ALGORITHMS[rng.below(3) as usize];
        let digits = 6 + rng.below(3) as u8;
        let period = [30u32, 30, 60, 15][rng.below(4) as usize];
        let secret: Vec<u8> = (0..20 + rng.below(45))
            .map(|_| rng.next_u64() as u8)
            .collect();
        let expires = now + 60 + rng.below(1200) as i64;
        c.execute(
            "INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, secret, algorithm,
                                                digits, period, created_at, expires_at)
             VALUES ($1, 'app', 'totp', 'pending', $2, $3, $4, $5, $6, $7)",
            &[
                &user,
                &secret,
                &alg.as_str(),
                &i32::from(digits),
                &(period as i32),
                &(expires - 600),
                &expires,
            ],
        )
        .expect("pending");
        store
            .conn()
            .execute(
                "INSERT INTO devices (user, name, kind, state, secret, algorithm, digits, period,
                                      created_at, expires_at)
                 VALUES (?1, 'app', 'totp', 'pending', ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    user,
                    secret,
                    alg.as_str(),
                    digits,
                    period,
                    expires - 600,
                    expires
                ],
            )
            .expect("local pending");
        let token = rng.chance(40).then(|| {
            let d = Dev {
                name: "fob".to_owned(),
                secret: (0..20).map(|_| rng.next_u64() as u8).collect(),
                alg: ALGORITHMS[rng.below(3) as usize],
                digits: 6 + rng.below(3) as u8,
                period: None,
                drift: 0,
            };
            let counter = rng.below(30) as i64;
            add_hotp(&mut c, &user, "fob", &d.secret, d.alg, d.digits, counter);
            local_add(&store, &user, &d, None, counter);
            d
        });
        let app_code = |step: i64| library_code(&secret, alg, digits, step.max(0));
        for attempt in 0..6 {
            now += [0i64, 5, 30, 120, 3600][rng.below(if attempt < 3 { 4 } else { 5 }) as usize];
            let now_step = now.div_euclid(i64::from(period));
            let swap = rng.chance(30);
            let pair = |a: String, b: String| if swap { (b, a) } else { (a, b) };
            let (op, (c1, c2)) = match if attempt == 0 { 0 } else { rng.below(4) } {
                0 => {
                    let t = now_step + rng.below(18) as i64 - 14;
                    let (a, b) = match rng.below(6) {
                        0 => (app_code(t), app_code(t)),
                        1 => (app_code(t), "000000".to_owned()),
                        2 => (app_code(t), app_code(t + 2)),
                        _ => (app_code(t), app_code(t + 1)),
                    };
                    ("finish", pair(a, b))
                }
                1 if token.is_some() => {
                    let d = token.as_ref().expect("token");
                    let stored: i64 = c
                        .query_one(
                            "SELECT counter FROM pam_mfa_fleet.devices
                             WHERE user_name = $1 AND name = 'fob'",
                            &[&user],
                        )
                        .expect("counter")
                        .get(0);
                    let at = (stored + [-3i64, 0, 5, 500, 999, 1000, 1001][rng.below(7) as usize])
                        .max(0);
                    let cc = |n: i64| library_code(&d.secret, d.alg, d.digits, n);
                    ("resync fob", pair(cc(at), cc(at + 1)))
                }
                1 | 2 => {
                    let offset = [0i64, 3, -40, 1400, -1499, 1500, 1600][rng.below(7) as usize];
                    let t = now_step + offset + rng.below(3) as i64 - 1;
                    ("resync app", pair(app_code(t), app_code(t + 1)))
                }
                _ => {
                    let t = now_step + rng.below(5) as i64 - 2;
                    ("login", (app_code(t), String::new()))
                }
            };
            let (sql, local) = match op {
                "finish" => (
                    sql_change(
                        c.query_one(
                            "SELECT pam_mfa_fleet.finish_totp_at($1, 0, 'app', $2, $3, $4)",
                            &[&user, &c1, &c2, &now],
                        )
                        .expect("finish_totp_at")
                        .get::<_, String>(0),
                    ),
                    local_change(
                        pam_mfa::enrollment::finish_totp(
                            &mut store,
                            &uname,
                            &pam_mfa::names::DeviceName::parse("app").expect("name"),
                            c1.as_bytes(),
                            c2.as_bytes(),
                            now,
                        )
                        .map(|()| "activated"),
                    ),
                ),
                "login" => (
                    check_at(&mut c, &user, &c1, None, None, now).0,
                    local_answer(
                        &login::verify(&mut store, &uname, c1.as_bytes(), settings, now)
                            .expect("verify"),
                    )
                    .0,
                ),
                _ => {
                    let name = if op == "resync fob" { "fob" } else { "app" };
                    (
                        sql_change(
                            c.query_one(
                                "SELECT pam_mfa_fleet.resync_at($1, 0, $2, $3, $4, $5)",
                                &[&user, &name, &c1, &c2, &now],
                            )
                            .expect("resync_at")
                            .get::<_, String>(0),
                        ),
                        local_change(
                            pam_mfa::enrollment::resync(
                                &mut store,
                                &uname,
                                &pam_mfa::names::DeviceName::parse(name).expect("name"),
                                c1.as_bytes(),
                                c2.as_bytes(),
                                now,
                            )
                            .map(|r| match r {
                                pam_mfa::enrollment::Resynced::Clock { drift_secs } => {
                                    format!("resynced clock {drift_secs}")
                                }
                                pam_mfa::enrollment::Resynced::Counter { skipped } => {
                                    format!("resynced counter {skipped}")
                                }
                            }),
                        ),
                    )
                }
            };
            let context = format!("seed {seed}, case {case}, attempt {attempt}: {op} at {now}");
            assert_eq!(sql, local, "{context}");
            let drift = |c: &mut Client| -> Vec<(String, i64, String)> {
                c.query(
                    "SELECT name, drift, state FROM pam_mfa_fleet.devices WHERE user_name = $1
                     ORDER BY id",
                    &[&user],
                )
                .expect("drift")
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
            };
            let mut stmt = store
                .conn()
                .prepare("SELECT name, drift, state FROM devices WHERE user = ?1 ORDER BY id")
                .expect("prepare");
            let local_drift: Vec<(String, i64, String)> = stmt
                .query_map([&user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            assert_eq!(drift(&mut c), local_drift, "{context}");
            assert_eq!(
                sql_state(&mut c, &user),
                local_state(&store, &user),
                "{context}"
            );
            *tally.entry(format!("{op}: {sql}")).or_default() += 1;
        }
    }
    eprintln!("outcomes: {tally:?}");
    for outcome in [
        "finish: activated",
        "finish: not_consecutive",
        "finish: second_wrong",
        "finish: clock_skew",
        "finish: already_active",
        "resync app: resynced",
        "resync app: not_found",
        "login: accepted",
    ] {
        assert!(
            tally.keys().any(|k| k.starts_with(outcome)),
            "no {outcome} in {tally:?}"
        );
    }
}
