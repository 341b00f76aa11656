//! The daemon: `mfa`, the module and every login reach the store only through `mfad`, so
//! the doctor asks whether it answers on its socket in this protocol's version, and which
//! store it serves (its greeting says), to say whether that is the store this report
//! checked. And a `db=` module argument,
//! which the module no longer reads, is pointed out for removal.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pam_mfa_protocol::{PROTOCOL_VERSION, Request, Response};

use super::Finding;
use super::pam::MfaLine;

const CHECK: &str = "daemon";

/// How long the daemon may take to answer `Hello`.
const HELLO_DEADLINE: Duration = Duration::from_secs(5);

/// What mfad at a socket answered to `Hello`, asked once: the report checks the store it
/// names (when no `--db` was given) and then judges the answer.
pub struct Greeting {
    socket: PathBuf,
    answer: Result<Response, Unanswered>,
}

/// Why there is no answer to judge.
enum Unanswered {
    /// Nothing accepted the connection.
    Unreachable(std::io::Error),
    /// Something not root's listens there: it was not asked.
    NotRoot(String),
    /// Connected, but no well-formed answer came.
    Silent(String),
}

impl Greeting {
    /// Greets the daemon at `socket`, if it is root's.
    pub fn ask(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
            answer: hello(socket),
        }
    }

    /// The store the daemon serves, when it answered in this protocol's version.
    pub fn served_store(&self) -> Option<PathBuf> {
        match &self.answer {
            Ok(Response::Hello {
                protocol, store, ..
            }) if *protocol == PROTOCOL_VERSION => Some(PathBuf::from(store)),
            _ => None,
        }
    }
}

/// `Hello` asked of root's daemon at `socket`, within [`HELLO_DEADLINE`].
fn hello(socket: &Path) -> Result<Response, Unanswered> {
    let stream = UnixStream::connect(socket).map_err(Unanswered::Unreachable)?;
    pam_mfa_protocol::require_root_daemon(&stream).map_err(Unanswered::NotRoot)?;
    stream
        .set_read_timeout(Some(HELLO_DEADLINE))
        .and_then(|()| stream.set_write_timeout(Some(HELLO_DEADLINE)))
        .map_err(|e| Unanswered::Silent(e.to_string()))?;
    let mut s = &stream;
    pam_mfa_protocol::write_request(&mut s, &Request::Hello)
        .map_err(|e| Unanswered::Silent(e.to_string()))?;
    pam_mfa_protocol::read_response(&mut s).map_err(|e| Unanswered::Silent(e.to_string()))
}

/// Whether the daemon that gave `greeting` answers and serves `store`, the store this
/// report checked. How to start it depends on whether systemd runs here
/// (`systemd_runs`): a host without it has no unit to enable.
pub fn check(greeting: &Greeting, store: &Path, systemd_runs: bool) -> Vec<Finding> {
    let shown = greeting.socket.display();
    let answer = match &greeting.answer {
        Ok(answer) => Ok(answer),
        Err(Unanswered::Silent(e)) => Err(e.clone()),
        Err(Unanswered::NotRoot(e)) => {
            return vec![Finding::problem(
                CHECK,
                format!("refused {shown}: {e}; no login can check a code"),
                format!(
                    "find what listens there (ss -xlp | grep {shown}) and stop it, then start \
                     mfad"
                ),
            )];
        }
        Err(Unanswered::Unreachable(e)) => {
            let fix = if systemd_runs {
                "start it: systemctl enable --now mfad.socket (systemctl status mfad.socket \
                 tells why it stopped)"
            } else {
                "start it: run /usr/sbin/mfad as root under this host's init system or \
                 supervisor (scripts/install.sh starts it once, logging to \
                 /var/log/pam_mfa-mfad.log)"
            };
            return vec![Finding::problem(
                CHECK,
                format!("cannot reach mfad at {shown}: {e}; no login can check a code"),
                fix,
            )];
        }
    };
    let mut findings = Vec::new();
    match answer {
        Ok(Response::Hello {
            protocol,
            daemon,
            store: served,
        }) if *protocol == PROTOCOL_VERSION => {
            findings.push(Finding::ok(
                CHECK,
                format!("mfad {daemon} answers at {shown} (protocol {protocol})"),
            ));
            findings.push(served_store(Path::new(served), store));
        }
        Ok(Response::Hello {
            protocol, daemon, ..
        }) => findings.push(Finding::problem(
            CHECK,
            format!(
                "mfad {daemon} at {shown} speaks protocol {protocol}, this mfa {PROTOCOL_VERSION}"
            ),
            "install mfa and mfad from the same package version, then restart mfad",
        )),
        Ok(Response::Error(e)) => findings.push(Finding::problem(
            CHECK,
            format!("mfad at {shown} refused a greeting: {}", e.message),
            "install mfa and mfad from the same package version, then restart mfad",
        )),
        Ok(_) => findings.push(Finding::problem(
            CHECK,
            format!("mfad at {shown} answered a greeting with something else"),
            "install mfa and mfad from the same package version, then restart mfad",
        )),
        Err(e) => findings.push(Finding::problem(
            CHECK,
            format!("mfad at {shown} does not answer: {e}"),
            if systemd_runs {
                "see systemctl status mfad and the system log; restart it"
            } else {
                "see the system log (or /var/log/pam_mfa-mfad.log); restart mfad"
            },
        )),
    }
    findings
}

