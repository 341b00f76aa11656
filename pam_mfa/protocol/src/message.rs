//! The requests and responses, and their encoding in a frame.

use crate::UnixTime;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::frame::{FrameError, read_frame, write_frame};
use crate::secret::{PublicBytes, SecretBytes};

/// The version of this protocol. See the crate documentation for when it changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request as sent: the sender's protocol version and the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMessage {
    pub version: u32,
    pub request: Request,
}

/// A response as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub version: u32,
    pub response: Response,
}

/// What a client may ask. Who it may ask about is decided by the daemon from the peer's
/// credentials (SO_PEERCRED), never from a field here: a non-root caller may only name
/// its own account, and its `overrides` are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Answered with [`Response::Hello`].
    Hello,
    /// What the account needs before the prompt; answered with
    /// [`Response::BeforePrompt`]. `want_keys`: count the user's security keys too.
    BeforePrompt {
        user: String,
        #[serde(default)]
        want_keys: bool,
        /// Where the login comes from (root only; see [`LoginContext`]): a remembered
        /// context lets the user in without a code.
        #[serde(default)]
        context: Option<LoginContext>,
        /// The module line's rules: with them the reply carries the login's next step
        /// ([`BeforePromptReply::decision`]), decided by the daemon.
        #[serde(default)]
        line: Option<LineRules>,
    },
    /// Check a short code typed at the prompt, and record the outcome; answered with
    /// [`Response::Verified`]. With a `context` (root only), a success is remembered
    /// where the policy allows it.
    VerifyCode {
        user: String,
        answer: SecretBytes,
        #[serde(default)]
        overrides: Overrides,
        #[serde(default)]
        context: Option<LoginContext>,
    },
    /// Check and use up a recovery or bypass code; answered with [`Response::Recovery`].
    /// A recovery code's success is remembered as a code's; a bypass code's never is.
    VerifyRecovery {
        user: String,
        code: SecretBytes,
        #[serde(default)]
        context: Option<LoginContext>,
    },
    /// The logins of the account remembered without a code; answered with
    /// [`Response::Remembered`].
    ListRemembered { user: String },
    /// Forget every remembered login of the account (`mfa forget`); answered with
    /// [`Response::Forgotten`].
    Forget { user: String },
    /// The account's devices, as `mfa list --json` shows them; answered with
    /// [`Response::Devices`].
    ListDevices { user: String },
    /// Whether the caller may change the account's devices now (the policy's
    /// self-service switch and the change-rate limit, as a change is checked): answered
    /// with [`Response::Done`], or the refusal the change would get. Nothing changes and
    /// nothing counts; it lets `mfa` refuse before it asks for a proof.
    MayChange { user: String },
    /// Prove an existing device before a change (see [Proofs](crate#proofs)): `answer` is
    /// a current code of one of the user's devices, or a recovery or bypass code, checked
    /// and used up exactly as at a login. Answered with [`Response::Proof`].
    Reauth { user: String, answer: SecretBytes },
    /// Begin registering an authenticator app (needs a proof); answered with
    /// [`Response::PendingTotp`], the only message that carries a device's secret.
    /// `issuer`: the label in the app, by default the daemon's host name.
    BeginTotp {
        user: String,
        name: String,
        #[serde(default)]
        issuer: Option<String>,
        #[serde(default)]
        proof: Option<SecretBytes>,
    },
    /// Activate a pending app with two consecutive codes (no proof: beginning needed
    /// one); answered with [`Response::Done`].
    FinishTotp {
        user: String,
        name: String,
        code1: SecretBytes,
        code2: SecretBytes,
    },
    /// Rename a device (needs a proof); answered with [`Response::Done`].
    Rename {
        user: String,
        name: String,
        new_name: String,
        #[serde(default)]
        proof: Option<SecretBytes>,
    },
    /// Remove a device (needs a proof); answered with [`Response::Done`].
    Remove {
        user: String,
        name: String,
        #[serde(default)]
        proof: Option<SecretBytes>,
    },
    /// Bring a drifted code device back in sync with two consecutive codes (needs a
    /// proof); answered with [`Response::Resynced`].
    Resync {
        user: String,
        name: String,
        code1: SecretBytes,
        code2: SecretBytes,
        #[serde(default)]
        proof: Option<SecretBytes>,
    },
    /// Make a new set of recovery codes (needs a proof); answered with
    /// [`Response::RecoveryCodes`]. Nothing is stored yet: see
    /// [Recovery codes](crate#recovery-codes).
    RecoveryGenerate {
        user: String,
        #[serde(default)]
        proof: Option<SecretBytes>,
    },
    /// Store the set a [`Request::RecoveryGenerate`] returned under `ticket`, replacing
    /// the earlier codes, once the client has written the codes out in full; answered
    /// with [`Response::Done`].
    RecoveryCommit { user: String, ticket: SecretBytes },
    /// Register a hardware token from the inventory as a device of `user`, with two
    /// consecutive codes of it (`mfa enroll token`). Root is told exactly what is wrong; a
    /// non-root caller gets one answer for every refusal, and each counts toward their
    /// lock-out, and needs a proof when the account has an active
    /// device. Answered with [`Response::TokenRegistered`].
    EnrollToken {
        user: String,
        name: String,
        serial: String,
        code1: SecretBytes,
        code2: SecretBytes,
        #[serde(default)]
        proof: Option<SecretBytes>,
    },
    // The administrator's requests (`mfa admin …`): root callers only; anyone else gets
    // [`ErrorKind::Denied`] and a line in the daemon's log.
    /// The policy; answered with [`Response::Policy`].
    PolicyShow,
    /// Set one policy key (`mfa admin policy set KEY VALUE`, the same keys and values);
    /// answered with [`Response::Done`].
    PolicySet { key: String, value: String },
    /// Every account with a device or an outstanding recovery or bypass code (`mfa admin
    /// list --json`); answered with [`Response::Accounts`].
    AdminList,
    /// Audit rows of `user` (all when `None`) since `since` (unix seconds, or an age such
    /// as `12h`, `7d`); answered with [`Response::AuditRows`].
    Audit {
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        since: Option<String>,
    },
    /// Delete audit rows older than `older_than` (an age such as `90d`), or past the
    /// policy's retention when `None`; answered with [`Response::Pruned`].
    AuditPrune {
        #[serde(default)]
        older_than: Option<String>,
    },
    /// A temporary code for `user`, good for `uses` logins within `expires_in` (`30m`,
    /// `12h`, at most `7d`); it also ends their lock-out. Answered with
    /// [`Response::BypassCode`], the only time the code is shown.
    Bypass {
        user: String,
        uses: u32,
        expires_in: String,
    },
    /// End `user`'s lock-out; answered with [`Response::Done`].
    Unlock { user: String },
    /// Remove any user's device (no proof: root acts for them); answered with
    /// [`Response::Done`].
    AdminRemove { user: String, name: String },
    // Security keys (see [Security keys](crate#security-keys)).
    /// A fresh challenge for a touch of one of `user`'s security keys, for a login or a
    /// proof; answered with [`Response::KeyChallenge`] (or [`Response::BeforePrompt`]'s
    /// `NoDevice` shape as an error when the account has no key: [`ErrorKind::Invalid`]).
    KeyChallenge { user: String, purpose: KeyPurpose },
    /// The key's answer to the challenge of `ticket`: verified, and recorded (the sign
    /// count, the last use) as a login's. Answered with [`Response::Verified`] for
    /// [`KeyPurpose::Login`] and [`Response::Proof`] for [`KeyPurpose::Proof`].
    KeyAnswer {
        user: String,
        ticket: SecretBytes,
        assertion: KeyAssertion,
        /// A login's context (root only): a key login is remembered as a code's.
        #[serde(default)]
        context: Option<LoginContext>,
    },
    /// Begin registering a security key (`mfa enroll fido2`; needs a proof when the
    /// account has an active device and the caller is not root): the daemon checks the
    /// name and the room for it and answers with [`Response::Fido2Challenge`], what the
    /// user's own `mfa` asks the key to sign.
    BeginFido2 {
        user: String,
        name: String,
        /// The relying-party id; by default `pam://` and the daemon's host name.
        #[serde(default)]
        rp_id: Option<String>,
        #[serde(default)]
        require_pin: bool,
        #[serde(default)]
        require_uv: bool,
        #[serde(default)]
        proof: Option<SecretBytes>,
    },
    /// The key's attestation for the challenge of `ticket`: verified, and the key stored
    /// as an active device. Answered with [`Response::Fido2Registered`].
    FinishFido2 {
        user: String,
        ticket: SecretBytes,
        attestation: KeyAttestation,
    },
    // Registration at login (`enroll_at_login`; see [Registration at
    // login](crate#registration-at-login)): root callers only.
    /// Begin an authenticator app held for this login; answered with
    /// [`Response::HeldTotp`].
    BeginHeld {
        user: String,
        name: String,
        #[serde(default)]
        issuer: Option<String>,
    },
    /// Check (and use up) the two consecutive codes of the held registration `name`,
    /// leaving it pending; answered with [`Response::Done`].
    ConfirmHeld {
        user: String,
        name: String,
        hold: SecretBytes,
        code1: SecretBytes,
        code2: SecretBytes,
    },
    /// Activate the registration held for `hold`, from `pam_sm_setcred` once the whole
    /// stack succeeded; answered with [`Response::Activated`].
    ActivateHeld { user: String, hold: SecretBytes },
    // The hardware-token inventory (`mfa admin tokens …`): root callers only.
    /// Load a vendor's seed file (`data`, at most [`crate::MAX_ROOT_MESSAGE`] in all),
    /// all or nothing; answered with [`Response::TokensImported`].
    TokensImport {
        data: SecretBytes,
        /// `pskc` or `csv`; by default PSKC when the data starts with `<`, else CSV.
        #[serde(default)]
        format: Option<String>,
        /// The PSKC pre-shared key (32 hex digits), for encrypted seeds.
        #[serde(default)]
        key: Option<SecretBytes>,
        /// Load over tokens already in the inventory (never over an assigned one).
        #[serde(default)]
        replace: bool,
    },
    /// Every token; answered with [`Response::Tokens`].
    TokensList,
    /// Take an unassigned token out of the inventory; answered with [`Response::Done`].
    TokensRemove { serial: String },
}

