//! Event-based one-time passwords (RFC 4226 HOTP), for hardware tokens that show the
//! next code each time their button is pressed.
//!
//! `totp-rs` only offers codes for a time, so the HMAC and the dynamic truncation are done
//! here with the RustCrypto `hmac`/`sha1`/`sha2` crates. A typed code is compared with the
//! computed one in constant time (`subtle`), as TOTP codes are, so how much of a wrong code
//! matched is not observable. Which counter values are tried, and what is remembered, is
//! the caller's business ([`crate::login`], [`crate::enrollment`]).

use std::ops::RangeInclusive;

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::code::Code;
use crate::otp::{Algorithm, PairError};
use crate::secret::Secret;
use crate::{Error, Result};

pub use crate::store::params::{HotpParams, MAX_COUNTER};

/// An HOTP key ready to check codes.
pub struct HotpKey {
    secret: Secret,
    params: HotpParams,
}

impl HotpKey {
    pub fn new(secret: &Secret, params: HotpParams) -> Result<Self> {
        if secret.as_bytes().is_empty() {
            return Err(Error::InvalidSecret);
        }
        Ok(Self {
            secret: secret.clone(),
            params: params.validate()?,
        })
    }

    fn hmac(&self, counter: u64) -> Zeroizing<Vec<u8>> {
        fn run<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Zeroizing<Vec<u8>> {
            // Every key length is valid for HMAC; an error here cannot happen, and an
            // empty MAC never matches a code.
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(msg);
                    Zeroizing::new(mac.finalize().into_bytes().to_vec())
                }
                Err(_) => Zeroizing::new(Vec::new()),
            }
        }
        let key = self.secret.as_bytes();
        let msg = counter.to_be_bytes();
        match self.params.algorithm {
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, &msg),
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, &msg),
            Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, &msg),
        }
    }

    /// The code for `counter` (RFC 4226 §5.3: dynamic truncation, then the low digits).
    pub fn code(&self, counter: u64) -> Option<Zeroizing<String>> {
        let mac = self.hmac(counter);
        let offset = usize::from(mac.last()? & 0x0f);
        let bytes: [u8; 4] = mac.get(offset..offset + 4)?.try_into().ok()?;
        let value = u32::from_be_bytes(bytes) & 0x7fff_ffff;
        let modulus = 10u32.checked_pow(u32::from(self.params.digits))?;
        let digits = usize::from(self.params.digits);
        Some(Zeroizing::new(format!(
            "{:0digits$}",
            value % modulus,
            digits = digits
        )))
    }

    /// Whether `code` is this key's code for `counter`, compared in constant time.
    pub fn matches(&self, code: &Code, counter: i64) -> bool {
        let Ok(counter) = u64::try_from(counter) else {
            return false;
        };
        if counter > MAX_COUNTER as u64 {
            return false;
        }
        match self.code(counter) {
            // The lengths are public (the token's digits); only the contents are secret.
            Some(expected) if expected.len() == code.len() => {
                bool::from(expected.as_bytes().ct_eq(code.as_str().as_bytes()))
            }
            _ => false,
        }
    }

    /// The first counter value in `counters` whose code is `code`.
    pub fn find(&self, code: &Code, counters: RangeInclusive<i64>) -> Option<i64> {
        counters.into_iter().find(|&c| self.matches(code, c))
    }

    /// The counter value `c` in `counters` where `first` is the code of `c` and `second`
    /// that of `c + 1` (or the other way round): two presses of the button, so the person
    /// holds the token.
    pub fn find_consecutive(
        &self,
        first: &Code,
        second: &Code,
        counters: RangeInclusive<i64>,
    ) -> std::result::Result<i64, PairError> {
        crate::otp::find_consecutive(|code, c| self.matches(code, c), first, second, counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code;

    fn key(alg: Algorithm, seed: &[u8], digits: u8) -> HotpKey {
        let params = HotpParams {
            algorithm: alg,
            digits,
        };
        HotpKey::new(&Secret::from_bytes(seed.to_vec()), params).unwrap()
    }

    /// RFC 4226 Appendix D: the secret "12345678901234567890", counters 0 to 9.
    #[test]
    fn rfc4226_appendix_d_vectors() {
        let k = key(Algorithm::Sha1, b"12345678901234567890", 6);
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            let counter = counter as i64;
            assert_eq!(k.code(counter as u64).unwrap().as_str(), *want);
            let c = code::parse(want.as_bytes()).unwrap();
            assert!(k.matches(&c, counter), "counter {counter}");
            assert!(!k.matches(&c, counter + 1), "counter {counter} + 1");
            assert_eq!(k.find(&c, 0..=9), Some(counter));
        }
    }

    /// RFC 6238 Appendix B gives 8-digit SHA-1/256/512 codes for T = floor(t / 30), which
    /// are HOTP codes for the counter T: the vectors for SHA-256/512 and 8 digits.
    #[test]
    fn sha256_sha512_and_eight_digits() {
        let cases: &[(Algorithm, &[u8], u64, &str)] = &[
            (Algorithm::Sha1, b"12345678901234567890", 1, "94287082"),
            (
                Algorithm::Sha256,
                b"12345678901234567890123456789012",
                1,
                "46119246",
            ),
            (
                Algorithm::Sha512,
                b"1234567890123456789012345678901234567890123456789012345678901234",
                1,
                "90693936",
            ),
            (
                Algorithm::Sha256,
                b"12345678901234567890123456789012",
                1_111_111_109 / 30,
                "68084774",
            ),
            (
                Algorithm::Sha512,
                b"1234567890123456789012345678901234567890123456789012345678901234",
                20_000_000_000 / 30,
                "47863826",
            ),
        ];
        for &(alg, seed, counter, want) in cases {
            let k = key(alg, seed, 8);
            assert_eq!(k.code(counter).unwrap().as_str(), want, "{alg} {counter}");
            let c = code::parse(want.as_bytes()).unwrap();
            assert!(k.matches(&c, counter as i64));
            // The 6-digit truncation is not an answer for an 8-digit token.
            let six = code::parse(&want.as_bytes()[2..]).unwrap();
            assert!(!k.matches(&six, counter as i64));
        }
    }

    #[test]
    fn consecutive_presses_and_bounds() {
        let k = key(Algorithm::Sha1, b"12345678901234567890", 6);
        let c = |s: &str| code::parse(s.as_bytes()).unwrap();
        assert_eq!(k.find_consecutive(&c("969429"), &c("338314"), 0..=9), Ok(3));
        // Typed the other way round: still presses 3 and 4.
        assert_eq!(k.find_consecutive(&c("338314"), &c("969429"), 0..=9), Ok(3));
        // Presses 3 and 5: both valid, not in a row.
        assert_eq!(
            k.find_consecutive(&c("969429"), &c("254676"), 0..=9),
            Err(PairError::NotConsecutive)
        );
        assert_eq!(
            k.find_consecutive(&c("969429"), &c("969429"), 0..=9),
            Err(PairError::NotConsecutive)
        );
        // Outside the range searched.
        assert_eq!(
            k.find_consecutive(&c("969429"), &c("338314"), 4..=9),
            Err(PairError::FirstWrong)
        );
        assert!(!k.matches(&c("755224"), -1));
        assert!(!k.matches(&c("755224"), MAX_COUNTER + 1));
        // The cap refuses a code that is right for a counter past it (a code that would
        // not match anyway proves nothing about the cap).
        let past = MAX_COUNTER + 1;
        let right = k.code(past as u64).unwrap();
        assert!(!k.matches(&c(&right), past));
        let at_cap = k.code(MAX_COUNTER as u64).unwrap();
        assert!(k.matches(&c(&at_cap), MAX_COUNTER));
        assert!(!k.matches(&c("755224"), i64::MAX));
        assert!(
            HotpKey::new(
                &Secret::from_bytes(vec![1; 20]),
                HotpParams {
                    algorithm: Algorithm::Sha1,
                    digits: 9
                }
            )
            .is_err()
        );
    }
}
