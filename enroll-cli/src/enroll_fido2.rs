//! `mfa enroll fido2`: registering a FIDO2 security key with a touch (and its PIN).
//!
//! The daemon checks the name and the room for the key and issues the challenge
//! (`BeginFido2`); the key is asked from this, the user's own, process, where udev gives
//! the seated user access to it; the daemon verifies the attestation and stores the key
//! (`FinishFido2`). This only talks to the person: the PIN prompt (echo off), the "touch
//! your key" cue, and the result.

use pam_mfa::fido2::registration::{Registering, register_over};
use pam_mfa::fido2::{self, Fido2Error};
use pam_mfa_protocol::{KeyAttestation, PublicBytes, Request, Response, SecretBytes};

use crate::cli::EnrollFido2;
use crate::daemon::{Link, unexpected};
use crate::identity::Target;
use crate::{CliError, keys};

pub fn fido2(
    link: &mut Link,
    target: &Target,
    args: &EnrollFido2,
    proof: Option<SecretBytes>,
) -> Result<(), CliError> {
    if let Some(id) = &args.rp_id {
        fido2::check_rp_id(id).map_err(pam_mfa::Error::from)?;
    }
    let user = target.user.as_str().to_owned();
    let begun = match link.ask(Request::BeginFido2 {
        user: user.clone(),
        name: args.name.clone(),
        rp_id: args.rp_id.clone(),
        require_pin: args.pin,
        require_uv: args.uv,
        proof,
    })? {
        Response::Fido2Challenge(c) => c,
        other => return Err(unexpected(&other)),
    };
    let name = &args.name;
    println!(
        "Registering security key \"{name}\" for {} (relying party {}).",
        begun.user_name, begun.rp_id
    );
    let timeout = args.timeout;
    let key_error = |e: Fido2Error| match e {
        Fido2Error::Timeout => CliError::msg(format!(
            "the security key was not touched within {timeout} seconds; run this again and \
             touch the key when asked (or give more time with --timeout)"
        )),
        Fido2Error::AlreadyRegistered => CliError::msg(format!(
            "this security key is already registered for {}; `mfa list` shows it",
            target.user
        )),
        other => pam_mfa::Error::from(other).into(),
    };
    let exclude: Vec<Vec<u8>> = begun.exclude.iter().map(|c| c.0.clone()).collect();
    let registering = Registering {
        rp_id: &begun.rp_id,
        challenge: keys::challenge_bytes(&begun.challenge)?,
        user_id: keys::challenge_bytes(&begun.user_id)?,
        user_name: &begun.user_name,
        exclude: &exclude,
        needs_pin: begun.needs_pin,
        needs_uv: begun.needs_uv,
        timeout: fido2::timeout(timeout),
    };
    let attestation = register_over(
        fido2::transport().as_ref(),
        &registering,
        &mut keys::AtTerminal::waiting(timeout),
    )?
    .map_err(|e| key_error(Fido2Error::from(e)))?;
    let done = match link.ask(Request::FinishFido2 {
        user,
        ticket: begun.ticket,
        attestation: KeyAttestation {
            fmt: attestation.fmt,
            auth_data: PublicBytes(attestation.auth_data),
            alg: attestation.alg,
            sig: PublicBytes(attestation.sig),
            x5c: attestation.x5c.into_iter().map(PublicBytes).collect(),
        },
    })? {
        Response::Fido2Registered(done) => done,
        other => return Err(unexpected(&other)),
    };
    let verification = if done.uv_required {
        ", with user verification (PIN) at every login"
    } else {
        ""
    };
    println!(
        "Security key \"{}\" is active for {}{verification}.",
        done.name, done.user
    );
    Ok(())
}
