//! systemd socket activation (sd_listen_fds(3)): the listening socket arrives as fd 3,
//! with `LISTEN_PID` naming this process and `LISTEN_FDS=1`.
//!
//! Written here rather than taken from a crate: it is a dozen lines of a stable,
//! documented convention, and the checks that matter for a security daemon (that the fd
//! really is a listening UNIX stream socket, that it is not inherited by anything else)
//! are ours to make either way.

use std::os::fd::{BorrowedFd, FromRawFd, RawFd};
use std::os::unix::net::UnixListener;

/// sd_listen_fds' first descriptor.
const LISTEN_FDS_START: RawFd = 3;

/// The socket systemd passed, `None` when the daemon was not socket-activated.
pub fn listener() -> Result<Option<UnixListener>, String> {
    let Some(pid) = std::env::var_os("LISTEN_PID") else {
        return Ok(None);
    };
    let pid: u32 = pid
        .to_str()
        .and_then(|p| p.parse().ok())
        .ok_or("LISTEN_PID is not a number")?;
    if pid != std::process::id() {
        // Meant for another process (an ancestor's environment): not ours.
        return Ok(None);
    }
    let count = std::env::var("LISTEN_FDS").map_err(|_| "LISTEN_PID without LISTEN_FDS")?;
    if count != "1" {
        return Err(format!(
            "systemd passed LISTEN_FDS={count}; mfad takes exactly one socket (check \
             mfad.socket)"
        ));
    }
    // SAFETY: called from `main` before any other thread exists, so nothing reads the
    // environment concurrently. The variables are removed so that no child would
    // mistake fd 3 for its own.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    check(LISTEN_FDS_START)?;
    // SAFETY: fd 3 was handed to this process by systemd for it alone (LISTEN_PID), it
    // is open and a listening UNIX stream socket (checked above), and nothing else in
    // this process owns or closes it.
    let listener = unsafe { UnixListener::from_raw_fd(LISTEN_FDS_START) };
    Ok(Some(listener))
}

fn check(fd: RawFd) -> Result<(), String> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    use nix::sys::socket::{
        AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
    };
    // SAFETY: only borrowed for the checks below; a closed fd makes them fail with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let bad = |what: &str| format!("the socket systemd passed (fd {fd}) {what}");
    match getsockopt(&borrowed, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(_) => return Err(bad("is not a stream socket")),
        Err(e) => return Err(bad(&format!("is not a socket ({e})"))),
    }
    let addr: SockaddrStorage = getsockname(fd).map_err(|e| bad(&e.to_string()))?;
    if addr.family() != Some(AddressFamily::Unix) {
        return Err(bad("is not a UNIX socket"));
    }
    if !getsockopt(&borrowed, sockopt::AcceptConn).map_err(|e| bad(&e.to_string()))? {
        return Err(bad("is not listening"));
    }
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| bad(&e.to_string()))?;
    Ok(())
}
