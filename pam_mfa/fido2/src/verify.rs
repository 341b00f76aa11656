//! The relying party's checks (WebAuthn §7.1 and §7.2, for a PAM "origin"): what makes a
//! registration or an assertion acceptable, whichever transport carried it.

use sha2::{Digest, Sha256};

use super::auth_data::{AuthData, ParseError};
use super::cose::{self, CoseKey, SignatureError};
use super::transport::{RawAssertion, RawAttestation};

/// At most this many attestation certificates, each at most this long, are looked at.
const MAX_X5C: usize = 8;
const MAX_CERT_LEN: usize = 8192;

/// Why a key's answer was refused. None of these carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed answer: {0}")]
    Malformed(ParseError),
    #[error("the rpIdHash is not SHA-256 of the RP id {0:?}")]
    RpIdHash(String),
    #[error("the user-present (UP) flag is not set")]
    UserPresence,
    #[error("user verification (PIN) is required but the UV flag is not set")]
    UserVerification,
    #[error("no attested credential data")]
    NoCredentialData,
    #[error("attested credential data in an assertion")]
    UnexpectedCredentialData,
    #[error("unsupported attestation format {0:?}")]
    AttestationFormat(String),
    #[error("the attestation algorithm does not match the key")]
    AttestationAlgorithm,
    #[error("attestation signature: {0}")]
    AttestationSignature(SignatureError),
    #[error("attestation certificate: {0}")]
    Certificate(&'static str),
    #[error("assertion signature: {0}")]
    Signature(SignatureError),
    #[error(
        "the sign count went backwards (stored {stored}, the key says {got}): the key may \
         have been cloned"
    )]
    CounterRegression { stored: u32, got: u32 },
    #[error("the stored public key is unreadable: {0}")]
    StoredKey(ParseError),
    /// A rejection as `libpam_mfa_keys.so` described it: what pam_mfa.so gets back through
    /// the library's C interface ([`crate::plugin`]), which keeps only the counter
    /// regression's parts (it is logged as a possible clone).
    #[error("{0}")]
    Described(String),
}

impl From<ParseError> for Rejection {
    fn from(e: ParseError) -> Self {
        Self::Malformed(e)
    }
}

/// SHA-256 of the challenge: the clientDataHash the key signs.
pub fn client_data_hash(challenge: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(challenge).into()
}

pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

fn signed_message(auth_data: &[u8], challenge: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(auth_data.len().saturating_add(32));
    m.extend_from_slice(auth_data);
    m.extend_from_slice(&client_data_hash(challenge));
    m
}

/// What is stored for a newly registered credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub credential_id: Vec<u8>,
    /// The COSE key in canonical encoding.
    pub cose_public_key: Vec<u8>,
    pub algorithm: &'static str,
    pub sign_count: u32,
    /// "packed self", "packed x5c" or "none".
    pub attestation: &'static str,
}

/// Checks a makeCredential answer for `rp_id` and `challenge`.
pub fn verify_registration(
    att: &RawAttestation,
    rp_id: &str,
    challenge: &[u8; 32],
    require_uv: bool,
) -> Result<Registration, Rejection> {
    let auth = AuthData::parse(&att.auth_data)?;
    if auth.rp_id_hash != rp_id_hash(rp_id) {
        return Err(Rejection::RpIdHash(rp_id.to_owned()));
    }
    if !auth.user_present() {
        return Err(Rejection::UserPresence);
    }
    if require_uv && !auth.user_verified() {
        return Err(Rejection::UserVerification);
    }
    let credential = auth.attested.ok_or(Rejection::NoCredentialData)?;
    let message = signed_message(&att.auth_data, challenge);
    let attestation = match att.fmt.as_str() {
        "packed" => {
            let alg = att.alg.ok_or(Rejection::AttestationAlgorithm)?;
            if att.x5c.is_empty() {
                // Self attestation: signed by the credential's own key.
                if alg != credential.public_key.alg() {
                    return Err(Rejection::AttestationAlgorithm);
                }
                credential
                    .public_key
                    .verify(&message, &att.sig)
                    .map_err(Rejection::AttestationSignature)?;
                "packed self"
            } else {
                // Basic/AttCA attestation: signed by the attestation certificate's key.
                // There is no trust store of key makers here; the signature still shows
                // the answer is whole and came from the holder of that certificate.
                if att.x5c.len() > MAX_X5C {
                    return Err(Rejection::Certificate("too many certificates"));
                }
                let cert_key = certificate_key(att.x5c.first().map(Vec::as_slice))?;
                if alg != cert_key.alg() {
                    return Err(Rejection::AttestationAlgorithm);
                }
                cert_key
                    .verify(&message, &att.sig)
                    .map_err(Rejection::AttestationSignature)?;
                "packed x5c"
            }
        }
        "none" if att.sig.is_empty() && att.x5c.is_empty() && att.alg.is_none() => "none",
        other => {
            return Err(Rejection::AttestationFormat(
                other.chars().take(32).collect(),
            ));
        }
    };
    Ok(Registration {
        cose_public_key: credential.public_key.to_cose(),
        algorithm: credential.public_key.alg_name(),
        credential_id: credential.credential_id,
        sign_count: auth.sign_count,
        attestation,
    })
}

