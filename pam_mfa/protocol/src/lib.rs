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
//! This crate is deliberately small and depends on neither the store nor the PAM layer,
//! so that the module, `mfa` and `mfad` can all link it.

mod frame;
mod message;
mod secret;

pub use frame::{FrameError, MAX_MESSAGE, read_frame, write_frame};
pub use message::{
    AccountState, BeforePromptReply, CodeKind, DecodeError, DeviceEntry, ErrorKind, ErrorReply,
    Overrides, PROTOCOL_VERSION, RecoveryOutcome, RefusalKind, Request, RequestMessage, Response,
    ResponseMessage, VerifyOutcome, decode_request, decode_response, encode_request,
    encode_response, read_request, read_response, write_request, write_response,
};
pub use secret::SecretBytes;
