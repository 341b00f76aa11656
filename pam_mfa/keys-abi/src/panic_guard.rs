//! Turning a panic (a bug) into a refusal and a syslog line, without a word on the host's
//! stderr.
//!
//! Used at both of pam_mfa's C boundaries: the PAM entry points of pam_mfa.so and the
//! entry point of libpam_mfa_keys.so (here because both link this crate, and only this
//! one of pam_mfa's). Unwinding must not cross either, and Rust's default
//! panic hook would first print the message and a backtrace to the host's stderr — into
//! an SSH session or a sudo prompt. Each of the two libraries carries its own copy of the
//! standard library, so the hook installed here governs only panics in that library's
//! code, never the host's (even a Rust host), and it lives and dies with that image.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// Runs `f`; a panic inside comes back as `Err` with its message (no secrets are ever in
/// our panic messages: they come from bounds and overflow checks).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    INSTALL.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{location}")));
        }));
    });
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        // Dropping a payload can itself panic; forget it instead.
        std::mem::forget(payload);
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let r: Result<(), String> = catch(|| {
            let v: Vec<u8> = Vec::new();
            let i = v.len() + 3;
            let _ = v[i];
        });
        let msg = r.unwrap_err();
        assert!(msg.contains("index out of bounds"), "{msg}");
        assert!(msg.contains("panic_guard.rs"), "{msg}");
        assert_eq!(catch(|| 7).unwrap(), 7);
    }
}
