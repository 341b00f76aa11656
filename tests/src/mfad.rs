//! `mfad` under test: started in a test's [`Namespace`] (so its syslog lines reach the
//! namespace's listener and its socket and store are at the default paths), and a small
//! client built on the protocol crate.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pam_mfa_protocol::{
    Fido2ChallengeReply, KeyAssertion, KeyAttestation, KeyChallengeReply, PublicBytes, Request,
    Response,
};

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

/// Waits (up to `limit`) until the daemon listening at `socket` holds no connection from
/// a client; `false` if it still holds one then. A connection thread closes its
/// connection only after the request on it has run to its end and been answered, so
/// once none is left, every request sent before has been carried out. The daemon's end
/// of an accepted connection carries the listening socket's path in `/proc/net/unix`
/// (of the caller's network namespace: the daemon's must be the same), in state 03; a
/// connection still waiting to be accepted is not listed there, so give the daemon's
/// threads (waiting in `accept`) a moment first.
pub fn wait_until_no_client(socket: &Path, limit: Duration) -> bool {
    let path = socket.to_string_lossy();
    let deadline = std::time::Instant::now() + limit;
    loop {
        let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
        let held = table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() == 8 && fields[5] == "03" && fields[7] == path
        });
        if !held {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
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

/// Lowercase hex (credential ids, challenges on `mfad-client`'s command line).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads [`hex`] back.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// A software security key (the test build's authenticator, state in a file of its own),
/// driven through `mfad-client key-make` / `key-sign`: the test carries the daemon's
/// challenges to it as `mfa` and the module carry them to a real key.
pub struct SoftKey {
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Default for SoftKey {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftKey {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("soft-key-")
            .tempdir()
            .expect("temporary directory");
        let state = dir.path().join("key.json");
        Self { _dir: dir, state }
    }

    /// Sets one of the software key's misbehaviour knobs (see pam_mfa_fido2's `soft`).
    pub fn knob(&self, name: &str, on: bool) {
        let mut state: serde_json::Value = std::fs::read(&self.state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        state["knobs"][name] = serde_json::Value::Bool(on);
        std::fs::write(&self.state, serde_json::to_vec(&state).expect("json"))
            .expect("write the soft key's state");
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(paths::mfad_client_bin())
            .env("PAM_MFA_SOFT_FIDO2", &self.state)
            .arg("-")
            .args(args)
            .output()
            .expect("run mfad-client");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "mfad-client {args:?}: {stdout}");
        stdout
    }

    fn fields<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
        out.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .collect()
    }

    /// The key's attestation for a registration the daemon began.
    pub fn register(&self, c: &Fido2ChallengeReply) -> KeyAttestation {
        let out = self.run(&[
            "key-make",
            &c.rp_id,
            &hex(&c.challenge.0),
            &hex(&c.user_id.0),
            &c.user_name,
        ]);
        let one = |k: &str| Self::fields(&out, k).first().map(|v| v.to_string());
        KeyAttestation {
            fmt: one("fmt").expect("fmt"),
            auth_data: PublicBytes(unhex(&one("auth_data").expect("auth_data"))),
            alg: one("alg").map(|a| a.parse().expect("alg")),
            sig: PublicBytes(unhex(&one("sig").unwrap_or_default())),
            x5c: Self::fields(&out, "x5c")
                .into_iter()
                .map(|c| PublicBytes(unhex(c)))
                .collect(),
        }
    }

    /// The key's answer to `challenge` for `rp_id`, asked with the allow list `allow`.
    pub fn sign(&self, rp_id: &str, challenge: &[u8], allow: &[Vec<u8>]) -> KeyAssertion {
        let mut args = vec!["key-sign".to_owned(), rp_id.to_owned(), hex(challenge)];
        args.extend(allow.iter().map(|a| hex(a)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&args);
        let one = |k: &str| Self::fields(&out, k).first().map(|v| unhex(v));
        KeyAssertion {
            rp_id: rp_id.to_owned(),
            credential_id: one("credential_id").map(PublicBytes),
            auth_data: PublicBytes(one("auth_data").expect("auth_data")),
            signature: PublicBytes(one("signature").expect("signature")),
        }
    }

    /// Answers a login challenge with the key, asking for every credential of the
    /// challenge under the first credential's RP id.
    pub fn answer(&self, c: &KeyChallengeReply) -> KeyAssertion {
        let rp_id = c
            .credentials
            .first()
            .map(|k| k.rp_id.clone())
            .expect("a credential");
        let allow: Vec<Vec<u8>> = c
            .credentials
            .iter()
            .filter(|k| k.rp_id == rp_id)
            .map(|k| k.credential_id.0.clone())
            .collect();
        self.sign(&rp_id, &c.challenge.0, &allow)
    }
}
