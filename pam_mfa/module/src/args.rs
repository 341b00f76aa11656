//! Module arguments from the PAM service file, parsed strictly.
//!
//! A typo in a security module's arguments must not silently fall back to a default (think
//! `nulok` or `windw=3`): every unknown, repeated or malformed argument is an error, which
//! the entry point turns into a refusal and a syslog line naming the argument.

use std::path::PathBuf;

use pam_mfa_keys_abi::{DEFAULT_TIMEOUT_SECS as DEFAULT_FIDO2_TIMEOUT, MAX_TIMEOUT_SECS};
use pam_mfa_protocol::Overrides;

pub const DEFAULT_PROMPT: &str = "Verification code: ";
const MAX_PROMPT_CHARS: usize = 200;

/// Where `mfad` listens unless told otherwise.
pub use pam_mfa_protocol::DEFAULT_SOCKET;
/// The store `mfad` serves by default: the one obsolete `db=` still accepted.
pub use pam_mfa_protocol::DEFAULT_STORE as DEFAULT_DB;
/// How long the daemon has to accept the connection and to answer each request.
pub const DEFAULT_TIMEOUT_SECS: u32 = 5;
pub const MAX_DAEMON_TIMEOUT_SECS: u32 = 60;
/// The longest path a UNIX socket address holds (`sun_path`'s 108 bytes, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The longest a login may be remembered (the policy's bound too).
pub const MAX_REMEMBER_SECS: u32 = 12 * 3600;

// The bounds of the numbers a line may set: the ones `mfad` accepts in the overrides.
pub use pam_mfa_protocol::limits::{
    MAX_HOTP_WINDOW, MAX_LOCKOUT_SECS, MAX_MAX_FAILURES, MAX_WINDOW,
};

/// The numbers that tune code checking, as the line sets them (the defaults are the
/// built-in ones; the daemon applies the policy's numbers to those the line did not set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub window: u32,
    pub hotp_window: u32,
    pub max_failures: u32,
    pub lockout_secs: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            window: 1,
            hotp_window: 10,
            max_failures: 5,
            lockout_secs: 300,
        }
    }
}

/// One module argument, as the manual page pam_mfa(8) (generated from this table by
/// `packaging/`'s `gen-docs`) describes it. [`parse`] accepts exactly the names listed
/// here: an argument it handles but that is missing from the table is refused as unknown,
/// and a unit test parses every entry (its default, or the flag alone), so the manual
/// cannot drift from the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgumentDoc {
    /// The name, before any `=`.
    pub name: &'static str,
    /// How it is written, e.g. `window=N`.
    pub syntax: &'static str,
    /// The value used when the argument is not given, as it would be written after `=`;
    /// `None` for a flag, which is off unless given.
    pub default: Option<&'static str>,
    /// What it does (one paragraph).
    pub description: &'static str,
}

