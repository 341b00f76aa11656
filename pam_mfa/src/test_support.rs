//! Helpers for the library's own tests: temporary stores, and codes from `oathtool` (an
//! independent implementation) so the tests never check our TOTP code against itself.

use crate::clock::UnixTime;
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
pub fn oathtool(secret_b32: &str, at: UnixTime) -> String {
    oathtool_with(secret_b32, at, &["--totp"])
}

/// `options` must include the `--totp[=ALG]` option.
pub fn oathtool_with(secret_b32: &str, at: UnixTime, options: &[&str]) -> String {
    let now = format!("@{at}");
    let mut args = vec!["-b", "-N", &now];
    args.extend_from_slice(options);
    args.push(secret_b32);
    run_oathtool(&args)
}

fn run_oathtool(args: &[&str]) -> String {
    let out = Command::new("oathtool")
        .args(args)
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

/// The HOTP code of the hex key `key_hex` for `counter`, from oathtool; `options` may add
/// `--digits=8` and the like.
pub fn oathtool_hotp(key_hex: &str, counter: i64, options: &[&str]) -> String {
    let counter = counter.to_string();
    let mut args = vec!["--hotp", "-c", &counter];
    args.extend_from_slice(options);
    args.push(key_hex);
    run_oathtool(&args)
}

/// The RFC 4226 test secret, "12345678901234567890", in hex.
pub const RFC4226_KEY_HEX: &str = "3132333435363738393031323334353637383930";

/// Loads one token into the inventory from CSV text, as `mfa admin tokens import` would.
pub fn import_csv(ts: &mut TempStore, csv: &str) {
    let seeds = crate::tokens::parse(csv.as_bytes(), None, None).unwrap();
    let tx = ts.store.write().unwrap();
    crate::tokens::inventory::import(&tx, &seeds, false, T0).unwrap();
    tx.commit().unwrap();
}

/// oathtool's `--hotp` is SHA-1 only. A TOTP code with a one-second step at Unix time C is
/// the HOTP code of counter C (RFC 6238 §4.2, T0 = 0), so SHA-256/512 tokens are checked
/// against oathtool's `--totp=sha256|sha512` that way.
pub fn oathtool_hotp_sha2(key_hex: &str, counter: i64, hash: &str, digits: u8) -> String {
    run_oathtool(&[
        &format!("--totp={hash}"),
        &format!("--digits={digits}"),
        "--time-step-size=1s",
        &format!("--now=@{counter}"),
        key_hex,
    ])
}
