//! FIDO2 security keys end to end: registered with the real `mfa enroll fido2`, used at
//! login through the real libpam, against the software authenticator that the workspace's
//! debug build contains (feature `soft-fido2`, selected by `PAM_MFA_SOFT_FIDO2`).
//!
//! The software authenticator makes real P-256/Ed25519 keys and signatures; its state file
//! (one per "key") is edited here to make it misbehave the ways real keys and attackers do
//! — a tampered signature, another RP's rpIdHash, no user presence, no user verification,
//! a counter going backwards, not plugged in, never touched — and every one must be a
//! refusal with a message and a syslog line, never a success.

use pam_mfa_tests::PamCode;

use pam_mfa_tests::keys::{
    SOFT_FIDO2_VAR, SoftFido2Key as Key, TOUCH_CUE, assert_refused_saying,
    assert_touched_and_accepted, at_console, enroll_key, enroll_key_stdin,
};
use pam_mfa_tests::{MfaOutput, PamOutcome, TestEnv, TestUser};
use serde_json::json;

const PIN_PROMPT: &str = "Security key PIN: ";
const CODE_PROMPT: &str = "Verification code: ";
/// LOG_ERR.
const ERR: u8 = 3;

/// Asserts `mfa` failed (exit 1) with its last stderr line the `mfa: …` error containing
/// every one of `needles` (case-insensitive); the lines before it are the prompts and the
/// touch cue.
#[track_caller]
fn assert_fails_with(out: &MfaOutput, needles: &[&str]) {
    out.assert_exit(1);
    let last = out
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_lowercase();
    assert!(last.starts_with("mfa: "), "{out:?}");
    for n in needles {
        assert!(last.contains(&n.to_lowercase()), "expected {n:?}: {out:?}");
    }
}

/// A user with one registered key "yubi" (ES256, no PIN) and the service with `args`.
fn with_key(args: &[&str]) -> (TestEnv, TestUser, Key) {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(args);
    let key = Key::new(&env, "a");
    enroll_key(&env, user.name(), "yubi", &key, &[]).assert_success();
    (env, user, key)
}

#[track_caller]
fn assert_refused(out: &PamOutcome, message: &str, log: &str) {
    assert_refused_saying(out, message);
    out.assert_logged(&["authentication failure", log]);
    out.assert_module_silent();
}

// ----- registration -----

#[test]
fn registering_a_key_asks_for_a_touch_and_lists_it_as_fido2() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let key = Key::new(&env, "a");
    let out = enroll_key(&env, user.name(), "yubi", &key, &[]);
    out.assert_success();
    assert!(
        out.stderr.contains("Touch your security key now"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("Security key \"yubi\" is active"),
        "{}",
        out.stdout
    );
    let listed = env.listed(user.name(), "yubi").expect("the key is listed");
    assert_eq!(listed["kind"], "fido2");
    assert_eq!(listed["state"], "active");
    // The credential was made for the default RP id of this host.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        key.credentials()[0]["rp_id"],
        format!("pam://{}", host.trim())
    );
    let table = env.mfa(&["--user", user.name(), "list"]);
    table.assert_success();
    assert!(table.stdout.contains("fido2"), "{}", table.stdout);
    // A key cannot be resynced like a code device.
    env.mfa(&["--user", user.name(), "resync", "yubi", "123456", "654321"])
        .assert_error(&["security key"]);
}

#[test]
fn the_same_key_cannot_be_registered_twice() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let key = Key::new(&env, "a");
    enroll_key(&env, user.name(), "yubi", &key, &[]).assert_success();
    assert_fails_with(
        &enroll_key(&env, user.name(), "yubi-again", &key, &[]),
        &["already registered"],
    );
    assert_eq!(
        key.credentials().len(),
        1,
        "the key made a second credential"
    );
    assert!(env.listed(user.name(), "yubi-again").is_none());
    // Another key is fine, and so is the same key for another user.
    enroll_key(&env, user.name(), "backup", &Key::new(&env, "b"), &[]).assert_success();
    let other = TestUser::new();
    enroll_key(&env, other.name(), "yubi", &key, &[]).assert_success();
    // The name is taken either way.
    assert_fails_with(
        &enroll_key(&env, user.name(), "yubi", &Key::new(&env, "c"), &[]),
        &["already has a device named"],
    );
}

