//! The `mfa` command as a script or an administrator uses it: enrollment in two steps and
//! interactively, the two-code rule, QR codes, the device limit, rename / remove / list,
//! and the store it creates. Codes come from `oathtool`, QR codes are read by `zbarimg`.
//!
//! `scripts/test.sh` runs this suite on both backends (see tests/pam_login.rs); the tests
//! of the store file itself always run on a local store.

use pam_mfa_tests::PamCode;
use pam_mfa_tests::backend::Backend;
use pam_mfa_tests::{
    OtpauthUri, TestEnv, TestUser, TotpParams, decode_qr_image, mode_of, totp_with,
    wait_for_terminal_qr, wrong_code,
};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

/// Base32 as `mfa` must print secrets: upper-case RFC 4648 alphabet, no padding.
fn is_base32(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// `s` without any whitespace (secrets may be printed in groups).
fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The host name, the default issuer.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

fn state_of(env: &TestEnv, user: &str, name: &str) -> Option<String> {
    env.listed(user, name)
        .and_then(|d| d.get("state").and_then(Value::as_str).map(str::to_owned))
}

// ----- --begin / finish -----

#[test]
fn begin_json_describes_a_pending_device() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    let j = &dev.json;
    assert_eq!(j["user"], user.name(), "{j}");
    assert_eq!(j["name"], "phone", "{j}");
    assert_eq!(j["algorithm"], "SHA1", "{j}");
    assert_eq!(j["digits"], 6, "{j}");
    assert_eq!(j["period"], 30, "{j}");
    // 160 random bits are 32 base32 characters.
    assert!(is_base32(&dev.secret) && dev.secret.len() == 32, "{j}");
    let expires = j["expires_at"].as_i64().unwrap_or_else(|| panic!("{j}"));
    assert!(
        (env.now() + 590..=env.now() + 610).contains(&expires),
        "pending devices expire after 10 minutes: {j} at {}",
        env.now()
    );

    let uri = dev.parsed_uri();
    let issuer = host_name();
    assert_eq!(uri.kind, "totp", "{}", dev.uri);
    assert_eq!(
        uri.label,
        format!("{issuer}:{}", user.name()),
        "{}",
        dev.uri
    );
    assert_eq!(
        uri.param("secret"),
        Some(dev.secret.as_str()),
        "{}",
        dev.uri
    );
    assert_eq!(uri.param("issuer"), Some(issuer.as_str()), "{}", dev.uri);
    // The label's parts as fields of their own (issue 20, 5): no URI parsing in scripts.
    assert_eq!(j["issuer"], issuer.as_str(), "{j}");
    assert_eq!(j["account"], user.name(), "{j}");
    assert_eq!(uri.param("algorithm"), Some("SHA1"), "{}", dev.uri);
    assert_eq!(uri.param("digits"), Some("6"), "{}", dev.uri);
    assert_eq!(uri.param("period"), Some("30"), "{}", dev.uri);

    let listed = env.listed(user.name(), "phone").expect("listed");
    assert_eq!(listed["state"], "pending", "{listed}");
    assert_eq!(listed["kind"], "totp", "{listed}");
}

#[test]
fn issuer_option_is_percent_encoded_in_the_uri() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &["--issuer", "Acme Corp"]);
    assert!(
        !dev.uri.contains(' '),
        "a URI has no raw spaces: {}",
        dev.uri
    );
    let uri = dev.parsed_uri();
    assert_eq!(
        uri.label,
        format!("Acme Corp:{}", user.name()),
        "{}",
        dev.uri
    );
    assert_eq!(uri.param("issuer"), Some("Acme Corp"), "{}", dev.uri);
    assert_eq!(dev.json["issuer"], "Acme Corp", "{}", dev.json);
    assert_eq!(dev.json["account"], user.name(), "{}", dev.json);
}

#[test]
fn every_device_gets_its_own_secret() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let a = env.begin(user.name(), "a", &[]);
    let b = env.begin(user.name(), "b", &[]);
    assert_ne!(a.secret, b.secret);
}

#[test]
fn two_step_enrollment_activates_the_device() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("pending")
    );
    let c1 = env.code_at_step(&dev.secret, -1);
    let c2 = env.code(&dev.secret);
    env.finish(user.name(), "phone", &c1, &c2).assert_success();
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("active")
    );
}

#[test]
fn codes_from_ten_steps_back_to_one_step_ahead_are_accepted() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let old = env.begin(user.name(), "old", &[]);
    let ahead = env.begin(user.name(), "ahead", &[]);
    env.finish(
        user.name(),
        "old",
        &env.code_at_step(&old.secret, -10),
        &env.code_at_step(&old.secret, -9),
    )
    .assert_success();
    env.finish(
        user.name(),
        "ahead",
        &env.code_at_step(&ahead.secret, 1),
        &env.code_at_step(&ahead.secret, 2),
    )
    .assert_success();
    assert_eq!(env.names_in_state(user.name(), "active").len(), 2);
}

