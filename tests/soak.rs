//! Concurrency soak: many long-lived login processes hammer the store with right, wrong
//! and replayed codes while other processes keep enrolling and removing devices of the
//! same users, and every verdict must be exactly right:
//!
//! * every right, fresh code is accepted (waiting for the store's lock must never become a
//!   refusal: `SQLITE_BUSY` may not surface),
//! * every wrong or replayed code is refused (no code is accepted twice),
//! * each user's failure counter ends exactly at the number of refusals since its last
//!   success, and the device's last used step is the last step accepted.
//!
//! Everything goes through the test's one `mfad`, whose clock (libfaketime, standing
//! still) the test moves one time step per round: each login worker is one
//! `pam-client --script` process (pam_wrapper limits how fast clients can start, not how
//! many logins one does) owning one user with a stable device, and logs in once or a few
//! times per round, so fresh codes never run out and no login depends on how fast the
//! machine is. A round ends when every worker has done its logins; the clock moves only
//! between rounds and between the churners' changes (a lock the workers and churners
//! share, the clock's mover waiting for it alone). The churners run the real `mfa
//! --socket` as root: `enroll totp --begin`, `enroll finish`, `remove`, for random users, keeping
//! every user within 8 devices, so each of their commands must succeed too; between
//! those they run administrative commands (a new recovery set, `admin list`, `admin
//! audit`, `admin policy show`), which must succeed as well.
//!
//! Sizes: `PAM_MFA_SOAK_WORKERS` login processes (default 16), `PAM_MFA_SOAK_CHURNERS`
//! enrolling/removing threads (default 4), for `PAM_MFA_SOAK_SECONDS` (default 30). The
//! issue's long version is 48 + 16 = 64 processes for 60 s:
//! `PAM_MFA_SOAK_WORKERS=48 PAM_MFA_SOAK_CHURNERS=16 PAM_MFA_SOAK_SECONDS=60`
//! (pam_wrapper has room for about 60 clients machine-wide, so keep the workers below
//! that and run the soak alone).

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use pam_mfa::store::Store;
use pam_mfa_tests::random::{Rng, env_number};
use pam_mfa_tests::{Running, TestEnv, TestUser, at_step, fake_time_env, mfa_bin, tool};

/// The soak stops after this many rounds even if time is left: the code tables are made
/// for this many steps.
const MAX_ROUNDS: i64 = 2_000;

/// The round the daemon's clock stands at, and how many workers have finished it.
struct Rounds {
    /// Read-locked by a worker for its round's logins and by a churner for one change;
    /// write-locked to move the clock.
    round: RwLock<i64>,
    finished: AtomicUsize,
}

/// The codes of `secret` for `count` consecutive steps from `from`, from one `oathtool`.
fn code_table(secret: &str, from: i64, count: i64) -> Vec<String> {
    let out = Command::new(tool("oathtool", "oathtool"))
        .args(["--totp", "--base32", "--digits=6"])
        .arg(format!("--window={}", count - 1))
        .arg(format!("--now=@{}", at_step(from)))
        .arg(secret)
        .output()
        .expect("cannot run oathtool");
    assert!(out.status.success(), "oathtool: {out:?}");
    let codes: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        codes.len() as i64,
        count,
        "oathtool printed {} codes",
        codes.len()
    );
    codes
}

/// The code tables of every device the churners ever began, per user, so that a worker
/// never sends a "wrong" or "replayed" code that happens to be right for one of them.
type Tables = Arc<Mutex<HashMap<String, Vec<Vec<String>>>>>;

/// Whether `code` is valid at `step` ± 1 for any churn device of `user`.
fn valid_for_churn(tables: &Tables, user: &str, base: i64, step: i64, code: &str) -> bool {
    let tables = tables.lock().unwrap();
    tables.get(user).is_some_and(|ts| {
        ts.iter().any(|t| {
            (step - 1..=step + 1).any(|s| t.get((s - base) as usize).is_some_and(|c| c == code))
        })
    })
}

#[derive(Default, Debug)]
struct WorkerReport {
    rounds: i64,
    right: usize,
    wrong: usize,
    replayed: usize,
    /// Refusals since the last success: what the failure counter must say at the end.
    failures_since_success: i64,
    /// The last step accepted.
    last_step: i64,
}

