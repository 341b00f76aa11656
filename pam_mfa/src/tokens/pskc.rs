//! Seed files as RFC 6030 PSKC (Portable Symmetric Key Container) XML.
//!
//! Each `<KeyPackage>` is one token: its serial number from `<DeviceInfo><SerialNo>`, the
//! algorithm (HOTP or TOTP) from `<Key Algorithm>`, the hash from
//! `<AlgorithmParameters><Suite>` (SHA-1 when absent), the number of digits from
//! `<ResponseFormat Length>`, and from `<Data>` the secret, an HOTP token's `<Counter>`
//! and a TOTP token's `<TimeInterval>` (its `<Time>`, T0, must be 0).
//!
//! Secrets are either plain (`<PlainValue>`, base64) or encrypted with a pre-shared key
//! (RFC 6030 §6.1): AES-128-CBC with the IV in front of the ciphertext, and an HMAC
//! (SHA-1 or SHA-256) over that IV and ciphertext in `<ValueMAC>`, keyed with the
//! `<MACMethod><MACKey>` that is itself encrypted with the pre-shared key. The MAC is
//! checked, in constant time, before anything is decrypted, and an encrypted file without
//! one is refused: it is what shows a wrong key or an altered file. Password-based
//! (PBKDF2) and asymmetric encryption are refused with a message saying so.
//!
//! The XML parser (`roxmltree`) refuses DTDs, so no entity can expand or reach outside
//! the file.

use std::collections::HashMap;

use aes::Aes128;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use hmac::{Hmac, KeyInit, Mac};
use roxmltree::{Document, Node, ParsingOptions};
use zeroize::Zeroizing;

use super::{FileError, Location, Mode, TokenSeed, check_unique};
use crate::otp::Algorithm;
use crate::secret::Secret;

const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
const HMAC_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";
const HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";

/// Bounds the tree a file can make (a few dozen nodes per token), on top of the file size
/// limit, so that a file of nothing but tiny elements cannot take all memory.
const MAX_NODES: u32 = 4_000_000;

/// The AES-128 key a PSKC file's secrets are encrypted with, as the vendor sends it
/// separately. Wiped from memory when dropped.
pub struct PreSharedKey(Zeroizing<[u8; 16]>);

impl PreSharedKey {
    /// The key as 32 hex digits (either case); blank space anywhere, such as the newline
    /// at the end of a key file or spaces between groups, is ignored.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let digits: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let bytes = Zeroizing::new(
            HEXLOWER_PERMISSIVE
                .decode(digits.as_bytes())
                .map_err(|_| "the pre-shared key is not hex digits".to_owned())?,
        );
        let key: [u8; 16] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "the pre-shared key is {} bytes; AES-128 needs 16 (32 hex digits)",
                bytes.len()
            )
        })?;
        Ok(Self(Zeroizing::new(key)))
    }
}

impl std::fmt::Debug for PreSharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreSharedKey([redacted])")
    }
}

#[derive(Clone, Copy)]
enum MacAlgorithm {
    Sha1,
    Sha256,
}

/// What decrypting a file's secrets takes: the pre-shared key, and the MAC key and
/// algorithm from `<MACMethod>`.
struct Decryption<'a> {
    psk: &'a PreSharedKey,
    mac: MacAlgorithm,
    mac_key: Zeroizing<Vec<u8>>,
}

impl Decryption<'_> {
    /// Checks `mac` over `cipher` (IV and ciphertext) in constant time.
    fn verify(&self, cipher: &[u8], mac: &[u8]) -> bool {
        fn check<M: Mac + KeyInit>(key: &[u8], data: &[u8], mac: &[u8]) -> bool {
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.verify_slice(mac).is_ok()
                }
                Err(_) => false,
            }
        }
        match self.mac {
            MacAlgorithm::Sha1 => check::<Hmac<sha1::Sha1>>(&self.mac_key, cipher, mac),
            MacAlgorithm::Sha256 => check::<Hmac<sha2::Sha256>>(&self.mac_key, cipher, mac),
        }
    }
}

