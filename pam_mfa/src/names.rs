//! Device and user names: what is allowed, checked once at the boundary.
//!
//! Both end up in terminal output, JSON and syslog, so control characters (which could
//! forge log lines or rewrite a terminal) are refused outright rather than escaped later.

use std::fmt;

use crate::{Error, Result};

pub const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Longer than any local or directory account name in practice, short enough to bound
/// what a hostile PAM application can make us store or log.
pub const MAX_USER_NAME_BYTES: usize = 256;

/// A device's friendly name: 1 to 64 printable characters, unique per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName(String);

impl DeviceName {
    pub fn parse(name: &str) -> Result<Self> {
        let chars = name.chars().count();
        let problem = if chars == 0 {
            Some("it is empty")
        } else if chars > MAX_DEVICE_NAME_CHARS {
            Some("it is longer than 64 characters")
        } else if name.chars().any(char::is_control) {
            Some("it contains control characters")
        } else if name.trim() != name {
            Some("it starts or ends with a space")
        } else {
            None
        };
        match problem {
            Some(why) => Err(Error::InvalidDeviceName(why.to_owned())),
            None => Ok(Self(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The account a device belongs to, as PAM and the password database name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Accepts the bytes PAM hands over; anything odd is refused, never guessed at.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let s = std::str::from_utf8(bytes).map_err(|_| Error::InvalidUserName)?;
        Self::parse(s)
    }

    pub fn parse(name: &str) -> Result<Self> {
        let ok = !name.is_empty()
            && name.len() <= MAX_USER_NAME_BYTES
            && !name.chars().any(|c| c.is_control() || c.is_whitespace())
            && !name.contains(':')
            && !name.contains('/');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::InvalidUserName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Renders arbitrary bytes for a log line about a rejected name: printable ASCII kept,
/// everything else as `\xNN`, at most 64 bytes shown.
pub fn escape_for_log(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(64) {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > 64 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        for ok in ["pixel-7", "yubikey blue", "Téléphone 📱", &"x".repeat(64)] {
            assert!(DeviceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", " lead", "trail ", "a\nb", "a\x1b[31mb", &"x".repeat(65)] {
            assert!(DeviceName::parse(bad).is_err(), "{bad:?}");
        }
        // 64 characters, many more bytes.
        assert!(DeviceName::parse(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn user_names() {
        for ok in ["alice", "bob.smith", "carol@example.com", "d_e-f$"] {
            assert!(UserName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a\nb", "a:b", "../x", &"u".repeat(257)] {
            assert!(UserName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(UserName::from_bytes(b"al\xffice").is_err());
    }

    #[test]
    fn log_escaping() {
        assert_eq!(escape_for_log(b"al\xff\nx\\"), "al\\xff\\x0ax\\x5c");
        assert!(escape_for_log(&[b'a'; 100]).ends_with("..."));
    }
}
