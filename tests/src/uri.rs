//! Taking `otpauth://` URIs apart, independently of the product's URI code.

/// Decodes `%XX` escapes (and leaves everything else, including `+`, as it is: the
/// otpauth format is a URI, not a form submission).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(u8::try_from(hi * 16 + lo).expect("two hex digits fit a byte"));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of an `otpauth://TYPE/LABEL?QUERY` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpauthUri {
    /// "totp" or "hotp".
    pub kind: String,
    /// The label, percent-decoded ("Issuer:account").
    pub label: String,
    /// The query parameters in order, names and values percent-decoded.
    pub params: Vec<(String, String)>,
}

impl OtpauthUri {
    /// Parses `uri`, or says why it is not an otpauth URI.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri
            .strip_prefix("otpauth://")
            .ok_or_else(|| format!("{uri:?} does not start with otpauth://"))?;
        let (kind, rest) = rest
            .split_once('/')
            .ok_or_else(|| format!("{uri:?} has no label"))?;
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let params = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Ok(Self {
            kind: kind.to_owned(),
            label: percent_decode(label),
            params,
        })
    }

    /// The value of query parameter `name` (the first, if repeated).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
