//! The library's side of the interface between the PAM module and `libpam_mfa_keys.so`
//! (the structs and the caller's side are in [`pam_mfa_keys_abi`], which the module links
//! instead of this crate).
//!
//! A key login: `mfad` issues a challenge and the user's credentials; the module loads
//! `libpam_mfa_keys.so` from next to itself and calls its one entry point
//! [`ENTRY_SYMBOL`], whose body is [`serve`]: the client half of the ceremony
//! ([`ceremony::assert_over`]) over the daemon's challenge, on the key transport of this
//! build. The reply is the key's raw answer (or why the key could not be asked), which the
//! module carries back to the daemon; the daemon verifies it ([`ceremony::check_answer`])
//! and records it. Nothing here decides a login.

pub use pam_mfa_keys_abi::{
    ABI_VERSION, AskPin, Assertion, CCredential, ClientFailure, ENTRY_SYMBOL, Entry, LIBRARY_FILE,
    MAX_CREDENTIALS, PIN_CAP, PIN_GIVEN, PIN_NONE, Reply, Request, STATUS_CONVERSATION,
    STATUS_INTERNAL, TouchCue, struct_size,
};

use zeroize::Zeroizing;

use crate::Pin;
use crate::ceremony::{self, Credential, KeyFailure, Person};

/// A failure of the client half, as the interface carries it. The two that only a
/// relying party decides cannot come from [`ceremony::assert_over`]; should they, they
/// are device errors (which count for nothing).
pub fn client_failure(f: KeyFailure) -> ClientFailure {
    match f {
        KeyFailure::NoKey => ClientFailure::NoKey,
        KeyFailure::Remote => ClientFailure::Remote,
        KeyFailure::NoneRegistered => ClientFailure::NoneRegistered,
        KeyFailure::Timeout => ClientFailure::Timeout,
        KeyFailure::NotRegistered => ClientFailure::NotRegistered,
        KeyFailure::PinRequired => ClientFailure::PinRequired,
        KeyFailure::PinInvalid => ClientFailure::PinInvalid,
        KeyFailure::PinBlocked => ClientFailure::PinBlocked,
        KeyFailure::NoVerification => ClientFailure::NoVerification,
        KeyFailure::NoPin => ClientFailure::NoPin,
        KeyFailure::Device(d) => ClientFailure::Device(d),
        KeyFailure::UnknownCredential => {
            ClientFailure::Device("an answer with an unknown credential".to_owned())
        }
        KeyFailure::Rejected { why, .. } => ClientFailure::Device(why.to_string()),
    }
}

/// The library's side of the entry point: checks and copies the request, asks the key
/// on the transport of this build, and fills `reply`. A panic becomes
/// [`STATUS_INTERNAL`].
///
/// # Safety
/// `request` must point to a valid [`Request`] whose credentials are `count` valid
/// [`CCredential`]s, each pointer valid for its length, all alive for the call; `reply`
/// must point to a writable [`Reply`].
pub unsafe fn serve(request: *const Request, reply: *mut Reply) {
    if reply.is_null() || request.is_null() {
        return;
    }
    // SAFETY: the caller's contract; `abi` is the first field of every version's Request.
    let abi = unsafe { request.cast::<u32>().read() };
    let sizes = if abi == ABI_VERSION {
        // SAFETY: the caller's contract; a Request of this version.
        unsafe { ((*request).request_size, (*request).reply_size) }
    } else {
        (0, 0)
    };
    if sizes != (struct_size::<Request>(), struct_size::<Reply>()) {
        // Another interface: nothing else in the request can be read, nor the reply
        // written. The caller's own reply, untouched, does not count.
        return;
    }
    // SAFETY: the caller's contract; a Request of this version and size.
    let nonce = unsafe { (*request).nonce };
    let mut answer = Reply::empty();
    let outcome = crate::panic_guard::catch(|| {
        // SAFETY: the caller's contract, above.
        let request = unsafe { request.as_ref() }?;
        // SAFETY: the caller's contract, above.
        let credentials = unsafe { copy_credentials(request) }?;
        let mut person = Callbacks {
            request,
            ask_pin: request.ask_pin?,
            touch_cue: request.touch_cue?,
        };
        let transport = crate::transport();
        let timeout = crate::timeout(request.timeout_secs);
        Some(ceremony::assert_over(
            transport.as_ref(),
            &credentials,
            request.challenge,
            timeout,
            &mut person,
        ))
    });
    match outcome {
        Ok(Some(Ok(Ok(answered)))) => answer.set_answer(&Assertion {
            rp_id: answered.rp_id,
            credential_id: answered.assertion.credential_id,
            auth_data: answered.assertion.auth_data,
            signature: answered.assertion.signature,
        }),
        Ok(Some(Ok(Err(failure)))) => answer.set_failure(&client_failure(failure)),
        Ok(Some(Err(ConversationFailed))) => answer.set_status(STATUS_CONVERSATION, ""),
        Ok(None) => answer.set_status(STATUS_INTERNAL, "malformed request"),
        Err(panic) => answer.set_status(STATUS_INTERNAL, &format!("panic: {panic}")),
    }
    answer.abi = ABI_VERSION;
    answer.nonce = nonce;
    // SAFETY: the caller's contract, above: a writable Reply of this size; checked non-null.
    unsafe { reply.write(*answer) };
}

