//! The result of `pam_authenticate` as a value: pam-client prints it by name, the tests
//! compare values, so a misspelt expectation does not compile.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamCode {
    Success,
    ServiceErr,
    SystemErr,
    PermDenied,
    AuthErr,
    CredInsufficient,
    AuthinfoUnavail,
    UserUnknown,
    MaxTries,
    ConvErr,
    Ignore,
    Abort,
    /// A code pam-client has no name for, by number.
    Other(i32),
}

const NAMES: &[(PamCode, &str)] = &[
    (PamCode::Success, "PAM_SUCCESS"),
    (PamCode::ServiceErr, "PAM_SERVICE_ERR"),
    (PamCode::SystemErr, "PAM_SYSTEM_ERR"),
    (PamCode::PermDenied, "PAM_PERM_DENIED"),
    (PamCode::AuthErr, "PAM_AUTH_ERR"),
    (PamCode::CredInsufficient, "PAM_CRED_INSUFFICIENT"),
    (PamCode::AuthinfoUnavail, "PAM_AUTHINFO_UNAVAIL"),
    (PamCode::UserUnknown, "PAM_USER_UNKNOWN"),
    (PamCode::MaxTries, "PAM_MAXTRIES"),
    (PamCode::ConvErr, "PAM_CONV_ERR"),
    (PamCode::Ignore, "PAM_IGNORE"),
    (PamCode::Abort, "PAM_ABORT"),
];

impl PamCode {
    /// Reads pam-client's `result:` (a name, or a number it has no name for).
    pub fn from_name(name: &str) -> Option<Self> {
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| *c)
            .or_else(|| name.parse().ok().map(Self::Other))
    }
}

impl fmt::Display for PamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAMES.iter().find(|(c, _)| c == self) {
            Some((_, name)) => f.write_str(name),
            None => match self {
                Self::Other(n) => write!(f, "{n}"),
                _ => write!(f, "{self:?}"),
            },
        }
    }
}
