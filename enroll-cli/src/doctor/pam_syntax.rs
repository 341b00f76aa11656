//! The syntax of `/etc/pam.d` files, read the way libpam reads them.
//!
//! `mfa doctor` must see the same lines, controls and arguments that libpam hands to the
//! module, or it would approve a file that locks people out. So this follows libpam's
//! own rules rather than a tidier grammar: a `#` anywhere ends the line (also inside
//! brackets), a backslash at the end of a line joins it with the next unless the line has
//! a comment, `[...]` is one token with `\]` standing for `]`, a leading `-` on the type
//! only silences load errors, and Debian's `@include FILE` pulls in every line of FILE.

/// The four management groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Type {
    Auth,
    Account,
    Session,
    Password,
}

impl Type {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auth" => Some(Self::Auth),
            "account" => Some(Self::Account),
            "session" => Some(Self::Session),
            "password" => Some(Self::Password),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Account => "account",
            Self::Session => "session",
            Self::Password => "password",
        }
    }
}

/// What libpam does with a module's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Ignore,
    Ok,
    Done,
    /// The stack fails, but the remaining modules still run.
    Bad,
    /// The stack fails at once.
    Die,
    Reset,
    Jump(u32),
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ignore" => Self::Ignore,
            "ok" => Self::Ok,
            "done" => Self::Done,
            "bad" => Self::Bad,
            "die" => Self::Die,
            "reset" => Self::Reset,
            n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => match n.parse::<u32>() {
                Ok(0) | Err(_) => return None,
                Ok(n) => Self::Jump(n),
            },
            _ => return None,
        })
    }

    /// Whether the result makes the whole stack fail.
    pub fn fails(self) -> bool {
        matches!(self, Self::Bad | Self::Die)
    }
}

/// The result names a bracketed control may use (libpam's `_pam_token_returns`).
const RETURN_NAMES: &[&str] = &[
    "success",
    "open_err",
    "symbol_err",
    "service_err",
    "system_err",
    "buf_err",
    "perm_denied",
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "new_authtok_reqd",
    "acct_expired",
    "session_err",
    "cred_unavail",
    "cred_expired",
    "cred_err",
    "no_module_data",
    "conv_err",
    "authtok_err",
    "authtok_recover_err",
    "authtok_lock_busy",
    "authtok_disable_aging",
    "try_again",
    "ignore",
    "abort",
    "authtok_expired",
    "module_unknown",
    "bad_item",
    "conv_again",
    "incomplete",
    "default",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Required,
    Requisite,
    Sufficient,
    Optional,
    /// `include FILE`: FILE's lines of this type, inline.
    Include,
    /// `substack FILE`: like include, but `done` and `die` end only the substack.
    Substack,
    /// `[value=action ...]`.
    Bracketed {
        text: String,
        /// The pairs, or why libpam could not parse them (it then treats every result
        /// as `bad`).
        pairs: Result<Vec<(String, Action)>, String>,
    },
}

impl Control {
    fn parse(token: &Token) -> Option<Self> {
        if token.bracketed {
            return Some(Self::Bracketed {
                text: token.text.clone(),
                pairs: parse_pairs(&token.text),
            });
        }
        Some(match token.text.to_ascii_lowercase().as_str() {
            "required" => Self::Required,
            "requisite" => Self::Requisite,
            "sufficient" => Self::Sufficient,
            "optional" => Self::Optional,
            "include" => Self::Include,
            "substack" => Self::Substack,
            _ => return None,
        })
    }

    /// What libpam does when the module returns `result` (a name from the bracket
    /// syntax, such as `auth_err`). `None` for include and substack, which run no module.
    pub fn action_for(&self, result: &str) -> Option<Action> {
        let success = result == "success" || result == "new_authtok_reqd";
        Some(match self {
            Self::Required if success => Action::Ok,
            Self::Requisite if success => Action::Ok,
            Self::Required | Self::Requisite if result == "ignore" => Action::Ignore,
            Self::Required => Action::Bad,
            Self::Requisite => Action::Die,
            Self::Optional if success => Action::Ok,
            Self::Sufficient if success => Action::Done,
            Self::Optional | Self::Sufficient => Action::Ignore,
            Self::Include | Self::Substack => return None,
            Self::Bracketed { pairs: Err(_), .. } => Action::Bad,
            Self::Bracketed {
                pairs: Ok(pairs), ..
            } => {
                let find = |name: &str| pairs.iter().find(|(r, _)| r == name).map(|(_, a)| *a);
                find(result)
                    .or_else(|| find("default"))
                    .unwrap_or(Action::Bad)
            }
        })
    }
}

