//! A software FIDO2 authenticator for tests (cargo feature `soft-fido2`, debug builds only).
//!
//! It makes real P-256 (ES256) and Ed25519 (EdDSA) key pairs, real CTAP2
//! authenticatorData with attested credential data and COSE keys, "packed"
//! self-attestation and assertion signatures, and counts signatures like a real key, so
//! the relying-party checks in [`super::verify`] run exactly as they do against a USB key.
//! Its state lives in the JSON file named by `PAM_MFA_SOFT_FIDO2`, which tests edit to make
//! it misbehave:
//!
//! ```json
//! {
//!   "pin": "1234",                 // optional: a PIN is set
//!   "pin_retries": 8,
//!   "builtin_uv": false,           // verifies its user itself (like a fingerprint key)
//!   "algorithm": "es256",          // or "eddsa": for new credentials
//!   "attestation": "self",         // or "none"
//!   "counter": 0,                  // the signature counter
//!   "knobs": {
//!     "absent": false,             // not plugged in
//!     "never_touched": false,      // waits for the whole timeout, then times out
//!     "tamper_signature": false,   // signs other bytes than it sends
//!     "wrong_rp_id_hash": false,   // rpIdHash of another RP id
//!     "clear_up": false,           // user-present flag not set
//!     "omit_uv": false,            // UV flag not set even after a right PIN
//!     "counter_backwards": false,  // reports a counter below the last one (a clone)
//!     "ignore_allow_list": false   // answers with any credential it holds
//!   },
//!   "credentials": [{"id": "hex", "rp_id": "...", "alg": "es256", "private_key": "hex"}]
//! }
//! ```
//! A missing file is a fresh key with no PIN and no credentials.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use data_encoding::HEXLOWER;
use p256::ecdsa::signature::Signer as _;
use serde_json::{Map, Value, json};

use super::auth_data::{FLAG_AT, FLAG_UP, FLAG_UV, build};
use super::cose::{ALG_EDDSA, ALG_ES256, CoseKey};
use super::transport::{
    GetAssertionRequest, KeyInfo, MakeCredentialRequest, RawAssertion, RawAttestation, Transport,
    TransportError,
};
use super::verify::{client_data_hash, rp_id_hash};

const PIN_RETRIES: u64 = 8;

pub struct SoftAuthenticator {
    path: PathBuf,
}

enum Private {
    P256(p256::ecdsa::SigningKey),
    Ed(ed25519_dalek::SigningKey),
}

impl Private {
    fn generate(alg: &str) -> Result<Self, TransportError> {
        for _ in 0..16 {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut *seed).map_err(|e| device(&e.to_string()))?;
            match alg {
                "eddsa" => return Ok(Self::Ed(ed25519_dalek::SigningKey::from_bytes(&seed))),
                _ => {
                    if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&*seed) {
                        return Ok(Self::P256(k));
                    }
                }
            }
        }
        Err(device("cannot make a key"))
    }

    fn load(alg: &str, hex: &str) -> Result<Self, TransportError> {
        let bytes = zeroize::Zeroizing::new(
            HEXLOWER
                .decode(hex.as_bytes())
                .map_err(|_| device("bad private key in state"))?,
        );
        match alg {
            "eddsa" => {
                let b: &[u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| device("bad private key in state"))?;
                Ok(Self::Ed(ed25519_dalek::SigningKey::from_bytes(b)))
            }
            _ => p256::ecdsa::SigningKey::from_slice(&bytes)
                .map(Self::P256)
                .map_err(|_| device("bad private key in state")),
        }
    }

    fn alg_name(&self) -> &'static str {
        match self {
            Self::P256(_) => "es256",
            Self::Ed(_) => "eddsa",
        }
    }

    fn alg(&self) -> i64 {
        match self {
            Self::P256(_) => ALG_ES256,
            Self::Ed(_) => ALG_EDDSA,
        }
    }

    fn secret_hex(&self) -> String {
        match self {
            Self::P256(k) => HEXLOWER.encode(&k.to_bytes()),
            Self::Ed(k) => HEXLOWER.encode(&k.to_bytes()),
        }
    }

    fn cose(&self) -> Vec<u8> {
        match self {
            Self::P256(k) => CoseKey::Es256(*k.verifying_key()).to_cose(),
            Self::Ed(k) => CoseKey::EdDsa(k.verifying_key()).to_cose(),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            Self::Ed(k) => k.sign(message).to_bytes().to_vec(),
        }
    }
}