impl Request {
    /// The request's name for log lines (never its fields: they may hold a code).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::BeforePrompt { .. } => "before-prompt",
            Self::VerifyCode { .. } => "verify-code",
            Self::VerifyRecovery { .. } => "verify-recovery",
            Self::ListRemembered { .. } => "list-remembered",
            Self::Forget { .. } => "forget",
            Self::ListDevices { .. } => "list-devices",
            Self::MayChange { .. } => "may-change",
            Self::Reauth { .. } => "reauth",
            Self::BeginTotp { .. } => "begin-totp",
            Self::FinishTotp { .. } => "finish-totp",
            Self::Rename { .. } => "rename",
            Self::Remove { .. } => "remove",
            Self::Resync { .. } => "resync",
            Self::RecoveryGenerate { .. } => "recovery-generate",
            Self::RecoveryCommit { .. } => "recovery-commit",
            Self::EnrollToken { .. } => "enroll-token",
            Self::PolicyShow => "policy-show",
            Self::PolicySet { .. } => "policy-set",
            Self::AdminList => "admin-list",
            Self::Audit { .. } => "audit",
            Self::AuditPrune { .. } => "audit-prune",
            Self::Bypass { .. } => "bypass",
            Self::Unlock { .. } => "unlock",
            Self::AdminRemove { .. } => "admin-remove",
            Self::KeyChallenge { .. } => "key-challenge",
            Self::KeyAnswer { .. } => "key-answer",
            Self::BeginFido2 { .. } => "begin-fido2",
            Self::FinishFido2 { .. } => "finish-fido2",
            Self::BeginHeld { .. } => "begin-held",
            Self::ConfirmHeld { .. } => "confirm-held",
            Self::ActivateHeld { .. } => "activate-held",
            Self::TokensImport { .. } => "tokens-import",
            Self::TokensList => "tokens-list",
            Self::TokensRemove { .. } => "tokens-remove",
        }
    }

    /// The account the request is about, if any.
    pub fn user(&self) -> Option<&str> {
        match self {
            Self::Hello
            | Self::PolicyShow
            | Self::PolicySet { .. }
            | Self::AdminList
            | Self::AuditPrune { .. }
            | Self::TokensImport { .. }
            | Self::TokensList
            | Self::TokensRemove { .. } => None,
            Self::Audit { user, .. } => user.as_deref(),
            Self::BeforePrompt { user, .. }
            | Self::VerifyCode { user, .. }
            | Self::VerifyRecovery { user, .. }
            | Self::ListDevices { user }
            | Self::ListRemembered { user }
            | Self::Forget { user }
            | Self::MayChange { user }
            | Self::Reauth { user, .. }
            | Self::BeginTotp { user, .. }
            | Self::FinishTotp { user, .. }
            | Self::Rename { user, .. }
            | Self::Remove { user, .. }
            | Self::Resync { user, .. }
            | Self::RecoveryGenerate { user, .. }
            | Self::RecoveryCommit { user, .. }
            | Self::EnrollToken { user, .. }
            | Self::Bypass { user, .. }
            | Self::Unlock { user }
            | Self::AdminRemove { user, .. }
            | Self::KeyChallenge { user, .. }
            | Self::KeyAnswer { user, .. }
            | Self::BeginFido2 { user, .. }
            | Self::FinishFido2 { user, .. }
            | Self::BeginHeld { user, .. }
            | Self::ConfirmHeld { user, .. }
            | Self::ActivateHeld { user, .. } => Some(user),
        }
    }
}

