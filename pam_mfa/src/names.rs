//! Device and user names: what is allowed, checked once at the boundary.
//!
//! Both end up in terminal output, JSON and syslog, so control characters (which could
//! forge log lines or rewrite a terminal) are refused outright rather than escaped later;
//! device names must moreover be made of characters that render visibly.

use std::fmt;

use crate::{Error, Result};

pub const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Longer than any local or directory account name in practice, short enough to bound
/// what a hostile PAM application can make us store or log.
pub const MAX_USER_NAME_BYTES: usize = 256;

/// A device's friendly name: 1 to 64 characters that all render visibly, unique per user.
///
/// A person tells their devices apart by how the names look in `mfa list`, a prompt or a
/// log line, so two names that look the same should not both be possible: characters that
/// render as nothing (`pho\u{34F}ne` looks like `phone`) or as blank space are refused,
/// with a message naming the code point rather than echoing it, and names are kept in
/// Unicode normal form C, so `café` typed with a precomposed é or with a combining accent
/// is one name. (Letters of different scripts that look alike, a Cyrillic о for a Latin
/// o, are not caught: telling them apart is a matter of fonts, not of rules.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName(String);

impl DeviceName {
    /// A name for a new device (or a device's new name): every rule applies, to the name
    /// in normal form C.
    pub fn parse(name: &str) -> Result<Self> {
        let name = nfc(name);
        match problem_with(&name) {
            Some(why) => Err(Error::InvalidDeviceName(why)),
            None => Ok(Self(name)),
        }
    }

