//! The C interface between pam_mfa's PAM module and `libpam_mfa_keys.so`: the structs,
//! the caller's side ([`call`]), the reply helpers the library's side fills in, and how a
//! key that could not be used is told to the person and to the log.
//!
//! Every login loads the module afresh and most never touch a security key; the USB HID
//! stack (pam_mfa_fido2) is most of what made the module slow to load. So the
//! module does not carry it: a key login loads `libpam_mfa_keys.so` from next to the
//! module, calls its one entry point [`ENTRY_SYMBOL`] with the challenge `mfad` issued and
//! the user's credentials (ids and RP ids only: no public key, no sign count), and gets
//! back the key's raw answer — the RP id of the request it answered, the credential, the
//! authenticator data and the signature — or why the key could not be asked. The module
//! carries the answer to `mfad`, which verifies and records it. The library decides
//! nothing: a forged reply can at most be refused by the daemon.
//!
//! Only plain C data crosses: the two libraries each have their own copy of the standard
//! library and allocator, so nothing allocated on one side is freed on the other; the
//! reply holds its bytes in fixed arrays. The entry point's name carries the interface
//! version, so a library of another interface is not found; both structs start with
//! [`ABI_VERSION`] and the sizes each side expects, an answer is a status no zeroed or
//! foreign reply can hold by chance, and the reply must echo the request's fresh nonce.
//! Anything else fails closed. Neither side lets a panic unwind across the boundary: the
//! library catches its own, and the caller's callbacks catch theirs and raise them again
//! once the entry point has returned.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod panic_guard;
mod remote;

pub use remote::is_remote;

use std::any::Any;
use std::ffi::{CStr, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};

use zeroize::Zeroizing;

/// The entry point, `unsafe extern "C" fn(*const Request, *mut Reply)` ([`Entry`]).
pub const ENTRY_SYMBOL: &CStr = c"pam_mfa_keys_assert_v2";

/// The library's file name; it is installed next to the module.
pub const LIBRARY_FILE: &str = "libpam_mfa_keys.so";

pub type Entry = unsafe extern "C" fn(request: *const Request, reply: *mut Reply);

/// The version of [`Request`] and [`Reply`]: raised with any change to either (2: the
/// daemon's challenge in, the raw assertion out).
pub const ABI_VERSION: u32 = 2;

/// How long a key waits for a touch unless told otherwise.
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;
/// The longest touch timeout accepted (module argument and `mfa enroll fido2`).
pub const MAX_TIMEOUT_SECS: u32 = 120;

/// Longest PIN passed (CTAP2 allows 63 bytes; the prompt accepts up to 255).
pub const PIN_CAP: usize = 255;
/// Longest detail text in a [`Reply`].
pub const DETAIL_CAP: usize = 256;
/// The most credentials a request may carry (a user has at most 8 devices).
pub const MAX_CREDENTIALS: usize = 64;
/// Longest RP id (DNS names are at most 253 characters).
pub const RP_ID_CAP: usize = 255;
/// WebAuthn's bound on a credential id.
pub const CREDENTIAL_ID_CAP: usize = 1023;
/// Longest authenticator data taken (37 bytes plus extensions).
pub const AUTH_DATA_CAP: usize = 1024;
/// Longest signature taken (an ECDSA P-256 signature is at most 72 bytes, Ed25519 64).
pub const SIGNATURE_CAP: usize = 512;

/// A PIN as typed: wiped when dropped, never logged.
pub type Pin = Zeroizing<String>;

