//! The C interface between pam_mfa.so and `libpam_mfa_keys.so`, and both of its sides.
//!
//! Every login loads pam_mfa.so afresh, and most never touch a security key; the USB HID
//! stack and the signature checks of a key login (this crate) are most of what made the
//! module slow to load (issue 7, README "Performance"). So the module does not carry
//! them: a key login loads `libpam_mfa_keys.so` from next to the module (see
//! `pam_mfa::pam::keys_library`), calls its one entry point [`ENTRY_SYMBOL`] with the
//! user's credentials, and gets back which one verified and its sign count, or why none
//! did. The module then records that in the store, checking the sign count again in its
//! write transaction. `mfa` links this crate and calls [`authenticate`] directly.
//!
//! Only plain C data crosses: the two libraries each have their own copy of the standard
//! library and allocator, so nothing allocated on one side is freed on the other. The
//! entry point's name carries the interface version, so a library of another interface is
//! not found; and since a name alone proves little (a layout changed without renaming, a
//! library from a half-finished upgrade), both structs start with [`ABI_VERSION`] and the
//! sizes each side expects, success is a status no zeroed or foreign reply can hold by
//! chance, and the reply must echo the request's fresh nonce. Anything else fails closed.
//! Neither side lets a panic unwind across the boundary: the library catches its own in
//! [`serve`], and the caller's callbacks catch theirs and raise them again once the entry
//! point has returned, where the module's guard turns them into a refusal.
//!
//! [`authenticate`]: crate::ceremony::authenticate

use std::any::Any;
use std::ffi::{CStr, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};

use zeroize::Zeroizing;

use crate::Pin;
use crate::ceremony::{self, Credential, KeyFailure, Person, Verified};
use crate::verify::Rejection;

/// The entry point, `unsafe extern "C" fn(*const Request, *mut Reply)` ([`Entry`]).
pub const ENTRY_SYMBOL: &CStr = c"pam_mfa_keys_authenticate_v1";

/// The library's file name; it is installed next to pam_mfa.so.
pub const LIBRARY_FILE: &str = "libpam_mfa_keys.so";

pub type Entry = unsafe extern "C" fn(request: *const Request, reply: *mut Reply);

/// The version of [`Request`] and [`Reply`]: raised with any change to either.
pub const ABI_VERSION: u32 = 1;

/// Longest PIN passed (CTAP2 allows 63 bytes; the prompt accepts up to 255).
pub const PIN_CAP: usize = 255;
/// Longest detail text in a [`Reply`].
pub const DETAIL_CAP: usize = 256;
/// The most credentials a request may carry (a user has at most 8 devices).
pub const MAX_CREDENTIALS: usize = 64;

/// One credential, borrowed from the caller for the length of the call.
#[repr(C)]
pub struct CCredential {
    pub name: *const u8,
    pub name_len: usize,
    pub id: *const u8,
    pub id_len: usize,
    pub cose_key: *const u8,
    pub cose_key_len: usize,
    pub rp_id: *const u8,
    pub rp_id_len: usize,
    pub sign_count: u32,
    pub uv_required: u8,
}

/// [`Request::ask_pin`] results.
pub const PIN_GIVEN: c_int = 0;
pub const PIN_NONE: c_int = 1;
pub const PIN_CONVERSATION_FAILED: c_int = 2;

#[repr(C)]
pub struct Request {
    /// [`ABI_VERSION`]; first, so that any version can read it.
    pub abi: u32,
    /// `size_of::<Request>()` and `size_of::<Reply>()` as the caller was built with them.
    pub request_size: u32,
    pub reply_size: u32,
    /// Fresh random bytes, which a reply must echo to count.
    pub nonce: [u8; 16],
    pub credentials: *const CCredential,
    pub count: usize,
    pub timeout_secs: u32,
    /// Handed back to the two callbacks.
    pub person: *mut c_void,
    /// Asks for the key's PIN: writes at most `cap` bytes to `buf` and their number to
    /// `len`, and returns [`PIN_GIVEN`], [`PIN_NONE`] or [`PIN_CONVERSATION_FAILED`].
    /// Null is a malformed request.
    pub ask_pin: Option<AskPin>,
    /// Null is a malformed request.
    pub touch_cue: Option<TouchCue>,
}

