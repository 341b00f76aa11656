//! Asking a security key plugged into this host, from the user's own process (where udev
//! gives the seated user access to it), over a challenge the daemon issued: the daemon
//! checks every answer, this only carries it.
//!
//! The assertion is asked for by the ceremony a login uses (`ceremony::assert_over`).

use pam_mfa::fido2::{self, KeyFailure, Pin, Transport, ceremony};
use pam_mfa_protocol::{KeyAssertion, KeyChallengeReply, PublicBytes};

use crate::{CliError, prompt};

/// The PIN with echo off (empty: none).
pub fn ask_pin() -> Result<Option<Pin>, CliError> {
    Ok(prompt::ask_secret("Security key PIN: ")?.filter(|p| !p.is_empty()))
}

/// The daemon's challenge as the 32 bytes a key signs over.
pub fn challenge_bytes(challenge: &PublicBytes) -> Result<[u8; 32], CliError> {
    <[u8; 32]>::try_from(challenge.0.as_slice())
        .map_err(|_| CliError::msg("mfad sent a challenge of the wrong size"))
}

/// The person at the key, at this terminal: the PIN with echo off, the cue on stderr
/// (with how long the key waits, when that is said).
#[derive(Default)]
pub struct AtTerminal {
    waits_secs: Option<u32>,
}

impl AtTerminal {
    /// The cue says how many seconds the key waits for the touch.
    pub fn waiting(secs: u32) -> Self {
        Self {
            waits_secs: Some(secs),
        }
    }
}

impl ceremony::Person<CliError> for AtTerminal {
    fn pin(&mut self) -> Result<Option<Pin>, CliError> {
        ask_pin()
    }

    fn touch_cue(&mut self) {
        match self.waits_secs {
            Some(secs) => eprintln!("Touch your security key now (waiting {secs} seconds)."),
            None => eprintln!("Touch your security key now."),
        }
    }
}

/// Asks the plugged-in key to sign `reply`'s challenge with one of its credentials, as a
/// login asks it ([`ceremony::assert_over`]). The outer error is this process's own (the
/// terminal); the inner one why the key could not answer (nothing reached the daemon,
/// so nothing counts).
pub fn assert(
    transport: &dyn Transport,
    reply: &KeyChallengeReply,
) -> Result<Result<KeyAssertion, KeyFailure>, CliError> {
    let challenge = challenge_bytes(&reply.challenge)?;
    // Only the ids, RP ids and verification rules are used to ask; the daemon keeps the
    // public keys and sign counts, and checks the answer.
    let credentials: Vec<ceremony::Credential> = reply
        .credentials
        .iter()
        .map(|c| ceremony::Credential {
            name: c.name.clone(),
            credential_id: c.credential_id.0.clone(),
            cose_public_key: Vec::new(),
            sign_count: 0,
            rp_id: c.rp_id.clone(),
            uv_required: c.uv_required,
        })
        .collect();
    let timeout = fido2::timeout(fido2::DEFAULT_TIMEOUT_SECS);
    let answered = match ceremony::assert_over(
        transport,
        &credentials,
        challenge,
        timeout,
        &mut AtTerminal::default(),
    )? {
        Ok(answered) => answered,
        Err(failure) => return Ok(Err(failure)),
    };
    // A key may leave the credential out when the allow list had one entry.
    let credential_id =
        answered
            .assertion
            .credential_id
            .or_else(|| match answered.allow.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            });
    Ok(Ok(KeyAssertion {
        rp_id: answered.rp_id,
        credential_id: credential_id.map(PublicBytes),
        auth_data: PublicBytes(answered.assertion.auth_data),
        signature: PublicBytes(answered.assertion.signature),
    }))
}
