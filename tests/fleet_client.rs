//! The fleet client (crate pam_mfa_fleet) against a real PostgreSQL (the harness's, TLS
//! only over TCP): verify-full TLS, password and client-certificate logins, a writable
//! server chosen over a standby, reconnection, and `mfa admin fleet`'s host roles.
//!
//! Where the connection is what is tested, the schema is a throwaway of this test's own
//! (one function, `policy()`, with known answers); `mfa admin fleet` and the typed calls
//! run on the real sql/fleet.sql.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pam_mfa::policy::{NoDevice, SelfService};
use pam_mfa_fleet::admin::Admin;
use pam_mfa_fleet::{CheckSettings, Fleet, FleetConfig, FleetError, FleetPolicy};
use pam_mfa_tests::postgres::{CERT_GROUP, Postgres};

/// The throwaway schema: the roles of CONTRACT.md and one host function.
const SCHEMA: &str = "
CREATE ROLE pam_mfa_host NOLOGIN;
CREATE SCHEMA pam_mfa_fleet;
CREATE FUNCTION pam_mfa_fleet.policy()
  RETURNS TABLE(self_service text, max_devices int, no_device text, max_failures int,
                lockout_seconds int, \"window\" int)
  LANGUAGE sql SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
  AS $$ SELECT 'allow'::text, 8, 'deny'::text, 5, 300, 1 $$;
REVOKE ALL ON FUNCTION pam_mfa_fleet.policy() FROM PUBLIC;
GRANT USAGE ON SCHEMA pam_mfa_fleet TO pam_mfa_host;
GRANT EXECUTE ON FUNCTION pam_mfa_fleet.policy() TO pam_mfa_host;
";

const EXPECTED: FleetPolicy = FleetPolicy {
    self_service: SelfService::Allow,
    max_devices: 8,
    no_device: NoDevice::Deny,
    max_failures: Some(5),
    lockout_seconds: Some(300),
    window: Some(1),
};

fn server() -> Postgres {
    let pg = Postgres::start();
    pg.create_database("pam_mfa");
    pg.psql("pam_mfa", SCHEMA);
    pg
}

fn admin(pg: &Postgres) -> Admin {
    Admin::connect(Some(&pg.superuser("pam_mfa"))).unwrap()
}

/// A host's config for `hosts`, with `credential` lines (password or certificate).
fn config(hosts: &[String], role: &str, credential: &str, ca: &Path) -> FleetConfig {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    let text = format!(
        "[fleet]\nhosts = [{}]\nrole = {role:?}\n{credential}\nca_certificate = {ca:?}\n\
         connect_timeout_seconds = 3\nquery_timeout_seconds = 3\n",
        hosts.join(", ")
    );
    FleetConfig::parse(Path::new("test.conf"), &text)
        .unwrap()
        .unwrap()
}

fn password(p: &str) -> String {
    format!("password = {p:?}")
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, FleetError>) -> String {
    match r {
        Err(FleetError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// A CA of its own that signed nothing the server has.
fn other_ca(dir: &Path) -> PathBuf {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.crt",
            "-days",
            "1",
            "-subj",
            "/CN=another CA",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("other.crt")
}

/// Forwards `bind`:PORT to `target`, unless `frozen`: then it holds what it reads (a
/// server that stopped answering without closing anything).
fn forwarder_on(bind: &str, target: String, frozen: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind(format!("{bind}:0")).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let f2 = frozen.clone();
            std::thread::spawn(move || pipe(&mut c2, &mut s2, &f2));
            let f3 = frozen.clone();
            std::thread::spawn(move || pipe(&mut { server }, &mut { client }, &f3));
        }
    });
    addr
}

/// The same server under a name (an address, 127.0.0.2) its certificate does not carry.
fn forwarder(target: String) -> String {
    forwarder_on("127.0.0.2", target, Arc::new(AtomicBool::new(false)))
}

fn pipe(from: &mut TcpStream, to: &mut TcpStream, frozen: &AtomicBool) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        while frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn password_login_over_verify_full_tls_and_what_it_refuses() {
    let pg = server();
    let mut db = admin(&pg);
    let cred = db.add_host("web1").unwrap();
    assert_eq!(cred.role, "mfa_host_web1");
    assert_eq!(db.list_hosts().unwrap(), vec!["web1".to_owned()]);
    let secret = cred.password.as_str().to_owned();

    // Under both names the certificate carries.
    for host in [pg.address(), format!("localhost:{}", pg.port())] {
        let mut fleet = Fleet::new(config(
            std::slice::from_ref(&host),
            &cred.role,
            &password(&secret),
            &pg.ca_file(),
        ));
        assert_eq!(fleet.policy().unwrap(), EXPECTED, "{host}");
    }

    // A name the certificate does not carry: refused by the host name check.
    let tmp = tempfile::tempdir().unwrap();
    let other = forwarder(pg.address());
    let m = unavailable(
        Fleet::new(config(
            std::slice::from_ref(&other),
            &cred.role,
            &password(&secret),
            &pg.ca_file(),
        ))
        .policy(),
    );
    assert!(
        m.contains(&other) && m.to_lowercase().contains("certificate"),
        "{m}"
    );

    // Another CA: the server's certificate is not trusted.
    let m = unavailable(
        Fleet::new(config(
            &[pg.address()],
            &cred.role,
            &password(&secret),
            &other_ca(tmp.path()),
        ))
        .policy(),
    );
    assert!(m.to_lowercase().contains("certificate"), "{m}");

    // A wrong password: unavailable, and neither password is in the message.
    let m = unavailable(
        Fleet::new(config(
            &[pg.address()],
            &cred.role,
            &password("wrong-password-x"),
            &pg.ca_file(),
        ))
        .policy(),
    );
    assert!(m.contains("password authentication failed"), "{m}");
    assert!(
        !m.contains("wrong-password-x") && !m.contains(&secret),
        "{m}"
    );

    // Refused names, and a host added twice.
    assert!(db.add_host("Web-1").is_err());
    assert!(matches!(
        db.add_host("web1"),
        Err(FleetError::Refused {
            code: pam_mfa_fleet::RefusalCode::NameTaken,
            ..
        })
    ));

    // Removed: its open session ends and it cannot log in again.
    let mut fleet = Fleet::new(config(
        &[pg.address()],
        &cred.role,
        &password(&secret),
        &pg.ca_file(),
    ));
    assert_eq!(fleet.policy().unwrap(), EXPECTED);
    db.remove_host("web1").unwrap();
    assert!(db.list_hosts().unwrap().is_empty());
    assert!(fleet.policy().is_err());
    assert!(fleet.policy().is_err());
    assert!(
        db.remove_host("web1").is_err(),
        "an unknown host is refused"
    );
    assert!(db.remove_host("postgres").is_err());
}

#[test]
fn client_certificate_login() {
    let pg = server();
    pg.psql(
        "pam_mfa",
        &format!(
            "CREATE ROLE {CERT_GROUP} NOLOGIN; \
             CREATE ROLE mfa_host_certy LOGIN IN ROLE pam_mfa_host, {CERT_GROUP};"
        ),
    );
    let (crt, key) = pg.client_certificate("mfa_host_certy");
    let cert = format!("client_certificate = {crt:?}\nclient_key = {key:?}");
    let mut fleet = Fleet::new(config(
        &[pg.address()],
        "mfa_host_certy",
        &cert,
        &pg.ca_file(),
    ));
    assert_eq!(fleet.policy().unwrap(), EXPECTED);
    // Another role's certificate does not log in as this one.
    let (crt2, key2) = pg.client_certificate("mfa_host_other");
    let cert2 = format!("client_certificate = {crt2:?}\nclient_key = {key2:?}");
    let m = unavailable(
        Fleet::new(config(
            &[pg.address()],
            "mfa_host_certy",
            &cert2,
            &pg.ca_file(),
        ))
        .policy(),
    );
    assert!(m.contains("certificate authentication failed"), "{m}");
}

#[test]
fn a_standby_is_passed_over_and_a_dropped_connection_replaced() {
    let pg = server();
    let cred = admin(&pg).add_host("web2").unwrap();
    let standby = pg.start_standby();
    let pw = password(cred.password.as_str());
    // The standby alone: read-only, so no server.
    let m = unavailable(
        Fleet::new(config(&[standby.address()], &cred.role, &pw, &pg.ca_file())).policy(),
    );
    assert!(m.contains(&standby.address()), "{m}");
    // Standby first, primary second: the primary is used.
    let mut fleet = Fleet::new(config(
        &[standby.address(), pg.address()],
        &cred.role,
        &pw,
        &pg.ca_file(),
    ));
    assert_eq!(fleet.policy().unwrap(), EXPECTED);
    // The server ends the session while the client is idle: the next call reconnects.
    pg.psql(
        "pam_mfa",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mfa_host_web2'",
    );
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    assert_eq!(fleet.policy().unwrap(), EXPECTED);
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// `mfa admin fleet add-host` prints a config that works as printed (with the CA's real
/// path), `hosts` lists the host, `remove-host` takes it away.
#[test]
fn mfa_admin_fleet_commands() {
    let pg = Postgres::start();
    pg.create_database("pam_mfa");
    let mfa = |args: &[&str]| {
        let out = Command::new(pam_mfa_tests::paths::mfa_bin())
            .args(["admin", "fleet"])
            .args(args)
            .args(["--connection", &pg.superuser("pam_mfa")])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // init installs the real schema, and again (idempotent).
    for _ in 0..2 {
        let (ok, out, err) = mfa(&["init"]);
        assert!(ok && out.contains("installed"), "{out}{err}");
    }
    let (ok, out, err) = mfa(&["add-host", "web3", "--server", &pg.address()]);
    assert!(ok, "{out}{err}");
    let snippet = &out[out.find("[fleet]").unwrap()..];
    let snippet = snippet.replace(
        "/etc/pam_mfa/fleet-ca.pem\"",
        &format!("{}\"", pg.ca_file().display()),
    );
    let config = FleetConfig::parse(Path::new("mfad.conf"), &snippet)
        .unwrap()
        .unwrap();
    assert_eq!(config.role, "mfa_host_web3");
    Fleet::new(config).policy().unwrap();

    let (ok, out, _) = mfa(&["hosts", "--json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([{"name": "web3", "role": "mfa_host_web3"}])
    );
    let (ok, _, err) = mfa(&["add-host", "Bad-Name"]);
    assert!(!ok && err.contains("1-40 characters"), "{err}");
    let (ok, _, err) = mfa(&["remove-host", "nobody"]);
    assert!(!ok && err.contains("no host nobody"), "{err}");
    assert!(mfa(&["remove-host", "web3"]).0);
    let (ok, out, _) = mfa(&["hosts"]);
    assert!(ok && out.contains("No hosts yet"), "{out}");
}

/// Every typed call of `Fleet` against the real host functions (sql/fleet.sql), as a host
/// role over TLS: the column types and answers of CONTRACT.md as the client reads them.
#[test]
fn every_call_against_the_real_functions() {
    use pam_mfa::otp::Algorithm;
    use pam_mfa_fleet::{CodeOutcome, FinishOutcome, RefusalCode, RenameOutcome, ResyncOutcome};
    let pg = Postgres::start();
    pg.create_database("pam_mfa");
    let mut db = admin(&pg);
    db.init().unwrap();
    db.init().unwrap();
    let cred = db.add_host("web4").unwrap();
    let mut fleet = Fleet::new(config(
        &[pg.address()],
        &cred.role,
        &password(cred.password.as_str()),
        &pg.ca_file(),
    ));
    let policy = fleet.policy().unwrap();
    assert_eq!(
        (policy.max_devices, policy.window),
        (8, Some(1)),
        "{policy:?}"
    );
    let state = fleet.login_state("alice").unwrap();
    assert_eq!(
        (state.code_devices, state.keys, state.locked_until),
        (0, 0, None)
    );
    assert_eq!(
        fleet
            .check_code("alice", 1000, "123456", &CheckSettings::default())
            .unwrap(),
        CodeOutcome::NoDevices
    );

    let secret = fleet
        .begin_totp("alice", 1000, "phone", Algorithm::Sha1, 6, 30)
        .unwrap();
    assert_eq!(secret.len(), 20);
    let devices = fleet.list_devices("alice").unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].name, "phone");
    assert_eq!(
        devices[0].state,
        pam_mfa::store::devices::DeviceState::Pending
    );
    assert!(devices[0].expires.is_some());

    let b32 = pam_mfa::secret::Secret::from_bytes(secret.to_vec()).to_base32();
    let now = fleet.login_state("alice").unwrap().now;
    let code = |at: i64| pam_mfa_tests::clock::totp(&b32, at);
    assert_eq!(
        fleet
            .finish_totp("alice", 1000, "phone", &code(now - 30), &code(now))
            .unwrap(),
        FinishOutcome::Activated
    );
    assert_eq!(
        fleet
            .finish_totp("alice", 1000, "phone", &code(now - 30), &code(now))
            .unwrap(),
        FinishOutcome::AlreadyActive
    );
    // An active device's name is taken (MF001).
    match fleet.begin_totp("alice", 1000, "phone", Algorithm::Sha1, 6, 30) {
        Err(FleetError::Refused { code, .. }) => assert_eq!(code, RefusalCode::NameTaken),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fleet
            .finish_totp("alice", 1000, "nope", "111111", "222222")
            .unwrap(),
        FinishOutcome::NoSuchDevice
    );
    let next = code(now + 30);
    assert_eq!(
        fleet
            .check_code("alice", 1000, &next, &CheckSettings::default())
            .unwrap(),
        CodeOutcome::Accepted {
            device: "phone".into()
        }
    );
    assert!(matches!(
        fleet.check_code("alice", 1000, &next, &CheckSettings::default()).unwrap(),
        CodeOutcome::Replayed { device, .. } if device == "phone"
    ));
    assert!(matches!(
        fleet
            .check_code("alice", 1000, "", &CheckSettings::default())
            .unwrap(),
        CodeOutcome::Malformed { .. }
    ));
    // Two failures lock no one, but there were failures to clear.
    assert!(
        fleet.unlock("alice", 0).unwrap(),
        "two failures were cleared"
    );
    // Wrong codes until the lock-out (default: 5 failures), then Locked, then unlocked.
    let wrong = pam_mfa_tests::clock::wrong_code(&b32, now, 3);
    let mut locked = None;
    for _ in 0..5 {
        match fleet
            .check_code("alice", 1000, &wrong, &CheckSettings::default())
            .unwrap()
        {
            CodeOutcome::Wrong { locked_until } => locked = locked_until,
            other => panic!("{other:?}"),
        }
    }
    let until = locked.expect("the fifth failure locks");
    assert_eq!(
        fleet
            .check_code("alice", 1000, &next, &CheckSettings::default())
            .unwrap(),
        CodeOutcome::Locked { until }
    );
    assert_eq!(
        fleet.login_state("alice").unwrap().locked_until,
        Some(until)
    );
    assert!(fleet.unlock("alice", 0).unwrap());
    assert_eq!(fleet.login_state("alice").unwrap().locked_until, None);
    assert_eq!(
        fleet
            .resync("alice", 1000, "nope", "111111", "222222")
            .unwrap(),
        ResyncOutcome::NoSuchDevice
    );
    assert_eq!(
        fleet
            .rename_device("alice", 1000, "phone", "phone2")
            .unwrap(),
        RenameOutcome::Renamed
    );
    assert_eq!(
        fleet
            .rename_device("alice", 1000, "phone", "phone3")
            .unwrap(),
        RenameOutcome::NoSuchDevice
    );
    assert_eq!(fleet.login_state("alice").unwrap().code_devices, 1);
    assert!(fleet.remove_device("alice", 1000, "phone2").unwrap());
    assert!(!fleet.remove_device("alice", 1000, "phone2").unwrap());
    assert!(matches!(
        fleet.check_code("alice", u32::MAX, "123456", &CheckSettings::default()),
        Err(FleetError::Refused {
            code: RefusalCode::BadArgument,
            ..
        })
    ));
    // Recovery and bypass codes: made and hashed by the library, found by the database.
    use pam_mfa::recovery::{self, Kind, Used};
    let codes = recovery::new_set().unwrap();
    let hashed: Vec<_> = codes
        .iter()
        .map(|c| recovery::salted_hash(c).unwrap())
        .collect();
    fleet.set_recovery_codes("alice", 1000, &hashed).unwrap();
    assert_eq!(fleet.recovery_codes_left("alice").unwrap(), 10);
    assert_eq!(
        fleet.use_recovery_code("alice", 1000, &codes[2]).unwrap(),
        Used::Accepted {
            kind: Kind::Recovery,
            remaining: 9
        }
    );
    assert_eq!(
        fleet.use_recovery_code("alice", 1000, &codes[2]).unwrap(),
        Used::NotFound
    );
    assert_eq!(
        fleet.use_recovery_code("bob", 1000, &codes[3]).unwrap(),
        Used::NotFound
    );
    let bypass = recovery::new_code().unwrap();
    let (salt, hash) = recovery::salted_hash(&bypass).unwrap();
    let now = fleet.login_state("alice").unwrap().now;
    let expires_at = fleet
        .add_bypass_code("alice", 0, &salt, &hash, 2, 600)
        .unwrap();
    // The database's clock, read in the call: ten minutes from a moment ago.
    assert!((now + 600..now + 630).contains(&expires_at), "{expires_at}");
    assert_eq!(
        fleet.use_recovery_code("alice", 1000, &bypass).unwrap(),
        Used::Accepted {
            kind: Kind::Bypass,
            remaining: 1
        }
    );
    assert!(matches!(
        fleet.add_bypass_code("alice", 0, &salt, &hash, 0, 600),
        Err(FleetError::Refused {
            code: RefusalCode::BadArgument,
            ..
        })
    ));
    // A new set replaces the old one; the bypass code stays.
    fleet
        .set_recovery_codes("alice", 1000, &hashed[..4])
        .unwrap();
    assert_eq!(fleet.recovery_codes_left("alice").unwrap(), 4);
    assert!(matches!(
        fleet.use_recovery_code("alice", 1000, &bypass).unwrap(),
        Used::Accepted {
            kind: Kind::Bypass,
            remaining: 0
        }
    ));
}

/// A server that stops answering in the middle of a session (and one that stops during
/// the connection) costs a call its deadline, never more; once it answers again the next
/// call reconnects.
#[test]
fn a_server_that_stops_answering_costs_the_deadline() {
    let pg = server();
    let cred = admin(&pg).add_host("web5").unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let via = forwarder_on("127.0.0.1", pg.address(), frozen.clone());
    let mut c = config(
        std::slice::from_ref(&via),
        &cred.role,
        &password(cred.password.as_str()),
        &pg.ca_file(),
    );
    c.connect_timeout = Duration::from_secs(2);
    c.query_timeout = Duration::from_secs(1);
    let mut fleet = Fleet::new(c);
    assert_eq!(fleet.policy().unwrap(), EXPECTED);

    frozen.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let m = unavailable(fleet.unlock("alice", 0));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // Bounds below a deadline paid twice (or both paid), with room for a busy machine's
    // late wake-up (other tests start PostgreSQL servers meanwhile).
    assert!(took < Duration::from_millis(1900), "{took:?}: {m}");
    // Now the connection itself stalls: the connect deadline (2 s) plus nothing (not
    // the query's 1 s on top).
    let start = Instant::now();
    let m = unavailable(fleet.policy());
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2900), "{took:?}: {m}");
    assert!(m.contains(&via), "{m}");

    frozen.store(false, Ordering::SeqCst);
    assert_eq!(fleet.policy().unwrap(), EXPECTED);
}

/// mfad keeps its `Fleet` in whichever thread serves requests.
#[test]
fn fleet_is_send() {
    fn send<T: Send>() {}
    send::<Fleet>();
}
