//! [`Fleet`]: mfad's handle on the fleet database, one typed method per host function of
//! `sql/fleet.sql`.
//!
//! The client owns a current-thread tokio runtime and blocks on it, so mfad stays
//! synchronous; every call is bounded by `connect_timeout + query_timeout` at most (the
//! connect only when there is no live connection), so a stalled or unreachable server
//! costs a login a few seconds and an `Unavailable`, never a hang.
//!
//! A connection found closed at the start of a call is replaced within that call. A call
//! whose connection is lost or times out after it was sent is not sent again (the server
//! may have run it: a code counted twice, a registration begun twice), except for the
//! calls that only read; the next call connects anew.

use std::time::Duration;

use pam_mfa::fido2::ceremony::Credential;
use pam_mfa::otp::{Algorithm, PairError};
use pam_mfa::policy::{NoDevice, SelfService};
use pam_mfa::recovery::{Kind as RecoveryKind, Used};
use pam_mfa::store::devices::{DeviceKind, DeviceState};
use tokio::runtime::Runtime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use zeroize::Zeroizing;

use crate::config::FleetConfig;
use crate::connect::{self, Conn};
use crate::error::{FleetError, Result};

/// `login_state(p_user)`: what a login needs to know before asking anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    /// Active TOTP and HOTP devices.
    pub code_devices: u32,
    /// Active FIDO2 security keys.
    pub keys: u32,
    /// The end of the lock-out (unix seconds, the server's clock) if locked now.
    pub locked_until: Option<i64>,
    pub no_device: NoDevice,
    /// The server's clock, the fleet's one time.
    pub now: i64,
}

/// `check_code(...)`: one row, the same outcomes as the local store's login check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    /// The code matched `device`; its step or counter is recorded, failures cleared.
    Accepted { device: String },
    /// Matched no device; counted. `locked_until` is set if this failure locked the user.
    Wrong { locked_until: Option<i64> },
    /// A code already used on `device` (on any host); counted.
    Replayed {
        device: String,
        locked_until: Option<i64>,
    },
    /// Not 6-8 digits; counted.
    Malformed { locked_until: Option<i64> },
    /// Locked until `until`; the code was not looked at.
    Locked { until: i64 },
    /// No active code device; nothing counted.
    NoDevices,
}

/// `finish_totp(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishOutcome {
    Activated,
    /// Not two consecutive codes near now, and which code gave the person away.
    Wrong(PairError),
    /// Two consecutive codes of a time this many seconds from the database's clock (within
    /// the resync range): the phone's clock is off.
    ClockSkew {
        secs: i64,
    },
    AlreadyActive,
    /// No such pending device, or it expired.
    NoSuchDevice,
}

/// `resync(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncOutcome {
    /// A time-based device's clock offset, in seconds (positive: it runs ahead).
    Clock {
        drift_secs: i64,
    },
    /// How many codes an event-based token had made without being used.
    Counter {
        skipped: i64,
    },
    /// A time-based device's codes were not found within the resync range.
    NotFound,
    /// A token's codes were not found within the look-ahead.
    CounterNotFound,
    /// A token's two codes are both ahead, but not one after the other.
    NotConsecutive,
    /// The codes are not newer than the last one accepted.
    AlreadyUsed,
    NoSuchDevice,
    /// Still pending: finish its registration first.
    NotActive,
    /// A security key, which has no codes.
    NotTotp,
}

/// `rename_device(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameOutcome {
    Renamed,
    NoSuchDevice,
    NameTaken,
}

/// `record_key_login(...)`: what became of a security-key login this host verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLogin {
    /// Recorded: the key's new count and last use are stored.
    Accepted { device: String },
    /// The key's count did not grow past `stored` (a cloned key, or a replayed answer):
    /// refused, nothing stored.
    CounterRegression { device: String, stored: u32 },
    /// The credential is no longer one of the user's active keys.
    UnknownCredential,
}

/// One row of `list_devices(p_user)`: never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetDevice {
    pub name: String,
    pub kind: DeviceKind,
    pub state: DeviceState,
    pub created: i64,
    pub last_used: Option<i64>,
    /// When a pending registration expires.
    pub expires: Option<i64>,
}

/// `policy()`. As in `pam_mfa::policy::Policy`, `None` for a number means "the built-in
/// default" (the row holds NULL), so mfad applies the same defaults to both stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetPolicy {
    pub self_service: SelfService,
    pub max_devices: u32,
    pub no_device: NoDevice,
    pub max_failures: Option<u32>,
    pub lockout_seconds: Option<u32>,
    pub window: Option<u32>,
}

/// What a PAM line's arguments set for one code check (settings.rs's overrides): each
/// `None` is the fleet policy's value, or the default when the policy has none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckSettings {
    pub window: Option<u32>,
    pub hotp_window: Option<u32>,
    pub max_failures: Option<u32>,
    pub lockout_secs: Option<i64>,
}

/// The host's handle on the fleet database. Connects lazily, at the first call.
pub struct Fleet {
    config: FleetConfig,
    runtime: Option<Runtime>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("config", &self.config)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

/// Whether a call may be sent again after its connection was lost: only those that
/// change nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ReadOnly,
    Changes,
}

