//! One test's private world: a store, a PAM service directory, a fake clock and the
//! test's own `mfad`. What runs against it lives beside: logins through `pam-client`
//! (the real libpam under pam_wrapper) in [`crate::pam_run`], the real `mfa` in
//! [`crate::mfa_run`].

use crate::pam_code::PamCode;
use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::backend::{Backend, FleetStore};
use crate::clock::{self, BASE_STEP, STEP, at_step, step_of};
use crate::paths;
use crate::process::Running;

/// The PAM service name the tests configure (the file `<tmp>/pam.d/mfatest`).
pub const SERVICE: &str = "mfatest";

/// What `pam_authenticate` returns, with the stack [`TestEnv::write_service_observing_ignore`]
/// writes, when pam_mfa returned `PAM_IGNORE`.
///
/// libpam never hands `PAM_IGNORE` to the application: a stack in which every module was
/// ignored fails with `PAM_PERM_DENIED`. So that stack follows pam_mfa with
/// `pam_debug.so auth=cred_insufficient`, reached only when pam_mfa is ignored, and this
/// otherwise impossible result is how a test sees that pam_mfa said "ignore me".
pub const IGNORED: PamCode = PamCode::CredInsufficient;

/// A per-test environment in its own temporary directory (mode 0700, owned by root,
/// removed when the value is dropped):
///
/// * `store/` (0700) with the device store path `store/devices.db` (not created: the
///   product creates it on first use),
/// * `pam.d/`, the service directory pam_wrapper reads instead of `/etc/pam.d`,
/// * a fake clock, [`TestEnv::now`], at which every product process of the test runs.
///
/// The clock starts [`clock::STEP_OFFSET`] seconds into time step [`BASE_STEP`] and only
/// moves when the test moves it, so codes computed with `oathtool` for `now` are exactly
/// the codes of the step the product sees.
pub struct TestEnv {
    dir: TempDir,
    store: PathBuf,
    db: PathBuf,
    pam_dir: PathBuf,
    now: Cell<i64>,
    /// The test's own `mfad`, started on first use ([`TestEnv::socket`]).
    mfad: RefCell<Option<Running>>,
    /// Set by [`TestEnv::halt_mfad`]: runs do not start a daemon until the test asks for
    /// [`TestEnv::socket`] again.
    halted: Cell<bool>,
    /// Whether the test has used its daemon at all.
    started: Cell<bool>,
    /// More arguments for the test's `mfad` ([`TestEnv::set_mfad_args`]).
    mfad_args: RefCell<Vec<OsString>>,
    /// The fleet database every account but root is kept in, when the suites run with
    /// the fleet backend ([`crate::backend`]). Dropped after the daemon.
    fleet: Option<FleetStore>,
    /// Set for a test whose daemon runs on the real clock (in a [`crate::Namespace`]):
    /// the fleet database's clock then stays real too.
    fleet_real_time: Cell<bool>,
}

impl TestEnv {
    /// A fresh environment (requires root) on the backend the suites run with
    /// ([`Backend::from_env`]).
    pub fn new() -> Self {
        Self::with_backend(Backend::from_env())
    }

