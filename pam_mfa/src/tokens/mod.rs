//! Hardware OTP tokens: the seed files vendors ship with a box of tokens, and the
//! inventory of unassigned tokens they are loaded into.
//!
//! Vendors send the seeds keyed by serial number, as RFC 6030 PSKC XML ([`pskc`]) or as a
//! CSV file ([`csv`]). Both parsers produce the same [`TokenSeed`]s, checked here by one
//! set of rules, and a file is taken whole or not at all: the first bad entry rejects it,
//! saying where, so that an administrator never has to work out which half of a box was
//! loaded. [`inventory`] stores them in one transaction.

pub mod csv;
pub mod inventory;
pub mod pskc;

use crate::hotp::MAX_COUNTER;
use crate::otp::Algorithm;
use crate::secret::Secret;

/// The largest seed file read. A PSKC entry is about a kilobyte, so this is some ten
/// thousand tokens, more than any one box; anything bigger is refused unread rather than
/// parsed into memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// RFC 4226 §4 requires at least 128-bit secrets; 128 bytes is twice SHA-512's block.
pub const MIN_SECRET_BYTES: usize = 16;
pub const MAX_SECRET_BYTES: usize = 128;

/// Longest serial number accepted; real ones are 8 to 16 characters.
pub const MAX_SERIAL_CHARS: usize = 64;

/// Which file format a seed file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pskc,
    Csv,
}

impl Format {
    /// A PSKC file is XML and so starts with `<` (after an optional byte-order mark and
    /// blank space); anything else is taken as CSV, whose first field is a serial number.
    pub fn sniff(data: &[u8]) -> Self {
        let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
        match data.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Self::Pskc,
            _ => Self::Csv,
        }
    }
}

/// How a token makes codes (stored as such, so defined with the table).
pub use crate::store::tokens::Mode;

/// One token's entry from a seed file, checked.
#[derive(Debug, Clone)]
pub struct TokenSeed {
    pub serial: String,
    pub secret: Secret,
    pub algorithm: Algorithm,
    pub digits: u8,
    pub mode: Mode,
}

/// Where a seed file is wrong and why: defined with the library's error type, which
/// wraps them, so that the error type needs nothing from the modules that use it.
pub use crate::error::{FileError, Location};

/// Serial numbers are typed by people from the back of a token: letters, digits and
/// `-._:/`, which also keeps them safe in logs, shell commands and CSV.
pub fn check_serial(serial: &str) -> Result<(), String> {
    if serial.is_empty() || serial.chars().count() > MAX_SERIAL_CHARS {
        return Err(format!(
            "a serial number has 1 to {MAX_SERIAL_CHARS} characters"
        ));
    }
    if !serial
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._:/".contains(c))
    {
        return Err(format!(
            "serial number {:?} has characters other than letters, digits and -._:/",
            serial.escape_debug().to_string()
        ));
    }
    Ok(())
}

impl TokenSeed {
    /// The one set of rules for an entry of either format; `Err` is the problem, which
    /// the parser pins to a location.
    pub fn new(
        serial: &str,
        secret: Secret,
        algorithm: Algorithm,
        digits: u8,
        mode: Mode,
    ) -> Result<Self, String> {
        check_serial(serial)?;
        let len = secret.as_bytes().len();
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&len) {
            return Err(format!(
                "the secret is {len} bytes; {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} are \
                 supported"
            ));
        }
        if !(6..=8).contains(&digits) {
            return Err(format!("{digits} digits; 6 to 8 are supported"));
        }
        match mode {
            Mode::Totp { period } if !(1..=300).contains(&period) => {
                return Err(format!("a time step of {period} s; 1 to 300 are supported"));
            }
            Mode::Hotp { counter } if !(0..=MAX_COUNTER).contains(&counter) => {
                return Err(format!("counter {counter} is out of range"));
            }
            _ => {}
        }
        Ok(Self {
            serial: serial.to_owned(),
            secret,
            algorithm,
            digits,
            mode,
        })
    }
}

