//! Security keys, the relying party's half: the room and the RP id checked before the
//! key is asked (the client asks it: `pam_mfa_fido2::registration`), then the key's
//! attestation verified and the key stored.

use super::*;
use crate::clock::UnixTime;

/// The first half of a key registration, before anything is asked of the key: the RP id
/// is one we accept, there is room for another active device named `name`, and the
/// credential ids the key must not register again (the user's active keys). `mfad` runs
/// it and its client asks the key (`pam_mfa_fido2::registration::register_over`).
pub fn begin_fido2(
    store: &Store,
    user: &UserName,
    name: &DeviceName,
    rp_id: &str,
    now: UnixTime,
) -> Result<Vec<Vec<u8>>> {
    crate::fido2::check_rp_id(rp_id)?;
    check_room_for(store, user, name, now)?;
    Ok(devices::active_fido2(store.conn(), user.as_str())?
        .into_iter()
        .map(|d| d.credential.credential_id)
        .collect())
}

/// The check half of [`finish_fido2`], for a store that keeps the key elsewhere (the
/// fleet's database): the key's `attestation` of `challenge` for `rp_id` verified, with
/// the UV flag when `needs_uv`.
pub fn verify_fido2(
    rp_id: &str,
    needs_uv: bool,
    challenge: &[u8; 32],
    attestation: &crate::fido2::transport::RawAttestation,
) -> Result<crate::fido2::verify::Registration> {
    Ok(
        crate::fido2::verify::verify_registration(attestation, rp_id, challenge, needs_uv)
            .map_err(Fido2Error::Rejected)?,
    )
}

/// The second half of a key registration: the key's `attestation` of `challenge` for
/// `rp_id` verified (with the UV flag when `needs_uv`), and the key stored as an active
/// device in one transaction (which checks the name, the room and the credential id
/// again).
#[allow(clippy::too_many_arguments)]
pub fn finish_fido2(
    store: &mut Store,
    user: &UserName,
    name: &DeviceName,
    rp_id: &str,
    needs_uv: bool,
    challenge: &[u8; 32],
    attestation: &crate::fido2::transport::RawAttestation,
    now: UnixTime,
) -> Result<crate::fido2::verify::Registration> {
    let registration = verify_fido2(rp_id, needs_uv, challenge, attestation)?;
    let tx = store.write()?;
    devices::insert_fido2(
        &tx,
        user.as_str(),
        name.as_str(),
        &devices::NewFido2 {
            credential_id: &registration.credential_id,
            cose_public_key: &registration.cose_public_key,
            sign_count: registration.sign_count,
            rp_id,
            uv_required: needs_uv,
        },
        now,
    )?;
    tx.commit()?;
    Ok(registration)
}
