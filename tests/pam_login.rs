//! Logins through the real libpam: the built `libpam_mfa.so` in a service file, driven by
//! `pam-client` under pam_wrapper, with codes from `oathtool` and time from libfaketime.
//!
//! Devices are registered with the real `mfa` (two-step enrollment), because that is how
//! an administrator gets a device into the store.
//!
//! `scripts/test.sh` runs this suite twice: on the local SQLite store, and with
//! `PAM_MFA_TEST_BACKEND=fleet` on a PostgreSQL fleet database ([`pam_mfa_tests::backend`]).
//! The tests of the store file itself always run on a local store.

use pam_mfa_tests::PamCode;
use pam_mfa_tests::backend::Backend;
use pam_mfa_tests::{Enrolled, TestEnv, TestUser, mode_of, totp, wrong_code};
use std::os::unix::fs::PermissionsExt;

/// The prompt the module shows unless configured otherwise.
const DEFAULT_PROMPT: &str = "Verification code: ";

/// A store with one active device "phone" for a new user, the service with no extra
/// arguments, and the clock one step past enrollment (whose codes are used up).
fn enrolled() -> (TestEnv, TestUser, Enrolled) {
    enrolled_on(TestEnv::new())
}

fn enrolled_on(env: TestEnv) -> (TestEnv, TestUser, Enrolled) {
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    (env, user, dev)
}

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ----- the basic verdicts -----

#[test]
fn right_code_succeeds_after_one_echo_off_prompt() {
    let (env, user, dev) = enrolled();
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success()
        .assert_prompted(DEFAULT_PROMPT, false);
}

#[test]
fn right_code_succeeds_with_a_remote_host_set() {
    let (env, user, dev) = enrolled();
    env.pam(user.name())
        .rhost("192.0.2.7")
        .answer(&env.code(&dev.secret))
        .run()
        .assert_success();
}

#[test]
fn wrong_code_fails_and_the_right_one_still_works() {
    let (env, user, dev) = enrolled();
    let wrong = wrong_code(&dev.secret, env.now(), 3);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr)
        .assert_prompted(DEFAULT_PROMPT, false);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

#[test]
fn replayed_code_is_refused() {
    let (env, user, dev) = enrolled();
    let code = env.code(&dev.secret);
    env.login(user.name(), &code).assert_success();
    env.login(user.name(), &code)
        .assert_result(PamCode::AuthErr);
    // A step later the old code is still inside the window, and still used up.
    env.advance_steps(1);
    env.login(user.name(), &code)
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

#[test]
fn an_older_step_is_refused_once_a_newer_one_was_accepted() {
    let (env, user, dev) = enrolled();
    // Window 1 accepts the next step's code; after that the current step is in the past.
    let next = env.distinct_code_at_step(&dev.secret, 1, 0);
    env.login(user.name(), &next).assert_success();
    env.login(user.name(), &env.code(&dev.secret))
        .assert_result(PamCode::AuthErr);
}

#[test]
fn enrollment_codes_cannot_log_in() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.begin(user.name(), "phone", &[]);
    let c1 = env.code_at_step(&dev.secret, -1);
    let c2 = env.code(&dev.secret);
    env.finish(user.name(), "phone", &c1, &c2).assert_success();
    env.login(user.name(), &c2).assert_result(PamCode::AuthErr);
    env.login(user.name(), &c1).assert_result(PamCode::AuthErr);
    env.advance_steps(1);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

#[test]
fn another_users_code_is_refused() {
    let env = TestEnv::new();
    let alice = TestUser::new();
    let bob = TestUser::new();
    env.write_service(&[]);
    let a = env.enroll(alice.name(), "phone");
    let b = env.enroll(bob.name(), "phone");
    env.advance_steps(1);
    // Skip the (one in a million) steps where Alice's code happens to be one of Bob's.
    while (-1..=1).any(|d| env.code_at_step(&b.secret, d) == env.code(&a.secret)) {
        env.advance_steps(1);
    }
    let alices = env.code(&a.secret);
    env.login(bob.name(), &alices)
        .assert_result(PamCode::AuthErr);
    env.login(bob.name(), &env.code(&b.secret)).assert_success();
    // Bob's failed attempt did not use up Alice's code.
    env.login(alice.name(), &alices).assert_success();
}

#[test]
fn any_active_device_of_the_user_is_accepted() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let phone = env.enroll(user.name(), "phone");
    let tablet = env.enroll(user.name(), "tablet");
    env.advance_steps(1);
    // Each device has its own last used step, so both codes of this step are good.
    env.login(user.name(), &env.code(&phone.secret))
        .assert_success();
    env.login(user.name(), &env.code(&tablet.secret))
        .assert_success();
}

