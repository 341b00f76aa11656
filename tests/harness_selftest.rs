//! Self-test of the harness: pam-client against modules whose behaviour is known
//! (pam_permit, pam_deny, pam_debug, pam_chatty, pam_exec), the fake clock, oathtool, the
//! QR reader and the test accounts. None of this needs the product, so when these pass
//! and a product test fails, the product is at fault.

use pam_mfa_tests::PamCode;
use pam_mfa_tests::{
    BASE_STEP, OtpauthUri, STEP, STEP_OFFSET, TestEnv, TestUser, TotpParams, at_step,
    decode_terminal_qr, fake_time_env, mode_of, observing_ignore, pam_wrapper_module,
    percent_decode, race, step_of, system_pam_module, totp, totp_with, unix_at, user_exists,
    wrong_code,
};

/// `auth required <system module> ARGS` as the whole test service.
fn service_with(env: &TestEnv, module: &str, args: &str) {
    env.write_service_lines(&[format!(
        "auth required {} {args}",
        system_pam_module(module).display()
    )]);
}

#[test]
fn pam_permit_gives_success() {
    let env = TestEnv::new();
    service_with(&env, "pam_permit.so", "");
    let out = env.pam("root").run();
    out.assert_success();
    assert_eq!(out.code, 0);
    assert!(out.messages.is_empty(), "{}", out.transcript());
}

#[test]
fn pam_deny_gives_auth_err_with_its_exit_code() {
    let env = TestEnv::new();
    service_with(&env, "pam_deny.so", "");
    let out = env.pam("root").run();
    out.assert_result(PamCode::AuthErr);
    assert_eq!(out.code, 7, "PAM_AUTH_ERR is 7 in Linux-PAM");
}

#[test]
fn unconfigured_service_falls_back_to_deny() {
    let env = TestEnv::new();
    service_with(&env, "pam_permit.so", "");
    env.pam("root")
        .service("not-configured")
        .run()
        .assert_result(PamCode::AuthErr);
}

#[test]
fn service_files_are_private_to_each_environment() {
    // Two environments side by side must not see each other's service files, even
    // though pam_wrapper copies them through /tmp.
    let permit = TestEnv::new();
    let deny = TestEnv::new();
    service_with(&permit, "pam_permit.so", "");
    service_with(&deny, "pam_deny.so", "");
    for _ in 0..3 {
        permit.pam("root").run().assert_success();
        deny.pam("root").run().assert_result(PamCode::AuthErr);
    }
}

#[test]
fn ignore_is_observable_through_the_probe_stack() {
    let env = TestEnv::new();
    let debug = system_pam_module("pam_debug.so");
    let cases = [
        ("ignore", pam_mfa_tests::IGNORED),
        ("success", PamCode::Success),
        ("auth_err", PamCode::AuthErr),
        ("maxtries", PamCode::MaxTries),
        ("service_err", PamCode::ServiceErr),
        ("authinfo_unavail", PamCode::AuthinfoUnavail),
    ];
    for (ret, expected) in cases {
        env.write_service_lines(&observing_ignore(&format!(
            "{} auth={ret}",
            debug.display()
        )));
        env.pam("root").run().assert_result(expected);
    }
    // Without the probe, an ignored module alone is a denial: the reason the probe exists.
    service_with(&env, "pam_debug.so", "auth=ignore");
    env.pam("root").run().assert_result(PamCode::PermDenied);
}

#[test]
fn several_messages_in_one_conversation_call() {
    let env = TestEnv::new();
    env.write_service_lines(&[format!(
        "auth required {} num_lines=4 info error",
        pam_wrapper_module("pam_chatty.so").display()
    )]);
    let out = env.pam("root").run();
    out.assert_success();
    assert_eq!(out.infos().len(), 4, "{}", out.transcript());
    assert_eq!(out.errors().len(), 4, "{}", out.transcript());
}

/// pam_exec with `expose_authtok` asks for a password (echo off) and writes it to the
/// command's stdin; `stdout` turns the command's output into info messages.
fn exec_service(env: &TestEnv, command: &str) {
    service_with(
        env,
        "pam_exec.so",
        &format!("expose_authtok stdout {command}"),
    );
}

#[test]
fn answers_reach_the_module() {
    let env = TestEnv::new();
    exec_service(&env, "/usr/bin/wc -c");
    let out = env.pam("root").answer("hello").run();
    out.assert_success().assert_prompted("Password: ", false);
    assert_eq!(out.infos(), ["5"], "{}", out.transcript());
}