/// One credential, borrowed from the caller for the length of the call.
#[repr(C)]
pub struct CCredential {
    pub id: *const u8,
    pub id_len: usize,
    pub rp_id: *const u8,
    pub rp_id_len: usize,
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
    /// The daemon's challenge (the key signs over it as the client data hash).
    pub challenge: [u8; 32],
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

/// What came of a request: `status` is one of the `STATUS_*` values; for
/// [`STATUS_ANSWERED`] the key's answer is in the byte arrays.
#[repr(C)]
pub struct Reply {
    /// [`ABI_VERSION`].
    pub abi: u32,
    pub status: u32,
    /// The request's nonce.
    pub nonce: [u8; 16],
    pub rp_id_len: usize,
    pub rp_id: [u8; RP_ID_CAP],
    /// 0: the key left the credential out (allowed when the allow list had one entry).
    pub credential_id_len: usize,
    pub credential_id: [u8; CREDENTIAL_ID_CAP],
    pub auth_data_len: usize,
    pub auth_data: [u8; AUTH_DATA_CAP],
    pub signature_len: usize,
    pub signature: [u8; SIGNATURE_CAP],
    pub detail_len: usize,
    pub detail: [u8; DETAIL_CAP],
}

/// The key answered: a value that no zeroed, truncated or foreign reply holds by chance.
pub const STATUS_ANSWERED: u32 = 0x4153_5254;
/// The PIN prompt failed: the caller's own error, which it kept.
pub const STATUS_CONVERSATION: u32 = 1;
pub const STATUS_NO_KEY: u32 = 2;
pub const STATUS_NONE_REGISTERED: u32 = 4;
pub const STATUS_TIMEOUT: u32 = 5;
pub const STATUS_NOT_REGISTERED: u32 = 6;
pub const STATUS_PIN_REQUIRED: u32 = 8;
pub const STATUS_PIN_INVALID: u32 = 9;
pub const STATUS_PIN_BLOCKED: u32 = 10;
pub const STATUS_NO_VERIFICATION: u32 = 11;
pub const STATUS_NO_PIN: u32 = 12;
/// The key reported an error (`detail`).
pub const STATUS_DEVICE: u32 = 13;
/// The request was malformed or the library failed (`detail`).
pub const STATUS_INTERNAL: u32 = 16;

/// Why a key could not be asked, or could not be used here, before anything reached the
/// daemon: such failures count nothing toward the lock-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFailure {
    /// No key is plugged in.
    NoKey,
    /// The login is remote: a key on this host cannot be touched from there.
    Remote,
    /// The service requires a security key and the user has none registered.
    NoneRegistered,
    /// Not touched within the timeout.
    Timeout,
    /// The key holds none of the user's credentials (someone else's key).
    NotRegistered,
    PinRequired,
    PinInvalid,
    PinBlocked,
    /// The credential requires verification but the key has no PIN and no built-in UV.
    NoVerification,
    /// No PIN was typed at the prompt.
    NoPin,
    /// The key (or the library) reported an error.
    Device(String),
}

impl ClientFailure {
    /// The syslog wording (never a PIN); it may say more than [`Self::message`].
    pub fn log_text(&self) -> String {
        match self {
            Self::NoKey => "no security key plugged in".to_owned(),
            Self::Remote => "security key required but the login is remote (a key on this \
                             host cannot be touched from there)"
                .to_owned(),
            Self::NoneRegistered => {
                "fido2=require but the user has no security key registered".to_owned()
            }
            Self::Timeout => "security key not touched in time".to_owned(),
            Self::NotRegistered => {
                "the security key holds none of the user's credentials".to_owned()
            }
            Self::PinRequired => "the security key requires its PIN".to_owned(),
            Self::PinInvalid => "wrong security key PIN".to_owned(),
            Self::PinBlocked => "the security key's PIN is blocked".to_owned(),
            Self::NoVerification => {
                "the credential requires user verification but the key has no PIN set".to_owned()
            }
            Self::NoPin => "no security key PIN entered".to_owned(),
            Self::Device(d) => format!("security key error: {}", d.escape_debug()),
        }
    }

    /// What the person is told (`user`: the name as they typed it, for "not registered
    /// for USER").
    pub fn message(&self, user: &str) -> String {
        match self {
            Self::NoKey => {
                "No security key found. Plug in your security key and try again.".to_owned()
            }
            Self::Remote => "Security keys can only be used at this computer, not over a \
                             remote login."
                .to_owned(),
            Self::NoneRegistered => {
                format!("A security key is required here, and {user} has none registered.")
            }
            Self::Timeout => "The security key was not touched in time.".to_owned(),
            Self::NotRegistered => format!("This security key is not registered for {user}."),
            Self::PinRequired | Self::NoPin => "The security key's PIN is required.".to_owned(),
            Self::PinInvalid => "Wrong security key PIN.".to_owned(),
            Self::PinBlocked => {
                "The security key's PIN is blocked. Reset the key, or use another device."
                    .to_owned()
            }
            Self::NoVerification => {
                "This security key needs a PIN for this login, and it has none set.".to_owned()
            }
            Self::Device(_) => "The security key did not answer correctly.".to_owned(),
        }
    }

