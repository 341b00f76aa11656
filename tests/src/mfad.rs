//! `mfad` under test: started in a test's [`Namespace`] (so its syslog lines reach the
//! namespace's listener and its socket and store are at the default paths), and a small
//! client built on the protocol crate.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pam_mfa_protocol::{Request, Response};

use crate::namespace::Namespace;
use crate::paths;
use crate::process::Running;

/// The socket as processes in the namespace see it (mfad's default).
pub const SOCKET: &str = "/run/pam_mfa/mfad.sock";

/// How long the client waits for an answer before failing the test (not a speed limit:
/// only so that a hang fails instead of blocking the suite).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// Sends one request on a new connection and reads the answer.
pub fn ask_at(socket: &Path, request: &Request) -> Result<Response, String> {
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("connect {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(ANSWER_DEADLINE))
        .and_then(|()| s.set_write_timeout(Some(ANSWER_DEADLINE)))
        .map_err(|e| e.to_string())?;
    pam_mfa_protocol::write_request(&mut s, request).map_err(|e| format!("send: {e}"))?;
    pam_mfa_protocol::read_response(&mut s).map_err(|e| format!("answer: {e}"))
}

/// A running `mfad` (ended when dropped; drop it before its namespace).
pub struct Mfad {
    run: Running,
    socket: PathBuf,
}

impl Mfad {
    /// Starts `mfad` with its defaults inside `ns` (store `/var/lib/pam_mfa/devices.db`,
    /// the test's store; socket [`SOCKET`]) and waits until it serves.
    pub fn start(ns: &Namespace) -> Self {
        let cmd = ns.command(&paths::mfad_bin());
        let mut run = Running::spawn(cmd, "mfad");
        let ready = run.wait_for("mfad to serve", |_, err| err.contains("serving"));
        assert!(
            ready,
            "mfad did not start:\nstdout:\n{}\nstderr:\n{}",
            run.stdout(),
            run.stderr()
        );
        Self {
            run,
            socket: ns.path(SOCKET),
        }
    }

    /// The socket as the test process (outside the namespace) reaches it.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One request from the test process (root).
    pub fn ask(&self, request: &Request) -> Response {
        ask_at(&self.socket, request).unwrap_or_else(|e| {
            panic!(
                "mfad did not answer {request:?}: {e}\nstderr:\n{}",
                self.run.stderr()
            )
        })
    }

    /// What mfad wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.run.stderr()
    }
}

/// `mfad-client`, copied into a directory every user can reach (it is run as test users).
pub struct Client {
    _dir: tempfile::TempDir,
    pub bin: PathBuf,
}

impl Client {
    pub fn install() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mfad-client-")
            .tempdir()
            .expect("temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the client's directory");
        let bin = dir.path().join("mfad-client");
        std::fs::copy(paths::mfad_client_bin(), &bin).expect("copy mfad-client");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
            .expect("chmod mfad-client");
        Self { _dir: dir, bin }
    }
}
