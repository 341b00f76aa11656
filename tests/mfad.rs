//! `mfad`, the store daemon (issue 17, first step): each test starts its own daemon in a
//! private namespace on the test's store, and asks it through the protocol crate: from
//! the test process (root), and with `mfad-client` run as test users.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use pam_mfa_protocol::{
    ErrorKind, KeyAssertion, KeyChallengeReply, KeyPurpose, Overrides, RefusalKind, Request,
    Response, SecretBytes, VerifyOutcome,
};
use pam_mfa_tests::mfad::{Client, Mfad, SOCKET, SoftKey};
use pam_mfa_tests::process::{self, Finished, Running};
use pam_mfa_tests::{
    Namespace, TestEnv, TestUser, assert_code_not_logged, enroll_now, mfad_bin, next_code,
    wrong_code_now,
};

fn verify(user: &str, code: &str) -> Request {
    Request::VerifyCode {
        context: None,
        user: user.to_owned(),
        answer: SecretBytes::from_slice(code.as_bytes()),
        overrides: Overrides::default(),
    }
}

fn refused_with_lock(r: &Response) -> Option<Option<i64>> {
    match r {
        Response::Verified(VerifyOutcome::Refused { locked_until, .. }) => Some(*locked_until),
        _ => None,
    }
}

fn mfad_lines(ns: &Namespace) -> Vec<String> {
    ns.syslog().sync();
    ns.syslog()
        .records()
        .into_iter()
        .filter(|r| r.tag == "mfad")
        .map(|r| r.message)
        .collect()
}

/// Runs `mfad-client ARGS…` as `user` in the namespace.
fn client_as(ns: &Namespace, client: &Client, user: &TestUser, args: &[&str]) -> Finished {
    let mut cmd = ns.command_as(user, &client.bin);
    cmd.arg(SOCKET).args(args);
    process::run(cmd, format!("mfad-client {args:?} as {user}"), Vec::new())
}

/// (a) A right code is accepted once, a replay is refused, wrong codes lock the user out
/// under issue 16's rules, and a root caller's overrides are honoured.
#[test]
fn codes_are_checked_once_and_wrong_ones_lock_out() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let alice = TestUser::new();
    let bob = TestUser::new();
    let dev = enroll_now(&env, alice.name(), "phone");
    let bob_dev = enroll_now(&env, bob.name(), "tablet");
    let mfad = Mfad::start(&ns);

    assert!(matches!(
        mfad.ask(&Request::Hello),
        Response::Hello { protocol: 1, .. }
    ));
    let code = next_code(&dev.secret);
    assert_eq!(
        mfad.ask(&verify(alice.name(), &code)),
        Response::Verified(VerifyOutcome::Accepted {
            device: "phone".into()
        })
    );
    match mfad.ask(&verify(alice.name(), &code)) {
        Response::Verified(VerifyOutcome::Refused {
            reason: RefusalKind::Replayed { device },
            ..
        }) => assert_eq!(device, "phone"),
        other => panic!("a replayed code was not refused as a replay: {other:?}"),
    }
    // The replay was failure 1 of the default 5; three more wrong codes leave her unlocked,
    // the fifth failure starts the lock-out, after which even a right code is refused.
    let wrong = wrong_code_now(&dev.secret);
    for _ in 0..3 {
        assert_eq!(
            refused_with_lock(&mfad.ask(&verify(alice.name(), &wrong))),
            Some(None)
        );
    }
    let locked = refused_with_lock(&mfad.ask(&verify(alice.name(), &wrong)));
    assert!(
        matches!(locked, Some(Some(_))),
        "the fifth failure did not lock: {locked:?}"
    );
    assert!(matches!(
        mfad.ask(&verify(alice.name(), &next_code(&dev.secret))),
        Response::Verified(VerifyOutcome::Locked { .. })
    ));

    // Root's overrides (the module's arguments) count: max_failures=1 locks at once.
    let strict = Request::VerifyCode {
        context: None,
        user: bob.name().to_owned(),
        answer: SecretBytes::from_slice(wrong_code_now(&bob_dev.secret).as_bytes()),
        overrides: Overrides {
            max_failures: Some(1),
            ..Overrides::default()
        },
    };
    assert!(matches!(
        refused_with_lock(&mfad.ask(&strict)),
        Some(Some(_))
    ));
    // Out-of-range overrides are refused, not clamped silently.
    let silly = Request::VerifyCode {
        context: None,
        user: bob.name().to_owned(),
        answer: SecretBytes::from_slice(b"123456"),
        overrides: Overrides {
            window: Some(1000),
            ..Overrides::default()
        },
    };
    assert!(matches!(mfad.ask(&silly), Response::Error(e) if e.kind == ErrorKind::Invalid));

    let lines = mfad_lines(&ns);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("authenticated with device \"phone\"") && l.contains(alice.name())),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("replayed code")),
        "{lines:#?}"
    );
    let records = ns.syslog().records();
    assert_code_not_logged(&records, &code);
    assert_code_not_logged(&records, &wrong);
}

/// (b) A non-root user may ask only about their own account: asking to verify a code for,
/// or list the devices of, another account is refused and logged; their own is answered,
/// and the overrides they send are ignored (they cannot loosen their own lock-out).
#[test]
fn a_user_may_ask_only_about_their_own_account() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let bob = TestUser::new();
    let bob_dev = enroll_now(&env, bob.name(), "bobs-phone");
    let alice_dev = enroll_now(&env, alice.name(), "alices-phone");
    let mfad = Mfad::start(&ns);

    let bobs_code = next_code(&bob_dev.secret);
    for args in [
        vec!["verify", bob.name(), bobs_code.as_str()],
        vec!["list", bob.name()],
        vec!["list", "root"],
        vec!["list", "no-such-account-x9"],
    ] {
        let out = client_as(&ns, &client, &alice, &args);
        assert!(
            out.stdout.contains("response: Error") && out.stdout.contains("Denied"),
            "{args:?} as another user was not refused: {out:?}"
        );
        assert!(!out.stdout.contains("bobs-phone"), "{out:?}");
    }
    // Bob's code was never checked: it still works for bob (asked by root).
    assert!(matches!(
        mfad.ask(&verify(bob.name(), &bobs_code)),
        Response::Verified(VerifyOutcome::Accepted { .. })
    ));
    let lines = mfad_lines(&ns);
    let uid = alice.uid();
    for what in ["verify-code", "list-devices"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("uid {uid} asked {what}")) && l.contains(bob.name())),
            "no log line for alice's {what} about bob: {lines:#?}"
        );
    }
    assert_code_not_logged(&ns.syslog().records(), &bobs_code);

    // Her own account is answered.
    let out = client_as(&ns, &client, &alice, &["list", alice.name()]);
    assert!(out.stdout.contains("alices-phone"), "{out:?}");
    let code = next_code(&alice_dev.secret);
    let out = client_as(&ns, &client, &alice, &["verify", alice.name(), &code]);
    assert!(out.stdout.contains("Accepted"), "{out:?}");
    // Her overrides are ignored: asking for max_failures=1000 she is still locked out
    // at the policy's 5.
    let wrong = wrong_code_now(&alice_dev.secret);
    let mut last = String::new();
    for _ in 0..5 {
        last = client_as(
            &ns,
            &client,
            &alice,
            &["verify", alice.name(), &wrong, "--loosen"],
        )
        .stdout;
    }
    assert!(last.contains("locked_until: Some("), "{last}");
}

