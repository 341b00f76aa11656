//! The answer typed at the prompt: digits, spaces and tabs ignored, 6 to 8 digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa::code::{self, MAX_ANSWER_BYTES, MAX_DIGITS, MIN_DIGITS};

fuzz_target!(|data: &[u8]| {
    match code::parse(data) {
        Ok(c) => {
            assert!(data.len() <= MAX_ANSWER_BYTES);
            assert!((MIN_DIGITS..=MAX_DIGITS).contains(&c.len()));
            // Exactly the digits of the answer, in order; everything else was blank.
            let digits: Vec<u8> = data.iter().copied().filter(u8::is_ascii_digit).collect();
            assert_eq!(c.as_str().as_bytes(), digits.as_slice());
            assert!(
                data.iter()
                    .all(|b| b.is_ascii_digit() || *b == b' ' || *b == b'\t')
            );
        }
        Err(_) => {
            // Nothing with a non-blank, non-digit byte, and nothing too long, is accepted;
            // a well-formed answer of the right length never fails.
            let well_formed = data.len() <= MAX_ANSWER_BYTES
                && data
                    .iter()
                    .all(|b| b.is_ascii_digit() || *b == b' ' || *b == b'\t')
                && (MIN_DIGITS..=MAX_DIGITS)
                    .contains(&data.iter().filter(|b| b.is_ascii_digit()).count());
            assert!(!well_formed, "refused a well-formed answer {data:?}");
        }
    }
});
