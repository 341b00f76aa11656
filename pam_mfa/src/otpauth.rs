//! `otpauth://` URIs, the format authenticator apps import from a QR code.
//!
//! Follows the Key URI Format that Google Authenticator defined and every app reads:
//! `otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=…&digits=…&period=…`.
//! The issuer appears in both the label and the parameter because older apps read only one.
//! The URI holds the secret, so it is returned in a zeroizing string.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use zeroize::Zeroizing;

use crate::otp::{Algorithm, TotpParams};
use crate::secret::Secret;
use crate::{Error, Result};

/// RFC 3986 unreserved characters stay as they are; everything else is escaped, including
/// ':' so that an issuer or account containing one cannot shift the label's separator.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest URI parsed; real ones are under 300 bytes.
const MAX_URI_BYTES: usize = 4096;

pub fn build_totp_uri(
    issuer: &str,
    account: &str,
    secret: &Secret,
    params: TotpParams,
) -> Zeroizing<String> {
    let issuer_enc = utf8_percent_encode(issuer, COMPONENT).to_string();
    let account_enc = utf8_percent_encode(account, COMPONENT).to_string();
    Zeroizing::new(format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm={}&digits={}&period={}",
        secret.to_base32().as_str(),
        params.algorithm.as_str(),
        params.digits,
        params.period,
    ))
}

/// What a TOTP URI says.
#[derive(Debug)]
pub struct TotpUri {
    pub issuer: Option<String>,
    pub account: String,
    pub secret: Secret,
    pub params: TotpParams,
}

/// Parses a TOTP URI, applying the defaults the format defines for absent parameters.
pub fn parse_totp_uri(uri: &str) -> Result<TotpUri> {
    let bad = |why: &str| Error::InvalidUri(why.to_owned());
    if uri.len() > MAX_URI_BYTES {
        return Err(bad("too long"));
    }
    let rest = uri
        .strip_prefix("otpauth://totp/")
        .ok_or_else(|| bad("not an otpauth://totp/ URI"))?;
    let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
    let decode = |s: &str| -> Result<String> {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad("not UTF-8"))
    };
    // Split before decoding: an escaped ':' inside the issuer is not the separator.
    let (label_issuer, account) = match label.split_once(':') {
        Some((i, a)) => (Some(decode(i)?), decode(a)?.trim_start().to_owned()),
        None => (None, decode(label)?),
    };
    if account.is_empty() {
        return Err(bad("no account name"));
    }
    let mut secret = None;
    let mut issuer = None;
    let mut params = TotpParams::DEFAULT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v)?;
        match k {
            "secret" => secret = Some(Secret::from_base32(&v)?),
            "issuer" => issuer = Some(v),
            "algorithm" => params.algorithm = v.parse::<Algorithm>()?,
            "digits" => params.digits = v.parse().map_err(|_| bad("bad digits"))?,
            "period" => params.period = v.parse().map_err(|_| bad("bad period"))?,
            _ => {}
        }
    }
    let secret = secret.ok_or_else(|| bad("no secret"))?;
    if secret.as_bytes().is_empty() {
        return Err(bad("empty secret"));
    }
    Ok(TotpUri {
        issuer: issuer.or(label_issuer),
        account,
        secret,
        params: params.validate()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_form() {
        let s = Secret::from_bytes(b"12345678901234567890".to_vec());
        let uri = build_totp_uri("host.example", "alice", &s, TotpParams::DEFAULT);
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/host.example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=host.example&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn escapes_and_round_trips() {
        let s = Secret::from_bytes(vec![0xAB; 20]);
        let uri = build_totp_uri("ACME Corp: prod", "bob&eve", &s, TotpParams::DEFAULT);
        assert!(
            uri.contains("ACME%20Corp%3A%20prod:bob%26eve?"),
            "{}",
            uri.as_str()
        );
        let parsed = parse_totp_uri(&uri).unwrap();
        assert_eq!(parsed.issuer.as_deref(), Some("ACME Corp: prod"));
        assert_eq!(parsed.account, "bob&eve");
        assert_eq!(parsed.secret.as_bytes(), s.as_bytes());
        assert_eq!(parsed.params, TotpParams::DEFAULT);
    }

    #[test]
    fn refuses_malformed_uris() {
        for uri in [
            "http://x",
            "otpauth://hotp/a:b?secret=GEZDGNBV",
            "otpauth://totp/a:b?issuer=a",
            "otpauth://totp/a:b?secret=!!!",
            "otpauth://totp/a:?secret=GEZDGNBV",
            "otpauth://totp/a:b?secret=GEZDGNBV&digits=12",
            "otpauth://totp/a:b?secret=GEZDGNBV&algorithm=MD5",
            "otpauth://totp/a:b?secret=GEZDGNBV&period=0",
            "otpauth://totp/%ff:b?secret=GEZDGNBV",
        ] {
            assert!(parse_totp_uri(uri).is_err(), "{uri}");
        }
        assert!(parse_totp_uri(&"x".repeat(5000)).is_err());
    }
}
