//! One test's private world: a store, a PAM service directory, a fake clock, and ways to
//! run `pam-client` (through the real libpam under pam_wrapper) and `mfa` against them.

use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::clock::{self, BASE_STEP, STEP, at_step, step_of};
use crate::paths;
use crate::process::{self, Finished, Running};
use crate::uri::OtpauthUri;

/// The PAM service name the tests configure (the file `<tmp>/pam.d/mfatest`).
pub const SERVICE: &str = "mfatest";

/// What `pam_authenticate` returns, with the stack [`TestEnv::write_service_observing_ignore`]
/// writes, when pam_mfa returned `PAM_IGNORE`.
///
/// libpam never hands `PAM_IGNORE` to the application: a stack in which every module was
/// ignored fails with `PAM_PERM_DENIED`. So that stack follows pam_mfa with
/// `pam_debug.so auth=cred_insufficient`, reached only when pam_mfa is ignored, and this
/// otherwise impossible result is how a test sees that pam_mfa said "ignore me".
pub const IGNORED: &str = "PAM_CRED_INSUFFICIENT";

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
}

impl TestEnv {
    /// A fresh environment (requires root).
    pub fn new() -> Self {
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
        let env = Self {
            db: store.join("devices.db"),
            store,
            pam_dir,
            dir,
            now: Cell::new(at_step(BASE_STEP)),
            mfad: RefCell::new(None),
            halted: Cell::new(false),
            started: Cell::new(false),
        };
        env.write_clock(env.now());
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

    /// What the test's `mfad` wrote on stderr so far (empty if it never started).
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
    fn clock_for_run(&self, at: Option<i64>) {
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

    fn restore_clock(&self, at: Option<i64>) {
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
fn apply_fake_time(cmd: &mut Command, at: Option<i64>, preload: &[&Path]) {
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
fn apply_envs(cmd: &mut Command, envs: &[(OsString, Option<OsString>)]) {
    for (name, value) in envs {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
}

/// One attempt to authenticate through `pam-client`; see [`TestEnv::pam`].
#[derive(Clone)]
pub struct PamRun<'a> {
    env: &'a TestEnv,
    user: String,
    service: String,
    answers: Vec<Answer>,
    rhost: Option<String>,
    at: Option<i64>,
    /// Environment changes for the client: `(name, Some(value))` sets, `None` removes.
    envs: Vec<(OsString, Option<OsString>)>,
    /// Stop after `pam_authenticate` (pam-client `--no-setcred`).
    no_setcred: bool,
    /// Let libpam sleep after a failure (pam-client `--real-delay`).
    real_delay: bool,
}

#[derive(Clone)]
enum Answer {
    Text(String),
    File(PathBuf),
    /// A NULL response to the prompt.
    Null,
}

impl PamRun<'_> {
    /// Adds an answer for the next prompt.
    pub fn answer(mut self, text: &str) -> Self {
        self.answers.push(Answer::Text(text.to_owned()));
        self
    }

    /// Answers the next prompt with a NULL response (no answer at all), as a broken or
    /// hostile application may.
    pub fn answer_null(mut self) -> Self {
        self.answers.push(Answer::Null);
        self
    }

    /// Adds an answer read whole from a file (for answers too big for the command line).
    pub fn answer_file(mut self, path: &Path) -> Self {
        self.answers.push(Answer::File(path.to_owned()));
        self
    }

    /// Sets `PAM_RHOST`.
    pub fn rhost(mut self, host: &str) -> Self {
        self.rhost = Some(host.to_owned());
        self
    }

    /// Uses another service name (a service file the test wrote itself).
    pub fn service(mut self, name: &str) -> Self {
        self.service = name.to_owned();
        self
    }

    /// Runs at fake time `at` instead of the environment's clock.
    pub fn at(mut self, at: i64) -> Self {
        self.at = Some(at);
        self
    }

    /// Runs with the real clock.
    pub fn real_time(mut self) -> Self {
        self.at = None;
        self
    }

    /// Sets an environment variable for the client (and so for the module inside it).
    pub fn env(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.envs.push((name.into(), Some(value.into())));
        self
    }

    /// Stops after `pam_authenticate`, never calling `pam_setcred` (which pam-client
    /// otherwise calls after a success, as real applications do).
    pub fn no_setcred(mut self) -> Self {
        self.no_setcred = true;
        self
    }

    /// Lets libpam really sleep after a failed `pam_authenticate`, as it does in sshd or
    /// sudo (pam-client otherwise reports the delay instead: [`PamOutcome::fail_delay_micros`]).
    pub fn real_delay(mut self) -> Self {
        self.real_delay = true;
        self
    }

    /// Removes an environment variable the test process has from the client's.
    pub fn env_remove(mut self, name: &str) -> Self {
        self.envs.push((name.into(), None));
        self
    }

    fn command(&self, wait_stdin: bool) -> Command {
        let mut cmd = Command::new(paths::pam_client_bin());
        cmd.arg("--service")
            .arg(&self.service)
            .arg("--user")
            .arg(&self.user);
        if let Some(h) = &self.rhost {
            cmd.arg("--rhost").arg(h);
        }
        for a in &self.answers {
            match a {
                Answer::Text(t) => cmd.arg("--answer").arg(t),
                Answer::File(p) => cmd.arg("--answer-file").arg(p),
                Answer::Null => cmd.arg("--answer-null"),
            };
        }
        if wait_stdin {
            cmd.arg("--wait-stdin");
        }
        if self.no_setcred {
            cmd.arg("--no-setcred");
        }
        if self.real_delay {
            cmd.arg("--real-delay");
        }
        let wrapper = paths::pam_wrapper_lib();
        apply_fake_time(&mut cmd, self.at, &[&wrapper]);
        // At debug level 2 pam_wrapper echoes every pam_syslog call of the stack to
        // stderr as `SYSLOG(priority): message` (all but LOG_DEBUG), which is how tests
        // read what the module logs without touching the machine's syslog.
        cmd.env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_DEBUGLEVEL", "2")
            .env("PAM_WRAPPER_SERVICE_DIR", self.env.pam_dir())
            .current_dir(self.env.root());
        apply_envs(&mut cmd, &self.envs);
        cmd
    }

    fn describe(&self) -> String {
        format!("pam-client for user {} at {:?}", self.user, self.at)
    }

    /// Runs the attempt to completion.
    pub fn run(&self) -> PamOutcome {
        let mut child = self.start(false);
        child.close_stdin();
        let outcome = PamOutcome::from_finished(child.wait());
        self.env.restore_clock(self.at);
        outcome
    }

    /// Starts pam-client, one at a time across the whole test run (see [`StartupLock`]).
    fn start(&self, wait_stdin: bool) -> Running {
        self.env.clock_for_run(self.at);
        let _lock = StartupLock::acquire();
        let mut child = Running::spawn(self.command(wait_stdin), self.describe());
        // Once main runs, pam_wrapper has claimed its directory; if the client died before
        // that, its output explains why when the caller looks at the outcome.
        child.wait_for("pam-client to start", |_, err| err.contains(STARTED_MARK));
        child
    }

    /// Starts the attempt with `--wait-stdin`: the client loads the PAM stack, says it is
    /// ready and then waits for its stdin to close before calling `pam_authenticate`.
    /// See [`race`].
    pub fn spawn_waiting(&self) -> Running {
        self.start(true)
    }

    /// Starts the attempt with `--answers-stdin`: after the answers given to this run,
    /// each prompt is answered with the next line the test writes to the client's stdin,
    /// so later answers can depend on what the module said before (its messages appear
    /// on the client's stdout as they come).
    pub fn spawn_interactive(&self) -> Running {
        self.env.clock_for_run(self.at);
        let _lock = StartupLock::acquire();
        let mut cmd = self.command(false);
        cmd.arg("--answers-stdin");
        let mut child = Running::spawn(cmd, format!("{} (interactive)", self.describe()));
        child.wait_for("pam-client to start", |_, err| err.contains(STARTED_MARK));
        child
    }

    /// Starts a long-lived client in `--script` mode: it does one login per stdin line
    /// `UNIXTIME ANSWER`, each with the clock standing at UNIXTIME, and prints
    /// `login: RESULT` for each (see pam-client). Answers given to this run are not used.
    pub fn spawn_script(&self) -> Running {
        self.env.clock_for_run(self.at);
        let _lock = StartupLock::acquire();
        let mut cmd = self.command(false);
        cmd.arg("--script").env("FAKETIME_NO_CACHE", "1");
        let mut child = Running::spawn(cmd, format!("{} (script)", self.describe()));
        child.wait_for("pam-client to start", |_, err| err.contains(STARTED_MARK));
        child
    }
}

/// What pam-client prints on stderr as soon as its `main` runs.
const STARTED_MARK: &str = "pam-client: started";

/// What pam-client prints on stderr once it waits for stdin to close (`--wait-stdin`).
const READY_MARK: &str = "pam-client: waiting for stdin to close";

/// Where pam-client starts are serialised across processes (pam_wrapper itself
/// hard-codes `/tmp`, so this lock lives there too).
const STARTUP_LOCK_PATH: &str = "/tmp/pam_mfa_tests-pam_wrapper.lock";

/// Serialises the start of pam-client processes, in this process and across processes.
///
/// pam_wrapper (1.1.x) claims a private directory `/tmp/pam.<one letter>` in a library
/// constructor by `lstat` then `mkdir`, without `O_EXCL`-style exclusion: two processes
/// starting at the same instant can pick the same directory and read each other's
/// service files (another test's `db=`!) or lose them when the other exits. Holding this
/// lock from `spawn` until the child's `main` runs (its constructors are done) makes every
/// claim see the directories claimed before it.
struct StartupLock {
    _local: std::sync::MutexGuard<'static, ()>,
    _file: std::fs::File,
}

impl StartupLock {
    fn acquire() -> Self {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;

        static LOCAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        // A panicking test thread poisons the mutex; the lock itself is still sound.
        let local = LOCAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(STARTUP_LOCK_PATH)
            .unwrap_or_else(|e| panic!("cannot open {STARTUP_LOCK_PATH}: {e}"));
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            assert!(
                err.kind() == std::io::ErrorKind::Interrupted,
                "cannot lock {STARTUP_LOCK_PATH}: {err}"
            );
        }
        // The lock is released when the file is closed (on drop).
        Self {
            _local: local,
            _file: file,
        }
    }
}

/// Runs all attempts at once: starts every client, waits until each has loaded the PAM
/// stack, then releases them together and collects the outcomes (in the same order).
pub fn race(runs: &[PamRun<'_>]) -> Vec<PamOutcome> {
    let mut children: Vec<Running> = runs.iter().map(PamRun::spawn_waiting).collect();
    for child in &mut children {
        let ready = child.wait_for("the client to be ready", |_, err| err.contains(READY_MARK));
        assert!(
            ready,
            "a pam-client exited before reaching its start barrier\nstdout:\n{}\nstderr:\n{}",
            child.stdout(),
            child.stderr()
        );
    }
    for child in &mut children {
        child.close_stdin();
    }
    children
        .into_iter()
        .map(|c| PamOutcome::from_finished(c.wait()))
        .collect()
}

/// One message the module sent through the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamMessage {
    /// "prompt-echo-off", "prompt-echo-on", "error", "info" (or "unknown-style-N").
    pub kind: String,
    /// The text, unescaped.
    pub text: String,
}

impl PamMessage {
    /// Whether this message asked for an answer.
    pub fn is_prompt(&self) -> bool {
        self.kind.starts_with("prompt-")
    }
}

/// Reverses pam-client's escaping of message text.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('u') => {
                let hex: String = chars
                    .by_ref()
                    .skip_while(|&c| c == '{')
                    .take_while(|&c| c != '}')
                    .collect();
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                out.push(c);
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The outcome of one `pam-client` run.
#[derive(Debug, Clone)]
pub struct PamOutcome {
    /// The symbolic result (`PAM_SUCCESS`, `PAM_AUTH_ERR`, …, or the number).
    pub result: String,
    /// The exit code (the numeric PAM result).
    pub code: i32,
    /// The conversation, in order.
    pub messages: Vec<PamMessage>,
    /// Everything pam-client printed on stdout.
    pub stdout: String,
    /// Everything on stderr (pam_wrapper's log lines included).
    pub stderr: String,
    /// What `pam_setcred(PAM_ESTABLISH_CRED)` returned, when pam-client called it (after
    /// a successful authentication, unless [`PamRun::no_setcred`]).
    pub setcred: Option<String>,
}

impl PamOutcome {
    /// The delay libpam computed after `pam_authenticate` and handed to pam-client's
    /// `PAM_FAIL_DELAY` callback instead of sleeping, in microseconds: 0 when no module
    /// asked for one, or when libpam called no callback (`PamRun::real_delay`). libpam
    /// scatters what the modules asked for by up to half either way.
    pub fn fail_delay_micros(&self) -> u64 {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("pam-client: fail delay of "))
            .filter_map(|rest| rest.split_once(" us")?.0.parse().ok())
            .next_back()
            .unwrap_or(0)
    }

    /// Parses pam-client's output; panics (a harness failure, e.g. the module crashed the
    /// process) if there is no `result:` line.
    pub fn from_finished(f: Finished) -> Self {
        let mut messages = Vec::new();
        let mut result = None;
        let mut setcred = None;
        for line in f.stdout.lines() {
            if let Some(r) = line.strip_prefix("result: ") {
                result = Some(r.to_owned());
            } else if let Some(r) = line.strip_prefix("setcred: ") {
                setcred = Some(r.to_owned());
            } else if let Some((kind, text)) = line.split_once(": ") {
                messages.push(PamMessage {
                    kind: kind.to_owned(),
                    text: unescape(text),
                });
            } else if let Some(kind) = line.strip_suffix(':') {
                messages.push(PamMessage {
                    kind: kind.to_owned(),
                    text: String::new(),
                });
            }
        }
        let Some(result) = result else {
            panic!(
                "pam-client printed no result (crashed, killed, or could not start PAM?): {}\n\
                 stdout:\n{}\nstderr:\n{}",
                f.status, f.stdout, f.stderr
            );
        };
        let code = f.status.code().unwrap_or(-1);
        Self {
            result,
            code,
            messages,
            stdout: f.stdout,
            stderr: f.stderr,
            setcred,
        }
    }

    /// The prompts, in order.
    pub fn prompts(&self) -> Vec<&PamMessage> {
        self.messages.iter().filter(|m| m.is_prompt()).collect()
    }

    /// The texts of `error` messages.
    pub fn errors(&self) -> Vec<&str> {
        self.texts("error")
    }

    /// The texts of `info` messages.
    pub fn infos(&self) -> Vec<&str> {
        self.texts("info")
    }

    fn texts(&self, kind: &str) -> Vec<&str> {
        self.messages
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.text.as_str())
            .collect()
    }

    /// The module's syslog lines as `(priority, message)`, captured through pam_wrapper
    /// (libpam's own complaint about the missing `other` service file is left out).
    pub fn syslog(&self) -> Vec<(u8, String)> {
        self.stderr
            .lines()
            .filter_map(|line| {
                let rest = &line[line.find("SYSLOG(")? + "SYSLOG(".len()..];
                let (prio, msg) = rest.split_once("): ")?;
                Some((prio.parse().ok()?, msg.to_owned()))
            })
            .filter(|(_, m)| !m.starts_with("_pam_init_handlers"))
            .collect()
    }

    /// Panics unless exactly one syslog line contains every one of `needles`; returns it.
    pub fn assert_logged(&self, needles: &[&str]) -> String {
        let hits: Vec<String> = self
            .syslog()
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| needles.iter().all(|n| m.contains(n)))
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "expected one syslog line with {needles:?}; the module logged: {:#?}",
            self.syslog()
        );
        hits.into_iter().next().unwrap_or_default()
    }

    /// Panics if anything but pam_wrapper and pam-client wrote to stderr: the module
    /// itself must never print (a panic message, a stray eprintln) in its host.
    pub fn assert_module_silent(&self) {
        for line in self.stderr.lines() {
            assert!(
                line.starts_with("PWRAP_") || line.starts_with("pam-client: ") || line.is_empty(),
                "unexpected stderr output from the PAM stack: {line:?}\nfull stderr:\n{}",
                self.stderr
            );
        }
    }

    /// How many threads the client had after `pam_end` (the module must leave none).
    pub fn threads_after_end(&self) -> Option<usize> {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("pam-client: threads after pam_end "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Whether the result is `PAM_SUCCESS`.
    pub fn succeeded(&self) -> bool {
        self.result == "PAM_SUCCESS"
    }

    /// The whole run, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "result {} (exit {})\nstdout:\n{}stderr:\n{}",
            self.result, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the result is `expected` (e.g. "PAM_AUTH_ERR"), showing the run otherwise.
    #[track_caller]
    pub fn assert_result(&self, expected: &str) -> &Self {
        assert_eq!(
            self.result,
            expected,
            "expected {expected}, got {}\n{}",
            self.result,
            self.transcript()
        );
        self
    }

    /// Asserts a refusal because codes are locked out: an ordinary `PAM_AUTH_ERR` (see
    /// pam_mfa(8): not `PAM_MAXTRIES`, which makes sshd withdraw the method) with the
    /// lock-out's log line, so it cannot pass for a wrong code.
    #[track_caller]
    pub fn assert_locked_out(&self) -> &Self {
        self.assert_result("PAM_AUTH_ERR");
        self.assert_logged(&["refused: locked out until"]);
        self
    }

    /// Asserts success.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_result("PAM_SUCCESS")
    }

    /// Asserts the module returned `PAM_IGNORE` (requires a service written with
    /// [`TestEnv::write_service_observing_ignore`]).
    #[track_caller]
    pub fn assert_ignored(&self) -> &Self {
        self.assert_result(IGNORED)
    }

    /// Asserts exactly one prompt was shown, with this text and echo mode.
    #[track_caller]
    pub fn assert_prompted(&self, text: &str, echo: bool) -> &Self {
        let prompts = self.prompts();
        let kind = if echo {
            "prompt-echo-on"
        } else {
            "prompt-echo-off"
        };
        assert!(
            prompts.len() == 1 && prompts[0].kind == kind && prompts[0].text == text,
            "expected exactly one {kind} prompt {text:?}, got {prompts:?}\n{}",
            self.transcript()
        );
        self
    }

    /// Asserts no prompt was shown.
    #[track_caller]
    pub fn assert_not_prompted(&self) -> &Self {
        assert!(
            self.prompts().is_empty(),
            "expected no prompt\n{}",
            self.transcript()
        );
        self
    }
}

