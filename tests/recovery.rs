//! Recovery codes and administrator-issued bypass codes at the real login prompt (issue 5,
//! "Recovery"), and the policy the module reads from the store.

use pam_mfa_tests::recovery::codes_in;
use pam_mfa_tests::{TestEnv, TestUser};

fn generate(env: &TestEnv, user: &str) -> Vec<String> {
    let out = env.mfa(&["--user", user, "recovery", "generate"]);
    out.assert_success();
    let codes = codes_in(&out.stdout);
    assert_eq!(codes.len(), 10, "{}", out.stdout);
    codes
}

#[test]
fn recovery_codes_work_once_each_and_a_new_set_replaces_the_old() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    env.enroll(user.name(), "phone");
    let codes = generate(&env, user.name());
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);

    // Only salted hashes are stored: no code appears in the store (the file, or the fleet
    // database's table as text, its bytes in hex).
    let stored = match env.fleet() {
        None => std::fs::read(env.db()).expect("read the store"),
        Some(fleet) => fleet
            .postgres()
            .psql(
                pam_mfa_tests::fleet::DB,
                "COPY pam_mfa_fleet.recovery_codes TO STDOUT",
            )
            .into_bytes(),
    };
    assert!(!stored.is_empty(), "the store holds the codes somewhere");
    for code in &codes {
        let plain = code.replace('-', "");
        let hex: String = plain.bytes().map(|b| format!("{b:02x}")).collect();
        for needle in [plain, hex] {
            assert!(
                !stored.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a recovery code is stored in the clear"
            );
        }
    }

    let out = env.login(user.name(), &codes[0]);
    out.assert_success();
    assert!(
        out.infos()
            .iter()
            .any(|i| i.contains("9 recovery codes left")),
        "{}",
        out.transcript()
    );
    out.assert_logged(&["recovery code", "9 left"]);
    assert_eq!(audit_actions(&env, user.name(), "recovery-login"), 1);
    assert_eq!(admin_entry(&env, user.name())["recovery_codes_left"], 9);
    // Used up.
    assert!(!env.login(user.name(), &codes[0]).succeeded());
    assert_eq!(audit_actions(&env, user.name(), "recovery-login"), 1);
    // Upper case, without dashes, is the same code.
    let typed = codes[1].replace('-', "").to_uppercase();
    env.login(user.name(), &typed).assert_success();

    // A new set: the old codes are gone, the new ones work.
    let fresh = generate(&env, user.name());
    assert!(!env.login(user.name(), &codes[2]).succeeded());
    env.login(user.name(), &fresh[0]).assert_success();
    // A made-up code in the same shape is refused (and counts no failure: 60 random bits
    // cannot be guessed).
    let out = env.login(user.name(), "abcd-efgh-jkmn");
    assert!(!out.succeeded());
    out.assert_logged(&["not a valid recovery or bypass code"]);
}

/// `user`'s entry in `mfa admin list --json`.
fn admin_entry(env: &TestEnv, user: &str) -> serde_json::Value {
    let out = env.mfa(&["admin", "list", "--json"]);
    out.assert_success();
    let serde_json::Value::Array(users) = out.json() else {
        panic!("admin list --json printed no array")
    };
    users
        .into_iter()
        .find(|u| u["user"] == user)
        .unwrap_or_else(|| panic!("{user} not in admin list: {}", out.stdout))
}

/// How many audit rows for `user` have `action`.
fn audit_actions(env: &TestEnv, user: &str, action: &str) -> usize {
    let out = env.mfa(&["admin", "audit", "--user", user, "--json"]);
    out.assert_success();
    let serde_json::Value::Array(rows) = out.json() else {
        panic!("audit --json printed no array")
    };
    rows.iter().filter(|r| r["action"] == action).count()
}