pub type AskPin =
    unsafe extern "C" fn(person: *mut c_void, buf: *mut u8, cap: usize, len: *mut usize) -> c_int;
pub type TouchCue = unsafe extern "C" fn(person: *mut c_void);

/// What came of a request. `status` is one of the `STATUS_*` values; `index` names the
/// credential for [`STATUS_VERIFIED`], [`STATUS_REJECTED`] and
/// [`STATUS_COUNTER_REGRESSION`].
#[repr(C)]
pub struct Reply {
    /// [`ABI_VERSION`].
    pub abi: u32,
    pub status: u32,
    /// The request's nonce.
    pub nonce: [u8; 16],
    pub index: usize,
    /// The new sign count ([`STATUS_VERIFIED`]), or what the key said
    /// ([`STATUS_COUNTER_REGRESSION`]).
    pub sign_count: u32,
    /// The sign count the regression was measured against.
    pub stored: u32,
    pub detail_len: usize,
    pub detail: [u8; DETAIL_CAP],
}

/// Success: a value that no zeroed, truncated or foreign reply holds by chance.
pub const STATUS_VERIFIED: u32 = 0x5645_5249;
/// The PIN prompt failed: the caller's own error, which it kept.
pub const STATUS_CONVERSATION: u32 = 1;
pub const STATUS_NO_KEY: u32 = 2;
pub const STATUS_REMOTE: u32 = 3;
pub const STATUS_NONE_REGISTERED: u32 = 4;
pub const STATUS_TIMEOUT: u32 = 5;
pub const STATUS_NOT_REGISTERED: u32 = 6;
pub const STATUS_UNKNOWN_CREDENTIAL: u32 = 7;
pub const STATUS_PIN_REQUIRED: u32 = 8;
pub const STATUS_PIN_INVALID: u32 = 9;
pub const STATUS_PIN_BLOCKED: u32 = 10;
pub const STATUS_NO_VERIFICATION: u32 = 11;
pub const STATUS_NO_PIN: u32 = 12;
/// The key reported an error (`detail`).
pub const STATUS_DEVICE: u32 = 13;
/// The answer did not verify (`detail`).
pub const STATUS_REJECTED: u32 = 14;
pub const STATUS_COUNTER_REGRESSION: u32 = 15;
/// The request was malformed or the library failed (`detail`).
pub const STATUS_INTERNAL: u32 = 16;

impl Reply {
    pub const fn empty() -> Self {
        Self {
            abi: 0,
            nonce: [0; 16],
            status: STATUS_INTERNAL,
            index: 0,
            sign_count: 0,
            stored: 0,
            detail_len: 0,
            detail: [0; DETAIL_CAP],
        }
    }

    fn with(status: u32, index: usize, detail: &str) -> Self {
        let mut r = Self::empty();
        r.status = status;
        r.index = index;
        let mut end = detail.len().min(DETAIL_CAP);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        r.detail[..end].copy_from_slice(&detail.as_bytes()[..end]);
        r.detail_len = end;
        r
    }

    fn detail(&self) -> String {
        let len = self.detail_len.min(DETAIL_CAP);
        String::from_utf8_lossy(&self.detail[..len]).into_owned()
    }
}

/// What a request came to, as a reply. `conversation_failed`: the person's callback
/// failed, which the caller reports itself.
fn encode(outcome: Result<Verified, KeyFailure>, credentials: &[Credential]) -> Reply {
    let index_of = |device: &str| {
        let found = credentials.iter().position(|c| c.name == device);
        debug_assert!(
            found.is_some(),
            "a failure names no credential of the request"
        );
        found.unwrap_or(0)
    };
    let simple = |status| Reply::with(status, 0, "");
    match outcome {
        Ok(v) => {
            let mut r = simple(STATUS_VERIFIED);
            r.index = v.index;
            r.sign_count = v.sign_count;
            r
        }
        Err(f) => match f {
            KeyFailure::NoKey => simple(STATUS_NO_KEY),
            KeyFailure::Remote => simple(STATUS_REMOTE),
            KeyFailure::NoneRegistered => simple(STATUS_NONE_REGISTERED),
            KeyFailure::Timeout => simple(STATUS_TIMEOUT),
            KeyFailure::NotRegistered => simple(STATUS_NOT_REGISTERED),
            KeyFailure::UnknownCredential => simple(STATUS_UNKNOWN_CREDENTIAL),
            KeyFailure::PinRequired => simple(STATUS_PIN_REQUIRED),
            KeyFailure::PinInvalid => simple(STATUS_PIN_INVALID),
            KeyFailure::PinBlocked => simple(STATUS_PIN_BLOCKED),
            KeyFailure::NoVerification => simple(STATUS_NO_VERIFICATION),
            KeyFailure::NoPin => simple(STATUS_NO_PIN),
            KeyFailure::Device(d) => Reply::with(STATUS_DEVICE, 0, &d),
            KeyFailure::Rejected {
                device,
                why: Rejection::CounterRegression { stored, got },
            } => {
                let mut r = simple(STATUS_COUNTER_REGRESSION);
                r.index = index_of(&device);
                r.stored = stored;
                r.sign_count = got;
                r
            }
            KeyFailure::Rejected { device, why } => {
                Reply::with(STATUS_REJECTED, index_of(&device), &why.to_string())
            }
        },
    }
}

