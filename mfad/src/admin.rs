//! `mfa admin …` through the daemon: the policy, every account's devices, lock-outs,
//! bypass codes and the audit trail. Root only ([`crate::authorise`] refuses anyone
//! else); each runs the library's calls (`pam_mfa::admin`, one implementation with
//! `mfa`), with audit rows written as the peer's uid, and the device removal's row through
//! the connection's actor, attached for that one request ([`pam_mfa::audit::as_actor`]).
//! Views of a store that does not exist yet show the defaults; a change creates it, as
//! `mfa` does.

use pam_mfa::clock::UnixTime;
use std::path::Path;

use pam_mfa::names::DeviceName;
use pam_mfa::store::Store;
use pam_mfa::tokens::inventory;
use pam_mfa::{Error, admin, audit, clock};
use pam_mfa_protocol::{
    AccountEntry, AuditEntry, BypassEntry, BypassReply, ErrorKind, ErrorReply, PolicyReply,
    Response, SecretBytes, TokenEntry, TokensImportedReply,
};

use crate::authorise::Admin;
use crate::log::{Level, Log};
use crate::service::{open_store, unavailable};

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply::new(kind, message))
}

/// A library error as the administrator should read it; `Err` for the store's own
/// failures, which are "unavailable".
fn refusal(e: Error) -> Result<Response, Error> {
    if e.is_system() {
        return Err(e);
    }
    Ok(error(ErrorKind::Invalid, e.to_string()))
}

pub fn handle(store: &mut Option<Store>, db: &Path, uid: u32, work: Admin, log: &Log) -> Response {
    let changes = !matches!(
        work,
        Admin::PolicyShow | Admin::List | Admin::Audit { .. } | Admin::TokensList
    );
    let store = match open_store(store, db, changes) {
        Ok(s) => s,
        Err(e) => return unavailable(log, &e),
    };
    run(store, uid, work, log).unwrap_or_else(|e| unavailable(log, &e))
}

/// A syslog line for an administrator's change (never a code).
fn changed(log: &Log, uid: u32, what: &str) {
    log.log(Level::Notice, &format!("uid {uid} {what}"));
}

fn run(store: Option<&mut Store>, uid: u32, work: Admin, log: &Log) -> pam_mfa::Result<Response> {
    let now = clock::now()?;
    let Some(store) = store else {
        // Only views reach here without a store: nothing recorded yet.
        return Ok(match work {
            Admin::PolicyShow => policy_reply(&pam_mfa::policy::Policy::default()),
            Admin::List => Response::Accounts(Vec::new()),
            Admin::Audit { .. } => Response::AuditRows(Vec::new()),
            Admin::TokensList => Response::Tokens(Vec::new()),
            _ => error(ErrorKind::Unavailable, "the device store cannot answer"),
        });
    };
    match work {
        Admin::PolicyShow => Ok(policy_reply(&admin::policy_of(Some(store))?)),
        Admin::PolicySet { key, value } => match admin::set_policy(store, &key, &value, uid, now) {
            Ok(()) => {
                changed(
                    log,
                    uid,
                    &format!("set policy {}={}", key.escape_debug(), value.escape_debug()),
                );
                Ok(Response::Done)
            }
            Err(e) => refusal(e),
        },
        Admin::List => Ok(Response::Accounts(
            admin::overview(store.conn(), now)?
                .into_iter()
                .map(account_entry)
                .collect(),
        )),
        Admin::Audit { account, since } => {
            let since = match since.map(|s| admin::parse_since(&s, now)).transpose() {
                Ok(s) => s,
                Err(message) => return Ok(error(ErrorKind::Invalid, message)),
            };
            let rows = audit::list(store.conn(), account.as_ref().map(|a| a.as_str()), since)?;
            Ok(Response::AuditRows(
                rows.into_iter().map(audit_entry).collect(),
            ))
        }
        Admin::AuditPrune { older_than } => {
            let age = match older_than
                .as_deref()
                .map(|text| admin::prune_age(text).map(|age| (age, text)))
                .transpose()
            {
                Ok(a) => a,
                Err(message) => return Ok(error(ErrorKind::Invalid, message)),
            };
            match admin::prune_audit(store, age, uid, now) {
                Ok((removed, rule)) => {
                    changed(log, uid, &format!("pruned {removed} audit row(s) {rule}"));
                    Ok(Response::Pruned {
                        removed: u64::try_from(removed).unwrap_or(u64::MAX),
                        rule,
                    })
                }
                Err(e) => refusal(e),
            }
        }
        Admin::Bypass {
            account,
            uses,
            expires_in,
        } => {
            let secs = match admin::bypass_lifetime(&expires_in) {
                Ok(s) => s,
                Err(message) => return Ok(error(ErrorKind::Invalid, message)),
            };
            match admin::issue_bypass(store, &account, uses, secs, uid, now) {
                Ok((code, expires_at)) => {
                    changed(
                        log,
                        uid,
                        &format!(
                            "issued a bypass code ({uses} use(s), expires in {}) for user {}",
                            expires_in.escape_debug(),
                            account.as_str().escape_debug()
                        ),
                    );
                    Ok(Response::BypassCode(BypassReply {
                        user: account.as_str().to_owned(),
                        code: SecretBytes::from_slice(code.as_bytes()),
                        uses,
                        expires_at,
                    }))
                }
                Err(e) => refusal(e),
            }
        }
        Admin::Unlock { account } => match admin::unlock(store, &account, uid, now) {
            Ok(()) => {
                changed(
                    log,
                    uid,
                    &format!("unlocked user {}", account.as_str().escape_debug()),
                );
                Ok(Response::Done)
            }
            Err(e) => refusal(e),
        },
        Admin::TokensImport {
            seeds,
            format,
            replace,
        } => tokens_import(store, uid, &seeds, format, replace, log, now),
        Admin::TokensList => Ok(Response::Tokens(
            inventory::list(store.conn())?
                .into_iter()
                .map(|t| TokenEntry {
                    serial: t.serial,
                    kind: t.mode.as_str().to_owned(),
                    digits: t.digits,
                    assigned_to: t.assigned.as_ref().map(|a| a.user.clone()),
                    device: t.assigned.map(|a| a.device),
                    imported: t.imported_at,
                })
                .collect(),
        )),
        Admin::TokensRemove { serial } => tokens_remove(store, uid, &serial, log, now),
        Admin::Remove { account, name } => {
            let removed = DeviceName::existing(&name).and_then(|name| {
                audit::as_actor(store, uid, |s| {
                    admin::remove_device(s, &account, &name, now)
                })?;
                Ok(name)
            });
            match removed {
                Ok(name) => {
                    changed(
                        log,
                        uid,
                        &format!(
                            "removed device {:?} for user {}",
                            name.as_str(),
                            account.as_str().escape_debug()
                        ),
                    );
                    Ok(Response::Done)
                }
                Err(e) => refusal(e),
            }
        }
    }
}

