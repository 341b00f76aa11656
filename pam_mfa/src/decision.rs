//! The login decision: from the module line's rules and what the store says about the
//! account, the one next step of a login (let in, let through, register, a key, a code,
//! refuse). A pure function, so every branch is a unit test; `mfad` runs it for each
//! login (`BeforePrompt` with the line's rules) and the module carries the step out.
//!
//! The rules, in order:
//! 1. A remembered login (see crate::remembered) is let in.
//! 2. A user without an active device is let through where the line says `nullok` or
//!    the policy `no_device allow`; where the policy says `enroll` and the line allows
//!    registering (`enroll_at_login`, not a key-only line), they register; otherwise they
//!    go on like everyone else, to be refused after the prompt.
//! 3. Where keys are used (`fido2=prefer|require`), a user with a key at this computer
//!    touches it; a remote one, or one without a key, types a code if the line prefers
//!    keys and they have a code device; a key-only line refuses them.
//! 4. Everyone else is asked for a code, including names that are no account and users
//!    without a device (then refused), so the prompt tells nobody who has registered.

use pam_mfa_protocol::{
    AccountState, AfterCode, BeforePromptReply, Decision, KeyRefusal, KeyRule, LineRules, NextStep,
    NoDeviceRule, Notice,
};

/// The next step for `line` given what the daemon found (`facts`, the reply without its
/// decision).
pub fn decide(line: &LineRules, facts: &BeforePromptReply) -> Decision {
    let mut notices = Vec::new();
    let next = next_step(line, facts, &mut notices);
    Decision { notices, next }
}

