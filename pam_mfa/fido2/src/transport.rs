//! How the relying party talks to a key: the two CTAP2 ceremonies and a little about the
//! key, behind a trait with exactly two implementations (USB HID, and the software
//! authenticator of test builds).
//!
//! A transport only carries bytes: what comes back is checked by [`super::verify`], the
//! same code whichever transport answered.

use std::time::Duration;

/// authenticatorMakeCredential, non-resident, requiring user presence.
pub struct MakeCredentialRequest<'a> {
    pub rp_id: &'a str,
    /// The key signs SHA-256 of this (the clientDataHash).
    pub challenge: [u8; 32],
    /// The random user handle.
    pub user_id: [u8; 32],
    pub user_name: &'a str,
    /// Credential ids the key must not register again.
    pub exclude: &'a [Vec<u8>],
    /// The PIN, when the key has one set or verification is required.
    pub pin: Option<&'a str>,
    /// Ask for the key's built-in user verification (fingerprint) instead of a PIN.
    pub uv: bool,
    pub timeout: Duration,
}

/// The attestation object's parts, as the key sent them.
#[derive(Debug, Clone, Default)]
pub struct RawAttestation {
    pub fmt: String,
    pub auth_data: Vec<u8>,
    /// `attStmt.alg`.
    pub alg: Option<i64>,
    /// `attStmt.sig`.
    pub sig: Vec<u8>,
    /// `attStmt.x5c`: the attestation certificate first.
    pub x5c: Vec<Vec<u8>>,
}

/// authenticatorGetAssertion with an allow list, requiring user presence.
pub struct GetAssertionRequest<'a> {
    pub rp_id: &'a str,
    pub challenge: [u8; 32],
    pub allow: &'a [Vec<u8>],
    pub pin: Option<&'a str>,
    pub uv: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct RawAssertion {
    /// The credential used; a key may leave it out when the allow list had one entry.
    pub credential_id: Option<Vec<u8>>,
    pub auth_data: Vec<u8>,
    pub signature: Vec<u8>,
}

/// What the relying party needs to know about a key before asking it anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyInfo {
    /// A PIN is set (getInfo option `clientPin: true`).
    pub pin_set: bool,
    /// The key verifies its user itself (getInfo option `uv: true`, e.g. a fingerprint).
    pub builtin_uv: bool,
}

/// What a transport reports; CTAP status codes mapped to what the caller acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no security key is plugged in")]
    NoKey,
    #[error("the key was not touched in time")]
    Timeout,
    /// CTAP2_ERR_NO_CREDENTIALS: none of the allow list is on this key.
    #[error("the key holds none of the credentials asked for")]
    NoCredentials,
    /// CTAP2_ERR_CREDENTIAL_EXCLUDED: the key is already registered.
    #[error("the key is already registered")]
    Excluded,
    #[error("the key requires its PIN")]
    PinRequired,
    #[error("wrong PIN")]
    PinInvalid,
    #[error("the PIN is blocked")]
    PinBlocked,
    #[error("{0}")]
    Device(String),
}

pub trait Transport {
    /// A short name for logs ("usb", "soft").
    fn name(&self) -> &'static str;
    /// Whether a key is plugged in (cheap: no touch, no prompt).
    fn present(&self) -> bool;
    fn info(&self) -> Result<KeyInfo, TransportError>;
    fn make_credential(
        &self,
        req: &MakeCredentialRequest<'_>,
    ) -> Result<RawAttestation, TransportError>;
    fn get_assertion(&self, req: &GetAssertionRequest<'_>) -> Result<RawAssertion, TransportError>;
}
