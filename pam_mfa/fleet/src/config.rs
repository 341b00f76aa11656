//! The host's fleet configuration, `/etc/pam_mfa/mfad.conf` (TOML).
//!
//! The file holds the host's database credential, so it is read only when it is a regular
//! file owned by root that no group or other user can read or write: a credential that
//! other accounts can read lets them act as this host, and one they can write lets them
//! point mfad at a database of their own (and so accept any code).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

/// Where mfad looks for its backend. Missing: the host's own SQLite store only.
pub const DEFAULT_PATH: &str = "/etc/pam_mfa/mfad.conf";
/// Larger than any sensible configuration; a bound so a wrong file is not read whole.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The deadlines' bounds: below one second a healthy database over a WAN can miss them,
/// above a minute a login waits longer than anyone at a prompt does.
const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=60;

/// A config that could not be used: always names the file and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub problem: String,
}

/// One database server, tried in the order the file lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// `name:port`, `name` (port 5432), `[v6]:port` or `[v6]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("host {text:?} is not NAME:PORT (for example db1.example.com:5432)");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some(_) => return Err(bad()),
                None => (text, None),
            }
        };
        let port = match port {
            None => 5432,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad()),
            },
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_');
        if host.is_empty() || host.len() > 253 || !host.chars().all(valid) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How the host proves to the database that it is its role.
pub enum Credential {
    /// SCRAM password (made by `mfa admin fleet add-host`).
    Password(Zeroizing<String>),
    /// A client certificate whose CN is the role's name, with its private key.
    Certificate { certificate: PathBuf, key: PathBuf },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(<hidden>)"),
            Self::Certificate { certificate, key } => f
                .debug_struct("Certificate")
                .field("certificate", certificate)
                .field("key", key)
                .finish(),
        }
    }
}

/// The `[fleet]` section, checked: the hosts parsed, exactly one credential, the deadlines
/// in range.
#[derive(Debug)]
pub struct FleetConfig {
    pub hosts: Vec<HostPort>,
    pub database: String,
    pub role: String,
    pub credential: Credential,
    pub ca_certificate: PathBuf,
    /// The overall deadline for reaching a writable server, across every host.
    pub connect_timeout: Duration,
    /// The deadline of one call once connected.
    pub query_timeout: Duration,
    /// Accounts mfad keeps in its local SQLite store, so they log in while the database
    /// is down.
    pub local_users: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    fleet: Option<RawFleet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    hosts: Vec<String>,
    database: Option<String>,
    role: String,
    password: Option<String>,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    ca_certificate: PathBuf,
    connect_timeout_seconds: Option<u64>,
    query_timeout_seconds: Option<u64>,
    #[serde(default)]
    local_users: Vec<String>,
}

impl FleetConfig {
    /// Reads `path`. `Ok(None)`: there is no file (or it has no `[fleet]` section), so the
    /// host uses its SQLite store alone. Any file that is there but unsafe or wrong is an
    /// error, never a silent fallback to SQLite: the administrator meant the fleet.
    pub fn load(path: &Path) -> Result<Option<Self>, ConfigError> {
        load_owned_by(path, 0)
    }