#[test]
fn a_megabyte_answer_from_a_file_goes_through() {
    let env = TestEnv::new();
    exec_service(&env, "/usr/bin/wc -c");
    let big = env.path("big-answer");
    std::fs::write(&big, "7".repeat(1 << 20)).unwrap();
    let out = env.pam("root").answer_file(&big).run();
    out.assert_success();
    // libpam may cut an authtok to its own limit; it must still be far more than a code.
    let n: usize = out.infos()[0].trim().parse().unwrap();
    assert!(n >= 256, "only {n} bytes arrived\n{}", out.transcript());
}

#[test]
fn missing_answer_is_a_conversation_error() {
    let env = TestEnv::new();
    exec_service(&env, "/usr/bin/wc -c");
    let out = env.pam("root").run();
    assert!(!out.succeeded(), "{}", out.transcript());
    assert_eq!(out.prompts().len(), 1, "{}", out.transcript());
    assert!(
        out.stderr.contains("no answer left"),
        "{}",
        out.transcript()
    );
}

#[test]
fn message_text_is_escaped_and_restored() {
    let env = TestEnv::new();
    // printf turns its format's \t into a tab and \\ into one backslash.
    service_with(&env, "pam_exec.so", r"stdout /usr/bin/printf a\tb\\c");
    let out = env.pam("root").run();
    out.assert_success();
    assert_eq!(out.infos(), ["a\tb\\c"], "{}", out.transcript());
    assert!(
        out.stdout.contains(r"info: a\tb\\c"),
        "{}",
        out.transcript()
    );
}

#[test]
fn fake_time_reaches_children_and_ticks() {
    let t = at_step(BASE_STEP);
    let out = std::process::Command::new("date")
        .arg("+%s")
        .envs(fake_time_env(t, &[]))
        .output()
        .unwrap();
    let seen: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        (t..t + STEP - STEP_OFFSET).contains(&seen),
        "date saw {seen}, wanted {t}"
    );
}

#[test]
fn fake_time_reaches_pam_client_under_pam_wrapper() {
    // The module runs inside pam-client, so pam-client's own clock is the module's clock.
    // (pam_exec cannot show it: it runs its command with the PAM environment only, so
    // LD_PRELOAD does not reach that command.)
    let env = TestEnv::new();
    service_with(&env, "pam_permit.so", "");
    env.advance_steps(7);
    let out = env.pam("root").run();
    out.assert_success();
    let seen: i64 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("pam-client: time "))
        .unwrap_or_else(|| panic!("no time line\n{}", out.transcript()))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(step_of(seen), env.step(), "{}", out.transcript());
    assert!(seen >= env.now(), "{}", out.transcript());
}

#[test]
fn oathtool_reproduces_rfc6238_vectors() {
    // RFC 6238 Appendix B: the seeds are the ASCII strings "1234567890" repeated to 20,
    // 32 and 64 bytes; base32 of them below.
    let sha1 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let sha256 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
    let sha512 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
                  GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA";
    let eight = |algorithm| TotpParams {
        digits: 8,
        algorithm,
        period: 30,
    };
    assert_eq!(totp_with(sha1, 59, eight("SHA1")), "94287082");
    assert_eq!(totp_with(sha256, 59, eight("SHA256")), "46119246");
    assert_eq!(totp_with(sha512, 59, eight("SHA512")), "90693936");
    assert_eq!(totp_with(sha1, 1_111_111_109, eight("SHA1")), "07081804");
    assert_eq!(totp_with(sha1, 20_000_000_000, eight("SHA1")), "65353130");
    // The default is what mfa enrolls: 6 digits, SHA1, 30 s.
    assert_eq!(totp(sha1, 59), "287082");
}

#[test]
fn wrong_code_is_outside_the_window() {
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let t = at_step(BASE_STEP);
    let wrong = wrong_code(secret, t, 3);
    for d in -3..=3 {
        assert_ne!(totp(secret, t + d * STEP), wrong);
    }
}

#[test]
fn calendar_and_steps() {
    assert_eq!(unix_at(1970, 1, 1, 0, 0, 0), 0);
    assert_eq!(unix_at(2000, 2, 29, 12, 0, 0), 951_825_600);
    assert_eq!(unix_at(2029, 11, 22, 0, 0, 0), BASE_STEP * STEP);
    assert_eq!(step_of(at_step(BASE_STEP)), BASE_STEP);
    let env = TestEnv::new();
    env.advance_steps(20);
    assert_eq!(env.step(), BASE_STEP + 20);
    env.advance_secs(300);
    assert_eq!(env.step(), BASE_STEP + 30);
    assert_eq!(env.now() % STEP, STEP_OFFSET);
}

