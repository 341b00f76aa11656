//! The pause after a failed login, asked of libpam as pam_unix asks for it.
//!
//! libpam, not the module, waits: after a failed `pam_authenticate` it sleeps for the
//! longest delay any module of the stack requested (scattered by up to half either way),
//! so pam_mfa's request does not add to pam_unix's, a successful login never waits, and an
//! application with its own `PAM_FAIL_DELAY` function (e.g. one that must not block) gets
//! to decide. It slows scripted guessing between lock-outs the way people expect of a
//! login module; `nodelay` turns it off, as it does for pam_unix.

use std::os::raw::{c_int, c_uint};

use pam::module::PamHandle;

/// What the module asks for: pam_unix's two seconds.
pub const FAIL_DELAY_MICROS: c_uint = 2_000_000;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_fail_delay(pamh: *mut PamHandle, usec: c_uint) -> c_int;
}

/// Asks libpam to wait [`FAIL_DELAY_MICROS`] if this authentication fails. Whether libpam
/// took note changes nothing about the login, so the result is not looked at.
pub fn request(pamh: &mut PamHandle) {
    // SAFETY: `pamh` is the live handle libpam passed to this call of the module (a
    // `&mut` to it cannot outlive the call), which is all pam_fail_delay reads; it keeps
    // no pointer we hand it.
    unsafe {
        pam_fail_delay(pamh, FAIL_DELAY_MICROS);
    }
}