    /// Parses the text of a config file (its safety already checked).
    pub fn parse(path: &Path, text: &str) -> Result<Option<Self>, ConfigError> {
        let err = |problem: String| ConfigError {
            path: path.to_owned(),
            problem,
        };
        // toml's messages quote the offending line, which may be the password's: keep
        // only the first line (the key and position), never the source excerpt.
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let span = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            err(format!("not a valid config{span}: {}", e.message().trim()))
        })?;
        let Some(raw) = raw.fleet else {
            return Ok(None);
        };
        if raw.hosts.is_empty() {
            return Err(err(
                "[fleet] hosts is empty: list the database servers, e.g. hosts = [\"db1.example.com:5432\"]".into(),
            ));
        }
        let hosts = raw
            .hosts
            .iter()
            .map(|h| HostPort::parse(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        if raw.role.is_empty() || raw.role.len() > 63 {
            return Err(err(
                "[fleet] role must be the host's database role, e.g. mfa_host_web1".into(),
            ));
        }
        let database = raw.database.unwrap_or_else(|| "pam_mfa".to_owned());
        if database.is_empty() || database.len() > 63 {
            return Err(err("[fleet] database must be 1-63 characters".into()));
        }
        let password = raw.password.map(Zeroizing::new);
        let credential = match (password, raw.client_certificate, raw.client_key) {
            (Some(p), None, None) if !p.is_empty() => Credential::Password(p),
            (None, Some(certificate), Some(key)) => Credential::Certificate { certificate, key },
            (None, None, None) => {
                return Err(err(
                    "[fleet] has no credential: give password, or client_certificate and client_key"
                        .into(),
                ));
            }
            (Some(p), None, None) if p.is_empty() => {
                return Err(err("[fleet] password is empty".into()));
            }
            (None, _, _) => {
                return Err(err(
                    "[fleet] client_certificate and client_key go together: give both".into(),
                ));
            }
            (Some(_), _, _) => {
                return Err(err(
                    "[fleet] gives both a password and a client certificate: keep one".into(),
                ));
            }
        };
        let seconds = |name: &str, value: Option<u64>| match value {
            None => Ok(Duration::from_secs(3)),
            Some(s) if TIMEOUT_RANGE.contains(&s) => Ok(Duration::from_secs(s)),
            Some(s) => Err(err(format!("[fleet] {name} = {s} is out of range 1-60"))),
        };
        let connect_timeout = seconds("connect_timeout_seconds", raw.connect_timeout_seconds)?;
        let query_timeout = seconds("query_timeout_seconds", raw.query_timeout_seconds)?;
        if let Some(u) = raw
            .local_users
            .iter()
            .find(|u| u.is_empty() || u.len() > 256)
        {
            return Err(err(format!(
                "[fleet] local_users has an invalid user name {u:?}"
            )));
        }
        Ok(Some(Self {
            hosts,
            database,
            role: raw.role,
            credential,
            ca_certificate: raw.ca_certificate,
            connect_timeout,
            query_timeout,
            local_users: raw.local_users,
        }))
    }

    /// Whether mfad keeps `user` in its local store rather than in the fleet database.
    pub fn is_local_user(&self, user: &str) -> bool {
        self.local_users.iter().any(|u| u == user)
    }
}