/// (c) A user flooding the socket with connections, and another sending one byte a
/// second, hold nobody else up: root's requests and a third user's are answered.
#[test]
fn a_flood_of_connections_starves_nobody_else() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let (mallory, slowpoke, carol) = (TestUser::new(), TestUser::new(), TestUser::new());
    let dev = enroll_now(&env, carol.name(), "carols-phone");
    let mfad = Mfad::start(&ns);

    let spawn = |user: &TestUser, args: &[&str]| {
        let mut cmd = ns.command_as(user, &client.bin);
        cmd.arg(SOCKET).args(args);
        Running::spawn(cmd, format!("mfad-client {args:?} as {user}"))
    };
    let mut slow = spawn(&slowpoke, &["slow"]);
    let mut flood = spawn(&mallory, &["flood", "5000"]);
    assert!(flood.wait_for("the flood", |out, _| out.contains("flooded:")));
    let flooded = flood.stdout();
    let count = |what: &str| -> usize {
        flooded
            .split_whitespace()
            .skip_while(|w| *w != what)
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {what} count in {flooded}"))
    };
    assert!(
        count("refused") > 0,
        "the caps turned nothing away: {flooded}"
    );
    eprintln!("{flooded}");

    // While the flood goes on (it keeps its connections topped up) and the slow sender
    // trickles: root's logins and lists, and another user's list, are answered.
    for _ in 0..5 {
        assert!(matches!(
            mfad.ask(&Request::BeforePrompt {
                line: None,
                context: None,
                user: carol.name().to_owned(),
                want_keys: false
            }),
            Response::BeforePrompt(_)
        ));
        assert!(matches!(
            mfad.ask(&Request::ListDevices {
                user: carol.name().to_owned()
            }),
            Response::Devices(d) if d.len() == 1
        ));
        let out = client_as(&ns, &client, &carol, &["list", carol.name()]);
        assert!(out.stdout.contains("carols-phone"), "{out:?}");
    }
    assert!(matches!(
        mfad.ask(&verify(carol.name(), &next_code(&dev.secret))),
        Response::Verified(VerifyOutcome::Accepted { .. })
    ));

    flood.close_stdin();
    slow.close_stdin();
    let flood = flood.wait();
    let slow = slow.wait();
    assert!(flood.stdout.contains("done:"), "{flood:?}");
    // The daemon cut the slow sender off before its request was complete.
    assert!(slow.stdout.contains("ended after"), "{slow:?}");
    let lines = mfad_lines(&ns);
    let uid = mallory.uid();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("refused connections from uid {uid}"))),
        "{lines:#?}"
    );
}

/// Sends raw bytes as one connection and returns the answer, `None` if the daemon closed
/// the connection without one.
fn raw(mfad: &Mfad, bytes: &[u8]) -> Option<Response> {
    let mut s = UnixStream::connect(mfad.socket()).expect("connect to mfad");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // The daemon may close before taking everything (an oversize length): fine.
    let _ = s.write_all(bytes);
    let answer = pam_mfa_protocol::read_response(&mut s).ok();
    // After an error the daemon closes the connection.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    answer
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// (d) Garbage, an oversize length and a request of another protocol version each get a
/// clear error (or a closed connection), and the daemon goes on serving.
#[test]
fn garbage_oversize_and_other_versions_are_refused_and_the_daemon_serves_on() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let mfad = Mfad::start(&ns);

    let error_kind = |r: Option<Response>| match r {
        Some(Response::Error(e)) => Some((e.kind, e.message)),
        None => None,
        other => panic!("not an error: {other:?}"),
    };
    // Garbage in a well-formed frame.
    let (kind, _) = error_kind(raw(&mfad, &framed(b"\xff\xfe garbage"))).expect("an answer");
    assert_eq!(kind, ErrorKind::Malformed);
    // Deeply nested CBOR: refused, not a crashed daemon.
    let (kind, _) = error_kind(raw(&mfad, &framed(&[0x81; 60_000]))).expect("an answer");
    assert_eq!(kind, ErrorKind::Malformed);
    // A length over the limit: refused from the length alone.
    if let Some((kind, _)) = error_kind(raw(&mfad, &0x7fff_ffffu32.to_be_bytes())) {
        assert_eq!(kind, ErrorKind::TooLarge);
    }
    // {"version": 99, "request": "Hello"}: another version, named in the answer.
    let mut v99 = vec![0xa2, 0x67];
    v99.extend_from_slice(b"version");
    v99.extend_from_slice(&[0x18, 99, 0x67]);
    v99.extend_from_slice(b"request");
    v99.push(0x65);
    v99.extend_from_slice(b"Hello");
    let (kind, message) = error_kind(raw(&mfad, &framed(&v99))).expect("an answer");
    assert_eq!(kind, ErrorKind::Version);
    assert!(
        message.contains("99") && message.contains("version 1"),
        "{message}"
    );
    // Garbage that is not even a frame, then the connection closed half way.
    let _ = raw(&mfad, b"\0\0");

    assert!(matches!(mfad.ask(&Request::Hello), Response::Hello { .. }));
}

/// (e) `mfad` on a store that others can read: it says so on stderr, refuses every
/// request with the reason, and serves once the store is repaired.
#[test]
fn mfad_refuses_a_world_readable_store() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.enroll(user.name(), "phone");
    env.halt_mfad();
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o644))
        .expect("chmod the store");
    // It starts (systemd would only restart it in a loop), says why it refuses, and
    // refuses every request until the store is repaired, then serves.
    let socket = env.socket();
    let said = env.mfad_logged("refusing every request");
    let stderr = env.mfad_stderr();
    assert!(
        said && stderr.contains(&env.db().display().to_string()),
        "{stderr}"
    );
    env.advance_steps(1);
    let code = env.code(&dev.secret);
    let answer =
        pam_mfa_tests::mfad::ask_at(&socket, &verify(user.name(), &code)).expect("an answer");
    assert!(
        matches!(&answer, Response::Error(e) if e.kind == pam_mfa_protocol::ErrorKind::Unavailable
            && e.message.contains("mode 0644")),
        "{answer:?}"
    );
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o600))
        .expect("chmod the store");
    let answer =
        pam_mfa_tests::mfad::ask_at(&socket, &verify(user.name(), &code)).expect("an answer");
    assert!(
        matches!(answer, Response::Verified(VerifyOutcome::Accepted { .. })),
        "{answer:?}"
    );
}

