//! `mfa doctor`: a read-only check of everything pam_mfa depends on, for the administrator
//! to run before and after enabling the module.
//!
//! Most lock-outs and silent bypasses are not bugs in the module but a store with the
//! wrong modes, a typo in `/etc/pam.d`, an sshd that never reaches PAM, or a `required`
//! line for users who have no device yet. Each check prints one line, `ok`, `warning` or
//! `problem`, with the fix for anything not ok; the exit status is 1 when there is a
//! problem. Every judgement the module itself makes (the store's safety and schema, the
//! module arguments) is made by the library's own code, so the doctor cannot disagree
//! with a login.
//!
//! `--root DIR` checks the configuration under DIR instead of `/`, so a configuration can
//! be checked before it is installed (and the tests can break one on purpose). The clock
//! is always the running system's.

mod clock;
mod command;
mod daemon;
mod fleet;
mod pam;
mod pam_flow;
mod pam_syntax;
mod remembered;
mod sshd;
mod sshd_config;
mod store;
mod users;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::unistd::getuid;
use pam_mfa::store::DEFAULT_PATH;
use serde::Serialize;

use crate::CliError;
use crate::cli::Doctor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Problem,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Problem => "problem",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
    /// What to do about it; `None` when the status is ok.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warning(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check,
            status: Status::Warning,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn problem(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check,
            status: Status::Problem,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The file system being checked: `/`, or the directory given with `--root`.
pub struct Root {
    dir: PathBuf,
}

impl Root {
    fn new(dir: Option<&Path>) -> Result<Self, CliError> {
        let Some(dir) = dir else {
            return Ok(Self {
                dir: PathBuf::from("/"),
            });
        };
        if !dir.is_dir() {
            return Err(CliError::msg(format!(
                "--root {}: not a directory",
                dir.display()
            )));
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Whether this is the running system, whose programs (`sshd -T`) may be asked.
    pub fn is_system(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// Where `abs`, an absolute path on the checked system, is.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.dir.join(abs.strip_prefix("/").unwrap_or(abs))
    }
}

pub fn run(
    db: Option<PathBuf>,
    socket: Option<PathBuf>,
    user: Option<&str>,
    args: &Doctor,
) -> Result<ExitCode, CliError> {
    if !getuid().is_root() {
        return Err(CliError::msg(
            "doctor must be run as root: it reads the device store, which only root can, \
             and the system's PAM and sshd configuration",
        ));
    }
    if user.is_some() {
        return Err(CliError::msg(
            "doctor checks every user at once; --user does not apply to it",
        ));
    }
    let root = Root::new(args.root.as_deref())?;
    // The running daemon is the running system's: asked for `/`, or when named. Without
    // `--db`, the store checked on the running system is the one it serves; under
    // `--root`, the system's under DIR.
    let greeting = (root.is_system() || socket.is_some()).then(|| {
        daemon::Greeting::ask(&socket.unwrap_or_else(|| PathBuf::from(mfad::DEFAULT_SOCKET)))
    });
    let served = greeting
        .as_ref()
        .filter(|_| root.is_system())
        .and_then(daemon::Greeting::served_store);
    let default_store = db.or(served).unwrap_or_else(|| root.path(DEFAULT_PATH));

    let pam = pam::scan(&root);
    let stores = store::check(&default_store, &root, &pam.lines);
    let mut findings = stores.findings.clone();
    findings.push(clock::check());
    findings.extend(pam.findings.iter().cloned());
    findings.extend(sshd::check(&root, &pam.lines));
    findings.extend(remembered::check(&root, &default_store, &pam.lines));
    findings.extend(users::check(&root, &pam.lines, &stores));
    if let Some(greeting) = &greeting {
        let systemd_runs = crate::daemon::systemd_runs();
        findings.extend(daemon::check(greeting, &default_store, systemd_runs));
        findings.extend(daemon::units(&root, systemd_runs));
    }
    findings.extend(daemon::obsolete_db_arguments(&pam.lines));
    findings.extend(fleet::check(&root));

    print(&findings, args.json)?;
    Ok(if findings.iter().any(|f| f.status == Status::Problem) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print(findings: &[Finding], json: bool) -> Result<(), CliError> {
    let text = if json {
        let mut s = serde_json::to_string_pretty(findings)
            .map_err(|e| CliError::msg(format!("cannot write JSON: {e}")))?;
        s.push('\n');
        s
    } else {
        render(findings)
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| CliError::msg(format!("cannot write the report: {e}")))
}

/// `STATUS   CHECK: MESSAGE`, the fix indented below, and a count at the end.
fn render(findings: &[Finding]) -> String {
    const INDENT: &str = "         ";
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{:<9}{}: {}\n",
            f.status.as_str(),
            f.check,
            f.message
        ));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("{INDENT}fix: {fix}\n"));
        }
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.push_str(&format!(
        "\n{}, {}.\n",
        plural(count(Status::Problem), "problem"),
        plural(count(Status::Warning), "warning")
    ));
    out
}

/// `a, b and 3 more`: names in a message, without letting a long list drown it.
pub fn name_list(names: &[String], max: usize) -> String {
    let shown: Vec<&str> = names.iter().take(max).map(String::as_str).collect();
    let mut s = shown.join(", ");
    if names.len() > max {
        s.push_str(&format!(" and {} more", names.len() - max));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_absolute_paths() {
        let sys = Root::new(None).unwrap();
        assert!(sys.is_system());
        assert_eq!(sys.path("/etc/pam.d"), Path::new("/etc/pam.d"));
        let dir = tempfile::tempdir().unwrap();
        let r = Root::new(Some(dir.path())).unwrap();
        assert!(!r.is_system());
        assert_eq!(r.path("/etc/pam.d/sshd"), dir.path().join("etc/pam.d/sshd"));
        assert!(Root::new(Some(&dir.path().join("missing"))).is_err());
    }

    #[test]
    fn report_text() {
        let text = render(&[
            Finding::ok("store", "fine"),
            Finding::problem("pam", "broken", "mend it"),
        ]);
        assert_eq!(
            text,
            "ok       store: fine\nproblem  pam: broken\n         fix: mend it\n\n\
             1 problem, 0 warnings.\n"
        );
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(name_list(&names, 2), "a, b and 1 more");
        assert_eq!(name_list(&names, 3), "a, b, c");
    }
}
