//! The module's connection to `mfad`: every question about the store goes here.
//!
//! Each step has a deadline (`timeout=`): the connection must be accepted, and each
//! request written and its answer read, within it. A daemon that is not there, refuses,
//! or is too slow is [`Unavailable`], which the login turns into `PAM_AUTHINFO_UNAVAIL`
//! and a syslog line: never a success, never a hang.
//!
//! Every question has a connection of its own, closed once its answer is read. Nothing
//! holds a connection while the person types (the code, the PIN, the touch, the
//! questions of a registration): a person may sit at a prompt for minutes, the daemon
//! drops connections idle for longer than a few seconds, and a connection slot held by
//! someone's stopped `su` is one less for everyone else. Nothing of a login lives in a
//! connection (challenges and held registrations are the daemon's, under tickets).
//!
//! The request goes out with the end of the connection's sending side (`shutdown`), so
//! the daemon's thread sees that no other question follows as soon as it has answered
//! and goes back to `accept`, instead of sleeping on the connection until the module
//! closes it and being woken again for that: on a virtual machine, waking another
//! process is the dearest thing a login does (docs/performance.md, "One wake-up fewer").

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pam_mfa_protocol::{ErrorReply, Request, Response, read_response, write_request};

/// The daemon could not be asked, or did not answer: what, for the log.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// Where and how patiently to ask one daemon.
pub struct Daemon {
    socket: PathBuf,
    timeout: Duration,
}

impl Daemon {
    pub fn new(socket: &Path, timeout_secs: u32) -> Self {
        Self {
            socket: socket.to_path_buf(),
            timeout: Duration::from_secs(u64::from(timeout_secs.max(1))),
        }
    }

    /// Sends `request` on a new connection and reads its answer. An error answer of the
    /// daemon comes back as `Ok(Err(..))`: the caller decides what a refusal means.
    pub fn ask(&self, request: &Request) -> Result<Result<Response, ErrorReply>, Unavailable> {
        let stream = connect(&self.socket, self.timeout).map_err(|e| {
            Unavailable(format!(
                "cannot connect to mfad at {}: {e}",
                self.socket.display()
            ))
        })?;
        // Only root's mfad decides a login: checked on every new connection, before the
        // user's name or any code goes out.
        pam_mfa_protocol::require_root_daemon(&stream)
            .map_err(|e| Unavailable(format!("refused {}: {e}", self.socket.display())))?;
        self.exchange(&stream, request)
    }

    /// The request and its answer on `stream`.
    fn exchange(
        &self,
        stream: &UnixStream,
        request: &Request,
    ) -> Result<Result<Response, ErrorReply>, Unavailable> {
        let unavailable = |e: &dyn std::fmt::Display| {
            Unavailable(format!(
                "mfad at {} did not answer {}: {e}",
                self.socket.display(),
                request.name()
            ))
        };
        stream
            .set_write_timeout(Some(self.timeout))
            .and_then(|()| stream.set_read_timeout(Some(self.timeout)))
            .map_err(|e| unavailable(&e))?;
        write_request(&mut NoSignal(stream), request).map_err(|e| unavailable(&e))?;
        // Only this side's sending ends; the answer still comes. Should the shutdown fail,
        // the daemon sees the end when the stream is dropped, as it would have anyway.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let response = read_response(&mut &*stream).map_err(|e| unavailable(&e))?;
        Ok(match response {
            Response::Error(e) => Err(e),
            other => Ok(other),
        })
    }
}

/// Writes with `MSG_NOSIGNAL`: the module runs inside sudo, su and login, which may not
/// ignore SIGPIPE, and a daemon that went away must fail the request (EPIPE), not kill
/// the host with the signal a plain `write` raises.
struct NoSignal<'a>(&'a UnixStream);

impl Write for NoSignal<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the descriptor is the stream's, open for the call; `buf` is valid for
        // reads of its length.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Connects to the UNIX socket at `path` within `timeout`: a non-blocking connect,
/// retried while the daemon's backlog is full (EAGAIN), so a daemon that accepts nothing
/// cannot hold the login.
fn connect(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zero is a valid (empty) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket has no memory preconditions; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let deadline = Instant::now() + timeout;
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes, alive for the call.
        let rc = unsafe { libc::connect(fd, (&raw const addr).cast::<libc::sockaddr>(), len) };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the daemon accepted no connection in time",
                ));
            }
            _ => return Err(e),
        }
    }
    let stream = UnixStream::from(owned);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn no_daemon_is_unavailable() {
        let dir =
            std::env::temp_dir().join(format!("pam_mfa_module_client_{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let d = Daemon::new(&dir.join("none.sock"), 1);
        assert!(d.ask(&Request::Hello).is_err());
        // A daemon that accepts but never answers: refused within the deadline.
        let path = dir.join("silent.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let started = Instant::now();
        let d = Daemon::new(&path, 1);
        let e = d.ask(&Request::Hello).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{e:?}");
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The daemon sees the end of the connection before it answers (no other question
    /// follows on it), and the answer still arrives.
    #[test]
    fn a_question_ends_its_connection_before_the_answer() {
        let dir = std::env::temp_dir().join(format!("pam_mfa_module_end_{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("d.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            pam_mfa_protocol::read_request(&mut s).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut byte = [0u8; 1];
            // Ok(0) is the end of the connection; a timeout, a client that may ask again.
            let ended = matches!(io::Read::read(&mut s, &mut byte), Ok(0));
            pam_mfa_protocol::write_response(
                &mut s,
                &Response::Hello {
                    protocol: pam_mfa_protocol::PROTOCOL_VERSION,
                    daemon: "test".into(),
                    store: String::new(),
                },
            )
            .unwrap();
            ended
        });
        let d = Daemon::new(&path, 5);
        assert!(matches!(
            d.ask(&Request::Hello),
            Ok(Ok(Response::Hello { .. }))
        ));
        assert!(
            server.join().unwrap(),
            "the request came without the connection's end"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A daemon that closed the connection: the request fails with an error, and the
    /// process gets no SIGPIPE (the default action would end this test binary).
    #[test]
    fn a_closed_connection_is_an_error_not_a_signal() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let big = vec![0u8; 1 << 20];
        assert!(NoSignal(&a).write_all(&big).is_err());
        // SAFETY: restores the default action, which a SIGPIPE would now take.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        assert!(NoSignal(&a).write_all(&big).is_err());
    }
}
