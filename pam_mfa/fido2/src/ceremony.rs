//! Logging in with a touch, in two halves that may run in different processes: asking a
//! plugged-in key to sign a given challenge for one of the user's credentials
//! ([`assert_over`], the client: `libpam_mfa_keys.so` for the PAM module, `mfa` in the
//! user's own process) and checking its answer ([`check_answer`], the relying party:
//! `mfad`, which issued the challenge). [`authenticate`] runs both in one process. What is
//! decided here is recorded by the caller in the store, which checks the sign count again
//! inside its write transaction.

use std::time::Duration;

use super::transport::{GetAssertionRequest, RawAssertion, Transport, TransportError};
use super::verify::{self, Rejection, StoredCredential};

/// One of the user's registered credentials, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The device name, for messages and logs.
    pub name: String,
    pub credential_id: Vec<u8>,
    /// The COSE public key, as registered.
    pub cose_public_key: Vec<u8>,
    /// The last sign count seen; a key that counts must go above it.
    pub sign_count: u32,
    /// The RP id the credential was registered under (e.g. `pam://host`).
    pub rp_id: String,
    /// Whether logging in with it requires user verification (the key's PIN).
    pub uv_required: bool,
}

/// An answer that verified: which credential signed, and the sign count it reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Index into the credentials [`authenticate`] was given.
    pub index: usize,
    pub sign_count: u32,
}

/// Why a security-key login failed; every one is a refusal that counts toward the
/// lock-out like a wrong code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFailure {
    /// No key is plugged in (and there is no code device to fall back to).
    NoKey,
    /// The login is remote: a key on this host cannot be touched from there.
    Remote,
    /// The service requires a security key and the user has none registered.
    NoneRegistered,
    /// Not touched within the timeout.
    Timeout,
    /// The key holds none of the user's credentials (someone else's key).
    NotRegistered,
    /// The key answered with a credential that is not one of the user's.
    UnknownCredential,
    PinRequired,
    PinInvalid,
    PinBlocked,
    /// The credential requires verification but the key has no PIN and no built-in UV.
    NoVerification,
    /// No PIN was typed at the prompt.
    NoPin,
    /// The key reported an error.
    Device(String),
    /// The key's answer did not verify.
    Rejected {
        device: String,
        why: Rejection,
    },
}

/// The person at the key (one definition, shared with the module through the keys
/// interface crate).
pub use pam_mfa_keys_abi::Person;

/// A key's answer to [`assert_over`]: the RP id and allow list of the request it
/// answered, and the answer as the key sent it.
#[derive(Debug, Clone)]
pub struct Answered {
    pub rp_id: String,
    pub allow: Vec<Vec<u8>>,
    pub assertion: RawAssertion,
}

/// The client half: asks the plugged-in key to sign `challenge` for one of
/// `credentials` (only their ids, RP ids and `uv_required` are used; the public keys and
/// sign counts may be empty). Nothing is verified: the relying party checks the answer
/// with [`check_answer`] against the challenge it issued.
///
/// One getAssertion request is made per RP id the credentials were registered under
/// (almost always one), each with all of that RP's credentials in the allow list. The PIN
/// is asked for only when a credential requires verification and the key has one set.
/// A key that is not plugged in is reported as [`KeyFailure::NoKey`] before anything is
/// asked of the person. The outer error is the caller's own (a failed conversation).
pub fn assert_over<E>(
    transport: &dyn Transport,
    credentials: &[Credential],
    challenge: [u8; 32],
    timeout: Duration,
    person: &mut dyn Person<E>,
) -> Result<Result<Answered, KeyFailure>, E> {
    get_assertion(transport, credentials, challenge, timeout, person)
}

/// Asks the plugged-in key to prove one of `credentials` and verifies the answer
/// (WebAuthn §7.2: the credential is one of these and was in the request's allow list,
/// rpIdHash, UP, UV when required, the signature over a fresh challenge, the sign count
/// against the one given).
///
/// One getAssertion request is made per RP id the credentials were registered under
/// (almost always one), each with all of that RP's credentials in the allow list. The PIN
/// is asked for only when a credential requires verification and the key has one set.
/// A key that is not plugged in is reported as [`KeyFailure::NoKey`] before anything is
/// asked of the person.
///
/// The outer error is the caller's own (a failed conversation); the inner one is why the
/// key could not be used, which counts toward the lock-out like a wrong code.
pub fn authenticate<E>(
    transport: &dyn Transport,
    credentials: &[Credential],
    timeout: Duration,
    person: &mut dyn Person<E>,
) -> Result<Result<Verified, KeyFailure>, E> {
    let challenge = match super::random32() {
        Ok(c) => c,
        Err(e) => return Ok(Err(KeyFailure::Device(format!("no random challenge: {e}")))),
    };
    let answered = match assert_over(transport, credentials, challenge, timeout, person)? {
        Ok(answer) => answer,
        Err(failure) => return Ok(Err(failure)),
    };
    Ok(check_answer(
        credentials,
        &answered.allow,
        &answered.assertion,
        &challenge,
    ))
}

