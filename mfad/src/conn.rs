//! Accepting connections, the caps on them, and reading requests within deadlines.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pam_mfa_protocol::{
    DecodeError, ErrorKind, ErrorReply, FrameError, MAX_MESSAGE, MAX_ROOT_MESSAGE, Response,
    decode_request, encode_response, read_frame_limited, write_frame,
};

use crate::authorise::authorise;
use crate::log::{Level, Log};
use crate::turns::Turns;

/// Connections one non-root uid may have open at once.
pub const PER_UID: usize = 8;
/// Connections all non-root peers together may have open.
pub const USERS_TOTAL: usize = 64;
/// Root's own allowance, never used up by users.
pub const ROOT_TOTAL: usize = 64;
/// How long a new connection may take to start its first request.
pub const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(2);
/// How long a connection may sit idle between requests.
pub const IDLE_WAIT: Duration = Duration::from_secs(10);
/// How long a request may take to arrive once its first byte has.
pub const FRAME_TIME: Duration = Duration::from_secs(2);
/// How long writing an answer may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// A refused peer of the same uid is logged at most once in this time.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// Connection threads' stacks: decoding is bounded (ciborium's recursion limit; a frame's
/// size bounds only the heap), so far less than the default 8 MiB.
const STACK: usize = 512 * 1024;

/// Who a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// Root's own processes (sshd, login, root's `mfa`): root's allowance.
    Root,
    /// A root process a user started and may stop (su and sudo keep the caller's real
    /// uid): root's allowance, and at most [`PER_UID`] of it for that user, so that one
    /// user's stopped logins cannot use up what every login needs.
    RootFor(u32),
    /// A user's own process: the users' allowance.
    User(u32),
}

impl Holder {
    /// From the peer's effective uid and pid (SO_PEERCRED) and, for a root peer, its real
    /// uid ([`peer_real_uid`]). This decides only whose allowance a connection uses,
    /// never what it may ask (that is the effective uid).
    fn of(euid: u32, pid: i32, stream: &UnixStream) -> Self {
        if euid != 0 {
            return Self::User(euid);
        }
        match peer_real_uid(stream, pid) {
            Some(ruid) if ruid != 0 => Self::RootFor(ruid),
            _ => Self::Root,
        }
    }

    /// The uid a refusal names in the log.
    fn uid(self) -> u32 {
        match self {
            Self::Root => 0,
            Self::RootFor(uid) | Self::User(uid) => uid,
        }
    }
}

/// The real uid of the process at the other end of `stream` (whose pid SO_PEERCRED gave
/// as `pid`): asked of the kernel through a pidfd of the peer (SO_PEERPIDFD, Linux 6.5;
/// PIDFD_GET_INFO, Linux 6.13), which names that very process and costs half as much as
/// reading /proc/PID/status (the kernel formats the whole file for one field); on an
/// older kernel, from /proc, where the pid may be gone or reused by then. `None`: the
/// peer is gone.
fn peer_real_uid(stream: &UnixStream, pid: i32) -> Option<u32> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static NO_PIDFD_INFO: AtomicBool = AtomicBool::new(false);
    if !NO_PIDFD_INFO.load(Ordering::Relaxed) {
        match pidfd_real_uid(stream) {
            Ok(ruid) => return ruid,
            Err(()) => NO_PIDFD_INFO.store(true, Ordering::Relaxed),
        }
    }
    real_uid(pid)
}

/// `struct pidfd_info` of <linux/pidfd.h>, as of Linux 6.13 (PIDFD_INFO_SIZE_VER0).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    spare0: u32,
}

/// `_IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info)`.
const PIDFD_GET_INFO: u64 =
    (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as u64) << 16) | (0xFF << 8) | 11;
/// Always answered, even unasked; asked anyway.
const PIDFD_INFO_CREDS: u64 = 1 << 1;

/// The peer's real uid through its pidfd: `Ok(None)` when the peer is gone, `Err(())`
/// when this kernel cannot tell this way.
fn pidfd_real_uid(stream: &UnixStream) -> Result<Option<u32>, ()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut raw: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `raw` and `len` are valid for writes and `len` is `raw`'s size; the
    // descriptor is the stream's, open for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERPIDFD,
            (&raw mut raw).cast(),
            &raw mut len,
        )
    };
    if rc != 0 || raw < 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(()),
        };
    }
    // SAFETY: the kernel just made this descriptor for us; nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_CREDS,
        ..PidfdInfo::default()
    };
    // SAFETY: `info` is a `struct pidfd_info` of the size the request number encodes,
    // valid for reads and writes during the call.
    let rc = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO as _, &raw mut info) };
    if rc != 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(()),
        };
    }
    if info.mask & PIDFD_INFO_CREDS == 0 {
        return Err(());
    }
    Ok(Some(info.ruid))
}