    fn status(&self) -> u32 {
        match self {
            Self::NoKey => STATUS_NO_KEY,
            // A library is never asked for a remote login; should one say so, it is an
            // internal error like any other status it has no business sending.
            Self::Remote => STATUS_INTERNAL,
            Self::NoneRegistered => STATUS_NONE_REGISTERED,
            Self::Timeout => STATUS_TIMEOUT,
            Self::NotRegistered => STATUS_NOT_REGISTERED,
            Self::PinRequired => STATUS_PIN_REQUIRED,
            Self::PinInvalid => STATUS_PIN_INVALID,
            Self::PinBlocked => STATUS_PIN_BLOCKED,
            Self::NoVerification => STATUS_NO_VERIFICATION,
            Self::NoPin => STATUS_NO_PIN,
            Self::Device(_) => STATUS_DEVICE,
        }
    }
}

/// The person at the key, reached through whatever the caller talks through.
pub trait Person<E> {
    /// The key's PIN (asked with echo off); `None` when nothing usable was typed.
    fn pin(&mut self) -> Result<Option<Pin>, E>;
    /// Tells the person to touch the key; a courtesy that cannot fail the ceremony.
    fn touch_cue(&mut self);
}

/// One credential to ask the key for (public data only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskCredential<'a> {
    pub id: &'a [u8],
    pub rp_id: &'a str,
    pub uv_required: bool,
}

/// The key's answer, as it sent it, with the RP id of the request it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub rp_id: String,
    pub credential_id: Option<Vec<u8>>,
    pub auth_data: Vec<u8>,
    pub signature: Vec<u8>,
}

/// `src` into `dst`, if it fits; its length.
fn put(dst: &mut [u8], src: &[u8]) -> Option<usize> {
    dst.get_mut(..src.len())?.copy_from_slice(src);
    Some(src.len())
}

impl Reply {
    /// A reply that counts for nothing until filled in.
    pub fn empty() -> Box<Self> {
        Box::new(Self {
            abi: 0,
            status: STATUS_INTERNAL,
            nonce: [0; 16],
            rp_id_len: 0,
            rp_id: [0; RP_ID_CAP],
            credential_id_len: 0,
            credential_id: [0; CREDENTIAL_ID_CAP],
            auth_data_len: 0,
            auth_data: [0; AUTH_DATA_CAP],
            signature_len: 0,
            signature: [0; SIGNATURE_CAP],
            detail_len: 0,
            detail: [0; DETAIL_CAP],
        })
    }

    /// Sets the status and a detail text (cut at a character boundary).
    pub fn set_status(&mut self, status: u32, detail: &str) {
        self.status = status;
        let mut end = detail.len().min(DETAIL_CAP);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        self.detail[..end].copy_from_slice(&detail.as_bytes()[..end]);
        self.detail_len = end;
    }

    /// Fills in a failure.
    pub fn set_failure(&mut self, failure: &ClientFailure) {
        match failure {
            ClientFailure::Device(d) => self.set_status(STATUS_DEVICE, d),
            ClientFailure::Remote => self.set_status(STATUS_INTERNAL, "remote"),
            other => self.set_status(other.status(), ""),
        }
    }

    /// Fills in the key's answer; an answer too large for the reply is an internal
    /// failure (no key sends one).
    pub fn set_answer(&mut self, answer: &Assertion) {
        let fitted = (|| {
            if answer.rp_id.is_empty() || answer.auth_data.is_empty() || answer.signature.is_empty()
            {
                return None;
            }
            self.rp_id_len = put(&mut self.rp_id, answer.rp_id.as_bytes())?;
            self.credential_id_len = match &answer.credential_id {
                Some(id) if !id.is_empty() => put(&mut self.credential_id, id)?,
                Some(_) => return None,
                None => 0,
            };
            self.auth_data_len = put(&mut self.auth_data, &answer.auth_data)?;
            self.signature_len = put(&mut self.signature, &answer.signature)?;
            Some(())
        })();
        match fitted {
            Some(()) => self.set_status(STATUS_ANSWERED, ""),
            None => self.set_status(STATUS_INTERNAL, "the key's answer does not fit the reply"),
        }
    }

