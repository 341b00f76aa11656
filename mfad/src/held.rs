//! Registration at login (`enroll_at_login`) for the PAM module, which runs as root: an
//! authenticator app registered during a login stays pending, held by the hash of a value
//! only that login knows, until the same login presents the value again from
//! `pam_sm_setcred`, so that a login that fails as a whole keeps nothing
//! ([`pam_mfa::login_hold`], one implementation with the module). [`crate::authorise`] refuses these requests to anyone but root.
//!
//! The value travels as 32 raw bytes; the library's [`LoginHold`] reads and writes it in
//! hex, so it is converted here and nowhere else.

use std::path::Path;

use pam_mfa::login_hold::{self, LoginHold};
use pam_mfa::names::DeviceName;
use pam_mfa::selfservice as rules;
use pam_mfa::store::Store;
use pam_mfa::{Error, audit, clock, enrollment};
use pam_mfa_protocol::{ErrorKind, ErrorReply, HeldTotpReply, Response, SecretBytes};
use zeroize::Zeroizing;

use crate::authorise::AtLogin;
use crate::log::Log;
use crate::selfservice::{pending_reply, refusal};
use crate::service::{open_store, unavailable};

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply::new(kind, message))
}

/// The login's value from the 32 bytes a request carries; `None` for anything else.
pub(crate) fn hold_of(bytes: &SecretBytes) -> Option<LoginHold> {
    if bytes.as_bytes().len() != 32 {
        return None;
    }
    let hex = Zeroizing::new(data_encoding::HEXLOWER.encode(bytes.as_bytes()));
    LoginHold::from_hex(hex.as_bytes())
}

/// The answer to a Confirm or Activate request whose value is not a login's.
pub(crate) fn not_a_hold() -> Response {
    error(ErrorKind::Invalid, "not a held registration's value")
}

/// The answer to a registration begun at a login, on either store: the pending device, the
/// login's value and the QR code the module shows (drawn here, so that the module links no
/// QR encoder), or the refusal when the code cannot be drawn.
pub(crate) fn held_reply(
    p: &enrollment::PendingTotp,
    issuer: String,
    hold: &LoginHold,
) -> pam_mfa::Result<Response> {
    let qr = match pam_mfa::qr::terminal(&p.uri, false) {
        Ok(text) => Zeroizing::new(text),
        Err(e) => return refusal(Error::QrCode(e.to_string())),
    };
    Ok(Response::HeldTotp(HeldTotpReply {
        pending: pending_reply(p, issuer),
        hold: bytes_of(hold)?,
        qr: SecretBytes::from_slice(qr.as_bytes()),
        secret_grouped: SecretBytes::from_slice(p.secret.to_base32_grouped().as_bytes()),
    }))
}

/// The 32 bytes of a login's value, as a reply carries them.
pub(crate) fn bytes_of(hold: &LoginHold) -> pam_mfa::Result<SecretBytes> {
    let hex = hold.to_hex();
    let bytes = Zeroizing::new(
        data_encoding::HEXLOWER
            .decode(hex.as_bytes())
            .map_err(|e| Error::Random(e.to_string()))?,
    );
    Ok(SecretBytes::from_slice(&bytes))
}

pub fn handle(
    store: &mut Option<Store>,
    db: &Path,
    uid: u32,
    work: AtLogin,
    log: &Log,
) -> Response {
    // A registration creates the store, as `mfa` does; the others find nothing.
    let creates = matches!(work, AtLogin::Begin { .. });
    match open_store(store, db, creates) {
        Ok(Some(s)) => run(s, uid, work).unwrap_or_else(|e| unavailable(log, &e)),
        Ok(None) => refusal(Error::HeldRegistrationGone).unwrap_or_else(|e| unavailable(log, &e)),
        Err(e) => unavailable(log, &e),
    }
}

fn run(store: &mut Store, uid: u32, work: AtLogin) -> pam_mfa::Result<Response> {
    let now = clock::now()?;
    match work {
        AtLogin::Begin {
            account,
            name,
            issuer,
        } => {
            let hold = LoginHold::generate()?;
            let begun = DeviceName::parse(&name).and_then(|name| {
                let issuer = match issuer {
                    Some(i) => rules::check_issuer(&i)?,
                    None => rules::default_issuer(),
                };
                let p = audit::as_actor(store, uid, |s| {
                    login_hold::begin_totp(s, &account, &name, &issuer, &hold, now)
                })?;
                Ok((p, issuer))
            });
            match begun {
                Ok((p, issuer)) => held_reply(&p, issuer, &hold),
                Err(e) => refusal(e),
            }
        }
        AtLogin::Confirm {
            account,
            name,
            hold,
            code1,
            code2,
        } => {
            let Some(hold) = hold_of(&hold) else {
                return Ok(not_a_hold());
            };
            let held = DeviceName::parse(&name).and_then(|name| {
                audit::as_actor(store, uid, |s| {
                    login_hold::hold_totp(
                        s,
                        &account,
                        &name,
                        &hold,
                        code1.as_bytes(),
                        code2.as_bytes(),
                        now,
                    )
                })
            });
            match held {
                Ok(()) => Ok(Response::Done),
                Err(e) => refusal(e),
            }
        }
        AtLogin::Activate { account, hold } => {
            let Some(hold) = hold_of(&hold) else {
                return Ok(not_a_hold());
            };
            match audit::as_actor(store, uid, |s| {
                login_hold::activate_held(s, &account, &hold, now)
            }) {
                Ok(name) => Ok(Response::Activated { name }),
                Err(e) => refusal(e),
            }
        }
    }
}