/// The reply as the caller acts on it; `None` for [`STATUS_CONVERSATION`]. Anything the
/// caller cannot make sense of (another interface version, a nonce that is not the
/// request's, an unknown status, an index out of range) is a failure.
fn decode(reply: &Reply, nonce: &[u8; 16], names: &[&str]) -> Option<Result<Verified, KeyFailure>> {
    let named = |index: usize| names.get(index).map(|n| (*n).to_owned());
    let internal = |what: String| Err(KeyFailure::Device(what));
    if reply.abi != ABI_VERSION || reply.nonce != *nonce {
        return Some(internal(format!(
            "security-key library: no reply to this request (interface version {}, \
             expected {ABI_VERSION})",
            reply.abi
        )));
    }
    Some(match reply.status {
        STATUS_VERIFIED => match named(reply.index) {
            Some(_) => Ok(Verified {
                index: reply.index,
                sign_count: reply.sign_count,
            }),
            None => internal("the security-key library named no credential".to_owned()),
        },
        STATUS_CONVERSATION => return None,
        STATUS_NO_KEY => Err(KeyFailure::NoKey),
        STATUS_REMOTE => Err(KeyFailure::Remote),
        STATUS_NONE_REGISTERED => Err(KeyFailure::NoneRegistered),
        STATUS_TIMEOUT => Err(KeyFailure::Timeout),
        STATUS_NOT_REGISTERED => Err(KeyFailure::NotRegistered),
        STATUS_UNKNOWN_CREDENTIAL => Err(KeyFailure::UnknownCredential),
        STATUS_PIN_REQUIRED => Err(KeyFailure::PinRequired),
        STATUS_PIN_INVALID => Err(KeyFailure::PinInvalid),
        STATUS_PIN_BLOCKED => Err(KeyFailure::PinBlocked),
        STATUS_NO_VERIFICATION => Err(KeyFailure::NoVerification),
        STATUS_NO_PIN => Err(KeyFailure::NoPin),
        STATUS_DEVICE => Err(KeyFailure::Device(reply.detail())),
        STATUS_REJECTED | STATUS_COUNTER_REGRESSION => match named(reply.index) {
            Some(device) => Err(KeyFailure::Rejected {
                device,
                why: if reply.status == STATUS_COUNTER_REGRESSION {
                    Rejection::CounterRegression {
                        stored: reply.stored,
                        got: reply.sign_count,
                    }
                } else {
                    Rejection::Described(reply.detail())
                },
            }),
            None => internal("the security-key library named no credential".to_owned()),
        },
        STATUS_INTERNAL => internal(format!("security-key library: {}", reply.detail())),
        other => internal(format!("security-key library: unknown status {other}")),
    })
}

