//! Reaching a writable database server: the hosts of the config tried in turn, all within
//! one overall deadline, over TLS that verifies the server's certificate against the
//! configured CA alone and the server's name against the certificate (libpq's
//! `verify-full`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use postgres_openssl::MakeTlsConnector;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::config::{SslMode, TargetSessionAttrs};
use tokio_postgres::{Client, Statement};

use crate::FleetError;
use crate::config::{Credential, FleetConfig, HostPort};

/// A live connection: the client, the task that drives its socket, and the statements
/// prepared on it (a login is then one round trip, not two).
pub(crate) struct Conn {
    pub(crate) client: Client,
    task: JoinHandle<()>,
    pub(crate) statements: HashMap<&'static str, Statement>,
}

impl Drop for Conn {
    /// A connection given up on (deadline, lost) must not linger on a stalled socket.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The TLS client: trusts only the certificates in `ca_file` (not the system's store: a
/// public CA must not be able to vouch for the fleet's database), TLS 1.2 at least, and
/// presents the client certificate where one is configured. The host name check happens
/// per connection (postgres-openssl passes each host's name to OpenSSL).
pub fn tls_connector(
    ca_file: &Path,
    client_cert: Option<(&Path, &Path)>,
) -> Result<MakeTlsConnector, FleetError> {
    let tls = |what: String| FleetError::Unavailable(format!("TLS setup: {what}"));
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| tls(format!("cannot create the TLS context: {e}")))?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| tls(e.to_string()))?;
    let pem = std::fs::read(ca_file).map_err(|e| {
        tls(format!(
            "cannot read the CA certificate {}: {e}",
            ca_file.display()
        ))
    })?;
    let cas = X509::stack_from_pem(&pem).map_err(|e| {
        tls(format!(
            "{} holds no PEM certificate: {e}",
            ca_file.display()
        ))
    })?;
    if cas.is_empty() {
        return Err(tls(format!(
            "{} holds no PEM certificate",
            ca_file.display()
        )));
    }
    let mut store = X509StoreBuilder::new().map_err(|e| tls(e.to_string()))?;
    for ca in cas {
        store.add_cert(ca).map_err(|e| tls(e.to_string()))?;
    }
    builder.set_cert_store(store.build());
    if let Some((cert, key)) = client_cert {
        builder.set_certificate_chain_file(cert).map_err(|e| {
            tls(format!(
                "cannot use the client certificate {}: {e}",
                cert.display()
            ))
        })?;
        builder
            .set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| tls(format!("cannot use the client key {}: {e}", key.display())))?;
        builder.check_private_key().map_err(|_| {
            tls(format!(
                "the client key {} does not belong to the certificate {}",
                key.display(),
                cert.display()
            ))
        })?;
    }
    Ok(MakeTlsConnector::new(builder.build()))
}

/// Connects to the first host, in the config's order, that accepts the credential and is
/// writable (a standby is skipped), all within `config.connect_timeout`. Each host gets
/// an equal share of the time left, so one that accepts TCP and then stalls cannot use
/// the whole deadline and starve the hosts after it. Must run inside the client's runtime.
pub(crate) async fn connect(config: &FleetConfig) -> Result<Conn, FleetError> {
    let client_cert = match &config.credential {
        Credential::Certificate { certificate, key } => {
            Some((certificate.as_path(), key.as_path()))
        }
        Credential::Password(_) => None,
    };
    let tls = tls_connector(&config.ca_certificate, client_cert)?;
    let deadline = Instant::now() + config.connect_timeout;
    let mut failures = Vec::new();
    for (i, host) in config.hosts.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            failures.push(format!("{host}: not tried, deadline passed"));
            continue;
        }
        let remaining_hosts = u32::try_from(config.hosts.len() - i).unwrap_or(u32::MAX);
        let share = left / remaining_hosts.max(1);
        match tokio::time::timeout(share, connect_one(config, host, share, tls.clone())).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => failures.push(format!("{host}: {e}")),
            Err(_) => failures.push(format!("{host}: no answer within {} ms", share.as_millis())),
        }
    }
    Err(FleetError::Unavailable(format!(
        "no writable database server within {}s ({})",
        config.connect_timeout.as_secs(),
        failures.join("; ")
    )))
}

