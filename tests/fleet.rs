//! A fleet of hosts on one PostgreSQL database (issue 19): two hosts, each its own `mfad`
//! with its own host role and its own PAM service, on one real PostgreSQL server (TLS,
//! the harness's CA, `localhost` verified), driven through the real `pam_mfa.so` and the
//! real `mfa`. The database's functions check and record every code with the database's
//! clock, so the codes here are the real time's (from `oathtool`).

use std::time::{Duration, Instant};

use pam_mfa_tests::fleet::{DB, Host, enroll, fleet_database, guide, run_guide};
use pam_mfa_tests::guide::fleet_guide_text;
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::{PamCode, TestUser, mfa_bin, next_code as fresh_code, race, real_now, totp};

/// The fleet guide has no block the tests do not run or check.
#[test]
fn every_block_of_the_fleet_guide_is_a_snippet_the_tests_use() {
    let text = fleet_guide_text();
    // This file's tests and the fleet harness they share.
    let this_file = [include_str!("fleet.rs"), include_str!("src/fleet.rs")].concat();
    for block in pam_mfa_tests::guide::blocks(&text) {
        let name = block.name.unwrap_or_else(|| {
            panic!(
                "docs/fleet.md line {}: a block without a snippet marker",
                block.line
            )
        });
        assert!(
            this_file.contains(&format!("\"{name}\"")),
            "docs/fleet.md's snippet {name} is used by no test"
        );
    }
}

#[test]
fn one_registration_serves_every_host_and_a_code_is_used_once_in_the_fleet() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let alice = TestUser::new();
    let secret = enroll(&a, alice.name(), "phone");

    // Host B knows the device it never saw registered, and never shows its secret.
    let listed = b.env.list(alice.name());
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "phone");
    assert_eq!(listed[0]["state"], "active");
    assert!(!format!("{listed:?}").contains(&secret));

    // A fresh code (the next step's: within the window, after the steps the registration
    // used) logs in on B, and is refused on A afterwards as used.
    let code = fresh_code(&secret);
    b.env
        .login(alice.name(), &code)
        .assert_result(PamCode::Success);
    let again = a.env.login(alice.name(), &code);
    again.assert_result(PamCode::AuthErr);
    assert!(
        again.transcript().contains("already used") || a.env.mfad_logged("already used"),
        "the replay was not named: {}\n{}",
        again.transcript(),
        a.env.mfad_stderr()
    );
    // Audited in the database with the host's role that saw it.
    let audit = pg.psql(
        DB,
        &format!(
            "SELECT host || ' ' || action FROM pam_mfa_fleet.audit WHERE user_name = '{}' \
             ORDER BY id",
            alice.name()
        ),
    );
    assert!(
        audit.contains(&format!("{} login-accepted", b.role)),
        "{audit}"
    );
    assert!(
        audit.contains(&format!("{} login-refused", a.role)),
        "{audit}"
    );
}

#[test]
fn failures_on_two_hosts_lock_the_account_on_both_and_sixteen_logins_with_one_code_win_once() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let bob = TestUser::new();
    let secret = enroll(&a, bob.name(), "phone");

    // Sixteen logins at once, eight on each host, all with the same fresh code.
    let code = fresh_code(&secret);
    let runs: Vec<_> = (0..16)
        .map(|i| {
            let host = if i % 2 == 0 { &a } else { &b };
            host.env.pam(bob.name()).answer(&code)
        })
        .collect();
    let outcomes: Vec<PamCode> = race(&runs).into_iter().map(|o| o.result).collect();
    let won = outcomes.iter().filter(|c| **c == PamCode::Success).count();
    assert_eq!(won, 1, "one code let in {won} of 16 logins: {outcomes:?}");

    // Five wrong codes (the default limit), split over the two hosts: locked on both.
    pg.psql(
        DB,
        &format!("SELECT pam_mfa_fleet.unlock_at('{}', 0, 0)", bob.name()),
    );
    for i in 0..5 {
        let host = if i % 2 == 0 { &a } else { &b };
        host.env
            .login(
                bob.name(),
                &pam_mfa_tests::wrong_code(&secret, real_now(), 2),
            )
            .assert_result(PamCode::AuthErr);
    }
    let right = totp(&secret, real_now() + 30);
    for host in [&a, &b] {
        host.env
            .pam(bob.name())
            .answer(&right)
            .run()
            .assert_locked_out();
    }
}