impl Fleet {
    pub fn new(config: FleetConfig) -> Fleet {
        Fleet {
            config,
            runtime: None,
            conn: None,
        }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// Connects now if not connected (mfad's start-up check and `mfa doctor`).
    pub fn ping(&mut self) -> Result<()> {
        self.call("ping", "SELECT 1", &[], Kind::ReadOnly, |_| Ok(()))
    }

    pub fn login_state(&mut self, user: &str) -> Result<LoginState> {
        self.call(
            "login_state",
            "SELECT code_devices, keys, locked_until, no_device, now \
             FROM pam_mfa_fleet.login_state($1)",
            &[&user],
            Kind::ReadOnly,
            |rows| {
                let row = one_row("login_state", rows)?;
                Ok(LoginState {
                    code_devices: count(&row, 0)?,
                    keys: count(&row, 1)?,
                    locked_until: get(&row, 2)?,
                    no_device: no_device(&get::<String>(&row, 3)?)?,
                    now: get(&row, 4)?,
                })
            },
        )
    }

    /// `code` is sent as given ('' when mfad's own parser refused the answer: still
    /// counted); `settings` are the module's arguments, each overriding the fleet's policy.
    pub fn check_code(
        &mut self,
        user: &str,
        actor: u32,
        code: &str,
        settings: &CheckSettings,
    ) -> Result<CodeOutcome> {
        let actor = int(actor, "actor")?;
        let window = settings.window.map(|w| int(w, "window")).transpose()?;
        let hotp_window = settings
            .hotp_window
            .map(|w| int(w, "hotp_window"))
            .transpose()?;
        let max_failures = settings
            .max_failures
            .map(|n| int(n, "max_failures"))
            .transpose()?;
        let lockout_secs = settings.lockout_secs;
        self.call(
            "check_code",
            "SELECT outcome, device, locked_until \
             FROM pam_mfa_fleet.check_code($1, $2, $3, $4, $5, $6, $7)",
            &[
                &user,
                &actor,
                &code,
                &window,
                &hotp_window,
                &max_failures,
                &lockout_secs,
            ],
            Kind::Changes,
            |rows| {
                let row = one_row("check_code", rows)?;
                let outcome: String = get(&row, 0)?;
                let device: Option<String> = get(&row, 1)?;
                let locked_until: Option<i64> = get(&row, 2)?;
                let named = |device: Option<String>| {
                    device.ok_or_else(|| {
                        FleetError::Database(format!("check_code: {outcome} without a device"))
                    })
                };
                Ok(match outcome.as_str() {
                    "accepted" => CodeOutcome::Accepted {
                        device: named(device)?,
                    },
                    "wrong" => CodeOutcome::Wrong { locked_until },
                    "replayed" => CodeOutcome::Replayed {
                        device: named(device)?,
                        locked_until,
                    },
                    "malformed" => CodeOutcome::Malformed { locked_until },
                    "locked" => CodeOutcome::Locked {
                        until: locked_until.ok_or_else(|| {
                            FleetError::Database("check_code: locked without an end".into())
                        })?,
                    },
                    "no_devices" => CodeOutcome::NoDevices,
                    other => return Err(unknown("check_code", other)),
                })
            },
        )
    }

    /// Creates the pending device and returns its secret, once (the database keeps it;
    /// this host only shows it to the person registering).
    pub fn begin_totp(
        &mut self,
        user: &str,
        actor: u32,
        name: &str,
        algorithm: Algorithm,
        digits: u32,
        period: u32,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let actor = int(actor, "actor")?;
        let digits = int(digits, "digits")?;
        let period = int(period, "period")?;
        self.call(
            "begin_totp",
            "SELECT pam_mfa_fleet.begin_totp($1, $2, $3, $4, $5, $6)",
            &[&user, &actor, &name, &algorithm.as_str(), &digits, &period],
            Kind::Changes,
            |rows| new_secret("begin_totp", rows),
        )
    }

    pub fn finish_totp(
        &mut self,
        user: &str,
        actor: u32,
        name: &str,
        code1: &str,
        code2: &str,
    ) -> Result<FinishOutcome> {
        let actor = int(actor, "actor")?;
        let text = self.text_call(
            "finish_totp",
            "SELECT pam_mfa_fleet.finish_totp($1, $2, $3, $4, $5)",
            &[&user, &actor, &name, &code1, &code2],
        )?;
        finish_outcome("finish_totp", &text)
    }

    pub fn resync(
        &mut self,
        user: &str,
        actor: u32,
        name: &str,
        code1: &str,
        code2: &str,
    ) -> Result<ResyncOutcome> {
        let actor = int(actor, "actor")?;
        let text = self.text_call(
            "resync",
            "SELECT pam_mfa_fleet.resync($1, $2, $3, $4, $5)",
            &[&user, &actor, &name, &code1, &code2],
        )?;
        let number = |n: &str| {
            n.parse::<i64>()
                .map_err(|_| unknown("resync", text.as_str()))
        };
        Ok(match text.split_once(' ') {
            Some(("resynced", rest)) => match rest.split_once(' ') {
                Some(("clock", n)) => ResyncOutcome::Clock {
                    drift_secs: number(n)?,
                },
                Some(("counter", n)) => ResyncOutcome::Counter {
                    skipped: number(n)?,
                },
                _ => return Err(unknown("resync", &text)),
            },
            _ => match text.as_str() {
                "not_found" => ResyncOutcome::NotFound,
                "counter_not_found" => ResyncOutcome::CounterNotFound,
                "not_consecutive" => ResyncOutcome::NotConsecutive,
                "already_used" => ResyncOutcome::AlreadyUsed,
                "no_such_device" => ResyncOutcome::NoSuchDevice,
                "not_active" => ResyncOutcome::NotActive,
                "not_totp" => ResyncOutcome::NotTotp,
                other => return Err(unknown("resync", other)),
            },
        })
    }

    pub fn list_devices(&mut self, user: &str) -> Result<Vec<FleetDevice>> {
        self.call(
            "list_devices",
            "SELECT name, kind, state, created, last_used, expires \
             FROM pam_mfa_fleet.list_devices($1)",
            &[&user],
            Kind::ReadOnly,
            |rows| {
                rows.iter()
                    .map(|row| {
                        let kind: String = get(row, 1)?;
                        let state: String = get(row, 2)?;
                        Ok(FleetDevice {
                            name: get(row, 0)?,
                            kind: [DeviceKind::Totp, DeviceKind::Fido2, DeviceKind::Token]
                                .into_iter()
                                .find(|k| k.as_str() == kind)
                                .ok_or_else(|| unknown("list_devices kind", &kind))?,
                            state: [DeviceState::Pending, DeviceState::Active]
                                .into_iter()
                                .find(|s| s.as_str() == state)
                                .ok_or_else(|| unknown("list_devices state", &state))?,
                            created: get(row, 3)?,
                            last_used: get(row, 4)?,
                            expires: get(row, 5)?,
                        })
                    })
                    .collect()
            },
        )
    }

    /// `Ok(false)`: the user has no device by that name.
    pub fn remove_device(&mut self, user: &str, actor: u32, name: &str) -> Result<bool> {
        let actor = int(actor, "actor")?;
        self.call(
            "remove_device",
            "SELECT pam_mfa_fleet.remove_device($1, $2, $3)",
            &[&user, &actor, &name],
            Kind::Changes,
            |rows| get(&one_row("remove_device", rows)?, 0),
        )
    }

    pub fn rename_device(
        &mut self,
        user: &str,
        actor: u32,
        old: &str,
        new: &str,
    ) -> Result<RenameOutcome> {
        let actor = int(actor, "actor")?;
        let text = self.text_call(
            "rename_device",
            "SELECT pam_mfa_fleet.rename_device($1, $2, $3, $4)",
            &[&user, &actor, &old, &new],
        )?;
        Ok(match text.as_str() {
            "renamed" => RenameOutcome::Renamed,
            "no_such_device" => RenameOutcome::NoSuchDevice,
            "name_taken" => RenameOutcome::NameTaken,
            other => return Err(unknown("rename_device", other)),
        })
    }

    pub fn policy(&mut self) -> Result<FleetPolicy> {
        self.call(
            "policy",
            "SELECT self_service, max_devices, no_device, max_failures, lockout_seconds, \"window\" \
             FROM pam_mfa_fleet.policy()",
            &[],
            Kind::ReadOnly,
            |rows| {
                let row = one_row("policy", rows)?;
                let self_service: String = get(&row, 0)?;
                Ok(FleetPolicy {
                    self_service: [SelfService::Allow, SelfService::Deny]
                        .into_iter()
                        .find(|s| s.as_str() == self_service)
                        .ok_or_else(|| unknown("policy self_service", &self_service))?,
                    max_devices: count(&row, 1)?,
                    no_device: no_device(&get::<String>(&row, 2)?)?,
                    max_failures: optional_count(&row, 3)?,
                    lockout_seconds: optional_count(&row, 4)?,
                    window: optional_count(&row, 5)?,
                })
            },
        )
    }

    /// Clears the failures and any lock-out; `Ok(true)` if the user was locked out.
    pub fn unlock(&mut self, user: &str, actor: u32) -> Result<bool> {
        let actor = int(actor, "actor")?;
        self.call(
            "unlock",
            "SELECT pam_mfa_fleet.unlock($1, $2)",
            &[&user, &actor],
            Kind::Changes,
            |rows| get(&one_row("unlock", rows)?, 0),
        )
    }

    /// A recovery or bypass code (canonical, from `recovery::normalize`) checked and, if
    /// it is one of the user's, used up fleet-wide: `NotFound` when it is not (nothing is
    /// counted either way).
    pub fn use_recovery_code(&mut self, user: &str, actor: u32, code: &str) -> Result<Used> {
        let actor = int(actor, "actor")?;
        self.call(
            "use_recovery_code",
            "SELECT kind, remaining FROM pam_mfa_fleet.use_recovery_code($1, $2, $3)",
            &[&user, &actor, &code],
            Kind::Changes,
            |rows| {
                let Some(row) = rows.first() else {
                    return Ok(Used::NotFound);
                };
                if rows.len() > 1 {
                    return Err(FleetError::Database(format!(
                        "use_recovery_code returned {} rows",
                        rows.len()
                    )));
                }
                let kind: Option<String> = get(row, 0)?;
                let kind = match kind.as_deref() {
                    None => return Ok(Used::NotFound),
                    Some("recovery") => RecoveryKind::Recovery,
                    Some("bypass") => RecoveryKind::Bypass,
                    Some(other) => return Err(unknown("use_recovery_code kind", other)),
                };
                Ok(Used::Accepted {
                    kind,
                    remaining: count(row, 1)?,
                })
            },
        )
    }

    /// Replaces the user's recovery set with these (salt, hash) pairs, from
    /// `recovery::salted_hash` of codes this host made and showed once.
    pub fn set_recovery_codes(
        &mut self,
        user: &str,
        actor: u32,
        codes: &[([u8; 16], [u8; 32])],
    ) -> Result<()> {
        let actor = int(actor, "actor")?;
        let salts: Vec<&[u8]> = codes.iter().map(|(s, _)| &s[..]).collect();
        let hashes: Vec<&[u8]> = codes.iter().map(|(_, h)| &h[..]).collect();
        self.call(
            "set_recovery_codes",
            "SELECT pam_mfa_fleet.set_recovery_codes($1, $2, $3, $4)",
            &[&user, &actor, &salts, &hashes],
            Kind::Changes,
            |rows| one_row("set_recovery_codes", rows).map(|_| ()),
        )
    }

    /// Adds a bypass code (its salt and hash) good for `uses` logins during `lifetime`
    /// seconds from the database's clock, and clears the user's lock-out; returns when it
    /// expires (unix seconds). The expiry is reckoned in the same statement as the call,
    /// so that the function sees the lifetime asked for (its audit row says it) however
    /// far this host's earlier clock reading was.
    pub fn add_bypass_code(
        &mut self,
        user: &str,
        actor: u32,
        salt: &[u8; 16],
        hash: &[u8; 32],
        uses: u32,
        lifetime: i64,
    ) -> Result<i64> {
        let actor = int(actor, "actor")?;
        let uses = int(uses, "uses")?;
        let (salt, hash) = (&salt[..], &hash[..]);
        self.call(
            "add_bypass_code",
            "SELECT pam_mfa_fleet.add_bypass_code($1, $2, $3, $4, $5, x.expires_at), \
             x.expires_at \
             FROM (SELECT floor(extract(epoch FROM clock_timestamp()))::bigint + $6::bigint \
                   AS expires_at) x",
            &[&user, &actor, &salt, &hash, &uses, &lifetime],
            Kind::Changes,
            |rows| get(&one_row("add_bypass_code", rows)?, 1),
        )
    }

    /// How many unused codes the user's recovery set has.
    pub fn recovery_codes_left(&mut self, user: &str) -> Result<u32> {
        self.call(
            "recovery_codes_left",
            "SELECT pam_mfa_fleet.recovery_codes_left($1)",
            &[&user],
            Kind::ReadOnly,
            |rows| count(&one_row("recovery_codes_left", rows)?, 0),
        )
    }

    /// `keys(p_user)`: the user's active security keys as the relying party checks them,
    /// oldest first: public keys and sign counts, never a secret.
    pub fn keys(&mut self, user: &str) -> Result<Vec<Credential>> {
        self.call(
            "keys",
            "SELECT name, credential_id, cose_public_key, sign_count, rp_id, uv_required \
             FROM pam_mfa_fleet.keys($1)",
            &[&user],
            Kind::ReadOnly,
            |rows| {
                rows.iter()
                    .map(|row| {
                        Ok(Credential {
                            name: get(row, 0)?,
                            credential_id: get(row, 1)?,
                            cose_public_key: get(row, 2)?,
                            sign_count: sign_count(row, 3)?,
                            rp_id: get(row, 4)?,
                            uv_required: get(row, 5)?,
                        })
                    })
                    .collect()
            },
        )
    }

    /// `begin_key(p_user, p_name)`: refuses as a registration would (the name taken by an
    /// active device, no room for another) and returns the credential ids the new key must
    /// not register again. Changes nothing.
    pub fn begin_key(&mut self, user: &str, name: &str) -> Result<Vec<Vec<u8>>> {
        self.call(
            "begin_key",
            "SELECT pam_mfa_fleet.begin_key($1, $2)",
            &[&user, &name],
            Kind::ReadOnly,
            |rows| rows.iter().map(|row| get(row, 0)).collect(),
        )
    }

    /// `add_key(...)`: a registration this host verified, stored as an active key named
    /// `key.name` (an unfinished registration of that name is replaced; a name in use,
    /// no room, or a credential id registered already are refused).
    pub fn add_key(&mut self, user: &str, actor: u32, key: &Credential) -> Result<()> {
        let actor = int(actor, "actor")?;
        let count = i64::from(key.sign_count);
        self.call(
            "add_key",
            "SELECT pam_mfa_fleet.add_key($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &user,
                &actor,
                &key.name,
                &key.credential_id,
                &key.cose_public_key,
                &count,
                &key.rp_id,
                &key.uv_required,
            ],
            Kind::Changes,
            |rows| one_row("add_key", rows).map(|_| ()),
        )
    }

