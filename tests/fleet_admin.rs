//! `mfa admin list` and `mfa admin audit` on a fleet host (issue 19: administration
//! "behaves exactly as on one host"): the fleet's accounts and audit rows, whichever host
//! made them, beside the host's own local accounts, in the JSON a local store's give; and
//! a database that cannot answer fails the command rather than leaving the fleet out.

use std::collections::BTreeSet;

use pam_mfa_tests::backend::Backend;
use pam_mfa_tests::fleet::{Host, enroll, fleet_database};
use pam_mfa_tests::recovery::codes_in;
use pam_mfa_tests::{PamCode, TestEnv, TestUser, next_code};
use serde_json::Value;

fn array(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    let out = env.mfa(args);
    out.assert_success();
    match out.json() {
        Value::Array(rows) => rows,
        other => panic!("{args:?} printed {other}, not an array"),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn account<'a>(list: &'a [Value], user: &str) -> &'a Value {
    list.iter()
        .find(|a| a["user"] == user)
        .unwrap_or_else(|| panic!("{user} not in admin list: {list:?}"))
}

fn actions(rows: &[Value], user: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| r["user"] == user)
        .filter_map(|r| r["action"].as_str().map(str::to_owned))
        .collect()
}

/// What an administrator does to a fresh account: a device registered, a login, a set
/// of recovery codes, a bypass code, a device renamed and one begun and removed.
fn administer(env: &TestEnv, user: &str, enrol: impl FnOnce(&TestEnv)) {
    enrol(env);
    let out = env.mfa(&["--user", user, "recovery", "generate"]);
    out.assert_success();
    assert_eq!(codes_in(&out.stdout).len(), 10, "{}", out.stdout);
    // Its lifetime spelled in minutes: both stores' audit rows say it in hours.
    env.mfa(&["admin", "bypass", user, "--expires", "2160m"])
        .assert_success();
    env.mfa(&["--user", user, "rename", "phone", "handy"])
        .assert_success();
    env.begin(user, "spare", &[]);
    env.mfa(&["admin", "remove", user, "spare"])
        .assert_success();
}

