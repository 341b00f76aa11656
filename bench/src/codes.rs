//! The benchmark's users, their secrets, and their codes from `oathtool`.
//!
//! Every user has one random 160-bit secret, shared by all three modules. Codes come from
//! `oathtool` (an independent implementation, as in the project's tests), computed before
//! any timing starts: one `oathtool --window` run per user gives its codes for a run of
//! consecutive time steps, so a login can answer with the code of the step it happens in,
//! however long the benchmark runs. The codes are saved to a file the login processes read.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const PERIOD: u64 = 30;
const MAGIC: &[u8; 8] = b"MFABCOD1";

pub struct Secrets(Vec<[u8; 20]>);

impl Secrets {
    pub fn generate(count: usize) -> Result<Self, String> {
        let mut all = vec![[0u8; 20]; count];
        for s in &mut all {
            getrandom::fill(s).map_err(|e| format!("getrandom: {e}"))?;
        }
        Ok(Self(all))
    }

    pub fn get(&self, i: usize) -> &[u8; 20] {
        &self.0[i]
    }

    pub fn base32(&self, i: usize) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0[i])
    }

    pub fn hex(&self, i: usize) -> String {
        data_encoding::HEXLOWER.encode(&self.0[i])
    }
}

pub fn unix_now() -> Result<u64, String> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "the clock is before 1970".to_owned())
}

/// Codes of `users` users for `steps` consecutive time steps from `first_step`.
pub struct Codes {
    pub first_step: u64,
    pub steps: u32,
    pub users: u32,
    codes: Vec<u32>,
}

impl Codes {
    /// Runs `oathtool` once per user, `threads` at a time.
    pub fn compute(
        secrets: &Secrets,
        users: usize,
        steps: u32,
        threads: usize,
    ) -> Result<(Self, Duration), String> {
        let started = Instant::now();
        let first_step = unix_now()? / PERIOD;
        let codes = Mutex::new(vec![0u32; users * steps as usize]);
        let next = AtomicUsize::new(0);
        let failure = Mutex::new(None::<String>);
        std::thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= users {
                            break;
                        }
                        match oathtool(&secrets.base32(i), first_step, steps) {
                            Ok(mine) => {
                                let mut all = codes.lock().unwrap_or_else(|p| p.into_inner());
                                let at = i * steps as usize;
                                all[at..at + steps as usize].copy_from_slice(&mine);
                            }
                            Err(e) => {
                                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                next.store(users, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let codes = codes.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok((
            Self {
                first_step,
                steps,
                users: u32::try_from(users).map_err(|_| "too many users")?,
                codes,
            },
            started.elapsed(),
        ))
    }

    /// The code of `user` at time step `step`, if it was computed.
    pub fn code(&self, user: usize, step: u64) -> Option<u32> {
        let k = usize::try_from(step.checked_sub(self.first_step)?).ok()?;
        if k >= self.steps as usize || user >= self.users as usize {
            return None;
        }
        self.codes.get(user * self.steps as usize + k).copied()
    }

    /// The code of `user` for the current time step, as the six digits to type.
    pub fn current(&self, user: usize) -> Result<std::ffi::CString, String> {
        let step = unix_now()? / PERIOD;
        let code = self.code(user, step).ok_or_else(|| {
            format!(
                "no code computed for user {user} at step {step} (computed {} steps from {}); \
                 raise --code-steps",
                self.steps, self.first_step
            )
        })?;
        std::ffi::CString::new(format!("{code:06}")).map_err(|e| e.to_string())
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut out = Vec::with_capacity(24 + self.codes.len() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.first_step.to_le_bytes());
        out.extend_from_slice(&self.steps.to_le_bytes());
        out.extend_from_slice(&self.users.to_le_bytes());
        for c in &self.codes {
            out.extend_from_slice(&c.to_le_bytes());
        }
        let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(&out)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bad = || format!("{}: not a codes file", path.display());
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err(bad());
        }
        let u64_at = |at: usize| bytes[at..at + 8].try_into().map(u64::from_le_bytes);
        let u32_at = |at: usize| bytes[at..at + 4].try_into().map(u32::from_le_bytes);
        let first_step = u64_at(8).map_err(|_| bad())?;
        let steps = u32_at(16).map_err(|_| bad())?;
        let users = u32_at(20).map_err(|_| bad())?;
        let body = &bytes[24..];
        if body.len() != steps as usize * users as usize * 4 {
            return Err(bad());
        }
        let codes = body
            .chunks_exact(4)
            .map(|c| c.try_into().map(u32::from_le_bytes).map_err(|_| bad()))
            .collect::<Result<Vec<u32>, String>>()?;
        Ok(Self {
            first_step,
            steps,
            users,
            codes,
        })
    }
}

/// `oathtool --totp --window=steps-1` from `first_step`: the codes of `steps` consecutive
/// steps.
fn oathtool(secret_b32: &str, first_step: u64, steps: u32) -> Result<Vec<u32>, String> {
    let out = Command::new("oathtool")
        .args(["--totp", "--base32", "--digits=6"])
        .arg(format!("--window={}", steps.saturating_sub(1)))
        .arg(format!("--now=@{}", first_step * PERIOD))
        .arg(secret_b32)
        .output()
        .map_err(|e| format!("cannot run oathtool (apt-get install oathtool): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "oathtool failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let codes = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse::<u32>())
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|e| format!("oathtool printed something that is not a code: {e}"))?;
    if codes.len() != steps as usize {
        return Err(format!(
            "oathtool printed {} codes, expected {steps}",
            codes.len()
        ));
    }
    Ok(codes)
}
