//! The public parameters of a code device as the store holds them: the hash algorithm,
//! the digits, the time step, the counter's bound. Defined with the store because it reads
//! and checks them (a row outside these bounds is corruption) and must need nothing from
//! above it; computing codes from them is `crate::otp` and `crate::hotp`, which re-export
//! these types under their old paths.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The spelling used in `otpauth://` URIs and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err(Error::InvalidParameters(format!("unknown algorithm {s:?}"))),
        }
    }
}

/// The public parameters of a TOTP device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u32,
}

impl TotpParams {
    /// What every authenticator app supports; anything else breaks some of them.
    pub const DEFAULT: Self = Self {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };

    pub fn validate(self) -> Result<Self> {
        if !(6..=8).contains(&self.digits) {
            return Err(Error::InvalidParameters(format!(
                "{} digits (6 to 8 are supported)",
                self.digits
            )));
        }
        if !(1..=300).contains(&self.period) {
            return Err(Error::InvalidParameters(format!(
                "a period of {} s (1 to 300 are supported)",
                self.period
            )));
        }
        Ok(self)
    }
}

/// The largest counter value stored: far beyond what a token's battery lasts (a press a
/// second for 8 million years), and small enough that a look-ahead can never overflow.
pub const MAX_COUNTER: i64 = 1 << 48;

/// The public parameters of an HOTP token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotpParams {
    pub algorithm: Algorithm,
    pub digits: u8,
}

impl HotpParams {
    pub fn validate(self) -> Result<Self> {
        if !(6..=8).contains(&self.digits) {
            return Err(Error::InvalidParameters(format!(
                "{} digits (6 to 8 are supported)",
                self.digits
            )));
        }
        Ok(self)
    }
}