fn next_step(line: &LineRules, f: &BeforePromptReply, notices: &mut Vec<Notice>) -> NextStep {
    if let Some(until) = f.remembered_until {
        return NextStep::LetInRemembered { until };
    }
    let account = f.state != AccountState::NoAccount;
    match f.state {
        AccountState::Locked { until } => notices.push(Notice::Locked { until }),
        AccountState::NoDevice if line.nullok || f.no_device == NoDeviceRule::Allow => {
            return NextStep::LetThrough {
                by_nullok: line.nullok,
                store_missing: !f.store_exists,
            };
        }
        // Registration at login makes an authenticator app, which a line accepting only
        // security keys would not take: there, as without enroll_at_login, `deny`.
        AccountState::NoDevice if f.no_device == NoDeviceRule::Enroll => {
            if !line.enroll_at_login || line.keys == KeyRule::Require {
                notices.push(Notice::EnrollNotOnThisLine);
            } else if f.store_exists {
                return NextStep::Register;
            }
        }
        _ => {}
    }
    if line.keys != KeyRule::Off {
        let prefer = line.keys == KeyRule::Prefer;
        let code_instead = prefer && f.has_code_device;
        if f.store_exists && account {
            if f.keys == 0 {
                if !prefer {
                    return NextStep::RefuseKey {
                        why: KeyRefusal::NoneRegistered,
                    };
                }
            } else if line.remote {
                if !code_instead {
                    return NextStep::RefuseKey {
                        why: KeyRefusal::Remote,
                    };
                }
                notices.push(Notice::RemoteAsksCode);
            } else {
                return NextStep::TryKey {
                    code_fallback: code_instead,
                };
            }
        } else if !prefer {
            // No store or no such account: nobody here has a key, and this line accepts
            // nothing else.
            return NextStep::RefuseKey {
                why: KeyRefusal::NoneRegistered,
            };
        }
    }
    NextStep::AskCode {
        then: if !account {
            AfterCode::RefuseNoAccount
        } else if !f.store_exists {
            AfterCode::RefuseNoDevice
        } else {
            AfterCode::Verify
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ready() -> BeforePromptReply {
        BeforePromptReply {
            state: AccountState::Ready,
            has_code_device: true,
            keys: 0,
            no_device: NoDeviceRule::Deny,
            store_exists: true,
            remembered_until: None,
            decision: None,
        }
    }

    fn no_device() -> BeforePromptReply {
        BeforePromptReply {
            state: AccountState::NoDevice,
            has_code_device: false,
            ..ready()
        }
    }

    fn line(keys: KeyRule) -> LineRules {
        LineRules {
            keys,
            ..LineRules::default()
        }
    }

    fn next(line: LineRules, facts: BeforePromptReply) -> NextStep {
        decide(&line, &facts).next
    }

    const ASK: NextStep = NextStep::AskCode {
        then: AfterCode::Verify,
    };

    #[test]
    fn a_remembered_login_is_let_in_before_anything_else() {
        let facts = BeforePromptReply {
            remembered_until: Some(99),
            ..ready()
        };
        assert_eq!(
            next(line(KeyRule::Require), facts),
            NextStep::LetInRemembered { until: 99 }
        );
    }

    #[test]
    fn a_ready_account_is_asked_for_a_code() {
        for keys in [KeyRule::Off, KeyRule::Prefer] {
            assert_eq!(next(line(keys), ready()), ASK);
        }
        assert_eq!(
            next(line(KeyRule::Require), ready()),
            NextStep::RefuseKey {
                why: KeyRefusal::NoneRegistered
            }
        );
    }

    #[test]
    fn no_device_is_let_through_by_nullok_or_the_policy_else_refused_after_the_prompt() {
        let nullok = LineRules {
            nullok: true,
            ..line(KeyRule::Off)
        };
        assert_eq!(
            next(nullok, no_device()),
            NextStep::LetThrough {
                by_nullok: true,
                store_missing: false
            }
        );
        let allow = BeforePromptReply {
            no_device: NoDeviceRule::Allow,
            store_exists: false,
            ..no_device()
        };
        assert_eq!(
            next(line(KeyRule::Off), allow),
            NextStep::LetThrough {
                by_nullok: false,
                store_missing: true
            }
        );
        assert_eq!(
            next(line(KeyRule::Off), no_device()),
            NextStep::AskCode {
                then: AfterCode::Verify
            }
        );
        let no_store = BeforePromptReply {
            store_exists: false,
            ..no_device()
        };
        assert_eq!(
            next(line(KeyRule::Prefer), no_store),
            NextStep::AskCode {
                then: AfterCode::RefuseNoDevice
            }
        );
    }

    #[test]
    fn registration_at_login_only_where_the_line_allows_it() {
        let enroll = BeforePromptReply {
            no_device: NoDeviceRule::Enroll,
            ..no_device()
        };
        let allowed = LineRules {
            enroll_at_login: true,
            ..line(KeyRule::Prefer)
        };
        assert_eq!(next(allowed, enroll.clone()), NextStep::Register);
        let d = decide(&line(KeyRule::Prefer), &enroll);
        assert_eq!(d.notices, vec![Notice::EnrollNotOnThisLine]);
        assert_eq!(d.next, ASK);
        // A key-only line never registers an app.
        let key_only = LineRules {
            enroll_at_login: true,
            ..line(KeyRule::Require)
        };
        assert_eq!(
            next(key_only, enroll.clone()),
            NextStep::RefuseKey {
                why: KeyRefusal::NoneRegistered
            }
        );
        // ...and says why `enroll` meant `deny` there.
        let d = decide(&key_only, &enroll);
        assert_eq!(d.notices, vec![Notice::EnrollNotOnThisLine]);
        // No store yet: nothing to register into; asked and refused.
        let no_store = BeforePromptReply {
            store_exists: false,
            ..enroll
        };
        assert_eq!(
            next(allowed, no_store),
            NextStep::AskCode {
                then: AfterCode::RefuseNoDevice
            }
        );
    }

    #[test]
    fn a_key_at_this_computer_is_touched_and_from_afar_a_code_is_asked() {
        let with_key = BeforePromptReply { keys: 1, ..ready() };
        assert_eq!(
            next(line(KeyRule::Prefer), with_key.clone()),
            NextStep::TryKey {
                code_fallback: true
            }
        );
        assert_eq!(
            next(line(KeyRule::Require), with_key.clone()),
            NextStep::TryKey {
                code_fallback: false
            }
        );
        assert_eq!(next(line(KeyRule::Off), with_key.clone()), ASK);
        let remote = |keys| LineRules {
            remote: true,
            ..line(keys)
        };
        let d = decide(&remote(KeyRule::Prefer), &with_key);
        assert_eq!((d.notices, d.next), (vec![Notice::RemoteAsksCode], ASK));
        assert_eq!(
            next(remote(KeyRule::Require), with_key.clone()),
            NextStep::RefuseKey {
                why: KeyRefusal::Remote
            }
        );
        // Only a key and no code device: from afar there is nothing to use.
        let key_only_user = BeforePromptReply {
            has_code_device: false,
            ..with_key.clone()
        };
        assert_eq!(
            next(remote(KeyRule::Prefer), key_only_user.clone()),
            NextStep::RefuseKey {
                why: KeyRefusal::Remote
            }
        );
        assert_eq!(
            next(line(KeyRule::Prefer), key_only_user),
            NextStep::TryKey {
                code_fallback: false
            }
        );
    }

    #[test]
    fn a_locked_out_user_is_told_and_still_asked() {
        let locked = BeforePromptReply {
            state: AccountState::Locked { until: 7 },
            ..ready()
        };
        let d = decide(&line(KeyRule::Prefer), &locked);
        assert_eq!(d.notices, vec![Notice::Locked { until: 7 }]);
        assert_eq!(d.next, ASK);
    }

    #[test]
    fn a_name_that_is_no_account_is_asked_like_everyone_and_refused() {
        let nobody = BeforePromptReply {
            state: AccountState::NoAccount,
            has_code_device: false,
            ..ready()
        };
        let nullok = LineRules {
            nullok: true,
            ..line(KeyRule::Prefer)
        };
        assert_eq!(
            next(nullok, nobody.clone()),
            NextStep::AskCode {
                then: AfterCode::RefuseNoAccount
            }
        );
        assert_eq!(
            next(line(KeyRule::Require), nobody),
            NextStep::RefuseKey {
                why: KeyRefusal::NoneRegistered
            }
        );
    }
}
