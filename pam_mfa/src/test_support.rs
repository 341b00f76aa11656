//! Helpers for the library's own tests: temporary stores, and codes from `oathtool` (an
//! independent implementation) so the tests never check our TOTP code against itself.

use std::process::Command;

use crate::names::{DeviceName, UserName};
use crate::store::Store;

pub struct TempStore {
    _dir: tempfile::TempDir,
    pub store: Store,
}

pub fn temp_store() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store/devices.db");
    let store = Store::open_or_create(&path).unwrap();
    TempStore { _dir: dir, store }
}

/// The TOTP code of `secret_b32` at Unix time `at`, from oathtool.
pub fn oathtool(secret_b32: &str, at: i64) -> String {
    oathtool_with(secret_b32, at, &["--totp"])
}

/// `options` must include the `--totp[=ALG]` option.
pub fn oathtool_with(secret_b32: &str, at: i64, options: &[&str]) -> String {
    let out = Command::new("oathtool")
        .args(["-b", "-N", &format!("@{at}")])
        .args(options)
        .arg(secret_b32)
        .output()
        .expect("oathtool is installed (apt-get install oathtool)");
    assert!(out.status.success(), "oathtool failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

pub fn device(name: &str) -> DeviceName {
    DeviceName::parse(name).unwrap()
}

/// A time 5 s into a 30 s step, so tests never straddle a step boundary.
pub const T0: i64 = 1_800_000_005;
