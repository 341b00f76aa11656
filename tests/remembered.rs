//! Issue 21: remembered login contexts, through the real libpam (pam-client under
//! pam_wrapper), the real `mfa` and the test's `mfad`, with the clock moved by the test.
//!
//! Where the policy sets `remember_seconds`, a successful second factor lets the same
//! user in again at the same PAM service from the same remote host, without a prompt,
//! until the time runs out; anything else is asked as always, and a device removal, a
//! lock-out, `mfa admin unlock` or `mfa forget` ends every remembered login of the user.

use pam_mfa_tests::PamCode;
use pam_mfa_tests::backend::Backend;
use pam_mfa_tests::{PamOutcome, TestEnv, TestUser, wrong_code};
use serde_json::Value;

const HOST: &str = "192.0.2.7";
const OTHER_HOST: &str = "198.51.100.9";

fn set_policy(env: &TestEnv, key: &str, value: &str) {
    env.mfa(&["admin", "policy", "set", key, value])
        .assert_success();
}

/// A login that asks for a code and gets the device's current one.
fn login_with_code(env: &TestEnv, user: &str, secret: &str, rhost: &str) -> PamOutcome {
    env.pam(user).rhost(rhost).answer(&env.code(secret)).run()
}

/// A login from `rhost` that answers no prompt at all: it succeeds only when nothing is
/// asked (pam-client answers a prompt it has no answer for with an error).
fn login_without_answer(env: &TestEnv, user: &str, rhost: &str) -> PamOutcome {
    env.pam(user).rhost(rhost).run()
}

/// Moves the clock exactly `secs` seconds on (`advance_secs` may move it further, to a
/// comfortable offset into the step; these tests need the exact second).
fn later(env: &TestEnv, secs: i64) {
    env.set_now(env.now() + secs);
}

#[track_caller]
fn assert_let_in_without_prompt(out: &PamOutcome) {
    out.assert_success();
    assert!(out.prompts().is_empty(), "{}", out.transcript());
    out.assert_logged(&["let through: remembered login until"]);
}

#[track_caller]
fn assert_asked(out: &PamOutcome) {
    assert_eq!(out.prompts().len(), 1, "{}", out.transcript());
    assert_ne!(out.result, PamCode::Success, "{}", out.transcript());
}

fn audit_actions(env: &TestEnv, user: &str) -> Vec<String> {
    let out = env.mfa(&["admin", "audit", "--user", user, "--json"]);
    out.assert_success();
    match out.json() {
        Value::Array(rows) => rows
            .iter()
            .filter_map(|r| r["action"].as_str().map(str::to_owned))
            .collect(),
        other => panic!("audit --json printed {other}"),
    }
}

#[test]
fn off_by_default_every_login_asks() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    login_with_code(&env, user.name(), &dev.secret, HOST).assert_success();
    assert_asked(&login_without_answer(&env, user.name(), HOST));
}

#[test]
fn the_same_user_service_and_host_are_let_in_until_the_time_runs_out() {
    let env = TestEnv::new();
    let (alice, bob) = (TestUser::new(), TestUser::new());
    env.write_service(&[]);
    env.write_named_service("other-service", &[]);
    set_policy(&env, "remember_seconds", "600");
    let phone = env.enroll(alice.name(), "phone");
    let bobs = env.enroll(bob.name(), "phone");
    env.advance_steps(1);
    login_with_code(&env, alice.name(), &phone.secret, HOST).assert_success();
    login_with_code(&env, bob.name(), &bobs.secret, OTHER_HOST).assert_success();

    later(&env, 300);
    assert_let_in_without_prompt(&login_without_answer(&env, alice.name(), HOST));
    assert!(audit_actions(&env, alice.name()).contains(&"login-remembered".to_owned()));
    // Another host, another service, another user: asked.
    assert_asked(&login_without_answer(&env, alice.name(), OTHER_HOST));
    assert_asked(
        &env.pam(alice.name())
            .rhost(HOST)
            .service("other-service")
            .run(),
    );
    assert_asked(&login_without_answer(&env, bob.name(), HOST));
    // `mfa list` and `mfa admin list` show it.
    let listed = env.mfa(&["--user", alice.name(), "list"]);
    listed.assert_success();
    assert!(
        listed.stdout.contains("Remembered logins") && listed.stdout.contains(HOST),
        "{listed:?}"
    );
    // (`mfa admin list` does not list the fleet's accounts yet.)
    if env.backend() == Backend::Local {
        let admin = env.mfa(&["admin", "list", "--json"]);
        admin.assert_success();
        let alice_row = admin
            .json()
            .as_array()
            .and_then(|a| a.iter().find(|r| r["user"] == alice.name()).cloned())
            .expect("alice in admin list");
        assert_eq!(alice_row["remembered"][0]["rhost"], HOST, "{alice_row}");
        assert_eq!(
            alice_row["remembered"][0]["service"], "mfatest",
            "{alice_row}"
        );
    }

    // Past the 600 seconds: asked again.
    later(&env, 301);
    assert_asked(&login_without_answer(&env, alice.name(), HOST));
}