/// AES-128-CBC with the IV in the first block. XML Encryption pads with arbitrary bytes
/// and a last byte giving the count (PKCS#7 is one case of it), so only that byte is
/// checked.
fn decrypt(psk: &PreSharedKey, cipher: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    if cipher.len() < 32 || !cipher.len().is_multiple_of(16) {
        return Err("an encrypted value is not an IV and whole AES blocks".to_owned());
    }
    let (iv, body) = cipher.split_at(16);
    let mut buf = Zeroizing::new(body.to_vec());
    let decryptor = cbc::Decryptor::<Aes128>::new_from_slices(psk.0.as_slice(), iv)
        .map_err(|_| "bad AES key or IV length".to_owned())?;
    let len = decryptor
        .decrypt_padded::<NoPadding>(&mut buf)
        .map_err(|_| "an encrypted value cannot be decrypted".to_owned())?
        .len();
    let pad = buf.get(len.wrapping_sub(1)).copied().map_or(0, usize::from);
    if !(1..=16).contains(&pad) || pad > len {
        return Err(
            "an encrypted value has bad padding (wrong pre-shared key, or a damaged file)"
                .to_owned(),
        );
    }
    buf.truncate(len - pad);
    Ok(buf)
}

fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, ns, name))
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &'static str, name: &'static str) -> Option<Node<'a, 'i>> {
    children(node, ns, name).next()
}

fn pskc<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    child(node, PSKC_NS, name)
}

fn text<'a>(node: Node<'a, '_>) -> &'a str {
    node.text().unwrap_or("").trim()
}

/// Base64 as XML carries it: line breaks and blanks anywhere.
fn base64(node: Node<'_, '_>, what: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let compact: Zeroizing<String> = Zeroizing::new(
        text(node)
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    BASE64
        .decode(compact.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| format!("{what} is not valid base64"))
}

/// `<xenc:EncryptionMethod>` and `<xenc:CipherData><xenc:CipherValue>` under `node`: the
/// IV and ciphertext.
fn cipher_value(node: Node<'_, '_>, what: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let method = child(node, XENC_NS, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or_else(|| format!("{what} has no <xenc:EncryptionMethod Algorithm>"))?;
    if method != AES128_CBC {
        return Err(format!(
            "{what} is encrypted with {method:?}; only AES-128-CBC ({AES128_CBC}) is supported"
        ));
    }
    let value = child(node, XENC_NS, "CipherData")
        .and_then(|d| child(d, XENC_NS, "CipherValue"))
        .ok_or_else(|| format!("{what} has no <xenc:CipherData><xenc:CipherValue>"))?;
    base64(value, what)
}

/// The key container's `<EncryptionKey>` and `<MACMethod>`: `None` for a file whose
/// secrets are all plain.
fn decryption<'k>(
    root: Node<'_, '_>,
    psk: Option<&'k PreSharedKey>,
) -> Result<Option<Decryption<'k>>, String> {
    let Some(key) = pskc(root, "EncryptionKey") else {
        return Ok(None);
    };
    if key.children().any(|c| c.tag_name().name() == "DerivedKey") {
        return Err(
            "the secrets are encrypted with a key derived from a password (PBKDF2), \
                    which is not supported; ask the vendor for pre-shared-key (AES-128-CBC) \
                    encryption"
                .to_owned(),
        );
    }
    let Some(name) = child(key, DS_NS, "KeyName") else {
        return Err(
            "<EncryptionKey> names no pre-shared key (<ds:KeyName>); certificate \
                    (asymmetric) encryption is not supported"
                .to_owned(),
        );
    };
    let psk = psk.ok_or_else(|| {
        format!(
            "the secrets are encrypted with the pre-shared key {:?}; give it with \
             --password-file",
            text(name)
        )
    })?;
    let method = pskc(root, "MACMethod").ok_or(
        "the secrets are encrypted but there is no <MACMethod>: without a MAC a wrong key or \
         an altered file cannot be told apart, so such files are refused",
    )?;
    let mac = match method.attribute("Algorithm") {
        Some(HMAC_SHA1) => MacAlgorithm::Sha1,
        Some(HMAC_SHA256) => MacAlgorithm::Sha256,
        other => {
            return Err(format!(
                "<MACMethod Algorithm={:?}>: only {HMAC_SHA1} and {HMAC_SHA256} are supported",
                other.unwrap_or("")
            ));
        }
    };
    let mac_key = pskc(method, "MACKey").ok_or("<MACMethod> has no <MACKey>")?;
    let mac_key = decrypt(psk, &cipher_value(mac_key, "<MACKey>")?).map_err(|_| {
        "the MAC key does not decrypt: a wrong pre-shared key, or a damaged file".to_owned()
    })?;
    if mac_key.is_empty() {
        return Err("the MAC key is empty".to_owned());
    }
    Ok(Some(Decryption { psk, mac, mac_key }))
}