/// mfad takes its listening socket from systemd socket activation (LISTEN_PID,
/// LISTEN_FDS, fd 3), as `mfad.socket` hands it over, instead of binding `--socket`.
#[test]
fn mfad_serves_the_socket_systemd_passes() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.enroll(user.name(), "phone");
    let socket = env.path("activated.sock");
    let unused = env.path("not-bound.sock");
    let mut cmd = Command::new(pam_mfa_tests::tool("systemd-socket-activate", "systemd"));
    cmd.arg("-l")
        .arg(&socket)
        .arg(mfad_bin())
        .arg("--db")
        .arg(env.db())
        .arg("--socket")
        .arg(&unused);
    let mut run = Running::spawn(cmd, "mfad under systemd-socket-activate");
    assert!(run.wait_for("the socket", |_, err| err.contains("Listening on")));
    let answer = pam_mfa_tests::mfad::ask_at(
        &socket,
        &Request::ListDevices {
            user: user.name().to_owned(),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", run.stderr()));
    assert!(matches!(answer, Response::Devices(d) if d.len() == 1 && d[0].name == "phone"));
    assert!(
        run.wait_for("its startup line", |_, err| err
            .contains("the socket from systemd")),
        "{}",
        run.stderr()
    );
    assert!(
        !unused.exists(),
        "mfad bound --socket although systemd passed one"
    );
}

/// The value after `key: ` on a line of `mfad-client`'s output.
fn field(out: &Finished, key: &str) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in {out:?}"))
        .to_owned()
}

/// The actor uids of `user`'s audit rows with `action`, read with root's `mfa --db`.
fn audit_actors(env: &TestEnv, user: &str, action: &str) -> Vec<u64> {
    let out = env
        .mfa_cmd(&["admin", "audit", "--user", user, "--json"])
        .real_time()
        .run();
    out.assert_success();
    let serde_json::Value::Array(rows) = out.json() else {
        panic!("audit --json printed no array")
    };
    rows.iter()
        .filter(|r| r["action"] == action)
        .filter_map(|r| r["uid"].as_u64())
        .collect()
}

/// Issue 17, second step: a non-root user registers an authenticator app through mfad
/// (begin → two codes from oathtool → finish), the audit rows name their uid; once the
/// account has a device every change needs a proof of one (Reauth), used up by one
/// change; root needs none; another account is refused and logged.
#[test]
fn a_user_registers_an_app_and_changes_need_a_single_use_proof() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let bob = TestUser::new();
    enroll_now(&env, bob.name(), "bobs-phone");
    let mfad = Mfad::start(&ns);
    let run = |args: &[&str]| client_as(&ns, &client, &alice, args);

    // No device yet: no proof needed to begin.
    let begun = run(&["begin", alice.name(), "phone"]);
    let secret = field(&begun, "secret");
    assert!(!begun.stdout.contains(&format!("{:?}", secret.as_bytes())));
    let now = pam_mfa_tests::real_now();
    let (c1, c2) = (
        pam_mfa_tests::clock::totp(&secret, now - pam_mfa_tests::clock::STEP),
        pam_mfa_tests::clock::totp(&secret, now),
    );
    let done = run(&["finish", alice.name(), "phone", &c1, &c2]);
    assert!(done.stdout.contains("response: Done"), "{done:?}");
    let listed = run(&["list", alice.name()]);
    assert!(
        listed.stdout.contains("\"phone\"") && listed.stdout.contains("\"active\""),
        "{listed:?}"
    );
    let uid = u64::from(alice.uid());
    assert_eq!(audit_actors(&env, alice.name(), "begin"), vec![uid]);
    assert_eq!(audit_actors(&env, alice.name(), "activate"), vec![uid]);

    // Now she has a device: a change without a proof is refused, and logged.
    let out = run(&["rename", alice.name(), "phone", "old-phone"]);
    assert!(
        out.stdout.contains("Denied") && out.stdout.contains("current code"),
        "{out:?}"
    );
    let out = run(&[
        "rename",
        alice.name(),
        "phone",
        "old-phone",
        &"00".repeat(32),
    ]);
    assert!(
        out.stdout.contains("Denied"),
        "a made-up proof worked: {out:?}"
    );
    // A wrong code proves nothing.
    let out = run(&["reauth", alice.name(), &wrong_code_now(&secret)]);
    assert!(out.stdout.contains("Denied"), "{out:?}");
    // A current code gives a proof, which works once.
    let code = next_code(&secret);
    let proof = field(&run(&["reauth", alice.name(), &code]), "proof");
    let out = run(&["rename", alice.name(), "phone", "old-phone", &proof]);
    assert!(out.stdout.contains("response: Done"), "{out:?}");
    let out = run(&["remove", alice.name(), "old-phone", &proof]);
    assert!(
        out.stdout.contains("Denied"),
        "a proof worked twice: {out:?}"
    );
    assert_eq!(audit_actors(&env, alice.name(), "rename"), vec![uid]);
    // The code she proved herself with was used up like a login's.
    let out = run(&["reauth", alice.name(), &code]);
    assert!(out.stdout.contains("Denied"), "{out:?}");

    // Another account, even with her proof: refused and logged.
    let asked = field(&run(&["reauth", bob.name(), &code]), "response");
    assert!(asked.contains("Denied"), "{asked}");
    let out = run(&["remove", bob.name(), "bobs-phone"]);
    assert!(out.stdout.contains("Denied"), "{out:?}");

    // Root acts for anyone without a proof, recorded as root.
    assert_eq!(
        mfad.ask(&Request::Rename {
            user: alice.name().to_owned(),
            name: "old-phone".into(),
            new_name: "phone".into(),
            proof: None,
        }),
        Response::Done
    );
    assert_eq!(audit_actors(&env, alice.name(), "rename"), vec![uid, 0]);

    let lines = mfad_lines(&ns);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("without a valid proof") && l.contains(&format!("uid {uid}"))),
        "{lines:#?}"
    );
    for what in ["reauth", "remove"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("uid {uid} asked {what}")) && l.contains(bob.name())),
            "no log line for alice's {what} about bob: {lines:#?}"
        );
    }
    let records = ns.syslog().records();
    for secret_text in [&secret, &c1, &c2, &code, &proof] {
        assert_code_not_logged(&records, secret_text);
    }
}

