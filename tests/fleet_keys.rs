//! Security keys of accounts kept in the fleet's PostgreSQL database (issue 19): each
//! host's `mfad` is the relying party, reads only the keys' public keys and sign counts
//! from the database, checks the answer with the local store's code, and records the login
//! through `record_key_login`, which refuses a sign count that did not grow, under the
//! user's lock, for every host at once.
//!
//! Driven as tests/fido2.rs drives the local store: the real `mfa enroll fido2` and the
//! real libpam, against the software authenticator of the workspace's debug build
//! (selected by `PAM_MFA_SOFT_FIDO2`), on two hosts of one database (tests/src/fleet.rs).

use std::process::Command;

use pam_mfa_protocol::{KeyPurpose, Request, Response, VerifyOutcome};
use pam_mfa_tests::fleet::{DB, Host, enroll, fleet_database};
use pam_mfa_tests::keys::{
    self, SoftFido2Key as Key, assert_refused_saying, assert_touched_and_accepted,
};
use pam_mfa_tests::mfad::{SoftKey, ask_at};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::{MfaOutput, PamCode, PamOutcome, PamRun, TestUser, real_now, totp};
use serde_json::json;

/// Root's `mfa --user USER enroll fido2 NAME` on `host`, with `key` plugged in.
fn enroll_key(host: &Host, user: &str, name: &str, key: &Key) -> MfaOutput {
    keys::enroll_key(&host.env, user, name, key, &[])
}

/// A login at `host`'s console with `key` plugged in.
fn at_console<'a>(host: &'a Host, user: &str, key: &Key) -> PamRun<'a> {
    keys::at_console(&host.env, user, key)
}

/// A refusal with the person's message `message`, and `log` in the host's log (the
/// module's syslog or its daemon's).
#[track_caller]
fn assert_refused(host: &Host, out: &PamOutcome, message: &str, log: &str) {
    assert_refused_saying(out, message);
    assert!(
        out.syslog().iter().any(|(_, l)| l.contains(log)) || host.env.mfad_logged(log),
        "expected {log:?} logged\n{}\n{}",
        out.transcript(),
        host.env.mfad_stderr()
    );
}

/// `host action device detail` of the user's audit rows, oldest first.
fn audit(pg: &Postgres, user: &str) -> String {
    pg.psql(
        DB,
        &format!(
            "SELECT host || ' ' || action || ' ' || coalesce(device, '-') || ' ' \
             || coalesce(detail, '-') FROM pam_mfa_fleet.audit WHERE user_name = '{user}' \
             ORDER BY id"
        ),
    )
}

/// The stored sign count of the user's key `name`.
fn stored_count(pg: &Postgres, user: &str, name: &str) -> u64 {
    pg.psql(
        DB,
        &format!(
            "SELECT sign_count FROM pam_mfa_fleet.devices \
             WHERE user_name = '{user}' AND name = '{name}'"
        ),
    )
    .trim()
    .parse()
    .expect("a sign count")
}