/// `mfa admin fleet policy …` as the database's administrator (asserts nothing).
fn fleet_policy(pg: &Postgres, args: &[&str]) -> std::process::Output {
    std::process::Command::new(mfa_bin())
        .args(["admin", "fleet", "policy"])
        .args(args)
        .arg("--connection")
        .arg(pg.superuser(DB))
        .output()
        .expect("run mfa admin fleet policy")
}

#[test]
fn the_fleets_policy_is_set_once_and_every_host_follows_it() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let frank = TestUser::new();
    let secret = enroll(&a, frank.name(), "phone");

    let set = fleet_policy(&pg, &["set", "max_failures", "2"]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let shown = fleet_policy(&pg, &["show", "--json"]);
    let json: serde_json::Value =
        serde_json::from_slice(&shown.stdout).expect("policy show --json prints JSON");
    assert_eq!(json["max_failures"], 2, "{json}");
    assert_eq!(json["lockout_seconds"], 300, "{json}");
    assert_eq!(json["audit_retention_days"], 365, "{json}");
    let set = fleet_policy(&pg, &["set", "audit_retention_days", "90"]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let shown = fleet_policy(&pg, &["show"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().eq(["audit_retention_days", "90"])),
        "{text}"
    );
    for bad in [
        &["set", "max_failures", "0"][..],
        &["set", "audit_retention_days", "36501"],
        &["set", "no_such_key", "1"],
    ] {
        let out = fleet_policy(&pg, bad);
        assert!(!out.status.success(), "{bad:?} was taken");
        assert!(!out.stderr.is_empty(), "{bad:?} failed without a word");
    }

    // Two wrong codes, one on each host: locked on both, as the fleet's policy says.
    let wrong = pam_mfa_tests::wrong_code(&secret, real_now(), 2);
    a.env
        .login(frank.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    b.env
        .login(frank.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    a.env
        .pam(frank.name())
        .answer(&fresh_code(&secret))
        .run()
        .assert_locked_out();
}

#[test]
fn with_the_database_down_fleet_logins_are_unavailable_and_local_accounts_still_log_in() {
    let mut pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let carol = TestUser::new();
    enroll(&a, carol.name(), "phone");
    // A break-glass administrator kept in the host's own store.
    let admin = TestUser::new();
    let a2 = Host::new(&pg, "a2", &[admin.name()]);
    let admin_secret = {
        let dev = a2.env.enroll(admin.name(), "token");
        dev.secret
    };
    a2.env.advance_steps(1);

    pg.stop();
    let started = Instant::now();
    let out = a.env.login(carol.name(), "123456");
    out.assert_result(PamCode::AuthinfoUnavail);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a database that is down held the login for {:?} (deadline 3 s)",
        started.elapsed()
    );
    // The local account is in the host's own store, on the test's clock.
    a2.env
        .login(admin.name(), &a2.env.code(&admin_secret))
        .assert_result(PamCode::Success);
}

#[test]
fn a_promoted_standby_takes_over_and_with_every_server_down_logins_are_unavailable() {
    let mut primary = fleet_database();
    let mut standby = primary.start_standby();
    let admin = TestUser::new();
    let a = Host::with_servers(
        &primary,
        "a",
        &["root", admin.name()],
        &[
            format!("localhost:{}", primary.port()),
            format!("localhost:{}", standby.port()),
        ],
    );
    let erin = TestUser::new();
    let phones = [
        enroll(&a, erin.name(), "phone1"),
        enroll(&a, erin.name(), "phone2"),
    ];
    let admin_secret = a.env.enroll(admin.name(), "token").secret;
    a.env.advance_steps(1);
    a.env
        .login(erin.name(), &fresh_code(&phones[0]))
        .assert_result(PamCode::Success);

    // The primary goes away: the standby is read-only, so it is not used.
    primary.stop();
    a.env
        .login(erin.name(), &fresh_code(&phones[1]))
        .assert_result(PamCode::AuthinfoUnavail);
    let rows = standby.psql(DB, "SELECT count(*) FROM pam_mfa_fleet.audit");

    // Promoted, it serves the next login (after the second mfad waits before trying a
    // database that could not be reached).
    standby.promote();
    let promoted = Instant::now();
    std::thread::sleep(Duration::from_millis(1100));
    let mut tries = 0;
    loop {
        tries += 1;
        let out = a.env.login(erin.name(), &fresh_code(&phones[1]));
        if out.result == PamCode::Success {
            break;
        }
        out.assert_result(PamCode::AuthinfoUnavail);
        assert!(tries < 10, "no login succeeded after the promotion");
        std::thread::sleep(Duration::from_millis(1100));
    }
    eprintln!(
        "logins went on {:?} after the promotion, at try {tries}",
        promoted.elapsed()
    );
    assert_ne!(
        standby.psql(DB, "SELECT count(*) FROM pam_mfa_fleet.audit"),
        rows,
        "the login was not recorded by the new primary"
    );

    // Every server down: unavailable, within the deadline; the local administrator
    // still logs in.
    standby.stop();
    std::thread::sleep(Duration::from_millis(1100));
    let started = Instant::now();
    a.env
        .login(erin.name(), &fresh_code(&phones[0]))
        .assert_result(PamCode::AuthinfoUnavail);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "every server down held the login for {:?} (deadline 3 s)",
        started.elapsed()
    );
    a.env
        .login(admin.name(), &a.env.code(&admin_secret))
        .assert_result(PamCode::Success);
}

#[test]
fn a_removed_host_cannot_reach_the_fleet_any_more() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let dave = TestUser::new();
    let secret = enroll(&a, dave.name(), "phone");
    run_guide(&pg, "fleet-remove-host", "a");
    std::thread::sleep(Duration::from_millis(1100));
    a.env
        .login(dave.name(), &fresh_code(&secret))
        .assert_result(PamCode::AuthinfoUnavail);
    // The other host goes on, and the removed host's audit rows stay.
    b.env
        .login(dave.name(), &fresh_code(&secret))
        .assert_result(PamCode::Success);
    let hosts = pg.psql(
        DB,
        "SELECT DISTINCT host FROM pam_mfa_fleet.audit ORDER BY 1",
    );
    assert!(hosts.contains("mfa_host_a"), "{hosts}");
}

