//! `mfa enroll fido2`: registering a FIDO2 security key with a touch (and its PIN).
//!
//! The ceremony and every check of the key's answer live in the library
//! ([`pam_mfa::enrollment::register_fido2`]); this only talks to the person: the PIN
//! prompt (echo off), the "touch your key" cue, and the result.

use pam_mfa::clock;
use pam_mfa::enrollment::{self, Fido2Options};
use pam_mfa::fido2;
use pam_mfa::names::DeviceName;

use crate::cli::EnrollFido2;
use crate::identity::Target;
use crate::{CliError, audit, prompt};

pub fn fido2(target: &Target, args: &EnrollFido2) -> Result<(), CliError> {
    let name = DeviceName::parse(&args.name)?;
    let rp_id = match &args.rp_id {
        Some(id) => id.clone(),
        None => fido2::default_rp_id(&pam_mfa::selfservice::default_issuer()),
    };
    fido2::check_rp_id(&rp_id).map_err(pam_mfa::Error::from)?;
    let mut store = crate::open_store(target)?;
    let transport = fido2::transport();
    println!(
        "Registering security key \"{name}\" for {} (relying party {rp_id}).",
        target.user
    );
    let mut pin_error = None;
    let mut ask_pin = || match prompt::ask_secret("Security key PIN: ") {
        Ok(Some(pin)) if !pin.is_empty() => Some(pin),
        Ok(_) => None,
        Err(e) => {
            pin_error = Some(e);
            None
        }
    };
    let timeout = args.timeout;
    let mut cue = || {
        eprintln!("Touch your security key now (waiting {timeout} seconds).");
    };
    let result = enrollment::register_fido2(
        &mut store,
        transport.as_ref(),
        &target.user,
        &name,
        Fido2Options {
            rp_id: &rp_id,
            require_pin: args.pin,
            require_uv: args.uv,
            timeout: fido2::timeout(args.timeout),
        },
        &mut ask_pin,
        &mut cue,
        clock::now()?,
    );
    if let Some(e) = pin_error {
        return Err(e);
    }
    let registration = result.map_err(|e| match e {
        pam_mfa::Error::Fido2(fido2::Fido2Error::Timeout) => CliError::msg(format!(
            "the security key was not touched within {timeout} seconds; run this again and \
             touch the key when asked (or give more time with --timeout)"
        )),
        pam_mfa::Error::Fido2(fido2::Fido2Error::AlreadyRegistered) => CliError::msg(format!(
            "this security key is already registered for {}; `mfa list` shows it",
            target.user
        )),
        other => other.into(),
    })?;
    audit::record(
        target,
        &format!(
            "registered security key {:?} ({}, {} attestation, relying party {rp_id})",
            name.as_str(),
            registration.algorithm,
            registration.attestation
        ),
    );
    let verification = if args.pin || args.uv {
        ", with user verification (PIN) at every login"
    } else {
        ""
    };
    println!(
        "Security key \"{name}\" is active for {}{verification}.",
        target.user
    );
    Ok(())
}
