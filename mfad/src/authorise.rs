//! Who may ask what: decided from the peer's uid (SO_PEERCRED), never from the message.
//!
//! Root (sshd, sudo, su, login, root's `mfa`) may name any account and tune the checks
//! with the module's overrides. Anyone else may only name its own account (a screen
//! locker's login, its own `mfa`), and is held to the policy: overrides are dropped, so a
//! user cannot loosen their own lock-out. A name is resolved to its canonical account and
//! uid first, so an alias of another account (a second passwd entry, another case) is
//! another account.

use pam_mfa::names::{self, UserName};
use pam_mfa::settings::{Effective, Overrides};
use pam_mfa::tokens::{self, Format, TokenSeed, pskc::PreSharedKey};
use pam_mfa_protocol::{
    ErrorKind, ErrorReply, KeyAssertion, KeyAttestation, KeyPurpose, LineRules, LoginContext,
    Request, SecretBytes,
};

/// A login's context counts only from root (sshd, sudo, su, login: the module): a user
/// who sent one on their own socket could otherwise have their own logins remembered.
fn root_only(uid: u32, context: Option<LoginContext>) -> Option<LoginContext> {
    context.filter(|_| uid == 0)
}

/// A request as the store runs it: accounts resolved, overrides settled.
#[derive(Debug)]
pub enum Work {
    Hello,
    BeforePrompt {
        /// `None`: no such account (only for root; a user always names an account).
        account: Option<UserName>,
        want_keys: bool,
        /// Root's only (see [`root_only`]).
        context: Option<LoginContext>,
        /// The module line's rules, for the login decision (anyone's: it only tells the
        /// caller's own process what to do next).
        line: Option<LineRules>,
    },
    VerifyCode {
        account: Option<UserName>,
        answer: SecretBytes,
        overrides: Overrides,
        context: Option<LoginContext>,
    },
    VerifyRecovery {
        account: Option<UserName>,
        code: SecretBytes,
        context: Option<LoginContext>,
    },
    ListDevices {
        account: UserName,
    },
    ListRemembered {
        account: UserName,
    },
    Forget {
        account: UserName,
    },
    MayChange {
        account: UserName,
    },
    Reauth {
        account: UserName,
        answer: SecretBytes,
    },
    /// A change that needs a proof of a device from a non-root caller whose account has
    /// one.
    Change {
        account: UserName,
        proof: Option<SecretBytes>,
        /// Boxed: keeps every `Work` small.
        change: Box<Change>,
    },
    FinishTotp {
        account: UserName,
        name: String,
        code1: SecretBytes,
        code2: SecretBytes,
    },
    RecoveryCommit {
        account: UserName,
        ticket: SecretBytes,
    },
    /// An administrator's request: only ever built for root ([`authorise`] refuses
    /// anyone else before it reaches the store).
    Admin(Box<Admin>),
    /// A challenge for a touch of one of the account's security keys.
    KeyChallenge {
        account: UserName,
        purpose: KeyPurpose,
    },
    /// A key's answer to the challenge held under `ticket`.
    KeyAnswer {
        account: UserName,
        ticket: SecretBytes,
        /// Boxed: keeps every `Work` small.
        assertion: Box<KeyAssertion>,
        context: Option<LoginContext>,
    },
    /// A key's attestation for the registration begun under `ticket`
    /// ([`Change::BeginFido2`]; no proof: beginning needed one).
    FinishFido2 {
        account: UserName,
        ticket: SecretBytes,
        attestation: Box<KeyAttestation>,
    },
    /// A registration at login (`enroll_at_login`): only ever built for root.
    AtLogin(Box<AtLogin>),
}

