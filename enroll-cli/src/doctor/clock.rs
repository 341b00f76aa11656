//! The clock check: codes are checked against this host's clock, so a clock that drifts
//! unsupervised slowly turns every right code into a wrong one.
//!
//! The answer comes from the first source that knows: `timedatectl` (systemd's view),
//! `chronyc tracking`, systemd-timesyncd's flag file, then the kernel's own "synchronised"
//! mark (which NTP daemons set through adjtimex). When none of them says yes, the report
//! says it cannot tell, rather than guessing.

use std::path::Path;

use super::Finding;
use super::command::{self, RunError};

const CHECK: &str = "clock";

/// systemd-timesyncd touches this file once it has synchronised the clock.
const TIMESYNCD_FLAG: &str = "/run/systemd/timesync/synchronized";

const FIX: &str = "run a time synchronisation service (`timedatectl set-ntp true`, or install \
                   chrony); codes are accepted only within `window` steps of 30 seconds of \
                   this host's clock";

pub fn check() -> Finding {
    let answer = timedatectl()
        .or_else(chronyc)
        .or_else(timesyncd)
        .or_else(kernel);
    match answer {
        Some((true, source)) => Finding::ok(
            CHECK,
            format!("the system clock is synchronised ({source})"),
        ),
        Some((false, source)) => Finding::warning(
            CHECK,
            format!("the system clock is not synchronised ({source})"),
            FIX,
        ),
        None => Finding::warning(
            CHECK,
            "unknown: cannot tell whether the system clock is synchronised (timedatectl and \
             chronyc gave no answer, systemd-timesyncd has not synchronised it, and the \
             kernel does not mark it synchronised)",
            FIX,
        ),
    }
}

type Answer = Option<(bool, String)>;

fn timedatectl() -> Answer {
    let out = command::output("timedatectl", &["show", "-p", "NTPSynchronized", "--value"]);
    match out.as_deref().map(str::trim) {
        Ok("yes") => Some((true, "timedatectl: NTPSynchronized=yes".to_owned())),
        Ok("no") => Some((false, "timedatectl: NTPSynchronized=no".to_owned())),
        Ok(_) | Err(RunError::NotFound | RunError::Failed(_)) => None,
    }
}

fn chronyc() -> Answer {
    let out = command::output("chronyc", &["-n", "tracking"]).ok()?;
    parse_chrony(&out)
}

/// `Leap status     : Normal` (or a pending leap second) means chronyd has a source and
/// is steering the clock; `Not synchronised` means it has none.
fn parse_chrony(out: &str) -> Answer {
    let status = out.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "Leap status").then(|| v.trim().to_owned())
    })?;
    let synced = match status.as_str() {
        "Normal" | "Insert second" | "Delete second" => true,
        "Not synchronised" => false,
        _ => return None,
    };
    Some((synced, format!("chronyc tracking: leap status {status}")))
}

fn timesyncd() -> Answer {
    Path::new(TIMESYNCD_FLAG)
        .exists()
        .then(|| (true, format!("systemd-timesyncd: {TIMESYNCD_FLAG} exists")))
}

/// Only a "yes" is trusted: a daemon that does not discipline the kernel clock leaves the
/// mark unset even when the clock is right.
fn kernel() -> Answer {
    // SAFETY: timex is plain old data; all-zero (modes = 0) asks adjtimex to read only.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, writable timex for the duration of the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    let synced = state >= 0 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0;
    synced.then(|| (true, "the kernel marks it synchronised".to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn chrony_tracking() {
        let synced = "Reference ID    : A9FE0001 (169.254.0.1)\nStratum         : 3\n\
                      Leap status     : Normal\n";
        assert_eq!(parse_chrony(synced).map(|a| a.0), Some(true));
        let not = "Reference ID    : 00000000 ()\nLeap status     : Not synchronised\n";
        assert_eq!(parse_chrony(not).map(|a| a.0), Some(false));
        assert_eq!(parse_chrony("garbage"), None);
    }
}
