//! otpauth:// URIs. Two halves, chosen by the first byte:
//! - parse arbitrary text; whatever parses is rebuilt and must parse back to the same thing;
//! - build a URI from fuzzed issuer, account, secret and parameters; it must parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa::otp::{Algorithm, TotpParams};
use pam_mfa::otpauth::{TotpUri, build_totp_uri, parse_totp_uri};
use pam_mfa::secret::Secret;

/// Longest URI the parser takes (pam_mfa::otpauth::MAX_URI_BYTES, private).
const MAX_URI_BYTES: usize = 4096;

fn round_trip(issuer: &str, account: &str, secret: &Secret, params: TotpParams) {
    let uri = build_totp_uri(issuer, account, secret, params);
    if uri.len() > MAX_URI_BYTES {
        assert!(parse_totp_uri(&uri).is_err());
        return;
    }
    // The parser trims blanks before the account name (apps write "Issuer: account");
    // a name that is nothing else cannot round-trip, and real ones never start with one.
    if account.trim_start().is_empty() {
        return;
    }
    let back: TotpUri = match parse_totp_uri(&uri) {
        Ok(b) => b,
        Err(e) => panic!("built URI does not parse: {e}: {}", uri.as_str()),
    };
    assert_eq!(back.issuer.as_deref(), Some(issuer));
    assert_eq!(back.account, account.trim_start());
    assert_eq!(back.secret.as_bytes(), secret.as_bytes());
    assert_eq!(back.params, params);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(parsed) = parse_totp_uri(text) {
            assert!(!parsed.secret.as_bytes().is_empty());
            assert!(parsed.params.validate().is_ok());
            round_trip(
                parsed.issuer.as_deref().unwrap_or(""),
                &parsed.account,
                &parsed.secret,
                parsed.params,
            );
        }
    } else {
        // mode: algorithm and digits; then period byte; then issuer \xff account \xff secret.
        let algorithm = match (mode >> 1) % 3 {
            0 => Algorithm::Sha1,
            1 => Algorithm::Sha256,
            _ => Algorithm::Sha512,
        };
        let digits = 6 + (mode >> 3) % 3;
        let Some((&period, rest)) = rest.split_first() else {
            return;
        };
        let params = TotpParams {
            algorithm,
            digits,
            period: u32::from(period).max(1),
        };
        let mut parts = rest.splitn(3, |&b| b == 0xff);
        let issuer = String::from_utf8_lossy(parts.next().unwrap_or_default());
        let account = String::from_utf8_lossy(parts.next().unwrap_or_default());
        let secret = parts.next().unwrap_or_default();
        if secret.is_empty() {
            return;
        }
        round_trip(
            &issuer,
            &account,
            &Secret::from_bytes(secret.to_vec()),
            params,
        );
    }
});
