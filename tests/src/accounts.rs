//! What real logins need of a [`TestUser`] beyond what the PAM-level tests do: a shell
//! that runs commands (sshd and `su -c` run them through the login shell, and
//! `TestUser::new` gives `nologin`), a password for pam_unix, and the ids.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::paths;
use crate::users::{TestUser, random_hex};

/// How many times a command that changes `/etc/passwd` or `/etc/shadow` is tried when it
/// fails (typically because a concurrent test holds the lock on those files).
const ATTEMPTS: u32 = 60;

/// Runs `cmd` (built fresh by `make` for every attempt) until it succeeds, feeding
/// `input` on stdin; panics with its last error.
fn run_locked(what: &str, input: &str, make: impl Fn() -> Command) {
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        let mut child = make()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        if out.status.success() {
            return;
        }
        last = format!(
            "{what} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        // A pause that differs between threads, so retrying writers do not stay in step.
        let jitter = u64::from_str_radix(&random_hex(2), 16).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(
            20 + u64::from(attempt.min(10)) * 10 + jitter,
        ));
    }
    panic!("{last} (after {ATTEMPTS} attempts)");
}

/// Gives `user` the login shell `/bin/sh`, so sshd and `su` can run commands as them.
pub fn give_shell(user: &TestUser) {
    let usermod = paths::tool("usermod", "passwd");
    run_locked(&format!("usermod -s /bin/sh {user}"), "", || {
        let mut c = Command::new(&usermod);
        c.args(["-s", "/bin/sh", user.name()]);
        c
    });
}

/// Sets a new random password for `user` with `chpasswd` and returns it.
pub fn give_password(user: &TestUser) -> String {
    let password = format!("Pw-{}", random_hex(16));
    let chpasswd = paths::tool("chpasswd", "passwd");
    run_locked(
        &format!("chpasswd for {user}"),
        &format!("{}:{password}\n", user.name()),
        || Command::new(&chpasswd),
    );
    password
}

/// One field of `getent passwd NAME` (0 name … 5 home, 6 shell).
fn passwd_field(name: &str, field: usize) -> String {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .expect("cannot run getent");
    assert!(out.status.success(), "getent passwd {name} failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(':')
        .nth(field)
        .unwrap_or_else(|| panic!("getent passwd {name} has no field {field}"))
        .to_owned()
}

/// The user's home directory as the account database has it.
pub fn home_of(name: &str) -> String {
    passwd_field(name, 5)
}

/// The user's primary group id.
pub fn gid_of(user: &TestUser) -> u32 {
    passwd_field(user.name(), 3)
        .parse()
        .expect("the gid field is a number")
}

/// A command run as `user` (real and effective ids, supplementary groups) by
/// `setpriv`, which, unlike `su` or `runuser`, neither authenticates nor starts a new
/// session, so the command keeps the test's terminal as its controlling terminal.
pub fn as_user(user: &TestUser) -> Vec<String> {
    vec![
        paths::tool("setpriv", "util-linux").display().to_string(),
        format!("--reuid={}", user.uid()),
        format!("--regid={}", gid_of(user)),
        "--init-groups".to_owned(),
        "--".to_owned(),
    ]
}
