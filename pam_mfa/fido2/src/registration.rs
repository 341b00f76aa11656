//! Registering a key, the client's half: asking the plugged-in key to make a credential
//! for a challenge the relying party issued (`mfad`, which then verifies the attestation
//! with [`super::verify::verify_registration`] and stores the key). Beside
//! [`super::ceremony`], the same for a login, so both ceremonies and their PIN and
//! user-verification rules live in this crate.

use std::time::Duration;

use super::ceremony::Person;
use super::transport::{MakeCredentialRequest, RawAttestation, Transport, TransportError};

/// What the relying party asked for (its challenge, user handle and the user's existing
/// credentials), and what the registration requires of the key.
#[derive(Debug, Clone, Copy)]
pub struct Registering<'a> {
    pub rp_id: &'a str,
    pub challenge: [u8; 32],
    pub user_id: [u8; 32],
    pub user_name: &'a str,
    /// Credential ids the key must not register again (the user's active keys).
    pub exclude: &'a [Vec<u8>],
    /// `--pin`: the key must have a PIN set.
    pub needs_pin: bool,
    /// Logging in will require user verification (the PIN, or the key's own).
    pub needs_uv: bool,
    pub timeout: Duration,
}

/// Why the key could not be asked, or did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterFailure {
    /// The registration needs a PIN (or verification) the key cannot give: no PIN set and
    /// no built-in verification.
    NoPinSet,
    /// The key has a PIN and none was typed.
    PinRequired,
    /// What the key (or its absence) said: no key, not touched in time, already
    /// registered, a wrong or blocked PIN, a device error.
    Key(TransportError),
}

/// Asks the plugged-in key to register: checks first that a key is there and can give
/// what is required, asks for its PIN when it has one (through `person`, before the
/// touch cue), then makeCredential. The outer error is the caller's own (a failed
/// terminal or conversation).
pub fn register_over<E>(
    transport: &dyn Transport,
    r: &Registering<'_>,
    person: &mut dyn Person<E>,
) -> Result<Result<RawAttestation, RegisterFailure>, E> {
    if !transport.present() {
        return Ok(Err(RegisterFailure::Key(TransportError::NoKey)));
    }
    let info = match transport.info() {
        Ok(info) => info,
        Err(e) => return Ok(Err(RegisterFailure::Key(e))),
    };
    if r.needs_pin && !info.pin_set {
        return Ok(Err(RegisterFailure::NoPinSet));
    }
    let pin = if info.pin_set {
        match person.pin()? {
            Some(pin) => Some(pin),
            None => return Ok(Err(RegisterFailure::PinRequired)),
        }
    } else if r.needs_uv && !info.builtin_uv {
        return Ok(Err(RegisterFailure::NoPinSet));
    } else {
        None
    };
    let request = MakeCredentialRequest {
        rp_id: r.rp_id,
        challenge: r.challenge,
        user_id: r.user_id,
        user_name: r.user_name,
        exclude: r.exclude,
        pin: pin.as_ref().map(|p| p.as_str()),
        uv: r.needs_uv && pin.is_none(),
        timeout: r.timeout,
    };
    person.touch_cue();
    Ok(transport
        .make_credential(&request)
        .map_err(RegisterFailure::Key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::transport::{GetAssertionRequest, KeyInfo, RawAssertion};
    use std::cell::RefCell;

    /// A key with `info`, which records what makeCredential was asked.
    struct Key {
        plugged: bool,
        info: KeyInfo,
        asked: RefCell<Vec<(Option<String>, bool)>>,
    }

    impl Transport for Key {
        fn name(&self) -> &'static str {
            "test"
        }
        fn present(&self) -> bool {
            self.plugged
        }
        fn info(&self) -> Result<KeyInfo, TransportError> {
            Ok(self.info)
        }
        fn make_credential(
            &self,
            req: &MakeCredentialRequest<'_>,
        ) -> Result<RawAttestation, TransportError> {
            self.asked
                .borrow_mut()
                .push((req.pin.map(str::to_owned), req.uv));
            Ok(RawAttestation {
                fmt: "none".into(),
                ..RawAttestation::default()
            })
        }
        fn get_assertion(
            &self,
            _: &GetAssertionRequest<'_>,
        ) -> Result<RawAssertion, TransportError> {
            Err(TransportError::Device("not here".into()))
        }
    }

    /// Types `pin` when asked; records the order of PIN prompt and touch cue.
    struct At {
        pin: Option<&'static str>,
        seen: Vec<&'static str>,
    }

    impl Person<()> for At {
        fn pin(&mut self) -> Result<Option<crate::Pin>, ()> {
            self.seen.push("pin");
            Ok(self.pin.map(|p| zeroize::Zeroizing::new(p.to_owned())))
        }
        fn touch_cue(&mut self) {
            self.seen.push("cue");
        }
    }

    fn key(plugged: bool, pin_set: bool, builtin_uv: bool) -> Key {
        Key {
            plugged,
            info: KeyInfo {
                pin_set,
                builtin_uv,
            },
            asked: RefCell::new(Vec::new()),
        }
    }

    fn registering(needs_pin: bool, needs_uv: bool) -> Registering<'static> {
        Registering {
            rp_id: "pam://host",
            challenge: [1; 32],
            user_id: [2; 32],
            user_name: "alice",
            exclude: &[],
            needs_pin,
            needs_uv,
            timeout: Duration::from_secs(1),
        }
    }

    fn run(
        k: &Key,
        r: &Registering<'_>,
        pin: Option<&'static str>,
    ) -> (Result<RawAttestation, RegisterFailure>, Vec<&'static str>) {
        let mut at = At {
            pin,
            seen: Vec::new(),
        };
        let out = register_over(k, r, &mut at).unwrap();
        (out, at.seen)
    }

    #[test]
    fn what_the_key_cannot_give_is_refused_before_it_is_touched() {
        let (out, seen) = run(&key(false, false, false), &registering(false, false), None);
        assert_eq!(
            out.unwrap_err(),
            RegisterFailure::Key(TransportError::NoKey)
        );
        assert!(seen.is_empty());
        let k = key(true, false, false);
        for r in [registering(true, false), registering(false, true)] {
            let (out, seen) = run(&k, &r, Some("1234"));
            assert_eq!(out.unwrap_err(), RegisterFailure::NoPinSet);
            assert!(seen.is_empty(), "{seen:?}");
        }
        let (out, seen) = run(&key(true, true, false), &registering(false, false), None);
        assert_eq!(out.unwrap_err(), RegisterFailure::PinRequired);
        assert_eq!(seen, ["pin"]);
        assert!(k.asked.borrow().is_empty());
    }

    #[test]
    fn the_pin_is_asked_before_the_touch_and_built_in_verification_asked_without_one() {
        let k = key(true, true, false);
        let (out, seen) = run(&k, &registering(true, true), Some("1234"));
        assert!(out.is_ok());
        assert_eq!(seen, ["pin", "cue"]);
        assert_eq!(*k.asked.borrow(), vec![(Some("1234".to_owned()), false)]);

        let k = key(true, false, true);
        let (out, seen) = run(&k, &registering(false, true), None);
        assert!(out.is_ok());
        assert_eq!(seen, ["cue"]);
        assert_eq!(*k.asked.borrow(), vec![(None, true)]);

        let k = key(true, false, false);
        let (out, _) = run(&k, &registering(false, false), None);
        assert!(out.is_ok());
        assert_eq!(*k.asked.borrow(), vec![(None, false)]);
    }
}
