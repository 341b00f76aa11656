//! The library's one error type. Messages are written for the person reading them (an
//! administrator in syslog, a user at the `mfa` prompt) and never include a secret or code.

use crate::clock::UnixTime;
use std::fmt;
use std::path::PathBuf;

use pam_mfa_fido2::{TransportError, verify};

use crate::code::CodeError;

/// The message a non-root user gets when the policy's `self_service` is `deny` (the
/// "greyed-out" case). Here because [`Error::ManagedByAdmin`] says it; the policy
/// re-exports it.
pub const MANAGED_BY_ADMIN: &str =
    "Device registration is managed by your administrator; contact them";

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refusing device store {path}: {reason}")]
    UnsafeStore { path: PathBuf, reason: String },
    #[error("device store {path} is not a pam_mfa database ({detail})")]
    NotADatabase { path: PathBuf, detail: String },
    #[error(
        "device store {path} is empty (truncated?); restore it from a backup, or remove it to \
         start again with no devices"
    )]
    Uninitialised { path: PathBuf },
    #[error(
        "device store {path} has schema version {found}, newer than this pam_mfa understands \
         ({known}); upgrade pam_mfa"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("device store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device store error: {}", describe_sqlite(.0))]
    Sqlite(#[from] rusqlite::Error),
    #[error("device store holds an invalid record: {0}")]
    CorruptRecord(String),
    #[error("the system clock is before 1970")]
    Clock,
    #[error("cannot get random bytes from the kernel: {0}")]
    Random(String),
    #[error("invalid device name: {0}")]
    InvalidDeviceName(String),
    #[error("invalid user name")]
    InvalidUserName,
    #[error("cannot look up the account in the password database: {0}")]
    AccountLookup(String),
    #[error("invalid secret (expected base32)")]
    InvalidSecret,
    #[error("invalid otpauth URI: {0}")]
    InvalidUri(String),
    #[error("unsupported OTP parameters: {0}")]
    InvalidParameters(String),
    #[error("{user} already has a device named \"{name}\"")]
    DuplicateName { user: String, name: String },
    #[error("{user} has no device named \"{name}\"")]
    NoSuchDevice { user: String, name: String },
    #[error(
        "{user} has no pending registration named \"{name}\" (it may have expired after 10 \
         minutes; start again with `mfa enroll totp`)"
    )]
    NoPendingDevice { user: String, name: String },
    /// `finish` of a device whose registration is already finished: saying "no pending
    /// registration… it may have expired" sent people to register it again.
    #[error(
        "{user}'s device \"{name}\" is already registered and active: there is nothing to \
         finish (`mfa list` shows it)"
    )]
    AlreadyActive { user: String, name: String },
    #[error(
        "the device registered during this login is gone (its 10 minutes ran out, or another \
         registration of the same name replaced it)"
    )]
    HeldRegistrationGone,
    #[error("device \"{name}\" is still pending; finish its registration first")]
    DeviceNotActive { name: String },
    #[error("{user} already has {max} active devices, the most allowed; remove one first")]
    TooManyDevices { user: String, max: u32 },
    #[error(
        "{user} already has {max} unfinished registrations, the most allowed at once; finish \
         one (`mfa enroll finish NAME`) or wait until it expires (the next at {}); `mfa list` \
         shows them",
        crate::clock::format_local(*.next_expiry)
    )]
    TooManyPending {
        user: String,
        max: u32,
        next_expiry: i64,
    },
    #[error(
        "{user} began {max} registrations in the last hour, the most allowed; try again \
         after {}",
        crate::clock::format_local(*.retry_at)
    )]
    TooManyBegun {
        user: String,
        max: u32,
        retry_at: UnixTime,
    },
    /// The administrator turned self-service off (the "greyed-out" case).
    #[error("{}", MANAGED_BY_ADMIN)]
    ManagedByAdmin,
    #[error("--issuer must be 1 to 64 printable characters")]
    InvalidIssuer,
    /// The registration's URI cannot be drawn as a QR code (only a far too long
    /// issuer or account name does that, and the issuer is checked before).
    /// (What `crate::qr::QrError` said: the error type names nothing above the store.)
    #[error("{0}")]
    QrCode(String),
    #[error(
        "{user} made {max} changes to their devices in the last hour, the most allowed; \
         try again after {}",
        crate::clock::format_local(*.retry_at)
    )]
    TooManyChanges {
        user: String,
        max: u32,
        retry_at: UnixTime,
    },
    #[error("{which} code: {problem}")]
    MalformedCode {
        which: &'static str,
        problem: CodeError,
    },
    #[error(
        "the first code is not valid for this device right now; enter the code the app shows, \
         then the next one"
    )]
    FirstCodeWrong,
    #[error(
        "the first code is valid but the second code is not; enter the next code the app \
         shows after the first one"
    )]
    SecondCodeWrong,
    #[error(
        "both codes are valid but they are not consecutive; enter a code, wait for the app \
         to show the next one, and enter that"
    )]
    NotConsecutive,
    #[error(
        "the codes belong to a time about {minutes} minutes {direction} this host's clock; \
         check the clock of the device (or this host's)"
    )]
    ClockSkew {
        minutes: i64,
        direction: &'static str,
    },
    #[error(
        "no two consecutive codes found within 12 hours of this host's clock; check the \
         codes and the device's clock"
    )]
    ResyncFailed,
    #[error(
        "these codes are not newer than the last code accepted from this device; wait for \
         new codes and try again"
    )]
    CodesAlreadyUsed,
    #[error("{0}")]
    Fido2(#[from] Fido2Error),
    #[error("invalid policy setting: {0}")]
    InvalidPolicy(String),
    #[error("device \"{name}\" is a security key; only code devices can be {action}")]
    NotTotp { name: String, action: &'static str },
    #[error("{0}")]
    TokenFile(#[from] FileError),
    #[error(
        "token {serial} is already in the inventory; nothing was imported (--replace loads \
         the file's seeds over the ones there)"
    )]
    DuplicateSerial { serial: String },
    #[error("no token with serial number {serial} in the inventory")]
    NoSuchToken { serial: String },
    #[error(
        "token {serial} is assigned to {user} as \"{device}\"; remove that device first \
         (mfa admin remove {user} {device})"
    )]
    TokenAssigned {
        serial: String,
        user: String,
        device: String,
    },
    /// Said to whoever registers a token, root or not, without telling which: a user
    /// must not learn from it which serials exist or who has them.
    #[error(
        "token {serial} is not in the inventory, or is already assigned; check the serial \
         number on the back of the token, or ask your administrator"
    )]
    TokenUnavailable { serial: String },
    /// The one answer to a user registering a token for themselves, whatever went wrong
    /// (see `enrollment::register_own_token`): which serials exist, which are free and
    /// which code was right stay unsaid.
    #[error(
        "the token was not registered: no unassigned token with that serial number shows \
         these two codes one after the other, or you already have the most devices allowed \
         or a device of that name (see `mfa list`); check the serial number on the back of \
         the token and press its button (or read it) twice more"
    )]
    TokenNotRegistered,
    /// A serial number that cannot be one (its form only: says nothing about the
    /// inventory).
    #[error("{0}")]
    InvalidSerial(String),
    #[error(
        "too many failed attempts: locked until {}; nothing was changed",
        crate::clock::format_local(*until)
    )]
    LockedOut { until: UnixTime },
    #[error(
        "no two consecutive codes found within the next {lookahead} codes of the token; \
         check the codes (press the button once for each)"
    )]
    CounterNotFound { lookahead: i64 },
}

