//! Running the real `mfa` of a test ([`MfaRun`], [`MfaOutput`]), and the devices it
//! registers ([`Enrolled`]).

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::env::{TestEnv, apply_envs, apply_fake_time};
use crate::paths;
use crate::process::{self, Finished, Running};
use crate::uri::OtpauthUri;
use std::os::unix::process::CommandExt;

/// An `mfa` invocation; see [`TestEnv::mfa_cmd`].
/// How an `mfa` run reaches the store.
#[derive(Clone)]
pub(crate) enum Link {
    /// `--socket PATH`: through an `mfad`.
    Socket(OsString),
    /// `--db PATH`: directly (root only).
    Db(OsString),
}

pub struct MfaRun<'a> {
    pub(crate) env: &'a TestEnv,
    pub(crate) link: Option<Link>,
    pub(crate) args: Vec<OsString>,
    pub(crate) stdin: Vec<u8>,
    pub(crate) at: Option<i64>,
    pub(crate) umask: Option<libc::mode_t>,
    /// Environment changes: `(name, Some(value))` sets, `None` removes.
    pub(crate) envs: Vec<(OsString, Option<OsString>)>,
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