    /// A fresh environment on `backend` (requires root).
    pub fn with_backend(backend: Backend) -> Self {
        paths::require_root();
        let dir = tempfile::Builder::new()
            .prefix("pam_mfa_tests-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .expect("cannot create a temporary directory");
        // Exactly 0700 whatever the umask: nothing of a test is readable by other users.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("cannot chmod the temporary directory");
        let store = dir.path().join("store");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&store)
            .expect("cannot create the store directory");
        // DirBuilder's mode is filtered by the umask; make sure it is exactly 0700.
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700))
            .expect("cannot chmod the store directory");
        let pam_dir = dir.path().join("pam.d");
        std::fs::create_dir(&pam_dir).expect("cannot create the PAM service directory");
        let mut env = Self {
            db: store.join("devices.db"),
            store,
            pam_dir,
            dir,
            now: Cell::new(at_step(BASE_STEP)),
            mfad: RefCell::new(None),
            halted: Cell::new(false),
            started: Cell::new(false),
            mfad_args: RefCell::new(Vec::new()),
            fleet: None,
            fleet_real_time: Cell::new(false),
        };
        env.write_clock(env.now());
        if backend == Backend::Fleet {
            let config = env.path("mfad.conf");
            env.fleet = Some(FleetStore::start(&env.now().to_string(), &config));
            env.set_mfad_args(&[std::ffi::OsStr::new("--config"), config.as_os_str()]);
        }
        // A service name the tests did not configure must not fall back to anything lax.
        env.write_file_in_pam_dir(
            "other",
            &format!(
                "auth required {}\n",
                paths::system_pam_module("pam_deny.so").display()
            ),
        );
        env
    }

    /// The temporary directory everything of this test lives in.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside [`TestEnv::root`].
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The store directory (`<tmp>/store`, 0700).
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// The device store (`<tmp>/store/devices.db`), passed as `db=` and `--db`.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// The pam_wrapper service directory.
    pub fn pam_dir(&self) -> &Path {
        &self.pam_dir
    }

    // ----- the clock -----

    /// The fake unix time the next product process starts at.
    pub fn now(&self) -> i64 {
        self.now.get()
    }

    /// Sets the fake time; prefer [`TestEnv::advance_steps`], which keeps the safe offset
    /// into a step.
    pub fn set_now(&self, t: i64) {
        self.now.set(t);
        self.write_clock(t);
    }

    /// The file the test's `mfad` reads its clock from (libfaketime's
    /// `FAKETIME_TIMESTAMP_FILE`, read at every clock call): the daemon's clock stands
    /// still at the time the test last set, so the step of every check is exact.
    pub fn clock_file(&self) -> PathBuf {
        self.dir.path().join("mfad-clock")
    }

    /// Sets the daemon's clock to `t`.
    pub fn write_clock(&self, t: i64) {
        self.write_clock_text(&t.to_string());
    }

    /// Writes libfaketime's time specification for the daemon (atomically: the daemon
    /// never reads half a file): a unix time at which its clock stands, or `+0` for the
    /// real clock.
    fn write_clock_text(&self, spec: &str) {
        let tmp = self.dir.path().join("mfad-clock.new");
        std::fs::write(&tmp, format!("{spec}\n")).expect("cannot write the daemon's clock");
        std::fs::rename(&tmp, self.clock_file()).expect("cannot replace the daemon's clock");
        if let Some(fleet) = &self.fleet {
            fleet.write_clock(if self.fleet_real_time.get() {
                "+0"
            } else {
                spec
            });
        }
    }

    /// Keeps the fleet database (if any) on the real clock from now on, for a test whose
    /// daemon runs on the real clock.
    pub fn keep_fleet_on_real_time(&self) {
        self.fleet_real_time.set(true);
        if let Some(fleet) = &self.fleet {
            fleet.write_clock("+0");
        }
    }

    /// The test's own arguments for `mfad` ([`TestEnv::set_mfad_args`]).
    pub fn mfad_args(&self) -> Vec<OsString> {
        self.mfad_args.borrow().clone()
    }

    /// The backend this environment's accounts are kept in.
    pub fn backend(&self) -> Backend {
        match self.fleet {
            Some(_) => Backend::Fleet,
            None => Backend::Local,
        }
    }

    /// The fleet database, when this environment runs on the fleet backend.
    pub fn fleet(&self) -> Option<&FleetStore> {
        self.fleet.as_ref()
    }

    /// Sets the policy the test's accounts follow, the administrator's way for the
    /// backend: `mfa admin policy set` for the local store, `mfa admin fleet policy set`
    /// (with the fleet administrator's connection) for the fleet.
    pub fn set_policy(&self, key: &str, value: &str) {
        // At the time the test's daemon runs on (the real one, beside real logins).
        fn at_its_time(real: bool, run: MfaRun<'_>) -> MfaRun<'_> {
            if real { run.real_time() } else { run }
        }
        let real = self.fleet_real_time.get();
        // Remembered logins are each host's own (docs/fleet.md): their policy is the host's.
        let hosts_own = key.starts_with("remember");
        let out = match &self.fleet {
            Some(fleet) if !hosts_own => {
                let conn = fleet.postgres().superuser(crate::fleet::DB);
                let args = ["admin", "fleet", "policy", "set", key, value];
                self.mfa_cmd(&[&args[..], &["--connection", &conn]].concat())
                    .no_link()
                    .run()
            }
            _ => at_its_time(real, self.mfa_cmd(&["admin", "policy", "set", key, value])).run(),
        };
        out.assert_success();
    }

    /// The policy the test's accounts follow as `--json` shows it, the administrator's way
    /// for the backend (`mfa admin policy show` or `mfa admin fleet policy show`).
    pub fn policy_json(&self) -> Value {
        let out = match &self.fleet {
            None => self.mfa(&["admin", "policy", "show", "--json"]),
            Some(fleet) => {
                let conn = fleet.postgres().superuser(crate::fleet::DB);
                let args = ["admin", "fleet", "policy", "show", "--json"];
                self.mfa_cmd(&[&args[..], &["--connection", &conn]].concat())
                    .no_link()
                    .run()
            }
        };
        out.assert_success();
        out.json()
    }

    /// How many failed attempts count against `user` now, read from the backend's store.
    pub fn failures(&self, user: &str) -> i64 {
        match &self.fleet {
            None => rusqlite::Connection::open(&self.db)
                .and_then(|db| {
                    db.query_row(
                        "SELECT COALESCE((SELECT failures FROM auth_state WHERE user = ?1), 0)",
                        [user],
                        |r| r.get(0),
                    )
                })
                .expect("read auth_state"),
            Some(fleet) => {
                assert!(
                    user.bytes().all(|b| b.is_ascii_alphanumeric()),
                    "a plain test user name"
                );
                fleet
                    .postgres()
                    .psql(
                        crate::fleet::DB,
                        &format!(
                            "SELECT COALESCE((SELECT failures FROM pam_mfa_fleet.auth_state \
                             WHERE user_name = '{user}'), 0)"
                        ),
                    )
                    .trim()
                    .parse()
                    .expect("a number of failures")
            }
        }
    }

    /// The socket of the test's own `mfad` (started, on the test's store and fake clock,
    /// the first time it is asked for).
    pub fn socket(&self) -> PathBuf {
        self.halted.set(false);
        self.started.set(true);
        let socket = self.dir.path().join("test-mfad.sock");
        let mut daemon = self.mfad.borrow_mut();
        if daemon.is_none() {
            let mut cmd = Command::new(paths::mfad_bin());
            cmd.arg("--db")
                .arg(&self.db)
                .arg("--socket")
                .arg(&socket)
                .args(self.mfad_args.borrow().iter())
                .current_dir(self.root());
            for (k, v) in clock::fake_clock_file_env(&self.clock_file()) {
                cmd.env(k, v);
            }
            let mut run = Running::spawn(cmd, "mfad");
            let ready = run.wait_for("mfad to serve", |_, err| err.contains("serving"));
            assert!(
                ready,
                "mfad did not start:\nstdout:\n{}\nstderr:\n{}",
                run.stdout(),
                run.stderr()
            );
            *daemon = Some(run);
        }
        socket
    }

    /// More arguments for the test's `mfad` (say `--config PATH`), from its next start on.
    pub fn set_mfad_args(&self, args: &[&std::ffi::OsStr]) {
        *self.mfad_args.borrow_mut() = args.iter().map(|a| a.to_os_string()).collect();
    }

    /// What the test's `mfad` wrote on stderr so far (empty if it never started).
    /// Whether the test's `mfad` wrote `needle` on stderr, waiting up to five seconds for
    /// it: the daemon logs before it answers, but the test's reader of its stderr may
    /// not have taken the line in yet when the answer's effects are checked.
    pub fn mfad_logged(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if self.mfad_stderr().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn mfad_stderr(&self) -> String {
        self.mfad
            .borrow()
            .as_ref()
            .map(Running::stderr)
            .unwrap_or_default()
    }

    /// A run at its own time `at` (not the test's clock), or at the real time (`None`),
    /// moves the daemon's clock there for the run; [`TestEnv::restore_clock`] moves it
    /// back after.
    pub(crate) fn clock_for_run(&self, at: Option<i64>) {
        // A daemon stopped by `stop_mfad` is back for the next run, as systemd's socket
        // activation brings it back.
        if self.started.get() && !self.halted.get() && self.mfad.borrow().is_none() {
            self.socket();
        }
        match at {
            Some(at) if at == self.now() => {}
            Some(at) => self.write_clock(at),
            None => self.write_clock_text("+0"),
        }
    }

    pub(crate) fn restore_clock(&self, at: Option<i64>) {
        if at != Some(self.now()) {
            self.write_clock(self.now());
        }
    }

    /// Kills the test's `mfad` (SIGKILL): what a crash looks like to its clients. The next
    /// run starts a new one, as systemd's socket activation would.
    pub fn stop_mfad(&self) {
        if let Some(run) = self.mfad.borrow_mut().take() {
            run.kill();
        }
    }

    /// Kills the test's `mfad` and keeps it down until the test asks for
    /// [`TestEnv::socket`] again: a host whose daemon is not running.
    pub fn halt_mfad(&self) {
        self.halted.set(true);
        self.stop_mfad();
    }

    /// The current time step.
    pub fn step(&self) -> i64 {
        step_of(self.now())
    }

    /// Moves the clock `n` whole steps (negative: back), to the usual offset into the step.
    pub fn advance_steps(&self, n: i64) {
        self.set_now(at_step(self.step() + n));
    }

    /// Moves the clock by `secs` seconds and then to the usual offset into the resulting
    /// step if that is later (so that "after the lock-out of N seconds" is still not near
    /// a step boundary).
    pub fn advance_secs(&self, secs: i64) {
        let t = self.now() + secs;
        self.set_now(t.max(at_step(step_of(t))));
    }

    /// The code of `secret` for the current step (from oathtool).
    pub fn code(&self, secret: &str) -> String {
        clock::totp(secret, self.now())
    }

    /// The code of `secret` for the step `delta` steps from the current one.
    pub fn code_at_step(&self, secret: &str, delta: i64) -> String {
        clock::totp(secret, self.now() + delta * STEP)
    }

    /// Moves the clock forward by whole steps — almost always not at all — until the codes
    /// of `secret` for the steps `steps` (relative to now) are pairwise different.
    ///
    /// Tests about *which step* a code belongs to ("two steps ahead is refused", "these
    /// codes are not consecutive") would be fooled if two of the steps involved happened
    /// to share a code; each code is one in a million, so this is rare but not impossible.
    pub fn ensure_distinct_codes(&self, secret: &str, steps: std::ops::RangeInclusive<i64>) {
        for _ in 0..100 {
            let mut codes: Vec<String> = steps
                .clone()
                .map(|d| self.code_at_step(secret, d))
                .collect();
            let n = codes.len();
            codes.sort();
            codes.dedup();
            if codes.len() == n {
                return;
            }
            self.advance_steps(1);
        }
        panic!("the codes of {steps:?} keep colliding: is oathtool broken?");
    }

    /// The code of the step `delta` steps from now, after [`TestEnv::ensure_distinct_codes`]
    /// over every step from `delta` to the `±window` around now, so the code cannot also
    /// be the code of a step inside the window.
    pub fn distinct_code_at_step(&self, secret: &str, delta: i64, window: i64) -> String {
        self.ensure_distinct_codes(secret, delta.min(-window)..=delta.max(window));
        self.code_at_step(secret, delta)
    }

    // ----- PAM service files -----

    fn write_file_in_pam_dir(&self, name: &str, contents: &str) {
        std::fs::write(self.pam_dir.join(name), contents)
            .unwrap_or_else(|e| panic!("cannot write PAM service file {name}: {e}"));
    }

    /// `<abs path of the module> socket=<the test's mfad> ARGS…`: the module part of a
    /// service line.
    ///
    /// Arguments are written as given; PAM splits them at spaces unless one is wrapped in
    /// brackets (`[prompt=Enter code: ]`).
    pub fn module_spec(&self, args: &[&str]) -> String {
        let mut spec = format!(
            "{} socket={}",
            paths::pam_module().display(),
            self.socket().display()
        );
        for a in args {
            spec.push(' ');
            spec.push_str(a);
        }
        spec
    }

    /// The service-file line `auth CONTROL <module> socket=<socket> ARGS…`.
    pub fn module_line(&self, control: &str, args: &[&str]) -> String {
        format!("auth {control} {}", self.module_spec(args))
    }

    /// Configures the test service as the single line
    /// `auth required <module> socket=<socket> ARGS…`, so `pam_authenticate` returns what
    /// the module returned (except `PAM_IGNORE`: see [`TestEnv::write_service_observing_ignore`]).
    pub fn write_service(&self, args: &[&str]) {
        self.write_service_lines(&[self.module_line("required", args)]);
    }

    /// Configures the test service with arbitrary lines (e.g. [`TestEnv::module_line`]
    /// plus other modules).
    pub fn write_service_lines(&self, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        self.write_file_in_pam_dir(SERVICE, &text);
    }

    /// Writes another service file, `name`, as the single line `auth required <module>
    /// socket=<socket> ARGS…` (a test that logs in at two services uses it with
    /// [`PamRun::service`]).
    pub fn write_named_service(&self, name: &str, args: &[&str]) {
        let line = self.module_line("required", args);
        self.write_file_in_pam_dir(name, &format!("{line}\n"));
    }

    /// Configures the service so a `PAM_IGNORE` from pam_mfa becomes visible as [`IGNORED`]
    /// while success and failures pass through unchanged.
    pub fn write_service_observing_ignore(&self, args: &[&str]) {
        self.write_service_lines(&observing_ignore(&self.module_spec(args)));
    }

    // ----- running pam-client -----

    /// A login attempt for `user` through the test service, at the current fake time.
    pub fn pam(&self, user: &str) -> PamRun<'_> {
        PamRun {
            env: self,
            user: user.to_owned(),
            service: SERVICE.to_owned(),
            answers: Vec::new(),
            rhost: None,
            at: Some(self.now()),
            envs: Vec::new(),
            no_setcred: false,
            real_delay: false,
        }
    }

    /// Shorthand: one login attempt answering the prompt with `code`.
    pub fn login(&self, user: &str, code: &str) -> PamOutcome {
        self.pam(user).answer(code).run()
    }

    // ----- running mfa -----

    /// An `mfa` invocation `mfa --socket <the test's mfad> ARGS…` at the current fake time.
    pub fn mfa_cmd(&self, args: &[&str]) -> MfaRun<'_> {
        MfaRun {
            env: self,
            link: Some(Link::Socket(self.socket().into_os_string())),
            args: args.iter().map(OsString::from).collect(),
            stdin: Vec::new(),
            at: Some(self.now()),
            umask: None,
            envs: Vec::new(),
        }
    }

    /// Runs `mfa --socket <socket> ARGS…` at the current fake time with stdin at end-of-file.
    pub fn mfa(&self, args: &[&str]) -> MfaOutput {
        self.mfa_cmd(args).run()
    }

    /// `mfa admin audit --json` at the current fake time, asserting success: its rows.
    pub fn audit_rows(&self) -> Vec<Value> {
        let out = self.mfa(&["admin", "audit", "--json"]);
        out.assert_success();
        match out.json() {
            Value::Array(rows) => rows,
            other => panic!("audit --json printed {other}"),
        }
    }

    /// The details of the audit rows of `action`, oldest first (`None`: a row without one).
    pub fn audit_details(&self, action: &str) -> Vec<Option<String>> {
        self.audit_rows()
            .iter()
            .filter(|r| r["action"] == action)
            .map(|r| r["detail"].as_str().map(str::to_owned))
            .collect()
    }

    /// `mfa --user USER enroll totp NAME --begin --json EXTRA…`, asserting success, with the
    /// printed JSON taken apart.
    pub fn begin(&self, user: &str, name: &str, extra: &[&str]) -> Enrolled {
        let mut args = vec!["--user", user, "enroll", "totp", name, "--begin", "--json"];
        args.extend_from_slice(extra);
        let out = self.mfa(&args);
        out.assert_success();
        Enrolled::from_begin_json(out.json())
    }

    /// `mfa --user USER enroll finish NAME CODE1 CODE2`.
    pub fn finish(&self, user: &str, name: &str, code1: &str, code2: &str) -> MfaOutput {
        self.mfa(&["--user", user, "enroll", "finish", name, code1, code2])
    }

    /// Registers an active TOTP device: `--begin --json`, then `finish` with the codes of
    /// the previous and the current step (what a user types: the code shown, then the
    /// next one). The current step is thereby used up: the next login should happen at a
    /// later step.
    pub fn enroll(&self, user: &str, name: &str) -> Enrolled {
        let dev = self.begin(user, name, &[]);
        let c1 = self.code_at_step(&dev.secret, -1);
        let c2 = self.code(&dev.secret);
        self.finish(user, name, &c1, &c2).assert_success();
        dev
    }

    /// `mfa --user USER list --json`, parsed.
    pub fn list(&self, user: &str) -> Vec<Value> {
        let out = self.mfa(&["--user", user, "list", "--json"]);
        out.assert_success();
        match out.json() {
            Value::Array(items) => items,
            other => panic!("`list --json` printed {other}, not an array"),
        }
    }

    /// The device named `name` in `list --json`, if listed.
    pub fn listed(&self, user: &str, name: &str) -> Option<Value> {
        self.list(user)
            .into_iter()
            .find(|d| d.get("name").and_then(Value::as_str) == Some(name))
    }

    /// The names of the user's devices in state `state` ("active" / "pending").
    pub fn names_in_state(&self, user: &str, state: &str) -> Vec<String> {
        self.list(user)
            .iter()
            .filter(|d| d.get("state").and_then(Value::as_str) == Some(state))
            .filter_map(|d| d.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// Spawns `mfa --socket <socket> ARGS…` at the current fake time with piped stdin, for
    /// interactive use (read its output, then type into it).
    pub fn spawn_mfa(&self, args: &[&str]) -> Running {
        self.mfa_cmd(args).spawn()
    }
}

/// The service lines that make a `PAM_IGNORE` of a module visible as [`IGNORED`]:
/// success ends the stack with success, any failure ends it with that failure, and only
/// "ignore" reaches `pam_debug.so auth=cred_insufficient`. `module` is the module path and
/// its arguments, as they follow the control field of an `auth` line.
pub fn observing_ignore(module: &str) -> Vec<String> {
    vec![
        format!("auth [success=done ignore=ignore default=die] {module}"),
        format!(
            "auth requisite {} auth=cred_insufficient",
            paths::system_pam_module("pam_debug.so").display()
        ),
    ]
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Sets the environment that makes a child run at fake time `at`, keeping `preload` loaded.
pub(crate) fn apply_fake_time(cmd: &mut Command, at: Option<i64>, preload: &[&Path]) {
    match at {
        Some(at) => {
            for (k, v) in clock::fake_time_env(at, preload) {
                cmd.env(k, v);
            }
        }
        None => {
            let mut ld = OsString::new();
            for (i, p) in preload.iter().enumerate() {
                if i > 0 {
                    ld.push(":");
                }
                ld.push(p.as_os_str());
            }
            if preload.is_empty() {
                cmd.env_remove("LD_PRELOAD");
            } else {
                cmd.env("LD_PRELOAD", ld);
            }
        }
    }
}

/// Applies a test's environment changes to a child's command.
pub(crate) fn apply_envs(cmd: &mut Command, envs: &[(OsString, Option<OsString>)]) {
    for (name, value) in envs {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
}

use crate::mfa_run::Link;
pub use crate::mfa_run::{Enrolled, MfaOutput, MfaRun};
pub use crate::pam_run::{PamMessage, PamOutcome, PamRun, race};