    /// `record_key_login(...)`: an assertion this host verified, recorded fleet-wide;
    /// refused when the key's count did not grow past the stored one (the rule of
    /// `pam_mfa::fido2::verify::check_counter`) or the key is no longer the user's.
    pub fn record_key_login(
        &mut self,
        user: &str,
        actor: u32,
        credential_id: &[u8],
        cose_public_key: &[u8],
        new_count: u32,
    ) -> Result<KeyLogin> {
        let actor = int(actor, "actor")?;
        let new_count = i64::from(new_count);
        self.call(
            "record_key_login",
            "SELECT outcome, device, sign_count \
             FROM pam_mfa_fleet.record_key_login($1, $2, $3, $4, $5)",
            &[&user, &actor, &credential_id, &cose_public_key, &new_count],
            Kind::Changes,
            |rows| {
                let row = one_row("record_key_login", rows)?;
                let outcome: String = get(&row, 0)?;
                let device = || -> Result<String> {
                    get::<Option<String>>(&row, 1)?.ok_or_else(|| {
                        FleetError::Database(format!("record_key_login: {outcome} without a key"))
                    })
                };
                Ok(match outcome.as_str() {
                    "accepted" => KeyLogin::Accepted { device: device()? },
                    "counter_regression" => KeyLogin::CounterRegression {
                        device: device()?,
                        stored: sign_count(&row, 2)?,
                    },
                    "unknown_credential" => KeyLogin::UnknownCredential,
                    other => return Err(unknown("record_key_login", other)),
                })
            },
        )
    }

