//! Asking a security key plugged into this host, from the user's own process (where udev
//! gives the seated user access to it), over a challenge the daemon issued: the daemon
//! checks every answer, this only carries it.
//!
//! The assertion is asked for as `pam_mfa_fido2::ceremony` asks it at a login: one
//! getAssertion per relying-party id (each with that id's credentials in the allow list),
//! the PIN asked for only when a credential requires verification and the key has one.
//! (Until the ceremony offers "ask over a given challenge" itself, this repeats its
//! grouping.)

use pam_mfa::fido2::transport::GetAssertionRequest;
use pam_mfa::fido2::{self, KeyFailure, Pin, Transport, TransportError};
use pam_mfa_protocol::{KeyAssertion, KeyChallengeReply, PublicBytes};

use crate::{CliError, prompt};

/// The PIN with echo off (empty: none).
pub fn ask_pin() -> Result<Option<Pin>, CliError> {
    Ok(prompt::ask_secret("Security key PIN: ")?.filter(|p| !p.is_empty()))
}

/// The daemon's challenge as the 32 bytes a key signs over.
pub fn challenge_bytes(challenge: &PublicBytes) -> Result<[u8; 32], CliError> {
    <[u8; 32]>::try_from(challenge.0.as_slice())
        .map_err(|_| CliError::msg("mfad sent a challenge of the wrong size"))
}

/// Asks the plugged-in key to sign `reply`'s challenge with one of its credentials. The
/// outer error is this process's own (the terminal); the inner one why the key could not
/// answer (nothing reached the daemon, so nothing counts).
pub fn assert(
    transport: &dyn Transport,
    reply: &KeyChallengeReply,
) -> Result<Result<KeyAssertion, KeyFailure>, CliError> {
    let challenge = challenge_bytes(&reply.challenge)?;
    let mut groups: Vec<(&str, Vec<Vec<u8>>, bool)> = Vec::new();
    for c in &reply.credentials {
        match groups.iter_mut().find(|(rp, _, _)| *rp == c.rp_id) {
            Some((_, ids, uv)) => {
                ids.push(c.credential_id.0.clone());
                *uv |= c.uv_required;
            }
            None => groups.push((&c.rp_id, vec![c.credential_id.0.clone()], c.uv_required)),
        }
    }
    if groups.is_empty() {
        return Ok(Err(KeyFailure::NoneRegistered));
    }
    if !transport.present() {
        return Ok(Err(KeyFailure::NoKey));
    }
    let needs_uv = groups.iter().any(|(_, _, uv)| *uv);
    let info = match transport.info() {
        Ok(info) => info,
        Err(e) => return Ok(Err(e.into())),
    };
    let pin = if !needs_uv {
        None
    } else if info.pin_set {
        match ask_pin()? {
            Some(pin) => Some(pin),
            None => return Ok(Err(KeyFailure::NoPin)),
        }
    } else if info.builtin_uv {
        None
    } else {
        return Ok(Err(KeyFailure::NoVerification));
    };
    eprintln!("Touch your security key now.");
    let timeout = fido2::timeout(fido2::DEFAULT_TIMEOUT_SECS);
    let mut last = KeyFailure::NotRegistered;
    let count = groups.len();
    for (i, (rp_id, allow, uv)) in groups.into_iter().enumerate() {
        let request = GetAssertionRequest {
            rp_id,
            challenge,
            allow: &allow,
            pin: pin.as_ref().filter(|_| uv).map(|p| p.as_str()),
            uv: uv && pin.is_none(),
            timeout,
        };
        match transport.get_assertion(&request) {
            Ok(answer) => {
                let credential_id = answer.credential_id.or_else(|| match allow.as_slice() {
                    [only] => Some(only.clone()),
                    _ => None,
                });
                return Ok(Ok(KeyAssertion {
                    rp_id: rp_id.to_owned(),
                    credential_id: credential_id.map(PublicBytes),
                    auth_data: PublicBytes(answer.auth_data),
                    signature: PublicBytes(answer.signature),
                }));
            }
            Err(TransportError::NoCredentials) if i + 1 < count => {}
            Err(e) => {
                last = e.into();
                break;
            }
        }
    }
    Ok(Err(last))
}