/// `sql` run by psql in the fleet's database as the host role `role` (a login of the
/// superuser that then becomes the role, as the role's own login would be): its output,
/// or its error.
fn as_role(pg: &Postgres, role: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(pg.socket_dir())
        .args(["-p", &pg.port().to_string(), "-U", "postgres", "-d", DB])
        .args(["-c", &format!("SET ROLE {role}"), "-c", sql])
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_key_registered_through_one_host_logs_in_on_another_and_a_clone_is_refused_everywhere() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let alice = TestUser::new();
    let key = Key::new(&a.env, "alice");

    let out = enroll_key(&a, alice.name(), "yubi", &key);
    out.assert_success();
    assert!(
        out.stdout.contains("Security key \"yubi\" is active"),
        "{}",
        out.stdout
    );
    // Host B knows the key it never saw registered.
    let listed = b.env.listed(alice.name(), "yubi").expect("B lists the key");
    assert_eq!(listed["kind"], "fido2");
    assert_eq!(listed["state"], "active");
    // The registration's rules are the database's, from every host: the same key again,
    // or the name again, are refused.
    let again = enroll_key(&b, alice.name(), "yubi-again", &key);
    again.assert_exit(1);
    assert!(again.stderr.contains("already registered"), "{again:?}");
    let taken = enroll_key(&b, alice.name(), "yubi", &Key::new(&b.env, "other"));
    taken.assert_exit(1);
    assert!(taken.stderr.contains("taken"), "{taken:?}");
    assert_eq!(b.env.list(alice.name()).len(), 1);

    // A touch logs in on B, then on A; the count the database keeps follows the key's.
    for host in [&b, &a] {
        assert_touched_and_accepted(&at_console(host, alice.name(), &key).run());
        assert_eq!(stored_count(&pg, alice.name(), "yubi"), key.counter());
    }
    let last_used = b.env.listed(alice.name(), "yubi").unwrap()["last_used"].clone();
    assert!(last_used.is_number(), "last use not recorded: {last_used}");

    // A clone of the key (or a replayed answer) signs with a count that does not grow past
    // the one the last login on A stored: refused on B, and on A, nothing stored.
    let stored = stored_count(&pg, alice.name(), "yubi");
    let mut s = key.state();
    s["counter"] = json!(stored - 1);
    key.write(&s);
    assert_refused(
        &b,
        &at_console(&b, alice.name(), &key).run(),
        "not accepted",
        "sign count went backwards",
    );
    assert_eq!(stored_count(&pg, alice.name(), "yubi"), stored);
    key.knob("counter_backwards", true);
    assert_refused(
        &a,
        &at_console(&a, alice.name(), &key).run(),
        "not accepted",
        "may have been cloned",
    );
    assert_eq!(stored_count(&pg, alice.name(), "yubi"), stored);
    let rows = audit(&pg, alice.name());
    for host in [&b, &a] {
        assert!(
            rows.contains(&format!(
                "{} login-refused yubi security key \"yubi\" refused: the sign count went \
                 backwards",
                host.role
            )),
            "{rows}"
        );
    }
    // Counting on from above the stored count is accepted again, on either host.
    key.knob("counter_backwards", false);
    let mut s = key.state();
    s["counter"] = json!(stored);
    key.write(&s);
    assert_touched_and_accepted(&at_console(&b, alice.name(), &key).run());
    assert_eq!(stored_count(&pg, alice.name(), "yubi"), stored + 1);
    let rows = audit(&pg, alice.name());
    assert!(
        rows.contains(&format!("{} register yubi fido2", a.role))
            && rows.contains(&format!("{} login-accepted yubi", b.role)),
        "{rows}"
    );
}

#[test]
fn a_wrong_signature_is_refused_and_audited_and_keys_are_neither_counted_nor_stopped_by_the_lock_out()
 {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let bob = TestUser::new();
    let key = Key::new(&a.env, "bob");
    enroll_key(&a, bob.name(), "yubi", &key).assert_success();
    let before = stored_count(&pg, bob.name(), "yubi");

    key.knob("tamper_signature", true);
    // More refusals than the lock-out's limit (5), over both hosts.
    for i in 0..6 {
        let host = if i % 2 == 0 { &a } else { &b };
        assert_refused(
            host,
            &at_console(host, bob.name(), &key).run(),
            "not accepted",
            "signature does not verify",
        );
    }
    // Nothing stored, each refusal audited by the host that saw it, and no lock-out: as
    // in the local store (tests/fido2.rs, keys_are_neither_counted_nor_stopped_by_the_lock_out),
    // a signature cannot be guessed, and counting refused keys would let anyone lock the
    // owner out.
    assert_eq!(stored_count(&pg, bob.name(), "yubi"), before);
    let rows = audit(&pg, bob.name());
    for host in [&a, &b] {
        assert_eq!(
            rows.lines()
                .filter(
                    |l| l.starts_with(&format!("{} login-refused yubi", host.role))
                        && l.contains("signature does not verify")
                )
                .count(),
            3,
            "{rows}"
        );
    }
    let locked = pg.psql(
        DB,
        &format!(
            "SELECT locked_until IS NOT NULL FROM pam_mfa_fleet.login_state('{}')",
            bob.name()
        ),
    );
    assert_eq!(locked.trim(), "f");
    key.knob("tamper_signature", false);
    assert_touched_and_accepted(&at_console(&b, bob.name(), &key).run());

    // Locked out by wrong codes typed from afar (where codes are asked for), on both
    // hosts: the key still logs in at either console, and the codes stay locked.
    let secret = enroll(&a, bob.name(), "phone");
    for i in 0..5 {
        let host = if i % 2 == 0 { &a } else { &b };
        host.env
            .pam(bob.name())
            .rhost("192.0.2.7")
            .answer(&pam_mfa_tests::wrong_code(&secret, real_now(), 2))
            .run()
            .assert_result(PamCode::AuthErr);
    }
    for host in [&a, &b] {
        let out = at_console(host, bob.name(), &key).run();
        out.assert_success();
        assert!(
            out.infos().iter().any(|i| i.contains("locked until")),
            "{}",
            out.transcript()
        );
    }
    b.env
        .pam(bob.name())
        .rhost("192.0.2.7")
        .answer(&totp(&secret, real_now() + 30))
        .run()
        .assert_locked_out();
}