/// `value=action` pairs as libpam's `_pam_parse_control` accepts them (spaces allowed
/// around `=`).
fn parse_pairs(text: &str) -> Result<Vec<(String, Action)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let name = RETURN_NAMES
            .iter()
            .filter(|n| rest.starts_with(**n))
            .max_by_key(|n| n.len())
            .ok_or_else(|| format!("expected a result name at {:?}", clip(rest)))?;
        rest = rest[name.len()..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after {name}"))?
            .trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let action = Action::parse(&rest[..end])
            .ok_or_else(|| format!("{:?} is not an action", clip(&rest[..end])))?;
        pairs.push(((*name).to_owned(), action));
        rest = rest[end..].trim_start();
    }
    Ok(pairs)
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// One module line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The type had a leading `-`: libpam does not log a missing module (it still fails).
    pub silent: bool,
    pub ty: Type,
    pub control: Control,
    /// The module path, or the file name for include and substack.
    pub module: String,
    /// The arguments as the module receives them (brackets removed).
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Rule(Rule),
    /// Debian's `@include FILE`.
    IncludeAll(String),
    /// A line libpam cannot use (it installs it as a module that always fails).
    Malformed(String),
}

/// A logical line: where it starts in the file, its text after joining and comment
/// removal, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: String,
    pub entry: Entry,
}

pub fn parse_file(content: &str) -> Vec<Line> {
    logical_lines(content)
        .into_iter()
        .map(|(number, text)| {
            let entry = parse_line(&text);
            Line {
                number,
                text: text.split_whitespace().collect::<Vec<_>>().join(" "),
                entry,
            }
        })
        .collect()
}

/// Joins continued lines and drops comments and blank lines, as libpam's
/// `_pam_assemble_line` does; each result carries the number of its first line.
fn logical_lines(content: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut buffer = String::new();
    let mut first = 0;
    for (i, raw) in content.split_inclusive('\n').enumerate() {
        let mut line = raw.trim_end_matches(['\n', ' ', '\t']).to_owned();
        let continued = line.ends_with('\\') && !raw.contains('#');
        if continued {
            line.pop();
            line.push(' ');
        }
        let line = line.trim_start_matches([' ', '\t']);
        let line = line.split('#').next().unwrap_or_default();
        if buffer.is_empty() {
            first = i + 1;
        }
        buffer.push_str(line);
        if !continued {
            if !buffer.trim().is_empty() {
                out.push((first, std::mem::take(&mut buffer)));
            }
            buffer.clear();
        }
    }
    if !buffer.trim().is_empty() {
        out.push((first, buffer));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    bracketed: bool,
}

/// Splits a line as libpam's `_pam_StrTok` does: blanks separate tokens, `[...]` is one
/// token (up to the first `]` not written `\]`) without its brackets.
fn tokens(line: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| matches!(c, ' ' | '\t' | '\n')).is_some() {}
        let Some(c) = chars.next() else { break };
        let mut text = String::new();
        if c == '[' {
            while let Some(c) = chars.next() {
                match c {
                    ']' => break,
                    '\\' if chars.peek() == Some(&']') => {
                        chars.next();
                        text.push(']');
                    }
                    c => text.push(c),
                }
            }
            out.push(Token {
                text,
                bracketed: true,
            });
        } else {
            text.push(c);
            while let Some(c) = chars.next_if(|c| !matches!(c, ' ' | '\t' | '\n')) {
                text.push(c);
            }
            out.push(Token {
                text,
                bracketed: false,
            });
        }
    }
    out
}