/// The real uid of process `pid` (the first field of /proc/PID/status's `Uid:` line).
fn real_uid(pid: i32) -> Option<u32> {
    if pid <= 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|ruid| ruid.parse().ok())
}

#[derive(Default)]
struct Counts {
    per_uid: HashMap<u32, usize>,
    users: usize,
    root: usize,
    /// Root connections of processes users started, by user.
    root_for: HashMap<u32, usize>,
    refusal_logged: HashMap<u32, Instant>,
}

impl Counts {
    fn admit(&mut self, holder: Holder) -> bool {
        match holder {
            Holder::Root | Holder::RootFor(_) if self.root >= ROOT_TOTAL => false,
            Holder::Root => {
                self.root += 1;
                true
            }
            Holder::RootFor(uid) => {
                let theirs = self.root_for.entry(uid).or_insert(0);
                if *theirs >= PER_UID {
                    return false;
                }
                *theirs += 1;
                self.root += 1;
                true
            }
            Holder::User(uid) => {
                let mine = self.per_uid.entry(uid).or_insert(0);
                if *mine >= PER_UID || self.users >= USERS_TOTAL {
                    return false;
                }
                *mine += 1;
                self.users += 1;
                true
            }
        }
    }

    fn release(&mut self, holder: Holder) {
        let (map, total, uid) = match holder {
            Holder::Root => {
                self.root = self.root.saturating_sub(1);
                return;
            }
            Holder::RootFor(uid) => (&mut self.root_for, &mut self.root, uid),
            Holder::User(uid) => (&mut self.per_uid, &mut self.users, uid),
        };
        *total = total.saturating_sub(1);
        if let Some(n) = map.get_mut(&uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&uid);
            }
        }
    }

    /// Whether a refusal for `uid` should be logged now (rate limited per uid).
    fn should_log_refusal(&mut self, uid: u32, now: Instant) -> bool {
        if self.refusal_logged.len() > 4096 {
            self.refusal_logged
                .retain(|_, t| now.duration_since(*t) < REFUSAL_LOG_EVERY);
        }
        match self.refusal_logged.get(&uid) {
            Some(t) if now.duration_since(*t) < REFUSAL_LOG_EVERY => false,
            _ => {
                self.refusal_logged.insert(uid, now);
                true
            }
        }
    }
}

/// A slot held by a connection thread; given back however the thread ends.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    holder: Holder,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.holder);
    }
}

/// How long a connection thread waits in `accept` for a connection before it ends, if
/// another thread is waiting there too: starting a thread costs more than a request does,
/// and every login opens a connection or two.
const THREAD_KEEP: Duration = Duration::from_secs(30);

/// What the connection threads share.
struct Shared {
    listener: UnixListener,
    counts: Arc<Mutex<Counts>>,
    /// Threads waiting in `accept` (or about to): never left at zero while a thread can
    /// be started.
    idle: AtomicUsize,
    turns: Arc<Turns>,
    log: Arc<Log>,
    /// The answer to a connection over the caps.
    busy: Option<zeroize::Zeroizing<Vec<u8>>>,
}

/// Accepts and serves connections for ever. Every connection thread waits in `accept`
/// itself and serves what it accepts (the kernel wakes one waiter per connection), so a
/// connection costs no hand-over from an accepting thread to a serving one; a thread
/// that takes the last waiting place starts another, so one thread per open connection
/// plus one is always waiting, as before.
pub fn accept_loop(listener: UnixListener, turns: &Arc<Turns>, log: &Arc<Log>) {
    // Waiting in `accept` is how a thread is idle: a socket handed over non-blocking
    // (systemd's NonBlocking=) would have the threads spin.
    let _ = listener.set_nonblocking(false);
    // A spare thread ends after THREAD_KEEP without a connection: `accept` returns
    // EAGAIN then. Without the timeout, spare threads only stay.
    let _ = nix::sys::socket::setsockopt(
        &listener,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(
            libc::time_t::try_from(THREAD_KEEP.as_secs()).unwrap_or(30),
            0,
        ),
    );
    let shared = Arc::new(Shared {
        listener,
        counts: Arc::new(Mutex::new(Counts::default())),
        idle: AtomicUsize::new(1),
        turns: turns.clone(),
        log: log.clone(),
        busy: encode_response(&Response::Error(ErrorReply::new(
            ErrorKind::Busy,
            "too many connections from this user; try again later",
        )))
        .ok(),
    });
    connection_thread(&shared, true);
}

