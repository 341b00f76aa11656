//! Syslog, facility authpriv, as the module logs: one line per outcome or refusal, never
//! a code or a secret. Without a syslog socket the line goes to stderr (the journal, under
//! systemd).

use std::sync::Mutex;

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Error,
    Notice,
    Info,
}

type Backend = Logger<LoggerBackend, Formatter3164>;

pub struct Log {
    logger: Mutex<Option<Backend>>,
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
            logger: Mutex::new(connect()),
            stderr_fallback: true,
        }
    }

    /// A log for the daemon's handlers run inside `mfa --db`: syslog only.
    pub fn syslog_only() -> Self {
        Self {
            logger: Mutex::new(connect()),
            stderr_fallback: false,
        }
    }

    pub fn log(&self, level: Level, message: &str) {
        let mut guard = self
            .logger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(logger) = guard.as_mut()
            && send(logger, level, message)
        {
            return;
        }
        // The syslog daemon may have restarted: one new connection, then stderr.
        *guard = connect();
        if let Some(logger) = guard.as_mut()
            && send(logger, level, message)
        {
            return;
        }
        if self.stderr_fallback {
            eprintln!("mfad: {message}");
        }
    }
}