    /// `key_refused(...)`: the audit row of a key login this host refused itself (its
    /// answer did not verify); like the local store, it counts no failure.
    pub fn key_refused(
        &mut self,
        user: &str,
        actor: u32,
        device: Option<&str>,
        why: &str,
    ) -> Result<()> {
        let actor = int(actor, "actor")?;
        self.call(
            "key_refused",
            "SELECT pam_mfa_fleet.key_refused($1, $2, $3, $4)",
            &[&user, &actor, &device, &why],
            Kind::Changes,
            |rows| one_row("key_refused", rows).map(|_| ()),
        )
    }

    /// `begin_totp_held(...)`: [`Fleet::begin_totp`] for a registration at login, held
    /// for the login whose value hashes to `hold` (`pam_mfa::login_hold`): only that
    /// login's [`Fleet::activate_held`] makes it active.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_totp_held(
        &mut self,
        user: &str,
        actor: u32,
        name: &str,
        algorithm: Algorithm,
        digits: u32,
        period: u32,
        hold: &[u8; 32],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let actor = int(actor, "actor")?;
        let digits = int(digits, "digits")?;
        let period = int(period, "period")?;
        let hold = hold.as_slice();
        self.call(
            "begin_totp_held",
            "SELECT pam_mfa_fleet.begin_totp_held($1, $2, $3, $4, $5, $6, $7)",
            &[
                &user,
                &actor,
                &name,
                &algorithm.as_str(),
                &digits,
                &period,
                &hold,
            ],
            Kind::Changes,
            |rows| new_secret("begin_totp_held", rows),
        )
    }

    /// `hold_totp(...)`: the two codes of the registration held for `hold`, checked and
    /// used up; it stays pending until [`Fleet::activate_held`].
    pub fn hold_totp(
        &mut self,
        user: &str,
        actor: u32,
        name: &str,
        hold: &[u8; 32],
        code1: &str,
        code2: &str,
    ) -> Result<FinishOutcome> {
        let actor = int(actor, "actor")?;
        let hold = hold.as_slice();
        let text = self.text_call(
            "hold_totp",
            "SELECT pam_mfa_fleet.hold_totp($1, $2, $3, $4, $5, $6)",
            &[&user, &actor, &name, &hold, &code1, &code2],
        )?;
        match text.as_str() {
            // Confirmed and held: active once the login's activate_held comes.
            "held" => Ok(FinishOutcome::Activated),
            "activated" => Err(unknown("hold_totp", &text)),
            _ => finish_outcome("hold_totp", &text),
        }
    }

    /// `activate_held(...)`: the registration held for `hold` whose codes were right,
    /// made active; its name, `None` when there is none (expired or replaced).
    pub fn activate_held(
        &mut self,
        user: &str,
        actor: u32,
        hold: &[u8; 32],
    ) -> Result<Option<String>> {
        let actor = int(actor, "actor")?;
        let hold = hold.as_slice();
        self.call(
            "activate_held",
            "SELECT pam_mfa_fleet.activate_held($1, $2, $3)",
            &[&user, &actor, &hold],
            Kind::Changes,
            |rows| get(&one_row("activate_held", rows)?, 0),
        )
    }

    /// `change_room(...)`: `None` when `actor` may make another change to `user`'s
    /// devices now, else the time from which it may (`pam_mfa::limits::MAX_CHANGES`
    /// within the hour, counted over every host; root is never limited).
    pub fn change_room(&mut self, user: &str, actor: u32) -> Result<Option<i64>> {
        let actor = int(actor, "actor")?;
        self.call(
            "change_room",
            "SELECT pam_mfa_fleet.change_room($1, $2)",
            &[&user, &actor],
            Kind::Changes,
            |rows| get(&one_row("change_room", rows)?, 0),
        )
    }

    /// `remembered_ended(p_user)`: when something last ended `user`'s remembered logins
    /// on every host (a device removed, an unlock, a lock-out, `mfa forget`; `None`:
    /// never), and the database's time now, in which hosts keep a fleet account's
    /// remembered logins: a host lets in no login it remembered at or before then.
    pub fn remembered_ended(&mut self, user: &str) -> Result<(Option<i64>, i64)> {
        self.call(
            "remembered_ended",
            "SELECT ended, now FROM pam_mfa_fleet.remembered_ended($1)",
            &[&user],
            Kind::ReadOnly,
            |rows| {
                let row = one_row("remembered_ended", rows)?;
                Ok((get(&row, 0)?, get(&row, 1)?))
            },
        )
    }

    /// `forget_remembered(...)`: ends `user`'s remembered logins on every host (the audit
    /// row [`Fleet::remembered_ended`] finds), saying `why`.
    pub fn forget_remembered(&mut self, user: &str, actor: u32, why: &str) -> Result<()> {
        let actor = int(actor, "actor")?;
        self.call(
            "forget_remembered",
            "SELECT pam_mfa_fleet.forget_remembered($1, $2, $3)",
            &[&user, &actor, &why],
            Kind::Changes,
            |rows| one_row("forget_remembered", rows).map(|_| ()),
        )
    }

    fn text_call(
        &mut self,
        name: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<String> {
        self.call(name, sql, params, Kind::Changes, |rows| {
            get(&one_row(name, rows)?, 0)
        })
    }

    /// Runs `sql` (prepared once per connection) within the call's deadline, connecting
    /// first if needed; see the module's notes for when it is sent again.
    fn call<T>(
        &mut self,
        name: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        kind: Kind,
        map: impl FnOnce(Vec<Row>) -> Result<T>,
    ) -> Result<T> {
        if self.runtime.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| FleetError::Unavailable(format!("cannot start the runtime: {e}")))?;
            self.runtime = Some(rt);
        }
        let Self {
            config,
            runtime,
            conn,
        } = self;
        let Some(runtime) = runtime.as_ref() else {
            return Err(FleetError::Unavailable("no runtime".into()));
        };
        let total = call_deadline(config);
        let query_timeout = config.query_timeout;
        let config = &*config;
        let attempt = async {
            // Let the connection's task see an end-of-file the server sent while idle
            // (a restart, a fail-over), so the call connects anew instead of failing.
            for _ in 0..2 {
                tokio::task::yield_now().await;
            }
            if conn.as_ref().is_some_and(|c| c.client.is_closed()) {
                *conn = None;
            }
            let mut retried = false;
            loop {
                let fresh = conn.is_none();
                if fresh {
                    *conn = Some(connect::connect(config).await?);
                }
                let Some(c) = conn.as_mut() else {
                    return Err(FleetError::Unavailable("not connected".into()));
                };
                match tokio::time::timeout(query_timeout, run(c, name, sql, params)).await {
                    Err(_) => {
                        *conn = None;
                        return Err(FleetError::Unavailable(format!(
                            "no answer to {name} within {} ms",
                            query_timeout.as_millis()
                        )));
                    }
                    Ok(Err(e)) if e.is_closed() => {
                        *conn = None;
                        if !fresh && !retried && kind == Kind::ReadOnly {
                            retried = true;
                            continue;
                        }
                        return Err(FleetError::from_call(name, &e));
                    }
                    Ok(Err(e)) => return Err(FleetError::from_call(name, &e)),
                    Ok(Ok(rows)) => return Ok(rows),
                }
            }
        };
        let rows = runtime
            .block_on(async { tokio::time::timeout(total, attempt).await })
            .unwrap_or_else(|_| {
                Err(FleetError::Unavailable(format!(
                    "no answer to {name} within {} ms",
                    total.as_millis()
                )))
            });
        // Whatever state a connection was left in by a deadline, it is not reused.
        if matches!(rows, Err(FleetError::Unavailable(_))) {
            self.conn = None;
        }
        map(rows?)
    }
}

