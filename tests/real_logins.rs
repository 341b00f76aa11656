//! Real logins: the built `pam_mfa.so` inside the real `sshd` (logged into with the real
//! `ssh`), `sudo` and `su`, configured with the deployment guide's snippets verbatim.
//!
//! Each test runs its programs in a private mount namespace ([`Namespace`]) where the
//! guide's lines are applied to the machine's own `/etc/pam.d` files as the guide tells an
//! administrator to, the module is at `pam_mfa.so` in the PAM module directory, the test's
//! store is at the default path, and `/dev/log` is a socket the test reads. Nothing of the
//! machine's configuration changes. Users are real accounts, codes come from `oathtool`
//! for the real clock (setuid programs ignore libfaketime), and each successful login uses
//! a device of its own (see [`pam_mfa_tests::realtime`]).

use pam_mfa_tests::PamCode;
use std::path::Path;

use pam_mfa_tests::guide::{snippet, snippet_names, unmarked_blocks, workspace_root};
use pam_mfa_tests::syslog::AUTHPRIV;
use pam_mfa_tests::{
    Namespace, PtySession, SshKey, SshOutcome, Sshd, SyslogRecord, TestEnv, TestUser,
    assert_code_not_logged, enroll_now, give_password, give_shell, keygen, module_lines, next_code,
    paths, wrong_code_now, wrong_code_now_for_all,
};

/// The module's default prompt.
const CODE_PROMPT: &str = "Verification code: ";
/// pam_unix's prompt.
const PASSWORD_PROMPT: &str = "Password: ";
/// The line of Debian's service files the guide's PAM snippets replace.
const COMMON_AUTH: &str = "@include common-auth";

/// The guide's snippets, by marker. Every marker in the guide must be one of these
/// (checked by `every_block_of_the_guide_is_a_tested_snippet`), and every one of these is
/// used by a test below.
const SNIPPETS: &[&str] = &[
    "sshd-config-pubkey",
    "sshd-pam-pubkey",
    "sshd-pam-pubkey-nullok",
    "sshd-config-password",
    "sshd-pam-password",
    "sudo-pam",
    "pam-configs-mfa",
    "pam-auth-update-enable",
    "common-auth-result",
    "pam-auth-update-strict",
    "pam-auth-update-disable",
];

// ----- helpers -----

/// A test account that can log in: a shell, and a password if asked for.
struct Person {
    user: TestUser,
    password: String,
}

impl Person {
    fn new() -> Self {
        let user = TestUser::new();
        give_shell(&user);
        let password = give_password(&user);
        Self { user, password }
    }

    fn name(&self) -> &str {
        self.user.name()
    }
}

/// The records that are pam_mfa's lines for `service`, checked to be at facility authpriv.
fn mfa_lines(records: &[SyslogRecord], service: &str) -> Vec<String> {
    let prefix = format!("pam_mfa({service}:auth): ");
    for r in records.iter().filter(|r| r.message.starts_with(&prefix)) {
        assert_eq!(
            r.facility(),
            AUTHPRIV,
            "pam_mfa logged outside authpriv: {r}"
        );
    }
    module_lines(records, "pam_mfa", service)
}

/// Asserts pam_mfa logged exactly `expected` for `service` in `records`, and that none of
/// `codes` appears anywhere in them.
#[track_caller]
fn assert_mfa_logged(records: &[SyslogRecord], service: &str, expected: &[String], codes: &[&str]) {
    let got = mfa_lines(records, service);
    assert_eq!(
        got,
        expected,
        "pam_mfa's syslog lines for {service}; everything logged:\n{}",
        records
            .iter()
            .map(|r| r.raw.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for code in codes {
        assert_code_not_logged(records, code);
    }
}

/// pam_mfa's line for an accepted code (what the README and the guide promise).
fn authenticated(device: &str, user: &str, rhost: Option<&str>) -> String {
    match rhost {
        Some(h) => format!("authenticated with device \"{device}\" (user={user} rhost={h})"),
        None => format!("authenticated with device \"{device}\" (user={user})"),
    }
}

/// pam_mfa's line for a refusal.
fn failed(why: &str, user: &str, rhost: Option<&str>) -> String {
    match rhost {
        Some(h) => format!("authentication failure: {why} (user={user} rhost={h})"),
        None => format!("authentication failure: {why} (user={user})"),
    }
}

/// pam_mfa's line for a user without a device let through by `nullok`.
fn let_through(user: &str, rhost: Option<&str>) -> String {
    match rhost {
        Some(h) => {
            format!("no active device; nullok lets the user through (user={user} rhost={h})")
        }
        None => format!("no active device; nullok lets the user through (user={user})"),
    }
}

/// The remote host sshd reports for our client.
const LOCAL: Option<&str> = Some("127.0.0.1");

/// An sshd person: a key in `~/.ssh/authorized_keys` (in the namespace's `/home`).
fn with_key(ns: &Namespace, person: &Person) -> SshKey {
    let key = keygen(&ns.dir().join(format!("key-{}", person.name())));
    ns.authorize_key(&person.user, &key.public);
    key
}

// ----- sshd -----

/// (a) and (c) of the issue: public key, then the code from pam_mfa alone in the stack.
#[test]
fn ssh_public_key_then_code() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service("sshd", COMMON_AUTH, &snippet("sshd-pam-pubkey"));
    let sshd = Sshd::start(&ns, "pubkey", &snippet("sshd-config-pubkey"));

    let alice = Person::new();
    let alice_key = with_key(&ns, &alice);
    let phone = enroll_now(&env, alice.name(), "phone");
    let bob = Person::new(); // no device
    let bob_key = with_key(&ns, &bob);
    let log = ns.syslog();

    // The right code: the command runs, after exactly one prompt (no password).
    let mark = log.mark();
    let out = sshd
        .login(alice.name())
        .key(&alice_key)
        .next_code_of(&phone.secret)
        .run();
    out.assert_ran(&format!("logged-in-as-{}", alice.name()))
        .assert_prompts(&[CODE_PROMPT]);
    let codes: Vec<&str> = out.codes_given.iter().map(String::as_str).collect();
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[authenticated("phone", alice.name(), LOCAL)],
        &codes,
    );

    // A wrong code: refused after the same prompt.
    let mark = log.mark();
    let wrong = wrong_code_now(&phone.secret);
    sshd.login(alice.name())
        .key(&alice_key)
        .code(&wrong)
        .run()
        .assert_refused()
        .assert_prompts(&[CODE_PROMPT]);
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[failed("wrong code", alice.name(), LOCAL)],
        &[&wrong],
    );

    // Without the key there is no code prompt at all: the key comes first.
    let mark = log.mark();
    sshd.login(alice.name())
        .next_code_of(&phone.secret)
        .run()
        .assert_refused()
        .assert_prompts(&[]);
    assert_mfa_logged(&log.since(mark), "sshd", &[], &[]);

    // (c) without nullok: a user with no device is asked like everyone else, and refused.
    let mark = log.mark();
    sshd.login(bob.name())
        .key(&bob_key)
        .code("123456")
        .run()
        .assert_refused()
        .assert_prompts(&[CODE_PROMPT]);
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[failed("no active device", bob.name(), LOCAL)],
        &["123456"],
    );
}