#[test]
fn a_host_role_reads_only_public_keys_and_counts() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let carol = TestUser::new();
    let key = Key::new(&a.env, "carol");
    // An app too: its secret must not come back through the key functions.
    let secret = enroll(&a, carol.name(), "phone");
    enroll_key(&a, carol.name(), "yubi", &key).assert_success();

    let keys = as_role(
        &pg,
        &a.role,
        &format!(
            "SELECT name, encode(credential_id, 'hex'), encode(cose_public_key, 'hex'), \
             sign_count, rp_id, uv_required FROM pam_mfa_fleet.keys('{}')",
            carol.name()
        ),
    )
    .expect("the host reads the keys");
    let rows: Vec<&str> = keys.lines().collect();
    assert_eq!(rows.len(), 1, "only the key, not the app: {keys}");
    let fields: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(fields[0], "yubi");
    assert_eq!(fields[3], key.counter().to_string());
    assert_eq!(fields[5], "f");
    let state = key.state();
    let credential = &state["credentials"][0];
    assert_eq!(
        credential["id"].as_str().map(str::to_lowercase),
        Some(fields[1].to_owned()),
        "{credential}"
    );
    // Nothing secret: not the app's secret (hex or base32), not the key's private key.
    let app_hex = pg.psql(
        DB,
        &format!(
            "SELECT encode(secret, 'hex') FROM pam_mfa_fleet.devices \
             WHERE user_name = '{}' AND name = 'phone'",
            carol.name()
        ),
    );
    for (what, value) in [
        ("app secret", app_hex.trim().to_owned()),
        ("base32", secret),
    ] {
        assert!(!value.is_empty());
        assert!(!keys.contains(&value), "keys() returned the {what}");
    }
    for private in key.private_keys() {
        assert!(!keys.to_lowercase().contains(&private.to_lowercase()));
    }
    // The exclusion list of a registration is the key's credential id only.
    let exclude = as_role(
        &pg,
        &a.role,
        &format!(
            "SELECT encode(b, 'hex') FROM pam_mfa_fleet.begin_key('{}', 'new') b",
            carol.name()
        ),
    )
    .expect("begin_key");
    assert_eq!(exclude.trim(), fields[1]);
    // The table and the owner-only functions stay closed to the host.
    for sql in [
        "SELECT secret FROM pam_mfa_fleet.devices".to_owned(),
        "UPDATE pam_mfa_fleet.devices SET sign_count = 0".to_owned(),
        format!("SELECT * FROM pam_mfa_fleet.keys_at('{}', 0)", carol.name()),
        format!(
            "SELECT * FROM pam_mfa_fleet.record_key_login_at('{}', 0, '\\x01', '\\x02', 1, 0)",
            carol.name()
        ),
    ] {
        let e = as_role(&pg, &a.role, &sql).expect_err(&sql);
        assert!(e.contains("permission denied"), "{sql}: {e}");
    }
    // A count recorded by hand that does not grow is refused by the database itself,
    // with both counts 0 the only exception (check_counter's rule: a key that does not
    // count).
    let cred = fields[1];
    let cose = fields[2];
    let record = |count: u64| {
        as_role(
            &pg,
            &a.role,
            &format!(
                "SELECT outcome FROM pam_mfa_fleet.record_key_login('{}', 0, \
                 '\\x{cred}', '\\x{cose}', {count})",
                carol.name()
            ),
        )
        .expect("record_key_login")
        .trim()
        .to_owned()
    };
    let now = key.counter();
    assert_eq!(record(now), "counter_regression");
    assert_eq!(record(now + 5), "accepted");
    assert_eq!(record(now + 5), "counter_regression");
    assert_eq!(record(now + 4), "counter_regression");
    pg.psql(
        DB,
        "UPDATE pam_mfa_fleet.devices SET sign_count = 0 WHERE kind = 'fido2'",
    );
    assert_eq!(record(0), "accepted");
    assert_eq!(record(0), "accepted");
    assert_eq!(record(1), "accepted");
    assert_eq!(record(0), "counter_regression");
    // Another user's key is not this user's.
    let other = as_role(
        &pg,
        &a.role,
        &format!(
            "SELECT outcome FROM pam_mfa_fleet.record_key_login('nobody-{}', 0, \
             '\\x{cred}', '\\x{cose}', 100)",
            carol.name()
        ),
    )
    .expect("record_key_login");
    assert_eq!(other.trim(), "unknown_credential");
}