fn device(what: &str) -> TransportError {
    TransportError::Device(format!("software authenticator: {what}"))
}

/// The state file, as JSON.
struct State(Map<String, Value>);

impl State {
    fn knob(&self, name: &str) -> bool {
        self.0
            .get("knobs")
            .and_then(|k| k.get(name))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    fn u64(&self, name: &str) -> Option<u64> {
        self.0.get(name).and_then(Value::as_u64)
    }

    fn credentials(&self) -> Vec<(Vec<u8>, String, String, String)> {
        let Some(Value::Array(list)) = self.0.get("credentials") else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|c| {
                let id = HEXLOWER.decode(c.get("id")?.as_str()?.as_bytes()).ok()?;
                Some((
                    id,
                    c.get("rp_id")?.as_str()?.to_owned(),
                    c.get("alg")?.as_str()?.to_owned(),
                    c.get("private_key")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    /// Bumps and returns the signature counter.
    fn next_counter(&mut self) -> u32 {
        let next = self.u64("counter").unwrap_or(0).saturating_add(1);
        self.0.insert("counter".into(), json!(next));
        u32::try_from(next).unwrap_or(u32::MAX)
    }
}

/// Whether PIN or built-in verification happened, or why not.
fn user_verification(
    state: &mut State,
    pin: Option<&str>,
    uv: bool,
) -> Result<bool, TransportError> {
    if let Some(given) = pin {
        let Some(set) = state.str("pin").map(str::to_owned) else {
            return Err(device("no PIN is set (CTAP2_ERR_PIN_NOT_SET)"));
        };
        let retries = state.u64("pin_retries").unwrap_or(PIN_RETRIES);
        if retries == 0 {
            return Err(TransportError::PinBlocked);
        }
        if given != set {
            state
                .0
                .insert("pin_retries".into(), json!(retries.saturating_sub(1)));
            return Err(TransportError::PinInvalid);
        }
        state.0.insert("pin_retries".into(), json!(PIN_RETRIES));
        return Ok(true);
    }
    if uv {
        if state.0.get("builtin_uv").and_then(Value::as_bool) == Some(true) {
            return Ok(true);
        }
        return Err(device(
            "no built-in user verification (CTAP2_ERR_UNSUPPORTED_OPTION)",
        ));
    }
    Ok(false)
}

impl SoftAuthenticator {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn load(&self) -> Result<State, TransportError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(State(map)),
                _ => Err(device("state file is not a JSON object")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State(Map::new())),
            Err(e) => Err(device(&format!("cannot read state: {e}"))),
        }
    }

    fn save(&self, state: &State) -> Result<(), TransportError> {
        let text = serde_json::to_vec_pretty(&Value::Object(state.0.clone()))
            .map_err(|e| device(&e.to_string()))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| device(&format!("cannot save state: {e}")))
    }

    /// The common start of both ceremonies: plugged in, and touched in time.
    fn touch(&self, state: &State, timeout: std::time::Duration) -> Result<(), TransportError> {
        if state.knob("absent") {
            return Err(TransportError::NoKey);
        }
        if state.knob("never_touched") {
            std::thread::sleep(timeout);
            return Err(TransportError::Timeout);
        }
        Ok(())
    }

    fn flags(state: &State, verified: bool) -> u8 {
        let mut flags = 0;
        if !state.knob("clear_up") {
            flags |= FLAG_UP;
        }
        if verified && !state.knob("omit_uv") {
            flags |= FLAG_UV;
        }
        flags
    }

    fn rp_hash(state: &State, rp_id: &str) -> [u8; 32] {
        if state.knob("wrong_rp_id_hash") {
            rp_id_hash("evil.example")
        } else {
            rp_id_hash(rp_id)
        }
    }

    fn signature(state: &State, key: &Private, auth_data: &[u8], challenge: &[u8; 32]) -> Vec<u8> {
        let mut message = auth_data.to_vec();
        message.extend_from_slice(&client_data_hash(challenge));
        if state.knob("tamper_signature")
            && let Some(last) = message.last_mut()
        {
            *last ^= 1;
        }
        key.sign(&message)
    }
}

impl Transport for SoftAuthenticator {
    fn name(&self) -> &'static str {
        "soft"
    }

    fn present(&self) -> bool {
        self.load().is_ok_and(|s| !s.knob("absent"))
    }

    fn info(&self) -> Result<KeyInfo, TransportError> {
        let state = self.load()?;
        if state.knob("absent") {
            return Err(TransportError::NoKey);
        }
        Ok(KeyInfo {
            pin_set: state.str("pin").is_some(),
            builtin_uv: state.0.get("builtin_uv").and_then(Value::as_bool) == Some(true),
        })
    }

    fn make_credential(
        &self,
        req: &MakeCredentialRequest<'_>,
    ) -> Result<RawAttestation, TransportError> {
        let mut state = self.load()?;
        if state.knob("absent") {
            return Err(TransportError::NoKey);
        }
        if state.str("pin").is_some() && req.pin.is_none() && !req.uv {
            return Err(TransportError::PinRequired);
        }
        let verified = user_verification(&mut state, req.pin, req.uv);
        // A wrong PIN is counted even though the request fails.
        self.save(&state)?;
        let verified = verified?;
        if state
            .credentials()
            .iter()
            .any(|(id, rp, _, _)| rp == req.rp_id && req.exclude.contains(id))
        {
            self.touch(&state, req.timeout)?;
            return Err(TransportError::Excluded);
        }
        self.touch(&state, req.timeout)?;

        let alg = state.str("algorithm").unwrap_or("es256").to_owned();
        let key = Private::generate(&alg)?;
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).map_err(|e| device(&e.to_string()))?;
        let counter = state.next_counter();
        let cose = key.cose();
        let auth_data = build(
            &Self::rp_hash(&state, req.rp_id),
            Self::flags(&state, verified) | FLAG_AT,
            counter,
            Some((&[0x50; 16], &id, &cose)),
        );
        let attestation = if state.str("attestation") == Some("none") {
            RawAttestation {
                fmt: "none".to_owned(),
                auth_data,
                ..RawAttestation::default()
            }
        } else {
            RawAttestation {
                fmt: "packed".to_owned(),
                sig: Self::signature(&state, &key, &auth_data, &req.challenge),
                alg: Some(key.alg()),
                auth_data,
                x5c: Vec::new(),
            }
        };
        let entry = json!({
            "id": HEXLOWER.encode(&id),
            "rp_id": req.rp_id,
            "alg": key.alg_name(),
            "private_key": key.secret_hex(),
        });
        match state.0.get_mut("credentials") {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                state
                    .0
                    .insert("credentials".into(), Value::Array(vec![entry]));
            }
        }
        self.save(&state)?;
        Ok(attestation)
    }

    fn get_assertion(&self, req: &GetAssertionRequest<'_>) -> Result<RawAssertion, TransportError> {
        let mut state = self.load()?;
        if state.knob("absent") {
            return Err(TransportError::NoKey);
        }
        let verified = user_verification(&mut state, req.pin, req.uv);
        self.save(&state)?;
        let verified = verified?;
        let credentials = state.credentials();
        let chosen = credentials
            .iter()
            .find(|(id, rp, _, _)| rp == req.rp_id && req.allow.contains(id))
            .or_else(|| {
                state
                    .knob("ignore_allow_list")
                    .then(|| credentials.first())
                    .flatten()
            });
        self.touch(&state, req.timeout)?;
        let Some((id, _, alg, secret)) = chosen else {
            return Err(TransportError::NoCredentials);
        };
        let key = Private::load(alg, secret)?;
        let counter = if state.knob("counter_backwards") {
            u32::try_from(state.u64("counter").unwrap_or(0).saturating_sub(1)).unwrap_or(0)
        } else {
            state.next_counter()
        };
        let auth_data = build(
            &Self::rp_hash(&state, req.rp_id),
            Self::flags(&state, verified),
            counter,
            None,
        );
        let signature = Self::signature(&state, &key, &auth_data, &req.challenge);
        self.save(&state)?;
        Ok(RawAssertion {
            credential_id: Some(id.clone()),
            auth_data,
            signature,
        })
    }
}
