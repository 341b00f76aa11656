//! Wall-clock time for OTP steps and lock-outs.
//!
//! Time is read from the system clock only (tests move it with libfaketime, never through
//! a hook in the product). A clock before 1970 is treated as an error rather than clamped,
//! so that a broken clock fails closed instead of producing predictable steps.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Seconds since the Unix epoch.
pub fn now() -> Result<UnixTime> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Clock)?;
    i64::try_from(since.as_secs()).map_err(|_| Error::Clock)
}

/// Formats a Unix time in the local time zone for people (one implementation with the
/// module's, which links only the protocol crate).
pub use pam_mfa_protocol::{UnixTime, format_local};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_2020() {
        assert!(now().unwrap() > 1_577_836_800);
    }

    #[test]
    fn formats_a_known_time() {
        // The process time zone may be anything; only the date part is stable across
        // zones for a time near midday UTC.
        let s = format_local(1_700_000_000 + 12 * 3600);
        assert!(s.starts_with("2023-11-1"), "{s}");
        assert!(s.len() >= 19, "{s}");
    }
}