/// One request to `host`'s `mfad`, as root.
fn ask(host: &Host, request: &Request) -> Response {
    ask_at(&host.env.socket(), request).unwrap_or_else(|e| {
        panic!(
            "mfad did not answer {request:?}: {e}\n{}",
            host.env.mfad_stderr()
        )
    })
}

fn challenge(host: &Host, user: &str) -> pam_mfa_protocol::KeyChallengeReply {
    match ask(
        host,
        &Request::KeyChallenge {
            user: user.to_owned(),
            purpose: KeyPurpose::Login,
        },
    ) {
        Response::KeyChallenge(c) => c,
        other => panic!("no key challenge: {other:?}"),
    }
}

/// The database's own check, for what no host can see: host B issued its challenge
/// when the stored count was N; the key answered it (N + 1) but that answer reached B only
/// after a later touch (N + 2) had logged in on A. B's snapshot lets N + 1 pass; the
/// database, under the user's lock, refuses it as not growing past N + 2.
#[test]
fn an_answer_overtaken_by_a_later_login_on_another_host_is_refused_by_the_database() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let dave = TestUser::new();
    let key = SoftKey::new();
    let begun = match ask(
        &a,
        &Request::BeginFido2 {
            user: dave.name().to_owned(),
            name: "yubi".to_owned(),
            rp_id: None,
            require_pin: false,
            require_uv: false,
            proof: None,
        },
    ) {
        Response::Fido2Challenge(c) => c,
        other => panic!("{other:?}"),
    };
    let attestation = key.register(&begun);
    match ask(
        &a,
        &Request::FinishFido2 {
            user: dave.name().to_owned(),
            ticket: begun.ticket,
            attestation,
        },
    ) {
        Response::Fido2Registered(r) => assert_eq!(r.name, "yubi"),
        other => panic!("{other:?}"),
    }
    let on_b = challenge(&b, dave.name());
    let early = key.answer(&on_b);
    let on_a = challenge(&a, dave.name());
    let later = key.answer(&on_a);
    let answer = |host: &Host, c: &pam_mfa_protocol::KeyChallengeReply, a| {
        ask(
            host,
            &Request::KeyAnswer {
                context: None,
                user: dave.name().to_owned(),
                ticket: c.ticket.clone(),
                assertion: a,
            },
        )
    };
    assert_eq!(
        answer(&a, &on_a, later),
        Response::Verified(VerifyOutcome::Accepted {
            device: "yubi".into()
        })
    );
    let stored = stored_count(&pg, dave.name(), "yubi");
    match answer(&b, &on_b, early) {
        Response::Verified(VerifyOutcome::Refused {
            locked_until: None, ..
        }) => {}
        other => panic!("an overtaken answer was not refused: {other:?}"),
    }
    assert_eq!(stored_count(&pg, dave.name(), "yubi"), stored);
    let rows = audit(&pg, dave.name());
    assert!(
        rows.contains(&format!(
            "{} login-refused yubi sign count {} did not grow past {stored}",
            b.role,
            stored - 1
        )),
        "{rows}"
    );
    assert!(
        b.env.mfad_logged("may have been cloned"),
        "{}",
        b.env.mfad_stderr()
    );

    // A touch also proves the account before a change (KeyPurpose::Proof), on any host,
    // recorded as a key login is (the key's count moves on).
    let proof = match ask(
        &b,
        &Request::KeyChallenge {
            user: dave.name().to_owned(),
            purpose: KeyPurpose::Proof,
        },
    ) {
        Response::KeyChallenge(c) => c,
        other => panic!("no proof challenge: {other:?}"),
    };
    let touched = key.answer(&proof);
    match answer(&b, &proof, touched) {
        Response::Proof(p) => assert!(!p.proof.as_bytes().is_empty()),
        other => panic!("a touch gave no proof: {other:?}"),
    }
    assert!(stored_count(&pg, dave.name(), "yubi") > stored);
}

