//! Crash consistency: the real `mfa` (enroll begin/finish, remove, resync, recovery
//! generate, admin bypass, admin unlock) and logins through `pam-client` (with codes,
//! recovery codes and bypass codes) are killed with SIGKILL at random moments, and after
//! every kill the store must still be whole and still tell the truth:
//!
//! * it opens (`Store::open_existing`) and `PRAGMA integrity_check` says `ok`;
//! * no device is active whose `enroll finish` was never started;
//! * no user has more than 8 active devices;
//! * no code is accepted twice: a device's last used step never goes back, and a login
//!   that succeeded used a step later than every step already used;
//! * a user's failure counter never goes down except by a login with a right code (or a
//!   recovery or bypass code) or the administrator's unlock or bypass, and a login that
//!   ran to the end moved it exactly as its result says;
//! * no recovery or bypass code is accepted twice (or beyond its uses), and every new
//!   recovery set, bypass code and recovery/bypass login has exactly its audit row: the
//!   change and its row commit together or not at all.
//!
//! Each iteration runs one operation, chosen at random, and kills it after a random delay
//! drawn from 0 to 1.2 times how long that kind of operation takes when left alone, so
//! most kills land while the process works (some before it touched the store, some after
//! it finished). The fake clock advances one time step per iteration.
//!
//! The run goes on until `PAM_MFA_CRASH_KILLS` processes were ended by the SIGKILL
//! (default [`DEFAULT_KILLS`], the 1,000: under a minute on two cores; the long
//! version is `PAM_MFA_CRASH_KILLS=10000`, about ten minutes, which keeps the fake clock
//! within the week-long failure window). About six in ten operations are killed; the rest
//! run to the end and have their results checked too. `PAM_MFA_CRASH_SEED` replays a run
//! (the seed is printed at the start).

use pam_mfa_tests::PamCode;
use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use pam_mfa::store::Store;
use pam_mfa_tests::random::{Rng, env_number, random_seed};
use pam_mfa_tests::{
    Finished, PamOutcome, Running, TestEnv, TestUser, valid_codes, wrong_code_for_all,
};

/// Kills in a default (CI) run.
const DEFAULT_KILLS: usize = 1_000;

/// The store forgets a user's failure row once its window started this long ago (and it
/// is not locked), whoever's failure is being saved: that is not a counter going down.
const FORGET_AFTER_SECS: i64 = 86_400;

/// How many users the operations are spread over.
const USERS: usize = 3;

/// Settings that keep the lock-out out of the way: the test is about counting, and with
/// a week-long window no failure leaves it during a run (one step per iteration).
const SERVICE_ARGS: &[&str] = &["max_failures=1000", "lockout=604800"];

/// A pending device older than this many steps is not finished any more (it expires
/// after ten minutes, twenty steps).
const PENDING_MAX_AGE: i64 = 12;

/// Removes libfaketime's shared-memory leftovers of processes that are gone.
///
/// libfaketime gives every process `/dev/shm/faketime_shm_PID` and
/// `/dev/shm/sem.faketime_sem_PID` and removes them at exit; a process that never gets
/// there (killed, or replaced by `exec`, in this or any other test) leaves them behind, and
/// the next process with the same pid dies at start ("shm_open failed: File exists"). A
/// run of thousands of processes goes through the pids, so the leftovers are swept.
fn sweep_faketime_leftovers() {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let pid = name
            .strip_prefix("faketime_shm_")
            .or_else(|| name.strip_prefix("sem.faketime_sem_"));
        if let Some(pid) = pid.filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// One device row as the checks need it.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    user: String,
    name: String,
    active: bool,
    last_step: Option<i64>,
}

/// What the store says after an iteration.
struct Snapshot {
    rows: Vec<Row>,
    failures: HashMap<String, (i64, i64)>,
    /// Recovery and bypass codes by salt (unique, random): (user, kind, uses left,
    /// expiry).
    codes: HashMap<Vec<u8>, (String, String, i64, Option<i64>)>,
    /// Audit rows by (user, action).
    audit: HashMap<(String, String), i64>,
}