async fn run(
    c: &mut Conn,
    name: &'static str,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
    let statement = match c.statements.get(name) {
        Some(s) => s.clone(),
        None => {
            let s = c.client.prepare(sql).await?;
            c.statements.insert(name, s.clone());
            s
        }
    };
    c.client.query(&statement, params).await
}

fn one_row(name: &str, rows: Vec<Row>) -> Result<Row> {
    let n = rows.len();
    let mut rows = rows.into_iter();
    match (rows.next(), n) {
        (Some(row), 1) => Ok(row),
        _ => Err(FleetError::Database(format!(
            "{name} returned {n} rows, not one"
        ))),
    }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| {
        let name = row.columns().get(i).map_or("?", |c| c.name());
        FleetError::Database(format!(
            "unexpected column {i} ({name}): {}",
            connect::describe(e)
        ))
    })
}

/// A non-negative int column that may be NULL.
fn optional_count(row: &Row, i: usize) -> Result<Option<u32>> {
    let v: Option<i32> = get(row, i)?;
    v.map(|v| {
        u32::try_from(v).map_err(|_| FleetError::Database(format!("negative value in column {i}")))
    })
    .transpose()
}

/// A sign count column (bigint, 0 to 2^32 - 1).
fn sign_count(row: &Row, i: usize) -> Result<u32> {
    let v: i64 = get(row, i)?;
    u32::try_from(v)
        .map_err(|_| FleetError::Database(format!("sign count out of range in column {i}")))
}

