//! mfad's decoder: whatever a client sends on the socket (a frame: 4-byte length, then
//! CBOR), reading and decoding ends in a request or an error, never a panic, never an
//! allocation beyond the size limit; every decoded request encodes and decodes again to
//! itself, and every error has an answer for the client.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa_protocol::{MAX_MESSAGE, decode_request, encode_request, read_frame};

fuzz_target!(|data: &[u8]| {
    let mut reader = data;
    match read_frame(&mut reader) {
        Ok(body) => {
            assert!(body.len() <= MAX_MESSAGE);
            match decode_request(&body) {
                Ok(request) => {
                    let again = encode_request(&request).expect("a decoded request encodes");
                    assert_eq!(decode_request(&again).expect("and decodes"), request);
                }
                Err(e) => {
                    let _ = e.reply();
                }
            }
        }
        Err(_) => {}
    }
    // The body alone, as if framed correctly.
    if let Err(e) = decode_request(data) {
        let _ = e.reply();
    }
});
