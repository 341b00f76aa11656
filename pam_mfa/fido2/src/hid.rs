//! The USB HID transport, through the `ctap-hid-fido2` crate: the only transport of a
//! release build.
//!
//! The crate is configured to print nothing (no CTAP log, no keep-alive message), since
//! this code runs inside sshd, sudo and login. Its calls block until the key answers; the
//! touch timeout is enforced by a watchdog thread that sends CTAPHID_CANCEL when time is
//! up. The watchdog is a scoped thread, woken and joined before every call returns, so no
//! thread outlives a call (hidapi's hidraw backend starts none of its own). Anything the
//! crate panics on (it indexes into what the key sends) is caught here and becomes an
//! error: the key's answer is then refused, like any other malformed one.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ctap_hid_fido2::fidokey::get_info::InfoOption;
use ctap_hid_fido2::fidokey::{GetAssertionArgsBuilder, MakeCredentialArgsBuilder};
use ctap_hid_fido2::public_key_credential_user_entity::PublicKeyCredentialUserEntity;
use ctap_hid_fido2::{FidoKeyHid, FidoKeyHidFactory, LibCfg};

use super::transport::{
    GetAssertionRequest, KeyInfo, MakeCredentialRequest, RawAssertion, RawAttestation, Transport,
    TransportError,
};

pub struct HidTransport {
    cfg: LibCfg,
}

impl HidTransport {
    pub fn new() -> Self {
        let mut cfg = LibCfg::init();
        cfg.enable_log = false;
        cfg.enable_keep_alive_msg = false;
        cfg.keep_alive_msg = String::new();
        cfg.keep_alive_msg_to_stderr = true;
        Self { cfg }
    }

    fn open(&self) -> Result<FidoKeyHid, TransportError> {
        guarded(|| {
            let devices = ctap_hid_fido2::get_fidokey_devices();
            if devices.is_empty() {
                return Err(TransportError::NoKey);
            }
            // With several keys plugged in, the first one that opens is used.
            let params: Vec<_> = devices.into_iter().map(|d| d.param).collect();
            FidoKeyHidFactory::create_by_params(&params, &self.cfg)
                .map_err(|e| TransportError::Device(format!("cannot open the key: {e}")))
        })
    }
}

impl Default for HidTransport {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `f`, turning a panic inside the HID crate into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, TransportError>) -> Result<T, TransportError> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        std::mem::forget(payload);
        Err(TransportError::Device(
            "the key sent a malformed answer".to_owned(),
        ))
    })
}

/// Maps the crate's error text (it carries the CTAP status name) to what callers act on.
fn classify(e: &impl std::fmt::Display, timed_out: bool) -> TransportError {
    let text = format!("{e:#}");
    let has = |name: &str| text.contains(name);
    if timed_out || has("CTAP2_ERR_USER_ACTION_TIMEOUT") || has("CTAP2_ERR_KEEPALIVE_CANCEL") {
        TransportError::Timeout
    } else if has("CTAP2_ERR_CREDENTIAL_EXCLUDED") {
        TransportError::Excluded
    } else if has("CTAP2_ERR_NO_CREDENTIALS") {
        TransportError::NoCredentials
    } else if has("CTAP2_ERR_PIN_INVALID") {
        TransportError::PinInvalid
    } else if has("CTAP2_ERR_PIN_BLOCKED") || has("CTAP2_ERR_PIN_AUTH_BLOCKED") {
        TransportError::PinBlocked
    } else if has("CTAP2_ERR_PIN_REQUIRED") || has("CTAP2_ERR_PUAT_REQUIRED") {
        TransportError::PinRequired
    } else {
        TransportError::Device(text.chars().take(200).collect())
    }
}

