//! mfad's PostgreSQL fleet backend (issue 19): one database for every host's devices,
//! reached with the host's own role, which can only call the schema's `SECURITY DEFINER`
//! functions (see `sql/fleet.sql`), so a host never reads a secret.
//!
//! - [`config`]: the host's `/etc/pam_mfa/mfad.conf`;
//! - [`connect`]: reaching a writable server within one deadline, over verify-full TLS;
//! - [`client`]: [`Fleet`], one typed call per host function;
//! - [`admin`]: what `mfa admin fleet` does as the database administrator.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod client;
pub mod config;
pub mod connect;
mod error;

pub use client::{
    CheckSettings, CodeOutcome, FinishOutcome, Fleet, FleetAuditRow, FleetDevice, FleetPolicy,
    FleetToken, KeyLogin, LoginState, RenameOutcome, ResyncOutcome, TokenEnrollment, TokenImport,
    TokenRemoval, call_deadline,
};
pub use config::{Credential, FleetConfig, HostPort};
pub use error::{FleetError, RefusalCode, Result};
