//! Seed files as CSV: `serial,secret[,type,digits,period]`, one token a line.
//!
//! - `secret` is base32 (any case, `=` padding allowed) or hex. A value made only of hex
//!   digits, of even length, is read as hex; `hex:` or `base32:` in front of it says which
//!   explicitly (a base32 secret that happens to use only the letters A–F and digits
//!   would otherwise be misread, and then its codes would never match at registration).
//! - `type` is `totp` (the default) or `hotp`, optionally with the hash: `totp-sha256`,
//!   `hotp-sha512` (the default hash is SHA-1).
//! - `digits`: 6 (the default) to 8.
//! - `period`: a TOTP token's time step in seconds (default 30). An HOTP token has no
//!   period: the field must be empty, and its counter starts at 0.
//!
//! Fields may be wrapped in double quotes and have blanks around them; blank lines and
//! lines starting with `#` are skipped, and so is a first line starting with `serial`
//! (a header). Anything else that does not fit rejects the file, naming the line.

use std::collections::HashMap;

use data_encoding::HEXLOWER_PERMISSIVE;
use zeroize::Zeroizing;

use super::{FileError, Location, Mode, TokenSeed, check_unique};
use crate::otp::Algorithm;
use crate::secret::Secret;

pub fn parse(text: &str) -> Result<Vec<TokenSeed>, FileError> {
    let mut seeds = Vec::new();
    let mut seen = HashMap::new();
    let mut first_data_line = true;
    for (index, raw) in text.split('\n').enumerate() {
        let here = Location::Line(index + 1);
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(unquote).collect();
        if first_data_line && fields[0].eq_ignore_ascii_case("serial") {
            first_data_line = false;
            continue;
        }
        first_data_line = false;
        let seed = parse_line(&fields).map_err(|problem| FileError::new(here.clone(), problem))?;
        check_unique(&mut seen, &seed.serial, &here)?;
        seeds.push(seed);
    }
    Ok(seeds)
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .map_or(f, str::trim)
}

fn parse_line(fields: &[&str]) -> Result<TokenSeed, String> {
    if !(2..=5).contains(&fields.len()) {
        return Err(format!(
            "{} fields; expected serial,secret[,type,digits,period]",
            fields.len()
        ));
    }
    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
    let serial = field(0).ok_or("the serial number is missing")?;
    let secret = decode_secret(field(1).ok_or("the secret is missing")?)?;
    let (hotp, algorithm) = match field(2) {
        None => (false, Algorithm::Sha1),
        Some(t) => {
            let t = t.to_ascii_lowercase();
            let (kind, hash) = t.split_once('-').unwrap_or((&t, "sha1"));
            let hotp = match kind {
                "totp" => false,
                "hotp" => true,
                _ => return Err(format!("type {}: expected totp or hotp", shown(&t))),
            };
            let algorithm = hash
                .parse()
                .map_err(|_| format!("type {}: the hash is sha1, sha256 or sha512", shown(&t)))?;
            (hotp, algorithm)
        }
    };
    let digits = match field(3) {
        None => 6,
        Some(d) => number(d, "digits")?,
    };
    let mode = match (hotp, field(4)) {
        (false, None) => Mode::Totp { period: 30 },
        (false, Some(p)) => Mode::Totp {
            period: number(p, "period")?,
        },
        (true, None) => Mode::Hotp { counter: 0 },
        (true, Some(_)) => return Err("an HOTP token has no period; leave it empty".to_owned()),
    };
    TokenSeed::new(serial, secret, algorithm, digits, mode)
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {} is not a number", shown(text)));
    }
    text.parse()
        .map_err(|_| format!("{what} {} is out of range", shown(text)))
}

/// A field's text for an error message, unless it is long enough to be a secret that
/// landed in the wrong column (the shortest secret accepted, 16 bytes, is 26 characters
/// of base32): the message must never show one.
fn shown(text: &str) -> String {
    if text.chars().count() <= 16 {
        format!("{text:?}")
    } else {
        format!("(a {}-character value, not shown)", text.chars().count())
    }
}

