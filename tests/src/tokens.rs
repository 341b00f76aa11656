//! Hardware OTP tokens as an administrator handles them: seed files loaded with the real
//! `mfa admin tokens import`, the inventory read back from `mfa admin tokens list --json`,
//! tokens registered with `mfa enroll token`, and their codes from `oathtool`.
//!
//! Shared by the tokens of one host (`hardware_tokens.rs`) and those of a fleet
//! (`fleet_tokens.rs`), which drive the same commands: the fleet's tests pass a host's
//! [`TestEnv`].

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{MfaOutput, TestEnv, tool};

/// The RFC 4226 test secret "12345678901234567890" in hex (as `oathtool` takes it).
pub const KEY_HEX: &str = "3132333435363738393031323334353637383930";
/// The same RFC 4226 test secret in base32 (as seed files may give it).
pub const KEY_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// The HOTP code of `key_hex` for `counter` with `digits` digits, from `oathtool`: an
/// implementation independent of the product's.
pub fn hotp(key_hex: &str, counter: i64, digits: u32) -> String {
    let mut cmd = Command::new(tool("oathtool", "oathtool"));
    cmd.args(["--hotp", &format!("--digits={digits}"), "-c"])
        .arg(counter.to_string())
        .arg(key_hex);
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// Writes `contents` to the file `name` in the test's directory, and returns its path.
pub fn write(env: &TestEnv, name: &str, contents: &[u8]) -> PathBuf {
    let path = env.path(name);
    std::fs::write(&path, contents).expect("write a test file");
    path
}

/// `mfa admin tokens import FILE EXTRA…`.
pub fn import(env: &TestEnv, file: &Path, extra: &[&str]) -> MfaOutput {
    let mut args = vec!["admin", "tokens", "import", file.to_str().expect("path")];
    args.extend_from_slice(extra);
    env.mfa(&args)
}

/// Writes the seed file `text` as `name` in the test's directory and imports it with
/// `mfa admin tokens import FILE EXTRA…`.
pub fn import_text(env: &TestEnv, name: &str, text: &str, extra: &[&str]) -> MfaOutput {
    let file = write(env, name, text.as_bytes());
    import(env, &file, extra)
}

/// The inventory as `mfa admin tokens list --json` prints it, asserting it succeeded.
pub fn inventory(env: &TestEnv) -> Vec<Value> {
    inventory_hiding(env, &[])
}

/// [`inventory`], also asserting that none of `secrets` (the seeds, in any spelling) is
/// in what the listing printed: seeds never leave the inventory.
pub fn inventory_hiding(env: &TestEnv, secrets: &[&str]) -> Vec<Value> {
    let out = env.mfa(&["admin", "tokens", "list", "--json"]);
    out.assert_success();
    for seed in secrets {
        assert!(!out.stdout.contains(seed), "a seed listed: {}", out.stdout);
    }
    match out.json() {
        Value::Array(items) => items,
        other => panic!("tokens list --json printed {other}"),
    }
}

/// The entry of `list` (an [`inventory`]) with serial number `serial`; panics if none.
pub fn token<'a>(list: &'a [Value], serial: &str) -> &'a Value {
    list.iter()
        .find(|t| t["serial"] == serial)
        .unwrap_or_else(|| panic!("no token {serial} in {list:?}"))
}

/// Root's `mfa --user USER enroll token NAME SERIAL C1 C2`: registers the token with
/// serial number `serial` for `user` by two consecutive codes.
pub fn enroll(
    env: &TestEnv,
    user: &str,
    name: &str,
    serial: &str,
    c1: &str,
    c2: &str,
) -> MfaOutput {
    env.mfa(&["--user", user, "enroll", "token", name, serial, c1, c2])
}
