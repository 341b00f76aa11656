//! How the module behaves as a guest in its host process: what it logs (through
//! `pam_syslog`, captured by pam_wrapper), that it never puts a code in a log line, never
//! prints, leaves no thread behind, and exports nothing but the PAM entry points.

use pam_mfa_tests::PamCode;
use std::process::Command;

use pam_mfa_tests::{TestEnv, TestUser, pam_module, wrong_code};
use std::os::unix::fs::PermissionsExt;

/// LOG_ERR, LOG_NOTICE and LOG_INFO.
const ERR: u8 = 3;
const NOTICE: u8 = 5;
const INFO: u8 = 6;

fn priority_of(out: &pam_mfa_tests::PamOutcome, line: &str) -> u8 {
    out.syslog()
        .into_iter()
        .find(|(_, m)| m == line)
        .map(|(p, _)| p)
        .unwrap_or(255)
}

/// Neither the code typed nor the secret may appear anywhere the stack wrote to.
fn assert_no_secrets(out: &pam_mfa_tests::PamOutcome, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !out.stderr.contains(s),
            "{s:?} appears on stderr:\n{}",
            out.stderr
        );
        let stdout_without_answers: String = out
            .stdout
            .lines()
            .filter(|l| !l.starts_with("result: "))
            .collect();
        assert!(
            !stdout_without_answers.contains(s),
            "{s:?} appears in the conversation:\n{}",
            out.stdout
        );
    }
}

#[test]
fn success_is_logged_with_device_user_and_host_and_nothing_else_leaks() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.enroll(user.name(), "pixel 7");
    env.advance_steps(1);
    let code = env.code(&dev.secret);
    let out = env.pam(user.name()).rhost("192.0.2.7").answer(&code).run();
    out.assert_success();
    let line = out.assert_logged(&[
        "authenticated with device \"pixel 7\"",
        &format!("user={}", user.name()),
        "rhost=192.0.2.7",
    ]);
    assert_eq!(priority_of(&out, &line), INFO);
    assert_no_secrets(&out, &[&code, &dev.secret]);
    out.assert_module_silent();
    assert_eq!(out.threads_after_end(), Some(1), "{}", out.stderr);
}

#[test]
fn failures_are_logged_with_their_reason_but_never_the_code() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["max_failures=3"]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);

    let wrong = wrong_code(&dev.secret, env.now(), 3);
    let out = env.login(user.name(), &wrong);
    out.assert_result(PamCode::AuthErr);
    let line = out.assert_logged(&[
        "authentication failure: wrong code",
        &format!("user={}", user.name()),
    ]);
    assert_eq!(priority_of(&out, &line), NOTICE);
    assert_no_secrets(&out, &[&wrong, &dev.secret]);
    out.assert_module_silent();

    let right = env.code(&dev.secret);
    env.login(user.name(), &right).assert_success();
    let out = env.login(user.name(), &right);
    out.assert_result(PamCode::AuthErr);
    out.assert_logged(&["replayed code of device \"phone\"", user.name()]);
    assert_no_secrets(&out, &[&right, &dev.secret]);

    // What was wrong with an answer that is no code is said in kind, never the answer.
    // (Malformed answers count as failures: a fourth one would start the lock-out.)
    let out = env.login(user.name(), "12ab56");
    out.assert_logged(&[
        "malformed code: it has letters; a code has only digits",
        user.name(),
    ]);
    assert_no_secrets(&out, &["12ab56"]);

    // The third failure in a row starts the lock-out, and the log says so.
    let out = env.login(user.name(), &wrong);
    out.assert_logged(&["locked out until", user.name()]);
    let out = env.login(user.name(), &env.code(&dev.secret));
    out.assert_locked_out();
    out.assert_logged(&["refused: locked out until", user.name()]);
    out.assert_module_silent();
}

#[test]
fn configuration_and_store_errors_are_logged_at_error_priority() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);

    env.write_service(&["nulok"]);
    let out = env.login(user.name(), &env.code(&dev.secret));
    out.assert_result(PamCode::ServiceErr);
    let line = out.assert_logged(&["unknown module argument \"nulok\""]);
    assert_eq!(priority_of(&out, &line), ERR);
    out.assert_module_silent();

    env.write_service(&[]);
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = env.login(user.name(), &env.code(&dev.secret));
    out.assert_result(PamCode::AuthinfoUnavail);
    let line = out.assert_logged(&["refusing device store", "mode 0640", user.name()]);
    assert_eq!(priority_of(&out, &line), ERR);
    out.assert_module_silent();
}