#[test]
fn local_logins_are_remembered_only_when_the_policy_says_so() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    set_policy(&env, "remember_seconds", "600");
    let dev = env.enroll(user.name(), "phone");
    for local in ["", "127.0.0.1", "::1", "localhost"] {
        env.advance_steps(1);
        let out = if local.is_empty() {
            env.pam(user.name()).answer(&env.code(&dev.secret)).run()
        } else {
            login_with_code(&env, user.name(), &dev.secret, local)
        };
        out.assert_success();
        let again = if local.is_empty() {
            env.pam(user.name()).run()
        } else {
            login_without_answer(&env, user.name(), local)
        };
        assert_asked(&again);
    }
    set_policy(&env, "remember_local", "allow");
    env.advance_steps(1);
    env.pam(user.name())
        .answer(&env.code(&dev.secret))
        .run()
        .assert_success();
    assert_let_in_without_prompt(&env.pam(user.name()).run());
}

#[test]
fn the_module_line_can_only_shorten_it() {
    let env = TestEnv::new();
    let user = TestUser::new();
    set_policy(&env, "remember_seconds", "600");
    let dev = env.enroll(user.name(), "phone");

    env.write_service(&["remember=0"]);
    env.advance_steps(1);
    login_with_code(&env, user.name(), &dev.secret, HOST).assert_success();
    assert_asked(&login_without_answer(&env, user.name(), HOST));

    env.write_service(&["remember=60"]);
    env.advance_steps(1);
    login_with_code(&env, user.name(), &dev.secret, HOST).assert_success();
    later(&env, 59);
    assert_let_in_without_prompt(&login_without_answer(&env, user.name(), HOST));
    later(&env, 2);
    assert_asked(&login_without_answer(&env, user.name(), HOST));

    // A line asking for more than the policy gets the policy's time.
    env.write_service(&["remember=43200"]);
    env.advance_steps(1);
    login_with_code(&env, user.name(), &dev.secret, HOST).assert_success();
    later(&env, 599);
    assert_let_in_without_prompt(&login_without_answer(&env, user.name(), HOST));
    later(&env, 2);
    assert_asked(&login_without_answer(&env, user.name(), HOST));
}

#[test]
fn a_bypass_code_is_never_remembered_and_a_recovery_code_is() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    set_policy(&env, "remember_seconds", "600");
    env.enroll(user.name(), "phone");
    let out = env.mfa(&["admin", "bypass", user.name()]);
    out.assert_success();
    let bypass = pam_mfa_tests::recovery::codes_in(&out.stdout)
        .into_iter()
        .next()
        .expect("a bypass code");
    env.pam(user.name())
        .rhost(HOST)
        .answer(&bypass)
        .run()
        .assert_success();
    assert_asked(&login_without_answer(&env, user.name(), HOST));

    let out = env
        .mfa_cmd(&["--user", user.name(), "recovery", "generate"])
        .run();
    out.assert_success();
    let recovery = pam_mfa_tests::recovery::codes_in(&out.stdout)
        .into_iter()
        .next()
        .expect("a recovery code");
    env.pam(user.name())
        .rhost(HOST)
        .answer(&recovery)
        .run()
        .assert_success();
    assert_let_in_without_prompt(&login_without_answer(&env, user.name(), HOST));
}

/// Each ending event ends every remembered login of the user, and nobody else's.
#[test]
fn removal_lock_out_unlock_and_forget_end_every_remembered_login() {
    let env = TestEnv::new();
    let (alice, bob) = (TestUser::new(), TestUser::new());
    env.write_service(&["max_failures=2"]);
    set_policy(&env, "remember_seconds", "3600");
    let phone = env.enroll(alice.name(), "phone");
    let spare = env.enroll(alice.name(), "spare");
    let bobs = env.enroll(bob.name(), "phone");
    let remember_both = |env: &TestEnv| {
        env.advance_steps(1);
        login_with_code(env, alice.name(), &phone.secret, HOST).assert_success();
        login_with_code(env, bob.name(), &bobs.secret, HOST).assert_success();
    };
    let ended_for_alice_only = |env: &TestEnv, event: &str| {
        let out = login_without_answer(env, alice.name(), HOST);
        assert_eq!(
            out.prompts().len(),
            1,
            "after {event}: {}",
            out.transcript()
        );
        assert_let_in_without_prompt(&login_without_answer(env, bob.name(), HOST));
    };

    remember_both(&env);
    let out = env.mfa(&["--user", alice.name(), "forget"]);
    out.assert_success();
    assert!(out.stdout.contains("Forgot 1 remembered login"), "{out:?}");
    assert!(audit_actions(&env, alice.name()).contains(&"forget".to_owned()));
    ended_for_alice_only(&env, "mfa forget");

    remember_both(&env);
    env.mfa(&["--user", alice.name(), "remove", "spare", "--yes"])
        .assert_success();
    ended_for_alice_only(&env, "a device removal");

    remember_both(&env);
    env.mfa(&["admin", "unlock", alice.name()]).assert_success();
    ended_for_alice_only(&env, "mfa admin unlock");

    remember_both(&env);
    let wrong = wrong_code(&phone.secret, env.now(), 3);
    // Wrong codes from another host (the remembered one is never asked): the second
    // starts the lock-out.
    for _ in 0..2 {
        env.pam(alice.name())
            .rhost(OTHER_HOST)
            .answer(&wrong)
            .run()
            .assert_result(PamCode::AuthErr);
    }
    // A locked-out user is asked anyway; once the lock-out is over, the remembered
    // login is still gone.
    later(&env, 301);
    ended_for_alice_only(&env, "a lock-out");
    let _ = spare;
}
