//! Asking a plugged-in key to prove one of the user's credentials: the getAssertion
//! ceremony shared by the login (through the PAM conversation) and by `mfa` when a user
//! proves an existing device with a touch. The answer is checked and recorded afterwards
//! by [`crate::login::verify_assertion`]; nothing here trusts what the key sent.

use std::time::Duration;

use super::Pin;
use super::transport::{GetAssertionRequest, RawAssertion, Transport, TransportError};
use crate::login::KeyFailure;
use crate::names::UserName;
use crate::store::devices::Fido2Device;

/// The person at the key, reached through whatever the caller talks through.
pub trait Person<E> {
    /// The key's PIN (asked with echo off); `None` when nothing usable was typed.
    fn pin(&mut self) -> Result<Option<Pin>, E>;
    /// Tells the person to touch the key; a courtesy that cannot fail the ceremony.
    fn touch_cue(&mut self);
}

/// A key's answer together with what it must be checked against.
pub struct Touched {
    pub challenge: [u8; 32],
    /// The allow list the answer was given for.
    pub allow: Vec<Vec<u8>>,
    pub assertion: RawAssertion,
}

/// Runs getAssertion for `keys` on the plugged-in key: one request per RP id the
/// credentials were registered under (almost always one), each with all of that RP's
/// credentials in the allow list. `challenge` is fresh from [`super::random32`]. The PIN is
/// asked for only when a credential requires verification and the key has one set.
///
/// The outer error is the caller's own (a failed conversation); the inner one is why the
/// key could not be used, which counts toward the lock-out like a wrong code.
pub fn get_assertion<E>(
    transport: &dyn Transport,
    keys: &[Fido2Device],
    challenge: [u8; 32],
    timeout: Duration,
    person: &mut dyn Person<E>,
) -> Result<Result<Touched, KeyFailure>, E> {
    let mut groups: Vec<(&str, Vec<Vec<u8>>, bool)> = Vec::new();
    for d in keys {
        match groups.iter_mut().find(|(rp, _, _)| *rp == d.rp_id) {
            Some((_, ids, uv)) => {
                ids.push(d.credential_id.clone());
                *uv |= d.uv_required;
            }
            None => groups.push((&d.rp_id, vec![d.credential_id.clone()], d.uv_required)),
        }
    }
    if groups.is_empty() {
        return Ok(Err(KeyFailure::NoneRegistered));
    }
    let needs_uv = groups.iter().any(|(_, _, uv)| *uv);
    let info = match transport.info() {
        Ok(info) => info,
        Err(e) => return Ok(Err(e.into())),
    };
    let pin = if !needs_uv {
        None
    } else if info.pin_set {
        match person.pin()? {
            Some(pin) => Some(pin),
            None => return Ok(Err(KeyFailure::NoPin)),
        }
    } else if info.builtin_uv {
        None
    } else {
        return Ok(Err(KeyFailure::NoVerification));
    };
    person.touch_cue();
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
            Ok(assertion) => {
                return Ok(Ok(Touched {
                    challenge,
                    allow,
                    assertion,
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

/// What the person is told about a security-key failure (at the login prompt, or by
/// `mfa`); the log wording, which may say more, is the module's.
pub fn failure_message(f: &KeyFailure, user: &UserName) -> String {
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

impl From<TransportError> for KeyFailure {
    fn from(e: TransportError) -> Self {
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
}
