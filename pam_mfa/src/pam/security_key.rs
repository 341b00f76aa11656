//! The security-key (FIDO2) part of a login: deciding whether a key can be used here,
//! the touch and PIN through the conversation, and how each failure is told and logged.
//! The relying-party checks themselves live in [`crate::fido2`] and [`crate::login`].

use super::*;

/// The security-key part of the login flow. `Ok(None)`: ask for a code instead (the key
/// cannot be used here and the user has a code device, or has no key at all).
pub(super) fn security_key(
    pamh: &mut PamHandle,
    args: &ModuleArgs,
    store: &mut Store,
    user: &UserName,
    factors: &Factors,
    ctx: &Context,
    silent: bool,
) -> Result<Option<PamResultCode>, Failure> {
    let prefer = args.fido2 == Fido2Mode::Prefer;
    let debug = |pamh: &mut PamHandle, text: &str| {
        let mut log = Logger::new(pamh);
        log.set_debug(args.debug);
        log.log(Level::Debug, &format!("{text} ({})", ctx.describe()));
    };
    if factors.fido2.is_empty() {
        if prefer {
            return Ok(None);
        }
        return Err(key_refused(
            pamh,
            &KeyFailure::NoneRegistered,
            None,
            user,
            silent,
        ));
    }
    let fail = |pamh: &mut PamHandle, store: &mut Store, failure: KeyFailure| {
        let now = clock::now().map_err(store_error)?;
        let outcome =
            login::key_failure(store, user, failure, args.settings, now).map_err(store_error)?;
        finish(pamh, outcome, user, ctx, silent).map(Some)
    };
    if ctx.remote {
        if prefer && factors.has_totp {
            debug(pamh, "remote login: asking for a code, not a security key");
            return Ok(None);
        }
        return fail(pamh, store, KeyFailure::Remote);
    }
    let transport = fido2::transport();
    if !transport.present() {
        if prefer && factors.has_totp {
            debug(pamh, "no security key plugged in: asking for a code");
            return Ok(None);
        }
        return fail(pamh, store, KeyFailure::NoKey);
    }

    // One getAssertion per RP id the user's credentials were registered under (almost
    // always one), each with all of those credentials in the allow list.
    let mut groups: Vec<(&str, Vec<Vec<u8>>, bool)> = Vec::new();
    for d in &factors.fido2 {
        match groups.iter_mut().find(|(rp, _, _)| *rp == d.rp_id) {
            Some((_, ids, uv)) => {
                ids.push(d.credential_id.clone());
                *uv |= d.uv_required;
            }
            None => groups.push((&d.rp_id, vec![d.credential_id.clone()], d.uv_required)),
        }
    }
    let needs_uv = groups.iter().any(|(_, _, uv)| *uv);
    let info = match transport.info() {
        Ok(info) => info,
        Err(e) => return fail(pamh, store, transport_failure(e)),
    };
    let pin = if !needs_uv {
        None
    } else if info.pin_set {
        match ask_pin(pamh)? {
            Some(pin) => Some(pin),
            None => return fail(pamh, store, KeyFailure::NoPin),
        }
    } else if info.builtin_uv {
        None
    } else {
        return fail(pamh, store, KeyFailure::NoVerification);
    };
    if !silent {
        // The cue is a courtesy; the login goes on whether or not it was shown.
        let _ = conversation(pamh).and_then(|c| c.send(PAM_TEXT_INFO, "Touch your security key."));
    }
    let challenge = fido2::random32().map_err(store_error)?;
    let timeout = fido2::timeout(args.fido2_timeout);
    let mut last = KeyFailure::NotRegistered;
    for (i, (rp_id, allow, uv)) in groups.iter().enumerate() {
        let request = fido2::transport::GetAssertionRequest {
            rp_id,
            challenge,
            allow,
            pin: pin.as_ref().filter(|_| *uv).map(|p| p.as_str()),
            uv: *uv && pin.is_none(),
            timeout,
        };
        match transport.get_assertion(&request) {
            Ok(assertion) => {
                let now = clock::now().map_err(store_error)?;
                let outcome = login::verify_assertion(
                    store,
                    user,
                    &challenge,
                    allow,
                    &assertion,
                    args.settings,
                    now,
                )
                .map_err(store_error)?;
                return finish(pamh, outcome, user, ctx, silent).map(Some);
            }
            Err(TransportError::NoCredentials) if i + 1 < groups.len() => {}
            Err(e) => {
                last = transport_failure(e);
                break;
            }
        }
    }
    fail(pamh, store, last)
}

fn transport_failure(e: TransportError) -> KeyFailure {
    match e {
        TransportError::NoKey => KeyFailure::NoKey,
        TransportError::Timeout => KeyFailure::Timeout,
        TransportError::NoCredentials | TransportError::Excluded => KeyFailure::NotRegistered,
        TransportError::PinRequired => KeyFailure::PinRequired,
        TransportError::PinInvalid => KeyFailure::PinInvalid,
        TransportError::PinBlocked => KeyFailure::PinBlocked,
        TransportError::Device(d) => KeyFailure::Device(d),
    }
}