fn bypass(env: &TestEnv, user: &str, extra: &[&str]) -> String {
    let mut args = vec!["admin", "bypass", user];
    args.extend_from_slice(extra);
    let out = env.mfa(&args);
    out.assert_success();
    let codes = codes_in(&out.stdout);
    assert_eq!(codes.len(), 1, "{}", out.stdout);
    codes[0].clone()
}

#[test]
fn bypass_codes_have_their_uses_and_expire() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    env.enroll(user.name(), "lost-phone");

    let code = bypass(&env, user.name(), &["--uses", "2", "--expires", "10m"]);
    // The administrator sees the open way in (never the code itself).
    let mine = admin_entry(&env, user.name());
    assert_eq!(mine["bypass_codes"][0]["uses_left"], 2, "{mine}");
    assert_eq!(mine["bypass_codes"][0]["issued_by_uid"], 0, "{mine}");
    assert!(!mine.to_string().contains(&code.replace('-', "")));
    let out = env.login(user.name(), &code);
    out.assert_success();
    assert!(
        out.infos().iter().any(|i| i.contains("1 use left")),
        "{}",
        out.transcript()
    );
    out.assert_logged(&["bypass code"]);
    assert_eq!(
        admin_entry(&env, user.name())["bypass_codes"][0]["uses_left"],
        1
    );
    env.login(user.name(), &code).assert_success();
    assert!(!env.login(user.name(), &code).succeeded());
    assert_eq!(
        admin_entry(&env, user.name())["bypass_codes"],
        serde_json::json!([])
    );
    // Each login through a bypass code is in the audit trail.
    assert_eq!(audit_actions(&env, user.name(), "bypass-login"), 2);

    let code = bypass(&env, user.name(), &["--expires", "1m"]);
    env.advance_secs(61);
    assert!(!env.login(user.name(), &code).succeeded());
    // Expired: no longer listed as a way in.
    assert_eq!(
        admin_entry(&env, user.name())["bypass_codes"],
        serde_json::json!([])
    );

    // Nonsense durations are refused.
    for bad in ["0m", "8d", "soon", "-1h"] {
        let out = env.mfa(&["admin", "bypass", user.name(), "--expires", bad]);
        assert!(!out.stderr.is_empty() && out.stdout.is_empty(), "{bad}");
    }
}

#[test]
fn recovery_and_bypass_codes_get_a_locked_out_person_in() {
    // Issue 16, finding 1: the lock-out also refused recovery and bypass codes, so whoever
    // kept counting failures against an account kept its owner out with nothing to get
    // back in. Only short codes are held back now, and wrong long codes count nothing.
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["max_failures=2"]);
    let dev = env.enroll(user.name(), "phone");
    let codes = generate(&env, user.name());
    // Issued before the lock-out below (issuing one also lifts a lock-out).
    let code = bypass(&env, user.name(), &["--uses", "2"]);
    let lock = |env: &TestEnv| {
        env.advance_steps(1);
        for _ in 0..2 {
            let wrong = pam_mfa_tests::wrong_code(&dev.secret, env.now(), 1);
            assert!(!env.login(user.name(), &wrong).succeeded());
        }
        // Locked: the person is prompted and told what still works; a right short code
        // is refused without being checked.
        let out = env.login(user.name(), &env.code(&dev.secret));
        out.assert_locked_out();
        assert!(
            out.infos()
                .iter()
                .any(|i| i.contains("locked until") && i.contains("recovery code")),
            "{}",
            out.transcript()
        );
    };
    lock(&env);
    // A recovery code gets in. The codes stay locked: that success says nothing about
    // whoever was guessing them.
    env.login(user.name(), &codes[0]).assert_success();
    env.login(user.name(), &env.code(&dev.secret))
        .assert_locked_out();
    // The administrator's bypass code gets in too.
    env.login(user.name(), &code).assert_success();
    // Made-up recovery codes, however many, neither lengthen the lock nor count: once it
    // is over, the right code works.
    for _ in 0..6 {
        assert!(!env.login(user.name(), "abcd-efgh-jkmn").succeeded());
    }
    env.advance_secs(301);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
    for _ in 0..6 {
        assert!(!env.login(user.name(), "abcd-efgh-jkmn").succeeded());
    }
    env.advance_steps(1);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
    lock(&env);
    for _ in 0..6 {
        assert!(!env.login(user.name(), "abcd-efgh-jkmn").succeeded());
    }
    env.login(user.name(), &code).assert_success();

    // Locked again, then unlocked by the administrator: a fresh code works.
    lock(&env);
    env.mfa(&["admin", "unlock", user.name()]).assert_success();
    env.advance_steps(1);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();

    // Every administrative change left its audit row, as root.
    let out = env.mfa(&["admin", "audit", "--user", user.name(), "--json"]);
    out.assert_success();
    let serde_json::Value::Array(rows) = out.json() else {
        panic!("audit --json printed no array")
    };
    for action in ["recovery-generate", "bypass", "unlock", "activate"] {
        assert!(
            rows.iter()
                .any(|r| r["action"] == action && r["uid"] == 0 && r["user"] == user.name()),
            "no {action} row: {rows:?}"
        );
    }
    // The administrator's list shows the device, never a secret.
    let out = env.mfa(&["admin", "list", "--json"]);
    out.assert_success();
    assert!(out.stdout.contains(user.name()) && out.stdout.contains("\"phone\""));
    assert!(
        !out.stdout.contains(&dev.secret),
        "admin list shows a secret"
    );
}

