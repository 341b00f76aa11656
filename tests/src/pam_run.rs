//! Logging in through `pam-client` (the real libpam under pam_wrapper): one attempt
//! ([`PamRun`]), its outcome ([`PamOutcome`]), and attempts that race ([`race`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::IGNORED;
use crate::env::{TestEnv, apply_envs, apply_fake_time};
use crate::pam_code::PamCode;
use crate::paths;
use crate::process::{Finished, Running};

/// One attempt to authenticate through `pam-client`; see [`TestEnv::pam`].
#[derive(Clone)]
pub struct PamRun<'a> {
    pub(crate) env: &'a TestEnv,
    pub(crate) user: String,
    pub(crate) service: String,
    pub(crate) answers: Vec<Answer>,
    pub(crate) rhost: Option<String>,
    pub(crate) at: Option<i64>,
    /// Environment changes for the client: `(name, Some(value))` sets, `None` removes.
    pub(crate) envs: Vec<(OsString, Option<OsString>)>,
    /// Stop after `pam_authenticate` (pam-client `--no-setcred`).
    pub(crate) no_setcred: bool,
    /// Let libpam sleep after a failure (pam-client `--real-delay`).
    pub(crate) real_delay: bool,
}

#[derive(Clone)]
pub(crate) enum Answer {
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
    /// What `pam_authenticate` returned.
    pub result: PamCode,
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
                result = PamCode::from_name(r);
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
        self.result == PamCode::Success
    }

    /// The whole run, for assertion messages.
    /// How long the login took in pam-client, from `pam_start` (or the end of its
    /// barrier) to the return of `pam_end`; `None` if it did not get that far.
    pub fn login_took(&self) -> Option<std::time::Duration> {
        self.stderr.lines().find_map(|line| {
            let micros = line
                .strip_prefix("pam-client: login took ")?
                .strip_suffix(" us")?;
            micros.parse().ok().map(std::time::Duration::from_micros)
        })
    }

    pub fn transcript(&self) -> String {
        format!(
            "result {} (exit {})\nstdout:\n{}stderr:\n{}",
            self.result, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the result is `expected`, showing the run otherwise.
    #[track_caller]
    pub fn assert_result(&self, expected: PamCode) -> &Self {
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
        self.assert_result(PamCode::AuthErr);
        self.assert_logged(&["refused: locked out until"]);
        self
    }

    /// Asserts success.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_result(PamCode::Success)
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