/// An `mfa` invocation; see [`TestEnv::mfa_cmd`].
/// How an `mfa` run reaches the store.
#[derive(Clone)]
enum Link {
    /// `--socket PATH`: through an `mfad`.
    Socket(OsString),
    /// `--db PATH`: directly (root only).
    Db(OsString),
}

pub struct MfaRun<'a> {
    env: &'a TestEnv,
    link: Option<Link>,
    args: Vec<OsString>,
    stdin: Vec<u8>,
    at: Option<i64>,
    umask: Option<libc::mode_t>,
    /// Environment changes: `(name, Some(value))` sets, `None` removes.
    envs: Vec<(OsString, Option<OsString>)>,
}

impl MfaRun<'_> {
    /// Sends `input` on stdin (a pipe, never a terminal).
    pub fn stdin(mut self, input: &str) -> Self {
        self.stdin = input.as_bytes().to_vec();
        self
    }

    /// Runs at fake time `at` instead of the environment's clock.
    pub fn at(mut self, at: i64) -> Self {
        self.at = Some(at);
        self
    }

    /// Runs with the real clock.
    pub fn real_time(mut self) -> Self {
        self.at = None;
        self
    }

    /// Passes `--db PATH` (the store file directly, without a daemon; root only) instead
    /// of the test's daemon.
    pub fn db(mut self, path: &Path) -> Self {
        self.link = Some(Link::Db(path.as_os_str().to_owned()));
        self
    }

    /// Passes `--socket PATH`: another daemon than the test's own.
    pub fn socket_path(mut self, path: &Path) -> Self {
        self.link = Some(Link::Socket(path.as_os_str().to_owned()));
        self
    }

    /// Passes neither `--socket` nor `--db` (the defaults).
    pub fn no_link(mut self) -> Self {
        self.link = None;
        self
    }

    /// Sets an environment variable for `mfa`.
    pub fn env(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.envs.push((name.into(), Some(value.into())));
        self
    }

    /// Runs with this umask (e.g. 0 to check that the product sets modes itself).
    pub fn umask(mut self, mask: libc::mode_t) -> Self {
        self.umask = Some(mask);
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(paths::mfa_bin());
        match &self.link {
            Some(Link::Socket(path)) => {
                cmd.arg("--socket").arg(path);
            }
            Some(Link::Db(path)) => {
                cmd.arg("--db").arg(path);
            }
            None => {}
        }
        cmd.args(&self.args);
        apply_fake_time(&mut cmd, self.at, &[]);
        cmd.current_dir(self.env.root());
        apply_envs(&mut cmd, &self.envs);
        if let Some(mask) = self.umask {
            // SAFETY: umask is async-signal-safe and touches no memory of the parent; it
            // runs in the forked child just before exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask);
                    Ok(())
                });
            }
        }
        cmd
    }

    fn describe(&self) -> String {
        format!("mfa {:?} at {:?}", self.args, self.at)
    }

    /// Runs to completion.
    pub fn run(self) -> MfaOutput {
        let what = self.describe();
        self.env.clock_for_run(self.at);
        let f = process::run(self.command(), what.clone(), self.stdin.clone());
        self.env.restore_clock(self.at);
        MfaOutput {
            what,
            code: f.status.code(),
            stdout: f.stdout,
            stderr: f.stderr,
        }
    }

    /// Starts it with piped stdin for interactive use.
    pub fn spawn(self) -> Running {
        self.env.clock_for_run(self.at);
        Running::spawn(self.command(), self.describe())
    }
}

