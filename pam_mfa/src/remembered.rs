//! Remembered login contexts: where the administrator allows it, a successful
//! second factor lets the same user in again at the same PAM service from the same remote
//! host without a code, for a while.
//!
//! Safer than the anchors' `grace_period`: off unless the policy sets
//! `remember_seconds` (at most [`MAX_REMEMBER_SECONDS`]), and a module line can only
//! shorten it; never for a login without a remote host (console, su, sudo) or from the
//! host itself unless the policy says `remember_local allow`; never across users or
//! services; never after a bypass code; and a device removal, a lock-out, an
//! administrator's unlock or the user's own `mfa forget` ends every context of the user.
//! The table is [`crate::store::remembered`].

use crate::clock::UnixTime;
use std::net::IpAddr;

use rusqlite::Connection;

use crate::Result;
use crate::names::UserName;
pub use crate::policy::MAX_REMEMBER_SECONDS;
use crate::policy::Policy;
use crate::store::remembered as table;

/// Longest service name and remote host kept (the schema's bounds); anything longer is
/// never remembered.
pub const MAX_SERVICE_BYTES: usize = 256;
pub const MAX_RHOST_BYTES: usize = 1024;

/// Where a login comes from, as the PAM service set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginContext<'a> {
    /// `PAM_SERVICE`: `sshd`, `sudo`, …
    pub service: &'a str,
    /// `PAM_RHOST`, empty when the service set none.
    pub rhost: &'a str,
    /// The module line's `remember=SECONDS`, which can only shorten the policy's.
    pub line_limit: Option<u32>,
}

/// How long a success is remembered in this context: the policy's time, shortened by the
/// module line's, and 0 (never) where the context does not qualify.
pub fn period(policy: &Policy, ctx: &LoginContext<'_>) -> u32 {
    let allowed = policy.remember_seconds.min(MAX_REMEMBER_SECONDS);
    let seconds = ctx.line_limit.map_or(allowed, |l| l.min(allowed));
    let qualifies = !ctx.service.is_empty()
        && ctx.service.len() <= MAX_SERVICE_BYTES
        && ctx.rhost.len() <= MAX_RHOST_BYTES
        && (policy.remember_local || !is_local(ctx.rhost));
    if qualifies { seconds } else { 0 }
}

/// A login with no remote host, or from this host: the console, su, sudo, or ssh to
/// localhost. Remembering those would exempt everyone at the host itself.
pub fn is_local(rhost: &str) -> bool {
    let host = rhost.trim();
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(a)) => a.is_loopback() || a.is_unspecified(),
        Ok(IpAddr::V6(a)) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Until when `user` is let in without a code in `ctx`, if they are: a context stored
/// under a longer period than the one in force now ends when the current one would.
pub fn let_in_until(
    conn: &Connection,
    policy: &Policy,
    user: &UserName,
    ctx: &LoginContext<'_>,
    now: UnixTime,
) -> Result<Option<UnixTime>> {
    let seconds = period(policy, ctx);
    if seconds == 0 {
        return Ok(None);
    }
    let Some((since, until)) = table::get(conn, user.as_str(), ctx.service, ctx.rhost, now)? else {
        return Ok(None);
    };
    let until = until.min(since.saturating_add(i64::from(seconds)));
    Ok((until > now).then_some(until))
}

/// Remembers a successful second factor of `user` in `ctx` (the caller never calls it
/// for a bypass code); returns until when, or `None` when nothing is remembered here.
pub fn remember(
    conn: &Connection,
    policy: &Policy,
    user: &UserName,
    ctx: &LoginContext<'_>,
    now: UnixTime,
) -> Result<Option<UnixTime>> {
    let seconds = period(policy, ctx);
    if seconds == 0 {
        return Ok(None);
    }
    let until = now.saturating_add(i64::from(seconds));
    table::remember(conn, user.as_str(), ctx.service, ctx.rhost, now, until)?;
    Ok(Some(until))
}

