//! `no_device=enroll`: a user without a device registers an authenticator app during the
//! login itself, through the PAM conversation (the cloud consoles' "require them to
//! register at sign in").
//!
//! The conversation is the only channel (no terminal, no files): the QR code (drawn by
//! `mfad`, as `mfa` draws it) goes out as half-block text lines in one PAM_TEXT_INFO
//! message, the secret only when asked for,
//! then two consecutive codes and a device name are asked for. `mfad` does the work
//! (`BeginHeld`, `ConfirmHeld`: the same library calls as `mfa enroll totp`), so the
//! checks (names, limits, consecutive codes, the steps used up) are identical.
//!
//! Only on a line with `enroll_at_login`, and the device is held, not active, when this
//! returns: `pam_sm_setcred` activates it (`ActivateHeld`) once the whole stack has
//! succeeded, with the value the daemon returned here (see [`super::login_hold`]; issue
//! 16, finding 2).

use pam::constants::PamResultCode;
use pam::constants::{PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO};
use pam::module::PamHandle;
use zeroize::Zeroizing;

use pam_mfa_protocol::{ErrorKind, ErrorReply, Request, Response, SecretBytes};

use super::client::Daemon;
use super::conversation::Converse;
use super::syslog::{Level, Logger};
use super::{Context, Failure, conv_failed, daemon_refused, unavailable, unexpected};

fn refused(why: impl std::fmt::Display) -> Failure {
    Failure::new(
        Level::Notice,
        format!("registration at login failed: {why}"),
        PamResultCode::PAM_AUTH_ERR,
    )
}

const DURING: &str = " during registration at login";

fn say(person: &mut impl Converse, text: &str) -> Result<(), Failure> {
    person
        .send(PAM_TEXT_INFO, text)
        .map(|_| ())
        .map_err(|code| conv_failed(code, DURING))
}

fn ask(
    person: &mut impl Converse,
    style: pam::constants::PamMessageStyle,
    q: &str,
) -> Result<Zeroizing<String>, Failure> {
    let answer = person
        .send(style, q)
        .map_err(|code| conv_failed(code, DURING))?
        .ok_or_else(|| refused("no answer"))?;
    let text =
        String::from_utf8(answer.to_vec()).map_err(|_| refused("an answer is not valid text"))?;
    Ok(Zeroizing::new(text))
}

/// A refusal of the daemon. Refusing what this login asked (a name taken, wrong codes)
/// fails the registration, and so the login; a daemon that cannot serve it (its store,
/// another version) makes the login unavailable, as for any other request.
fn daemon_said(what: &str, e: &ErrorReply) -> Failure {
    match e.kind {
        ErrorKind::Invalid | ErrorKind::Denied | ErrorKind::Other => {
            refused(e.message.escape_debug())
        }
        _ => daemon_refused(what, e),
    }
}

/// Registers a device for `user` through the conversation; `PAM_SUCCESS` once its codes
/// were right, the device held for this login's `pam_sm_setcred`.
pub(super) fn enroll(
    pamh: &mut PamHandle,
    daemon: &Daemon,
    user: &str,
    ctx: &Context,
) -> Result<PamResultCode, Failure> {
    say(
        pamh,
        "You have no verification device yet; your administrator asks you to register \
         one now.",
    )?;
    let name = ask(
        pamh,
        PAM_PROMPT_ECHO_ON,
        "Name for the new device (e.g. phone): ",
    )?;
    let name = name.trim().to_owned();
    let held = match daemon
        .ask(&Request::BeginHeld {
            user: user.to_owned(),
            name: name.clone(),
            // The daemon's default: this host's name, as for `mfa enroll totp`.
            issuer: None,
        })
        .map_err(unavailable)?
    {
        Ok(Response::HeldTotp(h)) => h,
        Ok(_) => return Err(unexpected("begin-held")),
        Err(e) => return Err(daemon_said("begin-held", &e)),
    };
    let pending = &held.pending;
    let qr = std::str::from_utf8(held.qr.as_bytes())
        .ok()
        .filter(|q| !q.is_empty())
        .ok_or_else(|| refused("the daemon sent no QR code"))?;
    let mut text = Zeroizing::new(String::with_capacity(qr.len() + 128));
    text.push_str("Scan this QR code with your authenticator app:\n\n");
    text.push_str(qr);
    say(pamh, &text)?;
    let wants_secret = ask(
        pamh,
        PAM_PROMPT_ECHO_ON,
        "Press Enter once scanned, or type \"secret\" to see the key for typing in: ",
    )?;
    if wants_secret.trim().eq_ignore_ascii_case("secret") {
        let mut text = Zeroizing::new(String::with_capacity(256));
        text.push_str("Secret key: ");
        text.push_str(
            std::str::from_utf8(held.secret_grouped.as_bytes())
                .map_err(|_| refused("the daemon's secret is not text"))?,
        );
        text.push_str(&format!(
            "\nType: time-based, {}, {} digits, every {} seconds",
            pending.algorithm, pending.digits, pending.period
        ));
        say(pamh, &text)?;
    }
    let first = ask(pamh, PAM_PROMPT_ECHO_OFF, "Enter the code the app shows: ")?;
    let second = ask(
        pamh,
        PAM_PROMPT_ECHO_OFF,
        "Wait for the next code and enter it: ",
    )?;
    match daemon
        .ask(&Request::ConfirmHeld {
            user: user.to_owned(),
            name: pending.name.clone(),
            hold: SecretBytes::from_slice(held.hold.as_bytes()),
            code1: SecretBytes::from_slice(first.as_bytes()),
            code2: SecretBytes::from_slice(second.as_bytes()),
        })
        .map_err(unavailable)?
    {
        Ok(Response::Done) => {}
        Ok(_) => return Err(unexpected("confirm-held")),
        Err(e) => return Err(daemon_said("confirm-held", &e)),
    }
    super::login_hold::remember(pamh, held.hold.as_bytes()).map_err(|code| {
        Failure::new(
            Level::Error,
            format!("registration at login failed: cannot keep it for the login's end ({code:?})"),
            PamResultCode::PAM_SYSTEM_ERR,
        )
    })?;
    let shown = &pending.name;
    let _ = say(
        pamh,
        &format!("Codes accepted: device \"{shown}\" is registered once your login completes."),
    );
    Logger::new(pamh).log(
        Level::Info,
        &format!(
            "codes of device \"{}\" accepted at login; it is kept if the login succeeds ({})",
            shown.escape_debug(),
            ctx.describe()
        ),
    );
    Ok(PamResultCode::PAM_SUCCESS)
}