/// The module arguments that tune code checking (`window=`, `hotp_window=`,
/// `max_failures=`, `lockout=`); `None` leaves the store's policy. Honoured for root
/// callers only: a user must not loosen their own lock-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(default)]
    pub window: Option<u32>,
    #[serde(default)]
    pub hotp_window: Option<u32>,
    #[serde(default)]
    pub max_failures: Option<u32>,
    #[serde(default)]
    pub lockout_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    Hello {
        /// The daemon's [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The daemon's package version.
        daemon: String,
        /// The store it serves (its `--db`), for `mfa doctor`.
        #[serde(default)]
        store: String,
    },
    BeforePrompt(BeforePromptReply),
    Verified(VerifyOutcome),
    Remembered(Vec<RememberedEntry>),
    /// How many remembered logins `Forget` ended.
    Forgotten {
        removed: u64,
    },
    Recovery(RecoveryOutcome),
    Devices(Vec<DeviceEntry>),
    /// The user proved a device: the single-use proof to send with one change.
    Proof(ProofReply),
    PendingTotp(PendingTotpReply),
    /// The change was made.
    Done,
    Resynced(ResyncReply),
    RecoveryCodes(RecoveryCodesReply),
    TokenRegistered(TokenReply),
    Policy(PolicyReply),
    Accounts(Vec<AccountEntry>),
    AuditRows(Vec<AuditEntry>),
    /// How many audit rows went, and by which rule ("older than …").
    Pruned {
        removed: u64,
        rule: String,
    },
    BypassCode(BypassReply),
    KeyChallenge(KeyChallengeReply),
    Fido2Challenge(Fido2ChallengeReply),
    Fido2Registered(Fido2Reply),
    HeldTotp(HeldTotpReply),
    /// A held registration is now active: its name.
    Activated {
        name: String,
    },
    TokensImported(TokensImportedReply),
    Tokens(Vec<TokenEntry>),
    /// The request was not carried out. Its shape never changes (see the crate
    /// documentation).
    Error(ErrorReply),
}

/// What an account needs before its prompt. No secret, and nothing about a device
/// beyond whether a code prompt makes sense and how many keys there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeforePromptReply {
    pub state: AccountState,
    /// The user has an active code device (app or token).
    #[serde(default)]
    pub has_code_device: bool,
    /// Active security keys (counted only when asked for).
    #[serde(default)]
    pub keys: u32,
    /// The policy's rule for an account without an active device.
    #[serde(default)]
    pub no_device: NoDeviceRule,
    /// Whether the store file exists at all (a missing one is routine right after
    /// installation, but also what a mistyped path looks like: the module logs it).
    #[serde(default)]
    pub store_exists: bool,
    /// Set when this login's context is remembered (see [`LoginContext`]): the user is let
    /// in without a code, and this is when the context ends. Only for a ready account.
    #[serde(default)]
    pub remembered_until: Option<i64>,
    /// The login's next step, when the request gave the line's rules.
    #[serde(default)]
    pub decision: Option<Decision>,
}

/// What the module's line (and where the person is) says, for the login decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LineRules {
    /// `nullok`: a user without an active device is let through.
    pub nullok: bool,
    /// `enroll_at_login`: this line may register a device where the policy asks.
    pub enroll_at_login: bool,
    /// `fido2=`.
    pub keys: KeyRule,
    /// The person is not at this computer (a remote host, an SSH session): a key there
    /// cannot be touched.
    pub remote: bool,
}

/// `fido2=off|prefer|require`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KeyRule {
    Off,
    #[default]
    Prefer,
    Require,
}

/// The login decision: what to tell and log first, then the one next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub notices: Vec<Notice>,
    pub next: NextStep,
}

/// Something the module says or logs before the next step; none of them ends the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Notice {
    /// Short codes are locked until then: the person is told what still works.
    Locked { until: UnixTime },
    /// The policy asks for registration at login, but this line does not allow it (no
    /// `enroll_at_login`, or `fido2=require`): as `no_device deny`, and syslog says so.
    EnrollNotOnThisLine,
    /// A remote login with a key and a code device: the code is asked (a debug line).
    RemoteAsksCode,
}

/// The login's next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NextStep {
    /// A remembered login: let in without a code (the daemon audited it).
    LetInRemembered { until: UnixTime },
    /// No active device and `nullok` (or the policy's `no_device allow`): `PAM_IGNORE`.
    LetThrough {
        by_nullok: bool,
        /// The store does not exist yet (logged louder: a mistyped `--db` looks alike).
        store_missing: bool,
    },
    /// Register an authenticator app through the conversation (`enroll_at_login`).
    Register,
    /// Refused without a prompt: this line accepts only a key, and there is none to use.
    RefuseKey { why: KeyRefusal },
    /// Ask for a key touch; `code_fallback`: if keys cannot be used here, ask a code.
    TryKey { code_fallback: bool },
    /// Prompt for a code, then do `then` with the answer.
    AskCode { then: AfterCode },
}