/// The guide's systemd drop-in gives `mfad` the network (and only the allowed addresses),
/// and the unit stays rated "OK" or better by `systemd-analyze security`.
#[test]
fn the_guides_systemd_drop_in_opens_the_network_and_keeps_the_unit_rated_ok() {
    let root = tempfile::tempdir().expect("temporary directory");
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(units.join("mfad.service.d")).expect("mkdir");
    let packaged = pam_mfa_tests::workspace_root().join("packaging/systemd");
    for unit in ["mfad.service", "mfad.socket"] {
        std::fs::copy(packaged.join(unit), units.join(unit)).expect("copy the unit");
    }
    let rated = |root: &std::path::Path| {
        let out = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--root={}", root.display()))
            .arg("mfad.service")
            .output()
            .expect("run systemd-analyze (Debian package systemd)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let without = rated(root.path());
    assert!(
        !without.contains("may allocate Internet sockets"),
        "{without}"
    );
    std::fs::write(
        units.join("mfad.service.d/fleet.conf"),
        guide("fleet-systemd-dropin"),
    )
    .expect("write the drop-in");
    let with = rated(root.path());
    assert!(
        with.contains("Service may allocate Internet sockets"),
        "{with}"
    );
    assert!(
        with.contains("Service has access to the host's network"),
        "{with}"
    );
    let overall = with
        .lines()
        .find(|l| l.contains("Overall exposure level for mfad.service"))
        .unwrap_or_else(|| panic!("no overall rating in:\n{with}"));
    assert!(
        overall.contains(" OK") || overall.contains(" SAFE"),
        "the fleet's unit is rated worse than OK: {overall}"
    );
}

/// `mfad` killed (SIGKILL) and its database session ended (`pg_terminate_backend`) at
/// random moments while logins go on: no code is ever accepted twice, every accepted code
/// is recorded in the database, and the host serves again after each kill.
#[test]
fn killing_mfad_or_its_database_session_loses_nothing_and_accepts_no_code_twice() {
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::{AtomicBool, Ordering};

    let seconds: u64 = std::env::var("PAM_MFA_FLEET_KILL_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let users: Vec<TestUser> = (0..12).map(|_| TestUser::new()).collect();
    let secrets: Vec<String> = users
        .iter()
        .map(|u| enroll(&a, u.name(), "phone"))
        .collect();
    let mfad_db = a.env.db().display().to_string();

    let stop = AtomicBool::new(false);
    let (mut kills, mut ended_sessions) = (0u32, 0u32);
    let mut accepted: HashMap<usize, HashSet<i64>> = HashMap::new();
    let mut refused_replays = 0u32;
    std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let (mut k, mut e) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50 + next() % 400));
                if next() % 2 == 0 {
                    // The test's own mfad: its command line names this test's store.
                    let _ = std::process::Command::new("pkill")
                        .args(["-KILL", "-f", &format!("mfad --db {mfad_db} ")])
                        .status();
                    k += 1;
                } else {
                    pg.psql(
                        "postgres",
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE usename = 'mfa_host_a'",
                    );
                    e += 1;
                }
            }
            (k, e)
        });
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut turn = 0usize;
        while Instant::now() < deadline {
            let who = turn % users.len();
            turn += 1;
            let at = real_now() + 30;
            let step = at.div_euclid(30);
            // A code already accepted is only tried once more, right after (below): every
            // replay counts a failure, and enough of them would lock the user out.
            if accepted.get(&who).is_some_and(|s| s.contains(&step)) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let out = a.env.login(users[who].name(), &totp(&secrets[who], at));
            match out.result {
                PamCode::Success => {
                    assert!(
                        accepted.entry(who).or_default().insert(step),
                        "the code of step {step} was accepted twice for user {who}"
                    );
                    // The same code again, at once: refused, whatever was killed.
                    let again = a.env.login(users[who].name(), &totp(&secrets[who], at));
                    assert_ne!(again.result, PamCode::Success, "a code was accepted twice");
                    refused_replays += 1;
                }
                // A kill in the middle of this login: refused, never let in. The next run
                // starts a new mfad, as socket activation would.
                PamCode::AuthinfoUnavail | PamCode::AuthErr => a.env.stop_mfad(),
                other => panic!("unexpected outcome {other}:\n{}", out.transcript()),
            }
        }
        stop.store(true, Ordering::Relaxed);
        (kills, ended_sessions) = killer.join().expect("killer thread");
    });
    eprintln!(
        "{kills} mfad kills, {ended_sessions} database sessions ended, {} codes accepted, \
         {refused_replays} replays refused",
        accepted.values().map(HashSet::len).sum::<usize>()
    );
    assert!(kills > 0 && ended_sessions > 0, "nothing was killed");
    assert!(!accepted.is_empty(), "no login succeeded between the kills");
    // Every accepted code is recorded: the device's last step is at least its step.
    for (who, steps) in &accepted {
        let last: i64 = pg
            .psql(
                DB,
                &format!(
                    "SELECT last_step FROM pam_mfa_fleet.devices WHERE user_name = '{}'",
                    users[*who].name()
                ),
            )
            .trim()
            .parse()
            .expect("a last step");
        let highest = steps.iter().max().copied().unwrap_or(i64::MIN);
        assert!(
            last >= highest,
            "user {who}: accepted step {highest}, recorded {last}"
        );
    }
}