/// [`FleetConfig::load`] with the owner to require as a parameter, so the checks can be
/// tested without chowning files to root.
pub(crate) fn load_owned_by(path: &Path, owner: u32) -> Result<Option<FleetConfig>, ConfigError> {
    let err = |problem: String| ConfigError {
        path: path.to_owned(),
        problem,
    };
    let fix = "make it a regular file owned by root with mode 0600 (chown root:root; chmod 0600)";
    // O_NOFOLLOW: a symlink is refused by the open itself, so what is checked below is
    // what is read (no check-then-open race).
    let mut file: File = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(err(format!("is a symbolic link, which is refused: {fix}")));
        }
        Err(e) => return Err(err(format!("cannot be opened: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| err(format!("cannot be examined: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(err(format!("is not a regular file: {fix}")));
    }
    if meta.uid() != owner {
        return Err(err(format!(
            "is owned by uid {}, not root: it holds the host's database credential; {fix}",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(err(format!(
            "has mode {:04o}, readable or writable by others: it holds the host's database credential; {fix}",
            meta.mode() & 0o7777
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!("is larger than {MAX_FILE_BYTES} bytes")));
    }
    let mut text = Zeroizing::new(String::new());
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| err(format!("cannot be read: {e}")))?;
    FleetConfig::parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const GOOD: &str = r#"
[fleet]
hosts = ["db1.example.com:5432", "db2:5433"]
role = "mfa_host_web1"
password = "s3cret-pass-word"
ca_certificate = "/etc/pam_mfa/fleet-ca.pem"
local_users = ["root", "breakglass"]
"#;

    fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let p = dir.join("mfad.conf");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn parse(text: &str) -> Result<Option<FleetConfig>, ConfigError> {
        FleetConfig::parse(Path::new("/etc/pam_mfa/mfad.conf"), text)
    }

    fn parse_err(text: &str) -> String {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with("/etc/pam_mfa/mfad.conf: "), "{e}");
        e
    }

    #[test]
    fn good_file_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), GOOD, 0o600);
        let c = load_owned_by(&p, euid()).unwrap().unwrap();
        assert_eq!(
            c.hosts,
            vec![
                HostPort {
                    host: "db1.example.com".into(),
                    port: 5432
                },
                HostPort {
                    host: "db2".into(),
                    port: 5433
                }
            ]
        );
        assert_eq!(c.database, "pam_mfa");
        assert_eq!(c.role, "mfa_host_web1");
        assert!(
            matches!(&c.credential, Credential::Password(p) if p.as_str() == "s3cret-pass-word")
        );
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.query_timeout, Duration::from_secs(3));
        assert!(c.is_local_user("breakglass"));
        assert!(!c.is_local_user("alice"));
        // 0400 is as private as 0600.
        let p = write(dir.path(), GOOD, 0o400);
        assert!(load_owned_by(&p, euid()).unwrap().is_some());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = parse(GOOD).unwrap().unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("<hidden>"));
    }

    #[test]
    fn missing_file_or_section_means_sqlite_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            load_owned_by(&dir.path().join("nope"), euid())
                .unwrap()
                .is_none()
        );
        assert!(parse("").unwrap().is_none());
    }

    #[test]
    fn group_or_other_bits_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            let p = write(dir.path(), GOOD, mode);
            let e = load_owned_by(&p, euid()).unwrap_err().to_string();
            assert!(e.contains(&format!("mode {mode:04o}")), "{e}");
            assert!(
                e.contains("chmod 0600") && e.contains(&p.display().to_string()),
                "{e}"
            );
        }
    }

    #[test]
    fn owner_other_than_root_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), GOOD, 0o600);
        let e = load_owned_by(&p, euid().wrapping_add(1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not root") && e.contains("chown root:root"),
            "{e}"
        );
        // The real entry point requires root itself.
        if euid() == 0 {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            let e = FleetConfig::load(&p).unwrap_err().to_string();
            assert!(e.contains("owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn symlink_and_non_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = write(dir.path(), GOOD, 0o600);
        let link = dir.path().join("link.conf");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = load_owned_by(&link, euid()).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let sub = dir.path().join("dir.conf");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = load_owned_by(&sub, euid()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn unknown_key_refused_without_echoing_the_file() {
        let e = parse_err(&GOOD.replace("role =", "rolle = \"x\"\nrole ="));
        assert!(e.contains("rolle") && e.contains("line"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = parse_err(&format!("{GOOD}\n[other]\nx = 1\n"));
        assert!(e.contains("other"), "{e}");
        // A password that breaks the syntax is not quoted back.
        let e = parse_err("[fleet]\npassword = \"s3cret\nrole = 1\n");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn exactly_one_credential() {
        let neither = GOOD.replace("password = \"s3cret-pass-word\"\n", "");
        assert!(parse_err(&neither).contains("no credential"));
        let both = GOOD.replace(
            "password =",
            "client_certificate = \"/c.pem\"\nclient_key = \"/k.pem\"\npassword =",
        );
        assert!(parse_err(&both).contains("both a password and a client certificate"));
        let half = neither.replace("role =", "client_certificate = \"/c.pem\"\nrole =");
        assert!(parse_err(&half).contains("go together"));
        let half = neither.replace("role =", "client_key = \"/k.pem\"\nrole =");
        assert!(parse_err(&half).contains("go together"));
        let cert = neither.replace(
            "role =",
            "client_certificate = \"/c.pem\"\nclient_key = \"/k.pem\"\nrole =",
        );
        let c = parse(&cert).unwrap().unwrap();
        assert!(matches!(c.credential, Credential::Certificate { .. }));
        let empty = GOOD.replace("s3cret-pass-word", "");
        assert!(parse_err(&empty).contains("password is empty"));
    }

    #[test]
    fn hosts_and_deadlines_checked() {
        let empty = GOOD.replace(r#"["db1.example.com:5432", "db2:5433"]"#, "[]");
        assert!(parse_err(&empty).contains("hosts is empty"));
        for bad in [
            "db1:0",
            "db1:99999",
            "db1:x",
            "",
            "a b:5432",
            "::1:5432",
            "[::1",
        ] {
            let text = GOOD.replace("db2:5433", bad);
            assert!(parse_err(&text).contains("is not NAME:PORT"), "{bad}");
        }
        assert_eq!(
            HostPort::parse("[::1]:6543").unwrap(),
            HostPort {
                host: "::1".into(),
                port: 6543
            }
        );
        assert_eq!(HostPort::parse("db").unwrap().port, 5432);
        assert_eq!(
            HostPort::parse("[::1]:6543").unwrap().to_string(),
            "[::1]:6543"
        );
        let t = GOOD.replace("role =", "connect_timeout_seconds = 0\nrole =");
        assert!(parse_err(&t).contains("connect_timeout_seconds = 0 is out of range"));
        let t = GOOD.replace("role =", "query_timeout_seconds = 61\nrole =");
        assert!(parse_err(&t).contains("query_timeout_seconds = 61"));
        let t = GOOD.replace(
            "role =",
            "connect_timeout_seconds = 5\nquery_timeout_seconds = 2\ndatabase = \"mfa\"\nrole =",
        );
        let c = parse(&t).unwrap().unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.query_timeout, Duration::from_secs(2));
        assert_eq!(c.database, "mfa");
        let t = GOOD.replace("role = \"mfa_host_web1\"\n", "");
        assert!(parse_err(&t).contains("role"));
        let t = GOOD.replace("ca_certificate = \"/etc/pam_mfa/fleet-ca.pem\"\n", "");
        assert!(parse_err(&t).contains("ca_certificate"));
    }
}