/// Sends one login to a script client and returns its result.
fn login(client: &mut Running, done: &mut usize, step: i64, code: &str) -> String {
    client.write_stdin(format!("{} {code}\n", at_step(step)).as_bytes());
    let want = *done + 1;
    let ok = client.wait_for("a login to finish", |out, _| {
        out.matches("login: ").count() >= want
    });
    assert!(
        ok,
        "the script client died\nstdout:\n{}\nstderr:\n{}",
        client.stdout(),
        client.stderr()
    );
    *done = want;
    let out = client.stdout();
    out.lines()
        .filter_map(|l| l.strip_prefix("login: "))
        .nth(want - 1)
        .unwrap_or_default()
        .to_owned()
}

fn worker(
    mut client: Running,
    user: String,
    codes: Vec<String>,
    base: i64,
    tables: Tables,
    rounds: Arc<Rounds>,
    stop: Arc<AtomicBool>,
) -> WorkerReport {
    let mut rng = Rng::from_entropy();
    let mut rep = WorkerReport::default();
    let mut done = 0usize;
    let fail = |client: &Running, what: String| -> ! {
        panic!(
            "{what}\nuser {user}\nstderr of its client (last 4000 bytes):\n{}",
            {
                let e = client.stderr();
                e[e.len().saturating_sub(4000)..].to_owned()
            }
        )
    };
    let refuse = |client: &mut Running,
                  done: &mut usize,
                  rep: &mut WorkerReport,
                  step,
                  code: &str,
                  what: &str| {
        let r = login(client, done, step, code);
        if r != "PAM_AUTH_ERR" {
            fail(
                client,
                format!("a {what} code at step {step} gave {r}, not PAM_AUTH_ERR"),
            );
        }
        rep.failures_since_success += 1;
    };
    while !stop.load(Ordering::Relaxed) && rep.rounds < MAX_ROUNDS {
        let Ok(round) = rounds.round.read() else {
            break;
        };
        if *round <= rep.rounds {
            // This round is done; the clock has not moved yet.
            drop(round);
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        rep.rounds = *round;
        let step = base + rep.rounds;
        let code = &codes[(step - base) as usize];
        let clashes = |c: &str| {
            (step - 1..=step + 1).any(|s| codes[(s - base) as usize] == c)
                || valid_for_churn(&tables, &user, base, step, c)
        };
        let wrong = || loop {
            let c = format!("{:06}", Rng::from_entropy().next_u64() % 1_000_000);
            if !clashes(&c) {
                break c;
            }
        };
        if rng.chance(30) {
            refuse(&mut client, &mut done, &mut rep, step, &wrong(), "wrong");
            rep.wrong += 1;
        }
        let r = login(&mut client, &mut done, step, code);
        if r != "PAM_SUCCESS" {
            fail(
                &client,
                format!("the right, fresh code of step {step} was refused: {r}"),
            );
        }
        rep.right += 1;
        rep.failures_since_success = 0;
        rep.last_step = step;
        // The same code again: a replay. Unless it is also right for a churn device.
        if rng.chance(30) && !valid_for_churn(&tables, &user, base, step, code) {
            refuse(&mut client, &mut done, &mut rep, step, code, "replayed");
            rep.replayed += 1;
        }
        // The previous round's code, still inside the window: older than the last used.
        let prev = &codes[(step - 1 - base) as usize];
        if rep.rounds > 1
            && rng.chance(20)
            && prev != code
            && !valid_for_churn(&tables, &user, base, step, prev)
        {
            refuse(
                &mut client,
                &mut done,
                &mut rep,
                step,
                prev,
                "previous step's",
            );
            rep.replayed += 1;
        }
        if rng.chance(20) {
            refuse(&mut client, &mut done, &mut rep, step, &wrong(), "wrong");
            rep.wrong += 1;
        }
        drop(round);
        rounds.finished.fetch_add(1, Ordering::SeqCst);
    }
    client.close_stdin();
    let f = client.wait();
    assert!(
        f.status.success(),
        "the script client of {user} failed: {f:?}"
    );
    rep
}

/// Runs the real `mfa --socket SOCKET ARGS…` as root (its own clock at `at`, which only
/// its messages show: the daemon's decides).
fn mfa(socket: &std::path::Path, at: i64, args: &[&str]) -> pam_mfa_tests::Finished {
    let mut cmd = Command::new(mfa_bin());
    cmd.arg("--socket").arg(socket).args(args);
    for (k, v) in fake_time_env(at, &[]) {
        cmd.env(k, v);
    }
    pam_mfa_tests::process::run(cmd, format!("mfa {args:?}"), Vec::new())
}

#[derive(Default, Debug)]
struct ChurnReport {
    enrolled: usize,
    removed: usize,
    /// Administrative commands run between the changes (all must succeed).
    admin: usize,
}

/// One administrative command, chosen at random, that must succeed under the same load
/// and must not disturb the logins: a new recovery set for a user (a write with its audit
/// row), the administrator's list, the audit trail, the policy.
fn admin_command(rng: &mut Rng, socket: &std::path::Path, at: i64, user: &str) {
    let args: &[&str] = match rng.next_u64() % 4 {
        0 => &["--user", user, "recovery", "generate"],
        1 => &["admin", "list", "--json"],
        2 => &["admin", "audit", "--user", user, "--json"],
        _ => &["admin", "policy", "show", "--json"],
    };
    let f = mfa(socket, at, args);
    assert!(f.status.success(), "mfa {args:?} under load: {f:?}");
}

/// Enrolls and removes devices of random users until told to stop. `slots` holds how many
/// churn devices each user has (at most 7, besides the stable one), shared by churners.
#[allow(clippy::too_many_arguments)]
fn churner(
    id: usize,
    socket: std::path::PathBuf,
    users: Vec<String>,
    rounds: Arc<Rounds>,
    base: i64,
    count: i64,
    tables: Tables,
    slots: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
) -> ChurnReport {
    let mut rng = Rng::from_entropy();
    let mut mine: Vec<(String, String)> = Vec::new();
    let mut rep = ChurnReport::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        // One change at a time under the clock's read lock: its codes are computed for
        // the step the daemon's clock stands at, which does not move meanwhile.
        let Ok(round) = rounds.round.read() else {
            break;
        };
        let at = at_step(base + *round);
        let db = &socket;
        if rng.chance(20) {
            let user = &users[(rng.next_u64() % users.len() as u64) as usize];
            admin_command(&mut rng, db, at, user);
            rep.admin += 1;
            continue;
        }
        let remove = !mine.is_empty() && (mine.len() >= 3 || rng.chance(40));
        if remove {
            let (user, name) = mine.remove((rng.next_u64() % mine.len() as u64) as usize);
            let f = mfa(db, at, &["--user", &user, "remove", &name, "--yes"]);
            assert!(
                f.status.success(),
                "churner {id}: remove {name} of {user}: {f:?}"
            );
            *slots.lock().unwrap().get_mut(&user).unwrap() -= 1;
            rep.removed += 1;
            continue;
        }
        let user = users[(rng.next_u64() % users.len() as u64) as usize].clone();
        {
            let mut s = slots.lock().unwrap();
            let c = s.entry(user.clone()).or_default();
            if *c >= 7 {
                continue;
            }
            *c += 1;
        }
        n += 1;
        let name = format!("churn-{id}-{n}");
        let f = mfa(
            db,
            at,
            &[
                "--user", &user, "enroll", "totp", &name, "--begin", "--json",
            ],
        );
        // Other churners may hold this user's three unfinished registrations, the most
        // allowed at once (issue 16, finding 3): then this one waits for another round.
        if !f.status.success() && f.stderr.contains("unfinished registrations") {
            *slots.lock().unwrap().get_mut(&user).unwrap() -= 1;
            continue;
        }
        assert!(f.status.success(), "churner {id}: begin {name}: {f:?}");
        let json: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
        let secret = json["secret"].as_str().unwrap().to_owned();
        // Known before it can become active.
        let table = code_table(&secret, base, count);
        tables
            .lock()
            .unwrap()
            .entry(user.clone())
            .or_default()
            .push(table);
        let c1 = pam_mfa_tests::totp(&secret, at - 30);
        let c2 = pam_mfa_tests::totp(&secret, at);
        let f = mfa(
            db,
            at,
            &["--user", &user, "enroll", "finish", &name, &c1, &c2],
        );
        assert!(
            f.status.success(),
            "churner {id}: finish {name} of {user}: {f:?}"
        );
        rep.enrolled += 1;
        mine.push((user, name));
        drop(round);
        // Leave the clock's mover a chance between changes.
        std::thread::sleep(Duration::from_millis(1));
    }
    rep
}