    fn detail_text(&self) -> String {
        let len = self.detail_len.min(DETAIL_CAP);
        String::from_utf8_lossy(&self.detail[..len]).into_owned()
    }

    fn bytes(buf: &[u8], len: usize) -> Option<&[u8]> {
        buf.get(..len)
    }
}

/// The reply as the caller acts on it; `None` for [`STATUS_CONVERSATION`]. Anything the
/// caller cannot make sense of (another interface version, a nonce that is not the
/// request's, an unknown status, lengths out of range) is a failure.
pub fn decode(reply: &Reply, nonce: &[u8; 16]) -> Option<Result<Assertion, ClientFailure>> {
    let internal = |what: String| Err(ClientFailure::Device(what));
    if reply.abi != ABI_VERSION || reply.nonce != *nonce {
        return Some(internal(format!(
            "security-key library: no reply to this request (interface version {}, \
             expected {ABI_VERSION})",
            reply.abi
        )));
    }
    Some(match reply.status {
        STATUS_ANSWERED => {
            let answer = (|| {
                let rp_id = std::str::from_utf8(Reply::bytes(&reply.rp_id, reply.rp_id_len)?)
                    .ok()
                    .filter(|r| !r.is_empty())?
                    .to_owned();
                let credential_id = match reply.credential_id_len {
                    0 => None,
                    n => Some(Reply::bytes(&reply.credential_id, n)?.to_vec()),
                };
                let auth_data = Reply::bytes(&reply.auth_data, reply.auth_data_len)
                    .filter(|b| !b.is_empty())?
                    .to_vec();
                let signature = Reply::bytes(&reply.signature, reply.signature_len)
                    .filter(|b| !b.is_empty())?
                    .to_vec();
                Some(Assertion {
                    rp_id,
                    credential_id,
                    auth_data,
                    signature,
                })
            })();
            match answer {
                Some(a) => Ok(a),
                None => internal("security-key library: a malformed answer".to_owned()),
            }
        }
        STATUS_CONVERSATION => return None,
        STATUS_NO_KEY => Err(ClientFailure::NoKey),
        STATUS_NONE_REGISTERED => Err(ClientFailure::NoneRegistered),
        STATUS_TIMEOUT => Err(ClientFailure::Timeout),
        STATUS_NOT_REGISTERED => Err(ClientFailure::NotRegistered),
        STATUS_PIN_REQUIRED => Err(ClientFailure::PinRequired),
        STATUS_PIN_INVALID => Err(ClientFailure::PinInvalid),
        STATUS_PIN_BLOCKED => Err(ClientFailure::PinBlocked),
        STATUS_NO_VERIFICATION => Err(ClientFailure::NoVerification),
        STATUS_NO_PIN => Err(ClientFailure::NoPin),
        STATUS_DEVICE => Err(ClientFailure::Device(reply.detail_text())),
        STATUS_INTERNAL => internal(format!("security-key library: {}", reply.detail_text())),
        other => internal(format!("security-key library: unknown status {other}")),
    })
}

/// A struct's size as the interface carries it.
pub fn struct_size<T>() -> u32 {
    u32::try_from(std::mem::size_of::<T>()).unwrap_or(u32::MAX)
}