/// Every module argument, in the order the manual lists them.
pub const ARGUMENTS: &[ArgumentDoc] = &[
    ArgumentDoc {
        name: "socket",
        syntax: "socket=PATH",
        default: Some(DEFAULT_SOCKET),
        description: "The socket of mfad, the daemon that keeps the device store: an \
                      absolute path of at most 107 bytes.",
    },
    ArgumentDoc {
        name: "timeout",
        syntax: "timeout=SECONDS",
        default: Some("5"),
        description: "How long mfad has to accept the connection and to answer each \
                      question, 1 to 60. A daemon that is not running or does not answer \
                      in time fails the login with PAM_AUTHINFO_UNAVAIL (never success).",
    },
    ArgumentDoc {
        name: "db",
        syntax: "db=PATH",
        default: Some(DEFAULT_DB),
        description: "Obsolete: the module no longer opens the store, mfad does. Only the \
                      default path is still accepted (with a syslog notice; remove it); any \
                      other path refuses every login: point socket= at the daemon serving \
                      that store instead.",
    },
    ArgumentDoc {
        name: "nullok",
        syntax: "nullok",
        default: None,
        description: "A user with no active device is let through (PAM_IGNORE). Without it \
                      they are prompted and refused, so the prompt does not reveal who has \
                      registered a device.",
    },
    ArgumentDoc {
        name: "window",
        syntax: "window=N",
        default: Some("1"),
        description: "Time steps (30 seconds each) accepted on each side of the device's \
                      expected step, 0 to 10.",
    },
    ArgumentDoc {
        name: "max_failures",
        syntax: "max_failures=N",
        default: Some("5"),
        description: "Failures within the lock-out time that lock short codes out, 1 to \
                      1000. A wrong code counts one failure per three codes it was \
                      compared with (one device at window=1: one); security keys, \
                      recovery and bypass codes are never counted or locked out.",
    },
    ArgumentDoc {
        name: "lockout",
        syntax: "lockout=SECONDS",
        default: Some("300"),
        description: "How long a lock-out lasts (longer in proportion when a guess took \
                      the failures past max_failures), and the time in which failures are \
                      counted, up to a week (604800).",
    },
    ArgumentDoc {
        name: "prompt",
        syntax: "prompt=TEXT",
        default: Some(DEFAULT_PROMPT),
        description: "The prompt, at most 200 printable characters; write [prompt=Enter \
                      code: ] for text with spaces.",
    },
    ArgumentDoc {
        name: "enroll_at_login",
        syntax: "enroll_at_login",
        default: None,
        description: "Where the policy says no_device=enroll, a user with no device \
                      registers an authenticator app during the login on this line; the \
                      device is kept only if the whole login succeeds. Without it such a \
                      user is prompted and refused, as under no_device=deny. Safe only \
                      after a first factor that ends the stack when it fails (requisite) \
                      or after a public-key login: otherwise anyone could run the \
                      registration dialogue for anyone.",
    },
    ArgumentDoc {
        name: "echo_code",
        syntax: "echo_code",
        default: None,
        description: "Show the code as it is typed.",
    },
    ArgumentDoc {
        name: "remember",
        syntax: "remember=SECONDS",
        default: Some("43200"),
        description: "At most this long a successful second factor is remembered on this \
                      line, 0 to 43200: it can only shorten the policy's remember_seconds \
                      (off unless the administrator sets it), and remember=0 turns \
                      remembering off here. A remembered login is one of the same user, at \
                      the same service, from the same remote host (PAM_RHOST); see \
                      pam_mfa(8), REMEMBERED LOGINS.",
    },
    ArgumentDoc {
        name: "nodelay",
        syntax: "nodelay",
        default: None,
        description: "Do not ask libpam for a delay after a failed login. Without it the \
                      module asks for 2 seconds, as pam_unix does: libpam waits that long \
                      (scattered by up to half either way) before a failed pam_authenticate \
                      returns, taking the longest delay any module of the stack asked for, \
                      so it does not add up with pam_unix's. Successful logins never wait.",
    },
    ArgumentDoc {
        name: "debug",
        syntax: "debug",
        default: None,
        description: "Extra syslog lines at debug level (never codes or secrets).",
    },
    ArgumentDoc {
        name: "fido2",
        syntax: "fido2=off|prefer|require",
        default: Some("prefer"),
        description: "Security keys at this service: not used (off); used where the user \
                      has one plugged in at this computer, else the code prompt (prefer); \
                      or the only thing accepted (require).",
    },
    ArgumentDoc {
        name: "fido2_timeout",
        syntax: "fido2_timeout=SECONDS",
        default: Some("30"),
        description: "How long to wait for the security key to be touched, 1 to 120.",
    },
    ArgumentDoc {
        name: "hotp_window",
        syntax: "hotp_window=N",
        default: Some("10"),
        description: "How many codes ahead of the last one used an event-based (HOTP) \
                      hardware token may be, 0 to 100; pressing the button without logging \
                      in moves the token ahead.",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    /// `db=`, obsolete: the module never opens it. Only [`DEFAULT_DB`] is accepted
    /// (`explicit.db` says whether the line gave it).
    pub db: PathBuf,
    /// mfad's socket.
    pub socket: PathBuf,
    /// How long the daemon has to accept and to answer each request, in seconds.
    pub timeout: u32,
    /// A user without an active device is let through (`PAM_IGNORE`).
    pub nullok: bool,
    pub settings: Settings,
    pub prompt: String,
    pub echo_code: bool,
    /// No failure delay is requested from libpam (`nodelay`, as pam_unix has).
    pub nodelay: bool,
    /// `remember=SECONDS`: the most this line lets a login be remembered (the policy
    /// decides whether at all; the default, the hard maximum, leaves the policy's time).
    pub remember: u32,
    pub debug: bool,
    /// This line may register a device for a user without one (policy `no_device=enroll`).
    pub enroll_at_login: bool,
    /// Whether this service asks for a security key touch.
    pub fido2: Fido2Mode,
    /// How long to wait for the touch, in seconds (1 to 120).
    pub fido2_timeout: u32,
    /// Which numbers the service file set, so the store's policy fills in only the rest.
    pub explicit: Explicit,
}

/// The module arguments that override the policy's defaults when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Explicit {
    pub db: bool,
    pub window: bool,
    pub max_failures: bool,
    pub lockout: bool,
}

