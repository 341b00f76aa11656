//! PSKC (RFC 6030) seed files, plain and pre-shared-key encrypted. The first byte says
//! whether the RFC 6030 example's pre-shared key is given (odd) or not; the rest is the
//! file. Whatever is accepted must obey the inventory's rules; nothing may panic.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use pam_mfa::tokens::pskc::PreSharedKey;
use pam_mfa::tokens::{self, Format, MAX_SECRET_BYTES, MIN_SECRET_BYTES, Mode};

fuzz_target!(|data: &[u8]| {
    let Some((&flag, file)) = data.split_first() else {
        return;
    };
    let psk = (flag & 1 == 1)
        .then(|| PreSharedKey::from_hex("12345678901234567890123456789012"))
        .and_then(Result::ok);
    let Ok(seeds) = tokens::parse(file, Some(Format::Pskc), psk.as_ref()) else {
        return;
    };
    assert!(!seeds.is_empty());
    let mut serials = HashSet::new();
    for s in &seeds {
        assert!(tokens::check_serial(&s.serial).is_ok(), "{:?}", s.serial);
        assert!(serials.insert(s.serial.clone()), "duplicate {:?}", s.serial);
        assert!((MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&s.secret.as_bytes().len()));
        assert!((6..=8).contains(&s.digits));
        match s.mode {
            Mode::Totp { period } => assert!((1..=300).contains(&period)),
            Mode::Hotp { counter } => assert!((0..=pam_mfa::hotp::MAX_COUNTER).contains(&counter)),
        }
    }
});