/// The caller's side: runs `entry` to have the key sign `challenge` for one of
/// `credentials`, the person reached through the two callbacks. The outer error is the
/// caller's own (a failed conversation).
pub fn call<E>(
    entry: Entry,
    challenge: &[u8; 32],
    credentials: &[AskCredential<'_>],
    timeout_secs: u32,
    person: &mut dyn Person<E>,
) -> Result<Result<Assertion, ClientFailure>, E> {
    if credentials.is_empty() || credentials.len() > MAX_CREDENTIALS {
        return Ok(Err(ClientFailure::NoneRegistered));
    }
    let c: Vec<CCredential> = credentials
        .iter()
        .map(|c| CCredential {
            id: c.id.as_ptr(),
            id_len: c.id.len(),
            rp_id: c.rp_id.as_ptr(),
            rp_id_len: c.rp_id.len(),
            uv_required: u8::from(c.uv_required),
        })
        .collect();
    let mut nonce = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut nonce) {
        return Ok(Err(ClientFailure::Device(format!("no random nonce: {e}"))));
    }
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
        challenge: *challenge,
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
    unsafe { entry(&request, &mut *reply) };
    if let Some(payload) = bridge.panicked.take() {
        panic::resume_unwind(payload);
    }
    match decode(&reply, &nonce) {
        Some(outcome) => Ok(outcome),
        None => match bridge.failed.take() {
            Some(e) => Err(e),
            None => Ok(Err(ClientFailure::Device(
                "security-key library: a conversation failure that did not happen".to_owned(),
            ))),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; 16] = [7; 16];

    fn stamped(mut r: Box<Reply>) -> Box<Reply> {
        r.abi = ABI_VERSION;
        r.nonce = NONCE;
        r
    }

    fn answer() -> Assertion {
        Assertion {
            rp_id: "pam://h".to_owned(),
            credential_id: Some(b"cred".to_vec()),
            auth_data: vec![1; 37],
            signature: vec![2; 70],
        }
    }

    #[test]
    fn answers_and_failures_round_trip() {
        for a in [
            answer(),
            Assertion {
                credential_id: None,
                ..answer()
            },
        ] {
            let mut r = Reply::empty();
            r.set_answer(&a);
            assert_eq!(decode(&stamped(r), &NONCE), Some(Ok(a)));
        }
        for f in [
            ClientFailure::NoKey,
            ClientFailure::NoneRegistered,
            ClientFailure::Timeout,
            ClientFailure::NotRegistered,
            ClientFailure::PinRequired,
            ClientFailure::PinInvalid,
            ClientFailure::PinBlocked,
            ClientFailure::NoVerification,
            ClientFailure::NoPin,
            ClientFailure::Device("CTAP1_ERR_OTHER".to_owned()),
        ] {
            let mut r = Reply::empty();
            r.set_failure(&f);
            assert_eq!(decode(&stamped(r), &NONCE), Some(Err(f)));
        }
    }

    #[test]
    fn nonsense_replies_fail() {
        let failed = |r: &Reply| matches!(decode(r, &NONCE), Some(Err(ClientFailure::Device(_))));
        let mut good = Reply::empty();
        good.set_answer(&answer());
        let good = stamped(good);
        assert!(decode(&good, &NONCE).is_some_and(|r| r.is_ok()));
        // SAFETY: Reply is plain data; all zero bytes is a valid value of it.
        let zeroed: Box<Reply> = unsafe { Box::new(std::mem::zeroed()) };
        assert!(failed(&zeroed));
        assert!(failed(&Reply::empty()));
        for change in [
            |r: &mut Reply| r.abi += 1,
            |r: &mut Reply| r.nonce[3] ^= 1,
            |r: &mut Reply| r.status = 99,
            |r: &mut Reply| r.auth_data_len = AUTH_DATA_CAP + 1,
            |r: &mut Reply| r.signature_len = 0,
            |r: &mut Reply| r.rp_id_len = usize::MAX,
        ] {
            let mut r = Reply::empty();
            r.set_answer(&answer());
            let mut r = stamped(r);
            change(&mut r);
            assert!(failed(&r));
        }
        let mut r = Reply::empty();
        r.set_answer(&Assertion {
            signature: vec![0; SIGNATURE_CAP + 1],
            ..answer()
        });
        assert_eq!(r.status, STATUS_INTERNAL);
    }

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
                (*reply).set_status(STATUS_CONVERSATION, "");
                (*reply).abi = ABI_VERSION;
                (*reply).nonce = r.nonce;
            }
        }
        struct Panics;
        impl Person<()> for Panics {
            fn pin(&mut self) -> Result<Option<Pin>, ()> {
                panic!("the prompt broke");
            }
            fn touch_cue(&mut self) {}
        }
        let c = [AskCredential {
            id: b"id",
            rp_id: "r",
            uv_required: true,
        }];
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            call(asks_the_pin, &[0; 32], &c, 1, &mut Panics)
        }));
        let payload = caught.expect_err("the panic was lost");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"the prompt broke"));
    }
}