/// `fido2=off|prefer|require`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fido2Mode {
    /// Security keys are not used here; users log in with codes.
    Off,
    /// A user with a security key, at this computer, with the key plugged in, touches it;
    /// otherwise (remote, no key) they type a code, if they have a code device.
    #[default]
    Prefer,
    /// Only a security key touch is accepted here: no code prompt, ever.
    Require,
}

impl Default for ModuleArgs {
    fn default() -> Self {
        Self {
            db: PathBuf::from(DEFAULT_DB),
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: DEFAULT_TIMEOUT_SECS,
            nullok: false,
            settings: Settings::default(),
            prompt: DEFAULT_PROMPT.to_owned(),
            echo_code: false,
            nodelay: false,
            remember: MAX_REMEMBER_SECS,
            debug: false,
            enroll_at_login: false,
            fido2: Fido2Mode::default(),
            fido2_timeout: DEFAULT_FIDO2_TIMEOUT,
            explicit: Explicit::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("module argument is not valid UTF-8")]
    NotUtf8,
    #[error("unknown module argument {0:?}")]
    Unknown(String),
    #[error("module argument {0:?} is given more than once")]
    Repeated(String),
    #[error("module argument {name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

fn invalid(name: &'static str, problem: impl Into<String>) -> ArgError {
    ArgError::Invalid {
        name,
        problem: problem.into(),
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    name: &'static str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ArgError> {
    // Only plain decimal digits: "+5", " 5" and "0x5" are typos, not numbers.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(name, format!("{value:?} is not a number")));
    }
    let n: T = value
        .parse()
        .map_err(|_| invalid(name, format!("{value:?} is out of range")))?;
    if n < min || n > max {
        return Err(invalid(name, format!("must be from {min} to {max}")));
    }
    Ok(n)
}

/// Parses the arguments as PAM hands them over (one C string each; PAM has already
/// joined `[prompt=Two words]` bracketed values).
pub fn parse<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Result<ModuleArgs, ArgError> {
    let mut out = ModuleArgs::default();
    let mut seen: Vec<String> = Vec::new();
    for raw in args {
        let arg = std::str::from_utf8(raw).map_err(|_| ArgError::NotUtf8)?;
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg, None),
        };
        if !ARGUMENTS.iter().any(|a| a.name == key) {
            return Err(ArgError::Unknown(arg.chars().take(64).collect()));
        }
        if seen.iter().any(|s| s == key) {
            return Err(ArgError::Repeated(key.to_owned()));
        }
        seen.push(key.to_owned());
        let flag = |name: &'static str| match value {
            None => Ok(true),
            Some(_) => Err(invalid(name, "takes no value")),
        };
        let value_of = |name: &'static str| value.ok_or_else(|| invalid(name, "needs a value"));
        match key {
            "db" => {
                let v = value_of("db")?;
                let p = PathBuf::from(v);
                if !p.is_absolute() || p.file_name().is_none() {
                    return Err(invalid("db", "must be an absolute path to a file"));
                }
                out.db = p;
                out.explicit.db = true;
            }
            "socket" => {
                let p = PathBuf::from(value_of("socket")?);
                if !p.is_absolute() || p.file_name().is_none() {
                    return Err(invalid("socket", "must be an absolute path"));
                }
                // A path no socket address can hold is a mistake in the line, not a
                // daemon that is away: refused here, never PAM_AUTHINFO_UNAVAIL (which
                // an `authinfo_unavail=ignore` stack would let through).
                if p.as_os_str().len() > MAX_SOCKET_PATH {
                    return Err(invalid(
                        "socket",
                        "is longer than a socket address can be (107 bytes)",
                    ));
                }
                out.socket = p;
            }
            "timeout" => {
                out.timeout = number("timeout", value_of("timeout")?, 1, MAX_DAEMON_TIMEOUT_SECS)?;
            }
            "nullok" => out.nullok = flag("nullok")?,
            "echo_code" => out.echo_code = flag("echo_code")?,
            "nodelay" => out.nodelay = flag("nodelay")?,
            "remember" => {
                out.remember = number("remember", value_of("remember")?, 0, MAX_REMEMBER_SECS)?;
            }
            "debug" => out.debug = flag("debug")?,
            "enroll_at_login" => out.enroll_at_login = flag("enroll_at_login")?,
            "window" => {
                out.settings.window = number("window", value_of("window")?, 0, MAX_WINDOW)?;
                out.explicit.window = true;
            }
            "hotp_window" => {
                out.settings.hotp_window =
                    number("hotp_window", value_of("hotp_window")?, 0, MAX_HOTP_WINDOW)?;
            }
            "max_failures" => {
                out.settings.max_failures = number(
                    "max_failures",
                    value_of("max_failures")?,
                    1,
                    MAX_MAX_FAILURES,
                )?;
                out.explicit.max_failures = true;
            }
            "lockout" => {
                out.settings.lockout_secs =
                    number("lockout", value_of("lockout")?, 1, MAX_LOCKOUT_SECS)?;
                out.explicit.lockout = true;
            }
            "fido2" => {
                out.fido2 = match value_of("fido2")? {
                    "off" => Fido2Mode::Off,
                    "prefer" => Fido2Mode::Prefer,
                    "require" => Fido2Mode::Require,
                    other => {
                        return Err(invalid(
                            "fido2",
                            format!("{other:?} is not one of off, prefer, require"),
                        ));
                    }
                };
            }
            "fido2_timeout" => {
                out.fido2_timeout = number(
                    "fido2_timeout",
                    value_of("fido2_timeout")?,
                    1,
                    MAX_TIMEOUT_SECS,
                )?;
            }
            "prompt" => {
                let v = value_of("prompt")?;
                if v.trim().is_empty() {
                    return Err(invalid("prompt", "must not be empty"));
                }
                if v.chars().count() > MAX_PROMPT_CHARS || v.chars().any(char::is_control) {
                    return Err(invalid(
                        "prompt",
                        "must be at most 200 printable characters",
                    ));
                }
                out.prompt = v.to_owned();
            }
            _ => return Err(ArgError::Unknown(arg.chars().take(64).collect())),
        }
    }
    Ok(out)
}