/// A `<Data>` child's value as bytes: `<PlainValue>` base64, or `<EncryptedValue>` with
/// its `<ValueMAC>` checked and then decrypted.
///
/// In a file that encrypts its secrets, a plain secret is refused: the MAC exists so that
/// an altered file is caught, and someone who altered it in transit could otherwise swap
/// one token's encrypted secret for a plain one they know.
fn secret_bytes(
    node: Node<'_, '_>,
    decryption: Option<&Decryption<'_>>,
) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Some(plain) = pskc(node, "PlainValue") {
        if decryption.is_some() {
            return Err(
                "a plain <Secret> in a file whose secrets are encrypted: refused, since an \
                 altered file could plant a secret this way"
                    .to_owned(),
            );
        }
        return base64(plain, "<Secret><PlainValue>");
    }
    let encrypted = pskc(node, "EncryptedValue")
        .ok_or("<Secret> has neither <PlainValue> nor <EncryptedValue>")?;
    let decryption = decryption
        .ok_or("the secret is encrypted but the file has no <EncryptionKey> (pre-shared key)")?;
    let cipher = cipher_value(encrypted, "<Secret><EncryptedValue>")?;
    let mac = pskc(node, "ValueMAC").ok_or(
        "the encrypted secret has no <ValueMAC>: without one a wrong key or an altered file \
         cannot be told apart",
    )?;
    let mac = base64(mac, "<ValueMAC>")?;
    if !decryption.verify(&cipher, &mac) {
        return Err(
            "the secret's MAC does not verify: a wrong pre-shared key, or a damaged \
                    or altered file"
                .to_owned(),
        );
    }
    decrypt(decryption.psk, &cipher)
}

/// A number in a `<Data>` child (`<Counter>`, `<TimeInterval>`, `<Time>`).
fn data_number<T: std::str::FromStr>(
    data: Node<'_, '_>,
    name: &'static str,
) -> Result<Option<T>, String> {
    let Some(node) = pskc(data, name) else {
        return Ok(None);
    };
    if pskc(node, "EncryptedValue").is_some() {
        return Err(format!("an encrypted <{name}> is not supported"));
    }
    let value = pskc(node, "PlainValue")
        .map(text)
        .ok_or_else(|| format!("<{name}> has no <PlainValue>"))?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("<{name}> {value:?} is not a number"));
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("<{name}> {value:?} is out of range"))
}

/// `<Suite>` names the hash of an HMAC-based algorithm: `SHA256`, `HMAC-SHA256`…
fn hash_of(suite: Option<&str>) -> Result<Algorithm, String> {
    let Some(suite) = suite else {
        return Ok(Algorithm::Sha1);
    };
    let upper = suite.to_ascii_uppercase();
    let name = upper
        .strip_prefix("HMAC-")
        .unwrap_or(&upper)
        .replace('-', "");
    name.parse()
        .map_err(|_| format!("<Suite> {suite:?}: the hash must be SHA1, SHA256 or SHA512"))
}