impl Work {
    /// Whether this is a login's question or answer, or a look: what it writes (a replay
    /// step, a failure count, a used recovery code, an audit row) never removes or
    /// replaces a secret. Any other request that changes the store may (a device or
    /// token removed, a registration replaced or expired), and the daemon empties the
    /// WAL after it, before answering ([`crate::service::Service::answer`]).
    pub fn is_login_or_look(&self) -> bool {
        matches!(
            self,
            Self::Hello
                | Self::BeforePrompt { .. }
                | Self::VerifyCode { .. }
                | Self::VerifyRecovery { .. }
                | Self::ListDevices { .. }
                | Self::ListRemembered { .. }
                | Self::MayChange { .. }
                | Self::Reauth { .. }
                | Self::KeyChallenge { .. }
                | Self::KeyAnswer { .. }
        )
    }

    /// Whether this registers a hardware token (whose refusals are answered after a fixed
    /// time, see [`pam_mfa::enrollment::wait_out_token_refusal`]).
    pub fn is_token_registration(&self) -> bool {
        matches!(self, Self::Change { change, .. } if matches!(**change, Change::EnrollToken { .. }))
    }
}

/// `mfa admin …` through the daemon; accounts are resolved and known to exist.
#[derive(Debug)]
pub enum Admin {
    PolicyShow,
    PolicySet {
        key: String,
        value: String,
    },
    List,
    Audit {
        account: Option<UserName>,
        since: Option<String>,
    },
    AuditPrune {
        older_than: Option<String>,
    },
    Bypass {
        account: UserName,
        uses: u32,
        expires_in: String,
    },
    Unlock {
        account: UserName,
    },
    Remove {
        account: UserName,
        name: String,
    },
    /// A seed file, already parsed (in the connection's thread, not the store's: a file
    /// of 16 MiB must not hold up logins).
    TokensImport {
        seeds: Vec<TokenSeed>,
        format: Format,
        replace: bool,
    },
    TokensList,
    TokensRemove {
        serial: String,
    },
}

/// A registration at login, for the module (root); the account exists.
#[derive(Debug)]
pub enum AtLogin {
    Begin {
        account: UserName,
        name: String,
        issuer: Option<String>,
    },
    Confirm {
        account: UserName,
        name: String,
        hold: SecretBytes,
        code1: SecretBytes,
        code2: SecretBytes,
    },
    Activate {
        account: UserName,
        hold: SecretBytes,
    },
}

/// The changes [`Work::Change`] carries.
#[derive(Debug)]
pub enum Change {
    BeginTotp {
        name: String,
        issuer: Option<String>,
    },
    Rename {
        name: String,
        new_name: String,
    },
    Remove {
        name: String,
    },
    Resync {
        name: String,
        code1: SecretBytes,
        code2: SecretBytes,
    },
    RecoveryGenerate,
    /// A security key: the challenge its owner's `mfa` asks the key to sign.
    BeginFido2 {
        name: String,
        rp_id: Option<String>,
        require_pin: bool,
        require_uv: bool,
    },
    /// A hardware token from the inventory (`mfa enroll token`).
    EnrollToken {
        name: String,
        serial: String,
        code1: SecretBytes,
        code2: SecretBytes,
    },
}

/// A request refused before it reached the store: the answer, and for a request about
/// another account, the log line (with the uid and what was asked, never a code).
pub struct Refused {
    pub reply: ErrorReply,
    pub log: Option<String>,
}

fn refused(kind: ErrorKind, message: impl Into<String>) -> Refused {
    Refused {
        reply: ErrorReply::new(kind, message),
        log: None,
    }
}

/// The account `user` names, as `uid` may act on it.
fn account_for(uid: u32, request: &str, user: &str) -> Result<Option<UserName>, Refused> {
    let name =
        UserName::parse(user).map_err(|_| refused(ErrorKind::Invalid, "not a valid user name"))?;
    let found = names::canonical_account_and_uid(&name).map_err(|e| {
        refused(
            ErrorKind::Unavailable,
            format!("cannot look up the account: {e}"),
        )
    })?;
    match found {
        _ if uid == 0 => Ok(found.map(|(account, _)| account)),
        Some((account, owner)) if owner == uid => Ok(Some(account)),
        _ => Err(Refused {
            reply: ErrorReply::new(ErrorKind::Denied, "you may only ask about your own account"),
            log: Some(format!(
                "refused: uid {uid} asked {request} for account \"{}\", not its own",
                names::escape_for_log(user.as_bytes())
            )),
        }),
    }
}