/// A non-negative int column (a count, a policy number).
fn count(row: &Row, i: usize) -> Result<u32> {
    let v: i32 = get(row, i)?;
    u32::try_from(v).map_err(|_| FleetError::Database(format!("negative value in column {i}")))
}

/// A value this side sends as SQL `int`: larger ones are refused here as the database
/// would (MF005), not wrapped around.
fn int(v: u32, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| FleetError::Refused {
        code: crate::RefusalCode::BadArgument,
        message: format!("{what} {v} is out of range"),
    })
}

fn no_device(s: &str) -> Result<NoDevice> {
    [NoDevice::Allow, NoDevice::Deny, NoDevice::Enroll]
        .into_iter()
        .find(|n| n.as_str() == s)
        .ok_or_else(|| unknown("no_device", s))
}

/// An answer outside the contract: the SQL and this crate disagree, so fail closed.
fn unknown(what: &str, value: &str) -> FleetError {
    FleetError::Database(format!("{what}: unexpected answer {value:?}"))
}

/// How long a whole call may take at most (mfad's own deadline towards its clients
/// must be longer).
pub fn call_deadline(config: &FleetConfig) -> Duration {
    config.connect_timeout + config.query_timeout
}

// ----- Hardware tokens: the fleet's inventory and a user's token -----

/// `import_tokens(...)`: the whole file was loaded, or the first entry that stopped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenImport {
    Imported {
        added: u32,
        replaced: u32,
    },
    /// Already in the inventory, and the import does not replace.
    Duplicate {
        serial: String,
    },
    /// Someone's device: never replaced.
    Assigned {
        serial: String,
        user: String,
        device: String,
    },
}

/// One row of `list_tokens()`: never a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetToken {
    pub serial: String,
    /// How the token makes codes: `totp` or `hotp` (`tokens::Mode::as_str`).
    pub kind: String,
    pub digits: u8,
    pub imported: i64,
    pub assigned_to: Option<String>,
    pub device: Option<String>,
}

/// `remove_token(...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRemoval {
    Removed,
    NoSuchToken,
    Assigned { user: String, device: String },
}

/// `enroll_token(...)`. The precise refusals are only ever given for root (actor 0); a
/// user registering for themselves gets `Locked` or `NotRegistered`, counted by the
/// database as a failure toward the lock-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEnrollment {
    Registered {
        event_based: bool,
    },
    TooManyDevices,
    NameTaken,
    /// Not in the inventory, or assigned (not said which).
    Unavailable,
    /// The two codes are not consecutive codes of the token within its search.
    CodesNotFound {
        event_based: bool,
    },
    /// Codes at or before one the token had accepted already.
    AlreadyUsed,
    /// Locked until `until`; nothing looked at.
    Locked {
        until: i64,
    },
    /// A user's refusal, whatever it was; `locked_until` when this one locked them.
    NotRegistered {
        locked_until: Option<i64>,
    },
}

