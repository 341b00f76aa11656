//! A fleet of hosts on one PostgreSQL database, for the fleet's end-to-end tests (issue
//! 19): the database set up the deployment guide's way (docs/fleet.md, its snippets run
//! as written), and hosts that are each a [`TestEnv`] whose `mfad` runs with the guide's
//! `mfad.conf` for a host role of their own. The database checks codes with its own
//! clock, the real one, so codes here are the real time's ([`crate::realtime`]).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use pam_mfa::hotp::{HotpKey, HotpParams};
use pam_mfa::otp::Algorithm;
use pam_mfa::secret::Secret;

use crate::env::TestEnv;
use crate::guide::{fleet_guide_text, snippet_in};
use crate::paths::mfa_bin;
use crate::postgres::Postgres;
use crate::realtime::real_now;
use crate::totp;

/// The database the fleet lives in.
pub const DB: &str = "pam_mfa";

/// Waits, if needed, until the current 30-second step has at least `secs` seconds left,
/// so that codes taken now are still the current step's when the database checks them.
pub fn with_time_left_in_step(secs: i64) {
    let left = 30 - real_now().rem_euclid(30);
    if left < secs {
        std::thread::sleep(Duration::from_secs(left as u64 + 1));
    }
}

/// The guide's snippet `name`.
pub fn guide(name: &str) -> String {
    snippet_in(&fleet_guide_text(), name)
}

/// Runs the guide's shell snippet `name` as root with `sh -e`, with `mfa` the built one
/// and the guide's connection string (`--connection '…'`, if any) replaced by the test
/// server's superuser's, the example host `web1` by `host`; its stdout (asserts success).
pub fn run_guide(pg: &Postgres, name: &str, host: &str) -> String {
    let text = guide(name);
    let mut script = text.replace(" web1 ", &format!(" {host} "));
    if let Some(conn) = text
        .split("--connection '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
    {
        script = script.replace(conn, &pg.superuser(DB));
    }
    let bin_dir = mfa_bin().parent().expect("mfa's directory").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .args(["-e", "-c", &script])
        .env("PATH", path)
        .env("PGHOST", pg.socket_dir())
        .env("PGPORT", pg.port().to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "the guide's {name} failed: {script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The password `add-host` printed (in its `password = "…"` line).
pub fn printed_password(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("password")?.trim_start().strip_prefix('=')?;
            Some(rest.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("add-host printed no password line:\n{out}"))
}

/// One host of the fleet: its own environment (store, PAM service, `mfad`) with a fleet
/// configuration for the role `mfa_host_<name>`.
pub struct Host {
    pub env: TestEnv,
    pub role: String,
}

impl Host {
    pub fn new(pg: &Postgres, name: &str, local_users: &[&str]) -> Self {
        Self::with_servers(pg, name, local_users, &[format!("localhost:{}", pg.port())])
    }

    pub fn with_servers(
        pg: &Postgres,
        name: &str,
        local_users: &[&str],
        servers: &[String],
    ) -> Self {
        let out = run_guide(pg, "fleet-add-host", name);
        let password = printed_password(&out);
        let env = TestEnv::with_backend(crate::backend::Backend::Local);
        let role = format!("mfa_host_{name}");
        let config = env.path("mfad.conf");
        write_config(&config, &role, &password, pg, local_users, servers);
        env.set_mfad_args(&[OsStr::new("--config"), config.as_os_str()]);
        env.write_service(&[]);
        Self { env, role }
    }
}

pub fn write_config(
    path: &Path,
    role: &str,
    password: &str,
    pg: &Postgres,
    local_users: &[&str],
    servers: &[String],
) {
    let quoted = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let locals: Vec<String> = local_users.iter().map(|s| s.to_string()).collect();
    // The guide's configuration, with this fleet's values in place of its examples.
    let text = guide("fleet-mfad-conf");
    let mut replaced = text.clone();
    for (example, value) in [
        (
            "\"db1.example.com:5432\", \"db2.example.com:5432\"".to_owned(),
            quoted(servers),
        ),
        ("mfa_host_web1".to_owned(), role.to_owned()),
        (
            "PASSWORD-PRINTED-BY-ADD-HOST".to_owned(),
            password.to_owned(),
        ),
        (
            "/etc/pam_mfa/fleet-ca.pem".to_owned(),
            pg.ca_file().display().to_string(),
        ),
        ("\"root\", \"breakglass\"".to_owned(), quoted(&locals)),
    ] {
        assert!(
            replaced.contains(&example),
            "the guide's mfad.conf lost {example}"
        );
        replaced = replaced.replace(&example, &value);
    }
    std::fs::write(path, replaced).expect("write mfad.conf");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A database with the fleet's schema installed, the guide's way: its `pg_hba.conf`
/// lines (for 127.0.0.1 instead of the example network), its `CREATE DATABASE`, its
/// `mfa admin fleet init`.
pub fn fleet_database() -> Postgres {
    let pg = Postgres::start_with_hba(&guide("fleet-pg-hba").replace("10.0.0.0/8", "127.0.0.1/32"));
    // The server runs with the guide's postgresql.conf settings (its certificate files
    // are the harness's, of the same names).
    for line in guide("fleet-postgresql-conf").lines() {
        let (key, value) = line.split_once('=').expect("a `key = value` line");
        let (key, value) = (key.trim(), value.trim().trim_matches('\''));
        let shown = pg.psql("postgres", &format!("SHOW {key}"));
        let file_name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
        assert_eq!(file_name(shown.trim()), file_name(value), "{key}");
    }
    run_guide(&pg, "fleet-create-database", "");
    run_guide(&pg, "fleet-init", "");
    pg
}

/// Registers `user`'s app through `host` (root's `mfa`), finished with the codes of the
/// real previous and current steps; returns the secret.
pub fn enroll(host: &Host, user: &str, name: &str) -> String {
    with_time_left_in_step(5);
    let dev = host.env.begin(user, name, &[]);
    let now = real_now();
    let (c1, c2) = (totp(&dev.secret, now - 30), totp(&dev.secret, now));
    host.env.finish(user, name, &c1, &c2).assert_success();
    dev.secret
}

/// The code of `secret` for counter (or time step) `value`, from the library's HOTP: what
/// the database's codes are compared with.
pub fn library_code(secret: &[u8], alg: Algorithm, digits: u8, value: i64) -> String {
    let key = HotpKey::new(
        &Secret::from_bytes(secret.to_vec()),
        HotpParams {
            algorithm: alg,
            digits,
        },
    )
    .expect("HOTP key");
    key.code(u64::try_from(value).expect("a value of 0 or more"))
        .expect("code")
        .as_str()
        .to_owned()
}