/// Issue 17, second step (keeping issue 16 finding 9's guarantee): new recovery codes
/// take effect only when the client commits the ticket it got with them; a ticket works
/// once, and only for the caller it was given to.
#[test]
fn recovery_codes_take_effect_only_when_committed() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let mallory = TestUser::new();
    let mfad = Mfad::start(&ns);
    let generate = || match mfad.ask(&Request::RecoveryGenerate {
        user: alice.name().to_owned(),
        proof: None,
    }) {
        Response::RecoveryCodes(c) => c,
        other => panic!("no codes: {other:?}"),
    };
    let accepts = |code: &SecretBytes| {
        matches!(
            mfad.ask(&Request::VerifyRecovery {
                context: None,
                user: alice.name().to_owned(),
                code: code.clone(),
            }),
            Response::Recovery(pam_mfa_protocol::RecoveryOutcome::Accepted { .. })
        )
    };
    // Not committed: the codes do not work.
    let first = generate();
    assert_eq!(first.codes.len(), 10);
    assert!(!accepts(&first.codes[0]));
    // Committed: they do; the uncommitted set's ticket is still good until then.
    let second = generate();
    let commit = |ticket: &SecretBytes| {
        mfad.ask(&Request::RecoveryCommit {
            user: alice.name().to_owned(),
            ticket: ticket.clone(),
        })
    };
    // Another uid cannot commit root's ticket.
    let hex: String = second
        .ticket
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = client_as(
        &ns,
        &client,
        &mallory,
        &["recovery-commit", alice.name(), &hex],
    );
    assert!(out.stdout.contains("Denied"), "{out:?}");
    assert_eq!(commit(&second.ticket), Response::Done);
    assert!(matches!(commit(&second.ticket), Response::Error(e) if e.kind == ErrorKind::Invalid));
    assert!(accepts(&second.codes[1]));
    assert!(!accepts(&first.codes[1]));
    // Committing the older set now replaces the newer one.
    assert_eq!(commit(&first.ticket), Response::Done);
    assert!(!accepts(&second.codes[2]));
    assert!(accepts(&first.codes[2]));
    assert_eq!(
        audit_actors(&env, alice.name(), "recovery-generate"),
        vec![0, 0]
    );
}

/// Issue 17, second step: with self_service deny, a user's changes through mfad are
/// refused with the administrator's message; root's still work.
#[test]
fn self_service_deny_refuses_a_users_change_through_mfad() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let dev = enroll_now(&env, alice.name(), "phone");
    env.mfa_cmd(&["admin", "policy", "set", "self_service", "deny"])
        .real_time()
        .run()
        .assert_success();
    let mfad = Mfad::start(&ns);
    for args in [
        vec!["reauth", alice.name(), "123456"],
        vec!["begin", alice.name(), "tablet"],
        vec!["recovery-generate", alice.name()],
    ] {
        let out = client_as(&ns, &client, &alice, &args);
        assert!(
            out.stdout.contains("Denied") && out.stdout.contains("administrator"),
            "{args:?}: {out:?}"
        );
    }
    assert!(matches!(
        mfad.ask(&Request::BeginTotp {
            user: alice.name().to_owned(),
            name: "tablet".into(),
            issuer: None,
            proof: None,
        }),
        Response::PendingTotp(_)
    ));
    // Her code was never checked: it still logs in.
    assert!(matches!(
        mfad.ask(&verify(alice.name(), &next_code(&dev.secret))),
        Response::Verified(VerifyOutcome::Accepted { .. })
    ));
}

// ----- Issue 17, third step: the administrator's requests and token registration -----

fn ask_ok(mfad: &Mfad, request: &Request) -> Response {
    let r = mfad.ask(request);
    assert!(!matches!(r, Response::Error(_)), "{request:?}: {r:?}");
    r
}

fn error_of(r: &Response) -> &pam_mfa_protocol::ErrorReply {
    match r {
        Response::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Issue 17, third step: `mfa admin`'s requests through mfad work for root, run the same
/// library rules as `mfa` (the policy set through the daemon is what `mfa admin policy
/// show` shows, bad values are refused in its words), write audit rows as root, and are
/// refused and logged for a user.
#[test]
fn administrator_requests_work_for_root_and_are_refused_for_a_user() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let bob = TestUser::new();
    enroll_now(&env, bob.name(), "phone");
    enroll_now(&env, bob.name(), "tablet");
    let mfad = Mfad::start(&ns);

    // A user: every administrator's request refused, and logged with their uid.
    let uid = alice.uid();
    let asked: [(&str, Vec<&str>); 9] = [
        ("policy-show", vec!["policy-show"]),
        ("policy-set", vec!["policy-set", "window", "3"]),
        ("admin-list", vec!["admin-list"]),
        ("audit", vec!["audit"]),
        ("audit", vec!["audit", alice.name()]),
        ("audit-prune", vec!["audit-prune"]),
        ("bypass", vec!["bypass", alice.name(), "1", "1h"]),
        ("unlock", vec!["unlock", alice.name()]),
        ("admin-remove", vec!["admin-remove", bob.name(), "phone"]),
    ];
    for (_, args) in &asked {
        let out = client_as(&ns, &client, &alice, args);
        assert!(
            out.stdout.contains("Denied") && out.stdout.contains("only root"),
            "{args:?}: {out:?}"
        );
    }
    let lines = mfad_lines(&ns);
    for (what, _) in &asked {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("uid {uid} asked {what}, which only root"))),
            "no log line for alice's {what}: {lines:#?}"
        );
    }
    let policy_json = || {
        let out = env
            .mfa_cmd(&["admin", "policy", "show", "--json"])
            .real_time()
            .run();
        out.assert_success();
        out.json()
    };
    assert!(
        policy_json()["window"].is_null(),
        "a user's policy-set worked"
    );

    // Root: the policy set through the daemon is what mfa shows.
    assert_eq!(
        mfad.ask(&Request::PolicySet {
            key: "window".into(),
            value: "2".into(),
        }),
        Response::Done
    );
    let shown = policy_json();
    assert_eq!(shown["window"], 2, "{shown}");
    let Response::Policy(p) = ask_ok(&mfad, &Request::PolicyShow) else {
        panic!("no policy")
    };
    assert_eq!(p.window, Some(2));
    assert_eq!(shown["self_service"], p.self_service.as_str());
    assert_eq!(shown["no_device"], p.no_device.as_str());
    assert_eq!(shown["max_devices"], p.max_devices);
    assert_eq!(p.audit_retention_days, None);
    // A bad value: refused with mfa's words, nothing changed.
    let bad = mfad.ask(&Request::PolicySet {
        key: "window".into(),
        value: "99".into(),
    });
    let from_mfa = env
        .mfa_cmd(&["admin", "policy", "set", "window", "99"])
        .real_time()
        .run();
    assert!(
        from_mfa.stderr.contains(&error_of(&bad).message),
        "{bad:?} / {from_mfa:?}"
    );
    assert_eq!(policy_json()["window"], 2);

    // The list is mfa admin list's.
    let Response::Accounts(accounts) = ask_ok(&mfad, &Request::AdminList) else {
        panic!("no accounts")
    };
    let bobs = accounts
        .iter()
        .find(|a| a.user == bob.name())
        .expect("bob listed");
    let names: Vec<&str> = bobs.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["phone", "tablet"]);
    let listed = env.mfa_cmd(&["admin", "list", "--json"]).real_time().run();
    listed.assert_success();
    let serde_json::Value::Array(from_mfa) = listed.json() else {
        panic!("admin list --json printed no array")
    };
    assert_eq!(from_mfa.len(), accounts.len());

    // Removal, unlock: done, recorded as root.
    assert_eq!(
        mfad.ask(&Request::AdminRemove {
            user: bob.name().to_owned(),
            name: "tablet".into(),
        }),
        Response::Done
    );
    let missing = mfad.ask(&Request::AdminRemove {
        user: bob.name().to_owned(),
        name: "tablet".into(),
    });
    assert_eq!(error_of(&missing).kind, ErrorKind::Invalid);
    assert_eq!(audit_actors(&env, bob.name(), "remove"), vec![0]);
    assert_eq!(
        mfad.ask(&Request::Unlock {
            user: bob.name().to_owned(),
        }),
        Response::Done
    );
    assert_eq!(audit_actors(&env, bob.name(), "unlock"), vec![0]);
    let nobody = mfad.ask(&Request::Unlock {
        user: "no-such-user-xyz".into(),
    });
    assert!(
        error_of(&nobody).message.contains("no such user"),
        "{nobody:?}"
    );

    // The audit trail, and its pruning (itself recorded).
    let Response::AuditRows(rows) = ask_ok(
        &mfad,
        &Request::Audit {
            user: Some(bob.name().to_owned()),
            since: Some("1h".into()),
        },
    ) else {
        panic!("no rows")
    };
    assert!(rows.iter().any(|r| r.action == "remove" && r.uid == 0));
    assert!(rows.iter().all(|r| r.user == bob.name()));
    let bad = mfad.ask(&Request::Audit {
        user: None,
        since: Some("yesterday".into()),
    });
    assert!(error_of(&bad).message.contains("--since"), "{bad:?}");
    let Response::Pruned { removed, rule } =
        ask_ok(&mfad, &Request::AuditPrune { older_than: None })
    else {
        panic!("not pruned")
    };
    assert_eq!(removed, 0);
    assert!(rule.contains("retention of 365 days"), "{rule}");
    let Response::AuditRows(rows) = ask_ok(
        &mfad,
        &Request::Audit {
            user: None,
            since: None,
        },
    ) else {
        panic!("no rows")
    };
    assert!(rows.iter().any(|r| r.action == "audit-prune" && r.uid == 0));
    assert!(rows.iter().any(|r| r.action == "policy" && r.uid == 0));
}