/// (c) of the issue: the roll-out configuration lets a user without a device in with the
/// key alone, and still holds everyone with a device to a right code.
#[test]
fn ssh_public_key_roll_out_with_nullok() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service("sshd", COMMON_AUTH, &snippet("sshd-pam-pubkey-nullok"));
    let sshd = Sshd::start(&ns, "nullok", &snippet("sshd-config-pubkey"));

    let alice = Person::new();
    let alice_key = with_key(&ns, &alice);
    let phone = enroll_now(&env, alice.name(), "phone");
    let bob = Person::new(); // no device
    let bob_key = with_key(&ns, &bob);
    let log = ns.syslog();

    // No device: in with the key, without a prompt.
    let mark = log.mark();
    sshd.login(bob.name())
        .key(&bob_key)
        .run()
        .assert_ran(&format!("logged-in-as-{}", bob.name()))
        .assert_prompts(&[]);
    // Skipping the second factor always leaves a trace.
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[let_through(bob.name(), LOCAL)],
        &[],
    );

    // A device: pam_permit.so after pam_mfa must not open the door to a wrong code.
    let mark = log.mark();
    let wrong = wrong_code_now(&phone.secret);
    sshd.login(alice.name())
        .key(&alice_key)
        .code(&wrong)
        .run()
        .assert_refused()
        .assert_prompts(&[CODE_PROMPT]);
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[failed("wrong code", alice.name(), LOCAL)],
        &[&wrong],
    );

    let mark = log.mark();
    let out = sshd
        .login(alice.name())
        .key(&alice_key)
        .next_code_of(&phone.secret)
        .run();
    out.assert_ran(&format!("logged-in-as-{}", alice.name()))
        .assert_prompts(&[CODE_PROMPT]);
    let codes: Vec<&str> = out.codes_given.iter().map(String::as_str).collect();
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[authenticated("phone", alice.name(), LOCAL)],
        &codes,
    );
}

/// (b) of the issue: password, then code; both prompts in order. A wrong password ends the
/// login before the code prompt (the guide's `requisite` password line), and an unknown
/// user ends exactly like a wrong password for the client.
#[test]
fn ssh_password_then_code() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service("sshd", COMMON_AUTH, &snippet("sshd-pam-password"));
    let sshd = Sshd::start(&ns, "password", &snippet("sshd-config-password"));

    let alice = Person::new();
    ns.create_home(&alice.user);
    let phone = enroll_now(&env, alice.name(), "phone");
    let log = ns.syslog();
    let user = alice.name();

    // Both right: the command runs; the password is asked first, then the code.
    let mark = log.mark();
    let out = sshd
        .login(user)
        .password(&alice.password)
        .next_code_of(&phone.secret)
        .run();
    out.assert_ran(&format!("logged-in-as-{user}"))
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    let codes: Vec<&str> = out.codes_given.iter().map(String::as_str).collect();
    let records = log.since(mark);
    assert_mfa_logged(
        &records,
        "sshd",
        &[authenticated("phone", user, LOCAL)],
        &codes,
    );
    assert!(
        !records.iter().any(|r| r.message.contains(&alice.password)),
        "the password was logged"
    );

    // A wrong password: refused at once, without a code prompt; pam_mfa never runs.
    let mark = log.mark();
    let wrong_password = sshd
        .login(user)
        .password("not-the-password")
        .next_code_of(&phone.secret)
        .run();
    wrong_password
        .assert_refused()
        .assert_prompts(&[PASSWORD_PROMPT]);
    let records = log.since(mark);
    assert_eq!(
        module_lines(&records, "pam_unix", "sshd")
            .iter()
            .filter(|l| l.starts_with("authentication failure;")
                && l.ends_with(&format!("user={user}")))
            .count(),
        1,
        "pam_unix should log the wrong password: {records:#?}"
    );
    assert_mfa_logged(&records, "sshd", &[], &[]);

    // A right password with a wrong code.
    let mark = log.mark();
    let wrong = wrong_code_now(&phone.secret);
    let wrong_code = sshd
        .login(user)
        .password(&alice.password)
        .code(&wrong)
        .run();
    wrong_code
        .assert_refused()
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[failed("wrong code", user, LOCAL)],
        &[&wrong],
    );
    // Both refusals end with the same message; only the prompts differ (the guide's
    // stated price of `requisite`: the code prompt shows that the password was right).
    assert_eq!(wrong_password.status.code(), wrong_code.status.code());
    assert_eq!(wrong_password.stdout, wrong_code.stdout);
    assert_eq!(wrong_password.stderr, wrong_code.stderr);

    // An account that does not exist ends exactly like a wrong password (same prompt, same
    // message but for the name it was given), and pam_mfa does not run for it either.
    let ghost = format!("mfatnone{}", &user[4..]);
    let mark = log.mark();
    let nobody = sshd.login(&ghost).password("whatever").code(&wrong).run();
    nobody.assert_refused().assert_prompts(&[PASSWORD_PROMPT]);
    assert_eq!(nobody.status.code(), wrong_password.status.code());
    assert_eq!(nobody.stdout, wrong_password.stdout);
    assert_eq!(nobody.stderr.replace(&ghost, user), wrong_password.stderr);
    assert_eq!(nobody.prompts, wrong_password.prompts);
    assert_mfa_logged(&log.since(mark), "sshd", &[], &[&wrong]);
}

