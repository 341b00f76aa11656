//! pam_mfa's PAM module (`libpam_mfa_module.so`, installed as `pam_mfa.so`): a client of
//! `mfad`. It parses its arguments, asks the daemon every question about the store over
//! its socket ([`client`]), and talks to the person through the PAM conversation; it
//! links neither SQLite nor the FIDO2/USB stack (the key ceremony is in
//! `libpam_mfa_keys.so`, loaded only for a key login; the daemon issues the challenge and
//! checks the answer). Every outcome becomes a PAM result plus one syslog line.
//!
//! Rules for code in here, because it runs inside sshd, sudo and login: never print, never
//! exit, never panic (the guard turns a stray one into a refusal, and the crate denies
//! the constructs that cause them), start no threads, and never return `PAM_SUCCESS` from
//! an error path. A daemon that cannot be reached or does not answer in time is
//! `PAM_AUTHINFO_UNAVAIL` (the convention of pam_sss and pam_ldap).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod args;
pub mod client;
mod conversation;
mod enroll_at_login;
mod fail_delay;
pub mod keys_library;
mod login_hold;
pub use pam_mfa_keys_abi::panic_guard;
mod security_key;
mod syslog;

use std::ffi::CStr;
use std::path::Path;

use conversation::Converse;
use pam::constants::{PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SILENT, PamFlag, PamResultCode};
use pam::items::{RHost, Service};
use pam::module::{PamHandle, PamHooks};
use pam_mfa_keys_abi::ClientFailure;
use pam_mfa_protocol::{
    AfterCode, CodeKind, ErrorKind, ErrorReply, KeyRefusal, KeyRule, LineRules, LoginContext,
    NextStep, Notice, RecoveryOutcome, RefusalKind, Request, Response, SecretBytes, VerifyOutcome,
    escape_for_log,
};

use args::{DEFAULT_DB, Fido2Mode, ModuleArgs};
use client::{Daemon, Unavailable};
use pam_mfa_protocol::format_local;
use security_key::{key_refused, security_key};
use syslog::{Level, Logger};

/// The longest user name asked about; the daemon checks names fully, this only keeps
/// nonsense off the socket.
pub const MAX_USER_NAME: usize = 256;

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
    /// Whether the person is not at this computer (see [`pam_mfa_keys_abi::is_remote`]).
    remote: bool,
    /// Where the login comes from, for the daemon's remembered logins; `None` when the
    /// service or the remote host is not text (such a login is never remembered: two
    /// different byte strings must never share a context).
    login: Option<LoginContext>,
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

/// The user name as the daemon is asked about it: UTF-8, no NUL, at most
/// [`MAX_USER_NAME`] bytes, not empty.
fn user_for_daemon(raw: &[u8]) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_USER_NAME || raw.contains(&0) {
        return None;
    }
    String::from_utf8(raw.to_vec()).ok()
}