/// Issue 17, third step: a bypass code issued through mfad (root only) logs a locked-out
/// user in through VerifyRecovery, once; the code is never logged.
#[test]
fn a_bypass_code_from_mfad_logs_a_locked_out_user_in() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let dev = enroll_now(&env, alice.name(), "phone");
    let mfad = Mfad::start(&ns);
    let wrong = Request::VerifyCode {
        context: None,
        user: alice.name().to_owned(),
        answer: SecretBytes::from_slice(wrong_code_now(&dev.secret).as_bytes()),
        overrides: Overrides {
            max_failures: Some(2),
            lockout_secs: Some(3600),
            ..Overrides::default()
        },
    };
    let locked = (0..10).any(|_| {
        let r = mfad.ask(&wrong);
        matches!(refused_with_lock(&r), Some(Some(_)))
            || matches!(r, Response::Verified(VerifyOutcome::Locked { .. }))
    });
    assert!(locked, "alice was never locked out");
    assert!(matches!(
        mfad.ask(&verify(alice.name(), &next_code(&dev.secret))),
        Response::Verified(VerifyOutcome::Locked { .. })
    ));
    // Not for her to issue herself.
    let out = client_as(&ns, &client, &alice, &["bypass", alice.name(), "1", "1h"]);
    assert!(out.stdout.contains("Denied"), "{out:?}");
    assert!(!out.stdout.contains("code: "), "{out:?}");
    // Too long a life: mfa's words.
    let long = mfad.ask(&Request::Bypass {
        user: alice.name().to_owned(),
        uses: 1,
        expires_in: "8d".into(),
    });
    assert!(error_of(&long).message.contains("at most 7d"), "{long:?}");

    let Response::BypassCode(b) = ask_ok(
        &mfad,
        &Request::Bypass {
            user: alice.name().to_owned(),
            uses: 1,
            expires_in: "1h".into(),
        },
    ) else {
        panic!("no bypass code")
    };
    assert_eq!((b.user.as_str(), b.uses), (alice.name(), 1));
    let use_it = || {
        mfad.ask(&Request::VerifyRecovery {
            context: None,
            user: alice.name().to_owned(),
            code: b.code.clone(),
        })
    };
    assert_eq!(
        use_it(),
        Response::Recovery(pam_mfa_protocol::RecoveryOutcome::Accepted {
            kind: pam_mfa_protocol::CodeKind::Bypass,
            remaining: 0,
        })
    );
    assert_eq!(
        use_it(),
        Response::Recovery(pam_mfa_protocol::RecoveryOutcome::Refused)
    );
    assert_eq!(audit_actors(&env, alice.name(), "bypass"), vec![0]);
    let code = String::from_utf8_lossy(b.code.as_bytes()).into_owned();
    assert_code_not_logged(&ns.syslog().records(), &code);
}