impl ModuleArgs {
    /// The numbers the service file set, as overrides of the store's policy.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            window: self.explicit.window.then_some(self.settings.window),
            hotp_window: Some(self.settings.hotp_window),
            max_failures: self
                .explicit
                .max_failures
                .then_some(self.settings.max_failures),
            lockout_secs: self.explicit.lockout.then_some(self.settings.lockout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<ModuleArgs, ArgError> {
        parse(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn defaults() {
        let a = p(&[]).unwrap();
        assert_eq!(a, ModuleArgs::default());
        assert_eq!(a.db, PathBuf::from("/var/lib/pam_mfa/devices.db"));
        assert_eq!(a.settings.window, 1);
        assert_eq!(a.settings.hotp_window, 10);
        assert_eq!(a.settings.max_failures, 5);
        assert_eq!(a.settings.lockout_secs, 300);
        assert_eq!(a.socket, PathBuf::from("/run/pam_mfa/mfad.sock"));
        assert_eq!(a.timeout, 5);
        assert!(!a.explicit.db);
        assert_eq!(a.prompt, "Verification code: ");
        assert!(!a.nullok && !a.echo_code && !a.debug && !a.enroll_at_login && !a.nodelay);
        assert_eq!(a.fido2, Fido2Mode::Prefer);
        assert_eq!(a.fido2_timeout, 30);
    }

    #[test]
    fn every_argument() {
        let a = p(&[
            "db=/tmp/x/devices.db",
            "socket=/tmp/x/mfad.sock",
            "timeout=60",
            "nullok",
            "window=10",
            "hotp_window=100",
            "max_failures=3",
            "lockout=60",
            "prompt=Enter code: ",
            "echo_code",
            "nodelay",
            "remember=600",
            "debug",
            "fido2=require",
            "fido2_timeout=120",
            "enroll_at_login",
        ])
        .unwrap();
        assert!(a.enroll_at_login);
        assert_eq!(a.fido2, Fido2Mode::Require);
        assert_eq!(a.fido2_timeout, 120);
        assert_eq!(p(&["fido2=off"]).unwrap().fido2, Fido2Mode::Off);
        assert_eq!(p(&["fido2=prefer"]).unwrap().fido2, Fido2Mode::Prefer);
        assert_eq!(a.db, PathBuf::from("/tmp/x/devices.db"));
        assert!(a.explicit.db);
        assert_eq!(a.socket, PathBuf::from("/tmp/x/mfad.sock"));
        assert_eq!(a.timeout, 60);
        assert!(a.nullok && a.echo_code && a.debug && a.nodelay);
        assert_eq!(a.remember, 600);
        assert_eq!(p(&[]).unwrap().remember, 43_200);
        assert!(p(&["remember=43201"]).is_err() && p(&["remember"]).is_err());
        assert_eq!(a.settings.window, 10);
        assert_eq!(a.settings.hotp_window, 100);
        assert_eq!(p(&["hotp_window=0"]).unwrap().settings.hotp_window, 0);
        assert_eq!(a.settings.max_failures, 3);
        assert_eq!(a.settings.lockout_secs, 60);
        assert_eq!(a.prompt, "Enter code: ");
    }

    /// The table the manual is made from lists exactly what the parser accepts, with the
    /// defaults it uses.
    #[test]
    fn the_documented_arguments_are_the_parsed_ones() {
        for doc in ARGUMENTS {
            assert!(
                doc.syntax.starts_with(doc.name),
                "{}: syntax {:?}",
                doc.name,
                doc.syntax
            );
            assert_eq!(
                ARGUMENTS.iter().filter(|d| d.name == doc.name).count(),
                1,
                "{} is listed twice",
                doc.name
            );
            match doc.default {
                // The documented default, given explicitly, changes nothing.
                Some(default) => {
                    let mut a = p(&[&format!("{}={default}", doc.name)])
                        .unwrap_or_else(|e| panic!("{}={default}: {e}", doc.name));
                    a.explicit = Explicit::default();
                    assert_eq!(a, ModuleArgs::default(), "{}={default}", doc.name);
                }
                // A flag is off by default and turns something on.
                None => {
                    let a = p(&[doc.name]).unwrap_or_else(|e| panic!("{}: {e}", doc.name));
                    assert_ne!(a, ModuleArgs::default(), "{}", doc.name);
                }
            }
        }
    }

    #[test]
    fn strictness() {
        let too_long_socket = format!("socket=/{}", "s".repeat(MAX_SOCKET_PATH));
        let bad: &[&[&str]] = &[
            &["nulok"],
            &["frobnicate"],
            &["nullok=1"],
            &["window"],
            &["window="],
            &["window=11"],
            &["window=-1"],
            &["window=+1"],
            &["window= 1"],
            &["window=0x1"],
            &["window=99999999999999999999"],
            &["max_failures=0"],
            &["lockout=0"],
            &["lockout=604801"],
            &["db=relative/devices.db"],
            &["db=/"],
            &["socket=relative.sock"],
            &[too_long_socket.as_str()],
            &["socket="],
            &["socket"],
            &["timeout=0"],
            &["timeout=61"],
            &["timeout=5s"],
            &["prompt="],
            &["prompt=a\x07b"],
            &["window=1", "window=2"],
            &["nullok", "nullok"],
            &["fido2"],
            &["fido2="],
            &["fido2=on"],
            &["fido2=Require"],
            &["fido2=off", "fido2=prefer"],
            &["fido2_timeout=0"],
            &["fido2_timeout=121"],
            &["fido2_timeout"],
            &["fido2_timeout=3s"],
            &["hotp_window"],
            &["hotp_window="],
            &["hotp_window=101"],
            &["hotp_window=-1"],
            &["hotp_window=1e2"],
            &["hotp_window=5", "hotp_window=5"],
            &["hotpwindow=5"],
            &["enroll_at_login=1"],
            &["enroll_at_login", "enroll_at_login"],
            &["enroll-at-login"],
            &["enroll"],
        ];
        for args in bad {
            assert!(p(args).is_err(), "{args:?} accepted");
        }
        // The longest socket path an address holds is accepted.
        let longest = format!("/{}", "s".repeat(MAX_SOCKET_PATH - 1));
        let a = p(&[format!("socket={longest}").as_str()]).expect("107 bytes");
        assert_eq!(a.socket, PathBuf::from(longest));
        assert_eq!(parse([&b"\xff"[..]]), Err(ArgError::NotUtf8));
        assert_eq!(
            p(&["frobnicate"]),
            Err(ArgError::Unknown("frobnicate".to_owned()))
        );
    }
}