impl Snapshot {
    fn audit_rows(&self, user: &str, action: &str) -> i64 {
        self.audit
            .get(&(user.to_owned(), action.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Uses left over all of `user`'s codes of `kind` that have not expired at `now`
    /// (expired ones are deleted by the next recovery login, which is not a use).
    fn uses_left(&self, user: &str, kind: &str, now: i64) -> i64 {
        self.codes
            .values()
            .filter(|(u, k, _, exp)| u == user && k == kind && exp.is_none_or(|e| e > now))
            .map(|c| c.2)
            .sum()
    }

    /// Codes of `user` and `kind` that `earlier` did not have.
    fn new_codes(&self, earlier: &Snapshot, user: &str, kind: &str) -> usize {
        self.codes
            .iter()
            .filter(|(salt, (u, k, _, _))| {
                u == user && k == kind && !earlier.codes.contains_key(*salt)
            })
            .count()
    }
}

/// Opens the store as the module does, checks its integrity and reads it.
fn snapshot(db: &Path, context: &str) -> Snapshot {
    let store = match Store::open_existing(db) {
        Ok(Some(s)) => s,
        Ok(None) => panic!("{context}: the store disappeared"),
        Err(e) => panic!("{context}: the store does not open: {e}"),
    };
    let conn = store.conn();
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_else(|e| panic!("{context}: integrity_check failed to run: {e}"));
    assert_eq!(check, ["ok"], "{context}: integrity_check");
    let fk: i64 = conn
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap_or_else(|e| panic!("{context}: foreign_key_check: {e}"));
    assert_eq!(fk, 0, "{context}: foreign key violations");
    let rows = conn
        .prepare("SELECT id, user, name, state, last_step FROM devices")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    name: r.get(2)?,
                    active: r.get::<_, String>(3)? == "active",
                    last_step: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_else(|e| panic!("{context}: cannot read devices: {e}"));
    let failures = conn
        .prepare("SELECT user, failures, window_start FROM auth_state")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
                .collect::<Result<HashMap<_, _>, _>>()
        })
        .unwrap_or_else(|e| panic!("{context}: cannot read auth_state: {e}"));
    let codes = conn
        .prepare("SELECT salt, user, kind, uses_left, expires_at FROM recovery_codes")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            })?
            .collect::<Result<HashMap<_, _>, _>>()
        })
        .unwrap_or_else(|e| panic!("{context}: cannot read recovery_codes: {e}"));
    let audit = conn
        .prepare("SELECT user, action, COUNT(*) FROM audit GROUP BY user, action")
        .and_then(|mut s| {
            s.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
                .collect::<Result<HashMap<_, _>, _>>()
        })
        .unwrap_or_else(|e| panic!("{context}: cannot read audit: {e}"));
    Snapshot {
        rows,
        failures,
        codes,
        audit,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Begin,
    Finish,
    Remove,
    Resync,
    LoginRight,
    LoginWrong,
    LoginReplay,
    RecoveryGenerate,
    LoginRecovery,
    Bypass,
    Unlock,
}

/// The grouped codes (`xxxx-xxxx-xxxx`) `mfa` printed.
fn printed_codes(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_end_matches(['.', ',', ';']))
        .filter(|w| w.len() == 14 && w.split('-').count() == 3)
        .map(str::to_owned)
        .collect()
}

/// What the test knows about a device it began.
#[derive(Debug, Clone)]
struct Known {
    user: usize,
    secret: String,
    begun_step: i64,
}

/// How an operation's process ended.
enum Ending {
    /// Ran to the end.
    Completed,
    /// Ended by the SIGKILL.
    Killed,
}

fn ending_of_mfa(f: &Finished) -> Ending {
    if f.status.signal() == Some(libc::SIGKILL) {
        Ending::Killed
    } else {
        Ending::Completed
    }
}

fn ending_of_login(f: Finished) -> (Ending, Option<PamOutcome>) {
    if f.status.signal() == Some(libc::SIGKILL) {
        (Ending::Killed, None)
    } else {
        let out = PamOutcome::from_finished(f);
        (Ending::Completed, Some(out))
    }
}

