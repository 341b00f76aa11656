//! CTAP2 authenticatorData (WebAuthn §6.1), parsed with bounded lengths.
//!
//! ```text
//! rpIdHash (32) | flags (1) | signCount (4, big endian)
//!   [ attested credential data: aaguid (16) | credIdLen (2) | credId | COSE key ]  if AT
//!   [ extensions: a CBOR map ]                                                     if ED
//! ```
//! Every length is checked before it is used, nothing may follow the last part, and the
//! CBOR parts must be exactly the types WebAuthn says: anything else is an error.

use ciborium::value::Value;

use super::cose::{CoseKey, read_item};
use crate::MAX_CREDENTIAL_ID_LEN;

/// authenticatorData larger than this is refused (real ones are a few hundred bytes).
pub const MAX_AUTH_DATA_LEN: usize = 4096;
const FIXED_LEN: usize = 37;

pub const FLAG_UP: u8 = 0x01;
pub const FLAG_UV: u8 = 0x04;
pub const FLAG_AT: u8 = 0x40;
pub const FLAG_ED: u8 = 0x80;

/// Why bytes from a key could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0} is truncated")]
    Truncated(&'static str),
    #[error("{0} is too long")]
    TooLong(&'static str),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0}: wrong type")]
    WrongType(&'static str),
    #[error("{0} is not valid CBOR")]
    Cbor(&'static str),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}

/// The credential a key created, from the attested credential data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential {
    pub aaguid: [u8; 16],
    pub credential_id: Vec<u8>,
    pub public_key: CoseKey,
    /// The COSE key exactly as the key sent it.
    pub public_key_bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    pub attested: Option<AttestedCredential>,
    pub has_extensions: bool,
}

impl AuthData {
    pub fn user_present(&self) -> bool {
        self.flags & FLAG_UP != 0
    }

    pub fn user_verified(&self) -> bool {
        self.flags & FLAG_UV != 0
    }

    pub fn parse(raw: &[u8]) -> Result<Self, ParseError> {
        if raw.len() > MAX_AUTH_DATA_LEN {
            return Err(ParseError::TooLong("authenticatorData"));
        }
        let (fixed, mut rest) = split(raw, FIXED_LEN, "authenticatorData")?;
        let (hash, tail) = split(fixed, 32, "rpIdHash")?;
        let rp_id_hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| ParseError::Truncated("rpIdHash"))?;
        let (&flags, counter) = tail.split_first().ok_or(ParseError::Truncated("flags"))?;
        let sign_count = u32::from_be_bytes(
            counter
                .try_into()
                .map_err(|_| ParseError::Truncated("signCount"))?,
        );

        let attested = if flags & FLAG_AT != 0 {
            let (aaguid, r) = split(rest, 16, "AAGUID")?;
            let (len, r) = split(r, 2, "credential id length")?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            if len == 0 {
                return Err(ParseError::Invalid("empty credential id"));
            }
            if len > MAX_CREDENTIAL_ID_LEN {
                return Err(ParseError::TooLong("credential id"));
            }
            let (id, mut r) = split(r, len, "credential id")?;
            let before = r;
            let public_key = CoseKey::parse_prefix(&mut r)?;
            let used = before.len().saturating_sub(r.len());
            let public_key_bytes = before.get(..used).unwrap_or_default().to_vec();
            rest = r;
            Some(AttestedCredential {
                aaguid: aaguid
                    .try_into()
                    .map_err(|_| ParseError::Truncated("AAGUID"))?,
                credential_id: id.to_vec(),
                public_key,
                public_key_bytes,
            })
        } else {
            None
        };

        let has_extensions = flags & FLAG_ED != 0;
        if has_extensions {
            match read_item(&mut rest, MAX_AUTH_DATA_LEN, "extensions")? {
                Value::Map(entries) => {
                    if entries.iter().any(|(k, _)| !matches!(k, Value::Text(_))) {
                        return Err(ParseError::WrongType("extension identifier"));
                    }
                }
                _ => return Err(ParseError::WrongType("extensions are not a map")),
            }
        }
        if !rest.is_empty() {
            return Err(ParseError::Invalid("trailing bytes in authenticatorData"));
        }
        Ok(Self {
            rp_id_hash,
            flags,
            sign_count,
            attested,
            has_extensions,
        })
    }
}

/// `(first n bytes, the rest)`, or `Truncated(what)`.
fn split<'a>(
    b: &'a [u8],
    n: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    if b.len() < n {
        return Err(ParseError::Truncated(what));
    }
    Ok(b.split_at(n))
}

/// Builds authenticatorData (for the software authenticator and for tests).
pub fn build(
    rp_id_hash: &[u8; 32],
    flags: u8,
    sign_count: u32,
    attested: Option<(&[u8; 16], &[u8], &[u8])>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(rp_id_hash);
    out.push(flags);
    out.extend_from_slice(&sign_count.to_be_bytes());
    if let Some((aaguid, id, cose)) = attested {
        out.extend_from_slice(aaguid);
        let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(cose);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cose::tests::{ed_signing_key, p256_signing_key};

    fn cose() -> Vec<u8> {
        CoseKey::Es256(*p256_signing_key(5).verifying_key()).to_cose()
    }

    fn with_credential(id_len: usize) -> Vec<u8> {
        let id = vec![0xab; id_len];
        build(
            &[1; 32],
            FLAG_UP | FLAG_AT,
            7,
            Some((&[2; 16], &id, &cose())),
        )
    }

    #[test]
    fn parses_assertion_and_registration_data() {
        let a = AuthData::parse(&build(&[9; 32], FLAG_UP | FLAG_UV, 0x0102_0304, None)).unwrap();
        assert_eq!(a.rp_id_hash, [9; 32]);
        assert!(a.user_present() && a.user_verified());
        assert_eq!(a.sign_count, 0x0102_0304);
        assert!(a.attested.is_none());

        let r = AuthData::parse(&with_credential(64)).unwrap();
        let c = r.attested.unwrap();
        assert_eq!(c.aaguid, [2; 16]);
        assert_eq!(c.credential_id, vec![0xab; 64]);
        assert_eq!(c.public_key_bytes, cose());
        assert_eq!(r.sign_count, 7);

        let ed = CoseKey::EdDsa(ed_signing_key(3).verifying_key()).to_cose();
        let raw = build(&[1; 32], FLAG_UP | FLAG_AT, 0, Some((&[0; 16], b"id", &ed)));
        assert!(matches!(
            AuthData::parse(&raw).unwrap().attested.unwrap().public_key,
            CoseKey::EdDsa(_)
        ));

        // Extensions after the credential: a map with text keys.
        let mut raw = with_credential(16);
        raw[32] |= FLAG_ED;
        raw.extend_from_slice(&[0xa1, 0x6b]);
        raw.extend_from_slice(b"credProtect");
        raw.push(0x02);
        assert!(AuthData::parse(&raw).unwrap().has_extensions);
    }

    #[test]
    fn authenticator_data_of_exactly_the_limit_parses() {
        // 37 fixed bytes and an extensions map {"x": 4,053 bytes}: 4,096 in all.
        let mut raw = build(&[1; 32], FLAG_UP | FLAG_ED, 0, None);
        raw.extend_from_slice(&[0xa1, 0x61, b'x', 0x59, 0x0f, 0xd5]);
        raw.resize(4096, 0);
        assert_eq!(raw.len(), MAX_AUTH_DATA_LEN);
        assert!(AuthData::parse(&raw).unwrap().has_extensions);
        raw.push(0);
        assert_eq!(
            AuthData::parse(&raw),
            Err(ParseError::TooLong("authenticatorData"))
        );
    }

    #[test]
    fn malformed_data_is_an_error_never_a_panic() {
        let good = with_credential(32);
        for n in 0..good.len() {
            assert!(AuthData::parse(&good[..n]).is_err(), "truncated to {n}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(AuthData::parse(&trailing).is_err());
        // AT without the credential, or a credential without AT.
        assert!(AuthData::parse(&build(&[1; 32], FLAG_AT, 0, None)).is_err());
        let mut no_at = good.clone();
        no_at[32] &= !FLAG_AT;
        assert!(AuthData::parse(&no_at).is_err());
        // Credential id length: zero, more than the data, more than WebAuthn allows.
        for len in [0u16, 40, 1024, u16::MAX] {
            let mut b = good.clone();
            b[53..55].copy_from_slice(&len.to_be_bytes());
            assert!(AuthData::parse(&b).is_err(), "length {len}");
        }
        assert_eq!(
            AuthData::parse(&with_credential(1024)),
            Err(ParseError::TooLong("credential id"))
        );
        assert!(AuthData::parse(&with_credential(1023)).is_ok());
        // ED set but no extensions, or extensions of the wrong type.
        let mut b = build(&[1; 32], FLAG_UP | FLAG_ED, 0, None);
        assert!(AuthData::parse(&b).is_err());
        b.push(0x80); // an array
        assert!(AuthData::parse(&b).is_err());
        let mut b = build(&[1; 32], FLAG_UP | FLAG_ED, 0, None);
        b.extend_from_slice(&[0xa1, 0x01, 0x02]); // integer key
        assert!(AuthData::parse(&b).is_err());
        // Oversized input.
        assert_eq!(
            AuthData::parse(&vec![0; MAX_AUTH_DATA_LEN + 1]),
            Err(ParseError::TooLong("authenticatorData"))
        );
        // The COSE key replaced by other CBOR types.
        let head = &good[..55 + 32];
        for other in [&[0x80][..], &[0x01], &[0x40], &[0x60], &[0xf6], &[0xa0]] {
            let mut b = head.to_vec();
            b.extend_from_slice(other);
            assert!(AuthData::parse(&b).is_err(), "{other:?}");
        }
        // Every single-byte corruption: an error or some other valid value.
        for pos in 0..good.len() {
            for delta in [1u8, 0x40, 0x80, 0xff] {
                let mut b = good.clone();
                b[pos] ^= delta;
                let _ = AuthData::parse(&b);
            }
        }
        // Pseudo-random junk of every length up to 300 bytes, with AT and ED set.
        let mut x: u32 = 0x1234_5678;
        for len in 0..300 {
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_le_bytes()[0]
                })
                .collect();
            if b.len() > 32 {
                b[32] |= FLAG_AT | FLAG_ED;
            }
            let _ = AuthData::parse(&b);
        }
    }
}
