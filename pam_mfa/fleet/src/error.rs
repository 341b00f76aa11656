//! What a fleet call can fail with, sorted by what mfad does about it: `Unavailable`
//! means "no answer" (`PAM_AUTHINFO_UNAVAIL`, never success), `Refused` is the database
//! saying no for a reason the person can fix, `Database` is anything else.
//!
//! No variant ever holds a secret: messages come from the driver (which does not quote
//! passwords), from the server's primary message only (never its DETAIL, which can quote
//! a row), or from this crate.

use std::fmt;

pub type Result<T> = std::result::Result<T, FleetError>;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No writable server within the deadline, the connection lost during the call, or
    /// no answer in time.
    #[error("fleet database unavailable: {0}")]
    Unavailable(String),
    /// A host function refused with one of the SQLSTATEs of class MF.
    #[error("{message}")]
    Refused { code: RefusalCode, message: String },
    /// Any other error the database reported.
    #[error("fleet database error: {0}")]
    Database(String),
}

/// The refusals the caller tells apart (CONTRACT.md's SQLSTATE class `MF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// MF001
    NameTaken,
    /// MF002
    TooManyDevices,
    /// MF003
    TooManyPending,
    /// MF004
    NoSuchDevice,
    /// MF005
    BadArgument,
    /// MF020: too many registrations begun within the hour (`pam_mfa::limits::MAX_BEGUN`);
    /// the message ends with the Unix time from which there is room again.
    TooManyBegun,
}

impl RefusalCode {
    pub fn from_sqlstate(code: &str) -> Option<Self> {
        Some(match code {
            "MF001" => Self::NameTaken,
            "MF002" => Self::TooManyDevices,
            "MF003" => Self::TooManyPending,
            "MF004" => Self::NoSuchDevice,
            "MF005" => Self::BadArgument,
            "MF020" => Self::TooManyBegun,
            _ => return None,
        })
    }

    pub fn sqlstate(self) -> &'static str {
        match self {
            Self::NameTaken => "MF001",
            Self::TooManyDevices => "MF002",
            Self::TooManyPending => "MF003",
            Self::NoSuchDevice => "MF004",
            Self::BadArgument => "MF005",
            Self::TooManyBegun => "MF020",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sqlstate())
    }
}

impl FleetError {
    /// Sorts an error of a call on a connection that was up: a closed connection is
    /// `Unavailable`, an MF SQLSTATE is `Refused`, the rest `Database` (primary message
    /// and SQLSTATE only).
    pub(crate) fn from_call(what: &str, e: &tokio_postgres::Error) -> Self {
        if e.is_closed() {
            return Self::Unavailable(format!("the connection was lost during {what}"));
        }
        match e.as_db_error() {
            Some(db) => {
                let state = db.code().code();
                match RefusalCode::from_sqlstate(state) {
                    Some(code) => Self::Refused {
                        code,
                        message: db.message().to_owned(),
                    },
                    None => Self::Database(format!("{what}: {} (SQLSTATE {state})", db.message())),
                }
            }
            None => Self::Database(format!("{what}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_round_trip() {
        for c in [
            RefusalCode::NameTaken,
            RefusalCode::TooManyDevices,
            RefusalCode::TooManyPending,
            RefusalCode::NoSuchDevice,
            RefusalCode::BadArgument,
            RefusalCode::TooManyBegun,
        ] {
            assert_eq!(RefusalCode::from_sqlstate(c.sqlstate()), Some(c));
        }
        assert_eq!(RefusalCode::from_sqlstate("23505"), None);
    }
}