/// Typical run time of each kind of operation, learnt from runs that were not killed.
struct Timing(HashMap<Kind, Duration>);

impl Timing {
    fn delay(&self, kind: Kind, rng: &mut Rng) -> Duration {
        let typical = self
            .0
            .get(&kind)
            .copied()
            .unwrap_or(Duration::from_millis(40));
        let max = typical.as_micros() as u64 * 6 / 5;
        Duration::from_micros(rng.below(max + 1))
    }
    fn learn(&mut self, kind: Kind, took: Duration) {
        let e = self.0.entry(kind).or_insert(took);
        *e = (*e * 7 + took) / 8;
    }
}

/// Starts a login of `user` answering `code`, and lets it go once its PAM stack is
/// loaded, so the kill's delay counts from the login itself.
fn start_login(env: &TestEnv, user: &str, code: &str, context: &str) -> Running {
    let mut child = env.pam(user).answer(code).spawn_waiting();
    let ready = child.wait_for("the client to be ready", |_, err| {
        err.contains("pam-client: waiting for stdin to close")
    });
    assert!(ready, "{context}: pam-client died before its barrier");
    child.close_stdin();
    child
}

/// Waits until the daemon has carried out every request already sent to it: a killed
/// client's connection, accepted by one of the daemon's threads at once (the moment
/// given here for it), is closed by that thread only after the request on it (if the
/// client sent one whole) has run to its end, however long that takes on a busy
/// machine. A `Hello` then checks the daemon answers.
fn settle_daemon(env: &TestEnv) {
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        pam_mfa_tests::mfad::wait_until_no_client(&env.socket(), Duration::from_secs(30)),
        "the daemon still held a killed client's connection after 30 s"
    );
    let answer = pam_mfa_tests::mfad::ask_at(&env.socket(), &pam_mfa_protocol::Request::Hello);
    assert!(
        matches!(answer, Ok(pam_mfa_protocol::Response::Hello { .. })),
        "the daemon did not answer after a kill: {answer:?}"
    );
}

/// Which process an iteration's SIGKILL ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// The operation's own process (`mfa`, or `pam-client` with the module).
    Client,
    /// The test's `mfad`, whatever request it is running; the next operation starts a
    /// new one on the same store.
    Daemon,
}

/// Lets `child` run for `delay` (it may end sooner), then kills it or the daemon; `took`
/// is set to the time from here to its end, what [`Timing`] learns from. A client whose
/// daemon was killed under it reports as killed: its answer was lost, so whether its
/// change was made is not known from it (the snapshot tells).
fn kill_after(
    env: &TestEnv,
    mut child: Running,
    delay: Duration,
    victim: Victim,
    took: &mut Duration,
) -> Finished {
    let start = Instant::now();
    std::thread::sleep(delay);
    match victim {
        Victim::Client => {
            let f = child.kill();
            *took = start.elapsed();
            f
        }
        Victim::Daemon => {
            let ended_first = child.has_exited();
            env.stop_mfad();
            let mut f = child.wait();
            *took = start.elapsed();
            if !ended_first {
                // Marked as killed (see above), and counted as a kill of the daemon.
                f.status = std::process::ExitStatus::from_raw(libc::SIGKILL);
            }
            f
        }
    }
}