#[test]
fn codes_outside_that_range_are_refused() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    env.ensure_distinct_codes(&dev.secret, -20..=6);
    let pair = |t: i64| {
        (
            env.code_at_step(&dev.secret, t),
            env.code_at_step(&dev.secret, t + 1),
        )
    };
    for t in [-11, -20, 2, 5] {
        let (c1, c2) = pair(t);
        let out = env.finish(user.name(), "phone", &c1, &c2);
        assert_eq!(out.code, Some(1), "codes of steps {t}, {}: {out:?}", t + 1);
    }
    // Nothing changed: the right codes still finish the enrollment.
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("pending")
    );
    let (c1, c2) = pair(-1);
    env.finish(user.name(), "phone", &c1, &c2).assert_success();
}

#[test]
fn stale_codes_are_refused() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    env.finish(
        user.name(),
        "phone",
        &env.code_at_step(&dev.secret, -20),
        &env.code_at_step(&dev.secret, -19),
    )
    .assert_error(&[]);
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("pending")
    );
}

#[test]
fn non_consecutive_codes_are_refused() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    // Steps t and t+2 (t = now-1), with no step in between sharing a code with either.
    env.ensure_distinct_codes(&dev.secret, -1..=1);
    let c1 = env.code_at_step(&dev.secret, -1);
    let c3 = env.code_at_step(&dev.secret, 1);
    env.finish(user.name(), "phone", &c1, &c3)
        .assert_error(&["consecutive"]);
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("pending")
    );
}

#[test]
fn a_wrong_first_code_is_named() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    let wrong = wrong_code(&dev.secret, env.now(), 12);
    env.finish(user.name(), "phone", &wrong, &env.code(&dev.secret))
        .assert_error(&["first code"]);
}

#[test]
fn a_wrong_second_code_is_named() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    let wrong = wrong_code(&dev.secret, env.now(), 12);
    env.finish(
        user.name(),
        "phone",
        &env.code_at_step(&dev.secret, -1),
        &wrong,
    )
    .assert_error(&["second code"]);
}

#[test]
fn codes_with_spaces_are_accepted() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    let spaced = |c: String| format!("{} {}", &c[..3], &c[3..]);
    env.finish(
        user.name(),
        "phone",
        &spaced(env.code_at_step(&dev.secret, -1)),
        &spaced(env.code(&dev.secret)),
    )
    .assert_success();
}

#[test]
fn codes_that_are_not_digits_are_refused() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    let good = env.code(&dev.secret);
    for bad in ["12a456", "abcdef", "12345", "1234567", ""] {
        let out = env.finish(user.name(), "phone", bad, &good);
        assert!(
            matches!(out.code, Some(1 | 2)) && !out.stderr.trim().is_empty(),
            "code {bad:?} should be refused with a message: {out:?}"
        );
    }
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("pending")
    );
}

#[test]
fn finish_for_an_unknown_name_fails() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.begin(user.name(), "phone", &[]);
    env.finish(user.name(), "tablet", "123456", "234567")
        .assert_error(&[]);
}

#[test]
fn a_pending_device_expires_after_ten_minutes() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let early = env.begin(user.name(), "early", &[]);
    let late = env.begin(user.name(), "late", &[]);
    env.advance_secs(9 * 60);
    env.finish(
        user.name(),
        "early",
        &env.code_at_step(&early.secret, -1),
        &env.code(&early.secret),
    )
    .assert_success();
    env.advance_secs(2 * 60);
    env.finish(
        user.name(),
        "late",
        &env.code_at_step(&late.secret, -1),
        &env.code(&late.secret),
    )
    .assert_error(&[]);
    assert_eq!(env.names_in_state(user.name(), "active"), ["early"]);
}

// ----- QR codes -----

#[test]
fn qr_png_decodes_to_the_uri() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let png = env.path("phone.png");
    let dev = env.begin(user.name(), "phone", &["--qr-png", png.to_str().unwrap()]);
    assert_eq!(decode_qr_image(&png, env.root()).unwrap(), dev.uri);
    assert_eq!(mode_of(&png), 0o600, "the QR code holds the secret");
}

#[test]
fn qr_svg_decodes_to_the_uri() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let svg = env.path("phone.svg");
    let dev = env.begin(user.name(), "phone", &["--qr-svg", svg.to_str().unwrap()]);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let decoded = decode_qr_image(&svg, env.root()).unwrap_or_else(|e| {
        panic!(
            "{e}\n(zbarimg reads SVG through ImageMagick's SVG coder: libmagickcore-6.q16-6-extra)"
        )
    });
    assert_eq!(decoded, dev.uri);
    assert_eq!(mode_of(&svg), 0o600, "the QR code holds the secret");
}

