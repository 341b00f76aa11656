//! Process hardening done before anything else runs, and the privilege switch done once
//! the caller is known.
//!
//! `mfa` handles OTP secrets and runs setuid root (as `passwd` does), so everything the
//! caller hands it beyond the command line is hostile until proven otherwise: the
//! environment (`SQLITE_TMPDIR`, `TMPDIR`, `HOME`, `USER` could steer where root writes or
//! whom it believes it serves), the umask, closed standard descriptors (a store opened
//! as fd 2 would receive our error messages), and the caller's power to signal or
//! ptrace a process that shares its real uid. Core dumps are off because one could write
//! a secret to disk readable by whoever collects cores.

use std::ffi::OsStr;

use nix::unistd::{Gid, Uid};

/// Variables that survive: they only change how output looks, never what is read or
/// written, or as whom.
const KEPT_VARS: &[&str] = &["TERM", "LANG", "NO_COLOR", "COLUMNS"];

/// The `PATH` a setuid run gets: system directories only.
const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether `name` may stay in the environment of a setuid run: only the display
/// variables (and, in test builds that contain the software authenticator, its state
/// file: see [`pam_mfa::fido2::SOFT_FIDO2_BUILT`] and [`soft_state_path_ok`]).
fn keep_var(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    KEPT_VARS.contains(&name)
        || name.starts_with("LC_")
        || (pam_mfa::fido2::SOFT_FIDO2_BUILT && name == pam_mfa::fido2::SOFT_STATE_VAR)
}

/// The software authenticator reads and rewrites its state file (a write to `PATH.tmp`,
/// then a rename over PATH) with the privileges `mfa` runs with: in a setuid run of a test
/// build, only a path under /tmp or /var/tmp without `..` is kept, so that a caller
/// cannot point it at a system file. (Release builds cannot contain it at all.)
fn soft_state_path_ok(value: &OsStr) -> bool {
    let path = std::path::Path::new(value);
    (path.starts_with("/tmp") || path.starts_with("/var/tmp"))
        && path
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
        && path.components().count() > 2
}

/// Whether this process was started through a setuid/setgid (or capability) exec.
fn is_secure_exec() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Makes sure fds 0, 1 and 2 are open (on /dev/null if not), so no file `mfa` opens
/// later — the store above all — can become "standard error" and receive messages.
fn ensure_standard_fds() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD on any integer is harmless; it only reports whether it is open.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        if open {
            continue;
        }
        // SAFETY: the path is a NUL-terminated literal; open returns the lowest free
        // descriptor, which is `fd` since the lower ones were checked first.
        let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if got != fd {
            // Nothing sane can be done without standard descriptors; stop before any
            // file is opened in their place.
            // SAFETY: _exit takes an integer and never returns.
            unsafe { libc::_exit(127) };
        }
    }
}

/// Drops every environment variable not in the allow-list and sets a system `PATH`, when
/// the kernel marked this exec as privilege-changing (setuid).
///
/// Otherwise the caller already holds every privilege this process has and could run
/// anything with any environment, so there is nothing to defend, and root keeps its own
/// environment (`PATH` for the tools `mfa doctor` runs, and the variables of test tools
/// such as libfaketime, which re-reads `FAKETIME` while the process runs).
fn clear_environment(secure: bool) {
    if !secure {
        return;
    }
    let doomed: Vec<_> = std::env::vars_os()
        .filter(|(name, value)| {
            !keep_var(name)
                || (name == pam_mfa::fido2::SOFT_STATE_VAR && !soft_state_path_ok(value))
        })
        .map(|(name, _)| name)
        .collect();
    for name in doomed {
        // SAFETY: called from the first line of `main`, before any other thread exists,
        // so nothing can read the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    // SAFETY: as above, still single-threaded.
    unsafe { std::env::set_var("PATH", SAFE_PATH) };
}

/// Everything that must hold before the command line is even parsed.
pub fn apply() {
    ensure_standard_fds();
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes integer arguments only and affects just this
    // process; failure leaves the process as it was, which the rlimit below still covers.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `no_core` is a valid rlimit that outlives the call.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    }
    // SAFETY: umask cannot fail and has no memory-safety preconditions.
    unsafe {
        libc::umask(0o077);
    }
    clear_environment(is_secure_exec());
}

/// Once the caller's identity is settled (taken from the real uid), becomes root in
/// every uid and gid when running setuid root for someone else.
///
/// While the real uid is the caller's, the caller may send us any signal (kill(2) checks
/// the real/saved uid), e.g. SIGSTOP in the middle of a store transaction to hold the
/// store's lock for ever. After this the process belongs to root alone. Files written on
/// the caller's behalf go through [`as_caller`] instead.
pub fn become_root_entirely() -> Result<(), String> {
    if !Uid::effective().is_root() || Uid::current().is_root() {
        return Ok(());
    }
    let root_g = Gid::from_raw(0);
    let root_u = Uid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g)
        .and_then(|()| nix::unistd::setresuid(root_u, root_u, root_u))
        .map_err(|e| format!("cannot switch to root ids: {e}"))
}

/// Runs `f` with the file-system uid and gid of the caller, so that a file `mfa` creates
/// for them (a QR image) belongs to them and the path is resolved with their permissions,
/// never root's. A root caller runs `f` unchanged.
pub fn as_caller<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> T {
    if uid == 0 {
        return f();
    }
    // SAFETY: setfsuid/setfsgid take integer ids and only change this thread's
    // file-system ids; `mfa` is single-threaded, and the ids are restored below. The
    // group is changed first, while we still have the privilege to do so.
    let (old_gid, old_uid) = unsafe { (libc::setfsgid(gid), libc::setfsuid(uid)) };
    let result = f();
    // SAFETY: as above; restores the ids the calls returned.
    unsafe {
        libc::setfsuid(old_uid as libc::uid_t);
        libc::setfsgid(old_gid as libc::gid_t);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn only_display_variables_survive_a_setuid_exec() {
        for kept in [
            "TERM",
            "LANG",
            "LC_ALL",
            "LC_MESSAGES",
            "NO_COLOR",
            "COLUMNS",
        ] {
            assert!(keep_var(OsStr::new(kept)), "{kept}");
        }
        for dropped in [
            "USER",
            "LOGNAME",
            "SUDO_USER",
            "HOME",
            "TMPDIR",
            "SQLITE_TMPDIR",
            "PATH",
            "LD_PRELOAD",
            "LANGUAGE_X",
        ] {
            assert!(!keep_var(OsStr::new(dropped)), "{dropped}");
        }
        assert_eq!(
            keep_var(OsStr::new("PAM_MFA_SOFT_FIDO2")),
            pam_mfa::fido2::SOFT_FIDO2_BUILT
        );
        for ok in ["/tmp/.tmpAbc/key-a.json", "/var/tmp/x/key.json"] {
            assert!(soft_state_path_ok(OsStr::new(ok)), "{ok}");
        }
        for bad in [
            "/etc/shadow",
            "/tmp",
            "/tmp/../etc/shadow",
            "/tmpx/key.json",
            "tmp/key.json",
            "/var/lib/pam_mfa/devices.db",
        ] {
            assert!(!soft_state_path_ok(OsStr::new(bad)), "{bad}");
        }
    }
}
