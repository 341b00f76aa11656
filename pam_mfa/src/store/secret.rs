//! OTP shared secrets: generated from the OS random source, wiped from memory on drop,
//! and never shown except in the forms a person registering a device needs. Defined with
//! the store, which keeps them, so that the store needs nothing from above it; the rest of
//! the library reaches them as `crate::secret`.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Length of a freshly generated secret: 160 bits, the HMAC-SHA1 block-friendly size
/// RFC 4226 recommends and every authenticator app accepts.
pub const GENERATED_SECRET_BYTES: usize = 20;

/// An OTP shared secret.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// A new random secret from the kernel's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new(vec![0u8; GENERATED_SECRET_BYTES]);
        getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses base32 as people and apps write it: any case, spaces and `=` padding ignored.
    pub fn from_base32(text: &str) -> Result<Self> {
        let mut cleaned = Zeroizing::new(String::with_capacity(text.len()));
        for c in text.chars() {
            match c {
                ' ' | '-' | '=' => {}
                c => cleaned.push(c.to_ascii_uppercase()),
            }
        }
        BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map(Self::from_bytes)
            .map_err(|_| Error::InvalidSecret)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unpadded base32, the form `otpauth://` URIs carry.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE32_NOPAD.encode(&self.0))
    }

    /// Base32 in groups of four, for typing into an app by hand without losing one's place.
    pub fn to_base32_grouped(&self) -> Zeroizing<String> {
        let plain = self.to_base32();
        let mut out = Zeroizing::new(String::with_capacity(plain.len() + plain.len() / 4));
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_160_bits_and_differ() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn base32_round_trip_and_grouping() {
        let s = Secret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(s.to_base32().as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            s.to_base32_grouped().as_str(),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
        let back = Secret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap();
        assert_eq!(back.as_bytes(), s.as_bytes());
        assert!(Secret::from_base32("not base32!").is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::from_bytes(b"12345678901234567890".to_vec());
        assert!(!format!("{s:?}").contains("1234"));
    }
}