#[test]
fn registration_refuses_answers_that_do_not_verify() {
    for (knob, needle) in [
        ("tamper_signature", "signature"),
        ("wrong_rp_id_hash", "rpidhash"),
        ("clear_up", "UP"),
        ("absent", "no security key found"),
    ] {
        let env = TestEnv::new();
        let user = TestUser::new();
        let key = Key::new(&env, "a");
        key.knob(knob, true);
        assert_fails_with(&enroll_key(&env, user.name(), "yubi", &key, &[]), &[needle]);
        assert!(
            env.list(user.name()).is_empty(),
            "{knob}: a device was stored"
        );
    }
}

#[test]
fn registration_times_out_with_a_clear_message() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let key = Key::new(&env, "a");
    key.knob("never_touched", true);
    assert_fails_with(
        &enroll_key(&env, user.name(), "yubi", &key, &["--timeout", "1"]),
        &["not touched within 1 seconds"],
    );
    assert!(env.list(user.name()).is_empty());
    enroll_key(&env, user.name(), "yubi", &key, &["--timeout", "121"]).assert_exit(2);
}

#[test]
fn rp_id_option_is_stored_with_the_credential() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let key = Key::new(&env, "a");
    enroll_key(
        &env,
        user.name(),
        "yubi",
        &key,
        &["--rp-id", "pam://cluster"],
    )
    .assert_success();
    assert_eq!(key.credentials()[0]["rp_id"], "pam://cluster");
    assert_touched_and_accepted(&at_console(&env, user.name(), &key).run());
    assert_fails_with(
        &enroll_key(
            &env,
            user.name(),
            "x",
            &Key::new(&env, "b"),
            &["--rp-id", "has space"],
        ),
        &["rp id"],
    );
}

// ----- logging in with a touch -----

#[test]
fn a_touch_logs_in_and_the_sign_count_moves_on() {
    let (env, user, key) = with_key(&[]);
    for _ in 0..3 {
        let out = at_console(&env, user.name(), &key).run();
        assert_touched_and_accepted(&out);
        out.assert_logged(&[
            "authenticated with device \"yubi\"",
            &format!("user={}", user.name()),
        ]);
        assert_eq!(out.threads_after_end(), Some(1), "{}", out.stderr);
    }
    let last_used = env.listed(user.name(), "yubi").unwrap()["last_used"].clone();
    assert!(last_used.is_number(), "last use not recorded: {last_used}");
}

#[test]
fn ed25519_keys_work_too() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let key = Key::new(&env, "a");
    key.set("algorithm", json!("eddsa"));
    enroll_key(&env, user.name(), "ed", &key, &[]).assert_success();
    assert_eq!(key.credentials()[0]["alg"], "eddsa");
    assert_touched_and_accepted(&at_console(&env, user.name(), &key).run());
    key.knob("tamper_signature", true);
    assert_refused(
        &at_console(&env, user.name(), &key).run(),
        "not accepted",
        "signature does not verify",
    );
}

#[test]
fn a_key_of_another_user_is_refused() {
    let env = TestEnv::new();
    env.write_service(&[]);
    let (alice, bob) = (TestUser::new(), TestUser::new());
    let (alices, bobs) = (Key::new(&env, "alice"), Key::new(&env, "bob"));
    enroll_key(&env, alice.name(), "key", &alices, &[]).assert_success();
    enroll_key(&env, bob.name(), "key", &bobs, &[]).assert_success();

    // Bob's key holds none of Alice's credentials.
    assert_refused(
        &at_console(&env, alice.name(), &bobs).run(),
        &format!("not registered for {}", alice.name()),
        "holds none of the user's credentials",
    );
    // A key that ignores the allow list and answers with Bob's credential, validly signed.
    bobs.knob("ignore_allow_list", true);
    assert_refused(
        &at_console(&env, alice.name(), &bobs).run(),
        &format!("not registered for {}", alice.name()),
        "not one of the user's",
    );
    // Bob's own login with it still works, and Alice's with hers.
    assert_touched_and_accepted(&at_console(&env, bob.name(), &bobs).run());
    assert_touched_and_accepted(&at_console(&env, alice.name(), &alices).run());
}