/// The syslog wording of a security-key failure (never a PIN).
pub(super) fn key_log(f: &KeyFailure) -> String {
    match f {
        KeyFailure::NoKey => "no security key plugged in".to_owned(),
        KeyFailure::Remote => {
            "security key required but the login is remote (a key on this host cannot be \
             touched from there)"
                .to_owned()
        }
        KeyFailure::NoneRegistered => {
            "fido2=require but the user has no security key registered".to_owned()
        }
        KeyFailure::Timeout => "security key not touched in time".to_owned(),
        KeyFailure::NotRegistered => {
            "the security key holds none of the user's credentials".to_owned()
        }
        KeyFailure::UnknownCredential => {
            "the security key answered with a credential that is not one of the user's".to_owned()
        }
        KeyFailure::PinRequired => "the security key requires its PIN".to_owned(),
        KeyFailure::PinInvalid => "wrong security key PIN".to_owned(),
        KeyFailure::PinBlocked => "the security key's PIN is blocked".to_owned(),
        KeyFailure::NoVerification => {
            "the credential requires user verification but the key has no PIN set".to_owned()
        }
        KeyFailure::NoPin => "no security key PIN entered".to_owned(),
        KeyFailure::Device(d) => format!("security key error: {}", d.escape_debug()),
        KeyFailure::Rejected { device, why } => {
            format!("security key \"{}\" refused: {why}", device.escape_debug())
        }
    }
}

/// What the person is told about a security-key failure.
fn key_message(f: &KeyFailure, user: &UserName) -> String {
    match f {
        KeyFailure::NoKey => {
            "No security key found. Plug in your security key and try again.".to_owned()
        }
        KeyFailure::Remote => "Security keys can only be used at this computer, not over a \
                               remote login."
            .to_owned(),
        KeyFailure::NoneRegistered => {
            format!("A security key is required here, and {user} has none registered.")
        }
        KeyFailure::Timeout => "The security key was not touched in time.".to_owned(),
        KeyFailure::NotRegistered | KeyFailure::UnknownCredential => {
            format!("This security key is not registered for {user}.")
        }
        KeyFailure::PinRequired | KeyFailure::NoPin => {
            "The security key's PIN is required.".to_owned()
        }
        KeyFailure::PinInvalid => "Wrong security key PIN.".to_owned(),
        KeyFailure::PinBlocked => {
            "The security key's PIN is blocked. Reset the key, or use another device.".to_owned()
        }
        KeyFailure::NoVerification => {
            "This security key needs a PIN for this login, and it has none set.".to_owned()
        }
        KeyFailure::Device(_) => "The security key did not answer correctly.".to_owned(),
        KeyFailure::Rejected { .. } => "The security key's answer was not accepted.".to_owned(),
    }
}

/// Tells the person why the key was refused (unless `PAM_SILENT`) and builds the refusal.
pub(super) fn key_refused(
    pamh: &mut PamHandle,
    failure: &KeyFailure,
    locked_until: Option<i64>,
    user: &UserName,
    silent: bool,
) -> Failure {
    if !silent {
        let text = key_message(failure, user);
        let _ = conversation(pamh).and_then(|c| c.send(PAM_ERROR_MSG, &text));
    }
    let level = match failure {
        // A counter that went backwards is what a cloned key looks like.
        KeyFailure::Rejected {
            why: fido2::verify::Rejection::CounterRegression { .. },
            ..
        } => Level::Error,
        _ => Level::Notice,
    };
    (
        level,
        format!(
            "authentication failure: {}{}",
            key_log(failure),
            lock_note(locked_until)
        ),
        PamResultCode::PAM_AUTH_ERR,
    )
}

/// Asks for the security key's PIN (echo off). `None`: nothing usable was typed.
fn ask_pin(pamh: &mut PamHandle) -> Result<Option<fido2::Pin>, Failure> {
    let conv = conversation(pamh).map_err(|code| {
        (
            Level::Error,
            format!("conversation failed ({code:?})"),
            PamResultCode::PAM_CONV_ERR,
        )
    })?;
    match conv.send(PAM_PROMPT_ECHO_OFF, "Security key PIN: ") {
        Ok(Some(answer)) => Ok(answer
            .as_str()
            .ok()
            .filter(|p| !p.is_empty() && p.len() <= 255)
            .map(|p| zeroize::Zeroizing::new(p.to_owned()))),
        Ok(None) => Ok(None),
        Err(code) => Err((
            Level::Error,
            format!("conversation failed ({code:?})"),
            PamResultCode::PAM_CONV_ERR,
        )),
    }
}
