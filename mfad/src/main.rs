//! `mfad`, the daemon's binary: arguments, the store check, the socket; see the library
//! (`mfad/src/lib.rs`) for the design.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use mfad::{Args, activation, conn, log, service, turns};

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
    // An unsafe or damaged store serves no login: every request is refused, saying why,
    // and checks again, so that the daemon serves as soon as the store is repaired
    // (a daemon that refused to start would only be restarted by systemd, in a loop).
    let store = match pam_mfa::store::Store::open_existing(&args.db) {
        Ok(store) => store,
        Err(e) => {
            let message = format!("refusing every request until the store is repaired: {e}");
            eprintln!("mfad: {message}");
            log.log(log::Level::Error, &message);
            None
        }
    };
    if store.is_none() && !args.db.exists() {
        eprintln!(
            "mfad: the device store {} does not exist yet; nobody has a device until `mfa` \
             creates it",
            args.db.display()
        );
    }
    let fleet = match pam_mfa_fleet::FleetConfig::load(&args.config) {
        Ok(None) => None,
        Ok(Some(config)) => {
            let servers: Vec<String> = config.hosts.iter().map(ToString::to_string).collect();
            let shown = format!(
                "role {} at {} database {}",
                config.role,
                servers.join(", "),
                config.database
            );
            let locals = config.local_users.clone();
            Some((
                mfad::fleet::Side::new(pam_mfa_fleet::Fleet::new(config), locals),
                shown,
            ))
        }
        Err(e) => return Err(format!("{}: {e}", args.config.display())),
    };
    raise_fd_limit();
    let (listener, from) = match activation::listener()? {
        Some(l) => (l, "the socket from systemd".to_owned()),
        None => (bind(&args.socket)?, args.socket.display().to_string()),
    };
    let mut turns = turns::Turns::new(service::Service::resident(store, args.db.clone()));
    if let Some((side, shown)) = fleet {
        let line =
            format!("accounts other than the local ones are kept in the fleet database ({shown})");
        eprintln!("mfad: {line}");
        log.log(log::Level::Info, &line);
        turns = turns.with_fleet(side);
    }
    let turns = Arc::new(turns);
    eprintln!(
        "mfad {}: serving {} on {from}",
        env!("CARGO_PKG_VERSION"),
        args.db.display()
    );
    log.log(
        log::Level::Info,
        &format!("serving {} on {from}", args.db.display()),
    );
    conn::accept_loop(listener, &turns, log);
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