/// An account of `mfa admin list`, the same for the local store's and the fleet's.
pub(crate) fn account_entry(a: admin::AccountOverview) -> AccountEntry {
    AccountEntry {
        user: a.user,
        devices: a.devices.into_iter().map(crate::service::entry).collect(),
        recovery_codes_left: a.codes.recovery_left,
        bypass_codes: a
            .codes
            .bypass
            .into_iter()
            .map(|b| BypassEntry {
                uses_left: b.uses_left,
                expires: b.expires_at,
                issued: b.created_at,
                issued_by_uid: b.created_by,
            })
            .collect(),
        remembered: a
            .remembered
            .into_iter()
            .map(crate::remembered::entry)
            .collect(),
    }
}

/// A row of `mfa admin audit`, the same for the local store's and the fleet's.
pub(crate) fn audit_entry(r: audit::Entry) -> AuditEntry {
    AuditEntry {
        at: r.at,
        uid: r.actor_uid,
        user: r.user,
        action: r.action,
        device: r.device,
        detail: r.detail,
    }
}

/// `mfa admin tokens import`: the whole file in one transaction, with its audit row.
fn tokens_import(
    store: &mut Store,
    uid: u32,
    seeds: &[pam_mfa::tokens::TokenSeed],
    format: pam_mfa::tokens::Format,
    replace: bool,
    log: &Log,
    now: UnixTime,
) -> pam_mfa::Result<Response> {
    let format_name = format_name(format);
    let imported = (|| {
        let tx = store.write()?;
        let done = inventory::import(&tx, seeds, replace, now)?;
        audit::record(
            &tx,
            now,
            uid,
            "*",
            "token-import",
            None,
            Some(&format!(
                "{} added, {} replaced ({})",
                done.added,
                done.replaced,
                format_name.to_uppercase()
            )),
        )?;
        tx.commit()?;
        Ok(done)
    })();
    match imported {
        Ok(done) => Ok(tokens_imported(log, uid, done, format)),
        Err(e) => refusal(e),
    }
}

/// A seed file's name in the audit row and the reply.
pub(crate) fn format_name(format: pam_mfa::tokens::Format) -> &'static str {
    match format {
        pam_mfa::tokens::Format::Pskc => "pskc",
        pam_mfa::tokens::Format::Csv => "csv",
    }
}

/// An import done, logged and answered the same way for the local inventory and the
/// fleet's.
pub(crate) fn tokens_imported(
    log: &Log,
    uid: u32,
    done: inventory::Imported,
    format: pam_mfa::tokens::Format,
) -> Response {
    changed(
        log,
        uid,
        &format!(
            "imported {} hardware tokens ({} replaced)",
            done.added + done.replaced,
            done.replaced
        ),
    );
    Response::TokensImported(TokensImportedReply {
        added: u32::try_from(done.added).unwrap_or(u32::MAX),
        replaced: u32::try_from(done.replaced).unwrap_or(u32::MAX),
        format: format_name(format).to_owned(),
    })
}

/// A token taken out of an inventory (local or the fleet's), logged and answered.
pub(crate) fn token_removed(log: &Log, uid: u32, serial: &str) -> Response {
    changed(
        log,
        uid,
        &format!("removed hardware token {:?}", serial.escape_debug()),
    );
    Response::Done
}

fn tokens_remove(
    store: &mut Store,
    uid: u32,
    serial: &str,
    log: &Log,
    now: UnixTime,
) -> pam_mfa::Result<Response> {
    let removed = (|| {
        let tx = store.write()?;
        inventory::remove(&tx, serial)?;
        audit::record(
            &tx,
            now,
            uid,
            "*",
            "token-remove",
            None,
            Some(&format!("serial {serial}")),
        )?;
        tx.commit()?;
        Ok(())
    })();
    match removed {
        Ok(()) => Ok(token_removed(log, uid, serial)),
        Err(e) => refusal(e),
    }
}

fn policy_reply(p: &pam_mfa::policy::Policy) -> Response {
    Response::Policy(PolicyReply {
        self_service: p.self_service.as_str().to_owned(),
        max_devices: p.max_devices,
        no_device: p.no_device.as_str().to_owned(),
        max_failures: p.max_failures,
        lockout_seconds: p.lockout_seconds,
        window: p.window,
        audit_retention_days: p.audit_retention_days,
        audit_retention_days_in_effect: p.audit_retention_days(),
        remember_seconds: p.remember_seconds,
        remember_local: if p.remember_local { "allow" } else { "deny" }.to_owned(),
    })
}
