//! Wall-clock time for OTP steps and lock-outs.
//!
//! Time is read from the system clock only (tests move it with libfaketime, never through
//! a hook in the product). A clock before 1970 is treated as an error rather than clamped,
//! so that a broken clock fails closed instead of producing predictable steps.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Seconds since the Unix epoch.
pub fn now() -> Result<i64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Clock)?;
    i64::try_from(since.as_secs()).map_err(|_| Error::Clock)
}

/// Formats a Unix time in the local time zone for people ("2026-11-23 04:35:10 UTC").
///
/// Uses the C library's `localtime_r`, which honours `TZ` and `/etc/localtime` the same
/// way every other tool on the host does. Falls back to seconds since the epoch if the
/// C library cannot convert the value.
pub fn format_local(unix: i64) -> String {
    let t: libc::time_t = unix;
    // SAFETY: `tm` is plain old data; an all-zero value is a valid (if meaningless) tm
    // that localtime_r overwrites completely on success.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is the
    // reentrant variant and keeps no reference to them.
    let converted = unsafe { libc::localtime_r(&t, &mut tm) };
    if converted.is_null() {
        return format!("@{unix}");
    }
    let mut buf = [0u8; 64];
    let fmt = c"%Y-%m-%d %H:%M:%S %Z";
    // SAFETY: `buf` is writable for its full length, which is what we pass; `fmt` is a
    // NUL-terminated literal; `tm` was filled in by localtime_r above.
    let len = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    match buf.get(..len).map(std::str::from_utf8) {
        Some(Ok(s)) if len > 0 => s.to_owned(),
        _ => format!("@{unix}"),
    }
}

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
