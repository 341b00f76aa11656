//! Which store the end-to-end suites run against (issue 19: "one behaviour, two stores").
//!
//! By default a [`crate::TestEnv`]'s `mfad` keeps every account in its own SQLite store.
//! With `PAM_MFA_TEST_BACKEND=fleet` in the environment, every `TestEnv` instead gets a
//! PostgreSQL fleet database of its own, on the test's clock, and an `mfad.conf` that
//! keeps every account but root there: the same suites, run a second time
//! (`scripts/test.sh` does), then check that the fleet's SQL answers as the library does.
//!
//! A database set up the guide's way (its `pg_hba.conf`, `CREATE DATABASE`, `mfa admin
//! fleet init`, `mfa admin fleet add-host`) is made once per test process and kept
//! stopped as a template; each `TestEnv` starts a copy of it (a file copy and a server
//! start, a fraction of a second) whose clock file the `TestEnv` writes along with its
//! daemon's.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::fleet::{fleet_database, printed_password, run_guide, write_config};
use crate::postgres::Postgres;

/// The environment variable that picks the backend: `local` (the default) or `fleet`.
pub const BACKEND_VAR: &str = "PAM_MFA_TEST_BACKEND";

/// The accounts a fleet-backed `TestEnv` keeps in its local store (as the guide
/// recommends: root logs in when the database is down).
pub const LOCAL_USERS: &[&str] = &["root"];

/// The fleet-backed `TestEnv`'s host name (its role is `mfa_host_test`).
const HOST: &str = "test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Every account in the `TestEnv`'s SQLite store.
    Local,
    /// Every account but root in a PostgreSQL fleet database.
    Fleet,
}

impl Backend {
    /// The backend `PAM_MFA_TEST_BACKEND` names (unset or empty: local); any other value
    /// is a mistake in how the tests were started, and fails them.
    pub fn from_env() -> Backend {
        match std::env::var(BACKEND_VAR).as_deref() {
            Err(_) | Ok("") | Ok("local") => Backend::Local,
            Ok("fleet") => Backend::Fleet,
            Ok(other) => panic!("{BACKEND_VAR}={other:?}: expected `local` or `fleet`"),
        }
    }
}

/// A `TestEnv`'s fleet database: a running copy of the template, on the test's clock.
pub struct FleetStore {
    pg: Postgres,
}

struct Template {
    dir: PathBuf,
    password: String,
}

static TEMPLATE: OnceLock<Template> = OnceLock::new();

/// Where this process's template lives; removed with the temporary directories of test
/// processes that are gone (a static is never dropped).
fn template_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("pam_mfa-pg-template-{pid}"))
}

fn remove_stale_templates() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("pam_mfa-pg-template-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn template() -> &'static Template {
    TEMPLATE.get_or_init(|| {
        remove_stale_templates();
        let mut pg = fleet_database();
        let password = printed_password(&run_guide(&pg, "fleet-add-host", HOST));
        pg.stop();
        let dir = template_dir(std::process::id());
        let _ = std::fs::remove_dir_all(&dir);
        pg.copy_stopped_to(&dir);
        Template { dir, password }
    })
}

impl FleetStore {
    /// A fleet database of its own whose clock stands at `clock_spec` (see
    /// [`Postgres::write_clock`]), with `mfad.conf` for its host written to `config`.
    pub fn start(clock_spec: &str, config: &Path) -> FleetStore {
        let t = template();
        let pg = Postgres::start_copy_on_clock(&t.dir, clock_spec);
        write_config(
            config,
            &format!("mfa_host_{HOST}"),
            &t.password,
            &pg,
            LOCAL_USERS,
            &[format!("localhost:{}", pg.port())],
        );
        FleetStore { pg }
    }

    /// Moves the database's clock with the daemon's.
    pub fn write_clock(&self, spec: &str) {
        self.pg.write_clock(spec);
    }

    /// The server, for what only the fleet's administrator does (its policy, say).
    pub fn postgres(&self) -> &Postgres {
        &self.pg
    }
}