#[test]
fn answers_that_do_not_verify_are_refused_and_logged() {
    for (knob, log) in [
        (
            "tamper_signature",
            "assertion signature: the signature does not verify",
        ),
        (
            "wrong_rp_id_hash",
            "the rpIdHash is not SHA-256 of the RP id",
        ),
        ("clear_up", "the user-present (UP) flag is not set"),
    ] {
        let (env, user, key) = with_key(&[]);
        key.knob(knob, true);
        let out = at_console(&env, user.name(), &key).run();
        assert_refused(&out, "not accepted", log);
        out.assert_logged(&["security key \"yubi\" refused"]);
        // The same key, behaving again, works: the refusal was about that answer only.
        key.knob(knob, false);
        assert_touched_and_accepted(&at_console(&env, user.name(), &key).run());
    }
}

#[test]
fn a_sign_count_going_backwards_is_refused_as_a_possible_clone() {
    let (env, user, key) = with_key(&[]);
    assert_touched_and_accepted(&at_console(&env, user.name(), &key).run());
    key.knob("counter_backwards", true);
    let out = at_console(&env, user.name(), &key).run();
    assert_refused(&out, "not accepted", "the sign count went backwards");
    let line = out.assert_logged(&["may have been cloned"]);
    let priority = out
        .syslog()
        .into_iter()
        .find(|(_, m)| *m == line)
        .map(|(p, _)| p);
    assert_eq!(priority, Some(ERR), "{line}");
    // A counter equal to the stored one is a regression too.
    key.knob("counter_backwards", false);
    let mut s = key.state();
    s["counter"] = json!(s["counter"].as_u64().unwrap() - 1);
    std::fs::write(key.path(), serde_json::to_vec(&s).unwrap()).unwrap();
    assert_refused(
        &at_console(&env, user.name(), &key).run(),
        "not accepted",
        "sign count went backwards",
    );
    // Counting on from above the stored count is accepted again.
    assert_touched_and_accepted(&at_console(&env, user.name(), &key).run());
}

