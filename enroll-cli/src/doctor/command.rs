//! Running the system's own tools (`timedatectl`, `chronyc`, `sshd -T`) and reading what
//! they print.
//!
//! The doctor runs as real root only, so the programs are found through root's own
//! `PATH` (or given as absolute paths). A tool that hangs (a D-Bus call to a wedged
//! daemon) must not hang the report, so each run has a deadline.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

pub enum RunError {
    /// The program is not installed.
    NotFound,
    /// It ran but failed; the first line of its complaint.
    Failed(String),
}

/// The program's standard output, when it exits successfully within the deadline.
pub fn output(program: &str, args: &[&str]) -> Result<String, RunError> {
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RunError::NotFound,
            _ => RunError::Failed(format!("cannot run {program}: {e}")),
        })?;
    // Read both pipes while waiting, so a chatty program never blocks on a full pipe.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(1 << 20).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < DEADLINE => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::Failed(format!(
                    "{program} did not finish within {} seconds",
                    DEADLINE.as_secs()
                )));
            }
            Err(e) => return Err(RunError::Failed(format!("waiting for {program}: {e}"))),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        let why = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map_or_else(|| format!("{program} failed ({status})"), str::to_owned);
        Err(RunError::Failed(why))
    }
}
