//! Process hardening done before anything else runs.
//!
//! `mfa` is an ordinary program of the user who runs it: the daemon, `mfad`, opens the
//! store and decides from the connection's peer credentials who is asking. What is left
//! to guard here is the secrets that pass through this process (a new app's secret, its
//! QR image, recovery codes, a PIN): core dumps are off, and the process is not
//! dumpable, so that other processes of the same user cannot ptrace it or read its
//! memory through /proc, and a crash writes nothing to disk. Files it writes (QR images)
//! are private to the user (umask 077). Closed standard descriptors are reopened on
//! /dev/null, so no file opened later becomes "standard error".
//!
//! An installation left over from the setuid days (`mfa` setuid root) must not make the
//! daemon believe root is asking: the daemon reads the effective uid of the peer. So a
//! privilege-changing exec drops straight back to the caller's real ids, for good.

use nix::unistd::{Gid, Uid};

/// Whether this process was started through a setuid/setgid (or capability) exec.
fn is_secure_exec() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Makes sure fds 0, 1 and 2 are open (on /dev/null if not), so no file `mfa` opens
/// later can become "standard error" and receive messages.
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

/// Gives up, for good, the ids a setuid or setgid exec granted: the caller's real uid and
/// gid become every uid and gid of this process. Stops the process if that fails, rather
/// than speak to the daemon with ids that are not the caller's.
fn drop_granted_privileges() {
    let (uid, gid) = (Uid::current(), Gid::current());
    let dropped =
        nix::unistd::setresgid(gid, gid, gid).and_then(|()| nix::unistd::setresuid(uid, uid, uid));
    if dropped.is_err() || Uid::effective() != uid || Gid::effective() != gid {
        eprintln!("mfa: cannot give up the privileges of a setuid installation; stopping");
        // SAFETY: _exit takes an integer and never returns.
        unsafe { libc::_exit(1) };
    }
}

/// Everything that must hold before the command line is even parsed.
pub fn apply() {
    ensure_standard_fds();
    if is_secure_exec() {
        drop_granted_privileges();
    }
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes integer arguments only and affects just this
    // process; failure leaves the process as it was, which the rlimit below still covers.
    // (Set after the ids changed: changing them resets the flag.)
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
}