impl Fleet {
    /// Loads `seeds` (from `tokens::parse`) into the fleet's inventory, all or none;
    /// `replace` overwrites unassigned tokens of the same serial, as locally.
    pub fn import_tokens(
        &mut self,
        actor: u32,
        seeds: &[pam_mfa::tokens::TokenSeed],
        format: pam_mfa::tokens::Format,
        replace: bool,
    ) -> Result<TokenImport> {
        use pam_mfa::tokens::{Format, Mode};
        let actor = int(actor, "actor")?;
        let format = match format {
            Format::Pskc => "pskc",
            Format::Csv => "csv",
        };
        let serials: Vec<&str> = seeds.iter().map(|s| s.serial.as_str()).collect();
        let types: Vec<&str> = seeds.iter().map(|s| s.mode.as_str()).collect();
        // Borrowed from the seeds (which zeroize themselves), never copied here.
        let secrets: Vec<&[u8]> = seeds.iter().map(|s| s.secret.as_bytes()).collect();
        let algorithms: Vec<&str> = seeds.iter().map(|s| s.algorithm.as_str()).collect();
        let digits: Vec<i32> = seeds.iter().map(|s| i32::from(s.digits)).collect();
        let periods = seeds
            .iter()
            .map(|s| match s.mode {
                Mode::Totp { period } => int(period, "period").map(Some),
                Mode::Hotp { .. } => Ok(None),
            })
            .collect::<Result<Vec<Option<i32>>>>()?;
        let counters: Vec<Option<i64>> = seeds
            .iter()
            .map(|s| match s.mode {
                Mode::Totp { .. } => None,
                Mode::Hotp { counter } => Some(counter),
            })
            .collect();
        self.call(
            "import_tokens",
            "SELECT outcome, serial, holder, holder_device, added, replaced \
             FROM pam_mfa_fleet.import_tokens($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &actor,
                &format,
                &replace,
                &serials,
                &types,
                &secrets,
                &algorithms,
                &digits,
                &periods,
                &counters,
            ],
            Kind::Changes,
            |rows| {
                let row = one_row("import_tokens", rows)?;
                let outcome: String = get(&row, 0)?;
                let text = |i: usize| -> Result<String> {
                    get::<Option<String>>(&row, i)?
                        .ok_or_else(|| unknown("import_tokens", &outcome))
                };
                Ok(match outcome.as_str() {
                    "imported" => TokenImport::Imported {
                        added: count(&row, 4)?,
                        replaced: count(&row, 5)?,
                    },
                    "duplicate" => TokenImport::Duplicate { serial: text(1)? },
                    "assigned" => TokenImport::Assigned {
                        serial: text(1)?,
                        user: text(2)?,
                        device: text(3)?,
                    },
                    other => return Err(unknown("import_tokens", other)),
                })
            },
        )
    }

    /// The fleet's inventory, by serial number.
    pub fn list_tokens(&mut self) -> Result<Vec<FleetToken>> {
        self.call(
            "list_tokens",
            "SELECT serial, kind, digits, imported, assigned_to, device \
             FROM pam_mfa_fleet.list_tokens()",
            &[],
            Kind::ReadOnly,
            |rows| {
                rows.iter()
                    .map(|row| {
                        let kind: String = get(row, 1)?;
                        if kind != "totp" && kind != "hotp" {
                            return Err(unknown("list_tokens kind", &kind));
                        }
                        Ok(FleetToken {
                            serial: get(row, 0)?,
                            kind,
                            digits: u8::try_from(count(row, 2)?)
                                .map_err(|_| unknown("list_tokens digits", "out of range"))?,
                            imported: get(row, 3)?,
                            assigned_to: get(row, 4)?,
                            device: get(row, 5)?,
                        })
                    })
                    .collect()
            },
        )
    }

    /// Takes an unassigned token out of the inventory for good.
    pub fn remove_token(&mut self, actor: u32, serial: &str) -> Result<TokenRemoval> {
        let actor = int(actor, "actor")?;
        self.call(
            "remove_token",
            "SELECT outcome, holder, holder_device FROM pam_mfa_fleet.remove_token($1, $2)",
            &[&actor, &serial],
            Kind::Changes,
            |rows| {
                let row = one_row("remove_token", rows)?;
                let outcome: String = get(&row, 0)?;
                Ok(match outcome.as_str() {
                    "removed" => TokenRemoval::Removed,
                    "no_such_token" => TokenRemoval::NoSuchToken,
                    "assigned" => {
                        let (user, device): (Option<String>, Option<String>) =
                            (get(&row, 1)?, get(&row, 2)?);
                        let (user, device) = user
                            .zip(device)
                            .ok_or_else(|| unknown("remove_token", &outcome))?;
                        TokenRemoval::Assigned { user, device }
                    }
                    other => return Err(unknown("remove_token", other)),
                })
            },
        )
    }

    /// Registers inventory token `serial` as `user`'s device `name` with two consecutive
    /// codes (digits only: `code::parse`d by the caller), checked in the database.
    pub fn enroll_token(
        &mut self,
        user: &str,
        actor: u32,
        name: &str,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<TokenEnrollment> {
        let actor = int(actor, "actor")?;
        self.call(
            "enroll_token",
            "SELECT outcome, mode, locked_until \
             FROM pam_mfa_fleet.enroll_token($1, $2, $3, $4, $5, $6)",
            &[&user, &actor, &name, &serial, &code1, &code2],
            Kind::Changes,
            |rows| {
                let row = one_row("enroll_token", rows)?;
                let outcome: String = get(&row, 0)?;
                let mode: Option<String> = get(&row, 1)?;
                let locked_until: Option<i64> = get(&row, 2)?;
                let event_based = || match mode.as_deref() {
                    Some("hotp") => Ok(true),
                    Some("totp") => Ok(false),
                    _ => Err(unknown("enroll_token mode", &outcome)),
                };
                Ok(match outcome.as_str() {
                    "registered" => TokenEnrollment::Registered {
                        event_based: event_based()?,
                    },
                    "too_many_devices" => TokenEnrollment::TooManyDevices,
                    "name_taken" => TokenEnrollment::NameTaken,
                    "unavailable" => TokenEnrollment::Unavailable,
                    "codes_not_found" => TokenEnrollment::CodesNotFound {
                        event_based: event_based()?,
                    },
                    "already_used" => TokenEnrollment::AlreadyUsed,
                    "locked" => TokenEnrollment::Locked {
                        until: locked_until
                            .ok_or_else(|| unknown("enroll_token", "locked without an end"))?,
                    },
                    "not_registered" => TokenEnrollment::NotRegistered { locked_until },
                    other => return Err(unknown("enroll_token", other)),
                })
            },
        )
    }
}

