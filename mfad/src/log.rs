//! Syslog, facility authpriv, as the module logs: one line per outcome or refusal, never
//! a code or a secret. Without a syslog socket the line goes to stderr (the journal, under
//! systemd).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Error,
    Notice,
    Info,
}

type Backend = Logger<LoggerBackend, Formatter3164>;

/// How long after failing to reach syslog a line goes straight to stderr, before the
/// next attempt: trying costs a socket and a failed connect per path the syslog crate
/// knows (three), at every line, on a host without a syslog socket.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The connection to syslog, or when the last attempt to make one failed.
struct Sink {
    logger: Option<Backend>,
    failed_at: Option<Instant>,
}

impl Sink {
    fn new() -> Self {
        let logger = connect();
        let failed_at = logger.is_none().then(Instant::now);
        Self { logger, failed_at }
    }

    /// Connects again, unless an attempt failed less than [`RETRY_AFTER`] ago.
    fn reconnect(&mut self) {
        if self.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
            self.logger = None;
            return;
        }
        self.logger = connect();
        self.failed_at = self.logger.is_none().then(Instant::now);
    }
}

pub struct Log {
    logger: Mutex<Sink>,
    /// Whether a line syslog does not take goes to stderr: the daemon's (the journal
    /// keeps it), not `mfa --db`'s, whose stderr is the person's terminal.
    stderr_fallback: bool,
}

fn connect() -> Option<Backend> {
    syslog::unix(Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "mfad".into(),
        pid: std::process::id(),
    })
    .ok()
}

fn send(logger: &mut Backend, level: Level, message: &str) -> bool {
    match level {
        Level::Error => logger.err(message),
        Level::Notice => logger.notice(message),
        Level::Info => logger.info(message),
    }
    .is_ok()
}

impl Log {
    pub fn open() -> Self {
        Self {
            logger: Mutex::new(Sink::new()),
            stderr_fallback: true,
        }
    }

    /// A log for the daemon's handlers run inside `mfa --db`: syslog only.
    pub fn syslog_only() -> Self {
        Self {
            logger: Mutex::new(Sink::new()),
            stderr_fallback: false,
        }
    }

    pub fn log(&self, level: Level, message: &str) {
        let mut guard = self
            .logger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(logger) = guard.logger.as_mut()
            && send(logger, level, message)
        {
            return;
        }
        // The syslog daemon may have restarted: one new connection (if the last attempt
        // was not just now), then stderr.
        guard.reconnect();
        if let Some(logger) = guard.logger.as_mut()
            && send(logger, level, message)
        {
            return;
        }
        if self.stderr_fallback {
            // One write for the line (eprintln! writes its pieces one by one).
            let line = format!("mfad: {message}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        }
    }
}
