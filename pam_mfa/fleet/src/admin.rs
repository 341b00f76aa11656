//! What `mfa admin fleet ...` does, connected as the database administrator (a superuser,
//! or a role with CREATEROLE that owns the database): install the schema, add, remove and
//! list host roles. Hosts never run this; their roles could not.
//!
//! The connection is described as libpq does it: a `key=value` conninfo string (values
//! with spaces in single quotes), whose keys override the `PG*` environment variables
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGCONNECT_TIMEOUT`), which override the
//! defaults: the local socket in /var/run/postgresql, user `postgres`, database
//! `pam_mfa`. Over TCP the connection is verify-full TLS against `sslrootcert` (CA
//! only, as for the hosts), or, with `sslmode=disable` said explicitly, plain; a Unix
//! socket needs no TLS. Other ssl modes are refused rather than half-honoured.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_postgres::config::SslMode;
use zeroize::Zeroizing;

use crate::connect::{describe, tls_connector};
use crate::error::{FleetError, Result};

/// `mfa admin fleet import`: a host's SQLite store moved into the fleet.
pub mod import;

/// The schema, roles and functions (idempotent; see CONTRACT.md).
pub const FLEET_SQL: &str = include_str!("../sql/fleet.sql");
/// The schema version [`FLEET_SQL`] installs (its `known` constant; a test holds them
/// together): the administrator's commands that read what a version added check it.
pub const SCHEMA_VERSION: i32 = 7;
/// Host roles are `mfa_host_<name>`.
pub const HOST_ROLE_PREFIX: &str = "mfa_host_";
/// The group role every host role is in (made by [`Admin::init`]).
pub const HOST_GROUP: &str = "pam_mfa_host";
/// Long enough for an upgrade of a large fleet database, short enough that a dead server
/// does not keep the administrator waiting.
const ADMIN_QUERY_TIMEOUT: Duration = Duration::from_secs(120);
const ADMIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A new host's password, shown to the administrator once.
pub struct HostCredential {
    pub name: String,
    pub role: String,
    pub password: Zeroizing<String>,
}

impl fmt::Debug for HostCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCredential")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// An administrator's connection.
pub struct Admin {
    database: String,
    runtime: Runtime,
    client: Client,
    task: JoinHandle<()>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A host's name as `add-host` takes it: what follows `mfa_host_` in the role.
pub fn check_host_name(name: &str) -> Result<()> {
    let ok = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(FleetError::Refused {
            code: crate::RefusalCode::BadArgument,
            message: format!(
                "host name {name:?} must be 1-40 characters of a-z, 0-9 and _ (its role is {HOST_ROLE_PREFIX}NAME)"
            ),
        })
    }
}

/// A 32-character password of letters and digits (190 bits), from the kernel's random
/// source; unbiased (bytes past the largest multiple of 62 are drawn again).
pub fn random_password() -> Result<Zeroizing<String>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = Zeroizing::new(String::with_capacity(32));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < 32 {
        getrandom::fill(buf.as_mut())
            .map_err(|e| FleetError::Database(format!("no random numbers: {e}")))?;
        for &b in buf.iter() {
            if out.len() == 32 {
                break;
            }
            if usize::from(b) < 248 {
                out.push(char::from(ALPHABET[usize::from(b) % 62]));
            }
        }
    }
    Ok(out)
}

/// A parsed conninfo: `key=value` pairs, in order.
fn parse_conninfo(text: &str) -> std::result::Result<Vec<(String, Zeroizing<String>)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return Err("the connection string is not key=value pairs".into());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = Zeroizing::new(String::new());
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quote in the value of {key}")),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quote in the value of {key}")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(c) = chars.next() {
                        value.push(c);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// How the admin connection is protected.
#[derive(Debug, PartialEq)]
enum AdminTls {
    /// A Unix socket, or `sslmode=disable` said explicitly.
    None,
    VerifyFull {
        ca: PathBuf,
        client: Option<(PathBuf, PathBuf)>,
    },
}

/// The driver's config and the TLS to use, from `conninfo` over the environment.
fn admin_config(
    conninfo: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<(tokio_postgres::Config, AdminTls), String> {
    const ENV: [(&str, &str); 10] = [
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("password", "PGPASSWORD"),
        ("dbname", "PGDATABASE"),
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
        ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ];
    let mut pairs = match conninfo {
        Some(text) => parse_conninfo(text)?,
        None => Vec::new(),
    };
    let given =
        |pairs: &Vec<(String, Zeroizing<String>)>, k: &str| pairs.iter().any(|(key, _)| key == k);
    for (key, var) in ENV {
        if !given(&pairs, key)
            && let Some(v) = env(var)
        {
            pairs.push((key.to_owned(), Zeroizing::new(v)));
        }
    }
    for (key, default) in [
        ("host", "/var/run/postgresql"),
        ("user", "postgres"),
        ("dbname", "pam_mfa"),
    ] {
        if !given(&pairs, key) {
            pairs.push((key.to_owned(), Zeroizing::new(default.to_owned())));
        }
    }
    let take = |pairs: &mut Vec<(String, Zeroizing<String>)>, k: &str| {
        let v = pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.to_string());
        pairs.retain(|(key, _)| key != k);
        v
    };
    let sslmode = take(&mut pairs, "sslmode");
    let root = take(&mut pairs, "sslrootcert");
    let cert = take(&mut pairs, "sslcert");
    let key = take(&mut pairs, "sslkey");
    // Re-quote what remains for the driver's own parser, which knows the other keys.
    let mut text = Zeroizing::new(String::new());
    for (k, v) in &pairs {
        text.push_str(k);
        text.push_str("='");
        for c in v.chars() {
            if c == '\'' || c == '\\' {
                text.push('\\');
            }
            text.push(c);
        }
        text.push_str("' ");
    }
    let mut config = tokio_postgres::Config::from_str(&text)
        .map_err(|e| format!("the connection string: {}", describe(e)))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(ADMIN_CONNECT_TIMEOUT);
    }
    config.application_name("mfa admin fleet");
    let unix_only = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
    let tls = match (sslmode.as_deref(), unix_only) {
        (Some("disable"), _) | (None, true) => AdminTls::None,
        (None | Some("verify-full"), _) => {
            let ca = root.ok_or(
                "a TCP connection needs sslrootcert=FILE (the CA that signed the server's \
                 certificate; verify-full), or sslmode=disable on a network you trust",
            )?;
            let client = match (cert, key) {
                (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
                (None, None) => None,
                _ => return Err("sslcert and sslkey go together".into()),
            };
            AdminTls::VerifyFull {
                ca: PathBuf::from(ca),
                client,
            }
        }
        (Some(other), _) => {
            return Err(format!(
                "sslmode={other} is not supported: use verify-full (with sslrootcert) or disable"
            ));
        }
    };
    config.ssl_mode(match tls {
        AdminTls::None => SslMode::Disable,
        AdminTls::VerifyFull { .. } => SslMode::Require,
    });
    Ok((config, tls))
}

/// The fleet policy's keys, in the order `policy` gives them.
pub const POLICY_KEYS: [&str; 7] = [
    "self_service",
    "max_devices",
    "no_device",
    "max_failures",
    "lockout_seconds",
    "window",
    "audit_retention_days",
];

impl Admin {
    /// Connects as described in the module's notes.
    pub fn connect(conninfo: Option<&str>) -> Result<Admin> {
        let (config, tls) = admin_config(conninfo, &|var| std::env::var(var).ok())
            .map_err(FleetError::Unavailable)?;
        let database = config.get_dbname().unwrap_or("pam_mfa").to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| FleetError::Unavailable(format!("cannot start the runtime: {e}")))?;
        let deadline = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(ADMIN_CONNECT_TIMEOUT)
            .saturating_mul(2);
        let connected = runtime.block_on(async {
            let attempt = async {
                match tls {
                    AdminTls::None => {
                        let (client, conn) = config
                            .connect(tokio_postgres::NoTls)
                            .await
                            .map_err(describe)?;
                        Ok((client, tokio::spawn(async move { drop(conn.await) })))
                    }
                    AdminTls::VerifyFull { ca, client } => {
                        let connector = tls_connector(
                            &ca,
                            client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                        )
                        .map_err(|e| e.to_string())?;
                        let (client, conn) = config.connect(connector).await.map_err(describe)?;
                        Ok((client, tokio::spawn(async move { drop(conn.await) })))
                    }
                }
            };
            tokio::time::timeout(deadline, attempt)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {}s", deadline.as_secs())))
        });
        let (client, task) = connected.map_err(|e| {
            FleetError::Unavailable(format!("cannot connect as administrator: {e}"))
        })?;
        Ok(Admin {
            database,
            runtime,
            client,
            task,
        })
    }

    /// The database connected to (the one hosts name in their mfad.conf).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Installs or upgrades the schema, roles and functions ([`FLEET_SQL`], one batch:
    /// one transaction unless the file says otherwise).
    pub fn init(&mut self) -> Result<()> {
        self.batch("init", FLEET_SQL)
    }

    /// Creates the role `mfa_host_<name>`, in `pam_mfa_host`, with a new random password
    /// that is returned (and so shown) once. Only its SCRAM verifier, made here, goes to
    /// the server: the password itself never appears in a statement the server might log.
    pub fn add_host(&mut self, name: &str) -> Result<HostCredential> {
        check_host_name(name)?;
        let role = format!("{HOST_ROLE_PREFIX}{name}");
        if !self.group_exists()? {
            return Err(not_initialised());
        }
        if self.role_exists(&role)? {
            return Err(FleetError::Refused {
                code: crate::RefusalCode::NameTaken,
                message: format!(
                    "host {name} exists already (role {role}); remove-host it first to give it a new credential"
                ),
            });
        }
        let password = random_password()?;
        let verifier = Zeroizing::new(postgres_protocol::password::scram_sha_256(
            password.as_bytes(),
        ));
        // The role name is [a-z0-9_] (checked above) and the verifier base64 and '$:',
        // so neither needs quoting; the escape is belt and braces.
        let sql = Zeroizing::new(format!(
            "CREATE ROLE {role} LOGIN IN ROLE {HOST_GROUP} PASSWORD '{}'",
            verifier.replace('\'', "''")
        ));
        self.batch("add-host", &sql)?;
        Ok(HostCredential {
            name: name.to_owned(),
            role,
            password,
        })
    }

    /// Takes the host's login away, ends its sessions, and drops its role. Refuses a
    /// name that is not a host role (not in `pam_mfa_host`).
    pub fn remove_host(&mut self, name: &str) -> Result<()> {
        check_host_name(name)?;
        let role = format!("{HOST_ROLE_PREFIX}{name}");
        if !self.list_hosts()?.iter().any(|h| h == name) {
            return Err(FleetError::Database(format!(
                "there is no host {name} (no role {role} in {HOST_GROUP})"
            )));
        }
        self.batch("remove-host", &format!("ALTER ROLE {role} NOLOGIN"))?;
        self.query(
            "remove-host",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&role],
        )?;
        self.batch("remove-host", &format!("DROP ROLE {role}"))
    }

    /// The hosts' names (their roles less `mfa_host_`), sorted.
    pub fn list_hosts(&mut self) -> Result<Vec<String>> {
        if !self.group_exists()? {
            return Err(not_initialised());
        }
        let rows = self.query(
            "hosts",
            "SELECT r.rolname::text FROM pg_auth_members m \
             JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid \
             WHERE g.rolname = $1 ORDER BY 1",
            &[&HOST_GROUP],
        )?;
        let mut hosts = Vec::new();
        for row in rows {
            let role: String = row
                .try_get(0)
                .map_err(|e| FleetError::Database(e.to_string()))?;
            if let Some(name) = role.strip_prefix(HOST_ROLE_PREFIX) {
                hosts.push(name.to_owned());
            }
        }
        Ok(hosts)
    }

    /// The fleet's policy as every host's logins of fleet accounts follow it: each key
    /// with its value in effect (the built-in defaults filled in).
    pub fn policy(&mut self) -> Result<Vec<(&'static str, String)>> {
        if !self.group_exists()? {
            return Err(not_initialised());
        }
        self.check_schema()?;
        let rows = self.query(
            "policy",
            "SELECT self_service, max_devices::text, no_device, max_failures::text, \
             lockout_seconds::text, \"window\"::text, audit_retention_days::text \
             FROM pam_mfa_fleet.policy_at(pam_mfa_fleet.now_())",
            &[],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| FleetError::Database("policy: no row".into()))?;
        POLICY_KEYS
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let value: String = row
                    .try_get(i)
                    .map_err(|e| FleetError::Database(e.to_string()))?;
                Ok((*key, value))
            })
            .collect()
    }

    /// Changes one key of the fleet's policy (`default` restores the built-in value); the
    /// database checks the key and the range.
    pub fn set_policy(&mut self, key: &str, value: &str) -> Result<()> {
        if !self.group_exists()? {
            return Err(not_initialised());
        }
        self.check_schema()?;
        self.query(
            "policy set",
            "SELECT pam_mfa_fleet.set_policy($1, $2)",
            &[&key, &value],
        )?;
        Ok(())
    }

    /// Refuses, saying what to do, a database whose schema is of another version than
    /// this `mfa` knows (one not upgraded yet, after a package upgrade, answers the
    /// policy's new keys with "unknown").
    fn check_schema(&mut self) -> Result<()> {
        let rows = self.query(
            "schema version",
            "SELECT version FROM pam_mfa_fleet.schema_version",
            &[],
        )?;
        let version: i32 = rows
            .first()
            .and_then(|r| r.try_get(0).ok())
            .ok_or_else(|| FleetError::Database("schema version: no row".into()))?;
        match version.cmp(&SCHEMA_VERSION) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(FleetError::Database(format!(
                "the fleet database's schema is version {version}, older than this mfa's \
                 ({SCHEMA_VERSION}): run `mfa admin fleet init` to upgrade it"
            ))),
            std::cmp::Ordering::Greater => Err(FleetError::Database(format!(
                "the fleet database's schema is version {version}, newer than this mfa's \
                 ({SCHEMA_VERSION}): upgrade pam_mfa on this host"
            ))),
        }
    }

    fn group_exists(&mut self) -> Result<bool> {
        self.role_exists(HOST_GROUP)
    }

    fn role_exists(&mut self, role: &str) -> Result<bool> {
        let rows = self.query(
            "role lookup",
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[&role],
        )?;
        Ok(!rows.is_empty())
    }

    fn batch(&mut self, what: &str, sql: &str) -> Result<()> {
        let Self {
            runtime, client, ..
        } = self;
        runtime
            .block_on(async {
                tokio::time::timeout(ADMIN_QUERY_TIMEOUT, client.batch_execute(sql)).await
            })
            .map_err(|_| timed_out(what))?
            .map_err(|e| FleetError::from_call(what, &e))
    }

    fn query(
        &mut self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let Self {
            runtime, client, ..
        } = self;
        runtime
            .block_on(async {
                tokio::time::timeout(ADMIN_QUERY_TIMEOUT, client.query(sql, params)).await
            })
            .map_err(|_| timed_out(what))?
            .map_err(|e| FleetError::from_call(what, &e))
    }
}

fn timed_out(what: &str) -> FleetError {
    FleetError::Unavailable(format!(
        "{what}: no answer within {}s",
        ADMIN_QUERY_TIMEOUT.as_secs()
    ))
}

fn not_initialised() -> FleetError {
    FleetError::Database(format!(
        "the role {HOST_GROUP} does not exist: run `mfa admin fleet init` first"
    ))
}

/// A ready-to-paste `[fleet]` section for the new host's /etc/pam_mfa/mfad.conf.
pub fn config_snippet(
    credential: &HostCredential,
    hosts: &[String],
    database: &str,
) -> Zeroizing<String> {
    let hosts = if hosts.is_empty() {
        "\"db1.example.com:5432\"".to_owned()
    } else {
        hosts
            .iter()
            .map(|h| format!("{h:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Zeroizing::new(format!(
        "[fleet]\n\
         hosts = [{hosts}]\n\
         database = {database:?}\n\
         role = {:?}\n\
         password = {:?}\n\
         ca_certificate = \"/etc/pam_mfa/fleet-ca.pem\"\n\
         local_users = [\"root\"]\n",
        credential.role,
        credential.password.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_schema_version_is_the_one_fleet_sql_installs() {
        assert!(
            FLEET_SQL.contains(&format!("known CONSTANT int := {SCHEMA_VERSION};")),
            "fleet.sql's known version is not SCHEMA_VERSION"
        );
    }

    #[test]
    fn host_names() {
        for good in ["web1", "a", "db_2", &"x".repeat(40)] {
            assert!(check_host_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Web1",
            "web-1",
            "a b",
            "web1;drop",
            &"x".repeat(41),
            "é",
        ] {
            assert!(check_host_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_32_alphanumerics_and_differ() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.as_str(), b.as_str());
        let cred = HostCredential {
            name: "web1".into(),
            role: "mfa_host_web1".into(),
            password: a.clone(),
        };
        assert!(!format!("{cred:?}").contains(a.as_str()));
        let snippet = config_snippet(&cred, &["db1:5432".into()], "pam_mfa");
        let parsed = crate::FleetConfig::parse(std::path::Path::new("x"), &snippet)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.role, "mfa_host_web1");
        assert!(
            matches!(parsed.credential, crate::Credential::Password(p) if p.as_str() == a.as_str())
        );
    }

    #[test]
    fn conninfo_over_environment_over_defaults() {
        let (c, tls) = admin_config(None, &env_of(&[])).unwrap();
        assert_eq!(tls, AdminTls::None);
        assert_eq!(c.get_user(), Some("postgres"));
        assert_eq!(c.get_dbname(), Some("pam_mfa"));
        let env = env_of(&[
            ("PGHOST", "db1.example.com"),
            ("PGUSER", "admin"),
            ("PGSSLROOTCERT", "/ca.pem"),
            ("PGPASSWORD", "pw"),
        ]);
        let (c, tls) = admin_config(None, &env).unwrap();
        assert_eq!(c.get_user(), Some("admin"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(
            tls,
            AdminTls::VerifyFull {
                ca: "/ca.pem".into(),
                client: None
            }
        );
        let (c, _) = admin_config(
            Some("host=127.0.0.1 port = 6543 user='a d\\'m' dbname=fleet sslmode=disable"),
            &env,
        )
        .unwrap();
        assert_eq!(c.get_user(), Some("a d'm"));
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_dbname(), Some("fleet"));
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        // TCP without a CA, and half-way modes, are refused.
        let e = admin_config(Some("host=db1"), &env_of(&[])).unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
        let e = admin_config(Some("host=db1 sslmode=require"), &env_of(&[])).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        assert!(admin_config(Some("host=db1 sslcert=/c"), &env).is_err());
        assert!(admin_config(Some("host"), &env).is_err());
        assert!(admin_config(Some("user='x"), &env).is_err());
        assert!(admin_config(Some("nonsense=1"), &env).is_err());
    }
}