fn parse_line(line: &str) -> Entry {
    let toks = tokens(line);
    let mut it = toks.into_iter();
    let Some(first) = it.next() else {
        return Entry::Malformed("empty line".to_owned());
    };
    if first.text == "@include" && !first.bracketed {
        return match it.next() {
            Some(file) => Entry::IncludeAll(file.text),
            None => Entry::Malformed("@include without a file name".to_owned()),
        };
    }
    let (silent, type_text) = match first.text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, first.text.as_str()),
    };
    let Some(ty) = Type::parse(type_text) else {
        return Entry::Malformed(format!("unknown type {:?}", clip(&first.text)));
    };
    let Some(control_token) = it.next() else {
        return Entry::Malformed("no control".to_owned());
    };
    let Some(control) = Control::parse(&control_token) else {
        return Entry::Malformed(format!("unknown control {:?}", clip(&control_token.text)));
    };
    let Some(module) = it.next() else {
        return Entry::Malformed("no module".to_owned());
    };
    Entry::Rule(Rule {
        silent,
        ty,
        control,
        module: module.text,
        args: it.map(|t| t.text).collect(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn rule(line: &str) -> Rule {
        match parse_line(line) {
            Entry::Rule(r) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn plain_rules() {
        let r = rule("auth\trequired   pam_mfa.so nullok window=2");
        assert_eq!(r.ty, Type::Auth);
        assert_eq!(r.control, Control::Required);
        assert_eq!(r.module, "pam_mfa.so");
        assert_eq!(r.args, ["nullok", "window=2"]);
        assert!(!r.silent);
        let r = rule("-auth optional /usr/lib/security/pam_mfa.so");
        assert!(r.silent);
        assert_eq!(r.control, Control::Optional);
        let r = rule("AUTH Requisite pam_mfa.so");
        assert_eq!((r.ty, r.control), (Type::Auth, Control::Requisite));
    }

    #[test]
    fn bracketed_arguments_keep_their_spaces() {
        let r = rule("auth required pam_mfa.so [prompt=Code for \\]x\\]: ] debug");
        assert_eq!(r.args, ["prompt=Code for ]x]: ", "debug"]);
        let r = rule("auth required pam_mfa.so [prompt=unterminated");
        assert_eq!(r.args, ["prompt=unterminated"]);
        // The closing bracket ends the token even without a blank after it.
        let r = rule("auth required pam_mfa.so [prompt=x]debug");
        assert_eq!(r.args, ["prompt=x", "debug"]);
    }

    #[test]
    fn bracketed_controls() {
        let r = rule("auth [success=1 default=ignore] pam_unix.so nullok");
        assert_eq!(r.control.action_for("success"), Some(Action::Jump(1)));
        assert_eq!(r.control.action_for("auth_err"), Some(Action::Ignore));
        let r = rule("auth [success = ok auth_err=die] pam_mfa.so");
        assert_eq!(r.control.action_for("auth_err"), Some(Action::Die));
        // Unlisted results are bad when there is no default.
        assert_eq!(r.control.action_for("user_unknown"), Some(Action::Bad));
        let r = rule("auth [success=ok bogus=ignore] pam_mfa.so");
        assert!(matches!(
            r.control,
            Control::Bracketed { pairs: Err(_), .. }
        ));
        assert_eq!(r.control.action_for("auth_err"), Some(Action::Bad));
        let r = rule("auth [success=0] pam_mfa.so");
        assert!(matches!(
            r.control,
            Control::Bracketed { pairs: Err(_), .. }
        ));
    }

    #[test]
    fn keyword_controls() {
        let act = |c: Control, r| c.action_for(r);
        assert_eq!(act(Control::Required, "auth_err"), Some(Action::Bad));
        assert_eq!(act(Control::Requisite, "auth_err"), Some(Action::Die));
        assert_eq!(act(Control::Required, "ignore"), Some(Action::Ignore));
        assert_eq!(act(Control::Sufficient, "auth_err"), Some(Action::Ignore));
        assert_eq!(act(Control::Sufficient, "success"), Some(Action::Done));
        assert_eq!(act(Control::Optional, "auth_err"), Some(Action::Ignore));
        assert_eq!(act(Control::Include, "auth_err"), None);
    }

    #[test]
    fn includes_and_malformed_lines() {
        assert_eq!(
            parse_line("@include common-auth"),
            Entry::IncludeAll("common-auth".to_owned())
        );
        let r = rule("auth include common-mfa");
        assert_eq!(
            (r.control, r.module.as_str()),
            (Control::Include, "common-mfa")
        );
        assert!(matches!(
            parse_line("auht required pam_mfa.so"),
            Entry::Malformed(_)
        ));
        assert!(matches!(parse_line("auth required"), Entry::Malformed(_)));
        assert!(matches!(
            parse_line("auth mandatory pam_mfa.so"),
            Entry::Malformed(_)
        ));
    }

    #[test]
    fn comments_continuations_and_line_numbers() {
        let text = "# a comment\n\
                    \n\
                    auth required pam_unix.so # trailing comment\n\
                    auth required \\\n    pam_mfa.so \\\n  nullok\n\
                    auth optional pam_x.so # comment ends it \\\n\
                    auth optional pam_y.so\n\
                    account required pam_mfa.so [prompt=a # b]\n";
        let lines = parse_file(text);
        let summary: Vec<_> = lines.iter().map(|l| (l.number, l.text.as_str())).collect();
        assert_eq!(
            summary,
            [
                (3, "auth required pam_unix.so"),
                (4, "auth required pam_mfa.so nullok"),
                (7, "auth optional pam_x.so"),
                (8, "auth optional pam_y.so"),
                (9, "account required pam_mfa.so [prompt=a"),
            ]
        );
        match &lines[1].entry {
            Entry::Rule(r) => assert_eq!(r.args, ["nullok"]),
            other => panic!("{other:?}"),
        }
    }
}
