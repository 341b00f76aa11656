//! Who serves the socket. Only root's `mfad` may decide a login or hold a user's
//! devices: a `socket=` (or `mfa --socket`) naming a place a user can bind, by mistake or
//! on purpose, would otherwise let that user's own program answer "verified" for any
//! account, or collect the codes typed at it. So every client asks the kernel who is at
//! the other end (`SO_PEERCRED`: the credentials of whoever created the listening
//! socket, root's for `mfad` and for systemd's socket activation) before it sends a word,
//! as `pam_sss` does with sssd.

use std::io;
use std::os::fd::AsRawFd;

/// The uid of the process at the other end of a connected UNIX socket.
pub fn peer_uid(socket: &impl AsRawFd) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let size = std::mem::size_of::<libc::ucred>();
    let mut len = libc::socklen_t::try_from(size)
        .map_err(|_| io::Error::other("struct ucred does not fit socklen_t"))?;
    // SAFETY: `cred` is a valid, writable ucred of `len` bytes for the call, and `len`
    // a valid socklen_t the kernel writes back; the descriptor is borrowed from `socket`,
    // which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if usize::try_from(len).ok() != Some(size) {
        return Err(io::Error::other("SO_PEERCRED gave a short answer"));
    }
    Ok(cred.uid)
}

/// Refuses a connection whose other end is not root's: the words say why, for the log
/// or the terminal.
pub fn require_root_daemon(socket: &impl AsRawFd) -> Result<(), String> {
    match peer_uid(socket) {
        Ok(0) => Ok(()),
        Ok(uid) => Err(format!(
            "the socket is served by a process of uid {uid}, not root's: that is not mfad, \
             and nothing is sent to it"
        )),
        Err(e) => Err(format!("cannot tell who serves the socket: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_peer_is_whoever_made_the_socket() {
        // A socket pair made by this process: its own uid at both ends.
        let (a, _b) = UnixStream::pair().unwrap();
        // SAFETY: getuid has no preconditions and cannot fail.
        let me = unsafe { libc::getuid() };
        assert_eq!(peer_uid(&a).unwrap(), me);
        let verdict = require_root_daemon(&a);
        if me == 0 {
            assert_eq!(verdict, Ok(()));
        } else {
            let e = verdict.unwrap_err();
            assert!(e.contains(&format!("uid {me}, not root's")), "{e}");
        }
    }

    #[test]
    fn a_descriptor_that_is_no_socket_is_refused() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(peer_uid(&file).is_err());
        let e = require_root_daemon(&file).unwrap_err();
        assert!(e.contains("cannot tell who serves the socket"), "{e}");
    }
}