/// Refuses a file that names the same serial twice: which entry would be meant?
/// `seen` maps serials to where they were first seen.
fn check_unique(
    seen: &mut std::collections::HashMap<String, Location>,
    serial: &str,
    here: &Location,
) -> Result<(), FileError> {
    if let Some(first) = seen.get(serial) {
        return Err(FileError::new(
            here.clone(),
            format!("serial number {serial} appears again (first at {first})"),
        ));
    }
    seen.insert(serial.to_owned(), here.clone());
    Ok(())
}

/// Parses a seed file in `format` (`None`: [`Format::sniff`]). `psk` is the pre-shared
/// key for a PSKC file with encrypted secrets.
pub fn parse(
    data: &[u8],
    format: Option<Format>,
    psk: Option<&pskc::PreSharedKey>,
) -> Result<Vec<TokenSeed>, FileError> {
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::new(
            Location::File,
            format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    let text = std::str::from_utf8(data)
        .map_err(|e| FileError::new(Location::File, format!("not UTF-8 text ({e})")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let seeds = match format.unwrap_or_else(|| Format::sniff(data)) {
        Format::Pskc => pskc::parse(text, psk)?,
        Format::Csv => csv::parse(text)?,
    };
    if seeds.is_empty() {
        return Err(FileError::new(Location::File, "no tokens in it"));
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_and_limits() {
        assert_eq!(Format::sniff(b"  \n<?xml"), Format::Pskc);
        assert_eq!(Format::sniff(b"\xef\xbb\xbf<KeyContainer"), Format::Pskc);
        assert_eq!(Format::sniff(b"serial,secret"), Format::Csv);
        let big = vec![b'#'; MAX_FILE_BYTES as usize + 1];
        let e = parse(&big, None, None).unwrap_err();
        assert_eq!(e.location, Location::File);
        assert!(e.to_string().contains("larger than 16 MiB"), "{e}");
        let e = parse(b"\xff\xfe", None, None).unwrap_err();
        assert!(e.problem.contains("UTF-8"), "{e}");
        let e = parse(b"# nothing\n", None, None).unwrap_err();
        assert!(e.problem.contains("no tokens"), "{e}");
    }

    #[test]
    fn serials() {
        for good in ["987654321", "FT-0001", "a.b_c:d/e", &"9".repeat(64)] {
            assert!(check_serial(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "semi;colon", "é", &"9".repeat(65), "a\nb"] {
            assert!(check_serial(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seed_rules() {
        let s = || Secret::from_bytes(vec![7; 20]);
        let totp = Mode::Totp { period: 30 };
        assert!(TokenSeed::new("1", s(), Algorithm::Sha1, 6, totp).is_ok());
        assert!(
            TokenSeed::new(
                "1",
                Secret::from_bytes(vec![7; 15]),
                Algorithm::Sha1,
                6,
                totp
            )
            .is_err()
        );
        assert!(
            TokenSeed::new(
                "1",
                Secret::from_bytes(vec![7; 129]),
                Algorithm::Sha1,
                6,
                totp
            )
            .is_err()
        );
        assert!(TokenSeed::new("1", s(), Algorithm::Sha1, 5, totp).is_err());
        assert!(TokenSeed::new("1", s(), Algorithm::Sha1, 9, totp).is_err());
        assert!(TokenSeed::new("1", s(), Algorithm::Sha1, 6, Mode::Totp { period: 0 }).is_err());
        assert!(TokenSeed::new("1", s(), Algorithm::Sha1, 6, Mode::Hotp { counter: -1 }).is_err());
        assert!(
            TokenSeed::new(
                "1",
                s(),
                Algorithm::Sha1,
                6,
                Mode::Hotp {
                    counter: MAX_COUNTER + 1
                }
            )
            .is_err()
        );
        // The secret never appears in a debug rendering.
        let seed = TokenSeed::new(
            "1",
            Secret::from_bytes(b"12345678901234567890".to_vec()),
            Algorithm::Sha1,
            6,
            totp,
        )
        .unwrap();
        assert!(!format!("{seed:?}").contains("1234567890"));
    }
}
