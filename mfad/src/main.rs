//! `mfad`: the resident root daemon that alone opens pam_mfa's device store.
//!
//! Logins (`pam_mfa.so` in sshd, sudo, su, login, screen lockers) and `mfa` ask it over a
//! UNIX socket, in the protocol of the `pam_mfa_protocol` crate; it runs every check and
//! change through the `pam_mfa` library, one implementation of each, as the module does
//! today. (This first step serves logins' code checks and device lists; the module and
//! `mfa` still open the store themselves until they are switched over.)
//!
//! # Design: nobody can make the store wait for them
//!
//! * **One store thread** ([`service`]) owns the [`pam_mfa::store::Store`] and its
//!   connection for the daemon's life, and runs one request at a time, each to its end
//!   (the library's transactions). It never reads from or writes to a client: a request
//!   reaches it whole, already decoded and authorised, and its answer is handed back
//!   through a channel. A client that stops, hangs or goes away can therefore never hold
//!   a transaction open.
//! * **The acceptor** ([`conn`]) reads every new connection's SO_PEERCRED and admits it
//!   only within caps: [`conn::PER_UID`] connections per non-root uid and
//!   [`conn::USERS_TOTAL`] for all non-root peers together, and a separate allowance,
//!   [`conn::ROOT_TOTAL`], for root (sshd, sudo, su, login and root's `mfa` run as root).
//!   A connection over its cap gets a short `Busy` answer if the socket takes it at once,
//!   and is closed.
//! * **One thread per admitted connection** reads a request within deadlines (the first
//!   byte of a request within [`conn::FIRST_REQUEST_WAIT`] or, between requests,
//!   [`conn::IDLE_WAIT`]; the rest of it within [`conn::FRAME_TIME`]), refuses a frame over
//!   the size limit from its length alone, writes with [`conn::WRITE_TIMEOUT`], and hands
//!   the request to the store thread through **two queues** ([`queue`]): root's is always
//!   served first, so a user's requests never delay a login's.
//! * **Who may ask what** ([`authorise`]) comes from the peer's uid, never from the
//!   message: a non-root caller may only name its own account (the name is resolved
//!   to its canonical account and uid, and compared), and its module-argument overrides
//!   are ignored, so a user cannot loosen their own lock-out. Anything else is refused and
//!   logged with the uid and what was asked.
//! * **Self-service** ([`selfservice`]): the changes `mfa` makes to a person's own
//!   devices, through the same library calls (`pam_mfa::selfservice`, `enrollment`), with
//!   the same rules: the policy's self-service switch and the change-rate limit for
//!   non-root callers, a single-use proof of an existing device ([`tickets`]) before a
//!   change, and audit rows written as the peer's uid, attached for that one request.
//! * **Administration** ([`admin`]): `mfa admin`'s requests, for root only, through
//!   `pam_mfa::admin` (one implementation with `mfa`), audit rows as the peer's uid.
//! * **Logs** go to syslog, facility authpriv, like the module's ([`log`]): outcomes of
//!   logins and refusals, never a code or a secret.
//!
//! The store is checked with the store's own safety rules when the daemon starts: an
//! unsafe store (not root's, or readable by others) stops it with a line on stderr and
//! exit status 1. A store that does not exist yet is "nobody has a device", as for the
//! module, until `mfa` creates it.
//!
//! The socket is bound at `--socket` (default [`DEFAULT_SOCKET`], mode 0666: the peer
//! credentials decide, not the file mode), or received from systemd socket activation
//! ([`activation`]).

mod activation;
mod admin;
mod authorise;
mod conn;
mod log;
mod queue;
mod selfservice;
mod service;
mod tickets;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

/// Where the daemon listens unless told otherwise (systemd's `mfad.socket` uses it too).
pub const DEFAULT_SOCKET: &str = "/run/pam_mfa/mfad.sock";

/// The pam_mfa daemon: serves logins and `mfa` from the device store.
#[derive(Debug, Parser)]
#[command(name = "mfad", version)]
struct Args {
    /// The device store.
    #[arg(long, value_name = "PATH", default_value = pam_mfa::store::DEFAULT_PATH)]
    db: PathBuf,
    /// The socket to listen on (ignored when systemd passes one).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log = Arc::new(log::Log::open());
    match start(&args, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mfad: {message}");
            log.log(log::Level::Error, &message);
            ExitCode::FAILURE
        }
    }
}

fn start(args: &Args, log: &Arc<log::Log>) -> Result<(), String> {
    if !args.db.is_absolute() {
        return Err(format!(
            "--db {}: must be an absolute path",
            args.db.display()
        ));
    }
    // Checked before the socket exists, so that an unsafe store never serves a login.
    let store = pam_mfa::store::Store::open_existing(&args.db)
        .map_err(|e| format!("refusing to start: {e}"))?;
    if store.is_none() {
        eprintln!(
            "mfad: the device store {} does not exist yet; nobody has a device until `mfa` \
             creates it",
            args.db.display()
        );
    }
    raise_fd_limit();
    let (listener, from) = match activation::listener()? {
        Some(l) => (l, "the socket from systemd".to_owned()),
        None => (bind(&args.socket)?, args.socket.display().to_string()),
    };
    let queue = Arc::new(queue::Queue::new());
    {
        let (queue, log, db) = (queue.clone(), log.clone(), args.db.clone());
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || service::run(store, db, &queue, &log))
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
    }
    eprintln!(
        "mfad {}: serving {} on {from}",
        env!("CARGO_PKG_VERSION"),
        args.db.display()
    );
    log.log(
        log::Level::Info,
        &format!("serving {} on {from}", args.db.display()),
    );
    conn::accept_loop(&listener, &queue, log);
    Ok(())
}

/// Binds the socket: its directory is created (0755) if missing, a stale socket file is
/// replaced, a live one (another mfad) is not.
fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("--socket {shown}: must be an absolute path"));
    }
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "{shown} exists and is not a socket; not replacing it"
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(format!("another mfad is already listening on {shown}"));
            }
            std::fs::remove_file(path).map_err(|e| format!("cannot remove {shown}: {e}"))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot listen on {shown}: {e}"))?;
    // Anyone may connect; what they may ask is decided by their credentials.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("cannot chmod {shown}: {e}"))?;
    Ok(listener)
}

/// Raises the soft limit of open files to the hard one: connections over the caps are
/// closed at once, but each still needs a descriptor while it is being refused.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