/// One connection thread: accepts, serves, and accepts again; a thread that is not
/// `lasting` ends when it has waited [`THREAD_KEEP`] and another thread is waiting too.
fn connection_thread(shared: &Arc<Shared>, lasting: bool) {
    loop {
        let stream = match shared.listener.accept() {
            Ok((stream, _)) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if !lasting
                    && shared
                        .idle
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                            (n > 1).then(|| n - 1)
                        })
                        .is_ok()
                {
                    return;
                }
                continue;
            }
            Err(e) => {
                // Out of descriptors or memory: wait a moment rather than spin; the
                // connections being served will give theirs back.
                if e.kind() != io::ErrorKind::Interrupted {
                    std::thread::sleep(Duration::from_millis(20));
                }
                continue;
            }
        };
        if shared.idle.fetch_sub(1, Ordering::AcqRel) == 1 {
            start_thread(shared);
        }
        // A bug that panics in a request ends that connection (its slot and the store's
        // turn are given back as the stack unwinds), never the thread: one of them is
        // the daemon's main thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| take(shared, stream)));
        shared.idle.fetch_add(1, Ordering::AcqRel);
    }
}

/// Starts a connection thread to wait in `accept`. If none can start, the threads
/// serving connections accept again when they are done.
fn start_thread(shared: &Arc<Shared>) {
    shared.idle.fetch_add(1, Ordering::AcqRel);
    let spare = shared.clone();
    let started = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || connection_thread(&spare, false));
    if started.is_err() {
        shared.idle.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Admits a connection within the caps and serves it, or refuses it.
fn take(shared: &Shared, stream: UnixStream) {
    let (uid, holder) =
        match nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials) {
            Ok(cred) => (cred.uid(), Holder::of(cred.uid(), cred.pid(), &stream)),
            // Nobody we can name: nothing to serve.
            Err(_) => return,
        };
    let admitted = {
        let mut c = shared.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.admit(holder) {
            true
        } else {
            let by = holder.uid();
            if c.should_log_refusal(by, Instant::now()) {
                shared.log.log(
                    Level::Notice,
                    &format!(
                        "refused connections from uid {by}{}: over the limit of open \
                         connections (logged once a minute)",
                        if matches!(holder, Holder::RootFor(_)) {
                            " (its su or sudo)"
                        } else {
                            ""
                        }
                    ),
                );
            }
            false
        }
    };
    if !admitted {
        refuse_now(stream, shared.busy.as_ref().map(|b| &b[..]));
        return;
    }
    let slot = Slot {
        counts: shared.counts.clone(),
        holder,
    };
    serve(stream, uid, &shared.turns, &shared.log);
    drop(slot);
}

/// Sends the short `Busy` answer if the socket takes it without waiting, then closes.
fn refuse_now(mut stream: UnixStream, busy: Option<&[u8]>) {
    if let Some(body) = busy
        && stream.set_nonblocking(true).is_ok()
    {
        let _ = write_frame(&mut stream, body);
    }
}

/// Reads from the stream within a deadline: until the first byte, `first_byte_by`; after
/// it, [`FRAME_TIME`] from then. A peer sending one byte a second gets nowhere.
struct Deadline<'a> {
    stream: &'a UnixStream,
    first_byte_by: Instant,
    frame_by: Option<Instant>,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let by = self.frame_by.unwrap_or(self.first_byte_by);
        let left = by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let n = (&*self.stream).read(buf)?;
        if n > 0 && self.frame_by.is_none() {
            self.frame_by = Some(Instant::now() + FRAME_TIME);
        }
        Ok(n)
    }
}

fn answer(stream: &UnixStream, response: &Response) -> bool {
    match encode_response(response) {
        Ok(body) => write_frame(&mut &*stream, &body).is_ok(),
        Err(_) => false,
    }
}

/// The largest request a peer may send: root's seed files (`mfa admin tokens import`) may
/// be large; anyone else's requests are small, and a user must not make the daemon hold
/// megabytes.
pub fn frame_limit(uid: u32) -> usize {
    if uid == 0 {
        MAX_ROOT_MESSAGE
    } else {
        MAX_MESSAGE
    }
}

