//! The security-key (FIDO2) part of a login: deciding whether a key can be used here,
//! the touch and PIN through the conversation, and how each failure is told and logged.
//! The relying-party checks themselves are in `libpam_mfa_keys.so` ([`crate::fido2`],
//! loaded by [`keys_library`]); the store is updated by [`crate::login`].

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
    let fail = |pamh: &mut PamHandle, failure: KeyFailure| {
        finish(pamh, login::key_failure(failure), user, ctx, silent).map(Some)
    };
    if ctx.remote {
        if prefer && factors.has_totp {
            debug(pamh, "remote login: asking for a code, not a security key");
            return Ok(None);
        }
        return fail(pamh, KeyFailure::Remote);
    }
    let library = match keys_library::load() {
        Ok(library) => library,
        Err(why) if prefer && factors.has_totp => {
            Logger::new(pamh).log(
                Level::Error,
                &format!(
                    "cannot use security keys: {why}; asking for a code instead ({})",
                    ctx.describe()
                ),
            );
            return Ok(None);
        }
        Err(why) => {
            return Err((
                Level::Error,
                format!("cannot use security keys: {why}; refusing"),
                PamResultCode::PAM_AUTHINFO_UNAVAIL,
            ));
        }
    };
    let credentials: Vec<_> = factors.fido2.iter().map(|d| d.credential.clone()).collect();
    let answer = library.authenticate(
        &credentials,
        args.fido2_timeout,
        &mut AtPrompt { pamh, silent },
    )?;
    match answer {
        Ok(verified) => {
            let now = clock::now().map_err(store_error)?;
            let outcome = login::record_key_login(store, user, &factors.fido2, verified, now)
                .map_err(store_error)?;
            finish(pamh, outcome, user, ctx, silent).map(Some)
        }
        Err(KeyFailure::NoKey) if prefer && factors.has_totp => {
            debug(pamh, "no security key plugged in: asking for a code");
            Ok(None)
        }
        Err(failure) => fail(pamh, failure),
    }
}

/// The person at the key, reached through the PAM conversation.
struct AtPrompt<'a> {
    pamh: &'a mut PamHandle,
    silent: bool,
}

impl fido2::ceremony::Person<Failure> for AtPrompt<'_> {
    fn pin(&mut self) -> Result<Option<fido2::Pin>, Failure> {
        ask_pin(self.pamh)
    }

    fn touch_cue(&mut self) {
        if !self.silent {
            // The cue is a courtesy; the login goes on whether or not it was shown.
            let _ = conversation(self.pamh)
                .and_then(|c| c.send(PAM_TEXT_INFO, "Touch your security key."));
        }
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
        let text = fido2::failure_message(failure, user);
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
            fido2::failure_log(failure),
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
