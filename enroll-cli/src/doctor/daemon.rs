//! The daemon: `mfa`, the module and every login reach the store only through `mfad`, so
//! the doctor asks whether it answers on its socket in this protocol's version, and which
//! store it serves (from its command line, found through the socket's peer credentials),
//! to say whether that is the store this report checked. And a `db=` module argument,
//! which the module no longer reads, is pointed out for removal.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pam_mfa::store::DEFAULT_PATH;
use pam_mfa_protocol::{PROTOCOL_VERSION, Request, Response};

use super::Finding;
use super::pam::MfaLine;

const CHECK: &str = "daemon";

/// How long the daemon may take to answer `Hello`.
const HELLO_DEADLINE: Duration = Duration::from_secs(5);

/// Whether mfad answers at `socket` and serves `store`, the store this report checked.
pub fn check(socket: &Path, store: &Path) -> Vec<Finding> {
    let shown = socket.display();
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding::problem(
                CHECK,
                format!("cannot reach mfad at {shown}: {e}; no login can check a code"),
                "start it: systemctl enable --now mfad.socket (systemctl status mfad.socket \
                 tells why it stopped)",
            )];
        }
    };
    let answer = stream
        .set_read_timeout(Some(HELLO_DEADLINE))
        .and_then(|()| stream.set_write_timeout(Some(HELLO_DEADLINE)))
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let mut s = &stream;
            pam_mfa_protocol::write_request(&mut s, &Request::Hello).map_err(|e| e.to_string())?;
            pam_mfa_protocol::read_response(&mut s).map_err(|e| e.to_string())
        });
    let mut findings = Vec::new();
    match answer {
        Ok(Response::Hello { protocol, daemon }) if protocol == PROTOCOL_VERSION => {
            findings.push(Finding::ok(
                CHECK,
                format!("mfad {daemon} answers at {shown} (protocol {protocol})"),
            ));
        }
        Ok(Response::Hello { protocol, daemon }) => findings.push(Finding::problem(
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
            "see systemctl status mfad and the system log; restart it",
        )),
    }
    if let Some(served) = served_store(&stream) {
        if same_file(&served, store) {
            findings.push(Finding::ok(
                CHECK,
                format!("mfad serves {}, the store checked above", served.display()),
            ));
        } else {
            findings.push(Finding::warning(
                CHECK,
                format!(
                    "mfad serves {}, but this report checked {}",
                    served.display(),
                    store.display()
                ),
                format!(
                    "check the store mfad uses: mfa --db {} doctor",
                    served.display()
                ),
            ));
        }
    }
    findings
}

/// The store the daemon on the other end of `stream` was started with: its `--db`, or
/// the default. `None` when its command line cannot be read.
fn served_store(stream: &UnixStream) -> Option<PathBuf> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let pid = getsockopt(stream, PeerCredentials).ok()?.pid();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let mut served = PathBuf::from(DEFAULT_PATH);
    for (i, arg) in args.iter().enumerate() {
        if *arg == b"--db" {
            served = PathBuf::from(String::from_utf8_lossy(args.get(i + 1)?).into_owned());
        } else if let Some(path) = arg.strip_prefix(b"--db=") {
            served = PathBuf::from(String::from_utf8_lossy(path).into_owned());
        }
    }
    Some(served)
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