/// The secret a registration's beginning made in the database, returned this once.
fn new_secret(name: &str, rows: Vec<Row>) -> Result<Zeroizing<Vec<u8>>> {
    let secret: Zeroizing<Vec<u8>> = Zeroizing::new(get(&one_row(name, rows)?, 0)?);
    if secret.is_empty() {
        return Err(FleetError::Database(format!("{name}: empty secret")));
    }
    Ok(secret)
}

/// What `finish_totp` (and `hold_totp`, but for its 'held') answers.
fn finish_outcome(name: &str, text: &str) -> Result<FinishOutcome> {
    Ok(match text.split_once(' ') {
        Some(("clock_skew", secs)) => FinishOutcome::ClockSkew {
            secs: secs.parse().map_err(|_| unknown(name, text))?,
        },
        _ => match text {
            "activated" => FinishOutcome::Activated,
            "first_wrong" => FinishOutcome::Wrong(PairError::FirstWrong),
            "second_wrong" => FinishOutcome::Wrong(PairError::SecondWrong),
            "not_consecutive" => FinishOutcome::Wrong(PairError::NotConsecutive),
            "already_active" => FinishOutcome::AlreadyActive,
            "no_such_device" => FinishOutcome::NoSuchDevice,
            other => return Err(unknown(name, other)),
        },
    })
}

// ----- The administrator's views: `mfa admin list` and `mfa admin audit` -----

/// One audit row of the fleet (`audit_rows`): the local store's row and the role of the
/// host that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetAuditRow {
    pub entry: pam_mfa::audit::Entry,
    pub host: String,
}

impl Fleet {
    /// `admin_accounts()`: every account with a device or an outstanding recovery or
    /// bypass code, by name, as `pam_mfa::admin::overview` lists a local store's (no
    /// remembered logins: the fleet keeps none). Never a secret.
    pub fn admin_accounts(&mut self) -> Result<Vec<pam_mfa::admin::AccountOverview>> {
        use pam_mfa::admin::AccountOverview;
        use pam_mfa::recovery::Bypass;
        use pam_mfa::store::devices::DeviceInfo;
        self.call(
            "admin_accounts",
            "SELECT what, user_name, name, kind, state, created, last_used, expires, \
             uses_left, created_by FROM pam_mfa_fleet.admin_accounts()",
            &[],
            Kind::ReadOnly,
            |rows| {
                let mut accounts: Vec<AccountOverview> = Vec::new();
                for row in &rows {
                    let what: String = get(row, 0)?;
                    let user: String = get(row, 1)?;
                    // Rows come grouped by account.
                    if accounts.last().is_none_or(|a| a.user != user) {
                        accounts.push(AccountOverview {
                            user,
                            devices: Vec::new(),
                            codes: Default::default(),
                            remembered: Vec::new(),
                        });
                    }
                    let Some(account) = accounts.last_mut() else {
                        return Err(unknown("admin_accounts", "no account"));
                    };
                    match what.as_str() {
                        "device" => {
                            let kind: String = get(row, 3)?;
                            let state: String = get(row, 4)?;
                            account.devices.push(DeviceInfo {
                                name: get(row, 2)?,
                                kind: device_kind(&kind)?,
                                state: device_state(&state)?,
                                created_at: get(row, 5)?,
                                last_used_at: get(row, 6)?,
                                expires_at: get(row, 7)?,
                            });
                        }
                        "recovery" => {
                            account.codes.recovery_left =
                                account.codes.recovery_left.saturating_add(1);
                        }
                        "bypass" => account.codes.bypass.push(Bypass {
                            uses_left: count(row, 8)?,
                            expires_at: get::<Option<i64>>(row, 7)?
                                .ok_or_else(|| unknown("admin_accounts bypass", "no expiry"))?,
                            created_at: get(row, 5)?,
                            created_by: uid(get(row, 9)?),
                        }),
                        other => return Err(unknown("admin_accounts", other)),
                    }
                }
                Ok(accounts)
            },
        )
    }

    /// `audit_rows(p_user, p_since)`: the rows about `user` (all when `None`) at or after
    /// `since`, oldest first, as `pam_mfa::audit::list` gives a local store's.
    pub fn audit_rows(
        &mut self,
        user: Option<&str>,
        since: Option<i64>,
    ) -> Result<Vec<FleetAuditRow>> {
        self.call(
            "audit_rows",
            "SELECT at, actor_uid, user_name, action, device, detail, host \
             FROM pam_mfa_fleet.audit_rows($1, $2)",
            &[&user, &since],
            Kind::ReadOnly,
            |rows| {
                rows.iter()
                    .map(|row| {
                        Ok(FleetAuditRow {
                            entry: pam_mfa::audit::Entry {
                                at: get(row, 0)?,
                                actor_uid: uid(get(row, 1)?),
                                user: get(row, 2)?,
                                action: get(row, 3)?,
                                device: get(row, 4)?,
                                detail: get(row, 5)?,
                            },
                            host: get(row, 6)?,
                        })
                    })
                    .collect()
            },
        )
    }
}

/// An actor's uid as the database keeps it (bigint; -1 when a call named none): one
/// outside the uids shown as `u32::MAX`, which no account has.
fn uid(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn device_kind(kind: &str) -> Result<DeviceKind> {
    [DeviceKind::Totp, DeviceKind::Fido2, DeviceKind::Token]
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| unknown("device kind", kind))
}

fn device_state(state: &str) -> Result<DeviceState> {
    [DeviceState::Pending, DeviceState::Active]
        .into_iter()
        .find(|s| s.as_str() == state)
        .ok_or_else(|| unknown("device state", state))
}