/// Locks `person` out of codes (five wrong codes through the test service, which asks the
/// same mfad as the namespace's sshd).
fn lock_out(env: &TestEnv, person: &Person, secret: &str) {
    env.write_service(&[]);
    for _ in 0..5 {
        env.pam(person.name())
            .real_time()
            .answer(&wrong_code_now(secret))
            .run()
            .assert_result(PamCode::AuthErr);
    }
    env.pam(person.name())
        .real_time()
        .answer(&next_code(secret))
        .run()
        .assert_locked_out();
}

/// What paramiko (a third-party SSH client) concluded about a public-key then
/// keyboard-interactive login answering every prompt with `code`: the JSON that
/// `tests/clients/paramiko_login.py` prints.
fn paramiko_login(sshd: &Sshd, user: &str, key: &SshKey, code: &str) -> serde_json::Value {
    let script = workspace_root().join("tests/clients/paramiko_login.py");
    // Debian's python3, where python3-paramiko is installed (not whatever `python3` is
    // first on PATH).
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["127.0.0.1", &sshd.port().to_string(), user])
        .arg(&key.private)
        .arg(code)
        .output()
        .expect("cannot run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed: {}\n{stdout}\n{}\nsshd:\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

/// Issue 20 (3): while codes are locked out, an SSH login is an ordinary failed login.
/// The module refuses with `PAM_AUTH_ERR`; with `PAM_MAXTRIES` sshd withdrew
/// keyboard-interactive for the connection, and paramiko reported `BadAuthenticationType`
/// with no method left. The person sees the lock-out text either way; a client that
/// shows keyboard-interactive instructions shows it again with the refusal.
#[test]
fn ssh_while_locked_out_is_an_ordinary_failure_that_says_so() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service("sshd", COMMON_AUTH, &snippet("sshd-pam-pubkey"));
    let sshd = Sshd::start(&ns, "pubkey", &snippet("sshd-config-pubkey"));
    let alice = Person::new();
    let key = with_key(&ns, &alice);
    let phone = enroll_now(&env, alice.name(), "phone");
    lock_out(&env, &alice, &phone.secret);

    // paramiko: the right code is refused as a failure, with the lock-out shown.
    let seen = paramiko_login(&sshd, alice.name(), &key, &next_code(&phone.secret));
    assert_eq!(
        seen["after_key"],
        serde_json::json!(["keyboard-interactive"]),
        "{seen}"
    );
    assert_eq!(seen["outcome"], "failed", "{seen}\nsshd:\n{}", sshd.log());
    let rounds = seen["rounds"].as_array().cloned().unwrap_or_default();
    let shown: Vec<String> = rounds
        .iter()
        .map(|r| format!("{} {}", r["instructions"], r["prompts"]))
        .collect();
    // sshd puts the text the module sends before its prompt into the prompt.
    let first_prompt = rounds.first().and_then(|r| r["prompts"][0].as_str());
    assert!(
        first_prompt.is_some_and(|p| p.ends_with(CODE_PROMPT))
            && shown.iter().any(|s| s.contains("locked until")),
        "the code prompt, and the lock-out text: {seen}"
    );

    // The real ssh: refused, "Permission denied" and the text told before the prompt.
    let out = sshd
        .login(alice.name())
        .key(&key)
        .next_code_of(&phone.secret)
        .run();
    out.assert_refused();
    assert!(
        out.was_shown("locked until") || out.stderr.contains("locked until"),
        "ssh showed nothing of the lock-out\n{out:?}"
    );
}

/// Issue 16, finding 1 (bullet 2): with the guide's old stack (`required pam_unix.so`),
/// five wrong passwords, each followed by any code, locked the user's codes out, so anyone
/// who knew a user name could keep the user out for ever. With the guide's `requisite`
/// password line a wrong password ends the login before the code prompt, pam_mfa counts
/// nothing, and the user still gets in with the right password and code afterwards.
#[test]
fn ssh_wrong_passwords_do_not_lock_out_the_code() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service("sshd", COMMON_AUTH, &snippet("sshd-pam-password"));
    let sshd = Sshd::start(&ns, "lockout", &snippet("sshd-config-password"));
    let alice = Person::new();
    ns.create_home(&alice.user);
    let phone = enroll_now(&env, alice.name(), "phone");
    let log = ns.syslog();
    let user = alice.name();

    let mark = log.mark();
    let wrong = wrong_code_now(&phone.secret);
    // One more than the module's default max_failures (5).
    for _ in 0..6 {
        sshd.login(user)
            .password("not-the-password")
            .code(&wrong)
            .run()
            .assert_refused()
            .assert_prompts(&[PASSWORD_PROMPT]);
    }
    assert_mfa_logged(&log.since(mark), "sshd", &[], &[&wrong]);

    // The right password and the right code still get in.
    let mark = log.mark();
    let out = sshd
        .login(user)
        .password(&alice.password)
        .next_code_of(&phone.secret)
        .run();
    out.assert_ran(&format!("logged-in-as-{user}"))
        .assert_prompts(&[PASSWORD_PROMPT, CODE_PROMPT]);
    let codes: Vec<&str> = out.codes_given.iter().map(String::as_str).collect();
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[authenticated("phone", user, LOCAL)],
        &codes,
    );
}

