//! One-time password checking (RFC 6238 TOTP, over RFC 4226 HOTP).
//!
//! The HMAC truncation itself comes from the `totp-rs` crate; this module decides which
//! time steps to try. Every comparison goes through `totp-rs`'s constant-time token
//! equality, so how much of a wrong code matched is not observable.

use std::ops::RangeInclusive;

use totp_rs::Builder;

use crate::code::Code;
use crate::secret::Secret;
use crate::{Error, Result};

pub use crate::store::params::{Algorithm, TotpParams};

impl Algorithm {
    fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Self::Sha1 => totp_rs::Algorithm::SHA1,
            Self::Sha256 => totp_rs::Algorithm::SHA256,
            Self::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl TotpParams {
    /// The time step that contains `unix` (RFC 6238 T = floor(unix / period)).
    pub fn step_at(self, unix: i64) -> i64 {
        unix.div_euclid(i64::from(self.period.max(1)))
    }
}

/// A TOTP key ready to check codes: the secret plus its parameters.
pub struct TotpKey {
    totp: totp_rs::Totp,
    params: TotpParams,
}

impl TotpKey {
    pub fn new(secret: &Secret, params: TotpParams) -> Result<Self> {
        let params = params.validate()?;
        let totp = Builder::new()
            .with_algorithm(params.algorithm.to_totp_rs())
            .with_digits(params.digits)
            .with_step_duration(u64::from(params.period))
            .with_skew(0)
            .with_secret(totp_rs::Secret::new(secret.as_bytes().into()))
            .build()
            .map_err(|e| Error::InvalidParameters(e.to_string()))?;
        Ok(Self { totp, params })
    }

    pub fn params(&self) -> TotpParams {
        self.params
    }

    /// Whether `code` is this key's code for time step `step`, compared in constant time.
    pub fn matches(&self, code: &Code, step: i64) -> bool {
        let Ok(step) = u64::try_from(step) else {
            return false;
        };
        let Some(time) = step.checked_mul(u64::from(self.params.period)) else {
            return false;
        };
        self.totp.check(code.as_str(), time).is_some()
    }

    /// The first step in `steps` whose code is `code`.
    pub fn find(&self, code: &Code, steps: RangeInclusive<i64>) -> Option<i64> {
        steps.into_iter().find(|&s| self.matches(code, s))
    }

    /// Finds the step `t` in `steps` where `first` is the code of `t` and `second` the code
    /// of `t + 1` (or the other way round): the proof that a person is reading codes off
    /// this device right now.
    pub fn find_consecutive(
        &self,
        first: &Code,
        second: &Code,
        steps: RangeInclusive<i64>,
    ) -> std::result::Result<i64, PairError> {
        find_consecutive(|code, t| self.matches(code, t), first, second, steps)
    }
}

/// The search behind two-code confirmation, for time steps and HOTP counters alike: the
/// first `t` in `range` where `first` is the code of `t` and `second` that of `t + 1`, or
/// failing that `second` the code of `t` and `first` that of `t + 1`. Two codes in a row
/// prove the person holds the device in either order, so a pair typed the other way
/// round is taken as it is meant rather than refused as "not consecutive"; `t` is
/// always the step of the earlier code, so the caller's "used up to `t + 1`" holds. When
/// neither order fits, it says which of the two codes gave the person away, so the
/// message can say so.
pub(crate) fn find_consecutive(
    matches: impl Fn(&Code, i64) -> bool,
    first: &Code,
    second: &Code,
    range: RangeInclusive<i64>,
) -> std::result::Result<i64, PairError> {
    let (lo, hi) = (*range.start(), *range.end());
    let in_a_row = |earlier: &Code, later: &Code| {
        (lo..=hi).find(|&t| matches(earlier, t) && matches(later, t.saturating_add(1)))
    };
    if let Some(t) = in_a_row(first, second).or_else(|| in_a_row(second, first)) {
        return Ok(t);
    }
    if !(lo..=hi).any(|t| matches(first, t)) {
        return Err(PairError::FirstWrong);
    }
    if (lo..=hi.saturating_add(1)).any(|t| matches(second, t)) {
        Err(PairError::NotConsecutive)
    } else {
        Err(PairError::SecondWrong)
    }
}

/// Why two codes did not prove a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairError {
    FirstWrong,
    SecondWrong,
    NotConsecutive,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code;

