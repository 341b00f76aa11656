//! How the benchmark's synthetic accounts are named and numbered; shared by the NSS module
//! (`lib.rs`) and the benchmark (`main.rs`), so both always agree.

/// Every benchmark account is `PREFIX` followed by exactly `DIGITS` decimal digits.
pub const PREFIX: &str = "mfab";
pub const DIGITS: usize = 7;
/// Account `n` has uid (and primary gid) `FIRST_UID + n`: far above any real account.
pub const FIRST_UID: u32 = 3_000_000;
/// Accounts 0 ..= MAX_INDEX exist.
pub const MAX_INDEX: u32 = 9_999_999;

/// The name of account `n`.
#[allow(dead_code)] // the NSS module only parses names
pub fn name(n: u32) -> String {
    format!("{PREFIX}{n:0width$}", width = DIGITS)
}

/// The account number of `name`, if it is one of ours.
#[allow(dead_code)] // the benchmark only formats names
pub fn parse(name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(PREFIX.as_bytes())?;
    if digits.len() != DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u32, |n, d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// The account number of `uid`, if it is one of ours.
#[allow(dead_code)] // the benchmark only formats names
pub fn from_uid(uid: u32) -> Option<u32> {
    uid.checked_sub(FIRST_UID).filter(|&n| n <= MAX_INDEX)
}