#[test]
fn a_key_not_touched_in_time_is_refused() {
    let (env, user, key) = with_key(&["fido2_timeout=1"]);
    key.knob("never_touched", true);
    let started = std::time::Instant::now();
    let out = at_console(&env, user.name(), &key).run();
    assert_refused(&out, "not touched in time", "not touched in time");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn keys_are_neither_counted_nor_stopped_by_the_lock_out() {
    // Issue 16, finding 1: the lock-out limits guessing of short codes only. A refused key
    // (here a tampered signature) counted toward it, and a locked-out user's good touch was
    // refused: anyone who could count failures kept the key's owner out.
    let (env, user, key) = with_key(&["max_failures=2"]);
    key.knob("tamper_signature", true);
    for _ in 0..4 {
        let out = at_console(&env, user.name(), &key).run();
        out.assert_result(PamCode::AuthErr);
        assert!(
            !out.syslog().iter().any(|(_, l)| l.contains("locked out")),
            "{}",
            out.transcript()
        );
    }
    key.knob("tamper_signature", false);
    assert_touched_and_accepted(&at_console(&env, user.name(), &key).run());
    // Locked out by wrong codes (typed from afar, where codes are asked for)...
    let phone = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    for _ in 0..2 {
        let wrong = pam_mfa_tests::wrong_code(&phone.secret, env.now(), 1);
        env.pam(user.name())
            .rhost("192.0.2.7")
            .answer(&wrong)
            .run()
            .assert_result(PamCode::AuthErr);
    }
    env.pam(user.name())
        .rhost("192.0.2.7")
        .answer(&env.code(&phone.secret))
        .run()
        .assert_locked_out();
    // ...the key still logs in at the console. The codes stay locked (a key's success says
    // nothing about whoever was guessing them) until the administrator unlocks them.
    let out = at_console(&env, user.name(), &key).run();
    out.assert_success();
    assert!(
        out.infos().iter().any(|i| i.contains("locked until")),
        "{}",
        out.transcript()
    );
    env.advance_steps(1);
    let from_afar = |env: &TestEnv| {
        env.pam(user.name())
            .rhost("192.0.2.7")
            .answer(&env.code(&phone.secret))
            .run()
    };
    from_afar(&env).assert_locked_out();
    env.mfa(&["admin", "unlock", user.name()]).assert_success();
    from_afar(&env).assert_success();
}

// ----- PIN and user verification -----

#[test]
fn a_credential_registered_with_pin_asks_for_it_and_refuses_a_wrong_one() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let key = Key::new(&env, "a");
    let pin = "correct-horse-7";
    key.set("pin", json!(pin));
    // A wrong PIN at registration.
    assert_fails_with(
        &enroll_key_stdin(&env, user.name(), "yubi", &key, &["--pin"], "nope\n"),
        &["wrong security key pin"],
    );
    let out = enroll_key_stdin(
        &env,
        user.name(),
        "yubi",
        &key,
        &["--pin"],
        &format!("{pin}\n"),
    );
    out.assert_success();
    assert!(out.stderr.contains(PIN_PROMPT), "{}", out.stderr);
    assert!(!out.stdout.contains(pin) && !out.stderr.contains(pin));

    // Right PIN: accepted.
    let out = at_console(&env, user.name(), &key).answer(pin).run();
    out.assert_success().assert_prompted(PIN_PROMPT, false);
    assert_eq!(out.infos(), [TOUCH_CUE]);
    // Wrong PIN: refused.
    let out = at_console(&env, user.name(), &key).answer("1111").run();
    assert_refused(&out, "Wrong security key PIN", "wrong security key PIN");
    // No PIN at all (the conversation fails): refused.
    at_console(&env, user.name(), &key)
        .run()
        .assert_result(PamCode::ConvErr);
    // The key skips UV even though the PIN was right: refused.
    key.knob("omit_uv", true);
    let out = at_console(&env, user.name(), &key).answer(pin).run();
    assert_refused(&out, "not accepted", "user verification (PIN) is required");
    key.knob("omit_uv", false);
    let out = at_console(&env, user.name(), &key).answer(pin).run();
    out.assert_success();
    // Neither the PIN nor any private key shows up in what the stack wrote.
    for secret in std::iter::once(pin.to_owned()).chain(key.private_keys()) {
        assert!(!out.stderr.contains(&secret), "{}", out.stderr);
        assert!(
            !out.stdout.lines().any(|l| l.contains(&secret)),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn a_key_with_a_pin_registered_without_pin_needs_only_a_touch() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let key = Key::new(&env, "a");
    key.set("pin", json!("2468"));
    // The key has a PIN, so registration asks for it even without --pin.
    enroll_key_stdin(&env, user.name(), "yubi", &key, &[], "2468\n").assert_success();
    assert_touched_and_accepted(&at_console(&env, user.name(), &key).run());
}

#[test]
fn uv_requires_a_key_that_can_verify() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let key = Key::new(&env, "a");
    assert_fails_with(
        &enroll_key(&env, user.name(), "yubi", &key, &["--uv"]),
        &["no PIN set"],
    );
    assert_fails_with(
        &enroll_key(&env, user.name(), "yubi", &key, &["--pin"]),
        &["no PIN set"],
    );
    enroll_key(&env, user.name(), "yubi", &key, &["--pin", "--uv"]).assert_exit(2);
}

// ----- where a key cannot be used: remote logins, no key, fido2=require -----

/// A user with a code device "phone" and a key "yubi".
fn with_both(args: &[&str]) -> (TestEnv, TestUser, Key, pam_mfa_tests::Enrolled) {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(args);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    let key = Key::new(&env, "a");
    enroll_key(&env, user.name(), "yubi", &key, &[]).assert_success();
    (env, user, key, dev)
}

#[test]
fn a_user_with_a_code_device_and_a_key_can_use_either() {
    let (env, user, key, dev) = with_both(&[]);
    // At the console with the key plugged in: a touch, no code prompt.
    assert_touched_and_accepted(&at_console(&env, user.name(), &key).run());
    // The key unplugged: the code prompt, and a code works.
    key.knob("absent", true);
    let out = at_console(&env, user.name(), &key)
        .answer(&env.code(&dev.secret))
        .run();
    out.assert_success().assert_prompted(CODE_PROMPT, false);
    assert!(out.infos().is_empty());
    out.assert_logged(&["authenticated with device \"phone\""]);
    // fido2=off: codes only, even with the key plugged in.
    key.knob("absent", false);
    env.write_service(&["fido2=off"]);
    env.advance_steps(1);
    let out = at_console(&env, user.name(), &key)
        .answer(&env.code(&dev.secret))
        .run();
    out.assert_success().assert_prompted(CODE_PROMPT, false);
    assert!(out.infos().is_empty());
}

#[test]
fn remote_logins_fall_back_to_the_code() {
    let (env, user, key, dev) = with_both(&[]);
    for (rhost, ssh_env) in [
        (Some("192.0.2.7"), false),
        (Some("2001:db8::7"), false),
        (Some("client.example"), false),
        // `sudo` typed in an SSH session: no remote host, but SSH_CONNECTION is set.
        (None, true),
    ] {
        env.advance_steps(1);
        let mut run = at_console(&env, user.name(), &key);
        if let Some(h) = rhost {
            run = run.rhost(h);
        }
        if ssh_env {
            run = run.env("SSH_CONNECTION", "192.0.2.7 50000 192.0.2.1 22");
        }
        let out = run.answer(&env.code(&dev.secret)).run();
        out.assert_success().assert_prompted(CODE_PROMPT, false);
        assert!(out.infos().is_empty(), "{rhost:?}: asked for a touch");
    }
    // Loopback is this computer: a touch.
    for local in ["127.0.0.1", "::1", "localhost"] {
        assert_touched_and_accepted(&at_console(&env, user.name(), &key).rhost(local).run());
    }
}

#[test]
fn a_key_only_user_is_refused_remotely_and_without_the_key() {
    let (env, user, key) = with_key(&[]);
    assert_refused(
        &at_console(&env, user.name(), &key).rhost("192.0.2.7").run(),
        "not over a remote login",
        "the login is remote",
    );
    key.knob("absent", true);
    let out = at_console(&env, user.name(), &key).run();
    assert_refused(&out, "No security key found", "no security key plugged in");
    out.assert_not_prompted();
}

#[test]
fn fido2_require_never_falls_back_to_a_code() {
    let (env, user, key, dev) = with_both(&["fido2=require"]);
    // No key plugged in (the software key unplugged).
    key.knob("absent", true);
    let out = at_console(&env, user.name(), &key).run();
    assert_refused(&out, "No security key found", "no security key plugged in");
    out.assert_not_prompted();
    // No software key at all: the real USB transport finds no key on this machine, and
    // leaves no thread behind.
    let out = env
        .pam(user.name())
        .env_remove(SOFT_FIDO2_VAR)
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT")
        .run();
    assert_refused(&out, "No security key found", "no security key plugged in");
    assert_eq!(out.threads_after_end(), Some(1), "{}", out.stderr);
    // Remote: refused, no code prompt.
    key.knob("absent", false);
    let out = at_console(&env, user.name(), &key)
        .rhost("192.0.2.7")
        .answer(&env.code(&dev.secret))
        .run();
    assert_refused(&out, "not over a remote login", "the login is remote");
    out.assert_not_prompted();
    // A user with only a code device: refused without a prompt.
    let coder = TestUser::new();
    env.enroll(coder.name(), "phone");
    let out = at_console(&env, coder.name(), &key).run();
    assert_refused(
        &out,
        "has none registered",
        "has no security key registered",
    );
    out.assert_not_prompted();
    // And the key itself works.
    let out = at_console(&env, user.name(), &key).run();
    assert_touched_and_accepted(&out);
}

/// pam_mfa.so loads libpam_mfa_keys.so from the directory it was itself loaded from, and
/// only a file that root owns and only root can write. Without a usable library a key
/// login fails closed (a user with a code device is asked for a code instead), and logins
/// with codes do not need it at all.
#[test]
fn the_keys_library_is_found_next_to_the_module_and_checked() {
    use std::os::unix::fs::PermissionsExt;
    let (env, user, key, dev) = with_both(&[]);
    let key_only = TestUser::new();
    enroll_key(&env, key_only.name(), "solo", &key, &[]).assert_success();
    // The module alone, copied into a directory of its own.
    let dir = env.path("modules");
    std::fs::create_dir(&dir).unwrap();
    let module = dir.join("pam_mfa.so");
    std::fs::copy(pam_mfa_tests::paths::pam_module(), &module).unwrap();
    env.write_service_lines(&[format!(
        "auth required {} socket={}",
        module.display(),
        env.socket().display()
    )]);
    let library = dir.join("libpam_mfa_keys.so");
    let missing = format!("{}: No such file", library.display());
    let out = at_console(&env, key_only.name(), &key).run();
    out.assert_result(PamCode::AuthinfoUnavail)
        .assert_not_prompted();
    out.assert_logged(&["cannot use security keys", &missing, "refusing"]);
    out.assert_module_silent();
    // A user who also has a code device is asked for a code, and the error is logged.
    let out = at_console(&env, user.name(), &key)
        .answer(&env.code(&dev.secret))
        .run();
    out.assert_success().assert_prompted(CODE_PROMPT, false);
    out.assert_logged(&["cannot use security keys", &missing, "asking for a code"]);
    // A library others could have written is not loaded.
    std::fs::copy(pam_mfa_tests::paths::keys_library(), &library).unwrap();
    std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = at_console(&env, key_only.name(), &key).run();
    out.assert_result(PamCode::AuthinfoUnavail)
        .assert_not_prompted();
    out.assert_logged(&["cannot use security keys", "mode 0666", "not loading it"]);
    // A symbolic link to the real library is not followed.
    std::fs::remove_file(&library).unwrap();
    std::os::unix::fs::symlink(pam_mfa_tests::paths::keys_library(), &library).unwrap();
    let out = at_console(&env, key_only.name(), &key).run();
    out.assert_result(PamCode::AuthinfoUnavail)
        .assert_not_prompted();
    out.assert_logged(&[
        "cannot use security keys",
        "Too many levels of symbolic links",
    ]);
    std::fs::remove_file(&library).unwrap();
    // Nor is a good library in a directory others can write (they could swap it).
    std::fs::copy(pam_mfa_tests::paths::keys_library(), &library).unwrap();
    std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = at_console(&env, key_only.name(), &key).run();
    out.assert_result(PamCode::AuthinfoUnavail)
        .assert_not_prompted();
    out.assert_logged(&["is not a root-owned directory that only root can write"]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A library that is not pam_mfa's (no entry point of this interface version).
    std::fs::copy(pam_mfa_tests::paths::pam_module(), &library).unwrap();
    std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = at_console(&env, key_only.name(), &key).run();
    out.assert_result(PamCode::AuthinfoUnavail)
        .assert_not_prompted();
    out.assert_logged(&["pam_mfa_keys_assert_v2", "another version of pam_mfa"]);
    // Root's own copy, mode 0644: the touch works from here too.
    std::fs::copy(pam_mfa_tests::paths::keys_library(), &library).unwrap();
    assert_touched_and_accepted(&at_console(&env, key_only.name(), &key).run());
}

#[test]
fn module_arguments_are_strict() {
    let (env, user, key) = with_key(&["fido2=sometimes"]);
    let out = at_console(&env, user.name(), &key).run();
    out.assert_result(PamCode::ServiceErr);
    out.assert_logged(&["fido2"]);
    env.write_service(&["fido2_timeout=0"]);
    at_console(&env, user.name(), &key)
        .run()
        .assert_result(PamCode::ServiceErr);
}
