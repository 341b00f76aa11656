//! The PAM entry points: a thin layer that turns PAM's calling convention into calls to
//! [`crate::login`], and every outcome into a PAM result plus one syslog line.
//!
//! Rules for code in here, because it runs inside sshd, sudo and login: never print, never
//! exit, never panic (the `pam_hooks!` guard turns a stray one into `PAM_ABORT`, and the
//! crate denies the constructs that cause them), start no threads, and never return
//! `PAM_SUCCESS` from an error path.

pub mod args;
mod enroll_at_login;
pub mod keys_library;
mod login_hold;
mod security_key;
mod syslog;

use std::ffi::CStr;

use pam::constants::{
    PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SILENT, PAM_TEXT_INFO, PamFlag,
    PamResultCode,
};
use pam::conv::Conv;
use pam::items::RHost;
use pam::module::{PamHandle, PamHooks};

use crate::clock;
use crate::fido2;
use crate::login::{self, Factors, KeyFailure, Outcome, Readiness, Refusal};
use crate::names::{self, UserName, escape_for_log};
use crate::store::Store;
use args::{Fido2Mode, ModuleArgs};
use security_key::{key_refused, security_key};
use syslog::{Level, Logger};

pub struct PamMfa;
pam::pam_hooks!(PamMfa);

impl PamHooks for PamMfa {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        authenticate(pamh, &args, flags)
    }

    /// Activates a device registered during this login, now that the whole stack has
    /// succeeded (see [`login_hold`]); otherwise there is nothing to set, and success keeps
    /// stacks with `setcred` working.
    fn sm_setcred(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        login_hold::setcred(pamh, &args, flags)
    }
}

/// Everything a log line needs to say who and from where.
struct Context {
    user: String,
    rhost: String,
    /// Whether the person is not at this computer (see [`fido2::is_remote`]).
    remote: bool,
}

impl Context {
    fn describe(&self) -> String {
        if self.rhost.is_empty() {
            format!("user={}", self.user)
        } else {
            format!("user={} rhost={}", self.user, self.rhost)
        }
    }
}

fn authenticate(pamh: &mut PamHandle, raw_args: &[&CStr], flags: PamFlag) -> PamResultCode {
    // A registration held by an earlier attempt on this handle is not this attempt's.
    login_hold::forget(pamh);
    let args = match args::parse(raw_args.iter().map(|a| a.to_bytes())) {
        Ok(a) => a,
        Err(e) => {
            Logger::new(pamh).log(
                Level::Error,
                &format!("{e}; refusing all logins until fixed"),
            );
            return PamResultCode::PAM_SERVICE_ERR;
        }
    };
    let raw_user = match user_bytes(pamh) {
        Ok(u) => u,
        Err(code) => {
            Logger::new(pamh).log(Level::Error, "cannot determine the user name");
            return code;
        }
    };
    let raw_rhost = match pamh.get_item::<RHost>() {
        Ok(Some(h)) => Some(h.0.to_bytes().to_vec()),
        _ => None,
    };
    let in_ssh_session =
        std::env::var_os("SSH_CONNECTION").is_some() || std::env::var_os("SSH_CLIENT").is_some();
    let ctx = Context {
        user: escape_for_log(&raw_user),
        rhost: raw_rhost.as_deref().map(escape_for_log).unwrap_or_default(),
        remote: fido2::is_remote(raw_rhost.as_deref(), in_ssh_session),
    };
    let user = match UserName::from_bytes(&raw_user) {
        Ok(u) => u,
        Err(_) => {
            Logger::new(pamh).log(
                Level::Error,
                &format!("refusing invalid user name ({})", ctx.describe()),
            );
            return PamResultCode::PAM_USER_UNKNOWN;
        }
    };
    let silent = flags & PAM_SILENT != 0;
    let result = pam_mfa_fido2::panic_guard::catch(|| run(pamh, &args, &user, &ctx, silent))
        .unwrap_or_else(|panic| {
            Err((
                Level::Error,
                format!("internal error ({panic}); refusing"),
                PamResultCode::PAM_AUTHINFO_UNAVAIL,
            ))
        });
    result.unwrap_or_else(|(level, message, code)| {
        let mut log = Logger::new(pamh);
        log.set_debug(args.debug);
        log.log(level, &format!("{message} ({})", ctx.describe()));
        code
    })
}

