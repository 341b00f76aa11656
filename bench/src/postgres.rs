//! A PostgreSQL cluster for `--backend fleet`, made and started the way the fleet tests'
//! harness does it (`tests/src/postgres.rs`: Debian's server binaries, `initdb` as the
//! `postgres` system account, 127.0.0.1 and a Unix socket, TLS with its own CA), but
//! with PostgreSQL's durable defaults (`fsync`, `synchronous_commit` on: the tests turn
//! fsync off), errors returned rather than panics, and `pg_hba.conf` as the fleet guide
//! writes it. A small copy rather than a dependency on `pam_mfa_tests`: that crate is
//! the test harness (it panics by design and pulls in the whole test tooling).

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The database the fleet lives in (the fleet guide's name).
pub const DATABASE: &str = "pam_mfa";

/// One running cluster in its own directory (`postgres`-owned, beside the benchmark's
/// root-only working directory); stopped and removed when dropped.
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    running: bool,
    keep: bool,
}

fn run(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(program);
    cmd
}

/// The newest installed server (`/usr/lib/postgresql/N/bin`, N ≥ 15: the fleet's floor).
fn server_bin() -> Result<PathBuf, String> {
    let mut versions: Vec<u32> = fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    versions
        .into_iter()
        .rev()
        .find(|v| *v >= 15 && Path::new(&format!("/usr/lib/postgresql/{v}/bin/initdb")).exists())
        .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")))
        .ok_or_else(|| "PostgreSQL 15 or later is not installed: apt-get install postgresql".into())
}

const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

impl Postgres {
    /// Makes a cluster in a new directory `<work>.pg` and starts it: TLS on with a CA of
    /// its own and a certificate for `localhost`; the hosts' roles (`+pam_mfa_host`) log
    /// in over TLS with SCRAM, the superuser over the Unix socket only. `settings`
    /// (`name=value`) are given to the server after its own (`--pg-setting`), e.g.
    /// `synchronous_commit=off` to see what the commit's WAL flush costs.
    pub fn start(work: &Path, keep: bool, settings: &[String]) -> Result<Self, String> {
        if let Some(bad) = settings
            .iter()
            .find(|s| !s.contains('=') || s.contains(char::is_whitespace))
        {
            return Err(format!("--pg-setting {bad:?}: name=value, without spaces"));
        }
        let bin = server_bin()?;
        let mut name = work.as_os_str().to_owned();
        name.push(".pg");
        let dir = PathBuf::from(name);
        fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
        let mut pg = Self {
            dir,
            port,
            bin,
            running: false,
            keep,
        };
        fs::set_permissions(&pg.dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", pg.dir.display()))?;
        pg.certificates()?;
        let mut chown = Command::new("chown");
        chown
            .args(["-R", "postgres:postgres"])
            .arg(&pg.dir)
            .stdout(Stdio::null());
        run(chown, "chown the cluster's directory")?;
        let mut initdb = as_postgres(&pg.bin.join("initdb"));
        initdb
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "-D"])
            .arg(pg.data());
        run(initdb, "initdb")?;
        // The fleet guide's pg_hba.conf (docs/fleet.md), for 127.0.0.1.
        fs::write(
            pg.data().join("pg_hba.conf"),
            format!(
                "local all postgres trust\n\
                 hostssl {DATABASE} +pam_mfa_host 127.0.0.1/32 scram-sha-256\n\
                 host all all 0.0.0.0/0 reject\n"
            ),
        )
        .map_err(|e| format!("pg_hba.conf: {e}"))?;
        let d = pg.dir.display().to_string();
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={d} \
             -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key \
             -c password_encryption=scram-sha-256 -c max_connections=50 \
             -c log_min_messages=warning"
        );
        for s in settings {
            options.push_str(&format!(" -c {s}"));
        }
        let mut ctl = as_postgres(&pg.bin.join("pg_ctl"));
        ctl.args(["-w", "-t", "120", "-D"])
            .arg(pg.data())
            .arg("-l")
            .arg(pg.log_path())
            .args(["-o", &options, "start"]);
        run(ctl, "pg_ctl start").map_err(|e| format!("{e}\n{}", pg.log()))?;
        pg.running = true;
        pg.psql("postgres", &format!("CREATE DATABASE {DATABASE}"))?;
        Ok(pg)
    }

    /// A CA, and a server certificate for `localhost` and 127.0.0.1 signed by it.
    fn certificates(&self) -> Result<(), String> {
        let openssl = |args: String| {
            let mut cmd = Command::new("openssl");
            cmd.args(args.split_whitespace()).current_dir(&self.dir);
            run(cmd, "openssl").map(drop)
        };
        openssl(format!(
            "req -x509 {NEW_KEY} -keyout ca.key -out ca.crt -days 30 -subj /CN=pam_mfa-bench-CA"
        ))?;
        openssl(format!(
            "req {NEW_KEY} -keyout server.key -out server.csr -subj /CN=localhost"
        ))?;
        fs::write(
            self.dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| format!("server.ext: {e}"))?;
        openssl(
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
             -out server.crt -days 30 -extfile server.ext"
                .to_owned(),
        )?;
        fs::set_permissions(
            self.dir.join("server.key"),
            fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| format!("chmod server.key: {e}"))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server's log (kept with `--keep`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `localhost:PORT`, as a host's `mfad.conf` names the server (the name is verified).
    pub fn server(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// The CA that signed the server's certificate (the hosts' `ca_certificate`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A libpq connection string for the superuser over the Unix socket.
    pub fn superuser(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname={DATABASE}",
            self.dir.display(),
            self.port
        )
    }

    fn psql_cmd(&self, database: &str) -> Command {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ]);
        cmd
    }

    /// Runs `sql` as the superuser in `database`; what it printed (unaligned, no headers).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut cmd = self.psql_cmd(database);
        cmd.args(["-c", sql]);
        run(cmd, &format!("psql {sql}"))
    }

    /// Runs `sql` (a `COPY … FROM STDIN`) as the superuser in the fleet's database, with
    /// `data` on its standard input.
    pub fn copy_in(&self, sql: &str, data: &[u8]) -> Result<(), String> {
        let mut cmd = self.psql_cmd(DATABASE);
        cmd.args(["-c", sql])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("psql: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("psql: no stdin")?;
        let written = stdin.write_all(data);
        drop(stdin);
        let out = child.wait_with_output().map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() || written.is_err() {
            return Err(format!(
                "psql {sql} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let mut ctl = as_postgres(&self.bin.join("pg_ctl"));
            ctl.args(["-w", "-t", "60", "-m", "fast", "-D"])
                .arg(self.data())
                .arg("stop")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = ctl.status();
        }
        if self.keep {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