// ----- sshd: registration at login -----

/// The registration dialogue's prompts (pam_mfa's `enroll_at_login`).
const NAME_PROMPT: &str = "Name for the new device (e.g. phone): ";
const SCANNED_PROMPT: &str = "Press Enter once scanned";
const FIRST_CODE_PROMPT: &str = "Enter the code the app shows: ";
const NEXT_CODE_PROMPT: &str = "Wait for the next code and enter it: ";
/// The PAM environment variable that carries a registration from sshd's authentication
/// process to the one that calls `pam_setcred`; it must never reach the session.
const HOLD_VARIABLE: &str = "PAM_MFA_ENROLL_HOLD";

/// `(name, state)` of each of `user`'s devices, at the real time (a pending registration
/// made by a real login expires by the real clock).
fn device_states(env: &TestEnv, user: &str) -> Vec<(String, String)> {
    let out = env
        .mfa_cmd(&["--user", user, "list", "--json"])
        .real_time()
        .run();
    out.assert_success();
    let field = |d: &serde_json::Value, k: &str| {
        d.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match out.json() {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|d| (field(d, "name"), field(d, "state")))
            .collect(),
        other => panic!("`list --json` printed {other}, not an array"),
    }
}

/// pam_mfa's lines from `pam_sm_setcred` for `service` (libpam tags them `setcred`),
/// checked to be at facility authpriv.
fn setcred_lines(records: &[SyslogRecord], service: &str) -> Vec<String> {
    let prefix = format!("pam_mfa({service}:setcred): ");
    records
        .iter()
        .filter_map(|r| {
            let line = r.message.strip_prefix(&prefix)?;
            assert_eq!(
                r.facility(),
                AUTHPRIV,
                "pam_mfa logged outside authpriv: {r}"
            );
            Some(line.to_owned())
        })
        .collect()
}

/// An ssh login of `person` that answers pam_mfa's registration dialogue: the device
/// name, "secret" (to be shown the key), then two consecutive codes of that key; the
/// remote command prints the session's environment and then who it runs as.
fn register_over_ssh<'a>(sshd: &'a Sshd, person: &Person) -> pam_mfa_tests::sshd::SshLogin<'a> {
    sshd.login(person.name())
        .answer(NAME_PROMPT, "phone")
        .answer(SCANNED_PROMPT, "secret")
        .registration_codes()
        .command("env; echo logged-in-as-$(id -un)")
}

/// Asserts `out` went through the whole registration dialogue and returns the key it
/// showed.
#[track_caller]
fn assert_registration_dialogue(out: &SshOutcome) -> String {
    for prompt in [
        NAME_PROMPT,
        SCANNED_PROMPT,
        FIRST_CODE_PROMPT,
        NEXT_CODE_PROMPT,
    ] {
        assert!(
            out.was_shown(prompt),
            "no {prompt:?} prompt: {:#?}\n{}",
            out.prompts,
            out.server_log
        );
    }
    assert_eq!(out.codes_given.len(), 2, "{:#?}", out.prompts);
    out.shown_secret()
        .expect("the dialogue showed no secret key")
}

/// Issue 16, finding 2, with the real sshd: sshd runs keyboard-interactive PAM
/// authentication in a forked process and calls `pam_setcred` in its monitor process,
/// with only the PAM environment brought back from the child. A device registered at login
/// over SSH behind a public key must become active once the login succeeded (before the
/// fix of finding 2 this was the only state a registration at login could end in; the
/// held registration must still get there through sshd's processes), and the variable
/// that carries it there must not reach the session's environment. The new device then
/// logs in like any other.
#[test]
fn ssh_registration_at_login_is_kept_once_the_login_succeeds() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service(
        "sshd",
        COMMON_AUTH,
        "auth       required     pam_mfa.so enroll_at_login",
    );
    let sshd = Sshd::start(&ns, "enroll", &snippet("sshd-config-pubkey"));
    env.set_policy("no_device", "enroll");
    let alice = Person::new();
    let key = with_key(&ns, &alice);
    let user = alice.name();
    let log = ns.syslog();

    let mark = log.mark();
    let out = register_over_ssh(&sshd, &alice).key(&key).run();
    assert!(
        out.succeeded()
            && out.stdout.lines().last() == Some(format!("logged-in-as-{user}").as_str()),
        "the login with a registration should succeed\nprompts: {:#?}\nstdout:\n{}\nstderr:\n{}\nsshd's log:\n{}\nsyslog:\n{:#?}",
        out.prompts,
        out.stdout,
        out.stderr,
        out.server_log,
        log.since(mark)
    );
    let secret = assert_registration_dialogue(&out);
    assert!(
        !out.stdout.contains(HOLD_VARIABLE),
        "the session's environment carries {HOLD_VARIABLE}:\n{}",
        out.stdout
    );
    assert_eq!(
        device_states(&env, user),
        [("phone".to_owned(), "active".to_owned())],
        "sshd's log:\n{}",
        out.server_log
    );
    let codes: Vec<&str> = out.codes_given.iter().map(String::as_str).collect();
    let records = log.since(mark);
    assert_mfa_logged(
        &records,
        "sshd",
        &[format!(
            "codes of device \"phone\" accepted at login; it is kept if the login \
             succeeds (user={user} rhost=127.0.0.1)"
        )],
        &codes,
    );
    assert_eq!(
        setcred_lines(&records, "sshd"),
        [format!(
            "registered device \"phone\" at login (no_device=enroll) (user={user})"
        )]
    );

    // The new device is asked for at the next login, like any other.
    let mark = log.mark();
    let out = sshd
        .login(user)
        .key(&key)
        .next_code_of(&secret)
        .command("env; echo logged-in-as-$(id -un)")
        .run();
    assert!(
        out.succeeded()
            && out.stdout.lines().last() == Some(format!("logged-in-as-{user}").as_str())
            && !out.stdout.contains(HOLD_VARIABLE),
        "the login with the new device: {out:?}"
    );
    out.assert_prompts(&[CODE_PROMPT]);
    let codes: Vec<&str> = out.codes_given.iter().map(String::as_str).collect();
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[authenticated("phone", user, LOCAL)],
        &codes,
    );
}