/// The RFC 4226 HOTP code of the test secret for `counter`, from oathtool.
fn rfc4226_hotp(counter: i64) -> String {
    let out = Command::new(pam_mfa_tests::tool("oathtool", "oathtool"))
        .args(["--hotp", "--digits=6", "-c"])
        .arg(counter.to_string())
        .arg("3132333435363738393031323334353637383930")
        .output()
        .expect("oathtool");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// Issue 17, third step (keeping issue 16, finding 4): a user registering a token through
/// mfad gets the same one answer for an unknown serial and for a known one with wrong
/// codes, each try counts toward their lock-out (policy set through mfad), root is told
/// precisely; after an unlock the right codes register it, recorded as the user; a second
/// token then needs a proof.
#[test]
fn a_users_token_registration_through_mfad_has_one_answer_and_counts() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let seeds = env.path("seeds.csv");
    std::fs::write(
        &seeds,
        "serial,secret,type\nH-1,3132333435363738393031323334353637383930,hotp\n",
    )
    .expect("write the seed file");
    env.mfa_cmd(&["admin", "tokens", "import", seeds.to_str().expect("path")])
        .real_time()
        .run()
        .assert_success();
    let mfad = Mfad::start(&ns);
    assert_eq!(
        mfad.ask(&Request::PolicySet {
            key: "max_failures".into(),
            value: "3".into(),
        }),
        Response::Done
    );
    let (right1, right2) = (rfc4226_hotp(0), rfc4226_hotp(1));
    let (wrong1, wrong2) = (rfc4226_hotp(2), rfc4226_hotp(5));
    let enroll = |serial: &str, c1: &str, c2: &str| {
        let out = client_as(
            &ns,
            &client,
            &alice,
            &["enroll-token", alice.name(), "fob", serial, c1, c2],
        );
        field(&out, "response")
    };

    // Root is told precisely which is wrong.
    let root_unknown = mfad.ask(&Request::EnrollToken {
        user: alice.name().to_owned(),
        name: "fob".into(),
        serial: "NO-SUCH-1".into(),
        code1: SecretBytes::from_slice(right1.as_bytes()),
        code2: SecretBytes::from_slice(right2.as_bytes()),
        proof: None,
    });
    assert!(
        error_of(&root_unknown).message.contains("NO-SUCH-1"),
        "{root_unknown:?}"
    );

    let unknown = enroll("NO-SUCH-1", &right1, &right2);
    let known = enroll("H-1", &wrong1, &wrong2);
    assert_eq!(unknown, known, "the answers tell the serials apart");
    assert!(known.contains("was not registered"), "{known}");
    // Each try counts: within the policy's max_failures (3) she is locked out, every
    // answer before that the same; then not even the right codes are looked at.
    let mut last = known.clone();
    let mut tries = 2;
    while !last.contains("locked until") {
        assert_eq!(last, unknown);
        assert!(tries < 4, "never locked out after {tries} wrong tries");
        last = enroll(&format!("NO-SUCH-{tries}"), &right1, &right2);
        tries += 1;
    }
    let locked = enroll("H-1", &right1, &right2);
    assert!(locked.contains("locked until"), "{locked}");

    assert_eq!(
        mfad.ask(&Request::Unlock {
            user: alice.name().to_owned(),
        }),
        Response::Done
    );
    let done = enroll("H-1", &right1, &right2);
    assert!(
        done.contains("TokenRegistered") && done.contains("event_based: true"),
        "{done}"
    );
    assert_eq!(
        audit_actors(&env, alice.name(), "register"),
        vec![u64::from(alice.uid())]
    );
    // Now she has a device: another registration needs a proof of it.
    let second = client_as(
        &ns,
        &client,
        &alice,
        &[
            "enroll-token",
            alice.name(),
            "fob2",
            "H-1",
            &rfc4226_hotp(2),
            &rfc4226_hotp(3),
        ],
    );
    assert!(
        second.stdout.contains("Denied") && second.stdout.contains("current code"),
        "{second:?}"
    );
    let records = ns.syslog().records();
    for code in [&right1, &right2, &wrong1, &wrong2] {
        assert_code_not_logged(&records, code);
    }
}

// ----- Issue 17: security keys, registration at login, the token inventory -----

fn key_challenge(mfad: &Mfad, user: &str, purpose: KeyPurpose) -> KeyChallengeReply {
    match mfad.ask(&Request::KeyChallenge {
        user: user.to_owned(),
        purpose,
    }) {
        Response::KeyChallenge(c) => c,
        other => panic!("no key challenge for {user}: {other:?}"),
    }
}

fn key_answer(mfad: &Mfad, user: &str, ticket: &SecretBytes, a: &KeyAssertion) -> Response {
    mfad.ask(&Request::KeyAnswer {
        context: None,
        user: user.to_owned(),
        ticket: ticket.clone(),
        assertion: a.clone(),
    })
}

/// Registers a software key for `user` through BeginFido2 / FinishFido2 (as root).
fn register_soft_key(mfad: &Mfad, key: &SoftKey, user: &str, name: &str) {
    let begun = match ask_ok(
        mfad,
        &Request::BeginFido2 {
            user: user.to_owned(),
            name: name.to_owned(),
            rp_id: None,
            require_pin: false,
            require_uv: false,
            proof: None,
        },
    ) {
        Response::Fido2Challenge(c) => c,
        other => panic!("{other:?}"),
    };
    assert!(begun.rp_id.starts_with("pam://"), "{begun:?}");
    assert_eq!(begun.user_id.0.len(), 32);
    let attestation = key.register(&begun);
    match ask_ok(
        mfad,
        &Request::FinishFido2 {
            user: user.to_owned(),
            ticket: begun.ticket.clone(),
            attestation: attestation.clone(),
        },
    ) {
        Response::Fido2Registered(r) => assert_eq!(r.name, name),
        other => panic!("{other:?}"),
    }
    // The registration's ticket works once.
    let again = mfad.ask(&Request::FinishFido2 {
        user: user.to_owned(),
        ticket: begun.ticket,
        attestation,
    });
    assert_eq!(error_of(&again).kind, ErrorKind::Invalid, "{again:?}");
}

/// Issue 17: a login with a touch through mfad (KeyChallenge, the software key signs,
/// KeyAnswer): a right answer is accepted once; the same answer or ticket again, a ticket
/// presented for another account, and a signature from a key that is not registered are
/// refused; a proof by touch yields a proof; an account without keys gets no challenge.
#[test]
fn a_security_key_login_through_mfad_counts_once() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let alice = TestUser::new();
    let bob = TestUser::new();
    let mfad = Mfad::start(&ns);
    let key = SoftKey::new();
    register_soft_key(&mfad, &key, alice.name(), "yubikey");

    // No keys: no challenge.
    let none = mfad.ask(&Request::KeyChallenge {
        user: bob.name().to_owned(),
        purpose: KeyPurpose::Login,
    });
    assert_eq!(error_of(&none).kind, ErrorKind::Invalid, "{none:?}");

    let c = key_challenge(&mfad, alice.name(), KeyPurpose::Login);
    assert_eq!(c.challenge.0.len(), 32);
    assert_eq!(c.credentials.len(), 1);
    assert_eq!(c.credentials[0].name, "yubikey");
    let a = key.answer(&c);
    assert_eq!(
        key_answer(&mfad, alice.name(), &c.ticket, &a),
        Response::Verified(VerifyOutcome::Accepted {
            device: "yubikey".into()
        })
    );
    // The same answer to the same ticket: the ticket is gone.
    let replay = key_answer(&mfad, alice.name(), &c.ticket, &a);
    assert_eq!(error_of(&replay).kind, ErrorKind::Invalid, "{replay:?}");
    // A made-up ticket.
    let made_up = key_answer(&mfad, alice.name(), &SecretBytes::new(vec![0; 32]), &a);
    assert_eq!(error_of(&made_up).kind, ErrorKind::Invalid, "{made_up:?}");

    // Alice's ticket presented for bob: refused (and it stays alice's).
    let c = key_challenge(&mfad, alice.name(), KeyPurpose::Login);
    let a = key.answer(&c);
    let wrong = key_answer(&mfad, bob.name(), &c.ticket, &a);
    assert_eq!(error_of(&wrong).kind, ErrorKind::Invalid, "{wrong:?}");
    assert!(matches!(
        key_answer(&mfad, alice.name(), &c.ticket, &a),
        Response::Verified(VerifyOutcome::Accepted { .. })
    ));

    // An old answer to a new challenge does not verify.
    let c = key_challenge(&mfad, alice.name(), KeyPurpose::Login);
    match key_answer(&mfad, alice.name(), &c.ticket, &a) {
        Response::Verified(VerifyOutcome::Refused {
            reason: RefusalKind::Key { .. },
            locked_until: None,
        }) => {}
        other => panic!("an old signature was not refused: {other:?}"),
    }

    // A key that is not registered for her (it answers with its own credential).
    let stranger = SoftKey::new();
    let pretend = pam_mfa_protocol::Fido2ChallengeReply {
        ticket: SecretBytes::new(vec![1; 32]),
        rp_id: c.credentials[0].rp_id.clone(),
        challenge: pam_mfa_protocol::PublicBytes(vec![2; 32]),
        user_id: pam_mfa_protocol::PublicBytes(vec![3; 32]),
        user_name: alice.name().to_owned(),
        exclude: Vec::new(),
        needs_uv: false,
        needs_pin: false,
        expires_at: 0,
    };
    stranger.register(&pretend);
    stranger.knob("ignore_allow_list", true);
    let c = key_challenge(&mfad, alice.name(), KeyPurpose::Login);
    let forged = stranger.answer(&c);
    match key_answer(&mfad, alice.name(), &c.ticket, &forged) {
        Response::Verified(VerifyOutcome::Refused {
            reason:
                RefusalKind::Key {
                    message,
                    log,
                    clone_suspected,
                },
            locked_until: None,
        }) => {
            assert!(message.contains("not registered"), "{message}");
            assert!(log.contains("not one of the user's"), "{log}");
            assert!(!clone_suspected);
        }
        other => panic!("an unregistered key was not refused: {other:?}"),
    }

    // A proof by touch: a proof, as Reauth gives one.
    let c = key_challenge(&mfad, alice.name(), KeyPurpose::Proof);
    match key_answer(&mfad, alice.name(), &c.ticket, &key.answer(&c)) {
        Response::Proof(p) => assert_eq!(p.proof.as_bytes().len(), 32),
        other => panic!("no proof for a touch: {other:?}"),
    }

    let lines = mfad_lines(&ns);
    assert!(
        lines.iter().any(
            |l| l.contains("authenticated with device \"yubikey\"") && l.contains(alice.name())
        ),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("authentication failure") && l.contains("not one of the user's")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("registered security key \"yubikey\"")),
        "{lines:#?}"
    );
}