type Failure = (Level, String, PamResultCode);

fn store_error(e: crate::Error) -> Failure {
    (
        Level::Error,
        format!("{e}; refusing"),
        PamResultCode::PAM_AUTHINFO_UNAVAIL,
    )
}

/// The login flow of ARCHITECTURE.md. `Err` carries the log line for a refusal.
fn run(
    pamh: &mut PamHandle,
    args: &ModuleArgs,
    given: &UserName,
    ctx: &Context,
    silent: bool,
) -> Result<PamResultCode, Failure> {
    let mut store = Store::open_existing(&args.db).map_err(store_error)?;
    let account = names::canonical_account(given).map_err(store_error)?;
    let want_keys = args.fido2 != Fido2Mode::Off;
    // Everything read before the prompt, in one read transaction: the policy (one
    // primary-key read; module arguments override its numbers), the user's failure state
    // and their active devices.
    let (policy, before) = match &store {
        Some(s) => {
            let now = clock::now().map_err(store_error)?;
            s.read(|s| {
                let policy = crate::policy::load(s.conn())?;
                let before = match &account {
                    Some(user) => Some(login::before_prompt(s, user, now, want_keys)?),
                    None => None,
                };
                Ok((policy, before))
            })
            .map_err(store_error)?
        }
        None => (crate::policy::Policy::default(), None),
    };
    let effective = ModuleArgs {
        settings: args.effective_settings(&policy),
        ..args.clone()
    };
    let args = &effective;
    // `nullok` in the service file lets this service's users through whatever the
    // policy says; otherwise the policy's `no_device` decides.
    let let_through = args.nullok || policy.no_device == crate::policy::NoDevice::Allow;
    let why_through = if args.nullok {
        "nullok"
    } else {
        "policy no_device=allow"
    };

    let readiness = match (&before, &account) {
        // An unknown account is prompted and refused like any other failure, whatever
        // nullok says: it has no devices, but it is not an account that may skip them.
        (_, None) => Readiness::Ready,
        (None, Some(_)) => Readiness::NoDevices,
        (Some(b), Some(_)) => b.readiness,
    };
    match readiness {
        // Only short codes are held back: the person is told, and may still use a
        // security key, a recovery code or an administrator's bypass code.
        Readiness::Locked { until } => tell_locked(pamh, until, silent),
        Readiness::NoDevices if let_through => {
            let mut log = Logger::new(pamh);
            log.set_debug(args.debug);
            if store.is_none() {
                // Routine right after installation, but also what a mistyped db= looks
                // like, so it is never silent.
                log.log(
                    Level::Notice,
                    &format!(
                        "device store {} does not exist yet; {why_through} lets the user \
                         through ({})",
                        args.db.display(),
                        ctx.describe()
                    ),
                );
            } else {
                // Every login that skips the second factor leaves a trace, so an
                // administrator can see who still has to register before nullok goes.
                log.log(
                    Level::Info,
                    &format!(
                        "no active device; {why_through} lets the user through ({})",
                        ctx.describe()
                    ),
                );
            }
            return Ok(PamResultCode::PAM_IGNORE);
        }
        Readiness::NoDevices
            if policy.no_device == crate::policy::NoDevice::Enroll
                && args.fido2 != Fido2Mode::Require =>
        {
            if !args.enroll_at_login {
                // Issue 16, finding 2: registering at login is safe only behind a first
                // factor that ends the stack, which only the administrator can vouch for,
                // line by line.
                let mut log = Logger::new(pamh);
                log.set_debug(args.debug);
                log.log(
                    Level::Notice,
                    &format!(
                        "policy no_device=enroll asks for registration at login, but this line does \
                         not allow it (no enroll_at_login): treated as no_device=deny ({})",
                        ctx.describe()
                    ),
                );
            } else if let (Some(store), Some(user)) = (store.as_mut(), &account) {
                return enroll_at_login::enroll(pamh, store, user, ctx);
            }
        }
        Readiness::NoDevices | Readiness::Ready => {}
    }

    if want_keys {
        match (store.as_mut(), &account, &before) {
            (Some(store), Some(user), Some(before)) => {
                let factors = &before.factors;
                if let Some(result) = security_key(pamh, args, store, user, factors, ctx, silent)? {
                    return Ok(result);
                }
            }
            // No store or no such account: nobody here has a key, and this service
            // accepts nothing else.
            _ if args.fido2 == Fido2Mode::Require => {
                return Err(key_refused(
                    pamh,
                    &KeyFailure::NoneRegistered,
                    None,
                    given,
                    silent,
                ));
            }
            _ => {}
        }
    }

    // Users without a device are prompted too, so the prompt does not tell an attacker
    // who has enrolled.
    let answer = ask(pamh, args)?;
    let answer = answer.as_ref().map_or(&[][..], |a| a.as_bytes());
    // The person may have waited at the prompt: the code is checked against the time it
    // was typed, not the time the prompt appeared.
    let now = clock::now().map_err(store_error)?;

    let Some(user) = account else {
        return Err((
            Level::Notice,
            "authentication failure: no such account".to_owned(),
            PamResultCode::PAM_AUTH_ERR,
        ));
    };
    let Some(store) = store.as_mut() else {
        return Err((
            Level::Notice,
            "authentication failure: no active device".to_owned(),
            PamResultCode::PAM_AUTH_ERR,
        ));
    };
    if let Some(code) = crate::recovery::normalize(answer) {
        // The audit row names the process making the login: root for sshd, sudo, su and
        // login, the user for a screen locker.
        let actor = nix::unistd::getuid().as_raw();
        let outcome =
            login::verify_recovery(store, &user, &code, actor, now).map_err(store_error)?;
        return recovery_finish(pamh, outcome, ctx, silent);
    }
    let outcome = login::verify(store, &user, answer, args.settings, now).map_err(store_error)?;
    finish(pamh, outcome, &user, ctx, silent)
}