#[test]
fn list_and_audit_on_one_host_show_the_fleet_accounts_another_host_changed() {
    let pg = fleet_database();
    let a = Host::new(&pg, "a", &["root"]);
    let b = Host::new(&pg, "b", &["root"]);
    let alice = TestUser::new();
    let mut secret = String::new();
    administer(&a.env, alice.name(), |_| {
        secret = enroll(&a, alice.name(), "phone");
    });
    a.env
        .login(alice.name(), &next_code(&secret))
        .assert_result(PamCode::Success);
    // Root is kept in host B's own store: begun there, never in the fleet.
    b.env.begin("root", "rootphone", &[]);

    // The same account on a host with a local store, for the JSON's shape and actions.
    let local = TestEnv::with_backend(Backend::Local);
    let carol = TestUser::new();
    administer(&local, carol.name(), |env| {
        env.enroll(carol.name(), "phone");
    });
    let local_list = array(&local, &["admin", "list", "--json"]);
    let local_audit = array(
        &local,
        &["admin", "audit", "--user", carol.name(), "--json"],
    );

    // Host B lists alice (from the fleet) and root (from its store), once each.
    let list = array(&b.env, &["admin", "list", "--json"]);
    assert_eq!(
        list.iter().filter(|a| a["user"] == alice.name()).count(),
        1,
        "{list:?}"
    );
    let root = account(&list, "root");
    assert_eq!(root["devices"][0]["name"], "rootphone", "{root}");
    assert_eq!(root["devices"][0]["state"], "pending", "{root}");
    let fleet_alice = account(&list, alice.name());
    let local_carol = account(&local_list, carol.name());
    assert_eq!(keys(fleet_alice), keys(local_carol));
    for field in ["devices", "bypass_codes"] {
        let (f, l) = (&fleet_alice[field], &local_carol[field]);
        assert_eq!(
            f.as_array().map(Vec::len),
            Some(1),
            "{field}: {fleet_alice}"
        );
        assert_eq!(keys(&f[0]), keys(&l[0]), "{field}");
    }
    assert_eq!(fleet_alice["devices"][0]["name"], "handy");
    assert_eq!(fleet_alice["devices"][0]["kind"], "totp");
    assert_eq!(fleet_alice["devices"][0]["state"], "active");
    assert!(
        fleet_alice["devices"][0]["last_used"].is_i64(),
        "{fleet_alice}"
    );
    assert_eq!(fleet_alice["recovery_codes_left"], 10);
    assert_eq!(fleet_alice["bypass_codes"][0]["uses_left"], 1);
    assert_eq!(fleet_alice["bypass_codes"][0]["issued_by_uid"], 0);
    assert!(!format!("{list:?}").contains(&secret));

    // Host B's audit of alice: what host A did, in the local store's words, each row
    // naming host A's role.
    let audit = array(
        &b.env,
        &["admin", "audit", "--user", alice.name(), "--json"],
    );
    assert_eq!(keys(&audit[0]), keys(&local_audit[0]));
    let fleet_actions = actions(&audit, alice.name());
    let local_actions = actions(&local_audit, carol.name());
    // The fleet also audits every login (local stores do not).
    let without_logins: Vec<_> = fleet_actions
        .iter()
        .filter(|a| !a.starts_with("login-"))
        .cloned()
        .collect();
    assert_eq!(without_logins, local_actions, "{audit:?}\n{local_audit:?}");
    assert!(
        fleet_actions.contains(&"login-accepted".to_owned()),
        "{audit:?}"
    );
    for row in &audit {
        assert_eq!(row["user"], alice.name(), "{row}");
        assert!(
            row["detail"].as_str().is_some_and(|d| d.contains(&a.role)),
            "{row}"
        );
    }
    let row = |action: &str| {
        audit
            .iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action}: {audit:?}"))
    };
    assert_eq!(row("rename")["device"], "handy");
    assert!(
        row("rename")["detail"]
            .as_str()
            .unwrap()
            .starts_with("was phone")
    );
    assert_eq!(row("activate")["uid"], 0);
    // A bypass code's row in the same words on both stores.
    let local_bypass = local_audit
        .iter()
        .find(|r| r["action"] == "bypass")
        .unwrap_or_else(|| panic!("no bypass: {local_audit:?}"));
    assert_eq!(local_bypass["detail"], "1 use(s), expires in 36h");
    assert!(
        row("bypass")["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 use(s), expires in 36h"),
        "{audit:?}"
    );
    // --since: nothing from the future.
    let later = (pam_mfa_tests::real_now() + 3600).to_string();
    let none = array(
        &b.env,
        &[
            "admin",
            "audit",
            "--user",
            alice.name(),
            "--since",
            &later,
            "--json",
        ],
    );
    assert!(none.is_empty(), "{none:?}");

    // Without --user: the fleet's rows and the host's own, in time order.
    let all = array(&b.env, &["admin", "audit", "--json"]);
    assert!(
        actions(&all, "root").contains(&"begin".to_owned()),
        "{all:?}"
    );
    assert_eq!(actions(&all, alice.name()), fleet_actions);
    let times: Vec<i64> = all.iter().filter_map(|r| r["at"].as_i64()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Root's rows are host B's own: host A's store never saw them.
    let on_a = array(&a.env, &["admin", "audit", "--user", "root", "--json"]);
    assert!(on_a.is_empty(), "{on_a:?}");

    // A prune through a host is the host's store's alone, and says so; the fleet's rows
    // stay.
    let out = b
        .env
        .mfa(&["admin", "audit", "prune", "--older-than", "1d"]);
    out.assert_success();
    assert!(
        out.stdout.contains("in this host's store") && out.stdout.contains("by its owner"),
        "{}",
        out.stdout
    );
    let after = array(
        &b.env,
        &["admin", "audit", "--user", alice.name(), "--json"],
    );
    assert_eq!(after.len(), audit.len(), "{after:?}");
}

#[test]
fn a_database_that_cannot_answer_fails_the_views_and_local_accounts_still_show() {
    let mut pg = fleet_database();
    let b = Host::new(&pg, "b", &["root"]);
    let alice = TestUser::new();
    enroll(&b, alice.name(), "phone");
    b.env.begin("root", "rootphone", &[]);
    assert_eq!(array(&b.env, &["admin", "list", "--json"]).len(), 2);

    pg.stop();
    for args in [
        &["admin", "list", "--json"][..],
        &["admin", "audit", "--json"],
        &["admin", "audit", "--user", alice.name(), "--json"],
    ] {
        let out = b.env.mfa(args);
        out.assert_failure();
        assert!(
            out.stderr.contains("fleet database cannot answer"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // The host's own account's rows need no database.
    let root = array(&b.env, &["admin", "audit", "--user", "root", "--json"]);
    assert!(
        actions(&root, "root").contains(&"begin".to_owned()),
        "{root:?}"
    );
}