#[test]
fn qr_png_does_not_overwrite_without_force() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let png = env.path("existing.png");
    std::fs::write(&png, "keep me").unwrap();
    let out = env.mfa(&[
        "--user",
        user.name(),
        "enroll",
        "totp",
        "phone",
        "--begin",
        "--json",
        "--qr-png",
        png.to_str().unwrap(),
    ]);
    out.assert_error(&[]);
    assert_eq!(std::fs::read_to_string(&png).unwrap(), "keep me");

    let dev = env.begin(
        user.name(),
        "tablet",
        &["--qr-png", png.to_str().unwrap(), "--force"],
    );
    assert_eq!(decode_qr_image(&png, env.root()).unwrap(), dev.uri);
}

#[test]
fn qr_png_never_follows_a_symlink() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let victim = env.path("victim");
    let link = env.path("link.png");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let args = |name: &'static str, force: bool| {
        let mut a = vec![
            "--user".to_owned(),
            user.name().to_owned(),
            "enroll".into(),
            "totp".into(),
            name.into(),
            "--begin".into(),
            "--json".into(),
            "--qr-png".into(),
            link.to_str().unwrap().to_owned(),
        ];
        if force {
            a.push("--force".into());
        }
        a
    };
    let run = |a: Vec<String>| env.mfa(&a.iter().map(String::as_str).collect::<Vec<_>>());
    // A dangling link is an existing file name: refused without --force.
    run(args("a", false)).assert_error(&[]);
    assert!(!victim.exists(), "the link was followed");
    // With --force the link may be replaced or refused, but never written through.
    let _ = run(args("b", true));
    assert!(!victim.exists(), "the link was followed");

    std::fs::write(&victim, "keep me").unwrap();
    let _ = run(args("c", true));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn the_uri_imports_into_oathtool_and_its_codes_log_in() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.begin(user.name(), "phone", &[]);
    // Take everything from the URI, as an authenticator app scanning the QR code would.
    let uri = OtpauthUri::parse(&dev.uri).unwrap();
    let secret = uri.param("secret").unwrap().to_owned();
    let params = TotpParams {
        digits: uri.param("digits").unwrap().parse().unwrap(),
        algorithm: match uri.param("algorithm").unwrap() {
            "SHA1" => "SHA1",
            "SHA256" => "SHA256",
            "SHA512" => "SHA512",
            other => panic!("unknown algorithm {other}"),
        },
        period: uri.param("period").unwrap().parse().unwrap(),
    };
    let code = |at: i64| totp_with(&secret, at, params);
    env.finish(
        user.name(),
        "phone",
        &code(env.now() - 30),
        &code(env.now()),
    )
    .assert_success();
    env.advance_steps(1);
    env.login(user.name(), &code(env.now())).assert_success();
}

// ----- interactive enrollment -----

/// Runs `mfa enroll totp phone EXTRA…` interactively: reads the QR code it prints,
/// answers with the two codes for its secret, and returns the run and the secret.
fn interactive_enroll(
    env: &TestEnv,
    user: &TestUser,
    extra: &[&str],
) -> (pam_mfa_tests::MfaOutput, String) {
    let mut args = vec!["--user", user.name(), "enroll", "totp", "phone"];
    args.extend_from_slice(extra);
    let mut child = env.spawn_mfa(&args);
    let uri = wait_for_terminal_qr(&mut child, env.root()).unwrap_or_else(|| {
        panic!(
            "no readable QR code on stdout\nstdout:\n{}\nstderr:\n{}",
            child.stdout(),
            child.stderr()
        )
    });
    let secret = OtpauthUri::parse(&uri)
        .unwrap()
        .param("secret")
        .expect("the URI has a secret")
        .to_owned();
    let c1 = env.code_at_step(&secret, -1);
    let c2 = env.code(&secret);
    child.write_stdin(format!("{c1}\n{c2}\n").as_bytes());
    let out =
        pam_mfa_tests::MfaOutput::from_finished("mfa enroll totp (interactive)", child.wait());
    (out, secret)
}

#[test]
fn interactive_enrollment_shows_a_qr_code_and_never_the_secret() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let (out, secret) = interactive_enroll(&env, &user, &[]);
    out.assert_success();
    assert!(
        out.stdout.contains(['▀', '▄', '█']),
        "the QR code is drawn with half blocks\n{out:?}"
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !squeeze(text).contains(&secret) && !squeeze(text).contains(&secret.to_lowercase()),
            "the secret was printed without --show-secret\n{out:?}"
        );
    }
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("active")
    );
}

#[test]
fn interactive_enrollment_with_show_secret_prints_it() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let (out, secret) = interactive_enroll(&env, &user, &["--show-secret"]);
    out.assert_success();
    assert!(
        squeeze(&out.stdout).contains(&secret),
        "--show-secret did not print the secret {secret}\n{out:?}"
    );
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("active")
    );
}

