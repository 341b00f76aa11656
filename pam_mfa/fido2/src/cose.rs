//! COSE public keys (RFC 9053) as FIDO2 keys send them, and checking signatures with them.
//!
//! Two algorithms are accepted: ES256 (ECDSA on P-256 with SHA-256, signatures DER
//! encoded as CTAP sends them) and EdDSA (Ed25519, strict verification). Parsing checks
//! every field's type and value, refuses duplicate labels, and works on bounded input, so
//! a malformed key is an error and never a panic.

use ciborium::value::{Integer, Value};
use p256::ecdsa::signature::Verifier as _;

use super::auth_data::ParseError;

/// The largest COSE key accepted (an ES256 key is 77 bytes).
pub const MAX_COSE_KEY_LEN: usize = 1024;
/// The largest signature accepted (a DER ES256 signature is at most 72 bytes).
pub const MAX_SIGNATURE_LEN: usize = 512;

/// COSE algorithm identifiers.
pub const ALG_ES256: i64 = -7;
pub const ALG_EDDSA: i64 = -8;

// COSE key labels and values.
const LABEL_KTY: i64 = 1;
const LABEL_ALG: i64 = 3;
const LABEL_CRV: i64 = -1;
const LABEL_X: i64 = -2;
const LABEL_Y: i64 = -3;
const KTY_OKP: i64 = 1;
const KTY_EC2: i64 = 2;
const CRV_P256: i64 = 1;
const CRV_ED25519: i64 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKey {
    Es256(p256::ecdsa::VerifyingKey),
    EdDsa(ed25519_dalek::VerifyingKey),
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is malformed")]
    Malformed,
    #[error("the signature does not verify")]
    Invalid,
}