#[test]
fn random_sigkills_never_corrupt_the_store_or_its_guarantees() {
    let kills = env_number("PAM_MFA_CRASH_KILLS", DEFAULT_KILLS as u64) as usize;
    let seed = env_number("PAM_MFA_CRASH_SEED", random_seed()) | 1;
    eprintln!("crash consistency: until {kills} kills, PAM_MFA_CRASH_SEED={seed}");
    let mut rng = Rng::seeded(seed);

    let env = TestEnv::new();
    env.write_service(SERVICE_ARGS);
    let users: Vec<TestUser> = (0..USERS).map(|_| TestUser::new()).collect();
    let mut known: HashMap<String, Known> = HashMap::new(); // by device name (unique)
    let mut pending: Vec<String> = Vec::new();
    let mut finish_started: HashSet<String> = HashSet::new();
    // One device each to start with, enrolled without kills.
    for (i, u) in users.iter().enumerate() {
        let name = format!("u{i}-start");
        let dev = env.enroll(u.name(), &name);
        finish_started.insert(name.clone());
        known.insert(
            name,
            Known {
                user: i,
                secret: dev.secret,
                begun_step: env.step(),
            },
        );
    }
    let mut timing = Timing(HashMap::new());
    let mut before = snapshot(env.db(), "after setup");
    // The highest step each device (by id) is known to have used.
    let mut used: HashMap<i64, i64> = HashMap::new();
    let mut counts: HashMap<(Kind, bool), usize> = HashMap::new();
    let mut next_name = 0usize;
    let mut killed_so_far = 0usize;
    let mut it = 0usize;
    // Recovery and bypass codes the test saw printed: whose, and how many more times each
    // may still be accepted (an upper bound: a killed operation may have used one up).
    let mut allowed: HashMap<String, (usize, i64)> = HashMap::new();
    // Each user's current recovery set as printed, replaced (and the old one void) by a
    // new set.
    let mut recovery_set: Vec<Vec<String>> = vec![Vec::new(); USERS];
    let mut codes_accepted = 0usize;
    // The user an administrative or recovery operation is about.
    let mut admin_user: Option<usize>;

    while killed_so_far < kills {
        it += 1;
        if it % 20 == 1 {
            sweep_faketime_leftovers();
        }
        // The kills must land: if the delays all fell after the processes ended, the
        // run would check nothing.
        assert!(
            it <= kills * 5,
            "only {killed_so_far} of {it} operations were killed before they ended"
        );
        env.advance_steps(1);
        let now = env.step();
        pending.retain(|n| now - known[n].begun_step < PENDING_MAX_AGE);
        let actives: Vec<Row> = before.rows.iter().filter(|r| r.active).cloned().collect();
        let active_known: Vec<&Row> = actives
            .iter()
            .filter(|r| known.contains_key(&r.name))
            .collect();

        let mut kind = match rng.below(100) {
            0..=12 => Kind::Begin,
            13..=25 => Kind::Finish,
            26..=31 => Kind::Remove,
            32..=37 => Kind::Resync,
            38..=59 => Kind::LoginRight,
            60..=71 => Kind::LoginWrong,
            72..=81 => Kind::LoginReplay,
            82..=85 => Kind::RecoveryGenerate,
            86..=93 => Kind::LoginRecovery,
            94..=96 => Kind::Bypass,
            _ => Kind::Unlock,
        };
        if kind == Kind::Finish && pending.is_empty() {
            kind = Kind::Begin;
        }
        if matches!(
            kind,
            Kind::Remove | Kind::Resync | Kind::LoginRight | Kind::LoginWrong | Kind::LoginReplay
        ) && active_known.is_empty()
        {
            kind = Kind::Begin;
        }
        // Keep some devices around: removals only from users with more than one.
        let context = format!("iteration {it} (seed {seed}), {kind:?}");

        // The device a login or resync is about, and the user whose counter may move.
        let mut target: Option<Row> = None;
        let mut login_user: Option<String> = None;
        let mut login_step: Option<i64> = None;
        let mut recovery_code: Option<String> = None;
        // A recovery set `mfa` printed (it ran to the end).
        let mut new_set: Option<Vec<String>> = None;
        admin_user = None;
        let delay = timing.delay(kind, &mut rng);
        // One operation in three has the daemon killed under it instead of its client.
        let victim = if rng.below(3) == 0 {
            Victim::Daemon
        } else {
            Victim::Client
        };
        // Learnt from the kill's start: for a login, after its stack is loaded.
        let mut took = Duration::ZERO;
        let (ending, outcome) = match kind {
            Kind::Begin => {
                let u = rng.below(USERS as u64) as usize;
                let name = format!("u{u}-d{next_name}");
                next_name += 1;
                let child = env.spawn_mfa(&[
                    "--user",
                    users[u].name(),
                    "enroll",
                    "totp",
                    &name,
                    "--begin",
                    "--json",
                ]);
                let f = kill_after(&env, child, delay, victim, &mut took);
                let ending = ending_of_mfa(&f);
                if f.status.success() {
                    let json: serde_json::Value = serde_json::from_str(&f.stdout)
                        .unwrap_or_else(|e| panic!("{context}: begin printed no JSON: {e}"));
                    let secret = json["secret"].as_str().expect("secret").to_owned();
                    known.insert(
                        name.clone(),
                        Known {
                            user: u,
                            secret,
                            begun_step: now,
                        },
                    );
                    pending.push(name);
                }
                (ending, None)
            }
            Kind::Finish => {
                let name = pending.remove(rng.below(pending.len() as u64) as usize);
                let k = known[&name].clone();
                let c1 = env.code_at_step(&k.secret, -1);
                let c2 = env.code(&k.secret);
                finish_started.insert(name.clone());
                let child = env.spawn_mfa(&[
                    "--user",
                    users[k.user].name(),
                    "enroll",
                    "finish",
                    &name,
                    &c1,
                    &c2,
                ]);
                let f = kill_after(&env, child, delay, victim, &mut took);
                let ending = ending_of_mfa(&f);
                if let Ending::Completed = ending {
                    let full = actives
                        .iter()
                        .filter(|r| r.user == users[k.user].name())
                        .count()
                        >= 8;
                    assert_eq!(
                        f.status.success(),
                        !full,
                        "{context}: finish of {name} with {} active devices: {f:?}",
                        actives
                            .iter()
                            .filter(|r| r.user == users[k.user].name())
                            .count()
                    );
                }
                (ending, None)
            }
            Kind::Remove => {
                let r = active_known[rng.below(active_known.len() as u64) as usize].clone();
                let child = env.spawn_mfa(&["--user", &r.user, "remove", &r.name, "--yes"]);
                let f = kill_after(&env, child, delay, victim, &mut took);
                let ending = ending_of_mfa(&f);
                if let Ending::Completed = ending {
                    assert!(f.status.success(), "{context}: remove {}: {f:?}", r.name);
                }
                (ending, None)
            }
            Kind::Resync => {
                let r = active_known[rng.below(active_known.len() as u64) as usize].clone();
                let secret = &known[&r.name].secret;
                let c1 = env.code_at_step(secret, -1);
                let c2 = env.code(secret);
                let child = env.spawn_mfa(&["--user", &r.user, "resync", &r.name, &c1, &c2]);
                let f = kill_after(&env, child, delay, victim, &mut took);
                let ending = ending_of_mfa(&f);
                if let Ending::Completed = ending {
                    // Two codes newer than any used one resync; otherwise it is refused.
                    let fresh = r.last_step.is_none_or(|s| s < now - 1);
                    assert_eq!(
                        f.status.success(),
                        fresh,
                        "{context}: resync of {} (last step {:?}, now {now}): {f:?}",
                        r.name,
                        r.last_step
                    );
                }
                target = Some(r);
                (ending, None)
            }
            Kind::RecoveryGenerate | Kind::Bypass | Kind::Unlock => {
                let u = rng.below(USERS as u64) as usize;
                let name = users[u].name();
                let args: Vec<&str> = match kind {
                    Kind::RecoveryGenerate => vec!["--user", name, "recovery", "generate"],
                    Kind::Bypass => vec!["admin", "bypass", name, "--uses", "2"],
                    _ => vec!["admin", "unlock", name],
                };
                let child = env.spawn_mfa(&args);
                let f = kill_after(&env, child, delay, victim, &mut took);
                let ending = ending_of_mfa(&f);
                if let Ending::Completed = ending {
                    assert!(f.status.success(), "{context}: {args:?}: {f:?}");
                    let codes = printed_codes(&f.stdout);
                    match kind {
                        Kind::RecoveryGenerate => {
                            assert_eq!(codes.len(), 10, "{context}: {}", f.stdout);
                            new_set = Some(codes);
                        }
                        Kind::Bypass => {
                            assert_eq!(codes.len(), 1, "{context}: {}", f.stdout);
                            allowed.insert(codes[0].clone(), (u, 2));
                        }
                        _ => {}
                    }
                }
                admin_user = Some(u);
                (ending, None)
            }
            Kind::LoginRecovery => {
                let u = rng.below(USERS as u64) as usize;
                // Mostly a code never used, sometimes one already accepted (a replay).
                let spent = rng.below(4) == 0;
                let mut candidates: Vec<&String> = allowed
                    .iter()
                    .filter(|(_, (owner, left))| *owner == u && (*left == 0) == spent)
                    .map(|(c, _)| c)
                    .collect();
                candidates.sort();
                let code = match candidates.as_slice() {
                    [] => "abcd-efgh-jkmn".to_owned(),
                    c => c[rng.below(c.len() as u64) as usize].clone(),
                };
                let child = start_login(&env, users[u].name(), &code, &context);
                let f = kill_after(&env, child, delay, victim, &mut took);
                let (ending, outcome) = ending_of_login(f);
                login_user = Some(users[u].name().to_owned());
                admin_user = Some(u);
                recovery_code = Some(code);
                (ending, outcome)
            }
            Kind::LoginRight | Kind::LoginWrong | Kind::LoginReplay => {
                let r = active_known[rng.below(active_known.len() as u64) as usize].clone();
                let secret = &known[&r.name].secret;
                // A login checks the code against all of the user's devices: a wrong code
                // is wrong for every one of them.
                let secrets_of = |other: bool| -> Vec<&str> {
                    active_known
                        .iter()
                        .filter(|x| x.user == r.user && (!other || x.id != r.id))
                        .map(|x| known[&x.name].secret.as_str())
                        .collect()
                };
                let wrong = wrong_code_for_all(&secrets_of(false), env.now(), 1);
                let (code, step) = match kind {
                    Kind::LoginRight => (env.code(secret), Some(now)),
                    Kind::LoginReplay => match r.last_step {
                        // The last used step, if it is still inside the window of ±1.
                        Some(s) if s >= now - 1 => (env.code_at_step(secret, s - now), Some(s)),
                        _ => (wrong.clone(), None),
                    },
                    _ => (wrong.clone(), None),
                };
                // A code that another of the user's devices accepts too, or (a replay)
                // this device at another step of the window (a one in a few hundred
                // thousand coincidence), would be a login in its own right: tried as a
                // wrong code instead.
                let other_step = |s: i64| {
                    (now - 1..=now + 1)
                        .filter(|&k| k != s)
                        .any(|k| env.code_at_step(secret, k - now) == code)
                };
                let (code, step) = if step.is_some_and(|s| {
                    valid_codes(&secrets_of(true), env.now(), 1).contains(&code)
                        || (kind == Kind::LoginReplay && other_step(s))
                }) {
                    kind = Kind::LoginWrong;
                    (wrong, None)
                } else {
                    (code, step)
                };
                let child = start_login(&env, &r.user, &code, &context);
                let f = kill_after(&env, child, delay, victim, &mut took);
                let (ending, outcome) = ending_of_login(f);
                login_user = Some(r.user.clone());
                login_step = step;
                target = Some(r);
                (ending, outcome)
            }
        };
        let killed = matches!(ending, Ending::Killed);
        if killed {
            killed_so_far += 1;
        } else {
            timing.learn(kind, took);
        }
        *counts.entry((kind, killed)).or_default() += 1;

        if killed && victim == Victim::Client {
            // A client killed after sending its request does not stop the daemon from
            // carrying it out (what the design is for): let a request it sent land
            // before the snapshot, so that its effect is counted in this iteration.
            settle_daemon(&env);
        }
        let after = snapshot(env.db(), &context);

        // No device is active without a finish having been started for it.
        for r in after.rows.iter().filter(|r| r.active) {
            assert!(
                finish_started.contains(&r.name),
                "{context}: device {} of {} is active but was never confirmed",
                r.name,
                r.user
            );
        }
        // At most 8 active devices per user.
        for u in &users {
            let n = after
                .rows
                .iter()
                .filter(|r| r.active && r.user == u.name())
                .count();
            assert!(n <= 8, "{context}: {} has {n} active devices", u.name());
        }
        // A device's last used step never goes back.
        for r in &after.rows {
            if let (Some(s), Some(&prev)) = (r.last_step, used.get(&r.id)) {
                assert!(
                    s >= prev,
                    "{context}: device {} went back from step {prev} to {s}",
                    r.name
                );
            }
        }

        // Logins that ran to the end did what their code says.
        if let (Some(out), Some(r)) = (&outcome, &target) {
            let fresh = kind == Kind::LoginRight && r.last_step.is_none_or(|s| s < now);
            if fresh {
                assert!(
                    out.succeeded(),
                    "{context}: a right, fresh code of {} was refused\n{}",
                    r.name,
                    out.transcript()
                );
            } else {
                assert_eq!(
                    out.result,
                    PamCode::AuthErr,
                    "{context}: {} of {} (last used step {:?} when it began, now {now}, \
                     the code's step {login_step:?}; {victim:?} to be killed) was not refused\n{}",
                    r.name,
                    r.user,
                    r.last_step,
                    out.transcript()
                );
            }
        }
        // A success (seen, or recorded by a killed login) used a step never used before.
        if let (Some(r), Some(step)) = (&target, login_step) {
            let new = after.rows.iter().find(|x| x.id == r.id);
            let accepted = match &outcome {
                Some(out) => out.succeeded(),
                None => new.and_then(|x| x.last_step) == Some(step) && r.last_step != Some(step),
            };
            if accepted {
                if let Some(prev) = used.get(&r.id) {
                    assert!(
                        step > *prev,
                        "{context}: step {step} of {} accepted after step {prev} was used",
                        r.name
                    );
                }
                assert_eq!(
                    new.and_then(|x| x.last_step),
                    Some(step),
                    "{context}: an accepted code was not recorded"
                );
            }
        }
        // Recovery and bypass codes, and the audit rows that go with them.
        let clock = env.now();
        for (u, user) in users.iter().enumerate() {
            let name = user.name();
            let this_op = admin_user == Some(u);
            let generated = after.new_codes(&before, name, "recovery");
            let bypasses = after.new_codes(&before, name, "bypass");
            let d = |action: &str| after.audit_rows(name, action) - before.audit_rows(name, action);
            // Nothing new appears without its own operation, and each comes with its row.
            assert!(
                this_op || (generated == 0 && bypasses == 0),
                "{context}: codes of {name} appeared without an operation"
            );
            assert!(
                (generated == 0 && d("recovery-generate") == 0)
                    || (generated == 10 && d("recovery-generate") == 1),
                "{context}: {generated} new recovery codes of {name} with {} audit rows",
                d("recovery-generate")
            );
            assert_eq!(
                bypasses as i64,
                d("bypass"),
                "{context}: new bypass codes of {name} and their audit rows"
            );
            if generated == 10 {
                // The old set is void; the new one is known if `mfa` got to print it.
                for old in recovery_set[u].drain(..) {
                    allowed.insert(old, (u, 0));
                }
                if let Some(set) = new_set.take() {
                    for c in &set {
                        allowed.insert(c.clone(), (u, 1));
                    }
                    recovery_set[u] = set;
                }
            } else {
                assert!(
                    new_set.is_none() || !this_op,
                    "{context}: mfa printed a recovery set that is not in the store"
                );
            }
            // Uses go down one at a time, each with its login row.
            for (kind, action) in [("recovery", "recovery-login"), ("bypass", "bypass-login")] {
                let fresh = if kind == "recovery" {
                    generated
                } else {
                    2 * bypasses
                };
                if kind == "recovery" && generated > 0 {
                    continue; // the whole set was replaced
                }
                let spent = before.uses_left(name, kind, clock) + fresh as i64
                    - after.uses_left(name, kind, clock);
                assert!(
                    spent == d(action) && (0..=1).contains(&spent),
                    "{context}: {spent} {kind} uses of {name} spent, {} {action} rows",
                    d(action)
                );
                assert!(
                    spent == 0
                        || (this_op
                            && recovery_code
                                .as_ref()
                                .is_some_and(|c| allowed.contains_key(c))),
                    "{context}: a {kind} code of {name} was used without a login with it"
                );
            }
            if !this_op {
                continue;
            }
            let Some(code) = &recovery_code else {
                continue;
            };
            let used = d("recovery-login") + d("bypass-login") == 1;
            if let Some(out) = &outcome {
                assert_eq!(
                    out.succeeded(),
                    used,
                    "{context}: login result and recorded use disagree"
                );
                if !out.succeeded() {
                    out.assert_result(PamCode::AuthErr);
                }
            }
            if used {
                codes_accepted += 1;
                let left = allowed.get_mut(code).map(|(_, left)| left);
                match left {
                    Some(left) if *left > 0 => *left -= 1,
                    _ => panic!("{context}: code {code} accepted more often than issued"),
                }
            }
        }

        // Failure counters: down only by a login with the right code; a login that ran to
        // the end moved its user's counter exactly.
        for u in &users {
            let (was, window_start) = before.failures.get(u.name()).copied().unwrap_or((0, 0));
            let is = after.failures.get(u.name()).map_or(0, |f| f.0);
            let this_login = login_user.as_deref() == Some(u.name());
            if is == 0 && was > 0 && window_start < env.now() - FORGET_AFTER_SECS {
                // Forgotten after a day, as documented in the store.
                continue;
            }
            if matches!(kind, Kind::Unlock | Kind::Bypass)
                && admin_user.is_some_and(|a| users[a].name() == u.name())
            {
                let done = matches!(ending, Ending::Completed);
                assert!(
                    is == 0 || (!done && is == was),
                    "{context}: {kind:?} left the counter of {} at {is} (was {was})",
                    u.name()
                );
                continue;
            }
            if !this_login {
                assert_eq!(
                    is,
                    was,
                    "{context}: the failure counter of {} moved from {was} to {is} without a login",
                    u.name()
                );
                continue;
            }
            // A wrong short code counts one failure per three codes it was compared with (at
            // most 8 devices at window 1: 8), a right one clears them; a recovery code, right
            // or wrong, leaves them as they were.
            let counted = |is: i64| is > was && is <= was + 8;
            match &outcome {
                Some(_) if kind == Kind::LoginRecovery => {
                    assert_eq!(is, was, "{context}: a recovery code moved the counter");
                }
                Some(out) if out.succeeded() => assert_eq!(is, 0, "{context}: success"),
                Some(_) => assert!(
                    counted(is),
                    "{context}: a refused code moved the counter from {was} to {is}"
                ),
                None => {
                    let may_reset = kind == Kind::LoginRight;
                    assert!(
                        is == was || counted(is) || (may_reset && is == 0),
                        "{context}: killed login moved the counter of {} from {was} to {is}",
                        u.name()
                    );
                }
            }
        }

        for r in &after.rows {
            if let Some(s) = r.last_step {
                used.insert(r.id, s);
            }
        }
        before = after;
    }

    let mut report: Vec<String> = counts
        .iter()
        .map(|((k, killed), n)| {
            format!(
                "{k:?} {}: {n}",
                if *killed { "killed" } else { "completed" }
            )
        })
        .collect();
    report.sort();
    eprintln!(
        "crash consistency: {it} operations, {killed_so_far} ended by SIGKILL, each followed \
         by the checks; {codes_accepted} recovery/bypass code uses recorded\n  {}",
        report.join("\n  ")
    );
    // The recovery checks must have had something to check.
    assert!(
        kills < 200 || codes_accepted > 0,
        "no recovery or bypass code was ever accepted"
    );
}