#[test]
fn interactive_enrollment_with_wrong_codes_does_not_activate() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let mut child = env.spawn_mfa(&["--user", user.name(), "enroll", "totp", "phone"]);
    let uri = wait_for_terminal_qr(&mut child, env.root()).expect("a QR code");
    let secret = OtpauthUri::parse(&uri)
        .unwrap()
        .param("secret")
        .unwrap()
        .to_owned();
    let wrong = wrong_code(&secret, env.now(), 12);
    child.write_stdin(format!("{wrong}\n{wrong}\n").as_bytes());
    let out =
        pam_mfa_tests::MfaOutput::from_finished("mfa enroll totp (interactive)", child.wait());
    out.assert_failure();
    assert_ne!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("active")
    );
}

// ----- the device limit and names -----

#[test]
fn a_ninth_device_is_refused() {
    let env = TestEnv::new();
    let user = TestUser::new();
    for i in 0..8 {
        env.enroll(user.name(), &format!("dev{i}"));
    }
    let begin = env.mfa(&[
        "--user",
        user.name(),
        "enroll",
        "totp",
        "dev8",
        "--begin",
        "--json",
    ]);
    // Refusing already at --begin is fine; if the device was begun, finishing must fail.
    if begin.code == Some(0) {
        let dev = pam_mfa_tests::Enrolled::from_begin_json(begin.json());
        env.finish(
            user.name(),
            "dev8",
            &env.code_at_step(&dev.secret, -1),
            &env.code(&dev.secret),
        )
        .assert_error(&[]);
    } else {
        begin.assert_error(&[]);
    }
    let active = env.names_in_state(user.name(), "active");
    assert_eq!(active.len(), 8, "{active:?}");
    assert!(!active.contains(&"dev8".to_owned()));

    // Removing one makes room again.
    env.mfa(&["--user", user.name(), "remove", "dev0", "--yes"])
        .assert_success();
    env.enroll(user.name(), "dev9");
    assert_eq!(env.names_in_state(user.name(), "active").len(), 8);
}

#[test]
fn a_duplicate_name_is_refused_but_other_users_may_use_it() {
    let env = TestEnv::new();
    let alice = TestUser::new();
    let bob = TestUser::new();
    let first = env.enroll(alice.name(), "phone");
    env.mfa(&[
        "--user",
        alice.name(),
        "enroll",
        "totp",
        "phone",
        "--begin",
        "--json",
    ])
    .assert_error(&[]);
    let listed = env.list(alice.name());
    assert_eq!(listed.len(), 1, "{listed:?}");
    // The refused attempt did not replace the device's secret: its codes still work.
    env.write_service(&[]);
    env.advance_steps(1);
    env.login(alice.name(), &env.code(&first.secret))
        .assert_success();

    env.enroll(bob.name(), "phone");
    assert_eq!(env.names_in_state(bob.name(), "active"), ["phone"]);
}

#[test]
fn names_must_be_1_to_64_printable_characters() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let longest = "n".repeat(64);
    env.begin(user.name(), &longest, &[]);
    for bad in [
        String::new(),
        "n".repeat(65),
        "bell\u{7}".into(),
        "new\nline".into(),
    ] {
        let out = env.mfa(&[
            "--user",
            user.name(),
            "enroll",
            "totp",
            &bad,
            "--begin",
            "--json",
        ]);
        assert!(
            matches!(out.code, Some(1 | 2)),
            "name {bad:?} should be refused: {out:?}"
        );
    }
    assert_eq!(env.list(user.name()).len(), 1);
}

/// The six characters the review of issue 16 named: they render as nothing or as blank
/// space, so "pho\u{34F}ne" looked like "phone" in `mfa list`.
const INVISIBLE: [char; 6] = [
    '\u{3164}',
    '\u{115F}',
    '\u{2800}',
    '\u{034F}',
    '\u{180B}',
    '\u{E0100}',
];

// Issue 16, finding 6: every way a device gets a name (`enroll totp`, `enroll token`,
// `rename`) refuses a name with an invisible or blank character, naming the code point
// (never printing it), and stores nothing.
#[test]
fn invisible_and_blank_characters_are_refused_in_device_names() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let u = user.name();
    env.enroll(u, "phone");
    for c in INVISIBLE {
        let hex = format!("U+{:04X}", u32::from(c));
        for name in [format!("pho{c}ne"), format!("{c}"), format!("phone{c}")] {
            for args in [
                vec!["--user", u, "enroll", "totp", &name, "--begin", "--json"],
                vec![
                    "--user", u, "enroll", "token", &name, "T-1", "123456", "234567",
                ],
                vec!["--user", u, "rename", "phone", &name],
            ] {
                let out = env.mfa(&args);
                out.assert_error(&["invalid device name", &hex]);
                assert!(!out.stderr.contains(c), "{out:?}");
            }
        }
    }
    let names: Vec<Value> = env.list(u).iter().map(|d| d["name"].clone()).collect();
    assert_eq!(names, ["phone"]);
    // Ordinary names in any script stay valid.
    for ok in ["téléphone", "電話", "📱 phone"] {
        env.begin(u, ok, &[]);
    }
}