/// Why a key-only line refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyRefusal {
    NoneRegistered,
    Remote,
}

/// What follows the code prompt. Users without a device, and names that are no account,
/// are prompted like everyone else, so the prompt tells nobody who has registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AfterCode {
    Verify,
    RefuseNoAccount,
    RefuseNoDevice,
}

/// Where a login comes from, as the module sends it (root only: the daemon ignores it
/// from anyone else, so nobody can make their own context remembered).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoginContext {
    /// `PAM_SERVICE`.
    pub service: String,
    /// `PAM_RHOST`, empty when unset.
    pub rhost: String,
    /// The module line's `remember=SECONDS`: can only shorten the policy's time.
    #[serde(default)]
    pub remember_secs: Option<u32>,
}

/// One remembered login, as `mfa list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedEntry {
    pub service: String,
    /// Empty for a local login.
    pub rhost: String,
    pub since: UnixTime,
    pub until: UnixTime,
}

/// The policy key `no_device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NoDeviceRule {
    Allow,
    #[default]
    Deny,
    /// Register an authenticator app at the login, where the module line allows it.
    Enroll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AccountState {
    /// No such account: prompt and refuse, like any failure.
    NoAccount,
    /// No active device: the policy (or `nullok`) decides.
    NoDevice,
    /// Short codes are refused until this unix time (keys, recovery and bypass codes
    /// still work).
    Locked {
        until: UnixTime,
    },
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum VerifyOutcome {
    Accepted {
        device: String,
    },
    Refused {
        reason: RefusalKind,
        /// Set when this failure started a lock-out.
        locked_until: Option<UnixTime>,
    },
    /// Refused without being checked: locked out until this unix time.
    Locked {
        until: UnixTime,
    },
}

/// Why a code was refused, for the caller's log line (never shown to the person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RefusalKind {
    /// Not a code at all (wrong length, not digits): `why`, in words for the log (never
    /// the answer).
    Malformed {
        #[serde(default)]
        why: String,
    },
    WrongCode,
    /// A right code already used once.
    Replayed {
        device: String,
    },
    NoDevices,
    NoAccount,
    /// A security key's answer that did not count (an unknown credential, a bad
    /// signature, a sign count that did not grow).
    Key {
        /// For the person (already worded for them).
        message: String,
        /// For the log.
        log: String,
        /// The sign count went backwards: what a cloned key looks like (logged as an
        /// error).
        clone_suspected: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RecoveryOutcome {
    Accepted { kind: CodeKind, remaining: u32 },
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CodeKind {
    Recovery,
    Bypass,
}

/// A proof of an existing device (see [Proofs](crate#proofs)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofReply {
    /// Random, single-use, bound to the caller's uid and the account.
    pub proof: SecretBytes,
    /// Unix time after which the daemon no longer takes it.
    pub expires_at: UnixTime,
    /// Set when a recovery or bypass code proved it: which kind, and how many are left
    /// (to tell the person, as at a login).
    #[serde(default)]
    pub code: Option<CodeUsed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeUsed {
    pub kind: CodeKind,
    pub remaining: u32,
}

/// A registration waiting for its two codes: what the person needs to set up the app.
/// `secret` and `uri` hold the device's secret: never in `Debug`, zeroed when dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTotpReply {
    /// The account, canonical.
    pub user: String,
    pub name: String,
    pub issuer: String,
    /// The secret in base32, without grouping.
    pub secret: SecretBytes,
    /// The `otpauth://` URI for the QR code.
    pub uri: SecretBytes,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    pub digits: u8,
    pub period: u32,
    /// Unix time after which the registration is gone unless finished.
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ResyncReply {
    /// A time-based device's clock offset, in seconds (positive: it runs ahead).
    Clock { drift_secs: i64 },
    /// How many codes an event-based token had made without being used.
    Counter { skipped: i64 },
}

/// A new set of recovery codes, not stored yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodesReply {
    /// To send back in [`Request::RecoveryCommit`] once the codes are written out.
    pub ticket: SecretBytes,
    /// The codes, ungrouped (each in the form a login accepts).
    pub codes: Vec<SecretBytes>,
    /// Unix time after which the ticket is no longer taken (the set is then dropped).
    pub expires_at: UnixTime,
}

/// What a security-key challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyPurpose {
    /// A login: the answer is recorded as one.
    Login,
    /// A proof before a change (see [Proofs](crate#proofs)): the answer is recorded as a
    /// login and yields a proof.
    Proof,
}

/// One of the user's keys, as a client needs it to ask the key (public data only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCredential {
    /// The device name.
    pub name: String,
    pub credential_id: PublicBytes,
    pub rp_id: String,
    pub uv_required: bool,
}

/// A challenge for a touch: valid once, for [`crate::KEY_CHALLENGE_LIFETIME_SECS`], bound
/// to the caller's uid and the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChallengeReply {
    pub ticket: SecretBytes,
    /// 32 random bytes, the key signs over them (as the client data hash).
    pub challenge: PublicBytes,
    pub credentials: Vec<KeyCredential>,
    pub expires_at: UnixTime,
}

/// A key's getAssertion answer, as the key sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAssertion {
    /// The relying-party id of the request the key answered (its allow list is every
    /// credential of the challenge under this id).
    pub rp_id: String,
    /// The credential used; a key may leave it out when the allow list had one entry.
    #[serde(default)]
    pub credential_id: Option<PublicBytes>,
    pub auth_data: PublicBytes,
    pub signature: PublicBytes,
}

/// What the user's `mfa` asks a key to register (authenticatorMakeCredential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fido2ChallengeReply {
    pub ticket: SecretBytes,
    pub rp_id: String,
    pub challenge: PublicBytes,
    pub user_id: PublicBytes,
    /// The account, canonical (the key's user name).
    pub user_name: String,
    /// Credentials the key must not register again (the account's keys).
    pub exclude: Vec<PublicBytes>,
    /// Ask the key for verification (its PIN, or its built-in UV).
    pub needs_uv: bool,
    /// The key must have a PIN set (`require_pin`).
    pub needs_pin: bool,
    pub expires_at: UnixTime,
}

