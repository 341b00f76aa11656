//! The sshd check: when `/etc/pam.d/sshd` uses pam_mfa, does a login over SSH actually
//! reach it?
//!
//! sshd passes PAM's prompts to the client only through keyboard-interactive
//! authentication, and runs the PAM stack only with `UsePAM yes`. A login that completes
//! by another method (a key alone, say) never sees pam_mfa, so every method list of
//! `AuthenticationMethods` must contain keyboard-interactive.

use super::command::{self, RunError};
use super::pam::MfaLine;
use super::pam_syntax::Type;
use super::sshd_config::{self, Settings};
use super::{Finding, Root};

const CHECK: &str = "sshd";
const SSHD: &str = "/usr/sbin/sshd";
const CONFIG: &str = "/etc/ssh/sshd_config";
const SERVICE: &str = "sshd";

pub fn check(root: &Root, lines: &[MfaLine]) -> Vec<Finding> {
    let sshd = root.path(SSHD);
    if !sshd.exists() {
        return vec![Finding::ok(
            CHECK,
            format!("sshd is not installed ({} does not exist)", sshd.display()),
        )];
    }
    let pam_file = root.path("/etc/pam.d").join(SERVICE);
    if !lines
        .iter()
        .any(|l| l.rule.ty == Type::Auth && l.services.contains(SERVICE))
    {
        return vec![Finding::ok(
            CHECK,
            format!(
                "{} does not use pam_mfa, so SSH logins are not asked for a code",
                pam_file.display()
            ),
        )];
    }

    let config = root.path(CONFIG);
    let mut findings = Vec::new();
    let files = Settings::from_files(root, CONFIG);
    let dump = root
        .is_system()
        .then(|| command::output(&sshd.to_string_lossy(), &["-T"]));
    let (settings, source) = match dump {
        Some(Ok(text)) => (Settings::from_dump(&text), "sshd -T".to_owned()),
        failed => {
            if let Some(Err(e)) = failed {
                let why = match e {
                    RunError::NotFound => "not found".to_owned(),
                    RunError::Failed(why) => why,
                };
                findings.push(Finding::warning(
                    CHECK,
                    format!(
                        "`sshd -T` failed ({why}); reading {} directly instead",
                        config.display()
                    ),
                    "run `sshd -t` to see what sshd objects to: sshd does not start with a \
                     configuration it cannot use",
                ));
            }
            match &files {
                Ok(s) => (s.clone(), config.display().to_string()),
                Err(e) => {
                    findings.push(Finding::warning(
                        CHECK,
                        format!("cannot read {}: {e}", config.display()),
                        "check that the sshd configuration exists (or check --root)",
                    ));
                    return findings;
                }
            }
        }
    };
    findings.extend(judge(&settings, &source, &config.display().to_string()));
    if let Ok(files) = &files
        && !files.in_match.is_empty()
    {
        let keys: Vec<&str> = files.in_match.iter().map(String::as_str).collect();
        findings.push(Finding::warning(
            CHECK,
            format!(
                "Match blocks in {} set {}, so some connections differ from what is checked \
                 here",
                config.display(),
                keys.join(", ")
            ),
            "check the settings a user gets with `sshd -T -C user=NAME,host=HOST,addr=ADDR`",
        ));
    }
    findings
}

/// Whether sshd demands a public key before keyboard-interactive in every method list of
/// `AuthenticationMethods`, so that only a client holding a user's key reaches the PAM
/// stack. False when sshd is not installed, its settings cannot be read, or a Match block
/// sets `AuthenticationMethods` (some connections may then differ).
pub fn key_before_pam(root: &Root) -> bool {
    let sshd = root.path(SSHD);
    if !sshd.exists() {
        return false;
    }
    let files = Settings::from_files(root, CONFIG);
    if let Ok(f) = &files
        && f.in_match.contains("authenticationmethods")
    {
        return false;
    }
    let dump = root
        .is_system()
        .then(|| command::output(&sshd.to_string_lossy(), &["-T"]).ok())
        .flatten();
    let settings = match (dump, files) {
        (Some(text), _) => Settings::from_dump(&text),
        (None, Ok(s)) => s,
        (None, Err(_)) => return false,
    };
    key_first(&settings.shown("authenticationmethods", "any"))
}

/// Whether every method list has `publickey` before its first method that reaches PAM.
fn key_first(methods: &str) -> bool {
    sshd_config::method_lists(methods).is_some_and(|lists| {
        lists.iter().all(|list| {
            let key = list.iter().position(|m| m == "publickey");
            let pam = list.iter().position(|m| sshd_config::reaches_pam(m));
            matches!((key, pam), (Some(k), Some(p)) if k < p)
        })
    })
}

