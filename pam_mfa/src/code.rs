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

/// Why an answer is not a code: what was received, in kind, for the log line and the
/// person alike. The variants describe the answer (letters, too long, nothing), never its
/// content, and each says what a code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("nothing was entered")]
    Empty,
    #[error(
        "far too long (over {MAX_ANSWER_BYTES} characters); a code has {MIN_DIGITS} to {MAX_DIGITS} digits"
    )]
    TooLong,
    #[error("it has letters; a code has only digits")]
    Letters,
    #[error("it has characters that are not ASCII; a code has only digits")]
    NotAscii,
    #[error("it has control characters (such as a line break); a code has only digits")]
    ControlCharacters,
    #[error("it has punctuation or symbols; a code has only digits")]
    Symbols,
    #[error("too short: {0} digits; a code has {MIN_DIGITS} to {MAX_DIGITS}")]
    TooFewDigits(usize),
    #[error("too long: {0} digits; a code has {MIN_DIGITS} to {MAX_DIGITS}")]
    TooManyDigits(usize),
}

/// What kind of character an answer has that is not a digit (or a space or tab), the
/// most telling kind first: letters say "typed the wrong thing", the rest are rarer.
fn not_digits(answer: &[u8]) -> Option<CodeError> {
    let has = |f: fn(&u8) -> bool| answer.iter().any(f);
    if has(u8::is_ascii_alphabetic) {
        Some(CodeError::Letters)
    } else if has(|b| !b.is_ascii()) {
        Some(CodeError::NotAscii)
    } else if has(|b| b.is_ascii_control() && !matches!(b, b' ' | b'\t')) {
        Some(CodeError::ControlCharacters)
    } else if has(|b| !matches!(b, b'0'..=b'9' | b' ' | b'\t')) {
        Some(CodeError::Symbols)
    } else {
        None
    }
}

/// Parses an answer: ASCII digits, with spaces and tabs anywhere ignored (people copy
/// "123 456" from apps that group digits).
pub fn parse(answer: &[u8]) -> Result<Code, CodeError> {
    if answer.len() > MAX_ANSWER_BYTES {
        return Err(CodeError::TooLong);
    }
    if let Some(kind) = not_digits(answer) {
        return Err(kind);
    }
    let mut digits = Zeroizing::new(String::with_capacity(MAX_DIGITS));
    digits.extend(
        answer
            .iter()
            .filter(|b| b.is_ascii_digit())
            .map(|&b| char::from(b)),
    );
    match digits.len() {
        0 => Err(CodeError::Empty),
        n if n < MIN_DIGITS => Err(CodeError::TooFewDigits(n)),
        n if n > MAX_DIGITS => Err(CodeError::TooManyDigits(n)),
        _ => Ok(Code(digits)),
    }
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
    fn refuses_everything_else_saying_what_it_got() {
        assert_eq!(parse(b"").unwrap_err(), CodeError::Empty);
        assert_eq!(parse(b"   ").unwrap_err(), CodeError::Empty);
        assert_eq!(parse(b"12345a").unwrap_err(), CodeError::Letters);
        assert_eq!(parse(b"12ab56!").unwrap_err(), CodeError::Letters);
        assert_eq!(parse("12345٣".as_bytes()).unwrap_err(), CodeError::NotAscii);
        assert_eq!(
            parse(b"123456\n").unwrap_err(),
            CodeError::ControlCharacters
        );
        assert_eq!(
            parse(b"12\x0034").unwrap_err(),
            CodeError::ControlCharacters
        );
        assert_eq!(parse(b"-12345").unwrap_err(), CodeError::Symbols);
        assert_eq!(parse(b"12345").unwrap_err(), CodeError::TooFewDigits(5));
        assert_eq!(
            parse(b"123456789").unwrap_err(),
            CodeError::TooManyDigits(9)
        );
        assert_eq!(
            parse(&[b'1'; MAX_ANSWER_BYTES]).unwrap_err(),
            CodeError::TooManyDigits(64)
        );
        assert_eq!(
            parse(&vec![b'1'; 10 << 20]).unwrap_err(),
            CodeError::TooLong
        );
    }

    /// The words a log line or the person gets: what came, in kind, and never the answer.
    #[test]
    fn messages_say_what_was_received_and_never_the_answer() {
        let said = |answer: &str| parse(answer.as_bytes()).unwrap_err().to_string();
        assert_eq!(said("12ab56"), "it has letters; a code has only digits");
        assert_eq!(said(""), "nothing was entered");
        assert_eq!(said("1234"), "too short: 4 digits; a code has 6 to 8");
        assert_eq!(said("123456789"), "too long: 9 digits; a code has 6 to 8");
        assert!(said(&"7".repeat(65)).starts_with("far too long"));
        for answer in ["98x765", "987-654", "98765\n", "9876é5", "9876"] {
            let digits: String = answer.chars().filter(char::is_ascii_digit).collect();
            assert!(
                !said(answer).contains(&digits),
                "{answer:?}: {}",
                said(answer)
            );
        }
    }

    #[test]
    fn debug_never_shows_the_code() {
        let c = parse(b"987654").unwrap();
        assert!(!format!("{c:?}").contains("987654"));
        // It still says what it is, so a log line or a failed assertion is readable.
        assert!(format!("{c:?}").contains("Code"));
    }

    #[test]
    fn a_code_is_never_empty() {
        for answer in [&b"123456"[..], b"1234567", b"1 2 3 4 5 6 7 8"] {
            let c = parse(answer).unwrap();
            assert!(!c.is_empty());
            assert_eq!(c.len(), c.as_str().len());
        }
    }
}
