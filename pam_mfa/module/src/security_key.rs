//! The security-key (FIDO2) part of a login: deciding whether a key can be used here, the
//! daemon's challenge, the touch and PIN through the conversation (in
//! `libpam_mfa_keys.so`, loaded by [`keys_library`]), and the key's answer back to the
//! daemon, which verifies and records it.

use pam_mfa_keys_abi::{AskCredential, ClientFailure, Person, Pin};
use pam_mfa_protocol::{
    ErrorKind, KeyAssertion, KeyPurpose, PublicBytes, Request, Response, SecretBytes,
};

use super::*;

/// The security-key part of the login flow, once the daemon decided a key is to be
/// touched here ([`NextStep::TryKey`]). `Ok(None)`: ask for a code instead, which
/// `code_fallback` allows when keys cannot be used after all (the keys library, the
/// daemon) because the user has a code device and the line prefers keys.
pub(super) fn security_key(
    pamh: &mut PamHandle,
    args: &ModuleArgs,
    daemon: &Daemon,
    user: &str,
    ctx: &Context,
    code_fallback: bool,
    silent: bool,
) -> Result<Option<PamResultCode>, Failure> {
    let prefer = args.fido2 == Fido2Mode::Prefer;
    // Keys cannot be used (the library, the daemon): a code instead where the person has
    // one and the line prefers keys, else the login is refused as unavailable.
    let cannot = |pamh: &mut PamHandle, why: String| {
        if code_fallback {
            Logger::new(pamh).log(
                Level::Error,
                &format!(
                    "cannot use security keys: {why}; asking for a code instead ({})",
                    ctx.describe()
                ),
            );
            Ok(None)
        } else {
            Err(Failure::new(
                Level::Error,
                format!("cannot use security keys: {why}; refusing"),
                PamResultCode::PAM_AUTHINFO_UNAVAIL,
            ))
        }
    };
    let library = match keys_library::load() {
        Ok(library) => library,
        Err(why) => return cannot(pamh, why),
    };
    let challenge = match daemon
        .ask(&Request::KeyChallenge {
            user: user.to_owned(),
            purpose: KeyPurpose::Login,
        })
        .map_err(unavailable)?
    {
        Ok(Response::KeyChallenge(c)) => c,
        Ok(_) => return Err(unexpected("key-challenge")),
        // The keys went between the two questions.
        Err(e) if e.kind == ErrorKind::Invalid && prefer => return Ok(None),
        Err(e) if e.kind == ErrorKind::Invalid => {
            return Err(key_refused(
                pamh,
                &ClientFailure::NoneRegistered,
                user,
                silent,
            ));
        }
        Err(e) => {
            return cannot(
                pamh,
                format!(
                    "mfad refused key-challenge ({:?}: {})",
                    e.kind,
                    e.message.escape_debug()
                ),
            );
        }
    };
    let Ok(challenge_bytes) = <[u8; 32]>::try_from(challenge.challenge.0.as_slice()) else {
        return Err(unexpected("key-challenge (not a 32-byte challenge)"));
    };
    let credentials: Vec<AskCredential<'_>> = challenge
        .credentials
        .iter()
        .map(|c| AskCredential {
            id: &c.credential_id.0,
            rp_id: &c.rp_id,
            uv_required: c.uv_required,
        })
        .collect();
    let answer = library.assert(
        &challenge_bytes,
        &credentials,
        args.fido2_timeout,
        &mut AtPrompt { pamh, silent },
    )?;
    match answer {
        Ok(assertion) => {
            let reply = daemon
                .ask(&Request::KeyAnswer {
                    user: user.to_owned(),
                    ticket: SecretBytes::from_slice(challenge.ticket.as_bytes()),
                    assertion: KeyAssertion {
                        rp_id: assertion.rp_id,
                        credential_id: assertion.credential_id.map(PublicBytes),
                        auth_data: PublicBytes(assertion.auth_data),
                        signature: PublicBytes(assertion.signature),
                    },
                    context: ctx.login.clone(),
                })
                .map_err(unavailable)?;
            match reply {
                Ok(Response::Verified(outcome)) => finish(pamh, outcome, ctx, silent).map(Some),
                Ok(_) => Err(unexpected("key-answer")),
                Err(e) => Err(daemon_refused("key-answer", &e)),
            }
        }
        Err(ClientFailure::NoKey) if code_fallback => {
            let mut log = Logger::new(pamh);
            log.set_debug(args.debug);
            log.log(
                Level::Debug,
                &format!(
                    "no security key plugged in: asking for a code ({})",
                    ctx.describe()
                ),
            );
            Ok(None)
        }
        Err(failure) => Err(key_refused(pamh, &failure, user, silent)),
    }
}

/// The person at the key, reached through the PAM conversation.
struct AtPrompt<'a> {
    pamh: &'a mut PamHandle,
    silent: bool,
}

impl Person<Failure> for AtPrompt<'_> {
    fn pin(&mut self) -> Result<Option<Pin>, Failure> {
        ask_pin(self.pamh)
    }

    fn touch_cue(&mut self) {
        // The cue is a courtesy; the login goes on whether or not it was shown.
        self.pamh.tell(self.silent, "Touch your security key.");
    }
}

/// Tells the person why the key could not be used (unless `PAM_SILENT`) and builds the
/// refusal. Nothing reached the daemon, so nothing is counted.
pub(super) fn key_refused(
    pamh: &mut PamHandle,
    failure: &ClientFailure,
    user: &str,
    silent: bool,
) -> Failure {
    pamh.warn(silent, &failure.message(user));
    Failure::new(
        Level::Notice,
        format!("authentication failure: {}", failure.log_text()),
        PamResultCode::PAM_AUTH_ERR,
    )
}

/// Asks for the security key's PIN (echo off). `None`: nothing usable was typed.
fn ask_pin(person: &mut impl Converse) -> Result<Option<Pin>, Failure> {
    let answer = person
        .send(PAM_PROMPT_ECHO_OFF, "Security key PIN: ")
        .map_err(|code| conv_failed(code, " at the PIN prompt"))?;
    Ok(answer.and_then(|a| {
        std::str::from_utf8(&a)
            .ok()
            .filter(|p| !p.is_empty() && p.len() <= 255)
            .map(|p| zeroize::Zeroizing::new(p.to_owned()))
    }))
}
