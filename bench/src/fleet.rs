//! `--backend fleet` (issue 19): pam_mfa's accounts kept in the fleet's PostgreSQL
//! database, as `docs/fleet.md` deploys it. One cluster on this machine
//! ([`crate::postgres`]), the schema installed and two host roles made by the library's
//! own administrator calls (`mfa admin fleet init`, `add-host`), and two hosts, each its
//! own `mfad` with its own `mfad.conf` (the `[fleet]` section `add-host` prints) and its
//! own PAM service. The users and their devices are written straight into
//! `pam_mfa_fleet.devices` by the superuser (one `COPY`), each with one active TOTP app
//! holding the benchmark's secret, with the `auth_state` row a first login leaves:
//! registering 100,000 devices through the host functions would take most of an hour and
//! measure nothing the benchmark reports.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pam_mfa_fleet::admin::{Admin, config_snippet};

use crate::accounts;
use crate::codes::{PERIOD, Secrets};
use crate::fixtures::{private_dir, service_dir, write_private};
use crate::postgres::{DATABASE, Postgres};
use crate::run::{ChildEnv, Daemons};

/// The two hosts' names (their roles are `mfa_host_<name>`).
pub const HOSTS: [&str; 2] = ["bench1", "bench2"];

/// The fleet of a run: its database and, per host, the PAM service directory whose
/// `pam_mfa.so` talks to that host's `mfad`.
pub struct Fleet {
    pub pg: Postgres,
    pub services: Vec<PathBuf>,
    /// Users with a device so far (`0..users`).
    pub users: usize,
}

impl Fleet {
    /// Starts the database, installs the schema, adds the two hosts and starts their
    /// daemons (kept in `daemons`).
    pub fn start(
        work: &Path,
        env: &ChildEnv<'_>,
        daemons: &mut Daemons,
        keep: bool,
        settings: &[String],
    ) -> Result<Self, String> {
        let pg = Postgres::start(work, keep, settings)?;
        let mut admin = Admin::connect(Some(&pg.superuser()))
            .map_err(|e| format!("fleet administrator: {e}"))?;
        admin.init().map_err(|e| format!("fleet init: {e}"))?;
        let mut services = Vec::new();
        for name in HOSTS {
            let credential = admin
                .add_host(name)
                .map_err(|e| format!("fleet add-host {name}: {e}"))?;
            let dir = work.join(format!("host-{name}"));
            private_dir(&dir)?;
            // The CA a host is given (root's, as /etc/pam_mfa/fleet-ca.pem would be).
            let ca = dir.join("fleet-ca.pem");
            std::fs::copy(pg.ca_file(), &ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let snippet = config_snippet(&credential, &[pg.server()], DATABASE);
            let config = dir.join("mfad.conf");
            write_private(
                &config,
                snippet
                    .replace("/etc/pam_mfa/fleet-ca.pem", &ca.display().to_string())
                    .as_bytes(),
            )?;
            // The host's own store, for its local users (root): empty.
            let db = dir.join("devices.db");
            pam_mfa::store::Store::open_or_create(&db)
                .map_err(|e| format!("{}: {e}", db.display()))?;
            let socket = daemons.serve(env, &db, Some(&config))?;
            let line = format!("{} socket={}", env.libs.pam_mfa.display(), socket.display());
            services.push(service_dir(work, &format!("fleet-{name}"), &line)?);
        }
        Ok(Self {
            pg,
            services,
            users: 0,
        })
    }

    /// Gives users `self.users..n` one active TOTP app ("phone", SHA1, 6 digits, 30 s)
    /// with their secret from `secrets`, last used ten steps ago; then `VACUUM ANALYZE`,
    /// so that the planner knows the table's size and no clean-up is pending when the
    /// timing starts.
    pub fn fill(&mut self, secrets: &Secrets, n: usize, now: u64) -> Result<Duration, String> {
        let started = Instant::now();
        let last_step = now / PERIOD - 10;
        let mut rows = String::with_capacity(n.saturating_sub(self.users) * 100);
        for i in self.users..n {
            let user = accounts::name(u32::try_from(i).map_err(|e| e.to_string())?);
            // COPY's text format: `\\x…` is the bytea `\x…` (hex).
            writeln!(
                rows,
                "{user}\tphone\ttotp\tactive\t\\\\x{}\tSHA1\t6\t30\t{last_step}\t{now}",
                secrets.hex(i)
            )
            .map_err(|e| e.to_string())?;
        }
        self.pg.copy_in(
            "COPY pam_mfa_fleet.devices (user_name, name, kind, state, secret, algorithm, \
             digits, period, last_step, created_at) FROM STDIN",
            rows.as_bytes(),
        )?;
        // Each user's lock row (auth_state), as their first login leaves it: a fleet in use
        // has one for everyone who logged in. Without them the table starts empty, and
        // the plans each host's connection caches then scan it (right for an empty
        // table) until autovacuum analyzes it, a minute later in service and never
        // within a series.
        self.pg.psql(
            DATABASE,
            "INSERT INTO pam_mfa_fleet.auth_state (user_name) \
             SELECT user_name FROM pam_mfa_fleet.devices ON CONFLICT DO NOTHING",
        )?;
        self.users = self.users.max(n);
        self.vacuum()?;
        Ok(started.elapsed())
    }

    /// Moves every device's last used step back into the past, so that users who logged
    /// in during one series can log in again in the next one within the same time step
    /// (replay protection would refuse the code otherwise).
    pub fn forget_steps(&self, now: u64) -> Result<(), String> {
        let past = now / PERIOD - 10;
        self.pg.psql(
            DATABASE,
            &format!(
                "UPDATE pam_mfa_fleet.devices SET last_step = {past} WHERE last_step > {past}"
            ),
        )?;
        self.vacuum()
    }

    /// Statistics for the planner, and a checkpoint: the pages a bulk load dirtied are
    /// written out before the series instead of by the checkpointer during it, where
    /// each login's WAL flush would queue behind them (no service loads 100,000 accounts
    /// the moment before its logins).
    fn vacuum(&self) -> Result<(), String> {
        self.pg
            .psql(
                DATABASE,
                "VACUUM ANALYZE pam_mfa_fleet.devices, pam_mfa_fleet.auth_state, pam_mfa_fleet.audit",
            )
            .and_then(|_| self.pg.psql(DATABASE, "CHECKPOINT"))
            .map(drop)
    }
}