/// Issue 17 (issue 16, finding 2): registration at login through mfad, for root only:
/// begun, its two codes confirmed (still pending), then activated by the login's value; a
/// user asking is refused and logged.
#[test]
fn registration_at_login_through_mfad_is_roots_alone() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let mfad = Mfad::start(&ns);

    let held = match ask_ok(
        &mfad,
        &Request::BeginHeld {
            user: alice.name().to_owned(),
            name: "phone".into(),
            issuer: Some("host".into()),
        },
    ) {
        Response::HeldTotp(h) => h,
        other => panic!("{other:?}"),
    };
    assert_eq!(held.hold.as_bytes().len(), 32);
    let secret = String::from_utf8(held.pending.secret.as_bytes().to_vec()).expect("base32");
    let now = pam_mfa_tests::real_now();
    let (c1, c2) = (
        pam_mfa_tests::clock::totp(&secret, now - pam_mfa_tests::clock::STEP),
        pam_mfa_tests::clock::totp(&secret, now),
    );
    // Another value activates nothing.
    let other = mfad.ask(&Request::ActivateHeld {
        user: alice.name().to_owned(),
        hold: SecretBytes::new(vec![7; 32]),
    });
    assert!(matches!(other, Response::Error(_)), "{other:?}");
    assert_eq!(
        ask_ok(
            &mfad,
            &Request::ConfirmHeld {
                user: alice.name().to_owned(),
                name: "phone".into(),
                hold: held.hold.clone(),
                code1: SecretBytes::from_slice(c1.as_bytes()),
                code2: SecretBytes::from_slice(c2.as_bytes()),
            }
        ),
        Response::Done
    );
    let listed = format!(
        "{:?}",
        mfad.ask(&Request::ListDevices {
            user: alice.name().to_owned()
        })
    );
    assert!(listed.contains("\"pending\""), "{listed}");
    assert_eq!(
        ask_ok(
            &mfad,
            &Request::ActivateHeld {
                user: alice.name().to_owned(),
                hold: held.hold.clone(),
            }
        ),
        Response::Activated {
            name: "phone".into()
        }
    );
    let listed = format!(
        "{:?}",
        mfad.ask(&Request::ListDevices {
            user: alice.name().to_owned()
        })
    );
    assert!(listed.contains("\"active\""), "{listed}");
    assert!(matches!(
        mfad.ask(&Request::ActivateHeld {
            user: alice.name().to_owned(),
            hold: held.hold,
        }),
        Response::Error(_)
    ));

    // A user may not begin one, not even for herself.
    let out = client_as(&ns, &client, &alice, &["begin-held", alice.name(), "x"]);
    assert!(
        out.stdout.contains("Denied") && out.stdout.contains("only root"),
        "{out:?}"
    );
    let lines = mfad_lines(&ns);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("uid {} asked begin-held", alice.uid()))),
        "{lines:#?}"
    );
    let records = ns.syslog().records();
    for text in [&secret, &c1, &c2] {
        assert_code_not_logged(&records, text);
    }
}

/// Issue 17: the hardware-token inventory through mfad, for root only: a seed file
/// imported (in a frame over the users' 64 KiB limit), listed, a token removed; a user
/// asking is refused and logged, and a user's frame over 64 KiB is refused unread.
#[test]
fn the_token_inventory_through_mfad_is_roots_and_root_may_send_large_frames() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let mfad = Mfad::start(&ns);

    // A seed file padded with comment lines past 64 KiB.
    let mut csv = String::from("serial,secret,type\n");
    csv.push_str("TK-1,3132333435363738393031323334353637383930,totp\n");
    csv.push_str("TK-2,3132333435363738393031323334353637383931,hotp\n");
    while csv.len() <= pam_mfa_protocol::MAX_MESSAGE + 1024 {
        csv.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    match ask_ok(
        &mfad,
        &Request::TokensImport {
            data: SecretBytes::from_slice(csv.as_bytes()),
            format: None,
            key: None,
            replace: false,
        },
    ) {
        Response::TokensImported(r) => {
            assert_eq!((r.added, r.replaced, r.format.as_str()), (2, 0, "csv"))
        }
        other => panic!("{other:?}"),
    }
    let bad = mfad.ask(&Request::TokensImport {
        data: SecretBytes::from_slice(b"TK-3,not a secret!\n"),
        format: Some("csv".into()),
        key: None,
        replace: false,
    });
    assert_eq!(error_of(&bad).kind, ErrorKind::Invalid, "{bad:?}");
    let Response::Tokens(list) = ask_ok(&mfad, &Request::TokensList) else {
        panic!("no token list")
    };
    let serials: Vec<(&str, &str)> = list
        .iter()
        .map(|t| (t.serial.as_str(), t.kind.as_str()))
        .collect();
    assert_eq!(serials, vec![("TK-1", "totp"), ("TK-2", "hotp")]);
    assert_eq!(
        ask_ok(
            &mfad,
            &Request::TokensRemove {
                serial: "TK-1".into()
            }
        ),
        Response::Done
    );
    let Response::Tokens(list) = ask_ok(&mfad, &Request::TokensList) else {
        panic!("no token list")
    };
    assert_eq!(list.len(), 1);
    let audit = format!(
        "{:?}",
        ask_ok(
            &mfad,
            &Request::Audit {
                user: None,
                since: None
            }
        )
    );
    assert!(
        audit.contains("token-import") && audit.contains("token-remove"),
        "{audit}"
    );

    // A user: refused and logged; a frame over 64 KiB refused from its length.
    let out = client_as(&ns, &client, &alice, &["tokens-list"]);
    assert!(
        out.stdout.contains("Denied") && out.stdout.contains("only root"),
        "{out:?}"
    );
    let out = client_as(&ns, &client, &alice, &["big", "70000"]);
    assert!(out.stdout.contains("TooLarge"), "{out:?}");
    let lines = mfad_lines(&ns);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("uid {} asked tokens-list", alice.uid()))),
        "{lines:#?}"
    );
    // The daemon serves on.
    assert!(matches!(mfad.ask(&Request::Hello), Response::Hello { .. }));
}