#[test]
fn a_removed_device_no_longer_logs_in() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let phone = env.enroll(user.name(), "phone");
    let tablet = env.enroll(user.name(), "tablet");
    env.mfa(&["--user", user.name(), "remove", "tablet", "--yes"])
        .assert_success();
    env.advance_steps(1);
    let tablet_code = env.code(&tablet.secret);
    if tablet_code != env.code(&phone.secret) {
        env.login(user.name(), &tablet_code)
            .assert_result(PamCode::AuthErr);
    }
    env.login(user.name(), &env.code(&phone.secret))
        .assert_success();
}

#[test]
fn a_pending_device_does_not_log_in() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.begin(user.name(), "phone", &[]);
    env.advance_steps(1);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_result(PamCode::AuthErr);
}

// ----- the window -----

#[test]
fn two_steps_ahead_is_refused_with_window_1_and_accepted_with_window_2() {
    let (env, user, dev) = enrolled();
    let ahead = env.distinct_code_at_step(&dev.secret, 2, 1);
    env.login(user.name(), &ahead)
        .assert_result(PamCode::AuthErr);
    env.write_service(&["window=2"]);
    env.login(user.name(), &ahead).assert_success();
}

#[test]
fn two_steps_behind_is_refused_with_window_1_and_accepted_with_window_2() {
    let (env, user, dev) = enrolled();
    // Far enough past enrollment that two steps back is still after the last used step.
    env.advance_steps(5);
    let behind = env.distinct_code_at_step(&dev.secret, -2, 1);
    env.login(user.name(), &behind)
        .assert_result(PamCode::AuthErr);
    env.write_service(&["window=2"]);
    env.login(user.name(), &behind).assert_success();
}

