//! A real PostgreSQL server for the fleet tests: Debian's server binaries, a cluster made
//! by `initdb` in a temporary directory, run as the `postgres` system account, listening on
//! 127.0.0.1 only (a free port) and on a Unix socket inside that directory.
//!
//! TCP connections must use TLS: the harness makes its own certificate authority, a server
//! certificate for `localhost` and `127.0.0.1`, and client certificates on request, all
//! with the `openssl` command. Over TCP, roles log in with a SCRAM password (or with a
//! certificate, for the roles of the group named by [`CERT_GROUP`]); plain TCP is refused.
//! The superuser `postgres` connects over the Unix socket only ([`Postgres::superuser`]).
//!
//! A second cluster can follow the first as a streaming standby
//! ([`Postgres::start_standby`]) and be promoted, for the fail-over tests.
//!
//! Requirements: the Debian packages `postgresql` (15 or later, with pgcrypto) and
//! `openssl`; run as root (the cluster's files belong to `postgres`).

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::paths::require_root;

/// The roles in this group log in over TCP with a client certificate whose common name is
/// the role's name, instead of a password.
pub const CERT_GROUP: &str = "pam_mfa_cert_hosts";

/// One running PostgreSQL cluster; stopped (immediately) and removed when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    stopped: bool,
    /// Set for a cluster on a test's fake clock ([`Postgres::start_copy_on_clock`]).
    clock: Option<PathBuf>,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/N/bin`, N ≥ 15).
fn server_bin() -> PathBuf {
    let mut versions: Vec<u32> = fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    let v = versions
        .into_iter()
        .rev()
        .find(|v| *v >= 15 && Path::new(&format!("/usr/lib/postgresql/{v}/bin/initdb")).exists())
        .expect("PostgreSQL 15 or later is not installed: apt-get install postgresql");
    PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"))
}

/// A port nobody listens on now (the kernel's pick, released at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Runs `cmd` to its end and returns its stdout; panics with its output on failure.
fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command run as the `postgres` system account.
fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(program);
    cmd
}

/// Runs `openssl` with `args` (split at spaces) in `dir`.
fn openssl(args: &str, dir: &Path) {
    let mut cmd = Command::new("openssl");
    cmd.args(args.split_whitespace()).current_dir(dir);
    run(cmd, &format!("openssl {args}"));
}

/// The key options of every certificate here: a P-256 key, unencrypted.
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

impl Postgres {
    /// Makes and starts a new cluster whose TCP rules are the harness's own: TLS only,
    /// certificates for [`CERT_GROUP`], SCRAM passwords for every other role.
    pub fn start() -> Self {
        Self::start_with_hba(&format!(
            "hostssl all +{CERT_GROUP} 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             host all all 0.0.0.0/0 reject\n"
        ))
    }

    /// Makes and starts a new cluster with `tcp_rules` as its `pg_hba.conf` lines for TCP
    /// (the superuser's Unix-socket lines come first).
    pub fn start_with_hba(tcp_rules: &str) -> Self {
        require_root();
        let bin = server_bin();
        let dir = tempfile::Builder::new()
            .prefix("pam_mfa-pg-")
            .tempdir()
            .expect("temporary directory for PostgreSQL");
        let pg = Self {
            dir,
            port: free_port(),
            bin,
            stopped: true,
            clock: None,
        };
        pg.own_directory();
        pg.make_certificates();
        let mut initdb = as_postgres(&pg.bin.join("initdb"));
        initdb
            .args([
                "--no-sync",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(pg.data());
        run(initdb, "initdb");
        pg.write_hba(tcp_rules);
        pg.started()
    }

    /// A streaming standby of this cluster (a base backup taken now), started and
    /// following it; read-only until [`Postgres::promote`].
    pub fn start_standby(&self) -> Self {
        let standby = Self {
            dir: tempfile::Builder::new()
                .prefix("pam_mfa-pg-standby-")
                .tempdir()
                .expect("temporary directory for the standby"),
            port: free_port(),
            bin: self.bin.clone(),
            stopped: true,
            clock: None,
        };
        standby.own_directory();
        // The same certificates, so that one CA file verifies both servers.
        for f in ["ca.crt", "ca.key", "server.crt", "server.key"] {
            fs::copy(self.dir.path().join(f), standby.dir.path().join(f)).expect("copy cert");
        }
        standby.chown_certificates();
        let mut backup = as_postgres(&self.bin.join("pg_basebackup"));
        backup
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-D",
            ])
            .arg(standby.data());
        run(backup, "pg_basebackup");
        standby.started()
    }

    /// Copies this stopped cluster (data and certificates) to `to`, a directory that does
    /// not exist yet: a template for [`Postgres::start_copy_on_clock`].
    pub fn copy_stopped_to(&self, to: &Path) {
        assert!(self.stopped, "copy a stopped cluster only");
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(self.dir.path()).arg(to);
        run(cp, "copy the cluster");
    }

    /// A new cluster copied from `template` (made by [`Postgres::copy_stopped_to`]) and
    /// started on its own port with its clock read from a file of its own
    /// ([`Postgres::clock_file`], libfaketime's timestamp file, read at every clock call)
    /// that first holds `clock_spec`: `now()` in the database is then the test's time, as
    /// the test's `mfad` sees it, and the fleet's functions check codes at that time.
    ///
    /// Such a server's `pg_sleep` and its own timeouts do not run while the clock stands
    /// still; nothing the fleet does uses them.
    pub fn start_copy_on_clock(template: &Path, clock_spec: &str) -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("pam_mfa-pg-")
            .tempdir()
            .expect("temporary directory for PostgreSQL");
        let mut cp = Command::new("cp");
        cp.arg("-a")
            .arg(format!("{}/.", template.display()))
            .arg(dir.path());
        run(cp, "copy the template cluster");
        let clock = dir.path().join("clock");
        let pg = Self {
            dir,
            port: free_port(),
            bin: server_bin(),
            stopped: true,
            clock: Some(clock),
        };
        pg.own_directory();
        pg.write_clock(clock_spec);
        pg.started()
    }

    /// The file the server reads its clock from, if it runs on a test's clock.
    pub fn clock_file(&self) -> Option<&Path> {
        self.clock.as_deref()
    }

    /// Sets the clock of a server on a test's clock (atomically: the server never reads
    /// half a file): a unix time at which it stands, or `+0` for the real clock.
    pub fn write_clock(&self, spec: &str) {
        let Some(clock) = &self.clock else {
            panic!("this server runs on the real clock");
        };
        let tmp = clock.with_extension("new");
        fs::write(&tmp, format!("{spec}\n")).expect("write the server's clock");
        fs::rename(&tmp, clock).expect("replace the server's clock");
    }

    fn own_directory(&self) {
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o700))
            .expect("chmod PostgreSQL directory");
        let mut chown = Command::new("chown");
        chown.arg("postgres:postgres").arg(self.dir.path());
        run(chown, "chown PostgreSQL directory");
    }

    fn chown_certificates(&self) {
        let d = self.dir.path();
        let mut chown = Command::new("chown");
        chown
            .arg("postgres:postgres")
            .arg(d.join("server.key"))
            .arg(d.join("server.crt"))
            .arg(d.join("ca.crt"));
        run(chown, "chown certificates");
        fs::set_permissions(d.join("server.key"), fs::Permissions::from_mode(0o600))
            .expect("chmod server key");
    }

    /// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it. They are
    /// valid for ten years: the tests' daemons run on a fake clock years ahead.
    fn make_certificates(&self) {
        let d = self.dir.path();
        openssl(
            &format!(
                "req -x509 {NEW_KEY} -keyout ca.key -out ca.crt -days 3650 -subj /CN=pam_mfa-test-CA"
            ),
            d,
        );
        openssl(
            &format!("req {NEW_KEY} -keyout server.key -out server.csr -subj /CN=localhost"),
            d,
        );
        fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
             -out server.crt -days 3650 -extfile server.ext",
            d,
        );
        self.chown_certificates();
    }

    /// A client certificate and key for `common_name` signed by the harness's CA (for a
    /// role of [`CERT_GROUP`], the role's name): `(certificate, key)` paths, root-owned.
    pub fn client_certificate(&self, common_name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let (crt, key) = (
            format!("client-{common_name}.crt"),
            format!("client-{common_name}.key"),
        );
        openssl(
            &format!("req {NEW_KEY} -keyout {key} -out client.csr -subj /CN={common_name}"),
            d,
        );
        openssl(
            &format!(
                "x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                 -out {crt} -days 3650"
            ),
            d,
        );
        (d.join(crt), d.join(key))
    }

    fn write_hba(&self, tcp_rules: &str) {
        let hba = format!(
            "# pam_mfa test cluster: the superuser on the socket only.\n\
             local   all          postgres                  trust\n\
             local   replication  postgres                  trust\n\
             {tcp_rules}"
        );
        fs::write(self.data().join("pg_hba.conf"), hba).expect("write pg_hba.conf");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts a new cluster. Its port was free when chosen, but a client of another test
    /// may take it as its own end of a connection before the server binds it: then the
    /// cluster starts again on another free port (a restart keeps its port: see
    /// [`Self::restart`]).
    fn started(mut self) -> Self {
        for _ in 0..5 {
            match self.start_once() {
                Ok(()) => return self,
                Err(log) if log.contains("Address already in use") => self.port = free_port(),
                Err(log) => panic!("PostgreSQL did not start: {log}"),
            }
        }
        panic!("PostgreSQL did not start: no free port in five tries");
    }

    /// Starts the cluster on its port; Err holds pg_ctl's output and what the server logged.
    fn start_once(&mut self) -> Result<(), String> {
        let log_file = self.dir.path().join("server.log");
        let logged_before = fs::metadata(&log_file).map_or(0, |m| m.len());
        let d = self.dir.path().display().to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={d} \
             -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key \
             -c ssl_ca_file={d}/ca.crt -c fsync=off -c max_connections=200 \
             -c log_min_messages=warning",
            port = self.port
        );
        // On a clock that stands still, nothing scheduled by time would ever run (or, worse,
        // would run at every turn): the tests' short-lived clusters need no autovacuum.
        let options = match self.clock {
            Some(_) => format!("{options} -c autovacuum=off"),
            None => options,
        };
        let mut ctl = as_postgres(Path::new("/usr/bin/env"));
        if let Some(clock) = &self.clock {
            for (k, v) in crate::clock::fake_clock_file_env(clock) {
                let mut pair = k;
                pair.push("=");
                pair.push(v);
                ctl.arg(pair);
            }
        }
        ctl.arg(self.bin.join("pg_ctl"))
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .args(["-l"])
            .arg(&log_file)
            .args(["-o", &options, "start"]);
        let out = ctl.output().expect("run pg_ctl start");
        if !out.status.success() {
            let log = fs::read(&log_file).unwrap_or_default();
            let new = log
                .get(usize::try_from(logged_before).unwrap_or(0)..)
                .unwrap_or_default();
            return Err(format!(
                "{}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(new)
            ));
        }
        self.stopped = false;
        Ok(())
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as the fleet configuration's `hosts` names a server.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The directory of the server's Unix socket (libpq's `host` for the superuser).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate that signed the server's (and the clients') certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A libpq connection string for the superuser over the Unix socket, to `database`.
    pub fn superuser(&self, database: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={database}",
            self.dir.path().display(),
            self.port
        )
    }

    /// Runs `sql` as the superuser in `database` with psql (stopping at the first error)
    /// and returns what it printed (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ]);
        run(cmd, &format!("psql {sql}"))
    }

    /// Creates the database `name`.
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
    }

    /// Makes this standby the primary (waits until it accepts writes).
    pub fn promote(&self) {
        let mut ctl = as_postgres(&self.bin.join("pg_ctl"));
        ctl.args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("promote");
        run(ctl, "pg_ctl promote");
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.psql("postgres", "SELECT pg_is_in_recovery()").trim() != "f" {
            assert!(
                Instant::now() < deadline,
                "the standby did not finish promotion"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: sessions are ended, nothing is lost).
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast");
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(mut self) -> Self {
        if let Err(log) = self.start_once() {
            panic!("PostgreSQL did not start again: {log}");
        }
        self
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        if self.stopped {
            return;
        }
        let mut ctl = as_postgres(&self.bin.join("pg_ctl"));
        ctl.args(["-w", "-t", "60", "-m", mode, "-D"])
            .arg(self.data())
            .arg("stop");
        let _ = ctl.output();
        self.stopped = true;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.pg_ctl_stop("immediate");
    }
}