#[test]
fn environment_directories_are_private() {
    let env = TestEnv::new();
    assert_eq!(mode_of(env.root()) & 0o077, 0);
    assert_eq!(mode_of(env.store()), 0o700);
    assert!(env.db().starts_with(env.store()));
    assert!(
        !env.db().exists(),
        "the store file is left for the product to create"
    );
}

#[test]
fn test_users_exist_and_are_removed() {
    let name = {
        let user = TestUser::new();
        assert!(user_exists(user.name()), "{user} was not created");
        assert!(user.name().len() <= 32 && user.name().starts_with("mfat"));
        user.name().to_owned()
    };
    assert!(!user_exists(&name), "{name} was not removed");
}

#[test]
fn many_users_at_once() {
    let handles: Vec<_> = (0..6).map(|_| std::thread::spawn(TestUser::new)).collect();
    let users: Vec<TestUser> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for u in &users {
        assert!(user_exists(u.name()));
    }
}

#[test]
fn racing_clients_all_get_their_own_answer() {
    let env = TestEnv::new();
    exec_service(&env, "/usr/bin/wc -c");
    let runs: Vec<_> = (1..=32)
        .map(|n| env.pam("root").answer(&"x".repeat(n)))
        .collect();
    let outcomes = race(&runs);
    for (n, out) in (1..=32).zip(&outcomes) {
        out.assert_success();
        assert_eq!(out.infos(), [n.to_string()], "{}", out.transcript());
    }
}