    /// RFC 6238 Appendix B: the seeds are the ASCII digits repeated to the hash size.
    fn rfc_key(alg: Algorithm) -> TotpKey {
        let seed: &[u8] = match alg {
            Algorithm::Sha1 => b"12345678901234567890",
            Algorithm::Sha256 => b"12345678901234567890123456789012",
            Algorithm::Sha512 => {
                b"1234567890123456789012345678901234567890123456789012345678901234"
            }
        };
        let params = TotpParams {
            algorithm: alg,
            digits: 8,
            period: 30,
        };
        TotpKey::new(&Secret::from_bytes(seed.to_vec()), params).unwrap()
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let vectors: &[(i64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for &(time, sha1, sha256, sha512) in vectors {
            for (alg, expected) in [
                (Algorithm::Sha1, sha1),
                (Algorithm::Sha256, sha256),
                (Algorithm::Sha512, sha512),
            ] {
                let key = rfc_key(alg);
                let step = key.params().step_at(time);
                let code = code::parse(expected.as_bytes()).unwrap();
                assert!(key.matches(&code, step), "{alg} at {time}");
                assert!(!key.matches(&code, step + 1), "{alg} at {time} + 1 step");
            }
        }
    }

    #[test]
    fn six_digit_codes_are_the_low_digits() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        let key = TotpKey::new(&secret, TotpParams::DEFAULT).unwrap();
        // 94287082 truncated to 6 digits.
        let code = code::parse(b"287082").unwrap();
        assert!(key.matches(&code, 1));
        let eight = code::parse(b"94287082").unwrap();
        assert!(
            !key.matches(&eight, 1),
            "an 8-digit answer to a 6-digit device"
        );
    }

    #[test]
    fn consecutive_pairs() {
        let key = rfc_key(Algorithm::Sha1);
        // Steps 37037036 and 37037037 hold 1111111109 and 1111111111.
        let c1 = code::parse(b"07081804").unwrap();
        let c2 = code::parse(b"14050471").unwrap();
        let now = key.params().step_at(1111111111);
        assert_eq!(
            key.find_consecutive(&c1, &c2, now - 10..=now + 1),
            Ok(now - 1)
        );
        // Both valid, typed the other way round: the same proof, the same step.
        assert_eq!(
            key.find_consecutive(&c2, &c1, now - 10..=now + 1),
            Ok(now - 1)
        );
        let wrong = code::parse(b"00000000").unwrap();
        assert_eq!(
            key.find_consecutive(&wrong, &c2, now - 10..=now + 1),
            Err(PairError::FirstWrong)
        );
        assert_eq!(
            key.find_consecutive(&c1, &wrong, now - 10..=now + 1),
            Err(PairError::SecondWrong)
        );
        // The same code twice: the person did not wait for the next one.
        assert_eq!(
            key.find_consecutive(&c1, &c1, now - 10..=now + 1),
            Err(PairError::NotConsecutive)
        );
    }

    #[test]
    fn negative_and_huge_steps_never_match() {
        let key = rfc_key(Algorithm::Sha1);
        let c = code::parse(b"94287082").unwrap();
        assert!(!key.matches(&c, -1));
        assert!(!key.matches(&c, i64::MAX));
    }

    #[test]
    fn parameters_are_validated() {
        let s = Secret::from_bytes(vec![7; 20]);
        for (digits, period) in [(5, 30), (9, 30), (6, 0), (6, 301)] {
            let p = TotpParams {
                algorithm: Algorithm::Sha1,
                digits,
                period,
            };
            assert!(TotpKey::new(&s, p).is_err(), "{digits} {period}");
        }
        assert_eq!("sha256".parse::<Algorithm>().unwrap(), Algorithm::Sha256);
        assert!("md5".parse::<Algorithm>().is_err());
    }
}
