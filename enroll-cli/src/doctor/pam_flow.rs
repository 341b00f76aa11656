//! Does someone who knows no password reach a pam_mfa line?
//!
//! pam_mfa counts wrong codes towards a lock-out and, with `enroll_at_login`, registers a
//! device for an account that has none. Both are safe only behind a first factor that
//! ends the stack when it fails: otherwise anyone who knows a user name can lock that user
//! out, or plant their own authenticator on the account.
//!
//! So this walks a service's auth stack the way libpam does (controls, jumps, `die`,
//! `done`, substacks) for an outsider: every module that checks a credential fails, every
//! bookkeeping module passes, and the pam_mfa lines the walk arrives at are reported with
//! the first factors it went through on the way.
//!
//! The rule for "first factor": any auth module that is not in [`PASSES`] or [`FAILS`]
//! (pam_unix, pam_sss, pam_ldap, pam_krb5, pam_winbind, pam_fprintd, and any module this
//! file does not know). An unknown module is taken for a credential check because a
//! warning about a module that turns out not to be one costs a look, while silence about a
//! password module that does not end the stack costs every user's lock-out.

use std::path::PathBuf;

use super::pam_syntax::{Action, Rule};

/// Modules that check no credential and, for an outsider, normally succeed: environment,
/// delays, access rules by account, time, group or terminal, pre-authentication
/// bookkeeping, session helpers that also have an auth hook.
const PASSES: &[&str] = &[
    "pam_access.so",
    "pam_cap.so",
    "pam_echo.so",
    "pam_ecryptfs.so",
    "pam_env.so",
    "pam_faildelay.so",
    // `preauth` only checks the failure count; `authfail` is in `fails_for_outsider`.
    "pam_faillock.so",
    "pam_gnome_keyring.so",
    "pam_group.so",
    "pam_issue.so",
    "pam_keyinit.so",
    "pam_kwallet.so",
    "pam_kwallet5.so",
    "pam_lastlog.so",
    "pam_limits.so",
    "pam_listfile.so",
    "pam_localuser.so",
    "pam_loginuid.so",
    "pam_mail.so",
    "pam_motd.so",
    "pam_namespace.so",
    "pam_nologin.so",
    "pam_permit.so",
    "pam_securetty.so",
    "pam_selinux.so",
    "pam_shells.so",
    "pam_succeed_if.so",
    "pam_systemd.so",
    "pam_tally2.so",
    "pam_time.so",
    "pam_umask.so",
    "pam_warn.so",
];

/// Modules that fail for an outsider without checking a credential of theirs:
/// `pam_deny` always, `pam_rootok` for anyone who is not root already.
const FAILS: &[&str] = &["pam_deny.so", "pam_rootok.so"];

/// One auth line of a service's stack, includes expanded in place as libpam does.
#[derive(Debug, Clone)]
pub enum Item {
    Module {
        /// The file and the index of the line in it (as `pam::Files::lines` numbers them).
        key: (PathBuf, usize),
        /// `/etc/pam.d/sshd:1 \`auth required pam_unix.so\``, for messages.
        shown: String,
        rule: Rule,
        /// Whether this line loads pam_mfa.
        is_mfa: bool,
    },
    /// `auth substack FILE`: a `die` or `done` inside ends only the substack.
    Substack(Vec<Item>),
}

/// A pam_mfa line an outsider arrives at, and the first-factor lines the walk went
/// through before it (empty when there is none, as in an SSH public-key stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub key: (PathBuf, usize),
    pub first_factors: Vec<String>,
}

/// The pam_mfa lines of `stack` that someone who knows no password reaches.
pub fn outsider_reaches(stack: &[Item]) -> Vec<Reach> {
    let mut out = Vec::new();
    walk(stack, &mut Vec::new(), &mut out);
    out
}

/// Walks `items`; true when the stack ended (a `die` or `done`).
fn walk(items: &[Item], passed: &mut Vec<String>, out: &mut Vec<Reach>) -> bool {
    let mut i = 0;
    while let Some(item) = items.get(i) {
        match item {
            Item::Substack(inner) => {
                // libpam ends only the substack; the parent goes on with its next line.
                walk(inner, passed, out);
            }
            Item::Module {
                key,
                shown,
                rule,
                is_mfa,
            } => {
                let result = if *is_mfa {
                    out.push(Reach {
                        key: key.clone(),
                        first_factors: passed.clone(),
                    });
                    // An outsider's code is wrong.
                    "auth_err"
                } else if fails_for_outsider(rule) {
                    "auth_err"
                } else if is_bookkeeping(rule) {
                    "success"
                } else {
                    passed.push(shown.clone());
                    "auth_err"
                };
                match rule.control.action_for(result) {
                    Some(Action::Die | Action::Done) => return true,
                    Some(Action::Jump(n)) => i = i.saturating_add(n as usize),
                    _ => {}
                }
            }
        }
        i += 1;
    }
    false
}