#[test]
fn parallel_environments_never_see_each_others_services() {
    // pam_wrapper copies service files through /tmp/pam.<letter>; the harness's start-up
    // lock must keep simultaneous clients of different tests apart.
    let threads: Vec<_> = [
        ("pam_permit.so", PamCode::Success),
        ("pam_deny.so", PamCode::AuthErr),
    ]
    .into_iter()
    .map(|(module, expected)| {
        std::thread::spawn(move || {
            let env = TestEnv::new();
            service_with(&env, module, "");
            for _ in 0..3 {
                let runs: Vec<_> = (0..12).map(|_| env.pam("root")).collect();
                for out in race(&runs) {
                    out.assert_result(expected);
                }
            }
        })
    })
    .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn zbarimg_reads_png_and_svg_files() {
    use qrcode::QrCode;
    use qrcode::render::svg;
    let env = TestEnv::new();
    let uri = "otpauth://totp/vm:bob?secret=JBSWY3DPEHPK3PXP&issuer=vm";
    let code = QrCode::new(uri.as_bytes()).unwrap();
    let svg_path = env.path("code.svg");
    std::fs::write(
        &svg_path,
        code.render::<svg::Color>().min_dimensions(200, 200).build(),
    )
    .unwrap();
    let decoded = pam_mfa_tests::decode_qr_image(&svg_path, env.root()).unwrap_or_else(|e| {
        panic!(
            "{e}\n(zbarimg reads SVG through ImageMagick's SVG coder: libmagickcore-6.q16-6-extra)"
        )
    });
    assert_eq!(decoded, uri);
    // A file that is no image at all is an error, not an empty text.
    let junk = env.path("junk.png");
    std::fs::write(&junk, "junk").unwrap();
    assert!(pam_mfa_tests::decode_qr_image(&junk, env.root()).is_err());
}

#[test]
fn uri_parsing() {
    let uri = OtpauthUri::parse(
        "otpauth://totp/Acme%20Corp:alice?secret=ABC&issuer=Acme%20Corp&digits=6",
    )
    .unwrap();
    assert_eq!(uri.kind, "totp");
    assert_eq!(uri.label, "Acme Corp:alice");
    assert_eq!(uri.param("secret"), Some("ABC"));
    assert_eq!(uri.param("issuer"), Some("Acme Corp"));
    assert_eq!(uri.param("period"), None);
    assert_eq!(percent_decode("a%3Ab%2"), "a:b%2");
    assert!(OtpauthUri::parse("https://example.invalid/").is_err());
}

mod terminal_qr {
    use super::*;
    use qrcode::QrCode;
    use qrcode::render::unicode::Dense1x2;

    const URI: &str = "otpauth://totp/vm:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\
                       &issuer=vm&algorithm=SHA1&digits=6&period=30";

    fn scratch() -> tempfile::TempDir {
        tempfile::TempDir::new().unwrap()
    }

    #[test]
    fn plain_half_blocks_in_either_polarity() {
        let code = QrCode::new(URI.as_bytes()).unwrap();
        let dir = scratch();
        let light_terminal = code.render::<Dense1x2>().build();
        let dark_terminal = code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build();
        for text in [light_terminal, dark_terminal] {
            let framed = format!("Scan this:\n\n{text}\n\nThen type two codes.\n");
            assert_eq!(decode_terminal_qr(&framed, dir.path()).unwrap(), URI);
        }
    }

    #[test]
    fn coloured_half_blocks() {
        let code = QrCode::new(URI.as_bytes()).unwrap();
        let w = code.width();
        let colors = code.to_colors();
        let dark = |x: usize, y: usize| {
            x >= 4
                && y >= 4
                && x < w + 4
                && y < w + 4
                && colors[(y - 4) * w + (x - 4)] == qrcode::Color::Dark
        };
        // Black on white forced with SGR, every cell an upper half block, as terminal QR
        // printers that ignore the theme do; once with 16 colours, once with true colour.
        for (fg, bg) in [
            (["30", "97"], ["40", "107"]),
            (
                ["38;2;0;0;0", "38;2;255;255;255"],
                ["48;2;0;0;0", "48;2;255;255;255"],
            ),
        ] {
            let mut text = String::from("\u{1b}[1mScan:\u{1b}[0m\n");
            for y in (0..w + 8).step_by(2) {
                text.push_str("  ");
                for x in 0..w + 8 {
                    let f = fg[usize::from(!dark(x, y))];
                    let b = bg[usize::from(!dark(x, y + 1))];
                    text.push_str(&format!("\u{1b}[{f};{b}m▀"));
                }
                text.push_str("\u{1b}[0m\n");
            }
            assert_eq!(decode_terminal_qr(&text, scratch().path()).unwrap(), URI);
        }
    }

    #[test]
    fn no_qr_code_is_an_error() {
        assert!(decode_terminal_qr("no code here\n▀▀\n", scratch().path()).is_err());
    }
}

/// The fleet tests' PostgreSQL: a real cluster on 127.0.0.1 that takes only TLS over TCP,
/// with a streaming standby that is read-only until promoted.
#[test]
fn postgres_cluster_with_a_standby_that_can_be_promoted() {
    use pam_mfa_tests::postgres::Postgres;
    let primary = Postgres::start();
    primary.create_database("harness");
    primary.psql(
        "harness",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1)",
    );
    assert_eq!(
        primary
            .psql(
                "harness",
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            .trim(),
        "f",
        "the socket connection is not TLS"
    );
    assert_eq!(primary.psql("harness", "SHOW ssl").trim(), "on");
    assert_eq!(
        primary
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .trim(),
        "f"
    );

    let standby = primary.start_standby();
    assert_eq!(
        standby
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .trim(),
        "t"
    );
    assert_eq!(standby.psql("harness", "SELECT x FROM t").trim(), "1");
    let refused = std::process::Command::new("psql")
        .args([
            "-X",
            "-d",
            &standby.superuser("harness"),
            "-c",
            "INSERT INTO t VALUES (2)",
        ])
        .output()
        .expect("run psql");
    assert!(!refused.status.success(), "a standby took a write");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("read-only"));

    standby.promote();
    standby.psql("harness", "INSERT INTO t VALUES (2)");
    assert_eq!(
        standby.psql("harness", "SELECT count(*) FROM t").trim(),
        "2"
    );

    // Over TCP without TLS: refused by pg_hba, whatever the password.
    let plain = std::process::Command::new("psql")
        .args(["-X", "-d"])
        .arg(format!(
            "host=127.0.0.1 port={} user=postgres dbname=harness sslmode=disable",
            primary.port()
        ))
        .args(["-c", "SELECT 1"])
        .env("PGPASSWORD", "x")
        .output()
        .expect("run psql");
    assert!(!plain.status.success(), "plain TCP was accepted");
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("no encryption"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
}

/// The crash test's wait for a killed client's request (`wait_until_no_client`) sees a
/// connection the daemon holds, and its end.
#[test]
fn waiting_for_the_daemons_clients_sees_a_held_connection_and_its_end() {
    use pam_mfa_tests::mfad::wait_until_no_client;
    use std::time::Duration;
    let env = TestEnv::new();
    let socket = env.socket();
    assert!(wait_until_no_client(&socket, Duration::from_secs(10)));
    let held = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    // Seen once the daemon has accepted it (at once, unless the machine is very busy).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wait_until_no_client(&socket, Duration::ZERO) {
        assert!(
            std::time::Instant::now() < deadline,
            "a held connection was not seen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !wait_until_no_client(&socket, Duration::from_millis(300)),
        "a held connection was seen, then not"
    );
    drop(held);
    assert!(wait_until_no_client(&socket, Duration::from_secs(10)));
}