/// A key's attestation object, as the key sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttestation {
    pub fmt: String,
    pub auth_data: PublicBytes,
    #[serde(default)]
    pub alg: Option<i64>,
    pub sig: PublicBytes,
    #[serde(default)]
    pub x5c: Vec<PublicBytes>,
}

/// A security key now active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fido2Reply {
    /// The account, canonical.
    pub user: String,
    pub name: String,
    /// How the attestation was checked, for the person (`packed, self-attested`, …).
    pub attestation: String,
    pub uv_required: bool,
}

/// A registration at login: the app's setup data and the value only this login holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldTotpReply {
    pub pending: PendingTotpReply,
    /// 32 random bytes; the daemon keeps only their hash. Sent back in
    /// [`Request::ConfirmHeld`] and [`Request::ActivateHeld`].
    pub hold: SecretBytes,
    /// The URI's QR code as half-block text lines, drawn by the daemon with the same
    /// code as `mfa enroll totp` (the module only shows it, and links no QR encoder).
    #[serde(default)]
    pub qr: SecretBytes,
    /// The secret in groups of four, for typing in.
    #[serde(default)]
    pub secret_grouped: SecretBytes,
}

/// What a seed file added to the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensImportedReply {
    pub added: u32,
    pub replaced: u32,
    /// `pskc` or `csv`, as read.
    pub format: String,
}

/// One token of the inventory (never its seed), as `mfa admin tokens list --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub serial: String,
    /// `totp` or `hotp`.
    pub kind: String,
    pub digits: u8,
    #[serde(default)]
    pub assigned_to: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    pub imported: i64,
}

/// One device, as `mfa list --json` prints it (the same names and meanings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub name: String,
    /// `totp`, `hotp`, `fido2`, … (the store's kind names).
    pub kind: String,
    /// `pending` or `active`.
    pub state: String,
    pub created: UnixTime,
    pub last_used: Option<UnixTime>,
    pub expires: Option<UnixTime>,
}

/// A hardware token now active for `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenReply {
    /// The account, canonical.
    pub user: String,
    pub name: String,
    pub serial: String,
    /// Counter-based (HOTP: a code per button press) rather than time-based.
    pub event_based: bool,
}

/// The policy as `mfa admin policy show --json` prints it: `None` for a number means the
/// built-in default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReply {
    /// `allow` or `deny`.
    pub self_service: String,
    pub max_devices: u32,
    /// `allow`, `deny` or `enroll`.
    pub no_device: String,
    pub max_failures: Option<u32>,
    pub lockout_seconds: Option<i64>,
    pub window: Option<u32>,
    pub audit_retention_days: Option<u32>,
    /// The retention in effect (the default when `audit_retention_days` is `None`).
    pub audit_retention_days_in_effect: u32,
    /// How long a login is remembered (0: never).
    #[serde(default)]
    pub remember_seconds: u32,
    /// `allow` or `deny`: whether local logins may be remembered.
    #[serde(default)]
    pub remember_local: String,
}

/// One account as `mfa admin list --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEntry {
    pub user: String,
    pub devices: Vec<DeviceEntry>,
    pub recovery_codes_left: u32,
    pub bypass_codes: Vec<BypassEntry>,
    /// Logins remembered without a code.
    #[serde(default)]
    pub remembered: Vec<RememberedEntry>,
}

/// A live bypass code (never the code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BypassEntry {
    pub uses_left: u32,
    pub expires: UnixTime,
    pub issued: UnixTime,
    pub issued_by_uid: u32,
}

/// One audit row, as `mfa admin audit --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: UnixTime,
    pub uid: u32,
    pub user: String,
    pub action: String,
    pub device: Option<String>,
    pub detail: Option<String>,
}

/// A new bypass code: `code` is shown once, ungrouped, never in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BypassReply {
    /// The account, canonical.
    pub user: String,
    pub code: SecretBytes,
    pub uses: u32,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    /// For a person or a log line; never holds a code.
    pub message: String,
}