/// The account `user` names, which must exist (requests about devices).
fn existing(uid: u32, request: &str, user: &str) -> Result<UserName, Refused> {
    account_for(uid, request, user)?.ok_or_else(|| refused(ErrorKind::Invalid, "no such account"))
}

/// An account named in an administrator's request (root's): it must exist, and is
/// refused in `mfa admin`'s words otherwise.
fn admin_account(user: &str) -> Result<UserName, Refused> {
    account_for(0, "", user)?
        .ok_or_else(|| refused(ErrorKind::Invalid, format!("no such user: {user:?}")))
}

/// The administrator's requests, for root only: anyone else is refused and logged.
fn admin(uid: u32, request: Request) -> Result<Work, Refused> {
    if uid != 0 {
        return Err(Refused {
            reply: ErrorReply::new(
                ErrorKind::Denied,
                "only root may ask this (mfa admin is for administrators)",
            ),
            log: Some(format!(
                "refused: uid {uid} asked {}, which only root may ask",
                request.name()
            )),
        });
    }
    let work = match request {
        Request::PolicyShow => Admin::PolicyShow,
        Request::PolicySet { key, value } => Admin::PolicySet { key, value },
        Request::AdminList => Admin::List,
        Request::Audit { user, since } => Admin::Audit {
            account: user.as_deref().map(admin_account).transpose()?,
            since,
        },
        Request::AuditPrune { older_than } => Admin::AuditPrune { older_than },
        Request::Bypass {
            user,
            uses,
            expires_in,
        } => Admin::Bypass {
            account: admin_account(&user)?,
            uses,
            expires_in,
        },
        Request::Unlock { user } => Admin::Unlock {
            account: admin_account(&user)?,
        },
        Request::AdminRemove { user, name } => Admin::Remove {
            account: admin_account(&user)?,
            name,
        },
        Request::TokensImport {
            data,
            format,
            key,
            replace,
        } => tokens_import(&data, format.as_deref(), key.as_ref(), replace)?,
        Request::TokensList => Admin::TokensList,
        Request::TokensRemove { serial } => Admin::TokensRemove { serial },
        _ => {
            return Err(refused(
                ErrorKind::UnknownRequest,
                "request not served by this mfad",
            ));
        }
    };
    Ok(Work::Admin(Box::new(work)))
}

/// A seed file checked and parsed, as `mfa admin tokens import` does: all or nothing.
fn tokens_import(
    data: &SecretBytes,
    format: Option<&str>,
    key: Option<&SecretBytes>,
    replace: bool,
) -> Result<Admin, Refused> {
    let psk = key
        .map(|k| {
            std::str::from_utf8(k.as_bytes())
                .map_err(|_| "the key is not text".to_owned())
                .and_then(PreSharedKey::from_hex)
                .map_err(|e| refused(ErrorKind::Invalid, format!("the pre-shared key: {e}")))
        })
        .transpose()?;
    let format = match format {
        None => Format::sniff(data.as_bytes()),
        Some(f) if f.eq_ignore_ascii_case("pskc") => Format::Pskc,
        Some(f) if f.eq_ignore_ascii_case("csv") => Format::Csv,
        Some(_) => {
            return Err(refused(
                ErrorKind::Invalid,
                "unknown seed file format (pskc or csv)",
            ));
        }
    };
    let seeds = tokens::parse(data.as_bytes(), Some(format), psk.as_ref())
        .map_err(|e| refused(ErrorKind::Invalid, format!("the seed file: {e}")))?;
    Ok(Admin::TokensImport {
        seeds,
        format,
        replace,
    })
}