/// Issue 16, finding 2, with the real sshd: behind a `required` password line (the stack
/// the README warns against) libpam still runs the registration dialogue after a wrong
/// password, but sshd never calls `pam_setcred` for the failed login, so the device stays
/// pending and logs nobody in; the user's own registration at a login with the right
/// password is kept.
#[test]
fn ssh_registration_during_a_failed_login_is_not_kept() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service(
        "sshd",
        COMMON_AUTH,
        "auth       required     pam_unix.so\n\
         auth       required     pam_mfa.so enroll_at_login",
    );
    let sshd = Sshd::start(&ns, "enroll-fail", &snippet("sshd-config-password"));
    env.set_policy("no_device", "enroll");
    let alice = Person::new();
    ns.create_home(&alice.user);
    let user = alice.name();
    let log = ns.syslog();

    let mark = log.mark();
    let out = register_over_ssh(&sshd, &alice)
        .password("not-the-password")
        .run();
    out.assert_refused();
    assert!(out.was_shown(PASSWORD_PROMPT), "{:#?}", out.prompts);
    let planted = assert_registration_dialogue(&out);
    assert_eq!(
        device_states(&env, user),
        [("phone".to_owned(), "pending".to_owned())]
    );
    let codes: Vec<&str> = out.codes_given.iter().map(String::as_str).collect();
    assert_mfa_logged(
        &log.since(mark),
        "sshd",
        &[format!(
            "codes of device \"phone\" accepted at login; it is kept if the login \
             succeeds (user={user} rhost=127.0.0.1)"
        )],
        &codes,
    );
    assert_eq!(
        setcred_lines(&log.since(mark), "sshd"),
        Vec::<String>::new()
    );

    // The planted device logs nobody in: the next login with the right password is
    // offered a registration again, and the user's own device replaces the planted one.
    let out = register_over_ssh(&sshd, &alice)
        .password(&alice.password)
        .run();
    assert!(
        out.succeeded()
            && out.stdout.lines().last() == Some(format!("logged-in-as-{user}").as_str())
            && !out.stdout.contains(HOLD_VARIABLE),
        "the user's own registration: {out:?}"
    );
    let own = assert_registration_dialogue(&out);
    assert_ne!(own, planted);
    assert_eq!(
        device_states(&env, user),
        [("phone".to_owned(), "active".to_owned())]
    );
}

/// Issue 16, finding 2, with the real sshd: ssh's `password` method runs PAM with a
/// conversation that answers every hidden prompt with the password and fails on any other
/// prompt, so the registration dialogue cannot run there (nor be fed the password as a
/// device name): the login is refused at the name prompt and nothing is stored.
#[test]
fn ssh_password_method_cannot_register_at_login() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service(
        "sshd",
        COMMON_AUTH,
        "auth       requisite    pam_unix.so\n\
         auth       required     pam_mfa.so enroll_at_login",
    );
    let sshd = Sshd::start(
        &ns,
        "enroll-password",
        "UsePAM yes\nPasswordAuthentication yes\n",
    );
    env.set_policy("no_device", "enroll");
    let alice = Person::new();
    ns.create_home(&alice.user);
    let user = alice.name();
    let log = ns.syslog();

    let mark = log.mark();
    let out = sshd
        .login(user)
        .password(&alice.password)
        .password_authentication()
        .run();
    out.assert_refused()
        .assert_prompts(&[&format!("{user}@127.0.0.1's password: ")]);
    assert_eq!(device_states(&env, user), []);
    let records = log.since(mark);
    assert_mfa_logged(
        &records,
        "sshd",
        &[format!(
            "conversation failed during registration at login (PAM_CONV_ERR) \
             (user={user} rhost=127.0.0.1)"
        )],
        &[],
    );
    assert!(
        !records.iter().any(|r| r.message.contains(&alice.password)),
        "the password was logged"
    );
}

// ----- sudo -----

/// `sudo -S -k CMD` as `person` with `input` on stdin (`-k`: ignore a cached
/// authentication, so every run asks).
fn sudo_piped(ns: &Namespace, person: &Person, input: &str) -> pam_mfa_tests::process::Finished {
    let mut cmd = ns.command_as(&person.user, &paths::tool("sudo", "sudo"));
    cmd.args(["-S", "-k", "id", "-un"]);
    pam_mfa_tests::process::run(cmd, format!("sudo as {}", person.name()), input.into())
}

