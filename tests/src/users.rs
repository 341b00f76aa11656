//! Real, throw-away user accounts.
//!
//! `mfa --user X` insists that X is an existing account, and the PAM module is asked about
//! real users, so each test makes its own accounts with `useradd` and deletes them when it
//! ends. Names are random, so tests running in parallel threads (or a leftover account of
//! an interrupted run) never collide.

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use crate::paths;

/// Prefix of every account the tests create (`mfat` + 8 hex digits, well under the
/// 32-character limit), so leftovers of a killed run are easy to recognise.
pub const USER_PREFIX: &str = "mfat";

/// How many times a useradd/userdel that failed (typically because a concurrent test
/// holds the lock on /etc/passwd) is tried again.
const ATTEMPTS: u32 = 60;

/// A user account that exists for as long as this value lives.
#[derive(Debug)]
pub struct TestUser {
    name: String,
}

/// Random lowercase hex digits from the kernel.
pub fn random_hex(digits: usize) -> String {
    let mut bytes = vec![0u8; digits.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("cannot read /dev/urandom");
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(digits);
    s
}

/// A short pause that differs between threads, so retrying writers do not stay in step.
fn backoff(attempt: u32) {
    let jitter = u64::from_str_radix(&random_hex(2), 16).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(
        20 + u64::from(attempt.min(10)) * 10 + jitter,
    ));
}

impl TestUser {
    /// Creates a new account with no home directory, the default group and no login shell.
    pub fn new() -> Self {
        Self::create(&[])
    }

    /// Creates a second name for `other`'s account: a passwd entry with the same uid (as
    /// `toor` is for root on some systems).
    pub fn alias_of(other: &TestUser) -> Self {
        let uid = other.uid().to_string();
        Self::create(&["-o", "-u", &uid])
    }

    fn create(extra: &[&str]) -> Self {
        paths::require_root();
        let useradd = paths::tool("useradd", "passwd");
        let nologin = ["/usr/sbin/nologin", "/sbin/nologin"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("/bin/false");
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            let name = format!("{USER_PREFIX}{}", random_hex(8));
            let out = Command::new(&useradd)
                .args(extra)
                .args(["-M", "-N", "-s", nologin, &name])
                .output()
                .expect("cannot run useradd");
            if out.status.success() {
                return Self { name };
            }
            // Exit 9: the name is taken (try another); anything else, most often "cannot
            // lock /etc/passwd; try again later", is retried after a pause.
            last_error = format!(
                "useradd {name} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            if out.status.code() != Some(9) {
                backoff(attempt);
            }
        }
        panic!("cannot create a test user after {ATTEMPTS} attempts: {last_error}");
    }

    /// The login name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The numeric user id (for making files owned by this user).
    pub fn uid(&self) -> u32 {
        let out = Command::new("id")
            .args(["-u", &self.name])
            .output()
            .expect("cannot run id");
        assert!(out.status.success(), "id -u {} failed", self.name);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("id -u printed a number")
    }
}

impl Default for TestUser {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for TestUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let userdel = paths::tool("userdel", "passwd");
        for attempt in 0..ATTEMPTS {
            match Command::new(&userdel).arg(&self.name).output() {
                // Exit 6: no such user (already gone).
                Ok(out) if out.status.success() || out.status.code() == Some(6) => return,
                Ok(_) | Err(_) => backoff(attempt),
            }
        }
        eprintln!("warning: could not delete test user {}", self.name);
    }
}

/// Whether an account of this name exists (through NSS, as the product looks it up).
pub fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
