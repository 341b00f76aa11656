//! `libpam_mfa_keys.so`: what pam_mfa.so loads for a security-key login (see
//! `pam_mfa_fido2::plugin` for the interface and why it is a library of its own).

use pam_mfa_fido2::plugin::{Reply, Request};

/// The one entry point; its name is `pam_mfa_fido2::plugin::ENTRY_SYMBOL`.
///
/// # Safety
/// As for `pam_mfa_fido2::plugin::serve`: `request` points to a valid request whose
/// pointers are valid for their lengths, and `reply` to a writable reply, for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_mfa_keys_authenticate_v1(request: *const Request, reply: *mut Reply) {
    // SAFETY: the caller's contract, above, is serve's.
    unsafe { pam_mfa_fido2::plugin::serve(request, reply) }
}

/// The entry point has the type pam_mfa.so calls it with.
const _: pam_mfa_fido2::plugin::Entry = pam_mfa_keys_authenticate_v1;
