//! `libpam_mfa_keys.so`: what the PAM module loads for a security-key login (see
//! `pam_mfa_keys_abi` for the interface and why it is a library of its own).

use pam_mfa_fido2::plugin::{Reply, Request};

/// The one entry point; its name is `pam_mfa_keys_abi::ENTRY_SYMBOL`.
///
/// # Safety
/// As for `pam_mfa_fido2::plugin::serve`: `request` points to a valid request whose
/// pointers are valid for their lengths, and `reply` to a writable reply, for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_mfa_keys_assert_v2(request: *const Request, reply: *mut Reply) {
    // SAFETY: the caller's contract, above, is serve's.
    unsafe { pam_mfa_fido2::plugin::serve(request, reply) }
}

/// The entry point has the type the module calls it with.
const _: pam_mfa_fido2::plugin::Entry = pam_mfa_keys_assert_v2;

/// The symbol's name is the one the module looks up.
#[cfg(test)]
mod tests {
    #[test]
    fn the_symbol_is_the_interfaces() {
        assert_eq!(
            pam_mfa_fido2::plugin::ENTRY_SYMBOL.to_bytes(),
            b"pam_mfa_keys_assert_v2"
        );
    }
}