// Issue 16, finding 6: a device named before such names were refused can still be
// found by that name, to rename it to one that can be seen (or to remove it).
#[test]
fn a_device_named_invisibly_before_can_be_renamed_and_removed() {
    // A row written into the local store by hand, as an older version could have.
    let env = TestEnv::with_backend(Backend::Local);
    let user = TestUser::new();
    let u = user.name();
    env.enroll(u, "phone");
    env.enroll(u, "tablet");
    let old = "pho\u{34F}ne";
    let db = rusqlite::Connection::open(env.db()).expect("open the store");
    db.execute(
        "UPDATE devices SET name = ?1 WHERE user = ?2 AND name = 'phone'",
        [old, u],
    )
    .expect("name a device the old way");
    db.execute(
        "UPDATE devices SET name = ?1 WHERE user = ?2 AND name = 'tablet'",
        ["\u{3164}", u],
    )
    .expect("name a device the old way");
    drop(db);
    env.mfa(&["--user", u, "rename", old, "phone"])
        .assert_success();
    env.mfa(&["--user", u, "remove", "\u{3164}", "--yes"])
        .assert_success();
    assert_eq!(env.names_in_state(u, "active"), ["phone"]);
}

#[test]
fn rename_a_device() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.enroll(user.name(), "phone");
    env.enroll(user.name(), "watch");
    env.mfa(&["--user", user.name(), "rename", "phone", "tablet"])
        .assert_success();
    let mut active = env.names_in_state(user.name(), "active");
    active.sort();
    assert_eq!(active, ["tablet", "watch"]);
    // Same device, same secret.
    env.advance_steps(1);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();

    env.mfa(&["--user", user.name(), "rename", "tablet", "watch"])
        .assert_error(&[]);
    env.mfa(&["--user", user.name(), "rename", "nosuch", "other"])
        .assert_error(&[]);
    let out = env.mfa(&["--user", user.name(), "rename", "tablet", &"n".repeat(65)]);
    assert!(matches!(out.code, Some(1 | 2)), "{out:?}");
    let mut active = env.names_in_state(user.name(), "active");
    active.sort();
    assert_eq!(active, ["tablet", "watch"]);
}

#[test]
fn remove_a_device() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.enroll(user.name(), "phone");
    env.enroll(user.name(), "tablet");
    env.mfa(&["--user", user.name(), "remove", "phone", "--yes"])
        .assert_success();
    assert_eq!(env.names_in_state(user.name(), "active"), ["tablet"]);
    env.mfa(&["--user", user.name(), "remove", "phone", "--yes"])
        .assert_error(&[]);
}

#[test]
fn remove_without_yes_is_refused_when_stdin_is_not_a_terminal() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.enroll(user.name(), "phone");
    for input in ["", "y\n", "yes\n"] {
        let out = env
            .mfa_cmd(&["--user", user.name(), "remove", "phone"])
            .stdin(input)
            .run();
        out.assert_failure();
    }
    assert_eq!(env.names_in_state(user.name(), "active"), ["phone"]);
}

#[test]
fn list_shows_devices_but_never_a_secret() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let phone = env.enroll(user.name(), "phone");
    let tablet = env.begin(user.name(), "tablet", &[]);
    let created = env.now();

    let plain = env.mfa(&["--user", user.name(), "list"]);
    plain.assert_success();
    for word in ["phone", "tablet", "totp", "active", "pending"] {
        assert!(plain.stdout.contains(word), "{word} missing\n{plain:?}");
    }

    let json = env.mfa(&["--user", user.name(), "list", "--json"]);
    json.assert_success();
    for text in [&plain.stdout, &json.stdout] {
        for secret in [&phone.secret, &tablet.secret] {
            assert!(
                !squeeze(text).contains(secret.as_str()),
                "secret listed\n{text}"
            );
        }
    }
    let items = env.list(user.name());
    assert_eq!(items.len(), 2, "{items:?}");
    for item in &items {
        let obj = item.as_object().unwrap_or_else(|| panic!("{item}"));
        for key in ["name", "kind", "state", "created", "last_used"] {
            assert!(obj.contains_key(key), "{key} missing in {item}");
        }
        assert!(!obj.contains_key("secret"), "{item}");
        assert_eq!(item["kind"], "totp");
        let c = item["created"].as_i64().unwrap_or_else(|| panic!("{item}"));
        assert!(
            (created..created + 10).contains(&c),
            "created {c}, expected ~{created}"
        );
        assert!(
            item["last_used"].is_null() || item["last_used"].is_i64(),
            "{item}"
        );
    }
}