/// The database's sign-count rule is the library's (`check_counter`, which the local
/// store applies): the same stored and reported counts, edge cases and random ones, give
/// the same verdict, and an accepted count is the one stored.
#[test]
fn the_databases_sign_count_rule_is_the_librarys() {
    let pg = fleet_database();
    let user = "counter-user";
    pg.psql(
        DB,
        &format!(
            "SELECT pam_mfa_fleet.add_key_at('{user}', 0, 'yubi', '\\x0102', '\\x0304', 0, \
             'pam://fleet', false, 1)"
        ),
    );
    let max = u64::from(u32::MAX);
    let mut cases: Vec<(u64, u64)> = vec![
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (1, 2),
        (5, 4),
        (max - 1, max),
        (max, max),
        (max, 0),
    ];
    let seed = pam_mfa_tests::random::random_seed();
    eprintln!("seed {seed}");
    let mut rng = pam_mfa_tests::random::Rng::seeded(seed);
    for _ in 0..200 {
        let pick = |rng: &mut pam_mfa_tests::random::Rng| match rng.below(4) {
            0 => rng.below(3),
            1 => max - rng.below(3),
            _ => rng.below(max + 1),
        };
        let stored = pick(&mut rng);
        // Often near the stored count, where the rule decides.
        let got = if rng.chance(50) {
            (stored + rng.below(3)).saturating_sub(1).min(max)
        } else {
            pick(&mut rng)
        };
        cases.push((stored, got));
    }
    let sql: String = cases
        .iter()
        .map(|(stored, got)| {
            format!(
                "UPDATE pam_mfa_fleet.devices SET sign_count = {stored} WHERE user_name = '{user}';
                 SELECT outcome || ' ' || sign_count
                 FROM pam_mfa_fleet.record_key_login_at('{user}', 0, '\\x0102', '\\x0304',
                                                        {got}, 2);
                 SELECT 'stored ' || sign_count FROM pam_mfa_fleet.devices
                 WHERE user_name = '{user}';\n"
            )
        })
        .collect();
    let out = pg.psql(DB, &sql);
    let answers: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(answers.len(), 2 * cases.len(), "{out}");
    for ((stored, got), answer) in cases.iter().zip(answers.chunks(2)) {
        let library =
            pam_mfa::fido2::verify::check_counter(*stored as u32, *got as u32).map(u64::from);
        let expected = match library {
            Ok(count) => [format!("accepted {count}"), format!("stored {count}")],
            Err(_) => [
                format!("counter_regression {stored}"),
                format!("stored {stored}"),
            ],
        };
        assert_eq!(answer, expected, "seed {seed}: stored {stored}, got {got}");
    }
}
