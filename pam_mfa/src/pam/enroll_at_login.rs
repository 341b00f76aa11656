//! `no_device=enroll`: a user without a device registers an authenticator app during the
//! login itself, through the PAM conversation (the cloud consoles' "require them to
//! register at sign in").
//!
//! The conversation is the only channel (no terminal, no files): the QR code goes out as
//! half-block text lines in one PAM_TEXT_INFO message, the secret only when asked for,
//! then two consecutive codes and a device name are asked for. The same library calls as
//! `mfa enroll totp` do the work, so the checks (names, limits, consecutive codes, the
//! steps used up) are identical; the registration and its audit row commit together.
//!
//! Only on a line with `enroll_at_login`, and the device is held, not active, when this
//! returns: `pam_sm_setcred` activates it once the whole stack has succeeded (see
//! [`super::login_hold`] and [`crate::login_hold`]; issue 16, finding 2).

use pam::constants::PamResultCode;
use pam::constants::{PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO};
use pam::module::PamHandle;
use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

use super::syslog::{Level, Logger};
use super::{Context, Failure, conversation, store_error};
use crate::clock;
use crate::login_hold::{self, LoginHold};
use crate::names::{DeviceName, UserName};
use crate::store::Store;

/// Light modules around the symbol, as ISO/IEC 18004 asks (scanners need it).
const QUIET_ZONE: usize = 4;

/// The QR code of `data` as text, two module rows per line (same drawing as `mfa`).
fn qr_text(data: &str) -> Option<Zeroizing<String>> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let colors = Zeroizing::new(
        code.into_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect::<Vec<bool>>(),
    );
    let size = width + 2 * QUIET_ZONE;
    let dark = |x: usize, y: usize| {
        x >= QUIET_ZONE
            && y >= QUIET_ZONE
            && x < QUIET_ZONE + width
            && y < QUIET_ZONE + width
            && colors.get((y - QUIET_ZONE) * width + (x - QUIET_ZONE)) == Some(&true)
    };
    let mut out = Zeroizing::new(String::with_capacity(size.div_ceil(2) * (size * 3 + 1)));
    for y in (0..size).step_by(2) {
        for x in 0..size {
            out.push(match (dark(x, y), dark(x, y + 1)) {
                (false, false) => ' ',
                (true, false) => '▀',
                (false, true) => '▄',
                (true, true) => '█',
            });
        }
        out.push('\n');
    }
    Some(out)
}

fn conv_failed(code: PamResultCode) -> Failure {
    (
        Level::Error,
        format!("conversation failed during registration at login ({code:?})"),
        PamResultCode::PAM_CONV_ERR,
    )
}

fn refused(why: impl std::fmt::Display) -> Failure {
    (
        Level::Notice,
        format!("registration at login failed: {why}"),
        PamResultCode::PAM_AUTH_ERR,
    )
}

fn say(pamh: &PamHandle, text: &str) -> Result<(), Failure> {
    conversation(pamh)
        .map_err(conv_failed)?
        .send(PAM_TEXT_INFO, text)
        .map(|_| ())
        .map_err(conv_failed)
}

fn ask(
    pamh: &PamHandle,
    style: pam::constants::PamMessageStyle,
    q: &str,
) -> Result<Zeroizing<String>, Failure> {
    let answer = conversation(pamh)
        .map_err(conv_failed)?
        .send(style, q)
        .map_err(conv_failed)?
        .ok_or_else(|| refused("no answer"))?;
    let text = String::from_utf8(answer.as_bytes().to_vec())
        .map_err(|_| refused("an answer is not valid text"))?;
    Ok(Zeroizing::new(text))
}

/// Registers a device for `user` through the conversation; `PAM_SUCCESS` once its codes
/// were right, the device held for this login's `pam_sm_setcred`.
pub(super) fn enroll(
    pamh: &mut PamHandle,
    store: &mut Store,
    user: &UserName,
    ctx: &Context,
) -> Result<PamResultCode, Failure> {
    // Recorded as the service's uid (root for sshd, sudo, login).
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    crate::audit::attach(store.conn(), uid).map_err(store_error)?;
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
    let name = DeviceName::parse(name.trim()).map_err(refused)?;
    let issuer = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty() && !h.chars().any(char::is_control))
        .unwrap_or_else(|| "pam_mfa".to_owned());
    let now = clock::now().map_err(store_error)?;
    let hold = LoginHold::generate().map_err(store_error)?;
    let pending =
        login_hold::begin_totp(store, user, &name, &issuer, &hold, now).map_err(refused)?;
    let qr = qr_text(&pending.uri).ok_or_else(|| refused("the QR code cannot be drawn"))?;
    let mut text = Zeroizing::new(String::with_capacity(qr.len() + 128));
    text.push_str("Scan this QR code with your authenticator app:\n\n");
    text.push_str(&qr);
    say(pamh, &text)?;
    let wants_secret = ask(
        pamh,
        PAM_PROMPT_ECHO_ON,
        "Press Enter once scanned, or type \"secret\" to see the key for typing in: ",
    )?;
    if wants_secret.trim().eq_ignore_ascii_case("secret") {
        let mut text = Zeroizing::new(String::with_capacity(256));
        text.push_str("Secret key: ");
        text.push_str(&pending.secret.to_base32_grouped());
        text.push_str(&format!(
            "\nType: time-based, {}, {} digits, every {} seconds",
            pending.params.algorithm, pending.params.digits, pending.params.period
        ));
        say(pamh, &text)?;
    }
    let first = ask(pamh, PAM_PROMPT_ECHO_OFF, "Enter the code the app shows: ")?;
    let second = ask(
        pamh,
        PAM_PROMPT_ECHO_OFF,
        "Wait for the next code and enter it: ",
    )?;
    login_hold::hold_totp(
        store,
        user,
        &name,
        &hold,
        first.as_bytes(),
        second.as_bytes(),
        clock::now().map_err(store_error)?,
    )
    .map_err(refused)?;
    super::login_hold::remember(pamh, &hold).map_err(|code| {
        (
            Level::Error,
            format!("registration at login failed: cannot keep it for the login's end ({code:?})"),
            PamResultCode::PAM_SYSTEM_ERR,
        )
    })?;
    let _ = say(
        pamh,
        &format!("Codes accepted: device \"{name}\" is registered once your login completes."),
    );
    Logger::new(pamh).log(
        Level::Info,
        &format!(
            "codes of device \"{}\" accepted at login; it is kept if the login succeeds ({})",
            name.as_str().escape_debug(),
            ctx.describe()
        ),
    );
    Ok(PamResultCode::PAM_SUCCESS)
}