/// The public key of a DER X.509 certificate, as a key we can verify with.
fn certificate_key(der: Option<&[u8]>) -> Result<CoseKey, Rejection> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};

    let der = der.ok_or(Rejection::Certificate("missing"))?;
    if der.len() > MAX_CERT_LEN {
        return Err(Rejection::Certificate("too long"));
    }
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| Rejection::Certificate("not a DER X.509 certificate"))?;
    if !rest.is_empty() {
        return Err(Rejection::Certificate("trailing bytes"));
    }
    let spki = cert.public_key();
    let bits: &[u8] = &spki.subject_public_key.data;
    let alg = &spki.algorithm;
    if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = alg
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or(Rejection::Certificate("EC key without a named curve"))?;
        if curve != OID_EC_P256 {
            return Err(Rejection::Certificate("EC key not on P-256"));
        }
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
            .map_err(|_| Rejection::Certificate("invalid P-256 key"))?;
        Ok(CoseKey::Es256(key))
    } else if alg.algorithm == OID_SIG_ED25519 {
        let bytes: &[u8; 32] = bits
            .try_into()
            .map_err(|_| Rejection::Certificate("invalid Ed25519 key"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| Rejection::Certificate("invalid Ed25519 key"))?;
        Ok(CoseKey::EdDsa(key))
    } else {
        Err(Rejection::Certificate(
            "unsupported key type (only P-256 and Ed25519)",
        ))
    }
}

/// A registered credential, as the store holds it.
#[derive(Debug, Clone, Copy)]
pub struct StoredCredential<'a> {
    pub cose_public_key: &'a [u8],
    pub rp_id: &'a str,
    pub sign_count: u32,
    pub uv_required: bool,
}

/// Checks a getAssertion answer made with this credential; returns the new sign count
/// to store.
pub fn verify_assertion(
    cred: &StoredCredential<'_>,
    assertion: &RawAssertion,
    challenge: &[u8; 32],
) -> Result<u32, Rejection> {
    let auth = AuthData::parse(&assertion.auth_data)?;
    if auth.attested.is_some() {
        return Err(Rejection::UnexpectedCredentialData);
    }
    if auth.rp_id_hash != rp_id_hash(cred.rp_id) {
        return Err(Rejection::RpIdHash(cred.rp_id.to_owned()));
    }
    if !auth.user_present() {
        return Err(Rejection::UserPresence);
    }
    if cred.uv_required && !auth.user_verified() {
        return Err(Rejection::UserVerification);
    }
    let key = CoseKey::parse(cred.cose_public_key).map_err(Rejection::StoredKey)?;
    if assertion.signature.len() > cose::MAX_SIGNATURE_LEN {
        return Err(Rejection::Signature(SignatureError::Malformed));
    }
    key.verify(
        &signed_message(&assertion.auth_data, challenge),
        &assertion.signature,
    )
    .map_err(Rejection::Signature)?;
    check_counter(cred.sign_count, auth.sign_count)
}

