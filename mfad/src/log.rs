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
        eprintln!("mfad: {message}");
    }
}