#[test]
fn list_of_a_user_without_devices_is_empty() {
    let env = TestEnv::new();
    let user = TestUser::new();
    assert!(env.list(user.name()).is_empty());
}

#[test]
fn last_used_records_a_login() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(3);
    let login_time = env.now();
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
    env.advance_steps(1);
    let item = env.listed(user.name(), "phone").unwrap();
    let used = item["last_used"]
        .as_i64()
        .unwrap_or_else(|| panic!("{item}"));
    assert!(
        (login_time..login_time + 10).contains(&used),
        "last_used {used}, login at {login_time}"
    );
}

// ----- resync errors -----

#[test]
fn resync_refuses_bad_codes_and_unknown_devices() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    let at = |steps: i64| env.code_at_step(&dev.secret, steps);
    let resync =
        |name: &str, c1: &str, c2: &str| env.mfa(&["--user", user.name(), "resync", name, c1, c2]);
    // Not consecutive (a step in between).
    env.ensure_distinct_codes(&dev.secret, 40..=42);
    resync("phone", &at(40), &at(42)).assert_error(&[]);
    // Beyond the ±1,500 steps searched.
    resync("phone", &at(1600), &at(1601)).assert_error(&[]);
    resync("tablet", &at(40), &at(41)).assert_error(&[]);
    resync("phone", "12a456", &at(41)).assert_failure();
}

/// The audit row of a resync gives the device's offset in seconds, the figure `mfa resync`
/// printed (the store keeps it in time steps).
#[test]
fn a_resyncs_audit_row_gives_the_offset_in_seconds() {
    // The local store's audit: `mfa admin audit` does not show a fleet account's rows.
    let env = TestEnv::with_backend(Backend::Local);
    let user = TestUser::new();
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    // The device's clock 20 steps (600 s) ahead.
    let (c1, c2) = (
        env.code_at_step(&dev.secret, 19),
        env.code_at_step(&dev.secret, 20),
    );
    let out = env.mfa(&["--user", user.name(), "resync", "phone", &c1, &c2]);
    out.assert_success();
    assert!(
        out.stdout.contains("its clock is 600 seconds ahead"),
        "{}",
        out.stdout
    );
    assert_eq!(
        env.audit_details("resync"),
        [Some("drift 600 s".to_owned())]
    );
}

// ----- the store and the accounts -----

#[test]
fn the_store_is_created_private_even_with_a_permissive_umask() {
    let env = TestEnv::new();
    let user = TestUser::new();
    // A store directory that does not exist yet: mfa creates both.
    let dir = env.path("newstore");
    let db = dir.join("devices.db");
    let out = env
        .mfa_cmd(&[
            "--user",
            user.name(),
            "enroll",
            "totp",
            "phone",
            "--begin",
            "--json",
        ])
        .db(&db)
        .umask(0)
        .run();
    out.assert_success();
    assert_eq!(mode_of(&dir), 0o700, "store directory");
    assert_eq!(mode_of(&db), 0o600, "store file");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            mode_of(&path) & 0o077,
            0,
            "{} is open to group/other",
            path.display()
        );
    }
}

#[test]
fn the_store_file_is_private_in_an_existing_directory() {
    // The local store file itself.
    let env = TestEnv::with_backend(Backend::Local);
    let user = TestUser::new();
    env.mfa_cmd(&["--user", user.name(), "list"])
        .umask(0)
        .run()
        .assert_success();
    env.mfa_cmd(&[
        "--user",
        user.name(),
        "enroll",
        "totp",
        "phone",
        "--begin",
        "--json",
    ])
    .umask(0)
    .run()
    .assert_success();
    assert!(env.db().exists());
    assert_eq!(mode_of(env.db()), 0o600);
    assert_eq!(mode_of(env.store()), 0o700);
}

#[test]
fn an_unsafe_store_is_refused_and_left_alone() {
    // The local store file itself.
    let env = TestEnv::with_backend(Backend::Local);
    let user = TestUser::new();
    env.enroll(user.name(), "phone");
    let chmod = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    chmod(env.db(), 0o640);
    env.mfa(&["--user", user.name(), "list"]).assert_error(&[]);
    assert_eq!(
        mode_of(env.db()),
        0o640,
        "mfa must refuse, not silently fix"
    );
    chmod(env.db(), 0o600);
    chmod(env.store(), 0o755);
    env.mfa(&["--user", user.name(), "list"]).assert_error(&[]);
    chmod(env.store(), 0o700);
    std::os::unix::fs::chown(env.db(), Some(user.uid()), None).unwrap();
    env.mfa(&["--user", user.name(), "list"]).assert_error(&[]);
    std::os::unix::fs::chown(env.db(), Some(0), None).unwrap();
    assert_eq!(env.names_in_state(user.name(), "active"), ["phone"]);
}