/// The caller's side: runs `entry` for `credentials`, the person reached through the two
/// callbacks. The same result as [`ceremony::authenticate`] in-process.
pub fn call<E>(
    entry: Entry,
    credentials: &[Credential],
    timeout_secs: u32,
    person: &mut dyn Person<E>,
) -> Result<Result<Verified, KeyFailure>, E> {
    let c: Vec<CCredential> = credentials
        .iter()
        .map(|c| CCredential {
            name: c.name.as_ptr(),
            name_len: c.name.len(),
            id: c.credential_id.as_ptr(),
            id_len: c.credential_id.len(),
            cose_key: c.cose_public_key.as_ptr(),
            cose_key_len: c.cose_public_key.len(),
            rp_id: c.rp_id.as_ptr(),
            rp_id_len: c.rp_id.len(),
            sign_count: c.sign_count,
            uv_required: u8::from(c.uv_required),
        })
        .collect();
    let nonce = match nonce() {
        Ok(n) => n,
        Err(e) => return Ok(Err(KeyFailure::Device(format!("no random nonce: {e}")))),
    };
    let mut bridge = Bridge {
        person,
        failed: None,
        panicked: None,
    };
    let request = Request {
        abi: ABI_VERSION,
        request_size: struct_size::<Request>(),
        reply_size: struct_size::<Reply>(),
        nonce,
        credentials: c.as_ptr(),
        count: c.len(),
        timeout_secs,
        person: (&raw mut bridge).cast(),
        ask_pin: Some(ask_pin::<E>),
        touch_cue: Some(touch_cue::<E>),
    };
    let mut reply = Reply::empty();
    // SAFETY: `request` and everything it points to (`c`, the credentials' bytes, the
    // bridge) live until this call returns; `entry` has the type the library defines its
    // entry point with (the versioned symbol name), the library checks the request's
    // version and sizes before it uses anything else in it, and `reply` is a valid,
    // writable Reply of the size the request states.
    unsafe { entry(&request, &mut reply) };
    if let Some(payload) = bridge.panicked.take() {
        panic::resume_unwind(payload);
    }
    let names: Vec<&str> = credentials.iter().map(|c| c.name.as_str()).collect();
    match decode(&reply, &nonce, &names) {
        Some(outcome) => Ok(outcome),
        None => match bridge.failed.take() {
            Some(e) => Err(e),
            None => Ok(Err(KeyFailure::Device(
                "security-key library: a conversation failure that did not happen".to_owned(),
            ))),
        },
    }
}

/// 16 random bytes from the kernel.
fn nonce() -> Result<[u8; 16], getrandom::Error> {
    let mut n = [0u8; 16];
    getrandom::fill(&mut n)?;
    Ok(n)
}

/// A struct's size as the interface carries it.
fn struct_size<T>() -> u32 {
    u32::try_from(std::mem::size_of::<T>()).unwrap_or(u32::MAX)
}

/// The caller's person behind the C callbacks: its error if the PIN prompt failed, and a
/// panic of its own, kept to be raised again on this side of the boundary.
struct Bridge<'a, E> {
    person: &'a mut dyn Person<E>,
    failed: Option<E>,
    panicked: Option<Box<dyn Any + Send>>,
}

unsafe extern "C" fn ask_pin<E>(
    person: *mut c_void,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> c_int {
    // SAFETY: `person` is the `Bridge<E>` that `call` put in the request, alive and not
    // otherwise borrowed while the entry point runs.
    let bridge = unsafe { &mut *person.cast::<Bridge<'_, E>>() };
    let asked = panic::catch_unwind(AssertUnwindSafe(|| bridge.person.pin()));
    match asked {
        Ok(Ok(Some(pin))) if pin.len() <= cap && !buf.is_null() && !len.is_null() => {
            // SAFETY: the library passed a writable buffer of `cap` bytes and a writable
            // length; the PIN fits.
            unsafe {
                std::ptr::copy_nonoverlapping(pin.as_ptr(), buf, pin.len());
                *len = pin.len();
            }
            PIN_GIVEN
        }
        Ok(Ok(_)) => PIN_NONE,
        Ok(Err(e)) => {
            bridge.failed = Some(e);
            PIN_CONVERSATION_FAILED
        }
        Err(payload) => {
            bridge.panicked = Some(payload);
            PIN_CONVERSATION_FAILED
        }
    }
}

unsafe extern "C" fn touch_cue<E>(person: *mut c_void) {
    // SAFETY: as in `ask_pin`.
    let bridge = unsafe { &mut *person.cast::<Bridge<'_, E>>() };
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| bridge.person.touch_cue())) {
        bridge.panicked.get_or_insert(payload);
    }
}

/// The library's side of the entry point: checks and copies the request, runs the
/// ceremony on the key transport of this build, and fills `reply`. A panic becomes
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
        Some(
            match ceremony::authenticate(transport.as_ref(), &credentials, timeout, &mut person) {
                Ok(outcome) => encode(outcome, &credentials),
                Err(ConversationFailed) => Reply::with(STATUS_CONVERSATION, 0, ""),
            },
        )
    });
    let mut answer = match outcome {
        Ok(Some(r)) => r,
        Ok(None) => Reply::with(STATUS_INTERNAL, 0, "malformed request"),
        Err(panic) => Reply::with(STATUS_INTERNAL, 0, &format!("panic: {panic}")),
    };
    answer.abi = ABI_VERSION;
    answer.nonce = nonce;
    // SAFETY: the caller's contract, above: a writable Reply of this size; checked non-null.
    unsafe { reply.write(answer) };
}