    /// The name of a device that already exists, to find it: only the rules every earlier
    /// version enforced too (length, no control characters), so that a device named before
    /// invisible characters were refused can still be renamed or removed. Taken exactly as
    /// given, the form `mfa list` shows (new names are stored in normal form C, which is
    /// also what keyboards type).
    pub fn existing(name: &str) -> Result<Self> {
        match length_problem(name) {
            Some(why) => Err(Error::InvalidDeviceName(why)),
            None if name.chars().any(char::is_control) => Err(Error::InvalidDeviceName(
                "it contains a control character".to_owned(),
            )),
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

/// `name` in Unicode normal form C.
fn nfc(name: &str) -> String {
    icu_normalizer::ComposingNormalizerBorrowed::new_nfc()
        .normalize(name)
        .into_owned()
}

fn length_problem(name: &str) -> Option<String> {
    match name.chars().count() {
        0 => Some("it is empty".to_owned()),
        n if n > MAX_DEVICE_NAME_CHARS => Some(format!(
            "it is longer than {MAX_DEVICE_NAME_CHARS} characters"
        )),
        _ => None,
    }
}

/// Why `name` cannot name a new device, in words for the person who typed it.
fn problem_with(name: &str) -> Option<String> {
    if let Some(why) = length_problem(name) {
        return Some(why);
    }
    if let Some((c, what)) = name.chars().find_map(|c| unseen(c).map(|what| (c, what))) {
        return Some(format!("it contains {what} U+{:04X}", u32::from(c)));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Some("it starts or ends with a space".to_owned());
    }
    if name.contains("  ") {
        return Some("it has two spaces in a row".to_owned());
    }
    if let Some(c) = name.chars().next()
        && is_mark(c)
    {
        return Some(format!(
            "it starts with the combining mark U+{:04X}, which has no letter to go on",
            u32::from(c)
        ));
    }
    None
}

/// What is wrong with `c` in a device name, if it does not render as a visible character
/// of its own: a control character (it could rewrite a terminal or forge a log line); a
/// default-ignorable code point, which fonts draw as nothing (joiners, variation
/// selectors, Hangul fillers, tags, bidi overrides that reorder "enohp" into "phone");
/// another format character; white space other than the plain space (a no-break or
/// ideographic space looks like it, a line separator breaks the line); a character with
/// no agreed glyph (unassigned, private use). U+2800 BRAILLE PATTERN BLANK is a symbol
/// by its properties but a blank cell by design, the one such character; it is named
/// here because no Unicode property says "draws nothing".
fn unseen(c: char) -> Option<&'static str> {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory as Gc, WhiteSpace};
    use icu_properties::{CodePointMapData, CodePointSetData};
    if c == ' ' {
        return None;
    }
    let category = CodePointMapData::<Gc>::new().get(c);
    if category == Gc::Control {
        Some("a control character")
    } else if CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || category == Gc::Format
    {
        Some("an invisible character")
    } else if CodePointSetData::new::<WhiteSpace>().contains(c)
        || matches!(category, Gc::LineSeparator | Gc::ParagraphSeparator)
        || c == '\u{2800}'
    {
        Some("a blank character")
    } else if matches!(category, Gc::Unassigned | Gc::PrivateUse | Gc::Surrogate) {
        Some("a character with no standard glyph")
    } else {
        None
    }
}

/// Combining marks draw on the character before them; first in a name, on nothing.
fn is_mark(c: char) -> bool {
    use icu_properties::CodePointMapData;
    use icu_properties::props::GeneralCategory as Gc;
    matches!(
        CodePointMapData::<Gc>::new().get(c),
        Gc::NonspacingMark | Gc::SpacingMark | Gc::EnclosingMark
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
    Ok(canonical_account_and_uid(name)?.map(|(account, _)| account))
}

/// [`canonical_account`] and the account's uid, for a caller that must compare the
/// account with a peer's credentials (`mfad`: a non-root caller may only name its own).
pub fn canonical_account_and_uid(name: &UserName) -> Result<Option<(UserName, u32)>> {
    use nix::unistd::User;
    let nss = |e: nix::Error| Error::AccountLookup(e.to_string());
    let Some(entry) = User::from_name(name.as_str()).map_err(nss)? else {
        return Ok(None);
    };
    let uid = entry.uid.as_raw();
    let canonical = User::from_uid(entry.uid)
        .map_err(nss)?
        .map_or(entry.name, |u| u.name);
    Ok(Some((UserName::parse(&canonical)?, uid)))
}

/// Renders arbitrary bytes for a log line about a rejected name (one implementation, in
/// the protocol crate, which the PAM module links instead of this library).
pub use pam_mfa_protocol::escape_for_log;

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

    fn refusal(name: &str) -> String {
        match DeviceName::parse(name) {
            Err(Error::InvalidDeviceName(why)) => why,
            other => panic!("{name:?} gave {other:?}"),
        }
    }

    // These six rendered as nothing (or blank) and were accepted, so
    // "pho\u{34F}ne" looked like "phone". Each is refused alone, inside a name and at
    // either end, and the message names the code point instead of printing it.
    #[test]
    fn the_reviewed_invisible_characters_are_refused_wherever_they_are() {
        for (c, what) in [
            ('\u{3164}', "an invisible character U+3164"), // HANGUL FILLER
            ('\u{115F}', "an invisible character U+115F"), // HANGUL CHOSEONG FILLER
            ('\u{2800}', "a blank character U+2800"),      // BRAILLE PATTERN BLANK
            ('\u{034F}', "an invisible character U+034F"), // COMBINING GRAPHEME JOINER
            ('\u{180B}', "an invisible character U+180B"), // MONGOLIAN FVS ONE
            ('\u{E0100}', "an invisible character U+E0100"), // VARIATION SELECTOR-17
        ] {
            for name in [
                c.to_string(),
                format!("pho{c}ne"),
                format!("{c}phone"),
                format!("phone{c}"),
                format!("{c}{c}"),
            ] {
                let why = refusal(&name);
                assert_eq!(why, format!("it contains {what}"), "{name:?}");
                assert!(!why.contains(c), "{why:?} echoes the character");
            }
        }
    }

    // Other characters that draw nothing or look like a space.
    #[test]
    fn other_invisible_and_blank_characters_are_refused() {
        for c in [
            '\u{FFA0}',   // HALFWIDTH HANGUL FILLER
            '\u{1160}',   // HANGUL JUNGSEONG FILLER
            '\u{17B4}',   // KHMER VOWEL INHERENT AQ
            '\u{00AD}',   // SOFT HYPHEN
            '\u{200D}',   // ZERO WIDTH JOINER
            '\u{2060}',   // WORD JOINER
            '\u{2064}',   // INVISIBLE PLUS
            '\u{FE0F}',   // VARIATION SELECTOR-16
            '\u{E0041}',  // TAG LATIN CAPITAL LETTER A
            '\u{061C}',   // ARABIC LETTER MARK
            '\u{0600}',   // ARABIC NUMBER SIGN (format, not default-ignorable)
            '\u{00A0}',   // NO-BREAK SPACE
            '\u{2007}',   // FIGURE SPACE
            '\u{3000}',   // IDEOGRAPHIC SPACE
            '\u{2028}',   // LINE SEPARATOR
            '\u{2029}',   // PARAGRAPH SEPARATOR
            '\u{0085}',   // NEXT LINE
            '\u{E000}',   // private use
            '\u{10FFFD}', // private use, plane 16
            '\u{0378}',   // unassigned
        ] {
            let name = format!("pho{c}ne");
            let why = refusal(&name);
            assert!(
                why.ends_with(&format!(" U+{:04X}", u32::from(c))),
                "{name:?}: {why}"
            );
            assert!(!why.contains(c), "{why:?}");
        }
        assert_eq!(refusal("a\x1bb"), "it contains a control character U+001B");
        assert_eq!(refusal("   "), "it starts or ends with a space");
        assert_eq!(refusal("yubikey  blue"), "it has two spaces in a row");
        assert_eq!(
            refusal("\u{301}phone"),
            "it starts with the combining mark U+0301, which has no letter to go on"
        );
    }

    #[test]
    fn visible_names_in_any_script_stay_valid() {
        for ok in [
            "phone",
            "Pixel 7 (work)",
            "téléphone",
            "te\u{301}le\u{301}phone", // decomposed accents: marks after their letters
            "電話",
            "휴대폰",
            "телефон",
            "هاتف",
            "फ़ोन",
            "📱 phone",
            "🔑",
            "ℕ-key_2 #1",
        ] {
            assert!(
                DeviceName::parse(ok).is_ok(),
                "{ok:?}: {:?}",
                DeviceName::parse(ok)
            );
        }
    }

    #[test]
    fn names_that_differ_only_in_their_normal_form_are_one_name() {
        // "café" with a precomposed é and with a
        // combining accent looked the same and were two names.
        let composed = DeviceName::parse("caf\u{e9}").unwrap();
        let decomposed = DeviceName::parse("cafe\u{301}").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str(), "caf\u{e9}");
        assert_eq!(
            DeviceName::parse("te\u{301}le\u{301}phone")
                .unwrap()
                .as_str(),
            "t\u{e9}l\u{e9}phone"
        );
    }

    #[test]
    fn an_existing_device_is_found_by_the_name_it_was_given() {
        // Named before finding 6 was fixed: still to be renamed or removed by that name.
        for old in ["pho\u{34F}ne", "\u{3164}", "two  spaces", " lead"] {
            assert!(DeviceName::parse(old).is_err(), "{old:?}");
            assert_eq!(DeviceName::existing(old).unwrap().as_str(), old);
        }
        for bad in ["", "a\x1bb", &"x".repeat(65)] {
            assert!(DeviceName::existing(bad).is_err(), "{bad:?}");
        }
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
