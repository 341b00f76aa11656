//! Small things the login needs that the library also has (it cannot be linked here: it
//! carries SQLite): local time for messages, whether a login is remote, and whether an
//! answer has the shape of a recovery code. Kept the same as pam_mfa::clock::format_local,
//! pam_mfa::fido2::is_remote and pam_mfa::recovery::normalize; the daemon decides
//! everything that matters again (a shape test here only picks the request).

/// A unix time as local time, for messages to the person and log lines.
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

/// Whether a login comes from somewhere a key plugged into this host cannot be touched.
///
/// Remote means: `PAM_RHOST` names anything but this host's loopback (`localhost`,
/// 127.0.0.0/8, `::1`, `::ffff:127.x.y.z`), or, with no remote host given, the service runs
/// inside an SSH session (`sudo` or `su` typed over SSH: `in_ssh_session`, from
/// `SSH_CONNECTION`/`SSH_CLIENT`). The environment is the caller's to set, which is
/// harmless here: claiming to be remote only swaps the touch for a code (or, with
/// `fido2=require`, refuses), and hiding it only leads to a touch request that whoever
/// cannot reach the key cannot answer.
pub fn is_remote(rhost: Option<&[u8]>, in_ssh_session: bool) -> bool {
    let host = rhost
        .and_then(|h| std::str::from_utf8(h).ok())
        .map(str::trim)
        .unwrap_or_default();
    if host.is_empty() {
        return rhost.is_some_and(|h| !h.is_empty() && std::str::from_utf8(h).is_err())
            || in_ssh_session;
    }
    if in_ssh_session {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.eq_ignore_ascii_case("localhost") || bare.eq_ignore_ascii_case("localhost.") {
        return false;
    }
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => !v4.is_loopback(),
        Ok(std::net::IpAddr::V6(v6)) => {
            !(v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
        }
        Err(_) => true,
    }
}

/// The alphabet and length of recovery and bypass codes (pam_mfa::recovery).
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
const RECOVERY_CHARS: usize = 12;

/// Whether `answer` can be a recovery or bypass code (12 characters of their alphabet,
/// any case, dashes and spaces ignored): such an answer goes to the daemon as one, so a
/// verification code is never mistaken for one.
pub fn could_be_recovery_code(answer: &[u8]) -> bool {
    let mut n = 0usize;
    for &b in answer {
        match b {
            b'-' | b' ' | b'\t' => {}
            _ => {
                if !RECOVERY_ALPHABET.contains(&b.to_ascii_lowercase()) || n == RECOVERY_CHARS {
                    return false;
                }
                n += 1;
            }
        }
    }
    n == RECOVERY_CHARS
}

/// Why `answer` is not a code, in pam_mfa::code::CodeError's words, for the log line of
/// a refusal the daemon reported as malformed (its reply names no reason; the rules are
/// pam_mfa::code::parse's: ASCII digits, spaces and tabs ignored, 6 to 8 digits).
pub fn malformed_reason(answer: &[u8]) -> &'static str {
    const MAX_ANSWER_BYTES: usize = 64;
    if answer.len() > MAX_ANSWER_BYTES {
        return "the code is far too long";
    }
    let mut digits = 0usize;
    for &b in answer {
        match b {
            b' ' | b'\t' => {}
            b'0'..=b'9' => digits += 1,
            _ => return "a code contains only digits",
        }
    }
    match digits {
        0 => "no code was entered",
        _ => "a code has 6 to 8 digits",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_or_local() {
        let r = |h: &str| is_remote(Some(h.as_bytes()), false);
        for local in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "",
        ] {
            assert!(!r(local), "{local:?}");
        }
        for remote in [
            "192.0.2.7",
            "2001:db8::1",
            "host.example",
            "10.0.0.1",
            "0.0.0.0",
            "localhost.example",
            "::ffff:192.0.2.1",
        ] {
            assert!(r(remote), "{remote:?}");
        }
        assert!(!is_remote(None, false));
        assert!(is_remote(None, true));
        assert!(is_remote(Some(b"127.0.0.1"), true));
        assert!(is_remote(Some(b"\xff\xfe"), false));
    }

    #[test]
    fn recovery_shapes() {
        assert!(could_be_recovery_code(b"abcd-efgh-jkmn"));
        assert!(could_be_recovery_code(b"ABCD EFGH JKMN"));
        assert!(!could_be_recovery_code(b"123456"));
        assert!(!could_be_recovery_code(b"abcd-efgh-jkmnp"));
        assert!(!could_be_recovery_code(b"abcd-efgh-jkm1"));
        assert!(!could_be_recovery_code(b""));
    }

    #[test]
    fn malformed_reasons() {
        assert_eq!(malformed_reason(b"12ab56"), "a code contains only digits");
        assert_eq!(malformed_reason(b"  "), "no code was entered");
        assert_eq!(malformed_reason(b"123"), "a code has 6 to 8 digits");
        assert_eq!(malformed_reason(&[b'1'; 300]), "the code is far too long");
    }

    #[test]
    fn local_time() {
        assert!(format_local(1_700_000_000).starts_with("2023-11-1"));
    }
}
