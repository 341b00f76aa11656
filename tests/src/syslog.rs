//! A syslog daemon of the test's own: a Unix datagram socket that the namespace shows as
//! `/dev/log`, and a thread that collects what glibc's `syslog()` sends to it.
//!
//! glibc sends one datagram per message in the RFC 3164 form
//! `<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE` (`[PID]` only with `LOG_PID`). The tests read the
//! parsed records to check what the module logged for each login, so they need a way to
//! know that everything sent so far has been read: [`SyslogListener::sync`] sends a marker
//! datagram and waits for it. A datagram socket queues in sending order, and a program
//! under test sends its lines before it reports its result to the test, so after a sync
//! every line of every finished login is in [`SyslogListener::records`].

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::process::CHILD_DEADLINE;

/// The facility number of `LOG_AUTHPRIV`, where PAM modules log.
pub const AUTHPRIV: u8 = 10;

/// How long the reader blocks before it looks at the stop flag again (not a
/// synchronisation delay: [`SyslogListener::sync`] is how tests wait).
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// The tag of the marker datagrams [`SyslogListener::sync`] sends.
const MARKER_TAG: &str = "pam_mfa_tests-sync";

/// One parsed syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogRecord {
    /// Facility × 8 + severity.
    pub priority: u8,
    /// The tag without a `[PID]` (glibc's default is the program's name: `sshd`, `sudo`).
    pub tag: String,
    /// The message after `TAG: `.
    pub message: String,
    /// The whole datagram.
    pub raw: String,
}

impl SyslogRecord {
    /// The facility (`priority / 8`).
    pub fn facility(&self) -> u8 {
        self.priority >> 3
    }

    /// The severity (`priority % 8`; 6 info, 5 notice, 3 error).
    pub fn severity(&self) -> u8 {
        self.priority & 7
    }

    /// Parses an RFC 3164 datagram as glibc writes it; `None` if it is not one.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix('<')?;
        let (pri, rest) = rest.split_once('>')?;
        let priority: u8 = pri.parse().ok()?;
        // "Mmm dd hh:mm:ss " is 16 bytes.
        let rest = rest.get(16..)?;
        let (tag, message) = rest.split_once(": ")?;
        let tag = tag.split('[').next().unwrap_or(tag).to_owned();
        Some(Self {
            priority,
            tag,
            message: message.trim_end_matches(['\n', '\0']).to_owned(),
            raw: raw.to_owned(),
        })
    }
}

impl std::fmt::Display for SyslogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The listening socket and its reader thread; see the module documentation.
pub struct SyslogListener {
    path: PathBuf,
    records: Arc<Mutex<Vec<SyslogRecord>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    markers: AtomicU64,
}

impl SyslogListener {
    /// Binds a datagram socket at `path` and starts reading it. The socket is writable by
    /// all, like a real `/dev/log`, but lives in the test's root-only directory; the
    /// programs under test log from root processes.
    pub fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path)
            .unwrap_or_else(|e| panic!("cannot bind a syslog socket at {}: {e}", path.display()));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        socket
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("cannot set a read timeout on the syslog socket");
        let records: Arc<Mutex<Vec<SyslogRecord>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let records = records.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    match socket.recv(&mut buf) {
                        Ok(n) => {
                            let raw = String::from_utf8_lossy(&buf[..n]).into_owned();
                            let record = SyslogRecord::parse(&raw).unwrap_or(SyslogRecord {
                                priority: 0,
                                tag: String::new(),
                                message: raw.clone(),
                                raw,
                            });
                            records
                                .lock()
                                .expect("syslog records poisoned")
                                .push(record);
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            path: path.to_owned(),
            records,
            stop,
            reader: Some(reader),
            markers: AtomicU64::new(0),
        }
    }

    /// The socket's path outside the namespace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn collected(&self) -> Vec<SyslogRecord> {
        self.records
            .lock()
            .expect("syslog records poisoned")
            .clone()
    }

    /// Waits until every datagram sent before this call has been read.
    pub fn sync(&self) {
        let n = self.markers.fetch_add(1, Ordering::Relaxed);
        let marker = format!("<{}>Jan  1 00:00:00 {MARKER_TAG}: {n}", AUTHPRIV * 8 + 7);
        let sender = UnixDatagram::unbound().expect("cannot create a datagram socket");
        sender
            .send_to(marker.as_bytes(), &self.path)
            .unwrap_or_else(|e| panic!("cannot send to {}: {e}", self.path.display()));
        let started = Instant::now();
        let seen = |records: &[SyslogRecord]| {
            records
                .iter()
                .any(|r| r.tag == MARKER_TAG && r.message == n.to_string())
        };
        while !seen(&self.records.lock().expect("syslog records poisoned")) {
            assert!(
                started.elapsed() < CHILD_DEADLINE,
                "the syslog reader never received its own marker"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Every message received so far (after a [`SyslogListener::sync`]), markers left out.
    pub fn records(&self) -> Vec<SyslogRecord> {
        self.sync();
        self.collected()
            .into_iter()
            .filter(|r| r.tag != MARKER_TAG)
            .collect()
    }

    /// How many messages there are now: pass it to [`SyslogListener::since`] to see only
    /// what one step of a test logged.
    pub fn mark(&self) -> usize {
        self.records().len()
    }

    /// The messages received after `mark`.
    pub fn since(&self, mark: usize) -> Vec<SyslogRecord> {
        self.records().into_iter().skip(mark).collect()
    }
}

impl Drop for SyslogListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The messages of `records` that a PAM module logged for `service`'s auth stack
/// (`MODULE(SERVICE:auth): …`), message text only.
pub fn module_lines(records: &[SyslogRecord], module: &str, service: &str) -> Vec<String> {
    let prefix = format!("{module}({service}:auth): ");
    records
        .iter()
        .filter_map(|r| r.message.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// Panics if any message contains `code` as a separate number (a run of digits equal to
/// it), the way a leaked code would appear.
pub fn assert_code_not_logged(records: &[SyslogRecord], code: &str) {
    for r in records {
        let leaked = r
            .message
            .split(|c: char| !c.is_ascii_digit())
            .any(|digits| digits == code);
        assert!(!leaked, "a syslog message contains the code {code}: {r}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_glibc_datagrams_with_and_without_pid() {
        let r = SyslogRecord::parse(
            "<86>Nov 23 04:52:47 sshd: pam_mfa(sshd:auth): authenticated with device \"phone\" (user=a rhost=127.0.0.1)",
        )
        .expect("parses");
        assert_eq!((r.facility(), r.severity()), (AUTHPRIV, 6));
        assert_eq!(r.tag, "sshd");
        assert!(r.message.starts_with("pam_mfa(sshd:auth): "));
        let r = SyslogRecord::parse("<85>Nov  3 04:52:47 sudo[123]: x: y").expect("parses");
        assert_eq!((r.tag.as_str(), r.message.as_str()), ("sudo", "x: y"));
    }

    #[test]
    fn a_code_inside_a_longer_number_is_not_a_leak() {
        let r = SyslogRecord::parse("<85>Nov  3 04:52:47 su: pid 1234567 ok").expect("parses");
        assert_code_not_logged(&[r], "234567");
    }

    #[test]
    #[should_panic(expected = "contains the code")]
    fn a_logged_code_is_caught() {
        let r =
            SyslogRecord::parse("<85>Nov  3 04:52:47 su: code 123456 was wrong").expect("parses");
        assert_code_not_logged(&[r], "123456");
    }
}