#[test]
fn sudo_asks_for_the_code_after_the_password() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service("sudo", COMMON_AUTH, &snippet("sudo-pam"));
    let alice = Person::new();
    ns.write(
        "/etc/sudoers.d/pam_mfa_tests",
        &format!("{} ALL=(ALL:ALL) ALL\n", alice.name()),
        0o440,
    );
    let devices: Vec<_> = ["one", "two", "three"]
        .iter()
        .map(|d| enroll_now(&env, alice.name(), d))
        .collect();
    let log = ns.syslog();
    let user = alice.name();

    // Piped (sudo -S): a wrong code, then the right one.
    let mark = log.mark();
    let secrets: Vec<&str> = devices.iter().map(|d| d.secret.as_str()).collect();
    let wrong = wrong_code_now_for_all(&secrets);
    let out = sudo_piped(&ns, &alice, &format!("{}\n{wrong}\n", alice.password));
    assert!(
        !out.status.success() && !out.stdout.contains("root"),
        "sudo ran the command with a wrong code: {out:?}"
    );
    assert!(out.stderr.contains(CODE_PROMPT), "no code prompt: {out:?}");
    assert_mfa_logged(
        &log.since(mark),
        "sudo",
        &[failed("wrong code", user, None)],
        &[&wrong],
    );

    let mark = log.mark();
    let code = next_code(&devices[0].secret);
    let out = sudo_piped(&ns, &alice, &format!("{}\n{code}\n", alice.password));
    assert!(
        out.status.success() && out.stdout.trim() == "root",
        "sudo with the right password and code: {out:?}"
    );
    let password_at = out.stderr.find(&format!("password for {user}"));
    let code_at = out.stderr.find(CODE_PROMPT);
    assert!(
        matches!((password_at, code_at), (Some(p), Some(c)) if p < c),
        "expected the password prompt, then the code prompt: {:?}",
        out.stderr
    );
    assert_mfa_logged(
        &log.since(mark),
        "sudo",
        &[authenticated("one", user, None)],
        &[&code],
    );

    // On a terminal: sudo caches the authentication, `sudo -k` forgets it.
    let script = "sudo id -un; echo \"first=$?\"; \
                  sudo -n id -un; echo \"second=$?\"; \
                  sudo -k; sudo -n true; echo \"third=$?\"; \
                  sudo id -un; echo \"fourth=$?\"";
    let mut cmd = ns.command_as(&alice.user, Path::new("/bin/sh"));
    cmd.args(["-c", script]);
    let mark = log.mark();
    let mut term = PtySession::spawn(cmd, format!("sudo on a terminal as {user}"));
    let mut given = Vec::new();
    let mut answer = |term: &mut PtySession, secret: &str| {
        term.expect(&format!("[sudo] password for {user}: "));
        term.send_line(&alice.password);
        term.expect(CODE_PROMPT);
        let code = next_code(secret);
        term.send_line(&code);
        given.push(code);
    };
    answer(&mut term, &devices[1].secret);
    assert_eq!(term.expect_value("first="), "0", "{}", term.transcript());
    // Cached: the second sudo does not ask (nothing between the two markers asks).
    let cached = term.expect("second=");
    assert!(
        !cached.contains("password for") && !cached.contains(CODE_PROMPT),
        "the second sudo asked again:\n{cached}"
    );
    assert_eq!(term.expect("\n").trim(), "0", "{}", term.transcript());
    // After -k, `sudo -n` (which may not ask) fails, and the next sudo asks for both.
    assert_eq!(term.expect_value("third="), "1", "{}", term.transcript());
    answer(&mut term, &devices[2].secret);
    assert_eq!(term.expect_value("fourth="), "0", "{}", term.transcript());
    let done = term.finish();
    assert!(done.status.success(), "{}", done.transcript);
    assert_eq!(
        done.transcript
            .lines()
            .filter(|l| l.trim() == "root")
            .count(),
        3,
        "three commands should have run as root:\n{}",
        done.transcript
    );
    let codes: Vec<&str> = given.iter().map(String::as_str).collect();
    assert_mfa_logged(
        &log.since(mark),
        "sudo",
        &[
            authenticated("two", user, None),
            authenticated("three", user, None),
        ],
        &codes,
    );
}

// ----- su, and common-auth through pam-auth-update -----

/// Runs one of the guide's shell snippets, verbatim, as root in the namespace from the
/// repository's root directory (where `packaging/` is).
fn run_guide_commands(ns: &Namespace, name: &str) {
    let commands = snippet(name);
    // Not part of the snippet: an administrator at a terminal gets no question either
    // (the commands ask none), but debconf would complain that there is no terminal.
    let out = ns.sh(
        &format!("export DEBIAN_FRONTEND=noninteractive\n{commands}"),
        &workspace_root(),
        "",
    );
    assert!(
        out.status.success(),
        "the guide's {name} commands failed:\n{commands}\n{out:?}"
    );
    assert!(
        !format!("{}{}", out.stdout, out.stderr)
            .to_lowercase()
            .contains("local modifications"),
        "pam-auth-update refuses to touch this machine's hand-edited /etc/pam.d/common-* \
         files (the tests start from the machine's own): {out:?}"
    );
}