/// WebAuthn §7.2 step 21: a key that counts must count up; returns the count to store.
/// Zero on both sides means a key without a counter. Checked once more by whoever records
/// the count, against the count stored at that moment.
pub fn check_counter(stored: u32, got: u32) -> Result<u32, Rejection> {
    if (stored != 0 || got != 0) && got <= stored {
        return Err(Rejection::CounterRegression { stored, got });
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth_data::{FLAG_AT, FLAG_UP, FLAG_UV, build};
    use crate::cose::tests::{ed_signing_key, p256_signing_key};
    use p256::ecdsa::signature::Signer as _;

    const RP: &str = "pam://testhost";
    const CH: [u8; 32] = [0x42; 32];

    enum Signer {
        P256(p256::ecdsa::SigningKey),
        Ed(ed25519_dalek::SigningKey),
    }

    impl Signer {
        fn cose(&self) -> CoseKey {
            match self {
                Self::P256(k) => CoseKey::Es256(*k.verifying_key()),
                Self::Ed(k) => CoseKey::EdDsa(k.verifying_key()),
            }
        }
        fn sign(&self, m: &[u8]) -> Vec<u8> {
            match self {
                Self::P256(k) => {
                    let s: p256::ecdsa::Signature = k.sign(m);
                    s.to_der().as_bytes().to_vec()
                }
                Self::Ed(k) => k.sign(m).to_bytes().to_vec(),
            }
        }
    }

    fn attestation(signer: &Signer, rp: &str, flags: u8) -> RawAttestation {
        let cose = signer.cose().to_cose();
        let ad = build(
            &rp_id_hash(rp),
            flags | FLAG_AT,
            3,
            Some((&[0; 16], b"credential-1", &cose)),
        );
        let sig = signer.sign(&signed_message(&ad, &CH));
        RawAttestation {
            fmt: "packed".into(),
            auth_data: ad,
            alg: Some(signer.cose().alg()),
            sig,
            x5c: Vec::new(),
        }
    }

    #[test]
    fn self_attestation_accepted_for_both_algorithms() {
        for signer in [
            Signer::P256(p256_signing_key(1)),
            Signer::Ed(ed_signing_key(2)),
        ] {
            let att = attestation(&signer, RP, FLAG_UP);
            let reg = verify_registration(&att, RP, &CH, false).unwrap();
            assert_eq!(reg.credential_id, b"credential-1");
            assert_eq!(reg.sign_count, 3);
            assert_eq!(reg.attestation, "packed self");
            assert_eq!(CoseKey::parse(&reg.cose_public_key).unwrap(), signer.cose());
        }
    }

    #[test]
    fn registration_refusals() {
        let signer = Signer::P256(p256_signing_key(1));
        let ok = attestation(&signer, RP, FLAG_UP);
        assert!(matches!(
            verify_registration(&ok, "pam://otherhost", &CH, false),
            Err(Rejection::RpIdHash(_))
        ));
        assert!(matches!(
            verify_registration(&ok, RP, &[0; 32], false),
            Err(Rejection::AttestationSignature(SignatureError::Invalid))
        ));
        assert_eq!(
            verify_registration(&ok, RP, &CH, true),
            Err(Rejection::UserVerification)
        );
        let uv = attestation(&signer, RP, FLAG_UP | FLAG_UV);
        assert!(verify_registration(&uv, RP, &CH, true).is_ok());
        let no_up = attestation(&signer, RP, 0);
        assert_eq!(
            verify_registration(&no_up, RP, &CH, false),
            Err(Rejection::UserPresence)
        );
        let mut wrong_alg = ok.clone();
        wrong_alg.alg = Some(cose::ALG_EDDSA);
        assert_eq!(
            verify_registration(&wrong_alg, RP, &CH, false),
            Err(Rejection::AttestationAlgorithm)
        );
        let mut no_alg = ok.clone();
        no_alg.alg = None;
        assert!(verify_registration(&no_alg, RP, &CH, false).is_err());
        let mut fmt = ok.clone();
        fmt.fmt = "fido-u2f".into();
        assert!(matches!(
            verify_registration(&fmt, RP, &CH, false),
            Err(Rejection::AttestationFormat(_))
        ));
        let mut none = ok.clone();
        none.fmt = "none".into();
        assert!(verify_registration(&none, RP, &CH, false).is_err());
        // "none" with any one of a signature, a certificate or an algorithm is refused.
        let attester = p256_signing_key(9);
        let cert = certificate(&p256_spki(attester.verifying_key()));
        for (sig, x5c, alg) in [
            (ok.sig.clone(), vec![], None),
            (vec![], vec![cert], None),
            (vec![], vec![], ok.alg),
        ] {
            let mut one = none.clone();
            (one.sig, one.x5c, one.alg) = (sig, x5c, alg);
            assert!(matches!(
                verify_registration(&one, RP, &CH, false),
                Err(Rejection::AttestationFormat(_))
            ));
        }
        none.alg = None;
        none.sig.clear();
        assert_eq!(
            verify_registration(&none, RP, &CH, false)
                .unwrap()
                .attestation,
            "none"
        );
        let mut bad_cert = ok.clone();
        bad_cert.x5c = vec![vec![0x30, 0x03, 0x02, 0x01, 0x00]];
        assert!(matches!(
            verify_registration(&bad_cert, RP, &CH, false),
            Err(Rejection::Certificate(_))
        ));
        // No attested credential data.
        let mut no_at = ok.clone();
        no_at.auth_data = build(&rp_id_hash(RP), FLAG_UP, 0, None);
        assert_eq!(
            verify_registration(&no_at, RP, &CH, false),
            Err(Rejection::NoCredentialData)
        );
        // Truncated authenticatorData of any length is an error.
        for n in 0..ok.auth_data.len() {
            let mut t = ok.clone();
            t.auth_data.truncate(n);
            assert!(verify_registration(&t, RP, &CH, false).is_err());
        }
    }

    /// A certificate built by hand (DER) around `spki`; only its key is used, so the
    /// certificate's own signature is a placeholder.
    fn certificate(spki: &[u8]) -> Vec<u8> {
        certificate_by(spki, b"test attestation")
    }

    /// [`certificate`] with the issuer's common name `issuer` (which makes it any size).
    fn certificate_by(spki: &[u8], issuer: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let n = body.len();
            if n < 128 {
                out.push(n as u8);
            } else if n < 256 {
                out.extend_from_slice(&[0x81, n as u8]);
            } else {
                out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
            }
            out.extend_from_slice(body);
            out
        }
        let cat = |parts: &[Vec<u8>]| parts.concat();
        let ecdsa_sha256 = tlv(
            0x30,
            &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
        );
        let name = |cn: &[u8]| {
            tlv(
                0x30,
                &tlv(
                    0x31,
                    &tlv(0x30, &cat(&[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, cn)])),
                ),
            )
        };
        let validity = tlv(
            0x30,
            &cat(&[tlv(0x17, b"200101000000Z"), tlv(0x17, b"400101000000Z")]),
        );
        let tbs = tlv(
            0x30,
            &cat(&[
                tlv(0xa0, &tlv(0x02, &[2])),
                tlv(0x02, &[1]),
                ecdsa_sha256.clone(),
                name(issuer),
                validity,
                name(b"test attestation"),
                spki.to_vec(),
            ]),
        );
        tlv(
            0x30,
            &cat(&[tbs, ecdsa_sha256, tlv(0x03, &[0, 0x30, 0x00])]),
        )
    }

    fn p256_spki(k: &p256::ecdsa::VerifyingKey) -> Vec<u8> {
        use p256::pkcs8::EncodePublicKey as _;
        k.to_public_key_der().unwrap().as_bytes().to_vec()
    }

    #[test]
    fn x5c_attestation_is_checked_with_the_certificate_key() {
        let credential = Signer::P256(p256_signing_key(1));
        let attester = Signer::P256(p256_signing_key(9));
        let Signer::P256(attester_key) = &attester else {
            unreachable!()
        };
        let mut att = attestation(&credential, RP, FLAG_UP);
        att.x5c = vec![certificate(&p256_spki(attester_key.verifying_key()))];
        // Signed by the credential key, not the certificate's: refused.
        assert_eq!(
            verify_registration(&att, RP, &CH, false),
            Err(Rejection::AttestationSignature(SignatureError::Invalid))
        );
        att.sig = attester.sign(&signed_message(&att.auth_data, &CH));
        assert_eq!(
            verify_registration(&att, RP, &CH, false)
                .unwrap()
                .attestation,
            "packed x5c"
        );
        // A certificate with trailing bytes or truncated.
        let mut c = att.clone();
        c.x5c[0].push(0);
        assert!(verify_registration(&c, RP, &CH, false).is_err());
        for n in [0, 1, 10, att.x5c[0].len() - 1] {
            let mut c = att.clone();
            c.x5c[0].truncate(n);
            assert!(verify_registration(&c, RP, &CH, false).is_err(), "{n}");
        }
    }

    /// An Ed25519 public key as a SubjectPublicKeyInfo (RFC 8410): the OID 1.3.101.112
    /// and the 32 key bytes.
    fn ed25519_spki(k: &ed25519_dalek::VerifyingKey) -> Vec<u8> {
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(k.as_bytes());
        spki
    }

    /// An attestation certificate with an Ed25519 key is used with that key (and its
    /// algorithm must be the one the attestation names); one with an Ed25519 OID but not
    /// 32 key bytes is refused.
    #[test]
    fn x5c_attestation_with_an_ed25519_certificate() {
        let credential = Signer::P256(p256_signing_key(1));
        let attester = Signer::Ed(ed_signing_key(5));
        let Signer::Ed(attester_key) = &attester else {
            unreachable!()
        };
        let mut att = attestation(&credential, RP, FLAG_UP);
        att.x5c = vec![certificate(&ed25519_spki(&attester_key.verifying_key()))];
        att.alg = Some(attester.cose().alg());
        att.sig = attester.sign(&signed_message(&att.auth_data, &CH));
        assert_eq!(
            verify_registration(&att, RP, &CH, false)
                .unwrap()
                .attestation,
            "packed x5c"
        );
        // The algorithm the attestation names must be the certificate key's.
        let mut wrong_alg = att.clone();
        wrong_alg.alg = Some(credential.cose().alg());
        assert_eq!(
            verify_registration(&wrong_alg, RP, &CH, false),
            Err(Rejection::AttestationAlgorithm)
        );
        // Signed by another key: refused.
        let mut forged = att.clone();
        forged.sig = Signer::Ed(ed_signing_key(6)).sign(&signed_message(&att.auth_data, &CH));
        assert!(matches!(
            verify_registration(&forged, RP, &CH, false),
            Err(Rejection::AttestationSignature(_))
        ));
        // An Ed25519 OID with 31 key bytes.
        let mut short = ed25519_spki(&attester_key.verifying_key());
        short.pop();
        short[1] -= 1;
        short[10] -= 1;
        let mut bad = att.clone();
        bad.x5c = vec![certificate(&short)];
        assert_eq!(
            verify_registration(&bad, RP, &CH, false),
            Err(Rejection::Certificate("invalid Ed25519 key"))
        );
    }

    /// The size limits: more than MAX_X5C certificates, a certificate over MAX_CERT_LEN,
    /// an assertion signature over the COSE limit: refused before anything is parsed.
    #[test]
    fn oversized_attestations_and_signatures_are_refused() {
        let credential = Signer::P256(p256_signing_key(1));
        let attester = Signer::P256(p256_signing_key(9));
        let Signer::P256(attester_key) = &attester else {
            unreachable!()
        };
        let mut att = attestation(&credential, RP, FLAG_UP);
        let cert = certificate(&p256_spki(attester_key.verifying_key()));
        att.sig = attester.sign(&signed_message(&att.auth_data, &CH));
        att.x5c = vec![cert.clone(); MAX_X5C];
        assert!(verify_registration(&att, RP, &CH, false).is_ok());
        att.x5c = vec![cert.clone(); MAX_X5C + 1];
        assert_eq!(
            verify_registration(&att, RP, &CH, false),
            Err(Rejection::Certificate("too many certificates"))
        );
        // A certificate of exactly 8 KiB is taken, one byte more is not.
        let spki = p256_spki(attester_key.verifying_key());
        let exactly = (1..8192)
            .map(|n| certificate_by(&spki, &vec![b'a'; n]))
            .find(|c| c.len() == 8192)
            .unwrap();
        att.x5c = vec![exactly];
        assert_eq!(
            verify_registration(&att, RP, &CH, false)
                .unwrap()
                .attestation,
            "packed x5c"
        );
        let mut long = cert.clone();
        long.resize(MAX_CERT_LEN + 1, 0);
        att.x5c = vec![long];
        assert_eq!(
            verify_registration(&att, RP, &CH, false),
            Err(Rejection::Certificate("too long"))
        );
    }

    fn assertion(signer: &Signer, rp: &str, flags: u8, count: u32) -> RawAssertion {
        let ad = build(&rp_id_hash(rp), flags, count, None);
        let signature = signer.sign(&signed_message(&ad, &CH));
        RawAssertion {
            credential_id: Some(b"credential-1".to_vec()),
            auth_data: ad,
            signature,
        }
    }

    #[test]
    fn assertions() {
        for signer in [
            Signer::P256(p256_signing_key(1)),
            Signer::Ed(ed_signing_key(2)),
        ] {
            let cose = signer.cose().to_cose();
            let cred = StoredCredential {
                cose_public_key: &cose,
                rp_id: RP,
                sign_count: 5,
                uv_required: false,
            };
            assert_eq!(
                verify_assertion(&cred, &assertion(&signer, RP, FLAG_UP, 6), &CH),
                Ok(6)
            );
            for (count, ok) in [(5, false), (4, false), (0, false), (1000, true)] {
                let r = verify_assertion(&cred, &assertion(&signer, RP, FLAG_UP, count), &CH);
                assert_eq!(r.is_ok(), ok, "count {count}: {r:?}");
            }
            assert_eq!(
                verify_assertion(&cred, &assertion(&signer, RP, FLAG_UP, 5), &CH),
                Err(Rejection::CounterRegression { stored: 5, got: 5 })
            );
            // A key without a counter: zero stays acceptable.
            let zero = StoredCredential {
                sign_count: 0,
                ..cred
            };
            assert_eq!(
                verify_assertion(&zero, &assertion(&signer, RP, FLAG_UP, 0), &CH),
                Ok(0)
            );
            assert!(matches!(
                verify_assertion(&cred, &assertion(&signer, "pam://evil", FLAG_UP, 9), &CH),
                Err(Rejection::RpIdHash(_))
            ));
            assert_eq!(
                verify_assertion(&cred, &assertion(&signer, RP, 0, 9), &CH),
                Err(Rejection::UserPresence)
            );
            let uv = StoredCredential {
                uv_required: true,
                ..cred
            };
            assert_eq!(
                verify_assertion(&uv, &assertion(&signer, RP, FLAG_UP, 9), &CH),
                Err(Rejection::UserVerification)
            );
            assert_eq!(
                verify_assertion(&uv, &assertion(&signer, RP, FLAG_UP | FLAG_UV, 9), &CH),
                Ok(9)
            );
            // Another challenge, a flipped signature byte, another key.
            let a = assertion(&signer, RP, FLAG_UP, 9);
            assert!(matches!(
                verify_assertion(&cred, &a, &[1; 32]),
                Err(Rejection::Signature(_))
            ));
            let mut t = a.clone();
            let last = t.signature.len() - 1;
            t.signature[last] ^= 1;
            assert!(matches!(
                verify_assertion(&cred, &t, &CH),
                Err(Rejection::Signature(_))
            ));
            let other = Signer::P256(p256_signing_key(77));
            assert!(matches!(
                verify_assertion(&cred, &assertion(&other, RP, FLAG_UP, 9), &CH),
                Err(Rejection::Signature(_))
            ));
            // Tampered authenticatorData (the counter raised after signing).
            let mut t = a.clone();
            t.auth_data[36] = t.auth_data[36].wrapping_add(1);
            assert!(matches!(
                verify_assertion(&cred, &t, &CH),
                Err(Rejection::Signature(_))
            ));
            // Malformed inputs.
            for n in 0..a.auth_data.len() {
                let mut t = a.clone();
                t.auth_data.truncate(n);
                assert!(verify_assertion(&cred, &t, &CH).is_err());
            }
            let mut t = a.clone();
            t.signature = vec![0; 4096];
            assert!(verify_assertion(&cred, &t, &CH).is_err());
            let corrupt = StoredCredential {
                cose_public_key: &cose[..10],
                ..cred
            };
            assert!(matches!(
                verify_assertion(&corrupt, &a, &CH),
                Err(Rejection::StoredKey(_))
            ));
        }
    }
}