/// Base32 or hex, as the module documentation describes. Errors never quote the value.
fn decode_secret(text: &str) -> Result<Secret, String> {
    let bad_hex = || "the secret is not valid hex".to_owned();
    if let Some(hex) = text.strip_prefix("hex:") {
        return decode_hex(hex).ok_or_else(bad_hex);
    }
    let bad_base32 = || "the secret is not valid base32 (nor hex)".to_owned();
    if let Some(b32) = text.strip_prefix("base32:") {
        return Secret::from_base32(b32).map_err(|_| bad_base32());
    }
    if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return decode_hex(text).ok_or_else(bad_hex);
    }
    Secret::from_base32(text).map_err(|_| bad_base32())
}

fn decode_hex(text: &str) -> Option<Secret> {
    let bytes = Zeroizing::new(HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()?);
    Some(Secret::from_bytes(bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET_HEX: &str = "3132333435363738393031323334353637383930";
    const RFC_SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn every_field_and_its_defaults() {
        let text = format!(
            "serial,secret,type,digits,period\r\n\
             # a comment\n\
             \n\
             A-1,{RFC_SECRET_B32}\n\
             A-2 , {RFC_SECRET_HEX} ,hotp,8,\n\
             \"A-3\",\"{}\",TOTP-SHA256,8,60\n\
             A-4,hex:{RFC_SECRET_HEX},hotp-sha512\n\
             A-5,base32:{},totp,7\n",
            RFC_SECRET_B32.to_lowercase(),
            RFC_SECRET_B32
        );
        let seeds = parse(&text).unwrap();
        assert_eq!(seeds.len(), 5);
        for s in &seeds {
            assert_eq!(s.secret.as_bytes(), b"12345678901234567890", "{}", s.serial);
        }
        assert_eq!(seeds[0].serial, "A-1");
        assert_eq!(seeds[0].mode, Mode::Totp { period: 30 });
        assert_eq!((seeds[0].algorithm, seeds[0].digits), (Algorithm::Sha1, 6));
        assert_eq!(seeds[1].serial, "A-2");
        assert_eq!(seeds[1].mode, Mode::Hotp { counter: 0 });
        assert_eq!(seeds[1].digits, 8);
        assert_eq!(seeds[2].mode, Mode::Totp { period: 60 });
        assert_eq!(seeds[2].algorithm, Algorithm::Sha256);
        assert_eq!(seeds[3].algorithm, Algorithm::Sha512);
        assert_eq!(seeds[4].digits, 7);
    }

    #[test]
    fn bad_lines_are_named() {
        let good = format!("T1,{RFC_SECRET_B32}\n");
        let cases: &[(&str, &str)] = &[
            ("T2", "1 fields"),
            ("T2,", "secret is missing"),
            (",ABC", "serial number is missing"),
            ("T2,not base32!", "not valid base32"),
            ("T2,GEZDGNBV1", "not valid base32"),
            ("T2,hex:31323", "not valid hex"),
            ("T2,GEZDGNBV", "bytes"),
            ("T 2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "characters other"),
            ("T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,motp", "totp or hotp"),
            ("T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp-md5", "hash"),
            ("T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp,9", "digits"),
            (
                "T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp,six",
                "not a number",
            ),
            ("T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp,6,0", "time step"),
            (
                "T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp,6,-30",
                "not a number",
            ),
            ("T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,hotp,6,30", "no period"),
            (
                "T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp,6,30,x",
                "6 fields",
            ),
            (
                "T1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                "appears again (first at line 1)",
            ),
            // A secret that landed in the type or digits column is not quoted back.
            (
                "T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                "not shown",
            ),
            (
                "T2,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                "not shown",
            ),
        ];
        for (line, problem) in cases {
            let text = format!("{good}{line}\n");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.location, Location::Line(2), "{line}: {e}");
            assert!(e.problem.contains(problem), "{line}: {e}");
            // Never a secret in the message.
            assert!(!e.to_string().contains("GEZDGNBV"), "{e}");
            assert!(!e.to_string().contains("31323"), "{e}");
        }
    }
}