/// Recovery and bypass codes of a fleet account: made on one host, used on another, used
/// up fleet-wide; the database keeps only their salted hashes.
#[test]
fn recovery_and_bypass_codes_made_on_one_host_work_once_on_any() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let alice = TestUser::new();
    enroll(&a, alice.name(), "phone");

    let out = a.env.mfa(&["--user", alice.name(), "recovery", "generate"]);
    out.assert_success();
    let codes = pam_mfa_tests::recovery::codes_in(&out.stdout);
    assert_eq!(codes.len(), 10, "{}", out.stdout);
    // Only salted hashes in the database: no code in any column of any row.
    let dump = pg.psql(
        DB,
        "SELECT string_agg(encode(salt, 'hex') || encode(hash, 'hex') || user_name, ' ') \
         FROM pam_mfa_fleet.recovery_codes",
    );
    for code in &codes {
        let plain = code.replace('-', "");
        assert!(
            !dump.contains(&plain),
            "a recovery code is stored in the clear"
        );
        let hex: String = plain.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !dump.contains(&hex),
            "a recovery code is stored in the clear"
        );
    }

    // Used on B, upper case without dashes as typed from paper...
    let typed = codes[0].replace('-', "").to_uppercase();
    let out = b.env.login(alice.name(), &typed);
    out.assert_result(PamCode::Success);
    assert!(
        out.infos()
            .iter()
            .any(|i| i.contains("9 recovery codes left")),
        "{}",
        out.transcript()
    );
    assert!(
        b.env
            .mfad_logged("authenticated with a recovery code; 9 left"),
        "{}",
        b.env.mfad_stderr()
    );
    // ...and then refused on A: used up in the whole fleet.
    a.env
        .login(alice.name(), &codes[0])
        .assert_result(PamCode::AuthErr);
    // A made-up code of the same shape is refused.
    let out = a.env.login(alice.name(), "abcd-efgh-jkmn");
    out.assert_result(PamCode::AuthErr);
    assert!(
        a.env.mfad_logged("not a valid recovery or bypass code"),
        "{}",
        a.env.mfad_stderr()
    );
    // Another code of the set still works on A.
    a.env
        .login(alice.name(), &codes[1])
        .assert_result(PamCode::Success);

    // A bypass code issued on A works on B for its two uses, then no more.
    let out = a.env.mfa(&[
        "admin",
        "bypass",
        alice.name(),
        "--uses",
        "2",
        "--expires",
        "10m",
    ]);
    out.assert_success();
    let bypass = pam_mfa_tests::recovery::codes_in(&out.stdout);
    assert_eq!(bypass.len(), 1, "{}", out.stdout);
    b.env
        .login(alice.name(), &bypass[0])
        .assert_result(PamCode::Success);
    a.env
        .login(alice.name(), &bypass[0])
        .assert_result(PamCode::Success);
    b.env
        .login(alice.name(), &bypass[0])
        .assert_result(PamCode::AuthErr);

    // Every use is in the database's audit trail, with the host that saw it.
    let audit = pg.psql(
        DB,
        &format!(
            "SELECT host || ' ' || action FROM pam_mfa_fleet.audit WHERE user_name = '{}' \
             AND action IN ('recovery-generate', 'recovery-login', 'bypass', 'bypass-login') \
             ORDER BY id",
            alice.name()
        ),
    );
    let lines: Vec<&str> = audit.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            format!("{} recovery-generate", a.role),
            format!("{} recovery-login", b.role),
            format!("{} recovery-login", a.role),
            format!("{} bypass", a.role),
            format!("{} bypass-login", b.role),
            format!("{} bypass-login", a.role),
        ],
        "{audit}"
    );
}