#[test]
fn a_store_that_is_not_a_database_is_refused() {
    // The local store file itself.
    let env = TestEnv::with_backend(Backend::Local);
    let user = TestUser::new();
    std::fs::write(env.db(), "not a database at all, just text\n".repeat(200)).unwrap();
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o600)).unwrap();
    env.mfa(&["--user", user.name(), "list"]).assert_error(&[]);
}

#[test]
fn an_unknown_user_is_refused() {
    let env = TestEnv::new();
    env.mfa(&["--user", "mfat-no-such-user", "list"])
        .assert_error(&[]);
    env.mfa(&[
        "--user",
        "mfat-no-such-user",
        "enroll",
        "totp",
        "phone",
        "--begin",
        "--json",
    ])
    .assert_error(&[]);
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.mfa(&["--user", user.name(), "frobnicate"])
        .assert_exit(2);
    env.mfa(&["--user", user.name(), "enroll", "finish", "phone", "123456"])
        .assert_exit(2);
    env.mfa(&["--user", user.name(), "list", "--bogus"])
        .assert_exit(2);
}

// ----- bounds on the store's growth -----

// Issue 16, finding 3: pending registrations were unlimited (500 `--begin`s added 205 KB).
// Root is held to the cap too.
#[test]
fn at_most_three_unfinished_registrations_until_one_is_finished_or_expires() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let u = user.name();
    let begin = |name: &str| env.mfa(&["--user", u, "enroll", "totp", name, "--begin", "--json"]);
    let a = env.begin(u, "a", &[]);
    env.begin(u, "b", &[]);
    env.advance_secs(60);
    env.begin(u, "c", &[]);
    begin("d").assert_error(&[
        "3 unfinished registrations",
        "mfa enroll finish",
        "mfa list",
    ]);
    // Interactively as well, before any QR code is shown.
    let out = env.mfa(&["--user", u, "enroll", "totp", "d"]);
    out.assert_error(&["unfinished registrations"]);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(env.names_in_state(u, "pending"), ["a", "b", "c"]);
    // Starting one over under its own name is not a fourth.
    env.begin(u, "c", &[]);

    // Finishing one frees its slot.
    env.finish(
        u,
        "a",
        &env.code_at_step(&a.secret, -1),
        &env.code(&a.secret),
    )
    .assert_success();
    env.begin(u, "d", &[]);
    begin("e").assert_error(&["unfinished registrations"]);

    // So does expiry: "b", begun first, expires ten minutes after it was begun.
    env.advance_secs(600 - 60 + 1);
    env.begin(u, "e", &[]);
    assert_eq!(env.names_in_state(u, "pending"), ["c", "d", "e"]);
    // Another user is not affected by any of this.
    let other = TestUser::new();
    env.begin(other.name(), "a", &[]);
}

fn actions(rows: &[Value]) -> Vec<&str> {
    rows.iter().filter_map(|r| r["action"].as_str()).collect()
}

// Issue 16, finding 3: audit rows were never removed.
#[test]
fn audit_rows_are_kept_for_the_retention_and_pruned_by_hand() {
    const DAY: i64 = 86_400;
    // The local store's audit: a fleet account's rows are in the database's
    // pam_mfa_fleet.audit (tests/fleet.rs), which `mfa admin audit` does not show yet.
    let env = TestEnv::with_backend(Backend::Local);
    let user = TestUser::new();
    let u = user.name();
    // The key is checked: 1 day to 100 years, or "default" (365 days).
    for bad in ["0", "36501", "1y", "9999999999999999999999"] {
        env.mfa(&["admin", "policy", "set", "audit_retention_days", bad])
            .assert_error(&["audit_retention_days"]);
    }
    let show = env.mfa(&["admin", "policy", "show"]);
    show.assert_success();
    assert!(
        show.stdout
            .contains("audit_retention_days default (365 days)"),
        "{}",
        show.stdout
    );
    env.mfa(&["admin", "policy", "set", "audit_retention_days", "30"])
        .assert_success();
    assert_eq!(
        env.mfa(&["admin", "policy", "show", "--json"]).json()["audit_retention_days"],
        30
    );
    env.begin(u, "phone", &[]);
    assert_eq!(actions(&env.audit_rows()), ["policy", "begin"]);

    // 31 days later, the next change removes the rows older than 30 days.
    env.advance_secs(31 * DAY);
    env.mfa(&["admin", "unlock", u]).assert_success();
    assert_eq!(actions(&env.audit_rows()), ["unlock"]);

    // By hand: the rows older than an age, counted, and the pruning itself recorded.
    // (Beginning "tablet" also discards the expired "phone": three rows.)
    env.begin(u, "tablet", &[]);
    assert_eq!(actions(&env.audit_rows()), ["unlock", "discard", "begin"]);
    env.advance_secs(2 * DAY);
    let out = env.mfa(&["admin", "audit", "prune", "--older-than", "1d"]);
    out.assert_success();
    assert!(
        out.stdout.contains("Removed 3 audit row(s) older than 1d"),
        "{}",
        out.stdout
    );
    let rows = env.audit_rows();
    assert_eq!(actions(&rows), ["audit-prune"]);
    assert_eq!(rows[0]["detail"], "3 row(s) older than 1d", "{rows:?}");
    assert_eq!(rows[0]["uid"], 0, "{rows:?}");
    // Without --older-than: the policy's retention.
    env.advance_secs(40 * DAY);
    let out = env.mfa(&["admin", "audit", "prune"]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("Removed 1 audit row(s) older than the retention of 30 days"),
        "{}",
        out.stdout
    );
    env.mfa(&["admin", "audit", "prune", "--older-than", "soon"])
        .assert_error(&["--older-than"]);
}

