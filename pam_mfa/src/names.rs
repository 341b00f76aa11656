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
        } else if name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
        {
            Some("it contains control or invisible formatting characters")
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

/// Unicode format characters (general category Cf) and the line and paragraph separators:
/// invisible, yet able to reorder or hide text (U+202E turns "enohp" into "phone" on
/// screen), so a name containing one could impersonate another in `mfa list` or a log.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
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

/// The account a login name belongs to, named the way the store keys it.
///
/// Devices are stored under the account's canonical name: the name of the first password
/// database entry for its uid. A login name that resolves to the same account another way
/// (a case-insensitive directory lookup, a second passwd entry with the same uid like
/// `toor`) then finds the same devices, instead of finding none and slipping through
/// `nullok`. `Ok(None)`: no such account.
pub fn canonical_account(name: &UserName) -> Result<Option<UserName>> {
    use nix::unistd::User;
    let nss = |e: nix::Error| Error::AccountLookup(e.to_string());
    let Some(entry) = User::from_name(name.as_str()).map_err(nss)? else {
        return Ok(None);
    };
    let canonical = User::from_uid(entry.uid)
        .map_err(nss)?
        .map_or(entry.name, |u| u.name);
    UserName::parse(&canonical).map(Some)
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
        for bad in [
            "",
            " lead",
            "trail ",
            "a\nb",
            "a\x1b[31mb",
            &"x".repeat(65),
            "\u{202e}enohp",
            "pho\u{200b}ne",
            "a\u{2028}b",
            "\u{feff}phone",
        ] {
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
    fn canonical_names_follow_the_uid() {
        // uid 0 is always called root first on the machines this runs on.
        assert_eq!(
            canonical_account(&UserName::parse("root").unwrap()).unwrap(),
            Some(UserName::parse("root").unwrap())
        );
        assert_eq!(
            canonical_account(&UserName::parse("no-such-user-pam-mfa").unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn log_escaping() {
        assert_eq!(escape_for_log(b"al\xff\nx\\"), "al\\xff\\x0ax\\x5c");
        assert!(escape_for_log(&[b'a'; 100]).ends_with("..."));
    }
}