#[test]
fn a_user_name_with_control_characters_is_refused_and_logged_escaped() {
    let env = TestEnv::new();
    env.write_service(&["nullok"]);
    let out = env.pam("evil\u{1b}[2Juser").answer("123456").run();
    out.assert_result(PamCode::UserUnknown)
        .assert_not_prompted();
    out.assert_logged(&["refusing invalid user name", "user=evil\\x1b[2Juser"]);
    out.assert_module_silent();
}

#[test]
fn only_the_pam_entry_points_are_exported() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only", "--format=just-symbols"])
        .arg(pam_module())
        .output()
        .expect("nm (binutils) is installed");
    assert!(out.status.success(), "{out:?}");
    let mut symbols: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    symbols.sort();
    assert_eq!(
        symbols,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred",
        ]
    );
}

#[test]
fn another_name_for_the_same_account_finds_its_devices_and_cannot_skip_them() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let alias = TestUser::alias_of(&user);
    env.write_service(&["nullok"]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    // Without a code the alias is refused, not waved through as "no devices".
    let out = env.login(alias.name(), &wrong_code(&dev.secret, env.now(), 1));
    out.assert_result(PamCode::AuthErr);
    // With the account's code it gets in, as the account.
    let out = env.login(alias.name(), &env.code(&dev.secret));
    out.assert_success();
    out.assert_logged(&["authenticated with device \"phone\"", alias.name()]);
    // And mfa --user ALIAS manages the same devices.
    let listed = env.mfa(&["--user", alias.name(), "list", "--json"]);
    listed.assert_success();
    assert!(listed.stdout.contains("\"phone\""), "{}", listed.stdout);
}

#[test]
fn an_unknown_account_is_prompted_and_refused_even_with_nullok() {
    let env = TestEnv::new();
    let somebody = TestUser::new();
    env.enroll(somebody.name(), "phone");
    env.write_service(&["nullok"]);
    let out = env.login("no-such-account-pam-mfa", "123456");
    out.assert_result(PamCode::AuthErr);
    out.assert_logged(&["no such account", "user=no-such-account-pam-mfa"]);
}

#[test]
fn a_missing_store_directory_is_an_error_but_a_missing_store_is_no_devices() {
    let env = TestEnv::new();
    let user = TestUser::new();
    // The store directory exists but holds no store yet: nobody has a device, and nullok
    // lets the user through — with a notice in the log, as a mistyped path looks the same.
    env.write_service_observing_ignore(&["nullok"]);
    let out = env.login(user.name(), "123456");
    assert_eq!(
        out.result,
        PamCode::CredInsufficient,
        "ignored\n{}",
        out.transcript()
    );
    let line = out.assert_logged(&["does not exist yet; nullok lets the user through"]);
    assert!(out.syslog().contains(&(NOTICE, line)));
    // A `db=` of another store than the daemon's (a wrong path, or a host that used
    // several stores before the daemon) is refused, pointing to socket=.
    let missing = env.path("nowhere/devices.db");
    let line = format!(
        "auth required {} db={} nullok",
        pam_module().display(),
        missing.display()
    );
    env.write_service_lines(&[line]);
    let out = env.login(user.name(), "123456");
    out.assert_result(PamCode::ServiceErr);
    out.assert_logged(&["socket="]);
}

#[test]
fn mfa_never_turns_a_truncated_store_into_an_empty_one() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["nullok"]);
    env.enroll(user.name(), "phone");
    std::fs::write(env.db(), b"").unwrap();
    for args in [
        vec!["--user", user.name(), "list"],
        vec!["--user", user.name(), "enroll", "totp", "tablet", "--begin"],
    ] {
        env.mfa(&args).assert_error(&["empty (truncated?)"]);
        assert_eq!(std::fs::metadata(env.db()).unwrap().len(), 0, "{args:?}");
    }
    let out = env.login(user.name(), "123456");
    out.assert_result(PamCode::AuthinfoUnavail);
    out.assert_logged(&["empty (truncated?)"]);
}