/// The end of a login with a recovery or bypass code: the person is told how many are
/// left (PAM_TEXT_INFO), and syslog says which kind was used (never the code).
fn recovery_finish(
    pamh: &mut PamHandle,
    outcome: login::RecoveryOutcome,
    ctx: &Context,
    silent: bool,
) -> Result<PamResultCode, Failure> {
    use crate::recovery::Kind;
    match outcome {
        login::RecoveryOutcome::Accepted { kind, remaining } => {
            let text = match kind {
                Kind::Recovery => format!(
                    "Recovery code accepted. You have {remaining} recovery code{} left; \
                     register a new device with `mfa enroll totp NAME`.",
                    if remaining == 1 { "" } else { "s" }
                ),
                Kind::Bypass => format!(
                    "Temporary code accepted ({remaining} use{} left). Register a new \
                     device with `mfa enroll totp NAME`.",
                    if remaining == 1 { "" } else { "s" }
                ),
            };
            if !silent {
                let _ = conversation(pamh).and_then(|c| c.send(PAM_TEXT_INFO, &text));
            }
            Logger::new(pamh).log(
                Level::Notice,
                &format!(
                    "authenticated with a {} code; {remaining} left ({})",
                    kind.as_str(),
                    ctx.describe()
                ),
            );
            Ok(PamResultCode::PAM_SUCCESS)
        }
        login::RecoveryOutcome::Refused => Err((
            Level::Notice,
            "authentication failure: not a valid recovery or bypass code".to_owned(),
            PamResultCode::PAM_AUTH_ERR,
        )),
    }
}