/// Copies the request's credentials, refusing anything out of bounds. Only what asking a
/// key needs is carried: the public key and sign count stay with the daemon.
///
/// # Safety
/// As for [`serve`].
unsafe fn copy_credentials(request: &Request) -> Option<Vec<Credential>> {
    if request.count == 0 || request.count > MAX_CREDENTIALS || request.credentials.is_null() {
        return None;
    }
    // SAFETY: `credentials` points to `count` valid entries (the caller's contract).
    let raw = unsafe { std::slice::from_raw_parts(request.credentials, request.count) };
    raw.iter()
        .map(|c| {
            // SAFETY: each pointer is valid for its length (the caller's contract).
            let bytes = |p: *const u8, len: usize, max: usize| unsafe { borrowed(p, len, max) };
            Some(Credential {
                name: String::new(),
                credential_id: bytes(c.id, c.id_len, crate::MAX_CREDENTIAL_ID_LEN)?.to_vec(),
                cose_public_key: Vec::new(),
                rp_id: String::from_utf8(bytes(c.rp_id, c.rp_id_len, 255)?.to_vec()).ok()?,
                sign_count: 0,
                uv_required: match c.uv_required {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
            })
        })
        .collect()
}

/// `len` bytes at `p`, if `p` is not null and `1 <= len <= max`.
///
/// # Safety
/// `p` must be valid for reads of `len` bytes for the lifetime `'a`.
unsafe fn borrowed<'a>(p: *const u8, len: usize, max: usize) -> Option<&'a [u8]> {
    if p.is_null() || len == 0 || len > max {
        return None;
    }
    // SAFETY: the caller's contract, above.
    Some(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The person, reached through the request's callbacks.
struct Callbacks<'a> {
    request: &'a Request,
    ask_pin: AskPin,
    touch_cue: TouchCue,
}

/// The PIN prompt failed; the caller holds the reason.
struct ConversationFailed;

impl Person<ConversationFailed> for Callbacks<'_> {
    fn pin(&mut self) -> Result<Option<Pin>, ConversationFailed> {
        let mut buf = Zeroizing::new([0u8; PIN_CAP]);
        let mut len = 0usize;
        // SAFETY: the callback and `person` come from the caller, who keeps them valid for
        // the call; `buf` is writable for PIN_CAP bytes and `len` is writable.
        let status =
            unsafe { (self.ask_pin)(self.request.person, buf.as_mut_ptr(), PIN_CAP, &mut len) };
        match status {
            PIN_GIVEN => Ok(buf
                .get(..len)
                .and_then(|b| std::str::from_utf8(b).ok())
                .filter(|p| !p.is_empty())
                .map(|p| Zeroizing::new(p.to_owned()))),
            PIN_NONE => Ok(None),
            _ => Err(ConversationFailed),
        }
    }

    fn touch_cue(&mut self) {
        // SAFETY: as in `pin`.
        unsafe { (self.touch_cue)(self.request.person) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::{c_int, c_void};

    const NONCE: [u8; 16] = [7; 16];

    unsafe extern "C" fn no_pin(_: *mut c_void, _: *mut u8, _: usize, _: *mut usize) -> c_int {
        PIN_NONE
    }
    unsafe extern "C" fn no_cue(_: *mut c_void) {}

    fn request(credentials: *const CCredential, count: usize) -> Request {
        Request {
            abi: ABI_VERSION,
            request_size: struct_size::<Request>(),
            reply_size: struct_size::<Reply>(),
            nonce: NONCE,
            challenge: [9; 32],
            credentials,
            count,
            timeout_secs: 1,
            person: std::ptr::null_mut(),
            ask_pin: Some(no_pin),
            touch_cue: Some(no_cue),
        }
    }

    fn detail(r: &Reply) -> String {
        String::from_utf8_lossy(&r.detail[..r.detail_len]).into_owned()
    }

    /// A malformed request is refused by the library's side without touching a key.
    #[test]
    fn malformed_requests_are_refused() {
        let good = CCredential {
            id: b"id".as_ptr(),
            id_len: 2,
            rp_id: b"r".as_ptr(),
            rp_id_len: 1,
            uv_required: 0,
        };
        let bad_id = CCredential {
            id: std::ptr::null(),
            ..good
        };
        let bad_uv = CCredential {
            uv_required: 2,
            ..good
        };
        let mut requests = vec![
            request(std::ptr::null(), 1),
            request(&raw const bad_id, 1),
            request(&raw const bad_uv, 1),
            request(&raw const good, 0),
        ];
        let mut no_callback = request(&raw const good, 1);
        no_callback.ask_pin = None;
        requests.push(no_callback);
        for request in requests {
            let mut reply = Reply::empty();
            reply.status = pam_mfa_keys_abi::STATUS_ANSWERED;
            // SAFETY: the request's pointers are null or valid for their lengths.
            unsafe { serve(&request, &mut *reply) };
            assert_eq!(reply.status, STATUS_INTERNAL);
            assert_eq!(detail(&reply), "malformed request");
            assert_eq!((reply.abi, reply.nonce), (ABI_VERSION, NONCE));
        }
    }

    /// A request of another interface version or size is not answered at all: the
    /// caller's reply is left as it was, which never counts as an answer.
    #[test]
    fn other_interfaces_are_not_answered() {
        let mut other_version = request(std::ptr::null(), 1);
        other_version.abi = ABI_VERSION + 1;
        let mut other_size = request(std::ptr::null(), 1);
        other_size.reply_size -= 8;
        for request in [other_version, other_size] {
            let mut reply = Reply::empty();
            // SAFETY: as above.
            unsafe { serve(&request, &mut *reply) };
            assert_eq!((reply.abi, reply.status), (0, STATUS_INTERNAL));
            assert!(pam_mfa_keys_abi::decode(&reply, &NONCE).is_some_and(|r| r.is_err()));
        }
    }

    #[test]
    fn relying_party_failures_are_device_errors() {
        assert_eq!(client_failure(KeyFailure::NoKey), ClientFailure::NoKey);
        assert!(matches!(
            client_failure(KeyFailure::UnknownCredential),
            ClientFailure::Device(_)
        ));
    }
}
