//! FIDO2 parsing: COSE keys (CBOR), authenticatorData, and the relying-party checks of a
//! getAssertion / makeCredential answer built from fuzzed bytes. The first byte chooses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa::fido2::auth_data::AuthData;
use pam_mfa::fido2::cose::CoseKey;
use pam_mfa::fido2::transport::{RawAssertion, RawAttestation};
use pam_mfa::fido2::verify::{self, StoredCredential};

/// The COSE encoding of the P-256 public key whose private key is 1 (the curve's
/// generator): a real key, so the signature check runs to the end.
const P256_G_COSE: [u8; 77] = [
    0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58,
    0x20, // kty EC2, alg ES256, P-256, x:
    0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2,
    0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96,
    0x22, 0x58, 0x20, // y:
    0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16,
    0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
];

const RP_ID: &str = "pam://fuzz";

/// Splits `data` into a length-prefixed head (first byte = length) and the rest.
fn take(data: &[u8]) -> (&[u8], &[u8]) {
    match data.split_first() {
        None => (&[], &[]),
        Some((&n, rest)) => rest.split_at(usize::from(n).min(rest.len())),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(key) = CoseKey::parse(rest) {
                // What we store is the canonical encoding; it must parse to the same key.
                let canonical = key.to_cose();
                match CoseKey::parse(&canonical) {
                    Ok(again) => assert_eq!(again.to_cose(), canonical),
                    Err(e) => panic!("canonical encoding does not parse: {e:?}"),
                }
                let (message, signature) = take(rest);
                let _ = key.verify(message, signature);
            }
            let mut prefix = rest;
            let _ = CoseKey::parse_prefix(&mut prefix);
            assert!(prefix.len() <= rest.len());
        }
        1 => {
            if let Ok(auth) = AuthData::parse(rest)
                && let Some(cred) = &auth.attested
            {
                assert!(CoseKey::parse(&cred.public_key_bytes).is_ok());
            }
        }
        2 => {
            let (auth_data, signature) = take(rest);
            let assertion = RawAssertion {
                credential_id: None,
                auth_data: auth_data.to_vec(),
                signature: signature.to_vec(),
            };
            for uv_required in [false, true] {
                let cred = StoredCredential {
                    cose_public_key: &P256_G_COSE,
                    rp_id: RP_ID,
                    sign_count: 7,
                    uv_required,
                };
                // Nobody forges an ECDSA signature: fuzzed bytes are never accepted.
                let verdict = verify::verify_assertion(&cred, &assertion, &[0x42; 32]);
                assert!(verdict.is_err(), "accepted a fuzzed assertion: {verdict:?}");
            }
        }
        _ => {
            let (auth_data, rest) = take(rest);
            let (sig, rest) = take(rest);
            let (cert, _) = take(rest);
            let att = RawAttestation {
                fmt: if sig.is_empty() { "none" } else { "packed" }.to_owned(),
                auth_data: auth_data.to_vec(),
                alg: Some(if mode & 4 == 0 { -7 } else { -8 }),
                sig: sig.to_vec(),
                x5c: if cert.is_empty() {
                    Vec::new()
                } else {
                    vec![cert.to_vec()]
                },
            };
            let _ = verify::verify_registration(&att, RP_ID, &[0x42; 32], mode & 8 != 0);
        }
    }
});