/// Ends every remembered context of `user`: a device removal, a lock-out, an unlock, or
/// `mfa forget`. Returns how many there were.
pub fn forget(conn: &Connection, user: &str) -> Result<usize> {
    table::forget_all(conn, user)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn policy(seconds: u32, local: bool) -> Policy {
        Policy {
            remember_seconds: seconds,
            remember_local: local,
            ..Policy::default()
        }
    }

    fn ctx<'a>(service: &'a str, rhost: &'a str, line_limit: Option<u32>) -> LoginContext<'a> {
        LoginContext {
            service,
            rhost,
            line_limit,
        }
    }

    #[test]
    fn the_period_is_the_policy_s_shortened_by_the_line_and_never_local_by_default() {
        let remote = ctx("sshd", "192.0.2.7", None);
        assert_eq!(period(&Policy::default(), &remote), 0, "off by default");
        assert_eq!(period(&policy(600, false), &remote), 600);
        assert_eq!(
            period(&policy(600, false), &ctx("sshd", "192.0.2.7", Some(60))),
            60
        );
        assert_eq!(
            period(&policy(600, false), &ctx("sshd", "192.0.2.7", Some(6000))),
            600
        );
        assert_eq!(
            period(&policy(0, false), &ctx("sshd", "192.0.2.7", Some(60))),
            0
        );
        for local in [
            "",
            " ",
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert_eq!(
                period(&policy(600, false), &ctx("sshd", local, None)),
                0,
                "{local:?}"
            );
            assert_eq!(
                period(&policy(600, true), &ctx("sshd", local, None)),
                600,
                "{local:?}"
            );
        }
        assert_eq!(period(&policy(600, false), &ctx("", "192.0.2.7", None)), 0);
        let long = "h".repeat(MAX_RHOST_BYTES + 1);
        assert_eq!(period(&policy(600, false), &ctx("sshd", &long, None)), 0);
        assert!(!is_local("example.org") && !is_local("2001:db8::1"));
    }

    #[test]
    fn remembered_for_exactly_the_same_user_service_and_host_until_it_ends() {
        let mut ts = crate::test_support::temp_store();
        let p = policy(600, false);
        let alice = UserName::parse("alice").unwrap();
        let bob = UserName::parse("bob").unwrap();
        let here = ctx("sshd", "192.0.2.7", None);
        let tx = ts.store.write().unwrap();
        assert_eq!(let_in_until(&tx, &p, &alice, &here, T0).unwrap(), None);
        assert_eq!(
            remember(&tx, &p, &alice, &here, T0).unwrap(),
            Some(T0 + 600)
        );
        assert_eq!(
            let_in_until(&tx, &p, &alice, &here, T0 + 599).unwrap(),
            Some(T0 + 600)
        );
        assert_eq!(
            let_in_until(&tx, &p, &alice, &here, T0 + 600).unwrap(),
            None
        );
        for other in [
            ctx("sudo", "192.0.2.7", None),
            ctx("sshd", "192.0.2.8", None),
        ] {
            assert_eq!(let_in_until(&tx, &p, &alice, &other, T0 + 1).unwrap(), None);
        }
        assert_eq!(let_in_until(&tx, &p, &bob, &here, T0 + 1).unwrap(), None);
        // The policy shortened, or the line asks for less: the context ends sooner.
        assert_eq!(
            let_in_until(&tx, &policy(60, false), &alice, &here, T0 + 59).unwrap(),
            Some(T0 + 60)
        );
        assert_eq!(
            let_in_until(&tx, &policy(60, false), &alice, &here, T0 + 60).unwrap(),
            None
        );
        let short = ctx("sshd", "192.0.2.7", Some(30));
        assert_eq!(
            let_in_until(&tx, &p, &alice, &short, T0 + 30).unwrap(),
            None
        );
        // Turned off: nothing is remembered or let in.
        assert_eq!(
            let_in_until(&tx, &Policy::default(), &alice, &here, T0 + 1).unwrap(),
            None
        );
        assert_eq!(
            remember(&tx, &Policy::default(), &alice, &here, T0).unwrap(),
            None
        );
        assert_eq!(forget(&tx, "alice").unwrap(), 1);
        assert_eq!(let_in_until(&tx, &p, &alice, &here, T0 + 1).unwrap(), None);
    }
}