fn authenticate(pamh: &mut PamHandle, raw_args: &[&CStr], flags: PamFlag) -> PamResultCode {
    // A registration held by an earlier attempt on this handle is not this attempt's.
    login_hold::forget(pamh);
    let args = args::parse(raw_args.iter().map(|a| a.to_bytes()));
    // Before anything can fail; a line whose arguments do not parse fails every login, and
    // gets the delay too (it may not say `nodelay`).
    if !args.as_ref().is_ok_and(|a| a.nodelay) {
        fail_delay::request(pamh);
    }
    let args = match args {
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
    let login = login_context(pamh, raw_rhost.as_deref(), &args);
    let ctx = Context {
        user: escape_for_log(&raw_user),
        rhost: raw_rhost.as_deref().map(escape_for_log).unwrap_or_default(),
        remote: pam_mfa_keys_abi::is_remote(raw_rhost.as_deref(), in_ssh_session),
        login,
    };
    let Some(user) = user_for_daemon(&raw_user) else {
        Logger::new(pamh).log(
            Level::Error,
            &format!("refusing invalid user name ({})", ctx.describe()),
        );
        return PamResultCode::PAM_USER_UNKNOWN;
    };
    let silent = flags & PAM_SILENT != 0;
    let daemon = Daemon::new(&args.socket, args.timeout);
    let result = panic_guard::catch(|| run(pamh, &args, &daemon, &user, &ctx, silent))
        .unwrap_or_else(|panic| {
            Err(Failure::new(
                Level::Error,
                format!("internal error ({panic}); refusing"),
                PamResultCode::PAM_AUTHINFO_UNAVAIL,
            ))
        });
    result.unwrap_or_else(
        |Failure {
             level,
             log: message,
             result: code,
         }| {
            let mut log = Logger::new(pamh);
            log.set_debug(args.debug);
            log.log(level, &format!("{message} ({})", ctx.describe()));
            code
        },
    )
}

/// The service and remote host as text, with this line's `remember=`.
fn login_context(
    pamh: &PamHandle,
    raw_rhost: Option<&[u8]>,
    args: &ModuleArgs,
) -> Option<LoginContext> {
    let service = match pamh.get_item::<Service>() {
        Ok(Some(s)) => String::from_utf8(s.0.to_bytes().to_vec()).ok()?,
        _ => return None,
    };
    let rhost = String::from_utf8(raw_rhost.unwrap_or_default().to_vec()).ok()?;
    Some(LoginContext {
        service,
        rhost,
        remember_secs: Some(args.remember),
    })
}

/// A login that ends without success: the syslog line (at its level) and the PAM result
/// the stack gets.
#[derive(Debug)]
struct Failure {
    level: Level,
    log: String,
    result: PamResultCode,
}

impl Failure {
    fn new(level: Level, log: impl Into<String>, result: PamResultCode) -> Self {
        Self {
            level,
            log: log.into(),
            result,
        }
    }
}

/// The daemon could not be asked: the login is refused as unavailable.
fn unavailable(e: Unavailable) -> Failure {
    Failure::new(
        Level::Error,
        format!("{}; refusing", e.0),
        PamResultCode::PAM_AUTHINFO_UNAVAIL,
    )
}

/// The daemon refused a request of this login (a store it cannot open, a bad override):
/// fail closed, as unavailable.
fn daemon_refused(what: &str, e: &ErrorReply) -> Failure {
    Failure::new(
        Level::Error,
        format!(
            "mfad refused {what} ({:?}: {}); refusing",
            e.kind,
            e.message.escape_debug()
        ),
        PamResultCode::PAM_AUTHINFO_UNAVAIL,
    )
}

fn unexpected(what: &str) -> Failure {
    Failure::new(
        Level::Error,
        format!("mfad answered {what} with something else; refusing"),
        PamResultCode::PAM_AUTHINFO_UNAVAIL,
    )
}

/// `db=`: the module no longer opens the store. The path the daemon serves by default is
/// accepted (an upgraded host must not lock everyone out), with a notice; any other one
/// would silently ask about another store than the line says, so it refuses every login.
fn check_obsolete_db(pamh: &PamHandle, args: &ModuleArgs) -> Result<(), Failure> {
    if !args.explicit.db {
        return Ok(());
    }
    if args.db == Path::new(DEFAULT_DB) {
        Logger::new(pamh).log(
            Level::Notice,
            &format!(
                "module argument db={DEFAULT_DB} is obsolete (mfad keeps the store); \
                 remove it from the PAM line"
            ),
        );
        return Ok(());
    }
    Err(Failure::new(
        Level::Error,
        format!(
            "module argument db={} is no longer supported: the module asks mfad, which \
             serves its own store; run mfad --db on that store and give its socket with \
             socket=PATH instead; refusing all logins until fixed",
            escape_for_log(args.db.as_os_str().as_encoded_bytes())
        ),
        PamResultCode::PAM_SERVICE_ERR,
    ))
}

/// One login: the daemon decides the next step from this line's rules and the account
/// ([`pam_mfa_protocol::Decision`], made by the library's pure `decision::decide`), and
/// this carries it out through the conversation. `Err` carries the log line for a
/// refusal.
fn run(
    pamh: &mut PamHandle,
    args: &ModuleArgs,
    daemon: &Daemon,
    user: &str,
    ctx: &Context,
    silent: bool,
) -> Result<PamResultCode, Failure> {
    check_obsolete_db(pamh, args)?;
    let line = LineRules {
        nullok: args.nullok,
        enroll_at_login: args.enroll_at_login,
        keys: match args.fido2 {
            Fido2Mode::Off => KeyRule::Off,
            Fido2Mode::Prefer => KeyRule::Prefer,
            Fido2Mode::Require => KeyRule::Require,
        },
        remote: ctx.remote,
    };
    let before = match daemon
        .ask(&Request::BeforePrompt {
            user: user.to_owned(),
            want_keys: args.fido2 != Fido2Mode::Off,
            context: ctx.login.clone(),
            line: Some(line),
        })
        .map_err(unavailable)?
    {
        Ok(Response::BeforePrompt(b)) => b,
        Ok(_) => return Err(unexpected("before-prompt")),
        // The daemon checks names fully (this module only keeps nonsense off the socket):
        // a name it refuses is refused here as before, without a prompt.
        Err(e) if e.kind == ErrorKind::Invalid => {
            return Err(Failure::new(
                Level::Error,
                format!(
                    "refusing invalid user name (mfad: {})",
                    e.message.escape_debug()
                ),
                PamResultCode::PAM_USER_UNKNOWN,
            ));
        }
        Err(e) => return Err(daemon_refused("before-prompt", &e)),
    };
    let Some(decision) = before.decision else {
        return Err(unexpected("before-prompt (no decision)"));
    };
    let log_line = |pamh: &mut PamHandle, level: Level, text: &str| {
        let mut log = Logger::new(pamh);
        log.set_debug(args.debug);
        log.log(level, &format!("{text} ({})", ctx.describe()));
    };
    for notice in decision.notices {
        match notice {
            // Only short codes are held back: the person is told, and may still use a
            // security key, a recovery code or an administrator's bypass code.
            Notice::Locked { until } => tell_locked(pamh, until, silent),
            // Registering at login is safe only behind a first
            // factor that ends the stack, which only the administrator can vouch for,
            // line by line.
            Notice::EnrollNotOnThisLine => log_line(
                pamh,
                Level::Notice,
                "policy no_device=enroll asks for registration at login, but this line \
                 cannot register a device (it has no enroll_at_login, or it accepts only \
                 security keys: fido2=require): treated as no_device=deny",
            ),
            Notice::RemoteAsksCode => log_line(
                pamh,
                Level::Debug,
                "remote login: asking for a code, not a security key",
            ),
            _ => {}
        }
    }
    let then = match decision.next {
        // A remembered login (the same user, service and remote host had a second factor
        // accepted lately, where the policy allows remembering): the daemon audited it.
        NextStep::LetInRemembered { until } => {
            log_line(
                pamh,
                Level::Info,
                &format!(
                    "let through: remembered login until {}",
                    format_local(until)
                ),
            );
            return Ok(PamResultCode::PAM_SUCCESS);
        }
        NextStep::LetThrough {
            by_nullok,
            store_missing,
        } => {
            let why = if by_nullok {
                "nullok"
            } else {
                "policy no_device=allow"
            };
            if store_missing {
                // Routine right after installation, but also what a daemon started on a
                // mistyped --db looks like, so it is never silent.
                log_line(
                    pamh,
                    Level::Notice,
                    &format!("mfad's device store does not exist yet; {why} lets the user through"),
                );
            } else {
                // Every login that skips the second factor leaves a trace, so an
                // administrator can see who still has to register before nullok goes.
                log_line(
                    pamh,
                    Level::Info,
                    &format!("no active device; {why} lets the user through"),
                );
            }
            return Ok(PamResultCode::PAM_IGNORE);
        }
        NextStep::Register => return enroll_at_login::enroll(pamh, daemon, user, ctx),
        NextStep::RefuseKey { why } => {
            let failure = match why {
                KeyRefusal::Remote => ClientFailure::Remote,
                _ => ClientFailure::NoneRegistered,
            };
            return Err(key_refused(pamh, &failure, user, silent));
        }
        NextStep::TryKey { code_fallback } => {
            if let Some(result) =
                security_key(pamh, args, daemon, user, ctx, code_fallback, silent)?
            {
                return Ok(result);
            }
            AfterCode::Verify
        }
        NextStep::AskCode { then } => then,
        _ => return Err(unexpected("before-prompt (an unknown step)")),
    };

    let answer = ask(pamh, args)?;
    let answer = answer.as_ref().map_or(&[][..], |a| a.as_slice());
    match then {
        AfterCode::Verify => {}
        AfterCode::RefuseNoAccount => {
            return Err(Failure::new(
                Level::Notice,
                "authentication failure: no such account".to_owned(),
                PamResultCode::PAM_AUTH_ERR,
            ));
        }
        _ => {
            return Err(Failure::new(
                Level::Notice,
                "authentication failure: no active device".to_owned(),
                PamResultCode::PAM_AUTH_ERR,
            ));
        }
    }
    // The daemon checks the code against the time it receives it, after it was typed, and
    // tells a recovery or bypass code from a verification code itself.
    let reply = daemon
        .ask(&Request::VerifyCode {
            user: user.to_owned(),
            answer: SecretBytes::from_slice(answer),
            overrides: args.overrides(),
            context: ctx.login.clone(),
        })
        .map_err(unavailable)?;
    match reply {
        Ok(Response::Verified(outcome)) => finish(pamh, outcome, ctx, silent),
        Ok(Response::Recovery(outcome)) => recovery_finish(pamh, outcome, ctx, silent),
        Ok(_) => Err(unexpected("verify-code")),
        Err(e) => Err(daemon_refused("verify-code", &e)),
    }
}

/// The end of a login with a recovery or bypass code: the person is told how many are
/// left (PAM_TEXT_INFO), and syslog says which kind was used (never the code).
fn recovery_finish(
    pamh: &mut PamHandle,
    outcome: RecoveryOutcome,
    ctx: &Context,
    silent: bool,
) -> Result<PamResultCode, Failure> {
    match outcome {
        RecoveryOutcome::Accepted { kind, remaining } => {
            let (text, kind_name) = match kind {
                CodeKind::Bypass => (
                    format!(
                        "Temporary code accepted ({remaining} use{} left). Register a new \
                         device with `mfa enroll totp NAME`.",
                        if remaining == 1 { "" } else { "s" }
                    ),
                    "bypass",
                ),
                _ => (
                    format!(
                        "Recovery code accepted. You have {remaining} recovery code{} left; \
                         register a new device with `mfa enroll totp NAME`.",
                        if remaining == 1 { "" } else { "s" }
                    ),
                    "recovery",
                ),
            };
            pamh.tell(silent, &text);
            Logger::new(pamh).log(
                Level::Notice,
                &format!(
                    "authenticated with a {kind_name} code; {remaining} left ({})",
                    ctx.describe()
                ),
            );
            Ok(PamResultCode::PAM_SUCCESS)
        }
        _ => Err(Failure::new(
            Level::Notice,
            "authentication failure: not a valid recovery or bypass code".to_owned(),
            PamResultCode::PAM_AUTH_ERR,
        )),
    }
}

/// The log wording of a refusal the daemon decided.
fn refusal_log(reason: &RefusalKind) -> String {
    match reason {
        RefusalKind::Malformed { why } => format!("malformed code: {why}"),
        RefusalKind::WrongCode => "wrong code".to_owned(),
        RefusalKind::Replayed { device } => format!(
            "replayed code of device \"{}\" (already used)",
            device.escape_debug()
        ),
        RefusalKind::NoDevices => "no active device".to_owned(),
        RefusalKind::NoAccount => "no such account".to_owned(),
        RefusalKind::Key { log, .. } => log.clone(),
        _ => "refused".to_owned(),
    }
}

/// Turns a login outcome into the PAM result, the syslog line and, for a security key's
/// refusal, a message to the person.
fn finish(
    pamh: &mut PamHandle,
    outcome: VerifyOutcome,
    ctx: &Context,
    silent: bool,
) -> Result<PamResultCode, Failure> {
    match outcome {
        VerifyOutcome::Accepted { device } => {
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
        VerifyOutcome::Locked { until } => Err(locked(pamh, until, silent)),
        VerifyOutcome::Refused {
            reason:
                RefusalKind::Key {
                    message,
                    log,
                    clone_suspected,
                },
            locked_until,
        } => {
            pamh.warn(silent, &message);
            Err(Failure::new(
                // A counter that went backwards is what a cloned key looks like.
                if clone_suspected {
                    Level::Error
                } else {
                    Level::Notice
                },
                format!("authentication failure: {log}{}", lock_note(locked_until)),
                PamResultCode::PAM_AUTH_ERR,
            ))
        }
        VerifyOutcome::Refused {
            reason,
            locked_until,
        } => Err(Failure::new(
            Level::Notice,
            format!(
                "authentication failure: {}{}",
                refusal_log(&reason),
                lock_note(locked_until)
            ),
            PamResultCode::PAM_AUTH_ERR,
        )),
        _ => Err(unexpected("a verification")),
    }
}

fn lock_note(locked_until: Option<i64>) -> String {
    match locked_until {
        Some(t) => format!("; locked out until {}", format_local(t)),
        None => String::new(),
    }
}

/// Before the prompt of a locked-out user: what is locked, until when, and what still
/// works. (Only users with a device are ever locked out, so this tells nothing about which
/// names are accounts.)
fn tell_locked(person: &mut impl Converse, until: i64, silent: bool) {
    person.tell(
        silent,
        &format!(
            "Too many failed attempts: verification codes are locked until {}. A security \
             key, a recovery code or a temporary code from your administrator still works.",
            format_local(until)
        ),
    );
}

/// A short code typed while locked out: refused without being checked.
///
/// The result is `PAM_AUTH_ERR`, an ordinary failure, not `PAM_MAXTRIES`: sshd takes
/// `PAM_MAXTRIES` as "stop asking" and withdraws keyboard-interactive (and password)
/// authentication for the rest of the connection, so the person saw the lock-out text
/// in a round without prompts and then clients reported that no authentication method
/// was left (paramiko: `BadAuthenticationType` with an empty list) instead of a failed
/// login. sudo and su treat both the same.
fn locked(person: &mut impl Converse, until: i64, silent: bool) -> Failure {
    let when = format_local(until);
    person.warn(
        silent,
        &format!("Too many failed attempts: verification is locked until {when}."),
    );
    Failure::new(
        Level::Notice,
        format!("refused: locked out until {when}"),
        PamResultCode::PAM_AUTH_ERR,
    )
}

/// The answer to the code prompt; `None` when the application answered with no response
/// at all, which the caller treats exactly as an empty answer: refused, and counted like
/// any other answer that is not a code.
fn ask(
    person: &mut impl Converse,
    args: &ModuleArgs,
) -> Result<Option<conversation::Answer>, Failure> {
    let style = if args.echo_code {
        PAM_PROMPT_ECHO_ON
    } else {
        PAM_PROMPT_ECHO_OFF
    };
    person
        .send(style, &args.prompt)
        .map_err(|code| conv_failed(code, ""))
}

/// A conversation that failed (the application, or the person's end of it, went away):
/// the login fails with `PAM_CONV_ERR`; `during` says where, for the log line.
fn conv_failed(code: PamResultCode, during: &str) -> Failure {
    Failure::new(
        Level::Error,
        format!("conversation failed{during} ({code:?})"),
        PamResultCode::PAM_CONV_ERR,
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use conversation::Script;
    use pam::constants::{PAM_ERROR_MSG, PAM_TEXT_INFO};

    /// The code prompt through a scripted conversation: the line's prompt and echo, the
    /// answer passed on as typed, no response at all kept apart, and a conversation that
    /// fails refusing with PAM_CONV_ERR.
    #[test]
    fn the_code_prompt_asks_as_the_line_says() {
        let mut person = Script {
            answers: [Some("123456"), None].into(),
            ..Script::default()
        };
        let mut args = ModuleArgs::default();
        let answer = ask(&mut person, &args).unwrap().unwrap();
        assert_eq!(answer.as_slice(), b"123456");
        args.echo_code = true;
        args.prompt = "Code: ".to_owned();
        assert!(ask(&mut person, &args).unwrap().is_none());
        assert_eq!(
            person.said,
            vec![
                (PAM_PROMPT_ECHO_OFF, "Verification code: ".to_owned()),
                (PAM_PROMPT_ECHO_ON, "Code: ".to_owned()),
            ]
        );
        let failure = ask(&mut person, &args).unwrap_err();
        assert_eq!(failure.result, PamResultCode::PAM_CONV_ERR);
        assert!(
            failure.log.contains("conversation failed"),
            "{}",
            failure.log
        );
    }

    /// A locked-out person is told until when and what still works, a short code is
    /// refused as an ordinary failure (not PAM_MAXTRIES, see `locked`), and PAM_SILENT
    /// keeps both quiet.
    #[test]
    fn the_lock_out_is_told_unless_silent() {
        let mut person = Script::default();
        tell_locked(&mut person, 1_800_000_000, false);
        let failure = locked(&mut person, 1_800_000_000, false);
        assert_eq!(failure.result, PamResultCode::PAM_AUTH_ERR);
        assert!(
            failure.log.starts_with("refused: locked out until"),
            "{}",
            failure.log
        );
        assert_eq!(person.said.len(), 2, "{:?}", person.said);
        assert_eq!(person.said[0].0, PAM_TEXT_INFO);
        assert!(
            person.said[0].1.contains("security key"),
            "{:?}",
            person.said
        );
        assert_eq!(person.said[1].0, PAM_ERROR_MSG);
        assert!(
            person.said[1].1.contains("locked until"),
            "{:?}",
            person.said
        );

        let mut quiet = Script::default();
        tell_locked(&mut quiet, 1_800_000_000, true);
        let _ = locked(&mut quiet, 1_800_000_000, true);
        assert!(quiet.said.is_empty(), "{:?}", quiet.said);
    }

    #[test]
    fn user_names_for_the_daemon() {
        assert_eq!(user_for_daemon(b"alice").as_deref(), Some("alice"));
        assert!(user_for_daemon(b"").is_none());
        assert!(user_for_daemon(b"al\0ice").is_none());
        assert!(user_for_daemon(&[b'a'; MAX_USER_NAME + 1]).is_none());
        assert!(user_for_daemon(&[b'a'; MAX_USER_NAME]).is_some());
        assert!(user_for_daemon(b"\xff").is_none());
    }
}
