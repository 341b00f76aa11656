//! CSV seed files (`serial,secret[,type,digits,period]`). Whatever is accepted must obey
//! the inventory's rules and, written back as CSV in a canonical form, parse to the same
//! tokens; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa::tokens::{self, Format, Mode, TokenSeed};

/// The seeds as CSV, after a header line: a token may be named `serial` on any line but
/// the first, which the parser takes for a header when its serial is `serial`.
fn canonical(seeds: &[TokenSeed]) -> String {
    let mut out = String::from("serial,secret,type,digits,period\n");
    for s in seeds {
        let hex: String = s
            .secret
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let hash = s.algorithm.as_str().to_ascii_lowercase();
        match s.mode {
            Mode::Totp { period } => out.push_str(&format!(
                "{},hex:{hex},totp-{hash},{},{period}\n",
                s.serial, s.digits
            )),
            Mode::Hotp { .. } => out.push_str(&format!(
                "{},hex:{hex},hotp-{hash},{}\n",
                s.serial, s.digits
            )),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(seeds) = tokens::parse(data, Some(Format::Csv), None) else {
        return;
    };
    assert!(!seeds.is_empty());
    for s in &seeds {
        assert!(tokens::check_serial(&s.serial).is_ok(), "{:?}", s.serial);
        assert!((6..=8).contains(&s.digits));
        // CSV never sets an HOTP counter.
        assert!(!matches!(s.mode, Mode::Hotp { counter } if counter != 0));
    }
    let text = canonical(&seeds);
    let back = match tokens::parse(text.as_bytes(), Some(Format::Csv), None) {
        Ok(b) => b,
        Err(e) => panic!("canonical CSV does not parse: {e}\n{text}"),
    };
    assert_eq!(canonical(&back), text);
});
