//! The one protocol spoken on `mfad`'s socket by `pam_mfa.so`, `mfa` and `mfad`.
//!
//! A message is a frame: a 4-byte big-endian length, then that many bytes of CBOR. A
//! request body is `{ version, request }`, an answer `{ version, response }`. The length is
//! checked against [`MAX_MESSAGE`] before anything is allocated, so a peer cannot make the
//! other side reserve memory by announcing a large frame.
//!
//! Compatibility: [`PROTOCOL_VERSION`] changes only when an existing message changes
//! meaning. New requests, responses and fields are added without changing it: new
//! fields carry `#[serde(default)]`, unknown fields are ignored, and a request the daemon
//! does not know is answered with [`ErrorKind::UnknownRequest`]. A request of another
//! version is answered with [`ErrorKind::Version`] naming both versions; the shape of
//! [`Response::Error`] and of the `version` field is therefore fixed for good, so that a
//! client of any version can read that answer.
//!
//! # Proofs
//! A user who already has an active device must prove one of them before adding,
//! removing or resyncing devices, unless root does it for them (ARCHITECTURE.md). The
//! daemon enforces this itself rather than trusting the client: a non-root caller first
//! sends [`Request::Reauth`] with a current code (or a recovery or bypass code), checked
//! and used up as at a login; the answer is a [`ProofReply`], a random token bound to the
//! caller's uid and that account, valid for [`PROOF_LIFETIME_SECS`] and for ONE change:
//! the daemon forgets it when a change request carries it, whether the change then works
//! or not. `BeginTotp`, `Rename`, `Remove`, `Resync` and `RecoveryGenerate` carry it in
//! their `proof` field; without a valid one they are refused with [`ErrorKind::Denied`]
//! when the caller is not root and the account has an active device.
//! `FinishTotp` needs none (beginning needed one). Whether a proof is needed can be told
//! beforehand from [`Request::BeforePrompt`]: [`AccountState::NoDevice`] means none.
//! Proofs live in the daemon's memory only: a restarted daemon asks again.
//!
//! # Recovery codes
//! A new set takes effect only once the person has it: the codes
//! come back in a [`RecoveryCodesReply`] and are held, not stored, in the daemon's memory
//! under a random single-use ticket for [`PROOF_LIFETIME_SECS`], bound to the caller's uid
//! and the account. Only [`Request::RecoveryCommit`] with that ticket, sent by the client
//! after it has written the codes out and flushed them, replaces the earlier set. If the
//! client fails to print them, it simply does not commit, and the earlier codes keep
//! working.
//!
//! # Administration
//! `PolicyShow`, `PolicySet`, `AdminList`, `Audit`, `AuditPrune`, `Bypass`, `Unlock` and
//! `AdminRemove` are `mfa admin`'s requests: the daemon serves them to root callers only
//! (anyone else gets [`ErrorKind::Denied`], and a line in its log), and records their
//! changes in the audit trail as the caller's uid. A bypass code travels once, in
//! [`BypassReply`].
//!
//! # Security keys
//! The daemon issues every challenge and checks every answer; the client only carries
//! them to and from the key (the PAM module through `libpam_mfa_keys.so`, `mfa` from the
//! user's own process, where udev gives the seated user access to the key). A login or a
//! proof by touch is [`Request::KeyChallenge`] then [`Request::KeyAnswer`]; registering a
//! key is [`Request::BeginFido2`] then [`Request::FinishFido2`]. Each challenge lives in
//! the daemon's memory under a random single-use ticket bound to the caller's uid and the
//! account, for [`KEY_CHALLENGE_LIFETIME_SECS`]. A key that is missing, not touched or
//! refuses its PIN never reaches the daemon: such failures count nothing.
//!
//! # Registration at login
//! `BeginHeld`, `ConfirmHeld` and `ActivateHeld` carry the module's `enroll_at_login`
//! (only safe behind a first factor that ends the stack): the registration stays pending, held by the hash of a value only
//! that login knows, and becomes active only from `pam_sm_setcred`.
//!
//! This crate is deliberately small and depends on neither the store nor the PAM layer,
//! so that the module, `mfa` and `mfad` can all link it.

mod frame;
mod message;
mod peer;
mod secret;

