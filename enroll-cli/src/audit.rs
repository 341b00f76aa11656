//! A syslog line (authpriv) for every change to a device, so administrators can see who
//! changed what. Never includes a secret or a code. If syslog is unreachable the change
//! still happens: the store, not the log, is the record of truth.

use syslog::{Facility, Formatter3164};

use crate::identity::Target;

pub fn record(target: &Target, what: &str) {
    let formatter = Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "mfa".into(),
        pid: std::process::id(),
    };
    if let Ok(mut logger) = syslog::unix(formatter) {
        let _ = logger.notice(format!(
            "uid {} {what} for user {}",
            target.caller_uid,
            target.user.as_str().escape_debug()
        ));
    }
}