/// What pam_mfa asks libpam to wait after a failure: pam_unix's two seconds. libpam
/// scatters the delay it applies by up to half either way (`_pam_compute_delay`).
const FAIL_DELAY_MICROS: u64 = 2_000_000;
const SHORTEST_DELAY: u64 = FAIL_DELAY_MICROS / 2;
const LONGEST_DELAY: u64 = FAIL_DELAY_MICROS * 3 / 2;

#[test]
fn a_failed_login_asks_libpam_for_pam_unix_s_delay_unless_nodelay() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);

    let wrong = wrong_code(&dev.secret, env.now(), 3);
    let out = env.login(user.name(), &wrong);
    out.assert_result(PamCode::AuthErr);
    let delay = out.fail_delay_micros();
    assert!(
        (SHORTEST_DELAY..=LONGEST_DELAY).contains(&delay),
        "a wrong code: libpam was asked for {delay} us\n{}",
        out.stderr
    );
    // Refused before any code was checked (not a code, a bad argument) gets it too.
    let out = env.login(user.name(), "12ab56");
    out.assert_result(PamCode::AuthErr);
    assert!(out.fail_delay_micros() >= SHORTEST_DELAY, "{}", out.stderr);
    env.write_service(&["windw=3"]);
    let out = env.login(user.name(), &env.code(&dev.secret));
    out.assert_result(PamCode::ServiceErr);
    assert!(out.fail_delay_micros() >= SHORTEST_DELAY, "{}", out.stderr);

    env.write_service(&["nodelay"]);
    let out = env.login(user.name(), &wrong);
    out.assert_result(PamCode::AuthErr);
    assert_eq!(out.fail_delay_micros(), 0, "nodelay\n{}", out.stderr);

    // The longest request of the stack wins; pam_mfa's does not add to another module's.
    env.write_service_lines(&[
        "auth optional pam_faildelay.so delay=200000".to_owned(),
        env.module_line("required", &["nodelay"]),
    ]);
    let out = env.login(user.name(), &wrong);
    out.assert_result(PamCode::AuthErr);
    let delay = out.fail_delay_micros();
    assert!(
        (100_000..=300_000).contains(&delay),
        "{delay}\n{}",
        out.stderr
    );
}

/// libpam really waits (no callback of the application's): a failed login returns after
/// at least the shortest delay libpam may pick, a successful one does not wait.
#[test]
fn a_failed_login_waits_and_a_successful_one_does_not() {
    use pam_mfa_tests::realtime::{enroll_now, next_code, wrong_code_now};
    use std::time::Duration;

    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = enroll_now(&env, user.name(), "phone");

    let out = env
        .pam(user.name())
        .real_time()
        .real_delay()
        .answer(&wrong_code_now(&dev.secret))
        .run();
    let failed_after = out.login_took().expect("pam-client's login time");
    out.assert_result(PamCode::AuthErr);
    assert!(
        failed_after >= Duration::from_micros(SHORTEST_DELAY),
        "a failed login returned after {failed_after:?}\n{}",
        out.stderr
    );

    let out = env
        .pam(user.name())
        .real_time()
        .real_delay()
        .answer(&next_code(&dev.secret))
        .run();
    // From pam_start to pam_end's return: the process's own start on a busy machine is
    // not a delay of libpam's.
    let succeeded_after = out.login_took().expect("pam-client's login time");
    out.assert_success();
    assert!(
        succeeded_after < Duration::from_micros(SHORTEST_DELAY),
        "a successful login took {succeeded_after:?}: it must not wait\n{}",
        out.stderr
    );
}

/// Issue 20 (4): the log line of an answer that is no code says what came, in kind
/// (letters, too long, nothing...), and never the answer itself.
#[test]
fn malformed_answers_are_logged_by_kind_never_by_value() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["max_failures=1000"]);
    env.enroll(user.name(), "phone");
    env.advance_steps(1);
    let long_digits = "9".repeat(100);
    for (answer, said) in [
        ("", "nothing was entered"),
        ("98 76", "too short: 4 digits; a code has 6 to 8"),
        ("9876543210", "too long: 10 digits; a code has 6 to 8"),
        (long_digits.as_str(), "far too long"),
        ("98x765", "it has letters"),
        ("987-654", "it has punctuation or symbols"),
    ] {
        let out = env.login(user.name(), answer);
        out.assert_result(PamCode::AuthErr);
        out.assert_logged(&[&format!("malformed code: {said}"), user.name()]);
        if !answer.is_empty() {
            assert_no_secrets(&out, &[answer]);
        }
    }
}