/// Issue 21: a login's context counts only when root sends it (the module inside sshd,
/// sudo, su). A user who sends one for their own account on their own socket gets their
/// code checked as always, and nothing is remembered: otherwise anyone could exempt
/// their next SSH login from the code.
#[test]
fn only_root_can_have_a_login_remembered() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let client = Client::install();
    let alice = TestUser::new();
    let first = enroll_now(&env, alice.name(), "first");
    let second = enroll_now(&env, alice.name(), "second");
    env.mfa(&["admin", "policy", "set", "remember_seconds", "600"])
        .assert_success();
    let mfad = Mfad::start(&ns);
    let context = || pam_mfa_protocol::LoginContext {
        service: "sshd".to_owned(),
        rhost: "192.0.2.7".to_owned(),
        remember_secs: None,
    };
    let remembered = |mfad: &Mfad| match mfad.ask(&Request::BeforePrompt {
        line: None,
        user: alice.name().to_owned(),
        want_keys: false,
        context: Some(context()),
    }) {
        Response::BeforePrompt(b) => b.remembered_until,
        other => panic!("{other:?}"),
    };

    let out = client_as(
        &ns,
        &client,
        &alice,
        &[
            "verify-in",
            alice.name(),
            &next_code(&first.secret),
            "sshd",
            "192.0.2.7",
        ],
    );
    assert!(out.stdout.contains("Accepted"), "{out:?}");
    assert_eq!(
        remembered(&mfad),
        None,
        "a user's own context was remembered"
    );
    let out = client_as(
        &ns,
        &client,
        &alice,
        &["before-prompt-in", alice.name(), "sshd", "192.0.2.7"],
    );
    assert!(out.stdout.contains("remembered_until: None"), "{out:?}");

    // The same from root is remembered.
    let accepted = mfad.ask(&Request::VerifyCode {
        user: alice.name().to_owned(),
        answer: SecretBytes::from_slice(next_code(&second.secret).as_bytes()),
        overrides: Overrides::default(),
        context: Some(context()),
    });
    assert!(
        matches!(accepted, Response::Verified(VerifyOutcome::Accepted { .. })),
        "{accepted:?}"
    );
    assert!(remembered(&mfad).is_some());
}

/// The daemon folds its store's WAL between requests and then writes over it rather than
/// cutting or growing it: after many logins' commits through it the WAL file stays at
/// about the fold size, and every commit is in the store. (A daemon that left folding to
/// SQLite's automatic checkpoint, at 1,000 frames, would have a WAL of more than twice
/// that; one that cut the file at each fold would mostly have less.)
#[test]
fn the_daemon_keeps_its_wal_short_and_writes_over_it() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let alice = TestUser::new();
    let dev = enroll_now(&env, alice.name(), "phone");
    let mfad = Mfad::start(&ns);
    let fold = u64::from(pam_mfa::store::RESIDENT_FOLD_FRAMES);
    // Wrong codes, each a commit of the failure count: root's overrides keep them from
    // locking her out.
    let wrong = Request::VerifyCode {
        context: None,
        user: alice.name().to_owned(),
        answer: SecretBytes::from_slice(wrong_code_now(&dev.secret).as_bytes()),
        overrides: Overrides {
            max_failures: Some(1000),
            ..Overrides::default()
        },
    };
    let attempts = 3 * fold;
    for _ in 0..attempts {
        assert_eq!(refused_with_lock(&mfad.ask(&wrong)), Some(None));
    }
    let wal = env.db().with_file_name("devices.db-wal");
    let frames = std::fs::metadata(&wal).unwrap().len() / (4096 + 24);
    // A fold waits for a request that came first, so the WAL may pass the mark by a few
    // requests' frames.
    assert!(
        (fold..=fold + fold / 4).contains(&frames),
        "{frames} frames in the WAL after {attempts} commits (folds at {fold})"
    );
    let failures = env.failures(alice.name());
    assert!(
        failures >= i64::try_from(attempts).unwrap(),
        "{failures} failures counted after {attempts} wrong codes"
    );
}

/// A change other than a login's (here, removing a device) may leave a secret's old pages
/// in the WAL; the daemon empties it afterwards, so the removed device's secret is in no
/// file of the store (the database itself runs with `secure_delete`).
#[test]
fn after_a_device_is_removed_its_secret_is_in_no_file_of_the_store() {
    let env = TestEnv::new();
    let ns = Namespace::new(&env);
    let alice = TestUser::new();
    let phone = enroll_now(&env, alice.name(), "phone");
    let tablet = enroll_now(&env, alice.name(), "tablet");
    let raw = pam_mfa::secret::Secret::from_base32(&tablet.secret).unwrap();
    let raw = raw.as_bytes().to_vec();
    let mfad = Mfad::start(&ns);
    let wal = env.db().with_file_name("devices.db-wal");
    let holds = |path: &std::path::Path| {
        std::fs::read(path)
            .unwrap_or_default()
            .windows(raw.len())
            .any(|w| w == raw.as_slice())
    };
    // Logins write the devices' pages, the tablet's secret with them, into the WAL.
    assert!(matches!(
        mfad.ask(&verify(alice.name(), &next_code(&phone.secret))),
        Response::Verified(VerifyOutcome::Accepted { .. })
    ));
    assert!(
        holds(&wal) || holds(env.db()),
        "the test cannot see the secret at all"
    );
    assert_eq!(
        mfad.ask(&Request::Remove {
            user: alice.name().to_owned(),
            name: "tablet".into(),
            proof: None,
        }),
        Response::Done
    );
    // Emptied before the answer: when `mfa remove` says done, the secret is gone.
    assert!(
        !holds(&wal),
        "the removed device's secret is still in the WAL"
    );
    assert!(
        !holds(env.db()),
        "the removed device's secret is still in the store file"
    );
    assert!(matches!(
        mfad.ask(&verify(alice.name(), &next_code(&phone.secret))),
        Response::Verified(_)
    ));
}