/// Turns a login outcome into the PAM result, the syslog line and, for a security key's
/// failure, a message to the person.
fn finish(
    pamh: &mut PamHandle,
    outcome: Outcome,
    user: &UserName,
    ctx: &Context,
    silent: bool,
) -> Result<PamResultCode, Failure> {
    match outcome {
        Outcome::Accepted { device } => {
            Logger::new(pamh).log(
                Level::Info,
                &format!(
                    "authenticated with device \"{}\" ({})",
                    device.escape_debug(),
                    ctx.describe()
                ),
            );
            Ok(PamResultCode::PAM_SUCCESS)
        }
        Outcome::Locked { until } => Err(locked(pamh, until, silent)),
        Outcome::Refused {
            reason: Refusal::Key(failure),
            locked_until,
        } => Err(key_refused(pamh, &failure, locked_until, user, silent)),
        Outcome::Refused {
            reason,
            locked_until,
        } => Err((
            Level::Notice,
            format!(
                "authentication failure: {}{}",
                reason.log_text(),
                lock_note(locked_until)
            ),
            PamResultCode::PAM_AUTH_ERR,
        )),
    }
}

pub(super) fn lock_note(locked_until: Option<i64>) -> String {
    match locked_until {
        Some(t) => format!("; locked out until {}", clock::format_local(t)),
        None => String::new(),
    }
}

/// Before the prompt of a locked-out user: what is locked, until when, and what still
/// works. (Only users with a device are ever locked out, so this tells nothing about which
/// names are accounts.)
fn tell_locked(pamh: &mut PamHandle, until: i64, silent: bool) {
    if !silent {
        let text = format!(
            "Too many failed attempts: verification codes are locked until {}. A security \
             key, a recovery code or a temporary code from your administrator still works.",
            clock::format_local(until)
        );
        // A courtesy: the login goes on whether or not it got through.
        let _ = conversation(pamh).and_then(|c| c.send(PAM_TEXT_INFO, &text));
    }
}

/// A short code typed while locked out: refused without being checked.
fn locked(pamh: &mut PamHandle, until: i64, silent: bool) -> Failure {
    let when = clock::format_local(until);
    if !silent {
        let text = format!("Too many failed attempts: verification is locked until {when}.");
        // The refusal stands whether or not the message got through.
        let _ = conversation(pamh).and_then(|c| c.send(PAM_ERROR_MSG, &text));
    }
    (
        Level::Notice,
        format!("refused: locked out until {when}"),
        PamResultCode::PAM_MAXTRIES,
    )
}

fn conversation(pamh: &PamHandle) -> Result<Conv<'_>, PamResultCode> {
    pamh.get_item::<Conv>()?.ok_or(PamResultCode::PAM_CONV_ERR)
}

/// The answer to the code prompt; `None` when the application answered with no response
/// at all, which the caller treats exactly as an empty answer: refused, and counted like
/// any other answer that is not a code.
fn ask(
    pamh: &mut PamHandle,
    args: &ModuleArgs,
) -> Result<Option<pam::secret::SecretBytes>, Failure> {
    let style = if args.echo_code {
        PAM_PROMPT_ECHO_ON
    } else {
        PAM_PROMPT_ECHO_OFF
    };
    let conv_failed = |code: PamResultCode| {
        (
            Level::Error,
            format!("conversation failed ({code:?})"),
            PamResultCode::PAM_CONV_ERR,
        )
    };
    let conv = conversation(pamh).map_err(conv_failed)?;
    conv.send(style, &args.prompt).map_err(conv_failed)
}

/// The user name as raw bytes, asking the application for it if it has not set one.
fn user_bytes(pamh: &mut PamHandle) -> Result<Vec<u8>, PamResultCode> {
    // pam_get_user prompts when needed; the item then holds the bytes unaltered, which the
    // string-returning wrapper would refuse to show us when they are not UTF-8.
    match pamh.get_user(None) {
        Ok(u) => Ok(u.into_bytes()),
        Err(_) => match pamh.get_item::<pam::items::User>() {
            Ok(Some(u)) => Ok(u.0.to_bytes().to_vec()),
            _ => Err(PamResultCode::PAM_USER_UNKNOWN),
        },
    }
}