fn key_package(kp: Node<'_, '_>, decryption: Option<&Decryption<'_>>) -> Result<TokenSeed, String> {
    let serial = pskc(kp, "DeviceInfo")
        .and_then(|d| pskc(d, "SerialNo"))
        .map(text)
        .filter(|s| !s.is_empty())
        .ok_or("no serial number (<DeviceInfo><SerialNo>)")?;
    let mut keys = children(kp, PSKC_NS, "Key");
    let key = keys.next().ok_or("no <Key>")?;
    if keys.next().is_some() {
        return Err("more than one <Key>".to_owned());
    }
    let algorithm = key.attribute("Algorithm").ok_or("<Key> has no Algorithm")?;
    // RFC 6030 names them urn:ietf:params:xml:ns:keyprov:pskc:hotp (and …:totp); some
    // vendors' files still use the draft's `#hotp`.
    let hotp = match algorithm
        .strip_prefix("urn:ietf:params:xml:ns:keyprov:pskc")
        .map(|s| s.trim_start_matches([':', '#']))
    {
        Some("hotp") => true,
        Some("totp") => false,
        _ => {
            return Err(format!(
                "<Key Algorithm={algorithm:?}> is neither HOTP nor TOTP"
            ));
        }
    };
    let params = pskc(key, "AlgorithmParameters");
    let hash = hash_of(params.and_then(|p| pskc(p, "Suite")).map(text))?;
    let format = params
        .and_then(|p| pskc(p, "ResponseFormat"))
        .ok_or("no <AlgorithmParameters><ResponseFormat> (how many digits?)")?;
    match format.attribute("Encoding") {
        Some("DECIMAL") => {}
        other => {
            return Err(format!(
                "<ResponseFormat Encoding={:?}>: only DECIMAL codes are supported",
                other.unwrap_or("")
            ));
        }
    }
    let digits = format
        .attribute("Length")
        .and_then(|l| l.trim().parse::<u8>().ok())
        .ok_or("<ResponseFormat> has no valid Length")?;
    let data = pskc(key, "Data").ok_or("<Key> has no <Data>")?;
    let secret = pskc(data, "Secret").ok_or("no <Data><Secret>")?;
    let secret = Secret::from_bytes(secret_bytes(secret, decryption)?.to_vec());
    let mode = if hotp {
        Mode::Hotp {
            counter: data_number(data, "Counter")?.unwrap_or(0),
        }
    } else {
        if data_number::<u64>(data, "Time")?.is_some_and(|t0| t0 != 0) {
            return Err("<Time> (T0) other than 0 is not supported".to_owned());
        }
        Mode::Totp {
            period: data_number(data, "TimeInterval")?.unwrap_or(30),
        }
    };
    TokenSeed::new(serial, secret, hash, digits, mode)
}

