//! What a person types at a code prompt, checked before it goes near a secret.
//!
//! Every answer is bounded and normalised here so that the rest of the code only ever sees
//! a short string of ASCII digits. A 10 MB answer is refused by its length without being
//! scanned, and nothing about its content is ever logged.

use std::fmt;

use zeroize::Zeroizing;

/// Longest answer considered at all; anything longer is refused unread. Generous enough
/// for an 8-digit code typed with spaces between every digit.
pub const MAX_ANSWER_BYTES: usize = 64;

/// Fewest and most digits an OTP code can have (RFC 4226 allows 6 to 8; we store 6 or 8,
/// and hardware tokens may use 7).
pub const MIN_DIGITS: usize = 6;
pub const MAX_DIGITS: usize = 8;

/// A one-time code: 6 to 8 ASCII digits, wiped from memory when dropped.
pub struct Code(Zeroizing<String>);

impl Code {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code([redacted])")
    }
}

/// Why an answer is not a code. The variants name the problem, never the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("no code was entered")]
    Empty,
    #[error("the code is far too long")]
    TooLong,
    #[error("a code contains only digits")]
    NotDigits,
    #[error("a code has {MIN_DIGITS} to {MAX_DIGITS} digits")]
    WrongLength,
}

/// Parses an answer: ASCII digits, with spaces and tabs anywhere ignored (people copy
/// "123 456" from apps that group digits).
pub fn parse(answer: &[u8]) -> Result<Code, CodeError> {
    if answer.len() > MAX_ANSWER_BYTES {
        return Err(CodeError::TooLong);
    }
    let mut digits = Zeroizing::new(String::with_capacity(MAX_DIGITS));
    for &b in answer {
        match b {
            b' ' | b'\t' => {}
            b'0'..=b'9' => digits.push(char::from(b)),
            _ => return Err(CodeError::NotDigits),
        }
    }
    if digits.is_empty() {
        return Err(CodeError::Empty);
    }
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
        return Err(CodeError::WrongLength);
    }
    Ok(Code(digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_digits_and_ignores_spaces() {
        assert_eq!(parse(b"123456").unwrap().as_str(), "123456");
        assert_eq!(parse(b" 123 456 ").unwrap().as_str(), "123456");
        assert_eq!(parse(b"1234\t5678").unwrap().as_str(), "12345678");
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(parse(b"").unwrap_err(), CodeError::Empty);
        assert_eq!(parse(b"   ").unwrap_err(), CodeError::Empty);
        assert_eq!(parse(b"12345a").unwrap_err(), CodeError::NotDigits);
        assert_eq!(
            parse("12345٣".as_bytes()).unwrap_err(),
            CodeError::NotDigits
        );
        assert_eq!(parse(b"123456\n").unwrap_err(), CodeError::NotDigits);
        assert_eq!(parse(b"-12345").unwrap_err(), CodeError::NotDigits);
        assert_eq!(parse(b"12345").unwrap_err(), CodeError::WrongLength);
        assert_eq!(parse(b"123456789").unwrap_err(), CodeError::WrongLength);
        assert_eq!(
            parse(&vec![b'1'; 10 << 20]).unwrap_err(),
            CodeError::TooLong
        );
    }

    #[test]
    fn debug_never_shows_the_code() {
        let c = parse(b"987654").unwrap();
        assert!(!format!("{c:?}").contains("987654"));
    }
}