impl CoseKey {
    /// Parses a buffer that holds exactly one COSE key.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut rest = bytes;
        let key = Self::parse_prefix(&mut rest)?;
        if !rest.is_empty() {
            return Err(ParseError::Invalid("trailing bytes after the COSE key"));
        }
        Ok(key)
    }

    /// Parses the COSE key at the start of `input` and advances it past the key.
    pub fn parse_prefix(input: &mut &[u8]) -> Result<Self, ParseError> {
        let before = *input;
        let value = read_item(input, MAX_COSE_KEY_LEN, "COSE key")?;
        let used = before.len().saturating_sub(input.len());
        if used > MAX_COSE_KEY_LEN {
            return Err(ParseError::TooLong("COSE key"));
        }
        Self::from_value(&value)
    }

    fn from_value(value: &Value) -> Result<Self, ParseError> {
        let Value::Map(entries) = value else {
            return Err(ParseError::WrongType("COSE key is not a map"));
        };
        if entries.len() > 16 {
            return Err(ParseError::TooLong("COSE key has too many fields"));
        }
        let mut labels: Vec<i64> = Vec::with_capacity(entries.len());
        for (k, _) in entries {
            // Text labels are allowed by COSE but none matters here; they are only
            // checked for duplicates like the integer ones.
            let label = match k {
                Value::Integer(i) => int(*i).ok_or(ParseError::Invalid("COSE label"))?,
                Value::Text(_) => continue,
                _ => return Err(ParseError::WrongType("COSE label is not an integer")),
            };
            if labels.contains(&label) {
                return Err(ParseError::Invalid("duplicate COSE label"));
            }
            labels.push(label);
        }
        let texts: Vec<&String> = entries
            .iter()
            .filter_map(|(k, _)| match k {
                Value::Text(t) => Some(t),
                _ => None,
            })
            .collect();
        for (i, t) in texts.iter().enumerate() {
            if texts.iter().skip(i + 1).any(|u| u == t) {
                return Err(ParseError::Invalid("duplicate COSE label"));
            }
        }
        let get = |label: i64| {
            entries.iter().find_map(|(k, v)| match k {
                Value::Integer(i) if int(*i) == Some(label) => Some(v),
                _ => None,
            })
        };
        let get_int = |label: i64, what: &'static str| -> Result<i64, ParseError> {
            match get(label) {
                None => Err(ParseError::Missing(what)),
                Some(Value::Integer(i)) => int(*i).ok_or(ParseError::Invalid(what)),
                Some(_) => Err(ParseError::WrongType(what)),
            }
        };
        let get_bytes = |label: i64, what: &'static str| -> Result<&[u8], ParseError> {
            match get(label) {
                None => Err(ParseError::Missing(what)),
                Some(Value::Bytes(b)) => Ok(b.as_slice()),
                Some(_) => Err(ParseError::WrongType(what)),
            }
        };
        let kty = get_int(LABEL_KTY, "COSE key type (kty)")?;
        let alg = get_int(LABEL_ALG, "COSE algorithm (alg)")?;
        let crv = get_int(LABEL_CRV, "COSE curve (crv)")?;
        match (kty, alg, crv) {
            (KTY_EC2, ALG_ES256, CRV_P256) => {
                let x = get_bytes(LABEL_X, "P-256 x coordinate")?;
                let y = get_bytes(LABEL_Y, "P-256 y coordinate")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(ParseError::Invalid("P-256 coordinates must be 32 bytes"));
                }
                let mut sec1 = [0u8; 65];
                sec1[0] = 0x04;
                sec1[1..33].copy_from_slice(x);
                sec1[33..].copy_from_slice(y);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| ParseError::Invalid("P-256 point is not on the curve"))?;
                Ok(Self::Es256(key))
            }
            (KTY_OKP, ALG_EDDSA, CRV_ED25519) => {
                if get(LABEL_Y).is_some() {
                    return Err(ParseError::Invalid("Ed25519 key with a y coordinate"));
                }
                let x: &[u8; 32] = get_bytes(LABEL_X, "Ed25519 public key")?
                    .try_into()
                    .map_err(|_| ParseError::Invalid("Ed25519 public key must be 32 bytes"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(x)
                    .map_err(|_| ParseError::Invalid("Ed25519 public key is not a point"))?;
                if key.is_weak() {
                    return Err(ParseError::Invalid("Ed25519 public key of small order"));
                }
                Ok(Self::EdDsa(key))
            }
            _ => Err(ParseError::Unsupported(
                "key type/algorithm/curve (only ES256 on P-256 and EdDSA on Ed25519)",
            )),
        }
    }

    /// The COSE algorithm identifier.
    pub fn alg(&self) -> i64 {
        match self {
            Self::Es256(_) => ALG_ES256,
            Self::EdDsa(_) => ALG_EDDSA,
        }
    }

    /// A short name for logs and `mfa list`.
    pub fn alg_name(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::EdDsa(_) => "EdDSA",
        }
    }

    /// The key in its canonical COSE encoding (what a key sends, and what we store).
    pub fn to_cose(&self) -> Vec<u8> {
        let i = |n: i64| Value::Integer(Integer::from(n));
        let map = match self {
            Self::Es256(key) => {
                let point = key.to_sec1_bytes();
                let (x, y) = match point.get(1..33).zip(point.get(33..65)) {
                    Some((x, y)) => (x.to_vec(), y.to_vec()),
                    None => (Vec::new(), Vec::new()),
                };
                vec![
                    (i(LABEL_KTY), i(KTY_EC2)),
                    (i(LABEL_ALG), i(ALG_ES256)),
                    (i(LABEL_CRV), i(CRV_P256)),
                    (i(LABEL_X), Value::Bytes(x)),
                    (i(LABEL_Y), Value::Bytes(y)),
                ]
            }
            Self::EdDsa(key) => vec![
                (i(LABEL_KTY), i(KTY_OKP)),
                (i(LABEL_ALG), i(ALG_EDDSA)),
                (i(LABEL_CRV), i(CRV_ED25519)),
                (i(LABEL_X), Value::Bytes(key.as_bytes().to_vec())),
            ],
        };
        let mut out = Vec::with_capacity(80);
        // Writing into a Vec cannot fail.
        let _ = ciborium::ser::into_writer(&Value::Map(map), &mut out);
        out
    }

    /// Checks `signature` over `message` (for FIDO2: authenticatorData || clientDataHash).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        if signature.is_empty() || signature.len() > MAX_SIGNATURE_LEN {
            return Err(SignatureError::Malformed);
        }
        match self {
            Self::Es256(key) => {
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::Malformed)?;
                key.verify(message, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            Self::EdDsa(key) => {
                let bytes: &[u8; 64] = signature
                    .try_into()
                    .map_err(|_| SignatureError::Malformed)?;
                let sig = ed25519_dalek::Signature::from_bytes(bytes);
                key.verify_strict(message, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
        }
    }
}

/// An i64 from a CBOR integer, `None` when out of range.
pub(crate) fn int(i: Integer) -> Option<i64> {
    i64::try_from(i128::from(i)).ok()
}

/// Reads one CBOR item from the start of `input` (at most `max` bytes of it) and advances
/// `input` past it.
pub(crate) fn read_item(
    input: &mut &[u8],
    max: usize,
    what: &'static str,
) -> Result<Value, ParseError> {
    if input.is_empty() {
        return Err(ParseError::Truncated(what));
    }
    let window = input.get(..max.min(input.len())).unwrap_or(input);
    let mut reader: &[u8] = window;
    let value: Value = ciborium::de::from_reader(&mut reader).map_err(|e| match e {
        ciborium::de::Error::Io(_) => {
            if window.len() < input.len() {
                ParseError::TooLong(what)
            } else {
                ParseError::Truncated(what)
            }
        }
        ciborium::de::Error::RecursionLimitExceeded => ParseError::TooLong(what),
        _ => ParseError::Cbor(what),
    })?;
    let used = window.len().saturating_sub(reader.len());
    *input = input.get(used..).unwrap_or_default();
    Ok(value)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;

    pub fn p256_signing_key(seed: u8) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[seed.max(1); 32]).unwrap()
    }

    pub fn ed_signing_key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn cbor(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    fn i(n: i64) -> Value {
        Value::Integer(n.into())
    }

    #[test]
    fn round_trip_and_signatures() {
        let sk = p256_signing_key(7);
        let key = CoseKey::Es256(*sk.verifying_key());
        let bytes = key.to_cose();
        assert_eq!(CoseKey::parse(&bytes).unwrap(), key);
        let sig: p256::ecdsa::Signature = sk.sign(b"message");
        let der = sig.to_der();
        assert_eq!(key.verify(b"message", der.as_bytes()), Ok(()));
        assert_eq!(
            key.verify(b"messagf", der.as_bytes()),
            Err(SignatureError::Invalid)
        );
        // A raw (r||s) signature is not DER.
        assert_eq!(
            key.verify(b"message", &sig.to_bytes()),
            Err(SignatureError::Malformed)
        );
        assert_eq!(key.verify(b"message", &[]), Err(SignatureError::Malformed));
        assert_eq!(
            key.verify(b"message", &[0x30; 600]),
            Err(SignatureError::Malformed)
        );

        let ed = ed_signing_key(9);
        let key = CoseKey::EdDsa(ed.verifying_key());
        let bytes = key.to_cose();
        assert_eq!(CoseKey::parse(&bytes).unwrap(), key);
        let sig = ed.sign(b"message").to_bytes();
        assert_eq!(key.verify(b"message", &sig), Ok(()));
        assert_eq!(key.verify(b"other", &sig), Err(SignatureError::Invalid));
        assert_eq!(
            key.verify(b"message", &sig[..63]),
            Err(SignatureError::Malformed)
        );
        // An ES256 key never accepts an Ed25519 signature and vice versa.
        let es = CoseKey::Es256(*p256_signing_key(3).verifying_key());
        assert!(es.verify(b"message", &sig).is_err());
    }

    fn es256_map(x: Value, y: Value) -> Vec<(Value, Value)> {
        vec![
            (i(1), i(2)),
            (i(3), i(-7)),
            (i(-1), i(1)),
            (i(-2), x),
            (i(-3), y),
        ]
    }

    #[test]
    fn malformed_keys_are_errors() {
        let sk = p256_signing_key(7);
        let good = CoseKey::Es256(*sk.verifying_key()).to_cose();
        // Every truncation.
        for n in 0..good.len() {
            assert!(CoseKey::parse(&good[..n]).is_err(), "truncated to {n}");
        }
        // Trailing garbage.
        let mut long = good.clone();
        long.push(0);
        assert!(CoseKey::parse(&long).is_err());
        // Every single-byte corruption is an error or a different valid key, never a panic.
        for pos in 0..good.len() {
            for delta in [1u8, 0x20, 0x80, 0xff] {
                let mut b = good.clone();
                b[pos] ^= delta;
                let _ = CoseKey::parse(&b);
            }
        }
        let point = sk.verifying_key().to_sec1_bytes();
        let (x, y) = (point[1..33].to_vec(), point[33..].to_vec());
        let cases: Vec<(&str, Value)> = vec![
            ("not a map", Value::Array(vec![])),
            ("text", Value::Text("key".into())),
            (
                "x wrong type",
                Value::Map(es256_map(Value::Text("x".into()), Value::Bytes(y.clone()))),
            ),
            (
                "x short",
                Value::Map(es256_map(
                    Value::Bytes(x[..31].to_vec()),
                    Value::Bytes(y.clone()),
                )),
            ),
            (
                "off curve",
                Value::Map(es256_map(
                    Value::Bytes(x.clone()),
                    Value::Bytes(vec![0; 32]),
                )),
            ),
            ("missing y", {
                let mut m = es256_map(Value::Bytes(x.clone()), Value::Bytes(y.clone()));
                m.pop();
                Value::Map(m)
            }),
            ("duplicate label", {
                let mut m = es256_map(Value::Bytes(x.clone()), Value::Bytes(y.clone()));
                m.push((i(3), i(-7)));
                Value::Map(m)
            }),
            ("alg RS256", {
                let mut m = es256_map(Value::Bytes(x.clone()), Value::Bytes(y.clone()));
                m[1].1 = i(-257);
                Value::Map(m)
            }),
            ("alg wrong type", {
                let mut m = es256_map(Value::Bytes(x.clone()), Value::Bytes(y.clone()));
                m[1].1 = Value::Text("ES256".into());
                Value::Map(m)
            }),
            ("huge label", {
                let mut m = es256_map(Value::Bytes(x.clone()), Value::Bytes(y.clone()));
                m.push((Value::Integer(u64::MAX.into()), i(0)));
                Value::Map(m)
            }),
            ("bool label", {
                let mut m = es256_map(Value::Bytes(x.clone()), Value::Bytes(y.clone()));
                m.push((Value::Bool(true), i(0)));
                Value::Map(m)
            }),
            ("ed25519 with y", {
                Value::Map(vec![
                    (i(1), i(1)),
                    (i(3), i(-8)),
                    (i(-1), i(6)),
                    (i(-2), Value::Bytes(vec![0; 32])),
                    (i(-3), Value::Bytes(vec![0; 32])),
                ])
            }),
            ("ed25519 small order", {
                // The identity point.
                let mut ident = [0u8; 32];
                ident[0] = 1;
                Value::Map(vec![
                    (i(1), i(1)),
                    (i(3), i(-8)),
                    (i(-1), i(6)),
                    (i(-2), Value::Bytes(ident.to_vec())),
                ])
            }),
        ];
        for (what, v) in cases {
            assert!(CoseKey::parse(&cbor(&v)).is_err(), "{what} accepted");
        }
        // Raw CBOR oddities: a byte string that claims 2^63 bytes, deep nesting, an
        // indefinite map that never ends, nothing at all.
        let huge = [
            0xa1, 0x21, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(CoseKey::parse(&huge).is_err());
        let deep = vec![0x81u8; 5000];
        assert!(CoseKey::parse(&deep).is_err());
        assert!(CoseKey::parse(&[0xbf, 0x01, 0x02]).is_err());
        assert!(CoseKey::parse(&[]).is_err());
        assert!(CoseKey::parse(&vec![0xa0; MAX_COSE_KEY_LEN + 10]).is_err());
    }
}