#[test]
fn the_policy_sets_window_no_device_and_device_limits_and_arguments_override() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let newcomer = TestUser::new();
    env.write_service(&[]);
    let dev = env.enroll(user.name(), "phone");

    // window=0 from the policy: a code of the next step is refused...
    env.set_policy("window", "0");
    let next = env.distinct_code_at_step(&dev.secret, 1, 1);
    assert!(!env.login(user.name(), &next).succeeded());
    // ...unless the service file says window=1.
    env.write_service(&["window=1"]);
    env.login(user.name(), &next).assert_success();

    // no_device=allow lets a user without devices through; the default refuses.
    env.write_service(&[]);
    assert!(!env.login(newcomer.name(), "123456").succeeded());
    env.set_policy("no_device", "allow");
    env.write_service_observing_ignore(&[]);
    let out = env.pam(newcomer.name()).run();
    out.assert_ignored();
    out.assert_logged(&["policy no_device=allow"]);

    // max_devices=1: a second device cannot be activated.
    env.set_policy("max_devices", "1");
    let out = env.mfa(&["--user", user.name(), "enroll", "totp", "tablet", "--begin"]);
    assert!(
        out.stderr.contains("1 active devices, the most allowed"),
        "{}",
        out.stderr
    );

    let p = env.policy_json();
    assert_eq!(p["window"], 0);
    assert_eq!(p["no_device"], "allow");
    assert_eq!(p["max_devices"], 1);
    assert_eq!(p["self_service"], "allow");
    // Typos are refused, not defaulted.
    for (k, v) in [
        ("windw", "1"),
        ("max_devices", "9"),
        ("no_device", "nullok"),
    ] {
        let out = env.mfa(&["admin", "policy", "set", k, v]);
        assert!(
            out.stderr.contains("invalid policy setting"),
            "{k}={v}: {}",
            out.stderr
        );
    }
}

/// The user's message texts from the client's live stdout, unescaped (see pam-client).
fn messages_so_far(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, t)| t))
        .map(|t| t.replace("\\n", "\n").replace("\\\\", "\\"))
        .collect()
}