/// The `auth` lines of a PAM file, whitespace-normalised, comments left out.
fn auth_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("auth"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// `su - TARGET -c CMD` typed by `caller` (not root, so su authenticates) on a terminal,
/// answering the password prompt and, if `code` is given, the code prompt.
fn su(
    ns: &Namespace,
    caller: &Person,
    target: &Person,
    code: Option<&str>,
) -> pam_mfa_tests::PtyFinished {
    let mut cmd = ns.command_as(&caller.user, &paths::tool("su", "util-linux"));
    cmd.args(["-", target.name(), "-c", "echo su-ran-as-$(id -un)"]);
    let mut term = PtySession::spawn(cmd, format!("su - {}", target.name()));
    term.expect(PASSWORD_PROMPT);
    term.send_line(&target.password);
    if let Some(code) = code {
        term.expect(CODE_PROMPT);
        term.send_line(code);
    }
    term.finish()
}

#[track_caller]
fn assert_su_ran(out: &pam_mfa_tests::PtyFinished, target: &Person, asked_code: bool) {
    assert!(
        out.status.success()
            && out
                .transcript
                .contains(&format!("su-ran-as-{}", target.name())),
        "su should have run the command:\n{}",
        out.transcript
    );
    assert_eq!(
        out.transcript.contains(CODE_PROMPT),
        asked_code,
        "code prompt shown: expected {asked_code}\n{}",
        out.transcript
    );
}

#[track_caller]
fn assert_su_refused(out: &pam_mfa_tests::PtyFinished) {
    assert!(
        !out.status.success()
            && out.transcript.contains("Authentication failure")
            && !out.transcript.contains("su-ran-as-"),
        "su should have been refused:\n{}",
        out.transcript
    );
}

#[test]
fn su_and_common_auth_through_pam_auth_update() {
    // The profile the guide shows is the one in packaging/.
    let packaged = std::fs::read_to_string(workspace_root().join("packaging/pam-configs/mfa"))
        .expect("cannot read packaging/pam-configs/mfa");
    assert_eq!(packaged, snippet("pam-configs-mfa"));

    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    run_guide_commands(&ns, "pam-auth-update-enable");
    let common_auth = auth_lines(&ns.read("/etc/pam.d/common-auth"));
    let expected = auth_lines(&snippet("common-auth-result"));
    let mut rest = common_auth.iter();
    for line in &expected {
        assert!(
            rest.any(|l| l == line),
            "common-auth lacks {line:?} (in this order: {expected:#?}):\n{common_auth:#?}"
        );
    }

    let carol = Person::new(); // the one who types su
    let alice = Person::new();
    let phone = enroll_now(&env, alice.name(), "phone");
    let bob = Person::new(); // no device
    // `su -` changes to the target's home directory (and only warns without one).
    ns.create_home(&alice.user);
    ns.create_home(&bob.user);
    let log = ns.syslog();

    // The password, then the code.
    let mark = log.mark();
    let code = next_code(&phone.secret);
    assert_su_ran(&su(&ns, &carol, &alice, Some(&code)), &alice, true);
    assert_mfa_logged(
        &log.since(mark),
        "su-l",
        &[authenticated("phone", alice.name(), None)],
        &[&code],
    );

    // A wrong code.
    let mark = log.mark();
    let wrong = wrong_code_now(&phone.secret);
    assert_su_refused(&su(&ns, &carol, &alice, Some(&wrong)));
    assert_mfa_logged(
        &log.since(mark),
        "su-l",
        &[failed("wrong code", alice.name(), None)],
        &[&wrong],
    );

    // The profile's nullok: no device, no code prompt.
    let mark = log.mark();
    assert_su_ran(&su(&ns, &carol, &bob, None), &bob, false);
    assert_mfa_logged(
        &log.since(mark),
        "su-l",
        &[let_through(bob.name(), None)],
        &[],
    );

    // The end of the roll-out: now bob is asked for a code, and refused.
    run_guide_commands(&ns, "pam-auth-update-strict");
    let strict = auth_lines(&ns.read("/etc/pam.d/common-auth"));
    assert!(
        strict
            .iter()
            .any(|l| l == "auth [success=ok ignore=ignore default=die] pam_mfa.so")
            && !strict.iter().any(|l| l.contains("pam_mfa.so nullok")),
        "the strict profile should require pam_mfa without nullok:\n{strict:#?}"
    );
    let mark = log.mark();
    assert_su_refused(&su(&ns, &carol, &bob, Some("123456")));
    assert_mfa_logged(
        &log.since(mark),
        "su-l",
        &[failed("no active device", bob.name(), None)],
        &["123456"],
    );

    // Off again: only the password.
    run_guide_commands(&ns, "pam-auth-update-disable");
    let off = ns.read("/etc/pam.d/common-auth");
    assert!(
        !off.contains("pam_mfa"),
        "pam_mfa is still in common-auth:\n{off}"
    );
    let mark = log.mark();
    assert_su_ran(&su(&ns, &carol, &alice, None), &alice, false);
    assert_mfa_logged(&log.since(mark), "su-l", &[], &[]);
}

// ----- the guide itself -----

#[test]
fn every_block_of_the_guide_is_a_tested_snippet() {
    let unmarked = unmarked_blocks();
    assert!(
        unmarked.is_empty(),
        "docs/deployment.md has code blocks without a `<!-- snippet: NAME -->` marker, which \
         no test uses: {unmarked:#?}"
    );
    let mut names = snippet_names();
    let mut listed: Vec<String> = SNIPPETS.iter().map(|s| (*s).to_owned()).collect();
    names.sort();
    listed.sort();
    assert_eq!(
        names, listed,
        "the guide's snippets and the ones these tests use differ"
    );
    // And each listed one is really used by a test in this file.
    let source = include_str!("real_logins.rs");
    for name in SNIPPETS {
        let uses = source.matches(&format!("\"{name}\"")).count();
        assert!(uses >= 2, "snippet {name:?} is listed but no test uses it");
    }
}

#[test]
fn the_readme_points_to_the_guide() {
    let readme =
        std::fs::read_to_string(workspace_root().join("README.md")).expect("cannot read README.md");
    assert!(readme.contains("docs/deployment.md"));
}

/// Issue 20 (7): the README's quick start is written without `sudo` (a minimal root-only
/// machine has none), and the scripts it names run themselves again through `sudo` for a
/// user with sudo rights, so the same commands work in a root shell and for that user.
/// The scripts' shared `require_root` is run for real, from a copy of `scripts/common.sh`
/// beside a probe script, as root and as a user whom sudoers lets become root.
#[test]
fn the_quick_start_works_as_written_for_root_and_for_a_sudo_user() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("cannot read README.md");
    let quick_start = readme
        .split("## Quick start")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README.md has a Quick start with a sh block");
    let commands: Vec<&str> = quick_start
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands, ["./scripts/install.sh", "./scripts/test.sh"]);
    let ci = std::fs::read_to_string(root.join(".ci/run")).expect("cannot read .ci/run");
    assert!(ci.contains("./scripts/test.sh"), "{ci}");

    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let alice = Person::new();
    // In alice's home (the namespace's private /home), where she can read it.
    let home = ns.create_home(&alice.user);
    let checkout = ns.path(&format!("{home}/checkout"));
    std::fs::create_dir_all(checkout.join("scripts")).expect("mkdir");
    std::fs::copy(
        root.join("scripts/common.sh"),
        checkout.join("scripts/common.sh"),
    )
    .expect("cannot copy common.sh");
    std::fs::write(
        checkout.join("scripts/probe.sh"),
        "#!/bin/sh\nset -eu\ncd \"$(dirname \"$0\")/..\"\n. scripts/common.sh\n\
         require_root \"probes\" \"$@\"\necho \"uid=$(id -u) args=$*\"\n",
    )
    .expect("cannot write the probe");
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [
        ("", 0o755),
        ("/scripts", 0o755),
        ("/scripts/probe.sh", 0o755),
        ("/scripts/common.sh", 0o644),
    ] {
        std::fs::set_permissions(
            format!("{}{p}", checkout.display()),
            std::fs::Permissions::from_mode(mode),
        )
        .expect("chmod");
    }
    // The path as programs inside the namespace see it.
    let probe = std::path::PathBuf::from(format!("{home}/checkout/scripts/probe.sh"));

    let as_root = ns
        .command(&probe)
        .arg("two words")
        .output()
        .expect("run the probe");
    assert_eq!(
        String::from_utf8_lossy(&as_root.stdout),
        "uid=0 args=two words\n"
    );
    assert!(as_root.stderr.is_empty(), "{as_root:?}");

    ns.write(
        "/etc/sudoers.d/pam_mfa_tests",
        &format!("{} ALL=(ALL:ALL) NOPASSWD: ALL\n", alice.name()),
        0o440,
    );
    let as_alice = ns
        .command_as(&alice.user, &probe)
        .arg("two words")
        .output()
        .expect("run the probe as a user");
    let stderr = String::from_utf8_lossy(&as_alice.stderr);
    assert_eq!(
        String::from_utf8_lossy(&as_alice.stdout),
        "uid=0 args=two words\n",
        "{stderr}"
    );
    assert!(stderr.contains("running it again with sudo"), "{stderr}");

    // Without sudo rights: refused, with a message, never run as the user.
    ns.write("/etc/sudoers.d/pam_mfa_tests", "", 0o440);
    let refused = ns
        .command_as(&alice.user, &probe)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the probe as a user");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
}