/// Runs one blocking CTAP call with a deadline: a scoped watchdog thread cancels the
/// request (CTAPHID_CANCEL) if it is still running after `timeout`. The watchdog is woken
/// as soon as the call returns and is joined before this function returns.
fn with_deadline<T, E: std::fmt::Display>(
    key: &FidoKeyHid,
    timeout: Duration,
    call: impl FnOnce() -> Result<T, E>,
) -> Result<T, TransportError> {
    let timed_out = AtomicBool::new(false);
    let (done, wait) = mpsc::channel::<()>();
    let flag = &timed_out;
    let result = std::thread::scope(|s| {
        let watchdog = std::thread::Builder::new()
            .name("pam_mfa-fido2-timeout".to_owned())
            .spawn_scoped(s, move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
                    flag.store(true, Ordering::SeqCst);
                    let _ = key.cancel_selection();
                }
            });
        let result = panic::catch_unwind(AssertUnwindSafe(call));
        // Wakes the watchdog (its receiver sees the sender gone) and waits for its thread
        // to end: the scope alone waits only for its closure, not for the thread's exit.
        drop(done);
        // No watchdog thread (Err): the key's own timeout (about 30 s) still applies.
        if let Ok(watchdog) = watchdog {
            let _ = watchdog.join();
        }
        result
    });
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e, timed_out.load(Ordering::SeqCst))),
        Err(payload) => {
            std::mem::forget(payload);
            Err(TransportError::Device(
                "the key sent a malformed answer".to_owned(),
            ))
        }
    }
}

impl Transport for HidTransport {
    fn name(&self) -> &'static str {
        "usb"
    }

    fn present(&self) -> bool {
        guarded(|| Ok(!ctap_hid_fido2::get_fidokey_devices().is_empty())).unwrap_or(false)
    }

    fn info(&self) -> Result<KeyInfo, TransportError> {
        let key = self.open()?;
        guarded(|| {
            let option = |o: &InfoOption| key.enable_info_option(o).ok().flatten();
            Ok(KeyInfo {
                pin_set: option(&InfoOption::ClientPin) == Some(true),
                builtin_uv: option(&InfoOption::Uv) == Some(true),
            })
        })
    }

    fn make_credential(
        &self,
        req: &MakeCredentialRequest<'_>,
    ) -> Result<RawAttestation, TransportError> {
        let key = self.open()?;
        let user = PublicKeyCredentialUserEntity::new(
            Some(&req.user_id),
            Some(req.user_name),
            Some(req.user_name),
        );
        let mut builder =
            MakeCredentialArgsBuilder::new(req.rp_id, &req.challenge).user_entity(&user);
        builder = match req.pin {
            Some(pin) => builder.pin(pin),
            // The builder asks for built-in verification by default.
            None if req.uv => builder,
            None => builder.without_pin_and_uv(),
        };
        for id in req.exclude {
            builder = builder.exclude_authenticator(id);
        }
        let args = builder.build();
        let att = with_deadline(&key, req.timeout, || key.make_credential_with_args(&args))?;
        Ok(RawAttestation {
            fmt: att.fmt,
            auth_data: att.auth_data,
            alg: (att.attstmt_alg != 0).then_some(i64::from(att.attstmt_alg)),
            sig: att.attstmt_sig,
            x5c: att.attstmt_x5c,
        })
    }

    fn get_assertion(&self, req: &GetAssertionRequest<'_>) -> Result<RawAssertion, TransportError> {
        let key = self.open()?;
        let mut builder = GetAssertionArgsBuilder::new(req.rp_id, &req.challenge);
        builder = match req.pin {
            Some(pin) => builder.pin(pin),
            None if req.uv => builder,
            None => builder.without_pin_and_uv(),
        };
        for id in req.allow {
            builder = builder.add_credential_id(id);
        }
        let args = builder.build();
        let mut assertions =
            with_deadline(&key, req.timeout, || key.get_assertion_with_args(&args))?;
        if assertions.len() != 1 {
            return Err(TransportError::Device(format!(
                "the key sent {} assertions for one request",
                assertions.len()
            )));
        }
        let a = assertions.remove(0);
        Ok(RawAssertion {
            credential_id: (!a.credential_id.is_empty()).then_some(a.credential_id),
            auth_data: a.auth_data,
            signature: a.signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looking for a key loads libudev on demand (native/udev_lazy.c) and, on a machine
    /// with no key plugged in (or no libudev at all), finds none without failing.
    #[test]
    fn looking_for_keys_loads_libudev_on_demand() {
        let transport = HidTransport::new();
        assert!(!transport.present());
        assert!(matches!(transport.info(), Err(TransportError::NoKey)));
    }
}
