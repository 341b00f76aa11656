//! Logging from inside the host process, through libpam's own `pam_syslog`.
//!
//! `pam_syslog` writes to the authpriv facility with the standard
//! `pam_mfa(SERVICE:auth): …` prefix, through the host's existing syslog connection, so
//! the module neither opens its own socket nor changes the host's `openlog` identity.
//! Messages are passed as a `%s` argument, never as the format, so a user name can't
//! inject format directives.

use std::ffi::{CString, c_char, c_int};

use pam::module::PamHandle;

unsafe extern "C" {
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Error,
    Notice,
    Info,
    Debug,
}

impl Level {
    fn priority(self) -> c_int {
        match self {
            Self::Error => libc::LOG_ERR,
            Self::Notice => libc::LOG_NOTICE,
            Self::Info => libc::LOG_INFO,
            Self::Debug => libc::LOG_DEBUG,
        }
    }
}

pub struct Logger<'a> {
    pamh: &'a PamHandle,
    debug: bool,
}

impl<'a> Logger<'a> {
    pub fn new(pamh: &'a PamHandle) -> Self {
        Self { pamh, debug: false }
    }

    pub fn set_debug(&mut self, debug: bool) {
        self.debug = debug;
    }

    pub fn log(&self, level: Level, message: &str) {
        if matches!(level, Level::Debug) && !self.debug {
            return;
        }
        // Interior NULs cannot come from our own messages; replace rather than drop a line.
        let Ok(msg) = CString::new(message.replace('\0', "\\0")) else {
            return;
        };
        // SAFETY: `pamh` is the live handle libpam passed to this call; "%s" consumes
        // exactly one argument, a NUL-terminated string that outlives the call.
        unsafe {
            pam_syslog(
                std::ptr::from_ref(self.pamh),
                level.priority(),
                c"%s".as_ptr(),
                msg.as_ptr(),
            );
        }
    }
}
