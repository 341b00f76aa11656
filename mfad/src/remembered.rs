//! Remembered login contexts in the daemon: letting a remembered login in,
//! remembering a successful one, and the user's list and `mfa forget`. The rules are
//! [`pam_mfa::remembered`]'s; a context reaches here only from root
//! ([`crate::authorise`]).

use pam_mfa::clock::UnixTime;
use pam_mfa::names::UserName;
use pam_mfa::policy::Policy;
use pam_mfa::store::Store;
use pam_mfa::{audit, clock, policy, remembered};
use pam_mfa_protocol::{LoginContext, RememberedEntry, Response};

use crate::log::{Level, Log};
use crate::service::who;

fn rules_context(ctx: &LoginContext) -> remembered::LoginContext<'_> {
    remembered::LoginContext {
        service: &ctx.service,
        rhost: &ctx.rhost,
        line_limit: ctx.remember_secs,
    }
}

/// `service=… rhost=…` for log lines and audit rows (escaped: both come from the client
/// of the PAM service, the remote host from the network).
fn describe(ctx: &LoginContext) -> String {
    format!(
        "service={} rhost={}",
        pam_mfa_protocol::escape_for_log(ctx.service.as_bytes()),
        pam_mfa_protocol::escape_for_log(ctx.rhost.as_bytes())
    )
}

/// Until when a ready account is let in without a code in `ctx`, under `policy` (the
/// one the request already read); the letting in is logged and audited as such here,
/// since the module will ask nothing more.
pub fn let_in(
    store: &mut Store,
    policy: &Policy,
    account: &UserName,
    ctx: &LoginContext,
    (uid, now): (u32, UnixTime),
    log: &Log,
) -> pam_mfa::Result<Option<UnixTime>> {
    let rules = rules_context(ctx);
    let Some(until) = remembered::let_in_until(store.conn(), policy, account, &rules, now)? else {
        return Ok(None);
    };
    let detail = format!("{} until {}", describe(ctx), clock::format_local(until));
    let tx = store.write()?;
    audit::record(
        &tx,
        now,
        uid,
        account.as_str(),
        "login-remembered",
        None,
        Some(&detail),
    )?;
    tx.commit()?;
    log.log(
        Level::Info,
        &format!(
            "let through: remembered login ({detail}) ({})",
            who(account, uid)
        ),
    );
    Ok(Some(until))
}

/// After a successful second factor in `ctx` (never a bypass code): remembered where the
/// policy and the module line allow it.
pub fn after_success(
    store: &mut Store,
    account: &UserName,
    ctx: Option<&LoginContext>,
    uid: u32,
    now: UnixTime,
    log: &Log,
) -> pam_mfa::Result<()> {
    if ctx.is_none() {
        return Ok(());
    }
    let policy = policy::load(store.conn())?;
    after_success_under(store, &policy, account, ctx, (uid, now), log)
}

/// [`after_success`] under `policy`, which the request read a moment ago (a code login
/// reads it for its settings): with remembering off, as by default, a code login's
/// answer then waits for no second read of the store.
pub fn after_success_under(
    store: &mut Store,
    policy: &Policy,
    account: &UserName,
    ctx: Option<&LoginContext>,
    (uid, now): (u32, UnixTime),
    log: &Log,
) -> pam_mfa::Result<()> {
    let Some(ctx) = ctx else { return Ok(()) };
    if policy.remember_seconds == 0 {
        return Ok(());
    }
    let tx = store.write()?;
    let until = remembered::remember(&tx, policy, account, &rules_context(ctx), now)?;
    tx.commit()?;
    if let Some(until) = until {
        log.log(
            Level::Info,
            &format!(
                "remembering the login ({} until {}) ({})",
                describe(ctx),
                clock::format_local(until),
                who(account, uid)
            ),
        );
    }
    Ok(())
}

/// The account's remembered logins.
pub fn list(
    store: Option<&mut Store>,
    account: &UserName,
    now: UnixTime,
) -> pam_mfa::Result<Response> {
    let rows = match store {
        Some(store) => pam_mfa::store::remembered::list(store.conn(), account.as_str(), now)?,
        None => Vec::new(),
    };
    Ok(Response::Remembered(rows.into_iter().map(entry).collect()))
}

pub fn entry(r: pam_mfa::store::remembered::Remembered) -> RememberedEntry {
    RememberedEntry {
        service: r.service,
        rhost: r.rhost,
        since: r.since,
        until: r.until,
    }
}

/// `mfa forget`: ends every remembered login of the account, audited as the caller.
pub fn forget(
    store: Option<&mut Store>,
    account: &UserName,
    uid: u32,
    now: UnixTime,
    log: &Log,
) -> pam_mfa::Result<Response> {
    let Some(store) = store else {
        return Ok(Response::Forgotten { removed: 0 });
    };
    let tx = store.write()?;
    let removed = remembered::forget(&tx, account.as_str())?;
    audit::record(
        &tx,
        now,
        uid,
        account.as_str(),
        "forget",
        None,
        Some(&format!("{removed} remembered login(s)")),
    )?;
    tx.commit()?;
    log.log(
        Level::Notice,
        &format!(
            "forgot {removed} remembered login(s) ({})",
            who(account, uid)
        ),
    );
    Ok(Response::Forgotten {
        removed: u64::try_from(removed).unwrap_or(u64::MAX),
    })
}