/// Whether the store the daemon serves is `checked`, the store this report checked (they
/// differ only when `--db` named another).
fn served_store(served: &Path, checked: &Path) -> Finding {
    if same_file(served, checked) {
        Finding::ok(
            CHECK,
            format!("mfad serves {}, the store checked above", served.display()),
        )
    } else {
        Finding::warning(
            CHECK,
            format!(
                "mfad serves {}, but this report checked {}",
                served.display(),
                checked.display()
            ),
            "to check the store mfad uses, run the doctor without --db",
        )
    }
}

/// Whether two paths name the same file (or, missing, the same path).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A warning for each module line that still names a store with `db=`.
pub fn obsolete_db_arguments(lines: &[MfaLine]) -> Vec<Finding> {
    lines
        .iter()
        .filter(|l| l.text.split_whitespace().any(|w| w.starts_with("db=")))
        .map(|l| {
            Finding::warning(
                CHECK,
                format!(
                    "{}: `{}` has a db= argument, which is obsolete",
                    l.place, l.text
                ),
                "obsolete: remove it; use socket= only if mfad listens elsewhere",
            )
        })
        .collect()
}

/// Where systemd looks for units, the administrator's first.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// mfad's units under `root`: installed, and the socket enabled, where systemd runs
/// (`systemd_runs`); without systemd, what has to start the daemon instead.
pub fn units(root: &super::Root, systemd_runs: bool) -> Vec<Finding> {
    if !systemd_runs {
        return vec![Finding::ok(
            CHECK,
            "systemd is not running here: mfad must be started and kept running by the init \
             system or a supervisor (scripts/install.sh starts it once)",
        )];
    }
    let installed = |unit: &str| {
        UNIT_DIRS
            .iter()
            .map(|d| root.path(format!("{d}/{unit}")))
            .find(|p| p.is_file())
    };
    let mut findings = Vec::new();
    for unit in ["mfad.socket", "mfad.service"] {
        match installed(unit) {
            Some(path) => findings.push(Finding::ok(
                CHECK,
                format!("{unit} is installed ({})", path.display()),
            )),
            None => findings.push(Finding::problem(
                CHECK,
                format!("{unit} is not installed: nothing starts mfad at boot"),
                "reinstall the package, or run scripts/install.sh",
            )),
        }
    }
    let enabled = root.path("/etc/systemd/system/sockets.target.wants/mfad.socket");
    if installed("mfad.socket").is_some() {
        if enabled.exists() {
            findings.push(Finding::ok(CHECK, "mfad.socket is enabled"));
        } else {
            findings.push(Finding::problem(
                CHECK,
                "mfad.socket is not enabled: after a reboot no login can check a code",
                "systemctl enable --now mfad.socket",
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::doctor::{Root, Status};

    fn statuses(f: &[Finding]) -> Vec<(Status, String)> {
        f.iter().map(|f| (f.status, f.message.clone())).collect()
    }

    #[test]
    fn units_installed_and_the_socket_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(Some(dir.path())).unwrap();
        // Nothing installed: both units are problems, and nothing can be enabled.
        let f = units(&root, true);
        assert_eq!(f.len(), 2, "{:?}", statuses(&f));
        assert!(f.iter().all(|f| f.status == Status::Problem));
        // Installed by the package, not enabled.
        let lib = dir.path().join("usr/lib/systemd/system");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("mfad.socket"), "").unwrap();
        std::fs::write(lib.join("mfad.service"), "").unwrap();
        let f = units(&root, true);
        assert_eq!(
            f.iter().filter(|f| f.status == Status::Problem).count(),
            1,
            "{:?}",
            statuses(&f)
        );
        assert!(f.iter().any(|f| f.message.contains("not enabled")));
        // Enabled.
        let wants = dir.path().join("etc/systemd/system/sockets.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink(lib.join("mfad.socket"), wants.join("mfad.socket")).unwrap();
        let f = units(&root, true);
        assert!(
            f.iter().all(|f| f.status == Status::Ok),
            "{:?}",
            statuses(&f)
        );
        // Without systemd: no unit is needed, and the doctor says what must start mfad.
        let f = units(&root, false);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Ok);
        assert!(f[0].message.contains("supervisor"));
    }

    #[test]
    fn an_unreachable_daemon_is_a_problem_whose_fix_fits_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("mfad.sock");
        let store = dir.path().join("devices.db");
        let greeting = Greeting::ask(&socket);
        assert_eq!(greeting.served_store(), None);
        let with_systemd = check(&greeting, &store, true);
        assert_eq!(with_systemd.len(), 1);
        assert_eq!(with_systemd[0].status, Status::Problem);
        assert!(with_systemd[0].message.contains("cannot reach mfad"));
        let fix = with_systemd[0].fix.clone().unwrap();
        assert!(fix.contains("systemctl enable --now mfad.socket"), "{fix}");
        // Without systemd there is no unit to enable: the fix says what to run instead.
        let without = check(&greeting, &store, false);
        assert_eq!(without[0].status, Status::Problem);
        let fix = without[0].fix.clone().unwrap();
        assert!(!fix.contains("systemctl"), "{fix}");
        assert!(fix.contains("/usr/sbin/mfad"), "{fix}");
    }
}