/// Copies the request's credentials, refusing anything out of bounds.
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
                name: String::from_utf8(bytes(c.name, c.name_len, 1024)?.to_vec()).ok()?,
                credential_id: bytes(c.id, c.id_len, crate::MAX_CREDENTIAL_ID_LEN)?.to_vec(),
                cose_public_key: bytes(c.cose_key, c.cose_key_len, crate::cose::MAX_COSE_KEY_LEN)?
                    .to_vec(),
                rp_id: String::from_utf8(bytes(c.rp_id, c.rp_id_len, 255)?.to_vec()).ok()?,
                sign_count: c.sign_count,
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

    const NONCE: [u8; 16] = [7; 16];

    fn creds() -> Vec<Credential> {
        ["yubi", "backup"]
            .iter()
            .map(|n| Credential {
                name: (*n).to_owned(),
                credential_id: n.as_bytes().to_vec(),
                cose_public_key: vec![0xa0],
                sign_count: 3,
                rp_id: "pam://h".to_owned(),
                uv_required: false,
            })
            .collect()
    }

    /// `encode`'s reply as `serve` sends it: stamped with the version and the nonce.
    fn sent(outcome: Result<Verified, KeyFailure>, c: &[Credential]) -> Reply {
        let mut r = encode(outcome, c);
        r.abi = ABI_VERSION;
        r.nonce = NONCE;
        r
    }

    /// Every outcome survives the trip through a [`Reply`]; a rejection keeps its words.
    #[test]
    fn outcomes_round_trip() {
        let c = creds();
        let names = ["yubi", "backup"];
        let cases = vec![
            Ok(Verified {
                index: 1,
                sign_count: 9,
            }),
            Err(KeyFailure::NoKey),
            Err(KeyFailure::Remote),
            Err(KeyFailure::NoneRegistered),
            Err(KeyFailure::Timeout),
            Err(KeyFailure::NotRegistered),
            Err(KeyFailure::UnknownCredential),
            Err(KeyFailure::PinRequired),
            Err(KeyFailure::PinInvalid),
            Err(KeyFailure::PinBlocked),
            Err(KeyFailure::NoVerification),
            Err(KeyFailure::NoPin),
            Err(KeyFailure::Device("CTAP1_ERR_OTHER".to_owned())),
            Err(KeyFailure::Rejected {
                device: "backup".to_owned(),
                why: Rejection::CounterRegression { stored: 7, got: 2 },
            }),
        ];
        for case in cases {
            let reply = sent(case.clone(), &c);
            assert_eq!(
                decode(&reply, &NONCE, &names),
                Some(case.clone()),
                "{case:?}"
            );
        }
        let reply = sent(
            Err(KeyFailure::Rejected {
                device: "backup".to_owned(),
                why: Rejection::UserPresence,
            }),
            &c,
        );
        assert_eq!(
            decode(&reply, &NONCE, &names),
            Some(Err(KeyFailure::Rejected {
                device: "backup".to_owned(),
                why: Rejection::Described(Rejection::UserPresence.to_string()),
            }))
        );
    }

    /// What the caller cannot make sense of is a failure, never a success: a zeroed
    /// reply, one of another version or to another request, an unknown status, a
    /// credential out of range.
    #[test]
    fn nonsense_replies_fail() {
        let names = ["yubi"];
        let failed =
            |r: &Reply| matches!(decode(r, &NONCE, &names), Some(Err(KeyFailure::Device(_))));
        let verified = sent(
            Ok(Verified {
                index: 0,
                sign_count: 0,
            }),
            &creds(),
        );
        assert_eq!(
            decode(&verified, &NONCE, &names),
            Some(Ok(Verified {
                index: 0,
                sign_count: 0
            }))
        );
        // SAFETY: Reply is plain data; all zero bytes is a valid value of it.
        let zeroed: Reply = unsafe { std::mem::zeroed() };
        assert!(failed(&zeroed));
        let mut r = Reply { ..verified };
        r.abi = ABI_VERSION + 1;
        assert!(failed(&r));
        let mut r = Reply { ..verified };
        r.nonce[3] ^= 1;
        assert!(failed(&r));
        let mut r = Reply { ..verified };
        r.index = 1;
        assert!(failed(&r));
        let mut r = Reply { ..verified };
        r.status = 99;
        assert!(failed(&r));
        assert!(failed(&Reply::empty()));
        let mut r = Reply { ..verified };
        r.status = STATUS_DEVICE;
        r.detail_len = usize::MAX;
        assert!(failed(&r));
        // Long details are cut at a character boundary.
        let long = Reply::with(STATUS_DEVICE, 0, &"é".repeat(200));
        assert!(long.detail_len <= DETAIL_CAP && long.detail().chars().all(|c| c == 'é'));
    }

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
            credentials,
            count,
            timeout_secs: 1,
            person: std::ptr::null_mut(),
            ask_pin: Some(no_pin),
            touch_cue: Some(no_cue),
        }
    }

    /// A malformed request is refused by the library's side without touching a key.
    #[test]
    fn malformed_requests_are_refused() {
        let good = CCredential {
            name: b"k".as_ptr(),
            name_len: 1,
            id: b"id".as_ptr(),
            id_len: 2,
            cose_key: b"\xa0".as_ptr(),
            cose_key_len: 1,
            rp_id: b"r".as_ptr(),
            rp_id_len: 1,
            sign_count: 0,
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
            reply.status = STATUS_VERIFIED;
            // SAFETY: the request's pointers are null or valid for their lengths.
            unsafe { serve(&request, &mut reply) };
            assert_eq!(reply.status, STATUS_INTERNAL);
            assert_eq!(reply.detail(), "malformed request");
            assert_eq!((reply.abi, reply.nonce), (ABI_VERSION, NONCE));
        }
    }

    /// A request of another interface version or size is not answered at all: the
    /// caller's reply is left as it was, which never counts as a success.
    #[test]
    fn other_interfaces_are_not_answered() {
        let mut other_version = request(std::ptr::null(), 1);
        other_version.abi = ABI_VERSION + 1;
        let mut other_size = request(std::ptr::null(), 1);
        other_size.reply_size -= 8;
        for request in [other_version, other_size] {
            let mut reply = Reply::empty();
            // SAFETY: as above.
            unsafe { serve(&request, &mut reply) };
            assert_eq!((reply.abi, reply.status), (0, STATUS_INTERNAL));
            assert!(decode(&reply, &NONCE, &["k"]).is_some_and(|r| r.is_err()));
        }
    }

    /// A panic in the caller's PIN prompt, called from inside the library, does not
    /// unwind through the library (which would abort the host): it comes back out of
    /// `call` once the entry point has returned.
    #[test]
    fn a_panic_in_a_callback_comes_back_on_the_callers_side() {
        unsafe extern "C" fn asks_the_pin(request: *const Request, reply: *mut Reply) {
            // SAFETY: the test's own request and reply, valid for the call.
            unsafe {
                let r = &*request;
                let mut buf = [0u8; 8];
                let mut len = 0;
                let status = (r.ask_pin.unwrap())(r.person, buf.as_mut_ptr(), 8, &mut len);
                assert_eq!(status, PIN_CONVERSATION_FAILED);
                let mut answer = Reply::with(STATUS_CONVERSATION, 0, "");
                answer.abi = ABI_VERSION;
                answer.nonce = r.nonce;
                reply.write(answer);
            }
        }
        struct Panics;
        impl Person<()> for Panics {
            fn pin(&mut self) -> Result<Option<crate::Pin>, ()> {
                panic!("the prompt broke");
            }
            fn touch_cue(&mut self) {}
        }
        let c = creds();
        let caught =
            std::panic::catch_unwind(AssertUnwindSafe(|| call(asks_the_pin, &c, 1, &mut Panics)));
        let payload = caught.expect_err("the panic was lost");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"the prompt broke"));
    }
}