/// Judges the effective settings (sshd's defaults fill in what is not set).
fn judge(s: &Settings, source: &str, config: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let use_pam = s.flag("usepam", false);
    let kbd = s.flag("kbdinteractiveauthentication", true);
    let methods = s.shown("authenticationmethods", "any");
    if !use_pam {
        findings.push(Finding::problem(
            CHECK,
            format!(
                "UsePAM is {} ({source}): sshd never runs /etc/pam.d/sshd, so pam_mfa is never \
                 asked",
                s.shown("usepam", "no")
            ),
            format!("set `UsePAM yes` in {config}"),
        ));
    }
    if !kbd {
        findings.push(Finding::problem(
            CHECK,
            format!(
                "KbdInteractiveAuthentication is no ({source}): PAM's prompts reach an SSH \
                 client only through keyboard-interactive authentication, so sshd cannot ask \
                 for the code"
            ),
            format!(
                "set `KbdInteractiveAuthentication yes` in {config} (Debian's default \
                 sshd_config sets it to no; older sshd calls it ChallengeResponseAuthentication)"
            ),
        ));
    }
    match sshd_config::method_lists(&methods) {
        None => {
            if s.flag("pubkeyauthentication", true) {
                findings.push(Finding::warning(
                    CHECK,
                    format!(
                        "AuthenticationMethods is any and PubkeyAuthentication yes ({source}): \
                         a login with a key alone never reaches PAM, so it is not asked for a \
                         code"
                    ),
                    format!(
                        "set `AuthenticationMethods publickey,keyboard-interactive` in {config} \
                         to require a key and a code (or `PubkeyAuthentication no` to send \
                         every login through PAM)"
                    ),
                ));
            }
        }
        Some(lists) => {
            let bypass: Vec<String> = lists
                .iter()
                .filter(|l| !l.iter().any(|m| sshd_config::reaches_pam(m)))
                .map(|l| l.join(","))
                .collect();
            if !bypass.is_empty() {
                findings.push(Finding::problem(
                    CHECK,
                    format!(
                        "AuthenticationMethods {methods} ({source}): {} complete{} a login \
                         without keyboard-interactive, so pam_mfa is never asked",
                        bypass
                            .iter()
                            .map(|l| format!("`{l}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if bypass.len() == 1 { "s" } else { "" }
                    ),
                    format!(
                        "add keyboard-interactive to every method list in {config}, e.g. \
                         `AuthenticationMethods publickey,keyboard-interactive`"
                    ),
                ));
            }
        }
    }
    let password_method = sshd_config::method_lists(&methods)
        .is_none_or(|lists| lists.iter().flatten().any(|m| m == "password"));
    if use_pam && password_method && s.flag("passwordauthentication", true) {
        findings.push(Finding::warning(
            CHECK,
            format!(
                "PasswordAuthentication is yes ({source}): sshd's password method answers \
                 every PAM prompt with the password, so pam_mfa receives the password instead \
                 of a code, refuses it and counts a failure toward the lock-out"
            ),
            format!(
                "set `PasswordAuthentication no` in {config}; keyboard-interactive asks for \
                 the password and then the code"
            ),
        ));
    }
    if findings.is_empty() {
        findings.push(Finding::ok(
            CHECK,
            format!(
                "UsePAM yes, KbdInteractiveAuthentication yes, AuthenticationMethods {methods} \
                 ({source}): every SSH login reaches pam_mfa"
            ),
        ));
    }
    findings
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn statuses(dump: &str) -> Vec<(Status, String)> {
        judge(&Settings::from_dump(dump), "test", CONFIG)
            .into_iter()
            .map(|f| (f.status, f.message))
            .collect()
    }

    #[test]
    fn key_and_code() {
        let s = statuses(
            "usepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\n\
             authenticationmethods publickey,keyboard-interactive\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0, Status::Ok);
    }

    #[test]
    fn defaults_do_not_reach_pam() {
        // Upstream defaults: UsePAM no, any method, keys and passwords allowed.
        let s = statuses("");
        let problems: Vec<_> = s.iter().filter(|(st, _)| *st == Status::Problem).collect();
        assert_eq!(problems.len(), 1, "{s:?}");
        assert!(problems[0].1.starts_with("UsePAM is no"), "{s:?}");
        assert!(
            s.iter()
                .any(|(st, m)| *st == Status::Warning && m.contains("key alone"))
        );
    }

    #[test]
    fn a_key_before_keyboard_interactive() {
        assert!(key_first("publickey,keyboard-interactive"));
        assert!(key_first(
            "publickey,keyboard-interactive:pam publickey,password,keyboard-interactive"
        ));
        assert!(!key_first("any"));
        assert!(!key_first("keyboard-interactive"));
        assert!(!key_first("keyboard-interactive,publickey"));
        assert!(!key_first(
            "publickey,keyboard-interactive keyboard-interactive"
        ));
        assert!(!key_first("publickey"));
    }

    #[test]
    fn bypassing_lists() {
        let s = statuses(
            "usepam yes\nkbdinteractiveauthentication yes\n\
             authenticationmethods publickey,keyboard-interactive:pam publickey,password\n",
        );
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].1.contains("`publickey,password` completes"), "{s:?}");
        assert!(s[1].1.starts_with("PasswordAuthentication"), "{s:?}");
    }
}
