//! Process hardening done before anything else runs.
//!
//! `mfa` handles OTP secrets and will run setuid root: a core dump could write a secret to
//! disk readable by whoever collects cores, and files it creates must never be readable by
//! others whatever umask the caller set.

pub fn apply() {
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
}
