//! Simultaneous logins and enrollments: the store's transactions must make a code good
//! for exactly one login, and the device limit hold, however the processes interleave.
//!
//! The PAM clients load the stack first and are then released together (see
//! `pam_mfa_tests::race`), so the logins really overlap inside the module.

use pam_mfa_tests::PamCode;
use std::sync::Mutex;

use pam_mfa_tests::{Running, TestEnv, TestUser, race};

/// Each PAM race holds many pam_wrapper processes at once, and pam_wrapper has room for
/// about 60 at a time machine-wide; the races of this file take turns.
static PAM_RACES: Mutex<()> = Mutex::new(());

/// How many logins race for the same code, and in how many rounds.
const CLIENTS: usize = 32;
const ROUNDS: i64 = 10;

#[test]
fn the_same_code_from_32_logins_at_once_succeeds_exactly_once() {
    let _turn = PAM_RACES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let env = TestEnv::new();
    let user = TestUser::new();
    // 31 failures a round must not lock the user out of the next round.
    env.write_service(&["max_failures=1000"]);
    let dev = env.enroll(user.name(), "phone");
    for round in 1..=ROUNDS {
        // A new step each round, so each round has a fresh, unused code.
        env.advance_steps(1);
        let code = env.code(&dev.secret);
        let runs: Vec<_> = (0..CLIENTS)
            .map(|_| env.pam(user.name()).answer(&code))
            .collect();
        let outcomes = race(&runs);
        let successes = outcomes.iter().filter(|o| o.succeeded()).count();
        let auth_errs = outcomes
            .iter()
            .filter(|o| o.result == PamCode::AuthErr)
            .count();
        if successes != 1 || auth_errs != CLIENTS - 1 {
            let odd: Vec<String> = outcomes
                .iter()
                .filter(|o| o.result != PamCode::AuthErr)
                .map(|o| o.transcript())
                .collect();
            panic!(
                "round {round}: {successes} successes and {auth_errs} PAM_AUTH_ERR of \
                 {CLIENTS}, expected exactly 1 and {}; the others:\n{}",
                CLIENTS - 1,
                odd.join("\n---\n")
            );
        }
    }
}

#[test]
fn different_users_logging_in_at_once_all_succeed() {
    let _turn = PAM_RACES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let env = TestEnv::new();
    env.write_service(&[]);
    let users: Vec<TestUser> = (0..16).map(|_| TestUser::new()).collect();
    let secrets: Vec<String> = users
        .iter()
        .map(|u| env.enroll(u.name(), "phone").secret)
        .collect();
    env.advance_steps(1);
    let runs: Vec<_> = users
        .iter()
        .zip(&secrets)
        .map(|(u, s)| env.pam(u.name()).answer(&env.code(s)))
        .collect();
    // Busy waits on the store's lock must not turn into refusals.
    for out in race(&runs) {
        out.assert_success();
    }
}

#[test]
fn simultaneous_finishes_never_exceed_eight_active_devices() {
    let env = TestEnv::new();
    let user = TestUser::new();
    for i in 0..7 {
        env.enroll(user.name(), &format!("dev{i}"));
    }
    // Pending devices never count, so all three can be begun (if the product refuses to
    // begin past the limit it must still allow these: only 7 are active). Three is the
    // most a user may have unfinished at once (issue 16, finding 3).
    let pending: Vec<_> = (0..3)
        .map(|i| env.begin(user.name(), &format!("new{i}"), &[]))
        .collect();
    let children: Vec<Running> = pending
        .iter()
        .map(|d| {
            let c1 = env.code_at_step(&d.secret, -1);
            let c2 = env.code(&d.secret);
            env.spawn_mfa(&["--user", user.name(), "enroll", "finish", &d.name, &c1, &c2])
        })
        .collect();
    let codes: Vec<Option<i32>> = children
        .into_iter()
        .map(|c| {
            let f = c.wait();
            assert!(
                f.status.success() || f.status.code() == Some(1),
                "finish crashed or misused: {f:?}"
            );
            f.status.code()
        })
        .collect();
    let won = codes.iter().filter(|c| **c == Some(0)).count();
    assert_eq!(won, 1, "exactly one finish fits under the limit: {codes:?}");
    assert_eq!(env.names_in_state(user.name(), "active").len(), 8);
}