fn module_name(rule: &Rule) -> &str {
    rule.module.rsplit('/').next().unwrap_or(&rule.module)
}

fn fails_for_outsider(rule: &Rule) -> bool {
    let name = module_name(rule);
    FAILS.contains(&name)
        || (name == "pam_faillock.so" && rule.args.iter().any(|a| a == "authfail"))
}

fn is_bookkeeping(rule: &Rule) -> bool {
    PASSES.contains(&module_name(rule))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::pam_syntax::{Entry, parse_file};
    use super::*;

    /// The stack of one file without includes; pam_mfa lines are the ones naming it.
    fn stack(text: &str) -> Vec<Item> {
        parse_file(text)
            .into_iter()
            .enumerate()
            .filter_map(|(i, l)| match l.entry {
                Entry::Rule(rule) => Some(Item::Module {
                    key: (PathBuf::from("f"), i),
                    shown: l.text,
                    is_mfa: rule.module.ends_with("pam_mfa.so"),
                    rule,
                }),
                _ => None,
            })
            .collect()
    }

    fn reached(text: &str) -> Option<Vec<String>> {
        let r = outsider_reaches(&stack(text));
        assert!(r.len() <= 1, "{r:?}");
        r.into_iter().next().map(|r| r.first_factors)
    }

    #[test]
    fn a_required_password_line_does_not_stop_an_outsider() {
        let ff = reached("auth required pam_unix.so\nauth required pam_mfa.so\n").unwrap();
        assert_eq!(ff, ["auth required pam_unix.so"]);
        // Unknown modules count as credential checks.
        let ff = reached("auth optional pam_radius_auth.so\nauth required pam_mfa.so\n");
        assert_eq!(ff.unwrap(), ["auth optional pam_radius_auth.so"]);
    }

    #[test]
    fn requisite_and_debians_common_auth_stop_an_outsider() {
        assert_eq!(
            reached("auth requisite pam_unix.so\nauth required pam_mfa.so\n"),
            None
        );
        assert_eq!(
            reached("auth [success=ok default=die] pam_unix.so\nauth required pam_mfa.so\n"),
            None
        );
        assert_eq!(
            reached(
                "auth required pam_env.so\n\
                 auth [success=2 default=ignore] pam_unix.so nullok\n\
                 auth [success=1 default=ignore] pam_sss.so use_first_pass\n\
                 auth requisite pam_deny.so\n\
                 auth required pam_permit.so\n\
                 auth [success=ok ignore=ignore default=die] pam_mfa.so nullok\n"
            ),
            None
        );
    }

    #[test]
    fn rhel_style_stacks() {
        // authselect's shape: pam_unix sufficient, then required pam_deny, which marks the
        // stack failed but goes on.
        let ff = reached(
            "auth required pam_env.so\nauth sufficient pam_unix.so\n\
             auth required pam_deny.so\nauth required pam_mfa.so\n",
        );
        assert_eq!(ff.unwrap(), ["auth sufficient pam_unix.so"]);
        // pam_faillock authfail with default=die ends it.
        assert_eq!(
            reached(
                "auth required pam_faillock.so preauth\nauth sufficient pam_unix.so\n\
                 auth [default=die] pam_faillock.so authfail\nauth required pam_mfa.so\n"
            ),
            None
        );
    }

    #[test]
    fn public_key_stacks_have_no_first_factor() {
        assert_eq!(
            reached("auth required pam_mfa.so\nauth required pam_permit.so\n").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_die_inside_a_substack_ends_only_the_substack() {
        let inner = stack("auth requisite pam_unix.so\n");
        let mut outer = vec![Item::Substack(inner)];
        outer.extend(stack("auth required pam_mfa.so\n"));
        let r = outsider_reaches(&outer);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].first_factors, ["auth requisite pam_unix.so"]);
    }
}