pub use frame::{
    FrameError, MAX_MESSAGE, MAX_ROOT_MESSAGE, read_frame, read_frame_limited, write_frame,
};
pub use message::{
    AccountEntry, AccountState, AfterCode, AuditEntry, BeforePromptReply, BypassEntry, BypassReply,
    CodeKind, CodeUsed, Decision, DecodeError, DeviceEntry, ErrorKind, ErrorReply,
    Fido2ChallengeReply, Fido2Reply, HeldTotpReply, KeyAssertion, KeyAttestation,
    KeyChallengeReply, KeyCredential, KeyPurpose, KeyRefusal, KeyRule, LineRules, LoginContext,
    NextStep, NoDeviceRule, Notice, Overrides, PROTOCOL_VERSION, PendingTotpReply, PolicyReply,
    ProofReply, RecoveryCodesReply, RecoveryOutcome, RefusalKind, RememberedEntry, Request,
    RequestMessage, Response, ResponseMessage, ResyncReply, TokenEntry, TokenReply,
    TokensImportedReply, VerifyOutcome, decode_request, decode_response, encode_request,
    encode_response, read_request, read_response, write_request, write_response,
};
/// A moment as Unix time: whole seconds since 1970-01-01 00:00 UTC (the store's, the
/// daemon's and every message's clock). A name for readers, not a new type: the values
/// go to SQLite and CBOR as plain integers.
pub type UnixTime = i64;

pub use peer::{peer_uid, require_root_daemon};
pub use secret::{PublicBytes, SecretBytes};

/// How long a proof (and a recovery-code ticket) stays valid, in seconds.
pub const PROOF_LIFETIME_SECS: i64 = 300;

/// How long a security key's challenge (login, proof or registration) stays valid, in
/// seconds: the longest touch timeout a module line may set, and a little more.
pub const KEY_CHALLENGE_LIFETIME_SECS: i64 = 180;

/// Where `mfad` listens unless told otherwise: its `--socket`, the module's `socket=`,
/// `mfa --socket` and systemd's `mfad.socket` all default to it.
pub const DEFAULT_SOCKET: &str = "/run/pam_mfa/mfad.sock";

/// The device store `mfad` serves unless told otherwise (`mfad --db`); the module's
/// obsolete `db=` is accepted only when it names this one.
pub const DEFAULT_STORE: &str = "/var/lib/pam_mfa/devices.db";

/// The ranges of [`Overrides`]: what a module line may set and the daemon accepts.
pub mod limits {
    /// Steps either side of the expected one (`window=`): ±10 steps is ±5 minutes,
    /// already generous.
    pub const MAX_WINDOW: u32 = 10;
    /// Codes ahead an event-based token may be (`hotp_window=`). Every value looked
    /// ahead is one more code a guess can hit; beyond a hundred presses without a login,
    /// `mfa resync` is the way back.
    pub const MAX_HOTP_WINDOW: u32 = 100;
    /// `max_failures=`, from 1.
    pub const MAX_MAX_FAILURES: u32 = 1000;
    /// `lockout=`, from 1 second to a week.
    pub const MAX_LOCKOUT_SECS: i64 = 7 * 86_400;
}

/// A unix time in the local time zone, for people ("2026-11-23 04:35:10 UTC"): lock-out
/// messages and log lines of the module and the daemon. The C library's `localtime_r`
/// honours `TZ` and `/etc/localtime` as every other tool on the host does; a time it
/// cannot convert is shown as seconds since the epoch.
pub fn format_local(unix: UnixTime) -> String {
    let t: libc::time_t = unix;
    // SAFETY: `tm` is plain old data; an all-zero value is a valid (if meaningless) tm
    // that localtime_r overwrites completely on success.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is the
    // reentrant variant and keeps no reference to them.
    let converted = unsafe { libc::localtime_r(&t, &mut tm) };
    if converted.is_null() {
        return format!("@{unix}");
    }
    let mut buf = [0u8; 64];
    let fmt = c"%Y-%m-%d %H:%M:%S %Z";
    // SAFETY: `buf` is writable for its full length, which is what we pass; `fmt` is a
    // NUL-terminated literal; `tm` was filled in by localtime_r above.
    let len = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    match buf.get(..len).map(std::str::from_utf8) {
        Some(Ok(s)) if len > 0 => s.to_owned(),
        _ => format!("@{unix}"),
    }
}

/// A user or host name as raw bytes, made safe for one log line: printable ASCII kept,
/// everything else (and the backslash) as `\xNN`, at most 64 bytes shown. Here because
/// the module, which links only this crate, and the daemon write the same log lines.
pub fn escape_for_log(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(64) {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > 64 {
        out.push_str("...");
    }
    out
}