/// `--begin` (not `--json`) run by root for a user says how to finish, naming the daemon
/// (the test's, not the default) and the user: the command it prints, run as printed
/// with the two codes, activates the device.
#[test]
fn a_begun_registration_names_the_command_that_finishes_it() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let out = env.mfa(&["--user", user.name(), "enroll", "totp", "pad", "--begin"]);
    out.assert_success();
    let wanted = format!(
        "Activate it with: mfa --socket {} --user {} enroll finish pad\n",
        env.socket().display(),
        user.name()
    );
    assert!(out.stdout.contains(&wanted), "{}", out.stdout);
    let secret = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Secret key: "))
        .expect("the secret key line")
        .replace(' ', "");
    let printed: Vec<&str> = wanted
        .trim_end()
        .trim_start_matches("Activate it with: mfa ")
        .split(' ')
        .collect();
    let (c1, c2) = (env.code_at_step(&secret, -1), env.code(&secret));
    let mut args = printed.clone();
    args.extend([c1.as_str(), c2.as_str()]);
    env.mfa_cmd(&args).no_link().run().assert_success();
    assert_eq!(
        state_of(&env, user.name(), "pad").as_deref(),
        Some("active")
    );
}

/// Issue 20 (6): the end of input at the first code prompt ends the registration there,
/// with no second prompt, on a line of its own, saying how to finish it; the device stays
/// pending and that advice works.
#[test]
fn interactive_enrollment_stops_at_the_first_end_of_input() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let mut child = env.spawn_mfa(&["--user", user.name(), "enroll", "totp", "phone"]);
    let uri = wait_for_terminal_qr(&mut child, env.root()).expect("a QR code");
    let secret = OtpauthUri::parse(&uri)
        .unwrap()
        .param("secret")
        .unwrap()
        .to_owned();
    child.close_stdin();
    let out =
        pam_mfa_tests::MfaOutput::from_finished("mfa enroll totp (interactive)", child.wait());
    out.assert_failure();
    assert_eq!(
        out.stderr.matches("Enter the code the app shows: ").count(),
        1,
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("next code"),
        "a second prompt\n{out:?}"
    );
    let advice = format!(
        "\nmfa: registration not finished; within 10 minutes run `mfa --socket {} --user {} \
         enroll finish phone`",
        env.socket().display(),
        user.name()
    );
    assert!(out.stderr.contains(&advice), "{out:?}");
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("pending")
    );
    env.finish(
        user.name(),
        "phone",
        &env.code_at_step(&secret, -1),
        &env.code(&secret),
    )
    .assert_success();
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("active")
    );
}

/// Issue 20 (2): two right codes typed the other way round are the same proof and are
/// taken; finishing a device that is already active says so (not "no pending
/// registration… it may have expired"); a wrong code keeps its own message; and the
/// reversed pair used up both steps, like any registration.
#[test]
fn finish_takes_codes_in_either_order_and_knows_an_active_device() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.begin(user.name(), "phone", &[]);
    let (earlier, later) = (env.code_at_step(&dev.secret, -1), env.code(&dev.secret));
    let wrong = wrong_code(&dev.secret, env.now(), 12);
    env.finish(user.name(), "phone", &wrong, &later)
        .assert_error(&["the first code is not valid"]);
    env.finish(user.name(), "phone", &later, &earlier)
        .assert_success();
    assert_eq!(
        state_of(&env, user.name(), "phone").as_deref(),
        Some("active")
    );
    env.finish(user.name(), "phone", &earlier, &later)
        .assert_error(&[
            "\"phone\" is already registered and active",
            "nothing to finish",
        ]);
    // Both steps are used up: neither code logs in.
    env.write_service(&[]);
    env.login(user.name(), &later)
        .assert_result(PamCode::AuthErr);
    env.advance_steps(1);
    env.login(user.name(), &env.code(&dev.secret))
        .assert_success();
}