/// Registration at login, for root (the module) only: anyone else is refused and logged.
fn at_login(uid: u32, request: Request) -> Result<Work, Refused> {
    if uid != 0 {
        return Err(Refused {
            reply: ErrorReply::new(
                ErrorKind::Denied,
                "only root may ask this (registration at login is the PAM module's)",
            ),
            log: Some(format!(
                "refused: uid {uid} asked {}, which only root may ask",
                request.name()
            )),
        });
    }
    let work = match request {
        Request::BeginHeld { user, name, issuer } => AtLogin::Begin {
            account: admin_account(&user)?,
            name,
            issuer,
        },
        Request::ConfirmHeld {
            user,
            name,
            hold,
            code1,
            code2,
        } => AtLogin::Confirm {
            account: admin_account(&user)?,
            name,
            hold,
            code1,
            code2,
        },
        Request::ActivateHeld { user, hold } => AtLogin::Activate {
            account: admin_account(&user)?,
            hold,
        },
        _ => {
            return Err(refused(
                ErrorKind::UnknownRequest,
                "request not served by this mfad",
            ));
        }
    };
    Ok(Work::AtLogin(Box::new(work)))
}

/// Turns a decoded request from a peer with `uid` into the store's work.
pub fn authorise(uid: u32, request: Request) -> Result<Work, Refused> {
    let name = request.name();
    if matches!(
        request,
        Request::PolicyShow
            | Request::PolicySet { .. }
            | Request::AdminList
            | Request::Audit { .. }
            | Request::AuditPrune { .. }
            | Request::Bypass { .. }
            | Request::Unlock { .. }
            | Request::AdminRemove { .. }
            | Request::TokensImport { .. }
            | Request::TokensList
            | Request::TokensRemove { .. }
    ) {
        return admin(uid, request);
    }
    if matches!(
        request,
        Request::BeginHeld { .. } | Request::ConfirmHeld { .. } | Request::ActivateHeld { .. }
    ) {
        return at_login(uid, request);
    }
    Ok(match request {
        Request::Hello => Work::Hello,
        Request::BeforePrompt {
            user,
            want_keys,
            context,
            line,
        } => Work::BeforePrompt {
            account: account_for(uid, name, &user)?,
            want_keys,
            context: root_only(uid, context),
            line,
        },
        Request::VerifyCode {
            user,
            answer,
            overrides,
            context,
        } => {
            let account = account_for(uid, name, &user)?;
            let overrides = if uid == 0 {
                overrides
                    .check()
                    .map_err(|e| refused(ErrorKind::Invalid, e.to_string()))?;
                overrides
            } else {
                // A user is held to the policy, whatever they send.
                Overrides::default()
            };
            Work::VerifyCode {
                account,
                answer,
                overrides,
                context: root_only(uid, context),
            }
        }
        Request::VerifyRecovery {
            user,
            code,
            context,
        } => Work::VerifyRecovery {
            account: account_for(uid, name, &user)?,
            code,
            context: root_only(uid, context),
        },
        Request::ListDevices { user } => Work::ListDevices {
            account: existing(uid, name, &user)?,
        },
        Request::ListRemembered { user } => Work::ListRemembered {
            account: existing(uid, name, &user)?,
        },
        // Forgetting only ever asks for a code more often: anyone may, for their own
        // account, whatever the self-service policy.
        Request::Forget { user } => Work::Forget {
            account: existing(uid, name, &user)?,
        },
        Request::MayChange { user } => Work::MayChange {
            account: existing(uid, name, &user)?,
        },
        Request::Reauth { user, answer } => Work::Reauth {
            account: existing(uid, name, &user)?,
            answer,
        },
        Request::BeginTotp {
            user,
            name: device,
            issuer,
            proof,
        } => Work::Change {
            account: existing(uid, name, &user)?,
            proof,
            change: Box::new(Change::BeginTotp {
                name: device,
                issuer,
            }),
        },
        Request::FinishTotp {
            user,
            name: device,
            code1,
            code2,
        } => Work::FinishTotp {
            account: existing(uid, name, &user)?,
            name: device,
            code1,
            code2,
        },
        Request::Rename {
            user,
            name: device,
            new_name,
            proof,
        } => Work::Change {
            account: existing(uid, name, &user)?,
            proof,
            change: Box::new(Change::Rename {
                name: device,
                new_name,
            }),
        },
        Request::Remove {
            user,
            name: device,
            proof,
        } => Work::Change {
            account: existing(uid, name, &user)?,
            proof,
            change: Box::new(Change::Remove { name: device }),
        },
        Request::Resync {
            user,
            name: device,
            code1,
            code2,
            proof,
        } => Work::Change {
            account: existing(uid, name, &user)?,
            proof,
            change: Box::new(Change::Resync {
                name: device,
                code1,
                code2,
            }),
        },
        Request::RecoveryGenerate { user, proof } => Work::Change {
            account: existing(uid, name, &user)?,
            proof,
            change: Box::new(Change::RecoveryGenerate),
        },
        Request::RecoveryCommit { user, ticket } => Work::RecoveryCommit {
            account: existing(uid, name, &user)?,
            ticket,
        },
        Request::EnrollToken {
            user,
            name: device,
            serial,
            code1,
            code2,
            proof,
        } => Work::Change {
            account: existing(uid, name, &user)?,
            proof,
            change: Box::new(Change::EnrollToken {
                name: device,
                serial,
                code1,
                code2,
            }),
        },
        Request::KeyChallenge { user, purpose } => Work::KeyChallenge {
            account: existing(uid, name, &user)?,
            purpose,
        },
        Request::KeyAnswer {
            user,
            ticket,
            assertion,
            context,
        } => Work::KeyAnswer {
            account: existing(uid, name, &user)?,
            ticket,
            assertion: Box::new(assertion),
            context: root_only(uid, context),
        },
        Request::BeginFido2 {
            user,
            name: device,
            rp_id,
            require_pin,
            require_uv,
            proof,
        } => Work::Change {
            account: existing(uid, name, &user)?,
            proof,
            change: Box::new(Change::BeginFido2 {
                name: device,
                rp_id,
                require_pin,
                require_uv,
            }),
        },
        Request::FinishFido2 {
            user,
            ticket,
            attestation,
        } => Work::FinishFido2 {
            account: existing(uid, name, &user)?,
            ticket,
            attestation: Box::new(attestation),
        },
        _ => {
            return Err(refused(
                ErrorKind::UnknownRequest,
                "request not served by this mfad",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn denied_and_logged(r: Result<Work, Refused>, what: &str) {
        match r {
            Err(Refused { reply, log }) => {
                assert_eq!(reply.kind, ErrorKind::Denied, "{what}");
                assert!(
                    log.is_some_and(|l| l.contains(&format!("uid 1000 asked {what}"))),
                    "{what}"
                );
            }
            Ok(w) => panic!("{what} authorised for a user: {w:?}"),
        }
    }

    // Registration at login and the token inventory are root's alone; a user is refused
    // before any account is looked up, and the refusal is logged.
    #[test]
    fn held_and_token_requests_are_roots_alone() {
        let hold = || SecretBytes::new(vec![0; 32]);
        let code = || SecretBytes::from_slice(b"123456");
        for (request, what) in [
            (
                Request::BeginHeld {
                    user: "nobody-here".into(),
                    name: "phone".into(),
                    issuer: None,
                },
                "begin-held",
            ),
            (
                Request::ConfirmHeld {
                    user: "nobody-here".into(),
                    name: "phone".into(),
                    hold: hold(),
                    code1: code(),
                    code2: code(),
                },
                "confirm-held",
            ),
            (
                Request::ActivateHeld {
                    user: "nobody-here".into(),
                    hold: hold(),
                },
                "activate-held",
            ),
            (Request::TokensList, "tokens-list"),
            (
                Request::TokensRemove {
                    serial: "SN-1".into(),
                },
                "tokens-remove",
            ),
            (
                Request::TokensImport {
                    data: SecretBytes::from_slice(b"SN-1,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n"),
                    format: None,
                    key: None,
                    replace: false,
                },
                "tokens-import",
            ),
        ] {
            denied_and_logged(authorise(1000, request), what);
        }
        assert!(matches!(
            authorise(0, Request::TokensList),
            Ok(Work::Admin(a)) if matches!(*a, Admin::TokensList)
        ));
    }

    // A seed file is parsed before it takes the store's turn: a bad one, or an unknown
    // format, is refused there in the administrator's words.
    #[test]
    fn seed_files_are_parsed_before_the_store() {
        let import = |data: &[u8], format: Option<&str>| Request::TokensImport {
            data: SecretBytes::from_slice(data),
            format: format.map(str::to_owned),
            key: None,
            replace: true,
        };
        match authorise(0, import(b"SN-1,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n", None)) {
            Ok(Work::Admin(a)) => match *a {
                Admin::TokensImport {
                    seeds,
                    format,
                    replace,
                } => {
                    assert_eq!(seeds.len(), 1);
                    assert_eq!(format, Format::Csv);
                    assert!(replace);
                }
                other => panic!("{other:?}"),
            },
            Err(r) => panic!("{:?}", r.reply),
            Ok(w) => panic!("{w:?}"),
        }
        for (data, format) in [
            (&b"SN-1,not base32!\n"[..], None),
            (b"SN-1,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n", Some("xml")),
            (b"", None),
        ] {
            match authorise(0, import(data, format)) {
                Err(r) => assert_eq!(r.reply.kind, ErrorKind::Invalid),
                Ok(w) => panic!("{w:?}"),
            }
        }
    }

    fn ok(r: Result<Work, Refused>) -> Work {
        match r {
            Ok(w) => w,
            Err(e) => panic!("refused: {:?} {:?}", e.reply, e.log),
        }
    }

    /// The account a request names, as a string ("" when the work names none).
    fn account_of(w: &Work) -> String {
        match w {
            Work::BeforePrompt { account, .. } => account
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            Work::ListDevices { account } => account.to_string(),
            other => panic!("{other:?}"),
        }
    }

    // Accounts of this machine: root (uid 0) and daemon (uid 1) are in every passwd.
    #[test]
    fn root_may_name_any_account_and_a_user_only_its_own() {
        let list = |user: &str| Request::ListDevices { user: user.into() };
        assert_eq!(account_of(&ok(authorise(0, list("daemon")))), "daemon");
        assert_eq!(account_of(&ok(authorise(0, list("root")))), "root");
        assert_eq!(account_of(&ok(authorise(1, list("daemon")))), "daemon");
        for (uid, user) in [(1, "root"), (65_534, "daemon"), (1, "no-such-user-here")] {
            match authorise(uid, list(user)) {
                Err(Refused { reply, log }) => {
                    assert_eq!(reply.kind, ErrorKind::Denied, "uid {uid}: {user}");
                    assert!(log.is_some_and(|l| l.contains(&format!("uid {uid} asked"))));
                }
                Ok(w) => panic!("uid {uid} may act on {user}: {w:?}"),
            }
        }
        // Root's login for a name that is no account goes on (to be refused after the
        // prompt, like everyone's).
        let before = Request::BeforePrompt {
            user: "no-such-user-here".into(),
            want_keys: false,
            context: None,
            line: None,
        };
        assert_eq!(account_of(&ok(authorise(0, before))), "");
    }

    #[test]
    fn a_login_context_counts_only_from_root() {
        let before = || Request::BeforePrompt {
            user: "daemon".into(),
            want_keys: false,
            context: Some(LoginContext {
                service: "sshd".into(),
                rhost: "192.0.2.1".into(),
                remember_secs: None,
            }),
            line: None,
        };
        let context = |uid| match ok(authorise(uid, before())) {
            Work::BeforePrompt { context, .. } => context,
            other => panic!("{other:?}"),
        };
        assert_eq!(context(0).unwrap().service, "sshd");
        assert!(
            context(1).is_none(),
            "daemon's own request carries no context"
        );
    }

    #[test]
    fn only_a_token_enrollment_is_a_token_registration() {
        let token = Request::EnrollToken {
            user: "daemon".into(),
            name: "token".into(),
            serial: "SN-1".into(),
            code1: SecretBytes::from_slice(b"123456"),
            code2: SecretBytes::from_slice(b"654321"),
            proof: None,
        };
        assert!(ok(authorise(0, token)).is_token_registration());
        let recovery = Request::RecoveryGenerate {
            user: "daemon".into(),
            proof: None,
        };
        assert!(!ok(authorise(0, recovery)).is_token_registration());
        assert!(!ok(authorise(0, Request::Hello)).is_token_registration());
    }

    #[test]
    fn each_administrator_request_becomes_its_own_work() {
        let admin = |r| match ok(authorise(0, r)) {
            Work::Admin(a) => *a,
            other => panic!("{other:?}"),
        };
        assert!(matches!(admin(Request::PolicyShow), Admin::PolicyShow));
        assert!(matches!(
            admin(Request::PolicySet {
                key: "window".into(),
                value: "1".into()
            }),
            Admin::PolicySet { .. }
        ));
        assert!(matches!(admin(Request::AdminList), Admin::List));
        assert!(matches!(
            admin(Request::Audit {
                user: Some("daemon".into()),
                since: None
            }),
            Admin::Audit {
                account: Some(_),
                ..
            }
        ));
        assert!(matches!(
            admin(Request::AuditPrune { older_than: None }),
            Admin::AuditPrune { .. }
        ));
        assert!(matches!(
            admin(Request::Bypass {
                user: "daemon".into(),
                uses: 1,
                expires_in: "1h".into()
            }),
            Admin::Bypass { uses: 1, .. }
        ));
        assert!(matches!(
            admin(Request::Unlock {
                user: "daemon".into()
            }),
            Admin::Unlock { .. }
        ));
        assert!(matches!(
            admin(Request::AdminRemove {
                user: "daemon".into(),
                name: "phone".into()
            }),
            Admin::Remove { .. }
        ));
    }

    /// One request of every kind a user may send about their own account (`user`).
    fn user_requests(user: &str) -> Vec<Request> {
        let u = || user.to_owned();
        let secret = || SecretBytes::from_slice(b"123456");
        vec![
            Request::Hello,
            Request::BeforePrompt {
                user: u(),
                want_keys: true,
                context: None,
                line: None,
            },
            Request::VerifyCode {
                user: u(),
                answer: secret(),
                overrides: Overrides::default(),
                context: None,
            },
            Request::VerifyRecovery {
                user: u(),
                code: secret(),
                context: None,
            },
            Request::ListDevices { user: u() },
            Request::ListRemembered { user: u() },
            Request::Forget { user: u() },
            Request::MayChange { user: u() },
            Request::Reauth {
                user: u(),
                answer: secret(),
            },
            Request::BeginTotp {
                user: u(),
                name: "phone".into(),
                issuer: None,
                proof: None,
            },
            Request::FinishTotp {
                user: u(),
                name: "phone".into(),
                code1: secret(),
                code2: secret(),
            },
            Request::Rename {
                user: u(),
                name: "phone".into(),
                new_name: "old phone".into(),
                proof: None,
            },
            Request::Remove {
                user: u(),
                name: "phone".into(),
                proof: None,
            },
            Request::Resync {
                user: u(),
                name: "phone".into(),
                code1: secret(),
                code2: secret(),
                proof: None,
            },
            Request::RecoveryGenerate {
                user: u(),
                proof: None,
            },
            Request::RecoveryCommit {
                user: u(),
                ticket: secret(),
            },
            Request::EnrollToken {
                user: u(),
                name: "token".into(),
                serial: "SN-1".into(),
                code1: secret(),
                code2: secret(),
                proof: None,
            },
            Request::KeyChallenge {
                user: u(),
                purpose: pam_mfa_protocol::KeyPurpose::Login,
            },
            Request::KeyAnswer {
                user: u(),
                ticket: secret(),
                assertion: KeyAssertion {
                    rp_id: "pam://host".into(),
                    credential_id: None,
                    auth_data: Default::default(),
                    signature: Default::default(),
                },
                context: None,
            },
            Request::BeginFido2 {
                user: u(),
                name: "key".into(),
                rp_id: None,
                require_pin: false,
                require_uv: false,
                proof: None,
            },
            Request::FinishFido2 {
                user: u(),
                ticket: secret(),
                attestation: KeyAttestation {
                    fmt: "none".into(),
                    auth_data: Default::default(),
                    alg: None,
                    sig: Default::default(),
                    x5c: vec![],
                },
            },
        ]
    }

    // Every request is served: for a user about their own account and for root about
    // anyone's, each becomes work of its own kind (none is turned away as unknown).
    #[test]
    fn every_request_is_served_for_its_own_account_and_for_root() {
        for (uid, user) in [(1, "daemon"), (0, "daemon"), (0, "root")] {
            for request in user_requests(user) {
                let name = request.name();
                let kind = |w: &Work| format!("{w:?}").to_lowercase().replace(['-', '_'], "");
                let work = ok(authorise(uid, request));
                let want = match name {
                    "recovery-generate" | "rename" | "remove" | "resync" | "enroll-token"
                    | "begin-totp" | "begin-fido2" => "change".to_owned(),
                    other => other.replace('-', ""),
                };
                assert!(kind(&work).starts_with(&want), "uid {uid} {name}: {work:?}");
            }
        }
        let hold = || SecretBytes::new(vec![0; 32]);
        let code = || SecretBytes::from_slice(b"123456");
        for request in [
            Request::BeginHeld {
                user: "daemon".into(),
                name: "phone".into(),
                issuer: None,
            },
            Request::ConfirmHeld {
                user: "daemon".into(),
                name: "phone".into(),
                hold: hold(),
                code1: code(),
                code2: code(),
            },
            Request::ActivateHeld {
                user: "daemon".into(),
                hold: hold(),
            },
        ] {
            assert!(matches!(ok(authorise(0, request)), Work::AtLogin(_)));
        }
        assert!(matches!(
            ok(authorise(0, Request::TokensRemove { serial: "SN-1".into() })),
            Work::Admin(a) if matches!(*a, Admin::TokensRemove { .. })
        ));
    }

    #[test]
    fn a_named_seed_file_format_is_the_one_read() {
        let csv = b"SN-1,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n";
        let import = |format: &str| {
            authorise(
                0,
                Request::TokensImport {
                    data: SecretBytes::from_slice(csv),
                    format: Some(format.into()),
                    key: None,
                    replace: false,
                },
            )
        };
        match ok(import("CSV")) {
            Work::Admin(a) => assert!(matches!(
                *a,
                Admin::TokensImport {
                    format: Format::Csv,
                    ..
                }
            )),
            other => panic!("{other:?}"),
        }
        // Read as PSKC, as asked: a CSV file is then a bad seed file, not an unknown format.
        match import("pskc") {
            Err(r) => assert!(
                r.reply.message.starts_with("the seed file"),
                "{:?}",
                r.reply
            ),
            Ok(w) => panic!("{w:?}"),
        }
    }

    #[test]
    fn a_users_overrides_are_dropped_and_roots_kept() {
        let loose = pam_mfa_protocol::Overrides {
            window: Some(3),
            hotp_window: None,
            max_failures: Some(100),
            lockout_secs: Some(1),
        };
        let verify = || Request::VerifyCode {
            user: "daemon".into(),
            answer: SecretBytes::from_slice(b"123456"),
            overrides: loose,
            context: None,
        };
        let overrides = |uid| match ok(authorise(uid, verify())) {
            Work::VerifyCode { overrides, .. } => overrides,
            other => panic!("{other:?}"),
        };
        assert_eq!(overrides(0), loose);
        assert_eq!(overrides(1), Overrides::default());
    }
}