impl ErrorReply {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Unknown kinds (from a newer daemon) decode as [`ErrorKind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request's protocol version is not the daemon's.
    Version,
    /// Not a request of this protocol (bad CBOR, missing fields).
    Malformed,
    /// A request this daemon does not know (a newer client).
    UnknownRequest,
    /// The frame was over [`crate::MAX_MESSAGE`].
    TooLarge,
    /// The caller may not ask this (another account, as a non-root caller).
    Denied,
    /// A field is out of range (an override, a user name).
    Invalid,
    /// Too many connections or requests from this caller; try again later.
    Busy,
    /// The store cannot answer (missing, unsafe, locked); the login fails closed.
    Unavailable,
    #[serde(other)]
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The body is not CBOR of a message of any version.
    #[error("not a message of this protocol: {0}")]
    Malformed(String),
    /// A well-formed message of another protocol version.
    #[error("protocol version {found}, expected {PROTOCOL_VERSION}")]
    Version { found: u32 },
    /// A message of this version whose request or response is not known here.
    #[error("unknown message of protocol version {PROTOCOL_VERSION}: {0}")]
    Unknown(String),
}

impl DecodeError {
    /// The answer the daemon sends for a request that could not be decoded.
    pub fn reply(&self) -> ErrorReply {
        match self {
            Self::Version { found } => ErrorReply::new(
                ErrorKind::Version,
                format!(
                    "the client speaks protocol version {found}, this mfad speaks version \
                     {PROTOCOL_VERSION}: install matching versions of pam_mfa and mfad"
                ),
            ),
            Self::Frame(FrameError::TooLarge(n)) => ErrorReply::new(
                ErrorKind::TooLarge,
                format!(
                    "message of {n} bytes is over the limit of {}",
                    crate::MAX_MESSAGE
                ),
            ),
            Self::Unknown(e) => ErrorReply::new(
                ErrorKind::UnknownRequest,
                format!("request not known to this mfad (protocol {PROTOCOL_VERSION}): {e}"),
            ),
            Self::Frame(e) => ErrorReply::new(ErrorKind::Malformed, e.to_string()),
            Self::Malformed(e) => ErrorReply::new(ErrorKind::Malformed, e.clone()),
        }
    }
}

/// Only the version, read first so that a message of another version is recognised
/// even when the rest of it means nothing to this one. Other fields are skipped.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

/// ciborium's scratch space for strings, supplied here so that it is zeroed afterwards
/// (a code passes through it).
const SCRATCH: usize = 4096;

/// A message that carries its sender's protocol version.
trait Versioned {
    fn version(&self) -> u32;
}

impl Versioned for RequestMessage {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for ResponseMessage {
    fn version(&self) -> u32 {
        self.version
    }
}

/// Decodes a message of this version in one pass; anything else (another version, or
/// not a message) is looked at again, the version first, to say which it is.
fn decode<T: serde::de::DeserializeOwned + Versioned>(
    body: &[u8],
    what: &str,
) -> Result<T, DecodeError> {
    let mut scratch = Zeroizing::new([0u8; SCRATCH]);
    if let Ok(message) = ciborium::de::from_reader_with_buffer::<T, _>(body, &mut scratch[..])
        && message.version() == PROTOCOL_VERSION
    {
        return Ok(message);
    }
    let probe: VersionProbe = ciborium::de::from_reader_with_buffer(body, &mut scratch[..])
        .map_err(|e| DecodeError::Malformed(format!("{what}: {e}")))?;
    if probe.version != PROTOCOL_VERSION {
        return Err(DecodeError::Version {
            found: probe.version,
        });
    }
    ciborium::de::from_reader_with_buffer(body, &mut scratch[..])
        .map_err(|e| DecodeError::Unknown(format!("{what}: {e}")))
}

/// Encodes into a buffer that is zeroed when dropped (requests carry codes).
fn encode<T: Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut out = Zeroizing::new(Vec::with_capacity(256));
    ciborium::ser::into_writer(value, &mut *out)
        .map_err(|e| FrameError::Io(std::io::Error::other(e.to_string())))?;
    Ok(out)
}

/// Decodes a request body (as [`read_frame`] returns it).
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    decode::<RequestMessage>(body, "request").map(|m| m.request)
}

/// Decodes a response body.
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    decode::<ResponseMessage>(body, "response").map(|m| m.response)
}

pub fn encode_request(request: &Request) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    encode(&RequestMessage {
        version: PROTOCOL_VERSION,
        request: request.clone(),
    })
}

pub fn encode_response(response: &Response) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    encode(&ResponseMessage {
        version: PROTOCOL_VERSION,
        response: response.clone(),
    })
}

/// Reads and decodes one request frame.
pub fn read_request(reader: &mut impl Read) -> Result<Request, DecodeError> {
    let body = read_frame(reader)?;
    decode_request(&body)
}

/// Reads and decodes one response frame.
pub fn read_response(reader: &mut impl Read) -> Result<Response, DecodeError> {
    let body = read_frame(reader)?;
    decode_response(&body)
}

pub fn write_request(writer: &mut impl Write, request: &Request) -> Result<(), FrameError> {
    write_frame(writer, &encode_request(request)?)
}

pub fn write_response(writer: &mut impl Write, response: &Response) -> Result<(), FrameError> {
    write_frame(writer, &encode_response(response)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn request_names_for_log_lines_say_the_kind_and_are_distinct() {
        let names: Vec<&str> = requests().iter().map(Request::name).collect();
        assert_eq!(names[0], "hello");
        assert_eq!(names[2], "verify-code");
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::Hello,
            Request::BeforePrompt {
                line: None,
                context: None,
                user: "alice".into(),
                want_keys: true,
            },
            Request::VerifyCode {
                context: None,
                user: "alice".into(),
                answer: SecretBytes::from_slice(b"123456"),
                overrides: Overrides {
                    window: Some(2),
                    hotp_window: None,
                    max_failures: Some(3),
                    lockout_secs: Some(60),
                },
            },
            Request::VerifyRecovery {
                context: None,
                user: "bob".into(),
                code: SecretBytes::from_slice(b"abcd-efgh-ijkl"),
            },
            Request::ListDevices {
                user: "carol".into(),
            },
        ]
    }

    const SECRET: &[u8] = b"JBSWY3DPEHPK3PXPJBSWY3DP";

    /// The requests of `mfa`'s self-service.
    fn self_service_requests() -> Vec<Request> {
        let proof = Some(SecretBytes::from_slice(b"proof-token-bytes"));
        vec![
            Request::Reauth {
                user: "alice".into(),
                answer: SecretBytes::from_slice(b"654321"),
            },
            Request::BeginTotp {
                user: "alice".into(),
                name: "phone".into(),
                issuer: Some("host".into()),
                proof: proof.clone(),
            },
            Request::FinishTotp {
                user: "alice".into(),
                name: "phone".into(),
                code1: SecretBytes::from_slice(b"111111"),
                code2: SecretBytes::from_slice(b"222222"),
            },
            Request::Rename {
                user: "alice".into(),
                name: "phone".into(),
                new_name: "old-phone".into(),
                proof: None,
            },
            Request::Remove {
                user: "alice".into(),
                name: "phone".into(),
                proof: proof.clone(),
            },
            Request::Resync {
                user: "alice".into(),
                name: "phone".into(),
                code1: SecretBytes::from_slice(b"333333"),
                code2: SecretBytes::from_slice(b"444444"),
                proof: proof.clone(),
            },
            Request::RecoveryGenerate {
                user: "alice".into(),
                proof,
            },
            Request::RecoveryCommit {
                user: "alice".into(),
                ticket: SecretBytes::from_slice(b"ticket-bytes"),
            },
        ]
    }

    /// The administrator's requests and token registration.
    fn admin_requests() -> Vec<Request> {
        vec![
            Request::EnrollToken {
                user: "alice".into(),
                name: "token".into(),
                serial: "SN-1".into(),
                code1: SecretBytes::from_slice(b"555555"),
                code2: SecretBytes::from_slice(b"666666"),
                proof: Some(SecretBytes::from_slice(b"proof-token-bytes")),
            },
            Request::PolicyShow,
            Request::PolicySet {
                key: "window".into(),
                value: "2".into(),
            },
            Request::AdminList,
            Request::Audit {
                user: Some("alice".into()),
                since: Some("7d".into()),
            },
            Request::Audit {
                user: None,
                since: None,
            },
            Request::AuditPrune {
                older_than: Some("90d".into()),
            },
            Request::Bypass {
                user: "bob".into(),
                uses: 2,
                expires_in: "12h".into(),
            },
            Request::Unlock { user: "bob".into() },
            Request::AdminRemove {
                user: "bob".into(),
                name: "phone".into(),
            },
        ]
    }

    fn admin_responses() -> Vec<Response> {
        vec![
            Response::TokenRegistered(TokenReply {
                user: "alice".into(),
                name: "token".into(),
                serial: "SN-1".into(),
                event_based: true,
            }),
            Response::Policy(PolicyReply {
                remember_seconds: 0,
                remember_local: String::new(),
                self_service: "allow".into(),
                max_devices: 8,
                no_device: "deny".into(),
                max_failures: Some(5),
                lockout_seconds: None,
                window: Some(1),
                audit_retention_days: None,
                audit_retention_days_in_effect: 365,
            }),
            Response::Accounts(vec![AccountEntry {
                remembered: Vec::new(),
                user: "bob".into(),
                devices: vec![DeviceEntry {
                    name: "phone".into(),
                    kind: "totp".into(),
                    state: "active".into(),
                    created: 1,
                    last_used: Some(2),
                    expires: None,
                }],
                recovery_codes_left: 10,
                bypass_codes: vec![BypassEntry {
                    uses_left: 1,
                    expires: 9,
                    issued: 3,
                    issued_by_uid: 0,
                }],
            }]),
            Response::AuditRows(vec![AuditEntry {
                at: 5,
                uid: 1000,
                user: "alice".into(),
                action: "rename".into(),
                device: Some("phone".into()),
                detail: None,
            }]),
            Response::Pruned {
                removed: 3,
                rule: "older than 90d".into(),
            },
            Response::BypassCode(BypassReply {
                user: "bob".into(),
                code: SecretBytes::from_slice(b"pqrstuvwxyz2"),
                uses: 2,
                expires_at: 99,
            }),
        ]
    }

    // The administrator's messages and token registration survive
    // a frame unchanged, and optional fields left out by a client decode as `None`.
    #[test]
    fn admin_messages_round_trip() {
        for r in admin_requests() {
            let mut buf = Vec::new();
            write_request(&mut buf, &r).unwrap();
            assert_eq!(read_request(&mut &buf[..]).unwrap(), r);
            assert!(!r.name().is_empty());
        }
        for r in admin_responses() {
            let mut buf = Vec::new();
            write_response(&mut buf, &r).unwrap();
            assert_eq!(read_response(&mut &buf[..]).unwrap(), r);
        }
        #[derive(Serialize)]
        enum Bare {
            Audit {},
            AuditPrune {},
        }
        for (bare, want) in [
            (
                Bare::Audit {},
                Request::Audit {
                    user: None,
                    since: None,
                },
            ),
            (
                Bare::AuditPrune {},
                Request::AuditPrune { older_than: None },
            ),
        ] {
            let b = body(&Foreign {
                version: PROTOCOL_VERSION,
                request: bare,
            });
            assert_eq!(decode_request(&b).unwrap(), want);
        }
        assert_eq!(admin_requests()[4].user(), Some("alice"));
        assert_eq!(admin_requests()[1].user(), None);
    }

    // Token codes, proofs and bypass codes never show in Debug output (log lines).
    #[test]
    fn admin_secrets_are_not_debug_printed() {
        let shown = format!("{:?} {:?}", admin_requests(), admin_responses());
        for secret in ["555555", "666666", "proof-token", "pqrstuvwxyz2"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("SN-1") && shown.contains("older than 90d"));
    }

    fn self_service_responses() -> Vec<Response> {
        vec![
            Response::Proof(ProofReply {
                proof: SecretBytes::from_slice(b"proof-token-bytes"),
                expires_at: 9,
                code: Some(CodeUsed {
                    kind: CodeKind::Recovery,
                    remaining: 9,
                }),
            }),
            Response::PendingTotp(PendingTotpReply {
                user: "alice".into(),
                name: "phone".into(),
                issuer: "host".into(),
                secret: SecretBytes::from_slice(SECRET),
                uri: SecretBytes::from_slice(
                    b"otpauth://totp/host:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DP",
                ),
                algorithm: "SHA1".into(),
                digits: 6,
                period: 30,
                expires_at: 600,
            }),
            Response::Done,
            Response::Resynced(ResyncReply::Clock { drift_secs: -60 }),
            Response::Resynced(ResyncReply::Counter { skipped: 3 }),
            Response::RecoveryCodes(RecoveryCodesReply {
                ticket: SecretBytes::from_slice(b"ticket-bytes"),
                codes: vec![SecretBytes::from_slice(b"abcdefghjkmn")],
                expires_at: 300,
            }),
        ]
    }

    #[test]
    fn self_service_messages_round_trip() {
        for r in self_service_requests() {
            let mut buf = Vec::new();
            write_request(&mut buf, &r).unwrap();
            assert_eq!(read_request(&mut &buf[..]).unwrap(), r);
        }
        for r in self_service_responses() {
            let mut buf = Vec::new();
            write_response(&mut buf, &r).unwrap();
            assert_eq!(read_response(&mut &buf[..]).unwrap(), r);
        }
        // A change sent without its optional proof decodes with none.
        #[derive(Serialize)]
        enum Old {
            Remove {
                user: &'static str,
                name: &'static str,
            },
        }
        let b = body(&Foreign {
            version: PROTOCOL_VERSION,
            request: Old::Remove {
                user: "alice",
                name: "phone",
            },
        });
        assert_eq!(
            decode_request(&b).unwrap(),
            Request::Remove {
                user: "alice".into(),
                name: "phone".into(),
                proof: None
            }
        );
    }

    // Secrets, codes, proofs and tickets never show in Debug output (log lines).
    #[test]
    fn self_service_secrets_are_not_debug_printed() {
        let shown = format!(
            "{:?} {:?}",
            self_service_requests(),
            self_service_responses()
        );
        for secret in [
            "JBSWY3DP",
            "654321",
            "111111",
            "333333",
            "proof-token",
            "ticket-bytes",
            "abcdefghjkmn",
            "otpauth",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("phone") && shown.contains("old-phone"));
    }

    fn responses() -> Vec<Response> {
        vec![
            Response::Hello {
                protocol: PROTOCOL_VERSION,
                daemon: "0.1.0".into(),
                store: "/var/lib/pam_mfa/devices.db".into(),
            },
            Response::BeforePrompt(BeforePromptReply {
                decision: None,
                remembered_until: None,
                state: AccountState::Locked {
                    until: 1_700_000_000,
                },
                has_code_device: true,
                keys: 2,
                no_device: NoDeviceRule::Enroll,
                store_exists: true,
            }),
            Response::Verified(VerifyOutcome::Accepted {
                device: "phone".into(),
            }),
            Response::Verified(VerifyOutcome::Refused {
                reason: RefusalKind::Replayed {
                    device: "phone".into(),
                },
                locked_until: Some(5),
            }),
            Response::Verified(VerifyOutcome::Locked { until: 7 }),
            Response::Recovery(RecoveryOutcome::Accepted {
                kind: CodeKind::Bypass,
                remaining: 1,
            }),
            Response::Recovery(RecoveryOutcome::Refused),
            Response::Devices(vec![DeviceEntry {
                name: "phone".into(),
                kind: "totp".into(),
                state: "active".into(),
                created: 1,
                last_used: None,
                expires: Some(9),
            }]),
            Response::Error(ErrorReply::new(ErrorKind::Denied, "no")),
        ]
    }

    #[test]
    fn round_trips_through_frames() {
        for r in requests() {
            let mut buf = Vec::new();
            write_request(&mut buf, &r).unwrap();
            assert_eq!(read_request(&mut &buf[..]).unwrap(), r);
        }
        for r in responses() {
            let mut buf = Vec::new();
            write_response(&mut buf, &r).unwrap();
            assert_eq!(read_response(&mut &buf[..]).unwrap(), r);
        }
    }

    #[test]
    fn codes_are_not_debug_printed() {
        let r = &requests()[2];
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("123456") && !shown.contains("49, 50"),
            "{shown}"
        );
        let shown = format!("{:?}", requests()[3]);
        assert!(!shown.contains("abcd"), "{shown}");
    }

    #[derive(Serialize)]
    struct Foreign<V, T> {
        version: V,
        request: T,
    }

    fn body<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    #[test]
    fn another_version_is_named_in_the_error() {
        // A future client whose request means nothing to this version.
        let b = body(&Foreign {
            version: 2,
            request: ("Something", [1, 2, 3]),
        });
        let e = decode_request(&b).unwrap_err();
        assert!(matches!(e, DecodeError::Version { found: 2 }), "{e:?}");
        let reply = e.reply();
        assert_eq!(reply.kind, ErrorKind::Version);
        assert!(reply.message.contains("version 2") && reply.message.contains("version 1"));
        // The same request under this version number is an unknown request.
        let b = body(&Foreign {
            version: PROTOCOL_VERSION,
            request: "Frobnicate",
        });
        let e = decode_request(&b).unwrap_err();
        assert_eq!(e.reply().kind, ErrorKind::UnknownRequest, "{e:?}");
    }

    #[test]
    fn garbage_is_malformed() {
        for b in [
            &b"\xff\xff\xff"[..],
            b"hello",
            &[0xa1, 0x67][..],
            &body(&"just a string"),
            &body(&Foreign {
                version: "one",
                request: 1,
            }),
        ] {
            let e = decode_request(b).unwrap_err();
            assert!(matches!(e, DecodeError::Malformed(_)), "{b:?} gave {e:?}");
            assert_eq!(e.reply().kind, ErrorKind::Malformed);
        }
        // Deep nesting is refused by ciborium's recursion limit, not a stack overflow.
        let deep = vec![0x81u8; 100_000];
        assert!(decode_request(&deep).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored_and_new_ones_default() {
        #[derive(Serialize)]
        struct Later {
            version: u32,
            request: LaterRequest,
            extra: &'static str,
        }
        #[derive(Serialize)]
        enum LaterRequest {
            BeforePrompt { user: &'static str, future: u8 },
        }
        let b = body(&Later {
            version: PROTOCOL_VERSION,
            request: LaterRequest::BeforePrompt {
                user: "alice",
                future: 1,
            },
            extra: "x",
        });
        assert_eq!(
            decode_request(&b).unwrap(),
            Request::BeforePrompt {
                line: None,
                context: None,
                user: "alice".into(),
                want_keys: false
            }
        );
    }

    #[test]
    fn unknown_error_kind_decodes_as_other() {
        #[derive(Serialize)]
        enum R {
            Error {
                kind: &'static str,
                message: &'static str,
            },
        }
        let b = body(&ResponseMessage2 {
            version: PROTOCOL_VERSION,
            response: R::Error {
                kind: "SomethingNew",
                message: "m",
            },
        });
        #[derive(Serialize)]
        struct ResponseMessage2 {
            version: u32,
            response: R,
        }
        assert_eq!(
            decode_response(&b).unwrap(),
            Response::Error(ErrorReply::new(ErrorKind::Other, "m"))
        );
    }
}

#[cfg(test)]
mod seeds {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Writes the fuzz seed corpus (valid frames) when PROTOCOL_SEED_DIR is set:
    /// `PROTOCOL_SEED_DIR=fuzz/corpus/protocol_decode cargo test -p pam_mfa_protocol seeds`.
    #[test]
    fn write_seed_corpus() {
        let Some(dir) = std::env::var_os("PROTOCOL_SEED_DIR") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let requests = [
            ("hello", Request::Hello),
            (
                "before_prompt",
                Request::BeforePrompt {
                    line: None,
                    context: None,
                    user: "alice".into(),
                    want_keys: true,
                },
            ),
            (
                "verify_code",
                Request::VerifyCode {
                    context: None,
                    user: "alice".into(),
                    answer: SecretBytes::from_slice(b"123456"),
                    overrides: Overrides {
                        window: Some(1),
                        hotp_window: Some(10),
                        max_failures: Some(5),
                        lockout_secs: Some(300),
                    },
                },
            ),
            (
                "verify_recovery",
                Request::VerifyRecovery {
                    context: None,
                    user: "bob".into(),
                    code: SecretBytes::from_slice(b"abcd-efgh-jkmn"),
                },
            ),
            (
                "list_devices",
                Request::ListDevices {
                    user: "carol".into(),
                },
            ),
        ];
        for (name, r) in requests {
            let mut frame = Vec::new();
            write_request(&mut frame, &r).unwrap();
            std::fs::write(dir.join(name), frame).unwrap();
        }
    }
}
