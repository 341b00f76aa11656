//! Time for the tests: fake clocks for the processes under test and TOTP codes from the
//! independent `oathtool`.
//!
//! Every process under test gets its clock from libfaketime, started at a moment the test
//! picks. libfaketime with `FAKETIME="@…"` starts the clock at that moment *when the
//! process starts* and lets it tick in real time from there, so a test pins the time step
//! of each login and never sleeps. The moments are chosen a few seconds after a 30-second
//! boundary ([`at_step`]), so even a slow, loaded process stays in the intended step.
//!
//! `FAKETIME_DONT_FAKE_MONOTONIC=1` keeps the monotonic clock real (SQLite busy waits and
//! Rust `Instant` keep working). Note that libfaketime 0.9.10 then fails
//! `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, …)` with EINVAL; `nanosleep`, `usleep`
//! (what SQLite and `std::thread::sleep` use) are unaffected, as the self-test checks.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use crate::paths;

/// Length of a TOTP time step in seconds (the product's only period).
pub const STEP: i64 = 30;

/// How far into a time step the fake clocks start: far enough from both boundaries that a
/// process which takes seconds to run (under load, 32 at once) still stays in its step.
pub const STEP_OFFSET: i64 = 3;

/// The time step every [`crate::TestEnv`] starts at: 63,000,000 × 30 s is
/// 2029-11-22 00:00:00 UTC, a fixed, reproducible moment unrelated to the real date.
pub const BASE_STEP: i64 = 63_000_000;

/// The time step that contains the unix time `t`.
pub fn step_of(t: i64) -> i64 {
    t.div_euclid(STEP)
}

/// A moment [`STEP_OFFSET`] seconds into time step `step`.
pub fn at_step(step: i64) -> i64 {
    step * STEP + STEP_OFFSET
}

/// Unix time of a UTC calendar date and time (proleptic Gregorian), for tests that want to
/// name a moment readably.
pub fn unix_at(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    assert!(
        (1..=12).contains(&month) && (1..=31).contains(&day),
        "bad date"
    );
    // Days from civil, counting years from March so the leap day is last.
    let m = i64::from(month);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
}

/// The environment that makes a child's clock start at unix time `at` and tick from there.
///
/// `preload` holds libraries that must stay preloaded too (pam_wrapper); libfaketime is
/// appended. File timestamps are left real (`NO_FAKE_STAT`), only clocks are faked.
pub fn fake_time_env(at: i64, preload: &[&Path]) -> Vec<(OsString, OsString)> {
    let mut libs: Vec<OsString> = preload.iter().map(|p| p.as_os_str().to_owned()).collect();
    libs.push(paths::faketime_lib().into_os_string());
    let mut ld_preload = OsString::new();
    for (i, lib) in libs.iter().enumerate() {
        if i > 0 {
            ld_preload.push(":");
        }
        ld_preload.push(lib);
    }
    vec![
        ("LD_PRELOAD".into(), ld_preload),
        ("FAKETIME_FMT".into(), "%s".into()),
        ("FAKETIME".into(), format!("@{at}").into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("NO_FAKE_STAT".into(), "1".into()),
    ]
}

/// The environment that makes a long-lived child (the test's `mfad`) read its clock from
/// `file` at every clock call: the file holds a unix time, at which the clock stands until
/// the test writes another (see `TestEnv::write_clock`).
pub fn fake_clock_file_env(file: &Path) -> Vec<(OsString, OsString)> {
    vec![
        ("LD_PRELOAD".into(), paths::faketime_lib().into_os_string()),
        (
            "FAKETIME_TIMESTAMP_FILE".into(),
            file.as_os_str().to_owned(),
        ),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("FAKETIME_FMT".into(), "%s".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("NO_FAKE_STAT".into(), "1".into()),
    ]
}

/// Parameters of a TOTP code, as `oathtool` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    /// 6 or 8.
    pub digits: u32,
    /// "SHA1", "SHA256" or "SHA512".
    pub algorithm: &'static str,
    /// Step length in seconds.
    pub period: u32,
}

impl Default for TotpParams {
    /// The parameters `mfa` enrolls with: SHA1, 6 digits, 30 s.
    fn default() -> Self {
        Self {
            digits: 6,
            algorithm: "SHA1",
            period: 30,
        }
    }
}

/// The 6-digit SHA1 code of the base32 `secret` at unix time `at`, computed by `oathtool`
/// (an implementation independent of ours, so a shared bug cannot hide).
pub fn totp(secret_b32: &str, at: i64) -> String {
    totp_with(secret_b32, at, TotpParams::default())
}

/// Like [`totp`], with explicit digits, algorithm and period.
pub fn totp_with(secret_b32: &str, at: i64, params: TotpParams) -> String {
    assert!(at >= 0, "oathtool cannot compute codes before 1970");
    let out = Command::new(paths::tool("oathtool", "oathtool"))
        .arg(format!("--totp={}", params.algorithm))
        .arg("--base32")
        .arg(format!("--digits={}", params.digits))
        .arg(format!("--time-step-size={}s", params.period))
        // "@N" is oathtool's (GNU date's) syntax for seconds since the epoch, in UTC.
        .arg(format!("--now=@{at}"))
        .arg(secret_b32)
        .output()
        .expect("cannot run oathtool");
    assert!(
        out.status.success(),
        "oathtool failed for secret {secret_b32:?} at {at}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout)
        .expect("oathtool printed non-UTF-8")
        .trim()
        .to_owned();
    assert!(
        code.len() == params.digits as usize && code.bytes().all(|b| b.is_ascii_digit()),
        "oathtool printed {code:?}, not a {}-digit code",
        params.digits
    );
    code
}

/// A well-formed 6-digit code that is *not* valid for `secret` at any step within
/// `±window` steps of `at` (so a "wrong code" test cannot pass by a one-in-a-million
/// coincidence with a real code).
pub fn wrong_code(secret_b32: &str, at: i64, window: i64) -> String {
    wrong_code_for_all(&[secret_b32], at, window)
}

/// Every code valid for any of `secrets` at a step within `±window` steps of `at`: what a
/// login of a user with these devices would accept then.
pub fn valid_codes(secrets: &[&str], at: i64, window: i64) -> Vec<String> {
    secrets
        .iter()
        .flat_map(|s| (-window..=window).map(move |d| totp(s, at + d * STEP)))
        .collect()
}

/// A well-formed 6-digit code valid for none of `secrets` within `±window` steps of `at`:
/// a wrong code for a user with several devices, which a login checks against all of them.
pub fn wrong_code_for_all(secrets: &[&str], at: i64, window: i64) -> String {
    let valid = valid_codes(secrets, at, window);
    (0..)
        .map(|n: u32| format!("{:06}", (n * 104_729 + 13) % 1_000_000))
        .find(|c| !valid.contains(c))
        .expect("some 6-digit code is not valid")
}