/// Issue 21 through the real sshd: with `remember_seconds` set, a second connection of
/// the same user from the same address logs in with the key alone; another address or
/// another user is asked; `mfa forget` and the end of the period end it. sshd gives the
/// PAM stack the client's address as `PAM_RHOST`, here on loopback (`ssh -b` picks
/// 127.0.0.1 or 127.0.0.2), which the policy must allow explicitly (`remember_local`):
/// without it such logins are never remembered.
#[test]
fn ssh_remembered_login_asks_no_code_from_the_same_address() {
    let env = TestEnv::new();
    let ns = Namespace::with_daemon(&env);
    ns.edit_pam_service("sshd", COMMON_AUTH, &snippet("sshd-pam-pubkey"));
    let sshd = Sshd::start(&ns, "pubkey", &snippet("sshd-config-pubkey"));
    let (alice, bob) = (Person::new(), Person::new());
    let (alice_key, bob_key) = (with_key(&ns, &alice), with_key(&ns, &bob));
    let phones: Vec<_> = (0..4)
        .map(|i| enroll_now(&env, alice.name(), &format!("phone-{i}")))
        .collect();
    let bobs = enroll_now(&env, bob.name(), "phone");
    let policy = |key: &str, value: &str| {
        env.set_policy(key, value);
    };
    let with_code = |person: &Person, key: &SshKey, secret: &str, from: &str| {
        sshd.login(person.name())
            .key(key)
            .from_address(from)
            .next_code_of(secret)
            .run()
    };
    let key_only = |person: &Person, key: &SshKey, from: &str| {
        sshd.login(person.name()).key(key).from_address(from).run()
    };
    let ran = |person: &Person| format!("logged-in-as-{}", person.name());

    // Loopback is local: not remembered unless the policy says so.
    policy("remember_seconds", "600");
    with_code(&alice, &alice_key, &phones[0].secret, "127.0.0.1")
        .assert_ran(&ran(&alice))
        .assert_prompts(&[CODE_PROMPT]);
    key_only(&alice, &alice_key, "127.0.0.1")
        .assert_refused()
        .assert_prompts(&[CODE_PROMPT]);

    policy("remember_local", "allow");
    with_code(&alice, &alice_key, &phones[1].secret, "127.0.0.1")
        .assert_ran(&ran(&alice))
        .assert_prompts(&[CODE_PROMPT]);
    with_code(&bob, &bob_key, &bobs.secret, "127.0.0.2").assert_ran(&ran(&bob));
    // The same user from the same address: the key alone, no prompt.
    key_only(&alice, &alice_key, "127.0.0.1")
        .assert_ran(&ran(&alice))
        .assert_prompts(&[]);
    // Another address, another user: asked.
    key_only(&alice, &alice_key, "127.0.0.2")
        .assert_refused()
        .assert_prompts(&[CODE_PROMPT]);
    key_only(&bob, &bob_key, "127.0.0.1")
        .assert_refused()
        .assert_prompts(&[CODE_PROMPT]);
    let listed = env
        .mfa_cmd(&["--user", alice.name(), "list"])
        .real_time()
        .run();
    assert!(
        listed.stdout.contains("sshd") && listed.stdout.contains("127.0.0.1"),
        "{listed:?}"
    );

    // `mfa forget` ends it.
    env.mfa(&["--user", alice.name(), "forget"])
        .assert_success();
    key_only(&alice, &alice_key, "127.0.0.1")
        .assert_refused()
        .assert_prompts(&[CODE_PROMPT]);

    // So does the end of the period (the policy shortened to one second).
    with_code(&alice, &alice_key, &phones[2].secret, "127.0.0.1").assert_ran(&ran(&alice));
    key_only(&alice, &alice_key, "127.0.0.1").assert_ran(&ran(&alice));
    policy("remember_seconds", "1");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    key_only(&alice, &alice_key, "127.0.0.1")
        .assert_refused()
        .assert_prompts(&[CODE_PROMPT]);
    let _ = &phones[3];
}