#[test]
fn window_0_accepts_only_the_current_step() {
    let (env, user, dev) = enrolled();
    env.advance_steps(3);
    env.write_service(&["window=0"]);
    let next = env.distinct_code_at_step(&dev.secret, 1, 0);
    env.login(user.name(), &next)
        .assert_result(PamCode::AuthErr);
    let prev = env.distinct_code_at_step(&dev.secret, -1, 0);
    env.login(user.name(), &prev)
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

#[test]
fn window_10_is_allowed_and_reaches_ten_steps() {
    let (env, user, dev) = enrolled();
    env.write_service(&["window=10"]);
    let ahead = env.distinct_code_at_step(&dev.secret, 10, 0);
    env.login(user.name(), &ahead).assert_success();
}

// ----- resync -----

#[test]
fn resync_for_a_clock_ten_minutes_ahead() {
    let (env, user, dev) = enrolled();
    let fast = |env: &TestEnv| totp(&dev.secret, env.now() + 600);
    // Make sure the fast code is not by chance valid for the true time.
    while (-1..=1).any(|d| env.code_at_step(&dev.secret, d) == fast(&env)) {
        env.advance_steps(1);
    }
    env.login(user.name(), &fast(&env))
        .assert_result(PamCode::AuthErr);

    env.advance_steps(1);
    let c1 = totp(&dev.secret, env.now() + 600);
    let c2 = totp(&dev.secret, env.now() + 630);
    env.mfa(&["--user", user.name(), "resync", "phone", &c1, &c2])
        .assert_success();

    // The resync codes are used up; later codes of the fast clock log in, step after step.
    env.advance_steps(2);
    env.login(user.name(), &fast(&env)).assert_success();
    env.advance_steps(1);
    env.login(user.name(), &fast(&env)).assert_success();

    // The true time's code is now 20 steps off the device's clock: refused.
    env.advance_steps(1);
    let truth = env.code(&dev.secret);
    if !(-1..=1).any(|d| totp(&dev.secret, env.now() + 600 + d * 30) == truth) {
        env.login(user.name(), &truth)
            .assert_result(PamCode::AuthErr);
    }
}

#[test]
fn resync_for_a_clock_eleven_hours_behind() {
    let (env, user, dev) = enrolled();
    // The device goes unused for a day, and its clock is now 11 h (1,320 steps, inside the
    // ±1,500 searched) behind: its codes are of steps never accepted before.
    env.advance_steps(24 * 120);
    let slow = |env: &TestEnv| totp(&dev.secret, env.now() - 1320 * 30);
    let c1 = slow(&env);
    let c2 = totp(&dev.secret, env.now() - 1319 * 30);
    env.mfa(&["--user", user.name(), "resync", "phone", &c1, &c2])
        .assert_success();
    env.advance_steps(3);
    env.login(user.name(), &slow(&env)).assert_success();
}

#[test]
fn resync_never_goes_back_to_codes_already_used() {
    let (env, user, dev) = enrolled();
    env.ensure_distinct_codes(&dev.secret, -2..=0);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
    // Codes of the two steps before the one just accepted: a replay, not a drift.
    let c1 = env.code_at_step(&dev.secret, -2);
    let c2 = env.code_at_step(&dev.secret, -1);
    env.mfa(&["--user", user.name(), "resync", "phone", &c1, &c2])
        .assert_error(&[]);
    env.advance_steps(1);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

// ----- users without devices -----

/// Prepares a store in which the given user has no active device.
type Setup = Box<dyn Fn(&TestEnv, &TestUser)>;

/// The situations in which a user has no active device.
fn no_device_cases() -> Vec<(&'static str, Setup)> {
    vec![
        ("no store file at all", Box::new(|_, _| {})),
        (
            "a store with only another user's device",
            Box::new(|env, _| {
                let other = TestUser::new();
                env.enroll(other.name(), "phone");
            }),
        ),
        (
            "only a pending device",
            Box::new(|env, user| {
                env.begin(user.name(), "phone", &[]);
            }),
        ),
        (
            "the only device removed",
            Box::new(|env, user| {
                env.enroll(user.name(), "phone");
                env.mfa(&["--user", user.name(), "remove", "phone", "--yes"])
                    .assert_success();
            }),
        ),
    ]
}

#[test]
fn no_active_device_with_nullok_is_ignored() {
    for (case, setup) in no_device_cases() {
        let env = TestEnv::new();
        let user = TestUser::new();
        setup(&env, &user);
        env.advance_steps(1);
        env.write_service_observing_ignore(&["nullok"]);
        // An answer is supplied in case the module asks; it must still step aside.
        let out = env.login(user.name(), "123456");
        assert_eq!(
            out.result,
            pam_mfa_tests::IGNORED,
            "case {case:?}: expected PAM_IGNORE\n{}",
            out.transcript()
        );
    }
}

#[test]
fn no_active_device_without_nullok_is_prompted_then_refused() {
    for (case, setup) in no_device_cases() {
        let env = TestEnv::new();
        let user = TestUser::new();
        setup(&env, &user);
        env.advance_steps(1);
        env.write_service(&[]);
        let out = env.login(user.name(), "123456");
        // The same prompt as for an enrolled user: the prompt must not tell who is enrolled.
        assert!(
            out.result == PamCode::AuthErr
                && out.prompts().len() == 1
                && out.prompts()[0].kind == "prompt-echo-off"
                && out.prompts()[0].text == DEFAULT_PROMPT,
            "case {case:?}: expected the usual prompt, then PAM_AUTH_ERR\n{}",
            out.transcript()
        );
    }
}

#[test]
fn nullok_does_not_let_an_enrolled_user_skip_the_code() {
    let (env, user, dev) = enrolled();
    env.write_service_observing_ignore(&["nullok"]);
    let wrong = wrong_code(&dev.secret, env.now(), 3);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

#[test]
fn a_user_that_does_not_exist_is_not_let_in() {
    let env = TestEnv::new();
    env.write_service(&[]);
    let out = env.login("mfat-no-such-user", "123456");
    assert!(
        !out.succeeded() && out.result != PamCode::Ignore,
        "{}",
        out.transcript()
    );
}

// ----- lock-out -----

#[test]
fn lockout_after_max_failures_and_release_after_lockout_seconds() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["max_failures=3", "lockout=120"]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    let wrong = wrong_code(&dev.secret, env.now(), 3);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    // The failure that reaches the limit is still a wrong code, which starts the lock-out.
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);

    // Locked: the person is still prompted (a recovery code, a bypass code or a key would
    // work, issue 16 finding 1), is told until when, and a right code is refused unchecked.
    let locked = |env: &TestEnv| {
        let out = env.login(user.name(), &env.code(&dev.secret));
        out.assert_locked_out();
        assert_eq!(out.prompts().len(), 1, "{}", out.transcript());
        assert!(
            out.errors().iter().any(|e| e.contains("locked until")),
            "expected an error message saying until when\n{}",
            out.transcript()
        );
    };
    locked(&env);
    env.advance_secs(60);
    locked(&env);

    // More than the 120 s lock-out after every attempt so far (whether or not attempts
    // during a lock-out count), the right code works again.
    env.advance_secs(150);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

#[test]
fn made_up_names_and_accounts_without_a_device_look_the_same() {
    // Issue 16, finding 8: after a few wrong tries real accounts answered "Too many failed
    // attempts… locked until" and made-up names never did, which told which names are
    // accounts. Neither is locked out now (nothing to guess), and both see exactly the same.
    let env = TestEnv::new();
    let real = TestUser::new();
    env.write_service(&["max_failures=2", "lockout=300"]);
    let made_up = format!("{}x", real.name());
    assert!(!pam_mfa_tests::user_exists(&made_up));
    let seen = |name: &str| -> Vec<(PamCode, Vec<String>)> {
        (0..6)
            .map(|_| {
                let out = env.login(name, "123456");
                let messages = out
                    .messages
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>();
                (out.result, messages)
            })
            .collect()
    };
    let real_seen = seen(real.name());
    assert_eq!(real_seen, seen(&made_up));
    assert!(
        real_seen
            .iter()
            .all(|(result, _)| *result == PamCode::AuthErr),
        "{real_seen:?}"
    );
}

#[test]
fn a_null_answer_is_refused_and_counted_like_an_empty_one() {
    // Issue 16, finding 10: a NULL response from the conversation was refused without
    // counting a failure, although the code said it counted like any wrong answer.
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["max_failures=2", "lockout=300"]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    env.pam(user.name())
        .answer_null()
        .run()
        .assert_result(PamCode::AuthErr);
    let out = env.pam(user.name()).answer_null().run();
    out.assert_result(PamCode::AuthErr);
    out.assert_logged(&["locked out until"]);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_locked_out();
}

#[test]
fn lockout_is_per_user() {
    let env = TestEnv::new();
    let alice = TestUser::new();
    let bob = TestUser::new();
    env.write_service(&["max_failures=2", "lockout=300"]);
    let a = env.enroll(alice.name(), "phone");
    let b = env.enroll(bob.name(), "phone");
    env.advance_steps(1);
    let wrong = wrong_code(&a.secret, env.now(), 3);
    env.login(alice.name(), &wrong);
    env.login(alice.name(), &wrong);
    env.login(alice.name(), &env.code(&a.secret))
        .assert_locked_out();
    env.login(bob.name(), &env.code(&b.secret)).assert_success();
}

#[test]
fn failures_older_than_the_lockout_period_do_not_count() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["max_failures=3", "lockout=60"]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    let wrong = wrong_code(&dev.secret, env.now(), 3);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    env.advance_secs(120);
    let wrong = wrong_code(&dev.secret, env.now(), 3);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    // Four failures in all, but never three within 60 s: not locked.
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

// ----- module arguments -----

#[test]
fn unknown_module_argument_fails_closed() {
    let (env, user, dev) = enrolled();
    let code = env.code(&dev.secret);
    env.write_service(&["frobnicate"]);
    env.login(user.name(), &code)
        .assert_result(PamCode::ServiceErr);
    // The same code works once the service file is fixed: the argument was the reason.
    env.write_service(&[]);
    env.login(user.name(), &code).assert_success();
}

#[test]
fn malformed_module_arguments_fail_closed() {
    let (env, user, dev) = enrolled();
    let code = env.code(&dev.secret);
    for arg in [
        "window=abc",
        "window=11",
        "window=-1",
        "window=",
        "window=1.5",
        "max_failures=0",
        "max_failures=abc",
        "lockout=abc",
        "lockout=-5",
        "nullok=yes",
        "echo_code=1",
        "Window=1",
    ] {
        env.write_service(&[arg]);
        let out = env.login(user.name(), &code);
        assert_eq!(
            out.result,
            PamCode::ServiceErr,
            "argument {arg:?} should be refused\n{}",
            out.transcript()
        );
    }
    env.write_service(&[]);
    env.login(user.name(), &code).assert_success();
}

#[test]
fn every_documented_argument_is_accepted() {
    let (env, user, dev) = enrolled();
    env.write_service(&[
        "nullok",
        "window=10",
        "max_failures=1",
        "lockout=1",
        "prompt=Code:",
        "echo_code",
        "debug",
    ]);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success()
        .assert_prompted("Code:", true);
}

#[test]
fn echo_code_makes_the_prompt_echo_on() {
    let (env, user, dev) = enrolled();
    env.write_service(&["echo_code"]);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success()
        .assert_prompted(DEFAULT_PROMPT, true);
}

#[test]
fn prompt_argument_changes_the_prompt() {
    let (env, user, dev) = enrolled();
    env.write_service(&["prompt=Code:"]);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success()
        .assert_prompted("Code:", false);
}

#[test]
fn prompt_with_spaces_in_pam_brackets() {
    let (env, user, dev) = enrolled();
    // PAM keeps an argument with spaces together when it is written in brackets.
    env.write_service(&["[prompt=Enter code: ]"]);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success()
        .assert_prompted("Enter code: ", false);
}

#[test]
fn prompt_with_spaces_without_brackets_is_an_unknown_argument() {
    let (env, user, dev) = enrolled();
    // Without brackets PAM passes `prompt=Enter` and `code:`, and `code:` is unknown.
    env.write_service(&["prompt=Enter code:"]);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_result(PamCode::ServiceErr);
}

// ----- the store -----

/// Logs in with the right code while the store is made unsafe by `spoil`, expecting a
/// refusal, then with `repair` applied expects the same code to work (so the refusal
/// was about the store, and consumed nothing). The store file is the local backend's.
fn refused_while_unsafe(spoil: impl Fn(&TestEnv, &TestUser), repair: impl Fn(&TestEnv)) {
    let (env, user, dev) = enrolled_on(TestEnv::with_backend(Backend::Local));
    let code = env.code(&dev.secret);
    spoil(&env, &user);
    env.login(user.name(), &code)
        .assert_result(PamCode::AuthinfoUnavail);
    repair(&env);
    env.login(user.name(), &code).assert_success();
}

#[test]
fn group_readable_store_is_refused() {
    refused_while_unsafe(
        |env, _| chmod(env.db(), 0o640),
        |env| chmod(env.db(), 0o600),
    );
}

#[test]
fn group_writable_store_is_refused() {
    refused_while_unsafe(
        |env, _| chmod(env.db(), 0o620),
        |env| chmod(env.db(), 0o600),
    );
}

#[test]
fn other_readable_store_is_refused() {
    refused_while_unsafe(
        |env, _| chmod(env.db(), 0o604),
        |env| chmod(env.db(), 0o600),
    );
}

#[test]
fn store_directory_0755_is_refused() {
    refused_while_unsafe(
        |env, _| chmod(env.store(), 0o755),
        |env| chmod(env.store(), 0o700),
    );
}

#[test]
fn store_not_owned_by_root_is_refused() {
    refused_while_unsafe(
        |env, user| std::os::unix::fs::chown(env.db(), Some(user.uid()), None).unwrap(),
        |env| std::os::unix::fs::chown(env.db(), Some(0), None).unwrap(),
    );
}

#[test]
fn store_directory_not_owned_by_root_is_refused() {
    refused_while_unsafe(
        |env, user| std::os::unix::fs::chown(env.store(), Some(user.uid()), None).unwrap(),
        |env| std::os::unix::fs::chown(env.store(), Some(0), None).unwrap(),
    );
}

#[test]
fn unsafe_store_fails_closed_even_with_nullok() {
    let env = TestEnv::with_backend(Backend::Local);
    let user = TestUser::new();
    let other = TestUser::new();
    env.enroll(other.name(), "phone");
    chmod(env.db(), 0o644);
    env.write_service_observing_ignore(&["nullok"]);
    env.login(user.name(), "123456")
        .assert_result(PamCode::AuthinfoUnavail);
}

#[test]
fn a_store_that_is_not_a_database_is_refused() {
    let env = TestEnv::with_backend(Backend::Local);
    let user = TestUser::new();
    std::fs::write(env.db(), vec![b'x'; 4096]).unwrap();
    chmod(env.db(), 0o600);
    env.write_service_observing_ignore(&["nullok"]);
    env.login(user.name(), "123456")
        .assert_result(PamCode::AuthinfoUnavail);
    // The file is left as it was: refusing never "repairs" by overwriting.
    assert_eq!(std::fs::read(env.db()).unwrap(), vec![b'x'; 4096]);
    assert_eq!(mode_of(env.db()), 0o600);
}

// ----- what users type -----

#[test]
fn a_megabyte_answer_is_refused() {
    let (env, user, dev) = enrolled();
    let big = env.path("megabyte");
    std::fs::write(&big, "1".repeat(1 << 20)).unwrap();
    env.pam(user.name())
        .answer_file(&big)
        .run()
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

#[test]
fn an_empty_answer_is_refused() {
    let (env, user, dev) = enrolled();
    env.login(user.name(), "").assert_result(PamCode::AuthErr);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}

#[test]
fn non_digit_answers_are_refused() {
    let (env, user, dev) = enrolled();
    env.write_service(&["max_failures=20"]);
    let code = env.code(&dev.secret);
    let fullwidth: String = code
        .chars()
        .map(|c| char::from_u32(0xff10 + c.to_digit(10).unwrap()).unwrap())
        .collect();
    for bad in [
        "12345a".to_owned(),
        "abcdef".to_owned(),
        format!("{}a", &code[..5]),
        format!("-{}", &code[1..]),
        format!("+{code}"),
        fullwidth,
    ] {
        let out = env.login(user.name(), &bad);
        assert_eq!(
            out.result,
            PamCode::AuthErr,
            "answer {bad:?} should be refused\n{}",
            out.transcript()
        );
    }
    env.login(user.name(), &code).assert_success();
}

#[test]
fn too_short_and_too_long_answers_are_refused() {
    let (env, user, dev) = enrolled();
    let code = env.code(&dev.secret);
    env.login(user.name(), &code[..5])
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &format!("{code}0"))
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &code).assert_success();
}

#[test]
fn spaces_inside_a_code_are_accepted() {
    let (env, user, dev) = enrolled();
    let code = env.code(&dev.secret);
    env.login(user.name(), &format!("{} {}", &code[..3], &code[3..]))
        .assert_success();
}

#[test]
fn a_conversation_without_an_answer_fails() {
    let (env, user, _dev) = enrolled();
    let out = env.pam(user.name()).run();
    assert!(
        !out.succeeded() && out.result != PamCode::Ignore,
        "{}",
        out.transcript()
    );
}
