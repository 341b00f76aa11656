//! Whether a login comes from somewhere a key plugged into this host cannot be touched:
//! the module asks, to offer a touch or a code; here because the module links no more of
//! pam_mfa than this crate and the protocol.

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
}