/// How an `mfa` run ended.
#[derive(Debug, Clone)]
pub struct MfaOutput {
    /// The command, for assertion messages.
    pub what: String,
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl MfaOutput {
    /// Builds one from a finished interactive run.
    pub fn from_finished(what: &str, f: Finished) -> Self {
        Self {
            what: what.to_owned(),
            code: f.status.code(),
            stdout: f.stdout,
            stderr: f.stderr,
        }
    }

    fn show(&self) -> String {
        format!(
            "{} exited with {:?}\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts exit 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "expected success\n{}", self.show());
        self
    }

    /// Asserts exit code `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n{}",
            self.show()
        );
        self
    }

    /// Asserts the contract's error form: exit 1 and exactly one stderr line starting
    /// with `mfa: ` that contains every one of `needles` (case-insensitive).
    #[track_caller]
    pub fn assert_error(&self, needles: &[&str]) -> &Self {
        self.assert_exit(1);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("mfa: "),
            "expected one `mfa: …` line on stderr\n{}",
            self.show()
        );
        let lower = lines[0].to_lowercase();
        for n in needles {
            assert!(
                lower.contains(&n.to_lowercase()),
                "expected the error to mention {n:?}\n{}",
                self.show()
            );
        }
        self
    }

    /// Asserts failure (any non-zero exit, not a crash) with something on stderr.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0) && !self.stderr.trim().is_empty(),
            "expected a failure with a message\n{}",
            self.show()
        );
        self
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.show()))
    }
}

/// A device as `enroll totp --begin --json` described it.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The friendly name.
    pub name: String,
    /// The base32 secret.
    pub secret: String,
    /// The otpauth URI.
    pub uri: String,
    /// The whole JSON object.
    pub json: Value,
}

impl Enrolled {
    /// Takes the `--begin --json` output apart, checking the fields every caller needs.
    #[track_caller]
    pub fn from_begin_json(json: Value) -> Self {
        let field = |k: &str| {
            json.get(k)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("`--begin --json` output lacks string {k:?}: {json}"))
                .to_owned()
        };
        Self {
            name: field("name"),
            secret: field("secret"),
            uri: field("uri"),
            json: json.clone(),
        }
    }

    /// The URI taken apart.
    #[track_caller]
    pub fn parsed_uri(&self) -> OtpauthUri {
        OtpauthUri::parse(&self.uri).unwrap_or_else(|e| panic!("{e}"))
    }
}