#[test]
fn logins_stay_exact_under_load_while_devices_come_and_go() {
    let workers = env_number("PAM_MFA_SOAK_WORKERS", 16) as usize;
    let churners = env_number("PAM_MFA_SOAK_CHURNERS", 4) as usize;
    let seconds = env_number("PAM_MFA_SOAK_SECONDS", 30);
    assert!(
        workers <= 56,
        "pam_wrapper has room for about 60 clients at a time"
    );

    let env = TestEnv::new();
    // No lock-out in the way: at most a few failures in a row, counted over a week.
    env.write_service(&["max_failures=1000", "lockout=604800"]);
    let users: Vec<TestUser> = (0..workers).map(|_| TestUser::new()).collect();
    let secrets: Vec<String> = users
        .iter()
        .map(|u| env.enroll(u.name(), "stable").secret)
        .collect();
    // Enrollment used the current step; the rounds start at the next.
    let base = env.step();
    let count = MAX_ROUNDS + 3;
    let tables: Tables = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<Running> = users
        .iter()
        .map(|u| env.pam(u.name()).spawn_script())
        .collect();
    let names: Vec<String> = users.iter().map(|u| u.name().to_owned()).collect();

    let started = Instant::now();
    let slots = Arc::new(Mutex::new(HashMap::new()));
    let socket = env.socket();
    let rounds = Arc::new(Rounds {
        round: RwLock::new(0),
        finished: AtomicUsize::new(0),
    });
    let (work, churn) = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for ((client, user), secret) in clients.into_iter().zip(&names).zip(&secrets) {
            let codes = code_table(secret, base, count);
            let (tables, rounds, stop, user) =
                (tables.clone(), rounds.clone(), stop.clone(), user.clone());
            handles.push(s.spawn(move || worker(client, user, codes, base, tables, rounds, stop)));
        }
        let mut churn_handles = Vec::new();
        for id in 0..churners {
            let (socket, users, tables, slots, rounds, stop) = (
                socket.clone(),
                names.clone(),
                tables.clone(),
                slots.clone(),
                rounds.clone(),
                stop.clone(),
            );
            churn_handles.push(s.spawn(move || {
                churner(id, socket, users, rounds, base, count, tables, slots, stop)
            }));
        }
        // The clock's mover: the next step once every worker has finished the round.
        while started.elapsed() < Duration::from_secs(seconds)
            && !handles.iter().any(|h| h.is_finished())
        {
            let round = rounds.round.read().map(|r| *r).unwrap_or(MAX_ROUNDS);
            if round >= MAX_ROUNDS {
                break;
            }
            if round > 0 && rounds.finished.load(Ordering::SeqCst) < workers {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let Ok(mut next) = rounds.round.write() else {
                break;
            };
            *next += 1;
            env.write_clock(at_step(base + *next));
            rounds.finished.store(0, Ordering::SeqCst);
        }
        stop.store(true, Ordering::Relaxed);
        let work: Vec<WorkerReport> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        let churn: Vec<ChurnReport> = churn_handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (work, churn)
    });
    let elapsed = started.elapsed();

    // The store agrees with what the logins saw.
    let store = Store::open_existing(env.db()).unwrap().unwrap();
    let check: String = store
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for (user, rep) in names.iter().zip(&work) {
        let failures: i64 = store
            .conn()
            .query_row(
                "SELECT COALESCE((SELECT failures FROM auth_state WHERE user = ?1), 0)",
                [user],
                |r| r.get(0),
            )
            .unwrap();
        // Each refusal since the last success counted one failure per three codes it was
        // compared with: at least one, at most eight (8 devices at window 1), depending on
        // how many devices the churn had registered at that moment.
        let refusals = rep.failures_since_success;
        assert!(
            (refusals..=8 * refusals).contains(&failures),
            "the failure counter of {user}: {failures} after {refusals} refusals"
        );
        let last: i64 = store
            .conn()
            .query_row(
                "SELECT last_step FROM devices WHERE user = ?1 AND name = 'stable'",
                [user],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(last, rep.last_step, "the last used step of {user}'s device");
        let active: i64 = store
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM devices WHERE user = ?1 AND state = 'active'",
                [user],
                |r| r.get(0),
            )
            .unwrap();
        assert!(active <= 8, "{user} has {active} active devices");
    }
    let right: usize = work.iter().map(|r| r.right).sum();
    let wrong: usize = work.iter().map(|r| r.wrong).sum();
    let replayed: usize = work.iter().map(|r| r.replayed).sum();
    let enrolled: usize = churn.iter().map(|r| r.enrolled).sum();
    let removed: usize = churn.iter().map(|r| r.removed).sum();
    let admin: usize = churn.iter().map(|r| r.admin).sum();
    eprintln!(
        "soak: {workers} login processes + {churners} churners for {elapsed:.1?}: {} logins \
         ({right} right and accepted, {wrong} wrong and {replayed} replayed, all refused); \
         {enrolled} devices enrolled, {removed} removed; {admin} administrative commands",
        right + wrong + replayed
    );
    assert!(right > 0 && enrolled > 0, "the soak did nothing");
    assert!(admin > 0, "no administrative command ran during the soak");
}