async fn connect_one(
    config: &FleetConfig,
    host: &HostPort,
    timeout: Duration,
    tls: MakeTlsConnector,
) -> Result<Conn, String> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&host.host)
        .port(host.port)
        .user(&config.role)
        .dbname(&config.database)
        .application_name("mfad")
        .ssl_mode(SslMode::Require)
        .target_session_attrs(TargetSessionAttrs::ReadWrite)
        .connect_timeout(timeout)
        // A primary that vanished without closing the connection is noticed by the
        // kernel (unacknowledged data) instead of at the next deadline only.
        .tcp_user_timeout(config.query_timeout)
        // The server gives up too, so a stalled call does not keep locks after mfad left.
        .options(format!(
            "-c statement_timeout={}",
            config.query_timeout.as_millis()
        ));
    if let Credential::Password(p) = &config.credential {
        pg.password(p.as_bytes());
    }
    let (client, connection) = pg.connect(tls).await.map_err(describe)?;
    let task = tokio::spawn(async move {
        // The error (the server went away) shows at the next call as a closed client.
        let _ = connection.await;
    });
    Ok(Conn {
        client,
        task,
        statements: HashMap::new(),
    })
}

/// A connection error in words, with its cause (tokio-postgres's Display alone often says
/// only "error connecting to server"). Never holds the password: the driver does not
/// quote it, and the server's messages name only the role.
pub(crate) fn describe(e: tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fleet, FleetError};
    use std::net::TcpListener;
    use std::time::Instant as StdInstant;

    /// A self-signed CA certificate file, so the TLS setup before connecting succeeds.
    fn ca_file(dir: &Path) -> std::path::PathBuf {
        use openssl::asn1::Asn1Time;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        use openssl::x509::{X509Builder, X509NameBuilder};
        let key = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "test CA").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, b.build().to_pem().unwrap()).unwrap();
        path
    }

    fn config(dir: &Path, hosts: &[String], connect_seconds: u64) -> FleetConfig {
        let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        let text = format!(
            "[fleet]\nhosts = [{}]\nrole = \"mfa_host_t\"\npassword = \"hunter2-secret\"\n\
             ca_certificate = {:?}\nconnect_timeout_seconds = {connect_seconds}\n\
             query_timeout_seconds = 1\n",
            hosts.join(", "),
            ca_file(dir)
        );
        FleetConfig::parse(Path::new("test.conf"), &text)
            .unwrap()
            .unwrap()
    }

    fn unavailable(r: crate::Result<()>) -> String {
        match r {
            Err(FleetError::Unavailable(m)) => {
                assert!(!m.contains("hunter2"), "{m}");
                m
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn a_server_that_never_answers_costs_the_deadline_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Accepts and then says nothing, holding every connection open.
        let held = std::thread::spawn(move || {
            let mut streams = Vec::new();
            for s in listener.incoming().take(2) {
                streams.push(s);
            }
            std::thread::sleep(Duration::from_secs(3));
        });
        let mut fleet = Fleet::new(config(dir.path(), std::slice::from_ref(&addr), 1));
        let start = StdInstant::now();
        let m = unavailable(fleet.ping());
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}: {m}");
        assert!(m.contains(&addr) && m.contains("no answer"), "{m}");
        drop(held);
    }

    #[test]
    fn dead_servers_fail_fast_and_are_all_named() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = ["127.0.0.1:1".to_owned(), "[::1]:1".to_owned()];
        let mut fleet = Fleet::new(config(dir.path(), &hosts, 3));
        let start = StdInstant::now();
        let m = unavailable(fleet.ping());
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert!(m.contains("127.0.0.1:1") && m.contains("[::1]:1"), "{m}");
        // Every call tries again (the database may be back), each as fast.
        let start = StdInstant::now();
        assert!(matches!(
            fleet.login_state("alice"),
            Err(FleetError::Unavailable(_))
        ));
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn a_stalled_host_leaves_time_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stalled = listener.local_addr().unwrap().to_string();
        let second = TcpListener::bind("127.0.0.1:0").unwrap();
        let second_addr = second.local_addr().unwrap().to_string();
        let seen = std::thread::spawn(move || {
            let _held = listener.accept();
            // The second host is reached (and then drops the connection).
            second.accept().is_ok()
        });
        let mut fleet = Fleet::new(config(dir.path(), &[stalled.clone(), second_addr], 2));
        let start = StdInstant::now();
        let m = unavailable(fleet.ping());
        let took = start.elapsed();
        assert!(took < Duration::from_millis(2500), "{took:?}");
        assert!(seen.join().unwrap(), "the second host was never tried: {m}");
    }

    #[test]
    fn a_bad_ca_file_is_unavailable_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), &["127.0.0.1:1".to_owned()], 1);
        c.ca_certificate = dir.path().join("missing.pem");
        let m = unavailable(Fleet::new(c).ping());
        assert!(m.contains("missing.pem"), "{m}");
    }
}