/// Which of `credentials` answered, and whether its answer verifies.
///
/// A key may leave the credential out of its answer only when the allow list had a
/// single entry; a credential outside the allow list is refused even if it is the user's.
/// `challenge` is the one the relying party issued (never one the client reports).
pub fn check_answer(
    credentials: &[Credential],
    allow: &[Vec<u8>],
    assertion: &RawAssertion,
    challenge: &[u8; 32],
) -> Result<Verified, KeyFailure> {
    let credential_id = match (&assertion.credential_id, allow) {
        (Some(id), _) => id.as_slice(),
        (None, [only]) => only.as_slice(),
        (None, _) => return Err(KeyFailure::UnknownCredential),
    };
    if !allow.iter().any(|a| a == credential_id) {
        return Err(KeyFailure::UnknownCredential);
    }
    let Some(index) = credentials
        .iter()
        .position(|c| c.credential_id == credential_id)
    else {
        return Err(KeyFailure::UnknownCredential);
    };
    let c = &credentials[index];
    let stored = StoredCredential {
        cose_public_key: &c.cose_public_key,
        rp_id: &c.rp_id,
        sign_count: c.sign_count,
        uv_required: c.uv_required,
    };
    verify::verify_assertion(&stored, assertion, challenge)
        .map(|sign_count| Verified { index, sign_count })
        .map_err(|why| KeyFailure::Rejected {
            device: c.name.clone(),
            why,
        })
}

/// The getAssertion requests: the RP id and allow list of the one that was answered, and
/// the answer.
fn get_assertion<E>(
    transport: &dyn Transport,
    credentials: &[Credential],
    challenge: [u8; 32],
    timeout: Duration,
    person: &mut dyn Person<E>,
) -> Result<Result<Answered, KeyFailure>, E> {
    let mut groups: Vec<(&str, Vec<Vec<u8>>, bool)> = Vec::new();
    for c in credentials {
        match groups.iter_mut().find(|(rp, _, _)| *rp == c.rp_id) {
            Some((_, ids, uv)) => {
                ids.push(c.credential_id.clone());
                *uv |= c.uv_required;
            }
            None => groups.push((&c.rp_id, vec![c.credential_id.clone()], c.uv_required)),
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
                return Ok(Ok(Answered {
                    rp_id: rp_id.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth_data::{FLAG_UP, build};
    use crate::cose::CoseKey;
    use crate::cose::tests::p256_signing_key;
    use crate::transport::{KeyInfo, MakeCredentialRequest, RawAttestation};
    use crate::verify::{client_data_hash, rp_id_hash};
    use p256::ecdsa::signature::Signer as _;

    const RP: &str = "pam://host";

    /// A key holding one credential, signing whatever it is asked (count 7).
    struct Key(Vec<u8>);

    impl Transport for Key {
        fn name(&self) -> &'static str {
            "test"
        }
        fn present(&self) -> bool {
            true
        }
        fn info(&self) -> Result<KeyInfo, TransportError> {
            Ok(KeyInfo::default())
        }
        fn make_credential(
            &self,
            _: &MakeCredentialRequest<'_>,
        ) -> Result<RawAttestation, TransportError> {
            Err(TransportError::Device("not here".into()))
        }
        fn get_assertion(
            &self,
            req: &GetAssertionRequest<'_>,
        ) -> Result<RawAssertion, TransportError> {
            if !req.allow.contains(&self.0) {
                return Err(TransportError::NoCredentials);
            }
            let ad = build(&rp_id_hash(req.rp_id), FLAG_UP, 7, None);
            let mut m = ad.clone();
            m.extend_from_slice(&client_data_hash(&req.challenge));
            let sig: p256::ecdsa::Signature = p256_signing_key(3).sign(&m);
            Ok(RawAssertion {
                credential_id: Some(self.0.clone()),
                auth_data: ad,
                signature: sig.to_der().as_bytes().to_vec(),
            })
        }
    }

    struct Nobody;

    impl Person<()> for Nobody {
        fn pin(&mut self) -> Result<Option<crate::Pin>, ()> {
            Ok(None)
        }
        fn touch_cue(&mut self) {}
    }

    fn stored(id: &[u8], rp_id: &str) -> Credential {
        Credential {
            name: "yubi".into(),
            credential_id: id.to_vec(),
            cose_public_key: CoseKey::Es256(*p256_signing_key(3).verifying_key()).to_cose(),
            sign_count: 1,
            rp_id: rp_id.into(),
            uv_required: false,
        }
    }

    /// The client half run without public keys (as libpam_mfa_keys.so has them) answers
    /// the relying party's challenge; the relying party's check accepts that answer for
    /// its own challenge and for no other.
    #[test]
    fn the_two_halves_meet_over_the_relying_partys_challenge() {
        let other = stored(b"other", "pam://elsewhere");
        let mine = stored(b"cred", RP);
        let credentials = vec![other, mine];
        let public_only: Vec<Credential> = credentials
            .iter()
            .map(|c| Credential {
                name: String::new(),
                cose_public_key: Vec::new(),
                sign_count: 0,
                ..c.clone()
            })
            .collect();
        let challenge = [5u8; 32];
        let answered = assert_over(
            &Key(b"cred".to_vec()),
            &public_only,
            challenge,
            Duration::from_secs(1),
            &mut Nobody,
        )
        .unwrap()
        .unwrap();
        assert_eq!(answered.rp_id, RP);
        assert_eq!(answered.allow, vec![b"cred".to_vec()]);
        let allow: Vec<Vec<u8>> = credentials
            .iter()
            .filter(|c| c.rp_id == answered.rp_id)
            .map(|c| c.credential_id.clone())
            .collect();
        assert_eq!(
            check_answer(&credentials, &allow, &answered.assertion, &challenge),
            Ok(Verified {
                index: 1,
                sign_count: 7
            })
        );
        assert!(matches!(
            check_answer(&credentials, &allow, &answered.assertion, &[6u8; 32]),
            Err(KeyFailure::Rejected { .. })
        ));
        // Someone else's key.
        let none = assert_over(
            &Key(b"stranger".to_vec()),
            &public_only,
            challenge,
            Duration::from_secs(1),
            &mut Nobody,
        )
        .unwrap();
        assert_eq!(none.unwrap_err(), KeyFailure::NotRegistered);
    }
}