#[test]
fn no_device_enroll_registers_a_device_during_the_login() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["enroll_at_login"]);
    env.set_policy("no_device", "enroll");

    let mut run = env
        .pam(user.name())
        .answer("phone")
        .answer("secret")
        .spawn_interactive();
    assert!(
        run.wait_for("the secret key", |out, _| out.contains("Secret key: ")),
        "{}",
        run.stdout()
    );
    let messages = messages_so_far(&run.stdout());
    let secret: String = messages
        .iter()
        .find_map(|m| m.strip_prefix("Secret key: "))
        .and_then(|m| m.lines().next())
        .expect("the secret line")
        .replace(' ', "");
    // The QR code came first, as text lines, and holds the same secret.
    let qr = messages
        .iter()
        .find(|m| m.starts_with("Scan this QR code"))
        .expect("the QR message");
    let scratch = tempfile::tempdir().expect("scratch directory");
    let uri = pam_mfa_tests::decode_terminal_qr(qr, scratch.path()).expect("the QR decodes");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");

    let (c1, c2) = (env.code_at_step(&secret, -1), env.code(&secret));
    run.write_stdin(format!("{c1}\n{c2}\n").as_bytes());
    run.close_stdin();
    let out = pam_mfa_tests::PamOutcome::from_finished(run.wait());
    out.assert_success();
    out.assert_logged(&["registered device \"phone\" at login"]);
    let prompts: Vec<&str> = out.prompts().iter().map(|p| p.text.as_str()).collect();
    assert_eq!(prompts.len(), 4, "{prompts:?}");
    assert!(env.listed(user.name(), "phone").is_some());

    // From now on the device is asked for, like any other.
    env.advance_steps(1);
    env.login(user.name(), &env.code(&secret)).assert_success();
    // An audit row records the registration.
    let out = env.mfa(&["admin", "audit", "--user", user.name(), "--json"]);
    out.assert_success();
    assert!(out.stdout.contains("\"activate\""), "{}", out.stdout);
}

#[test]
fn no_device_enroll_with_wrong_codes_registers_nothing_and_refuses() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["enroll_at_login"]);
    env.set_policy("no_device", "enroll");
    let out = env
        .pam(user.name())
        .answer("phone")
        .answer("")
        .answer("000000")
        .answer("111111")
        .run();
    assert!(!out.succeeded(), "{}", out.transcript());
    out.assert_logged(&["registration at login failed"]);
    assert_eq!(
        env.names_in_state(user.name(), "active"),
        Vec::<String>::new()
    );
}

#[test]
fn a_new_set_that_could_not_be_shown_does_not_replace_the_old_one() {
    // Issue 16, finding 9: `mfa recovery generate` stored the new set before printing it,
    // so with its output lost the old codes stopped working and nobody saw the new ones.
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    env.enroll(user.name(), "phone");
    let old = generate(&env, user.name());
    env.login(user.name(), &old[0]).assert_success();
    assert_eq!(admin_entry(&env, user.name())["recovery_codes_left"], 9);

    // stdout closed (the runtime puts /dev/null in its place) and stdout a full device.
    for (i, redirect) in [">&-", ">/dev/full"].into_iter().enumerate() {
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("exec \"$0\" \"$@\" {redirect}"))
            .arg(pam_mfa_tests::mfa_bin())
            .arg("--db")
            .arg(env.db())
            .args(["--user", user.name(), "recovery", "generate"]);
        let out = pam_mfa_tests::process::run(cmd, format!("recovery generate {redirect}"), vec![]);
        assert_eq!(out.status.code(), Some(1), "{redirect}: {out:?}");
        assert!(
            out.stderr.starts_with("mfa: ") && out.stderr.contains("earlier codes still work"),
            "{redirect}: {}",
            out.stderr
        );
        // The old set is untouched: as many left as before, and the next one logs in.
        assert_eq!(
            admin_entry(&env, user.name())["recovery_codes_left"],
            9 - i,
            "{redirect}"
        );
        env.login(user.name(), &old[1 + i]).assert_success();
    }
    assert_eq!(audit_actions(&env, user.name(), "recovery-generate"), 1);
}