/// Parses a PSKC document; `psk` decrypts its secrets if they are encrypted.
pub fn parse(text: &str, psk: Option<&PreSharedKey>) -> Result<Vec<TokenSeed>, FileError> {
    let whole = |problem: String| FileError::new(Location::File, problem);
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options)
        .map_err(|e| whole(format!("not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if !is(root, PSKC_NS, "KeyContainer") {
        return Err(whole(format!(
            "not a PSKC file: the document is <{}>, not <KeyContainer xmlns=\"{PSKC_NS}\">",
            root.tag_name().name()
        )));
    }
    if root.attribute("Version") != Some("1.0") {
        return Err(whole(
            "<KeyContainer> is not Version=\"1.0\" (RFC 6030)".to_owned(),
        ));
    }
    let decryption = decryption(root, psk).map_err(whole)?;
    let mut seeds = Vec::new();
    let mut seen = HashMap::new();
    for (i, kp) in children(root, PSKC_NS, "KeyPackage").enumerate() {
        let here = Location::KeyPackage {
            index: i + 1,
            line: doc.text_pos_at(kp.range().start).row,
        };
        let seed = key_package(kp, decryption.as_ref())
            .map_err(|problem| FileError::new(here.clone(), problem))?;
        check_unique(&mut seen, &seed.serial, &here)?;
        seeds.push(seed);
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6030 Figure 2 (an HOTP key, plain), as published.
    pub(crate) const RFC6030_FIGURE2: &str = include_str!("testdata/rfc6030-figure2.pskc");
    /// RFC 6030 Figure 6 (the same key, encrypted with the pre-shared key
    /// 12345678901234567890123456789012 and an HMAC-SHA1 MAC), as published; its MAC
    /// verifies and it decrypts to the RFC 4226 test secret.
    pub(crate) const RFC6030_FIGURE6: &str = include_str!("testdata/rfc6030-figure6.pskc");
    pub(crate) const RFC6030_PSK: &str = "12345678901234567890123456789012";

    fn psk() -> PreSharedKey {
        PreSharedKey::from_hex(RFC6030_PSK).unwrap()
    }

    fn problem(text: &str, psk: Option<&PreSharedKey>) -> FileError {
        parse(text, psk).unwrap_err()
    }

    #[test]
    fn rfc6030_figure2_plain_hotp() {
        let seeds = parse(RFC6030_FIGURE2, None).unwrap();
        assert_eq!(seeds.len(), 1);
        let s = &seeds[0];
        assert_eq!(s.serial, "987654321");
        assert_eq!(s.secret.as_bytes(), b"12345678901234567890");
        assert_eq!(s.mode, Mode::Hotp { counter: 0 });
        assert_eq!((s.algorithm, s.digits), (Algorithm::Sha1, 8));
    }

    #[test]
    fn rfc6030_figure6_pre_shared_key() {
        let seeds = parse(RFC6030_FIGURE6, Some(&psk())).unwrap();
        assert_eq!(seeds.len(), 1);
        assert_eq!(seeds[0].serial, "987654321");
        assert_eq!(seeds[0].secret.as_bytes(), b"12345678901234567890");
        assert_eq!(seeds[0].mode, Mode::Hotp { counter: 0 });
        // Without the key, or with another one, nothing is imported.
        let e = problem(RFC6030_FIGURE6, None);
        assert!(e.problem.contains("--password-file"), "{e}");
        assert!(e.problem.contains("Pre-shared-key"), "{e}");
        let wrong = PreSharedKey::from_hex("12345678901234567890123456789013").unwrap();
        let e = problem(RFC6030_FIGURE6, Some(&wrong));
        assert!(e.problem.contains("wrong pre-shared key"), "{e}");
        // An altered ciphertext fails the MAC before anything is decrypted.
        let altered =
            RFC6030_FIGURE6.replace("AAECAwQFBgcICQoLDA0OD+cI", "AAECAwQFBgcICQoLDA0OD+cJ");
        assert_ne!(altered, RFC6030_FIGURE6);
        let e = problem(&altered, Some(&psk()));
        assert!(e.problem.contains("MAC does not verify"), "{e}");
        assert_eq!(e.location, Location::KeyPackage { index: 1, line: 21 });
        // A wrong MAC value likewise.
        let e = problem(
            &RFC6030_FIGURE6.replace(
                "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
                "Tu+NvtQfmvfJzF6bmQiJqoLRExc=",
            ),
            Some(&psk()),
        );
        assert!(e.problem.contains("MAC does not verify"), "{e}");
        // Without a MAC at all: refused.
        let e = problem(
            &RFC6030_FIGURE6.replace("<ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=</ValueMAC>", ""),
            Some(&psk()),
        );
        assert!(e.problem.contains("no <ValueMAC>"), "{e}");
        // A plain secret swapped in for the encrypted one (the file altered in transit):
        // refused, although it would parse in a file that encrypts nothing.
        let start = RFC6030_FIGURE6.find("<EncryptedValue>").unwrap();
        let end = RFC6030_FIGURE6.find("</ValueMAC>").unwrap() + "</ValueMAC>".len();
        let swapped = format!(
            "{}<PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue>{}",
            &RFC6030_FIGURE6[..start],
            &RFC6030_FIGURE6[end..]
        );
        let e = problem(&swapped, Some(&psk()));
        assert!(e.problem.contains("plain <Secret>"), "{e}");
    }

    #[test]
    fn pre_shared_key_text() {
        assert!(PreSharedKey::from_hex("12345678 90123456\n78901234 56789012\n").is_ok());
        assert!(PreSharedKey::from_hex("ABCDEF0123456789abcdef0123456789").is_ok());
        for bad in [
            "",
            "1234",
            "1234567890123456789012345678901",
            "zz345678901234567890123456789012",
            "1234567890123456789012345678901234",
        ] {
            assert!(PreSharedKey::from_hex(bad).is_err(), "{bad}");
        }
        assert!(!format!("{:?}", psk()).contains("1234"));
    }

    fn totp_document(extra_params: &str, data: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Acme</Manufacturer><SerialNo>T-1</SerialNo></DeviceInfo>
    <Key Id="1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <AlgorithmParameters>{extra_params}<ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=</PlainValue></Secret>
        {data}
      </Data>
    </Key>
  </KeyPackage>
</KeyContainer>"#
        )
    }

    #[test]
    fn totp_parameters_from_the_file() {
        let doc = totp_document(
            "<Suite>HMAC-SHA256</Suite>",
            "<Time><PlainValue>0</PlainValue></Time>\
             <TimeInterval><PlainValue>60</PlainValue></TimeInterval>",
        );
        let s = &parse(&doc, None).unwrap()[0];
        assert_eq!(s.serial, "T-1");
        assert_eq!(s.mode, Mode::Totp { period: 60 });
        assert_eq!((s.algorithm, s.digits), (Algorithm::Sha256, 8));
        assert_eq!(s.secret.as_bytes(), b"12345678901234567890123456789012");
        let s = &parse(&totp_document("", ""), None).unwrap()[0];
        assert_eq!(s.mode, Mode::Totp { period: 30 });
        assert_eq!(s.algorithm, Algorithm::Sha1);
        let e = problem(
            &totp_document("", "<Time><PlainValue>5</PlainValue></Time>"),
            None,
        );
        assert!(e.problem.contains("T0"), "{e}");
        let e = problem(&totp_document("<Suite>MD5</Suite>", ""), None);
        assert!(e.problem.contains("SHA1, SHA256 or SHA512"), "{e}");
    }

    #[test]
    fn malformed_documents_are_refused_with_their_place() {
        let e = problem("<KeyContainer", None);
        assert_eq!(e.location, Location::File);
        assert!(e.problem.contains("not well-formed XML"), "{e}");
        let e = problem("<html/>", None);
        assert!(e.problem.contains("not a PSKC file"), "{e}");
        let e = problem(
            "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><KeyContainer Version=\"1.0\" \
             xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"/>",
            None,
        );
        assert!(e.problem.contains("XML"), "{e}");
        let two = format!(
            "{}{}",
            RFC6030_FIGURE2.split("</KeyContainer>").next().unwrap(),
            "<KeyPackage><DeviceInfo><SerialNo>2</SerialNo></DeviceInfo>\
             <Key Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:hotp\">\
             <AlgorithmParameters><ResponseFormat Length=\"6\" Encoding=\"DECIMAL\"/>\
             </AlgorithmParameters><Data><Secret><PlainValue>@@@</PlainValue></Secret></Data>\
             </Key></KeyPackage></KeyContainer>"
        );
        let e = problem(&two, None);
        assert_eq!(
            e.location,
            Location::KeyPackage { index: 2, line: 32 },
            "{e}"
        );
        assert!(e.problem.contains("not valid base64"), "{e}");
        let cases: &[(&str, &str, &str)] = &[
            ("<SerialNo>987654321</SerialNo>", "", "no serial number"),
            (
                "<ResponseFormat Length=\"8\" Encoding=\"DECIMAL\"/>",
                "",
                "ResponseFormat",
            ),
            (
                "Encoding=\"DECIMAL\"",
                "Encoding=\"HEXADECIMAL\"",
                "DECIMAL",
            ),
            ("Length=\"8\"", "Length=\"10\"", "digits"),
            ("pskc:hotp", "pskc:ocra", "neither HOTP nor TOTP"),
            (
                "<PlainValue>0</PlainValue>",
                "<PlainValue>-1</PlainValue>",
                "not a number",
            ),
            ("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=", "MTIzNDU2Nzg5MA==", "bytes"),
            ("Version=\"1.0\"", "Version=\"2.0\"", "Version"),
        ];
        for (from, to, what) in cases {
            assert!(RFC6030_FIGURE2.contains(from), "{from}");
            let e = problem(&RFC6030_FIGURE2.replace(from, to), None);
            assert!(e.problem.contains(what), "{from} -> {to}: {e}");
            assert!(!e.to_string().contains("MTIzNDU2"), "{e}");
        }
    }

    #[test]
    fn password_based_and_asymmetric_encryption_are_refused_by_name() {
        let pbkdf2 = RFC6030_FIGURE6.replace(
            "<ds:KeyName>Pre-shared-key</ds:KeyName>",
            "<DerivedKey><KeyDerivationMethod Algorithm=\"http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2\"/></DerivedKey>",
        );
        let e = problem(&pbkdf2, Some(&psk()));
        assert!(e.problem.contains("PBKDF2"), "{e}");
        let x509 = RFC6030_FIGURE6.replace(
            "<ds:KeyName>Pre-shared-key</ds:KeyName>",
            "<ds:X509Data><ds:X509Certificate>MIIB</ds:X509Certificate></ds:X509Data>",
        );
        let e = problem(&x509, Some(&psk()));
        assert!(e.problem.contains("asymmetric"), "{e}");
        let no_mac = {
            let start = RFC6030_FIGURE6.find("<MACMethod").unwrap();
            let end = RFC6030_FIGURE6.find("</MACMethod>").unwrap() + "</MACMethod>".len();
            format!("{}{}", &RFC6030_FIGURE6[..start], &RFC6030_FIGURE6[end..])
        };
        let e = problem(&no_mac, Some(&psk()));
        assert!(e.problem.contains("no <MACMethod>"), "{e}");
    }
}