impl Error {
    /// Whether this is a failure of the system rather than of the request (the store
    /// unreadable, unsafe or damaged, no clock, no randomness, the account database
    /// unreachable): such errors fail closed as they are and are counted against nobody,
    /// while the others are the person's to read.
    pub fn is_system(&self) -> bool {
        matches!(
            self,
            Self::UnsafeStore { .. }
                | Self::NotADatabase { .. }
                | Self::Uninitialised { .. }
                | Self::SchemaTooNew { .. }
                | Self::Io { .. }
                | Self::Sqlite(_)
                | Self::CorruptRecord(_)
                | Self::Clock
                | Self::Random(_)
                | Self::AccountLookup(_)
        )
    }

    /// Whether SQLite found the store's file damaged (as opposed to unreadable, locked or
    /// refused), so that `mfa doctor` can advise restoring it.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            Self::Sqlite(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt)
        )
    }
}

/// Names the storage conditions an administrator has to act on (a full or read-only file
/// system) in words, instead of SQLite's generic "disk I/O error" or "unable to open
/// database file"; anything else keeps SQLite's own message.
fn describe_sqlite(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    let what = match e.sqlite_error_code() {
        Some(C::DiskFull) => "the file system holding it is full",
        Some(C::ReadOnly) => "it is read-only (a read-only file system or mount)",
        Some(C::CannotOpen) => {
            "it cannot be opened for writing (a read-only file system or mount, or missing \
             permissions)"
        }
        Some(C::SystemIoFailure) => {
            "an I/O error (is the file system holding it full, read-only or failing?)"
        }
        _ => return e.to_string(),
    };
    format!("{what}; nothing can be recorded ({e})")
}