/// One connection: requests, one at a time, until the peer closes, goes quiet, or sends
/// something that is not a request (answered with an error, then closed: the stream
/// cannot be trusted to be at a frame boundary any more).
fn serve(stream: UnixStream, uid: u32, turns: &Turns, log: &Log) {
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let mut wait = FIRST_REQUEST_WAIT;
    loop {
        let mut reader = Deadline {
            stream: &stream,
            first_byte_by: Instant::now() + wait,
            frame_by: None,
        };
        wait = IDLE_WAIT;
        let body = match read_frame_limited(&mut reader, frame_limit(uid)) {
            Ok(body) => body,
            Err(e @ (FrameError::TooLarge(_) | FrameError::Empty)) => {
                answer(&stream, &Response::Error(DecodeError::Frame(e).reply()));
                return;
            }
            // Closed, cut off, too slow: nothing to answer.
            Err(_) => return,
        };
        let request = match decode_request(&body) {
            Ok(r) => r,
            Err(e) => {
                answer(&stream, &Response::Error(e.reply()));
                return;
            }
        };
        drop(body);
        let work = match authorise(uid, request) {
            Ok(w) => w,
            Err(refused) => {
                if let Some(line) = &refused.log {
                    log.log(Level::Notice, line);
                }
                if !answer(&stream, &Response::Error(refused.reply)) {
                    return;
                }
                continue;
            }
        };
        // A user's token registration that fails is answered after a fixed time, whatever
        // the serial: waited out here, after the turn is given back,
        // never while holding the store that serves everyone.
        let started = Instant::now();
        let token_registration = uid != 0 && work.is_token_registration();
        let response = turns.run(uid, work, log);
        if token_registration && matches!(response, Response::Error(_)) {
            pam_mfa::enrollment::wait_out_token_refusal(started);
        }
        let answered = answer(&stream, &response);
        turns.tidy(log);
        if !answered {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn caps() {
        use Holder::{Root, User};
        let mut c = Counts::default();
        for _ in 0..PER_UID {
            assert!(c.admit(User(1000)));
        }
        assert!(!c.admit(User(1000)), "per-uid cap");
        assert!(c.admit(User(1001)), "another user is not affected");
        for _ in 0..ROOT_TOTAL {
            assert!(c.admit(Root));
        }
        assert!(!c.admit(Root));
        c.release(User(1000));
        assert!(c.admit(User(1000)));
        let mut uid = 2000;
        while c.users < USERS_TOTAL {
            assert!(c.admit(User(uid)));
            uid += 1;
        }
        assert!(!c.admit(User(uid)), "global cap for users");
        c.release(Root);
        assert!(c.admit(Root), "root's allowance is its own");
    }

    /// A user's su and sudo (root processes the user may stop) take root's allowance,
    /// at most PER_UID of it per user: the rest stays for everyone else's logins.
    #[test]
    fn a_users_root_processes_have_a_cap_of_their_own() {
        use Holder::{Root, RootFor, User};
        let mut c = Counts::default();
        for _ in 0..PER_UID {
            assert!(c.admit(RootFor(1000)));
        }
        assert!(!c.admit(RootFor(1000)), "one user's su and sudo are capped");
        assert!(c.admit(RootFor(1001)), "another user's are not");
        assert!(c.admit(User(1000)), "nor the user's own connections");
        for _ in PER_UID + 1..ROOT_TOTAL {
            assert!(c.admit(Root));
        }
        assert!(!c.admit(Root), "they come out of root's allowance");
        c.release(RootFor(1000));
        assert!(c.admit(Root));
        assert!(!c.admit(RootFor(1000)), "root's allowance is full again");
        assert_eq!(c.root_for.get(&1000), Some(&(PER_UID - 1)));
    }

    #[test]
    fn a_root_peer_started_by_a_user_counts_for_the_user() {
        // This test process: root's own (real uid 0) when the tests run as root.
        let me = i32::try_from(std::process::id()).unwrap();
        let ruid = nix::unistd::getuid().as_raw();
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(
            Holder::of(0, me, &a),
            if ruid == 0 {
                Holder::Root
            } else {
                Holder::RootFor(ruid)
            }
        );
        assert_eq!(Holder::of(1234, me, &a), Holder::User(1234));
        assert_eq!(real_uid(-1), None);
        // Both ways of asking agree (the pidfd one where the kernel has it).
        assert_eq!(real_uid(me), Some(ruid));
        if let Ok(by_pidfd) = pidfd_real_uid(&a) {
            assert_eq!(by_pidfd, Some(ruid));
        }
    }

    /// A peer that is really started by another user (a real uid that is not root):
    /// seen as such through its pidfd and through /proc.
    #[test]
    fn the_real_uid_of_a_peer_is_its_own() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        // A child that takes real uid 4242 (keeping euid 0, as su does), connects, and
        // holds the connection until we are done.
        let path = std::env::temp_dir().join(format!("mfad_conn_ruid_{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut child = std::process::Command::new("perl")
            .args([
                "-MSocket",
                "-e",
                "$< = 4242; die unless $< == 4242; socket(S, AF_UNIX, SOCK_STREAM, 0) or die; \
                 connect(S, pack_sockaddr_un($ARGV[0])) or die; sysread(S, $x, 1)",
            ])
            .arg(&path)
            .spawn()
            .unwrap();
        let (ours, _) = listener.accept().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert_eq!(real_uid(pid), Some(4242));
        if let Ok(by_pidfd) = pidfd_real_uid(&ours) {
            assert_eq!(by_pidfd, Some(4242));
        }
        assert_eq!(Holder::of(0, pid, &ours), Holder::RootFor(4242));
        drop(ours);
        child.wait().unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
