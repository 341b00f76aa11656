//! The one way `mfa` reaches the device store: the daemon's protocol, spoken to `mfad` on
//! its socket, or (`--db`, root only) answered in this process by the daemon's own
//! handlers ([`mfad::Direct`]). Every command but `mfa doctor` goes through [`Link::ask`],
//! so the daemon, not this unprivileged tool, decides who the caller is (SO_PEERCRED) and
//! what they may do.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pam_mfa_protocol::{Request, Response};

use crate::CliError;

/// How long an answer may take. Generous: a request waits behind logins in the daemon's
/// queue, and a store under load may be slow; but a daemon that hangs must not hang `mfa`
/// for ever.
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

pub enum Link {
    /// The daemon's socket. A connection is made for each request: the daemon closes
    /// connections idle for a few seconds, and `mfa` may wait minutes at a prompt
    /// between two requests. Proofs and tickets are bound to the uid, not the connection.
    Socket(PathBuf),
    /// The daemon's handlers in this process, as root (`mfa --db`), on this store.
    Direct(Option<Box<mfad::Direct>>, PathBuf),
}

impl Drop for Link {
    /// `mfa --db` prepares images and repairs hosts: it leaves the store's file holding
    /// everything, as `mfa` always did. The handlers close the store as a login does,
    /// leaving the last changes in the WAL; one connection opened for changes and closed
    /// folds them into the file and empties the WAL (see `pam_mfa::store`).
    fn drop(&mut self) {
        if let Self::Direct(direct, db) = self {
            drop(direct.take());
            if db.exists() {
                let _ = pam_mfa::store::Store::open_or_create(db);
            }
        }
    }
}

impl Link {
    /// The options that reach this link again, for a command `mfa` tells the person to
    /// run next: nothing for the default socket, else `--socket PATH ` or `--db PATH `.
    pub fn options(&self) -> String {
        let (option, path) = match self {
            Self::Socket(path) if path == Path::new(mfad::DEFAULT_SOCKET) => {
                return String::new();
            }
            Self::Socket(path) => ("--socket", path),
            Self::Direct(_, path) => ("--db", path),
        };
        format!(
            "{option} {} ",
            crate::enroll::shell_word(&path.to_string_lossy())
        )
    }

    /// The link the command line asks for: `--db PATH` (root only) in-process, otherwise
    /// the socket (`--socket PATH`, or the daemon's default).
    pub fn open(socket: Option<&Path>, db: Option<&Path>, is_root: bool) -> Result<Self, CliError> {
        match (socket, db) {
            (Some(_), Some(_)) => Err(CliError::msg(
                "--socket and --db cannot be used together: --db works without the daemon",
            )),
            (_, Some(_)) if !is_root => Err(CliError::msg(
                "--db is for root only; mfa always uses the system device store for you",
            )),
            (_, Some(db)) => Ok(Self::Direct(
                Some(Box::new(open_direct(db)?)),
                db.to_owned(),
            )),
            (socket, None) => Ok(Self::Socket(
                socket.map_or_else(|| PathBuf::from(mfad::DEFAULT_SOCKET), Path::to_owned),
            )),
        }
    }

    /// Sends `request` and returns the answer; the daemon's refusals (`Response::Error`)
    /// become the error, in the daemon's words (the library's, as `mfa` printed them).
    pub fn ask(&mut self, request: Request) -> Result<Response, CliError> {
        match self.exchange(request)? {
            Response::Error(e) => Err(CliError::refused(e.kind, e.message)),
            other => Ok(other),
        }
    }

    /// Sends `request` and returns whatever came back, errors included.
    pub fn exchange(&mut self, request: Request) -> Result<Response, CliError> {
        match self {
            Self::Direct(Some(direct), _) => Ok(direct.ask(request)),
            Self::Direct(None, _) => Err(CliError::msg("the device store was closed")),
            Self::Socket(path) => {
                let mut stream = connect(path)?;
                let lost = |e: &dyn std::fmt::Display| {
                    CliError::msg(format!(
                        "lost the connection to mfad at {}: {e}; nothing more was done",
                        path.display()
                    ))
                };
                pam_mfa_protocol::write_request(&mut stream, &request).map_err(|e| lost(&e))?;
                // One request per connection, as the PAM module sends them: the daemon
                // is told so and need not wait on the connection once it has answered.
                let _ = stream.shutdown(std::net::Shutdown::Write);
                pam_mfa_protocol::read_response(&mut stream).map_err(|e| lost(&e))
            }
        }
    }
}

/// The daemon's handlers on the store at `db`. A store whose directory does not exist yet
/// (a fresh image) is created first, directory and all, by the library as the daemon's
/// first change would create it: the handlers only create the file.
fn open_direct(db: &Path) -> Result<mfad::Direct, CliError> {
    if db.is_absolute() && db.parent().is_some_and(|dir| !dir.exists()) {
        pam_mfa::store::Store::open_or_create(db)?;
    }
    mfad::Direct::open(db).map_err(CliError::msg)
}

/// Whether systemd manages this host (its runtime directory exists), which decides how
/// mfad is started here and so what `mfa` advises when it cannot reach it.
pub fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// A connection to the daemon's socket, with deadlines.
pub fn connect(path: &Path) -> Result<UnixStream, CliError> {
    let hint = if systemd_runs() {
        "systemctl status mfad.socket"
    } else {
        "without systemd, root starts /usr/sbin/mfad; root's mfa doctor says more"
    };
    let unreachable = |e: std::io::Error| {
        CliError::msg(format!(
            "cannot reach mfad at {}: {e}; is it running? ({hint})",
            path.display()
        ))
    };
    let stream = UnixStream::connect(path).map_err(unreachable)?;
    // Nothing (a code, a proof, a registration's secret) goes to anyone but root's mfad.
    pam_mfa_protocol::require_root_daemon(&stream)
        .map_err(|e| CliError::msg(format!("refusing {}: {e}", path.display())))?;
    stream
        .set_read_timeout(Some(ANSWER_DEADLINE))
        .and_then(|()| stream.set_write_timeout(Some(ANSWER_DEADLINE)))
        .map_err(unreachable)?;
    Ok(stream)
}

/// The error for an answer that does not fit the request: a daemon of another version,
/// or a bug; nothing is assumed about what it did.
pub fn unexpected(response: &Response) -> CliError {
    let shown = match response {
        Response::Error(e) => e.message.clone(),
        other => format!("{other:?}"),
    };
    CliError::msg(format!("mfad gave an unexpected answer: {shown}"))
}