/// What can go wrong registering a key, worded for the person at the terminal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fido2Error {
    #[error("no security key found; plug it in and try again")]
    NoKey,
    #[error("the security key was not touched in time")]
    Timeout,
    #[error("this security key is already registered for this user")]
    AlreadyRegistered,
    #[error("the security key asks for its PIN")]
    PinRequired,
    #[error("wrong security key PIN")]
    PinInvalid,
    #[error(
        "the security key's PIN is blocked (too many wrong PINs); reset the key or use \
         another one"
    )]
    PinBlocked,
    #[error(
        "the security key has no PIN set; set one with the key maker's tool first, or \
         register it without --pin/--uv"
    )]
    NoPinSet,
    #[error("invalid RP id (1 to 255 printable ASCII characters, no spaces)")]
    InvalidRpId,
    #[error("the security key refused: {0}")]
    Device(String),
    #[error("the security key's answer does not verify: {0}")]
    Rejected(verify::Rejection),
}

impl From<TransportError> for Fido2Error {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::NoKey => Self::NoKey,
            TransportError::Timeout => Self::Timeout,
            TransportError::Excluded => Self::AlreadyRegistered,
            TransportError::PinRequired => Self::PinRequired,
            TransportError::PinInvalid => Self::PinInvalid,
            TransportError::PinBlocked => Self::PinBlocked,
            TransportError::NoCredentials => {
                Self::Device("it holds no credential for this request".to_owned())
            }
            TransportError::Device(d) => Self::Device(d),
        }
    }
}

impl From<pam_mfa_fido2::registration::RegisterFailure> for Fido2Error {
    fn from(e: pam_mfa_fido2::registration::RegisterFailure) -> Self {
        use pam_mfa_fido2::registration::RegisterFailure;
        match e {
            RegisterFailure::NoPinSet => Self::NoPinSet,
            RegisterFailure::PinRequired => Self::PinRequired,
            RegisterFailure::Key(t) => Self::from(t),
        }
    }
}

/// Where in a seed file something is wrong, for the message that rejects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole (its size, its encoding, its XML syntax, its encryption keys);
    /// the message names no place then.
    File,
    /// A CSV line (1-based).
    Line(usize),
    /// The n-th `<KeyPackage>` (1-based) of a PSKC file, which starts at `line`.
    KeyPackage { index: usize, line: u32 },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => f.write_str("the file"),
            Self::Line(n) => write!(f, "line {n}"),
            Self::KeyPackage { index, line } => write!(f, "KeyPackage {index} (line {line})"),
        }
    }
}

/// Why a seed file was rejected. Never quotes a secret: problems name fields, not values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub location: Location,
    pub problem: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location != Location::File {
            write!(f, "{}: ", self.location)?;
        }
        write!(f, "{}; nothing was imported", self.problem)
    }
}

impl std::error::Error for FileError {}

impl FileError {
    pub fn new(location: Location, problem: impl Into<String>) -> Self {
        Self {
            location,
            problem: problem.into(),
        }
    }
}
