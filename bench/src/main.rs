//! `login-bench`: pam_mfa against pam_google_authenticator and pam_oath, one real login at
//! a time (issue 7), with the floor of pam_mfa's design beside them (`pam_sqlite_floor`,
//! `bench/sqlite-floor`).
//!
//! ```text
//! login-bench [--mfa-users 100,1000,10000,100000] [--other-users 100,1000,4000]
//!             [--modules mfa,sqlite,ga,oath] [--floor-users 1000] [--race-procs 32]
//!             [--race-users-per-proc 50] [--load-iters 2000] [--dsync-iters 300]
//!             [--code-steps 40] [--dir /var/tmp] [--module PATH] [--keep] [--setup-only]
//!             [--smoke]
//! login-bench --backend fleet [--fleet-users 1000,100000] [--fleet-logins 5000]
//!             [--race-procs 32] [--race-users-per-proc 50] [--floor-users 1000] [--smoke] …
//! ```
//!
//! `--backend fleet` (issue 19) measures pam_mfa with its accounts in the fleet's
//! PostgreSQL database instead: a cluster on this machine, two hosts (two `mfad`s with
//! their own roles), the same login series and concurrent run, the latter spread over
//! both hosts (`fleet.rs`).
//!
//! One invocation sets up the same N users with the same secrets for every module, then
//! times logins the way a PAM application makes them: `pam_start` → `pam_authenticate` →
//! `pam_end` in one process, the conversation answering with the user's current code from
//! `oathtool`, every user logging in once (in a shuffled order). Each measurement runs in
//! a fresh child process of this binary under pam_wrapper (so no file in `/etc/pam.d` is
//! read or touched) and nss_wrapper (so the users need no real accounts; see `lib.rs`).
//!
//! `pam_sqlite_floor` is the least a module built as ARCHITECTURE.md fixes pam_mfa can do
//! per login (a Rust cdylib with the same bundled SQLite, one WAL store opened per login,
//! one durable write), run over the same users and the same N as pam_mfa: the difference
//! between the two is pam_mfa's own code and schema, the rest is the design's.
//!
//! It also measures the floor (pam_permit through the same libpam), one 4 KiB `O_DSYNC`
//! write on the filesystem the stores live on, 32 processes logging in at once on one
//! store, and the cost of loading each module (`dlopen` + `dlclose`). It prints a table
//! (Markdown) and the issue's targets, met or not. Exit status 1 if any login that should
//! have succeeded did not, or the concurrent run saw an error or a code accepted twice.
//!
//! Must run as root: the store must be root's, and pam_google_authenticator's `user=root`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod accounts;
mod codes;
mod ffi;
mod fixtures;
mod fleet;
mod machine;
mod postgres;
mod run;
mod stats;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use codes::{Codes, Secrets};
use run::{Libraries, LoadResult, LoginRun, RaceResult};
use stats::{Summary, group_thousands, micros};

/// What `--modules` accepts, all of them by default.
const MODULE_KEYS: [&str; 4] = ["mfa", "sqlite", "ga", "oath"];

/// The modules' names, in the order series at one N run and rows are printed.
const MODULE_ORDER: [&str; 5] = [
    "pam_mfa",
    FLEET_MODULE,
    "pam_sqlite_floor",
    "pam_google_authenticator",
    "pam_oath",
];

/// The series' name for pam_mfa through a fleet host.
const FLEET_MODULE: &str = "pam_mfa (fleet)";

/// Where pam_mfa's accounts are kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// The host's own SQLite store (and the other modules beside it).
    Local,
    /// The fleet's PostgreSQL database, through two hosts.
    Fleet,
}

struct Config {
    backend: Backend,
    /// Users in the fleet's database, one series each (ascending; the database grows).
    fleet_users: Vec<usize>,
    /// Logins per fleet series (users `0..k` of the N, shuffled); 0: every user.
    fleet_logins: usize,
    /// `name=value` settings for the fleet's PostgreSQL server.
    pg_settings: Vec<String>,
    mfa_users: Vec<usize>,
    other_users: Vec<usize>,
    modules: BTreeSet<String>,
    floor_users: usize,
    race_procs: usize,
    race_users_per_proc: usize,
    load_iters: usize,
    dsync_iters: usize,
    code_steps: u32,
    dir: PathBuf,
    module: Option<PathBuf>,
    keep: bool,
    /// Stop after the setup, keeping the working directory (for profiling by hand).
    setup_only: bool,
}

impl Config {
    fn default_full() -> Self {
        Self {
            backend: Backend::Local,
            fleet_users: vec![1_000, 100_000],
            fleet_logins: 5_000,
            pg_settings: Vec::new(),
            mfa_users: vec![100, 1_000, 10_000, 100_000],
            other_users: vec![100, 1_000, 4_000],
            modules: MODULE_KEYS.map(str::to_owned).into(),
            floor_users: 1_000,
            race_procs: 32,
            race_users_per_proc: 50,
            load_iters: 2_000,
            dsync_iters: 300,
            code_steps: 40,
            dir: PathBuf::from("/var/tmp"),
            module: None,
            keep: false,
            setup_only: false,
        }
    }

    fn smoke(mut self) -> Self {
        self.mfa_users = vec![20];
        self.fleet_users = vec![20, 200];
        self.fleet_logins = 20;
        self.other_users = vec![20];
        self.floor_users = 20;
        self.race_procs = 4;
        self.race_users_per_proc = 4;
        self.load_iters = 20;
        self.dsync_iters = 20;
        self.code_steps = 10;
        self
    }
}

const USAGE: &str = "\
usage: login-bench [OPTIONS]          (as root; see README.md, \"Performance\")

  --mfa-users LIST          users for pam_mfa's and pam_sqlite_floor's series
                            (default 100,1000,10000,100000)
  --other-users LIST        users for the other modules' (default 100,1000,4000)
  --modules LIST            which of mfa,sqlite,ga,oath to run (default all four;
                            sqlite: pam_sqlite_floor, the floor of pam_mfa's design)
  --floor-users N           logins through pam_permit, the floor (default 1000)
  --race-procs N            concurrent login processes on one store; 0 skips (default 32)
  --race-users-per-proc N   users each of them owns (default 50)
  --load-iters N            rounds of dlopen + dlclose, each module in turn (default 2000)
  --dsync-iters N           4 KiB O_DSYNC writes (default 300)
  --code-steps N            time steps of codes computed per user (default 40: 20 minutes)
  --dir DIR                 where the working directory goes (default /var/tmp)
  --module PATH             the pam_mfa.so to measure (default: libpam_mfa_module.so next to this)
  --keep                    keep the working directory
  --setup-only              set everything up, keep it, measure nothing
  --smoke                   20 users everywhere, 4 concurrent processes: a few seconds
                            (with --backend fleet: 20 and 200 users, 10-20 s)
  --backend local|fleet     local (default): the modules above, pam_mfa on its SQLite store;
                            fleet (or --fleet): pam_mfa's accounts in the fleet's PostgreSQL
                            database (a cluster started on this machine, two hosts, two
                            mfads), the floor and the concurrent run spread over both hosts
  --fleet-users LIST        users in the fleet's database, a series at each
                            (default 1000,100000)
  --fleet-logins N          logins per fleet series, users 0..N of them shuffled
                            (default 5000; 0: every user)
  --pg-setting NAME=VALUE   a setting for the fleet's PostgreSQL server, repeatable (e.g.
                            synchronous_commit=off, log_min_duration_statement=0 with --keep)";

fn parse_list(v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace('_', "")
                .parse::<usize>()
                .map_err(|e| format!("bad number {s:?}: {e}"))
        })
        .collect()
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut c = Config::default_full();
    if args.iter().any(|a| a == "--smoke") {
        c = c.smoke();
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--smoke" => continue,
            "--fleet" => {
                c.backend = Backend::Fleet;
                continue;
            }
            "--keep" => {
                c.keep = true;
                continue;
            }
            "--setup-only" => {
                c.setup_only = true;
                c.keep = true;
                continue;
            }
            "-h" | "--help" => return Err(String::new()),
            _ => {}
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value (login-bench --help)"))?;
        let num = |v: &str| {
            v.replace('_', "")
                .parse::<usize>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--mfa-users" => c.mfa_users = parse_list(v)?,
            "--other-users" => c.other_users = parse_list(v)?,
            "--modules" => {
                c.modules = v.split(',').map(str::to_owned).collect();
                if let Some(bad) = c
                    .modules
                    .iter()
                    .find(|m| !MODULE_KEYS.contains(&m.as_str()))
                {
                    return Err(format!(
                        "unknown module {bad:?} ({})",
                        MODULE_KEYS.join(", ")
                    ));
                }
            }
            "--floor-users" => c.floor_users = num(v)?,
            "--race-procs" => c.race_procs = num(v)?,
            "--race-users-per-proc" => c.race_users_per_proc = num(v)?,
            "--load-iters" => c.load_iters = num(v)?,
            "--dsync-iters" => c.dsync_iters = num(v)?,
            "--code-steps" => c.code_steps = u32::try_from(num(v)?).map_err(|e| e.to_string())?,
            "--backend" => {
                c.backend = match v.as_str() {
                    "local" => Backend::Local,
                    "fleet" => Backend::Fleet,
                    _ => return Err(format!("--backend {v:?}: local or fleet")),
                }
            }
            "--fleet-users" => c.fleet_users = parse_list(v)?,
            "--fleet-logins" => c.fleet_logins = num(v)?,
            "--pg-setting" => c.pg_settings.push(v.clone()),
            "--dir" => c.dir = PathBuf::from(v),
            "--module" => c.module = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown argument {flag:?} (login-bench --help)")),
        }
    }
    if c.race_procs == 1 {
        return Err("--race-procs must be 0 (skip) or at least 2".to_owned());
    }
    Ok(c)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("child-logins") => run::child_logins(&args[1..]),
        Some("child-load") => run::child_load(&args[1..]),
        _ => match parse_args(&args) {
            Ok(config) => orchestrate(&config),
            Err(e) if e.is_empty() => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("login-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A private, root-owned working directory, removed afterwards unless `--keep`.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn make_work_dir(parent: &std::path::Path, keep: bool) -> Result<WorkDir, String> {
    let mut nonce = [0u8; 4];
    getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
    let path = parent.join(format!(
        "pam_mfa_bench.{}",
        data_encoding::HEXLOWER.encode(&nonce)
    ));
    fixtures::private_dir(&path)?;
    Ok(WorkDir { path, keep })
}

struct Results {
    floor: Option<LoginRun>,
    dsync: Option<Summary>,
    logins: Vec<LoginRun>,
    loads: Vec<(String, LoadResult)>,
    race: Option<RaceResult>,
}

fn orchestrate(c: &Config) -> Result<bool, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("run as root: the store must be root's, and the modules check owners".into());
    }
    if c.backend == Backend::Fleet {
        return orchestrate_fleet(c);
    }
    let libs = Libraries::find(c.module.as_deref())?;
    let info = machine::describe(&c.dir);
    println!("# login-bench");
    println!("{info}");
    println!("libraries: {}", libs.describe());

    let work = make_work_dir(&c.dir, c.keep)?;
    let w = &work.path;
    let libs = libs.installed_in(&w.join("modules"))?;
    println!(
        "modules measured from copies in {}",
        w.join("modules").display()
    );
    let (passwd, group) = fixtures::nss_files(w)?;
    let env = run::ChildEnv {
        libs: &libs,
        passwd,
        group,
        logs: w.join("logs"),
    };
    fixtures::private_dir(&env.logs)?;

    let want = |m: &str| c.modules.contains(m);
    let mfa_ns: Vec<usize> = if want("mfa") {
        c.mfa_users.clone()
    } else {
        vec![]
    };
    let sqlite_ns: Vec<usize> = if want("sqlite") {
        c.mfa_users.clone()
    } else {
        vec![]
    };
    let ga_ns: Vec<usize> = if want("ga") {
        c.other_users.clone()
    } else {
        vec![]
    };
    let oath_ns: Vec<usize> = if want("oath") {
        c.other_users.clone()
    } else {
        vec![]
    };
    let race_users = if want("mfa") {
        c.race_procs * c.race_users_per_proc
    } else {
        0
    };
    let max_users = mfa_ns
        .iter()
        .chain(&sqlite_ns)
        .chain(&ga_ns)
        .chain(&oath_ns)
        .copied()
        .chain([race_users, c.floor_users])
        .max()
        .unwrap_or(0);

    // Setup: secrets, every module's files, then the codes (timing starts after all this).
    let secrets = Secrets::generate(max_users)?;
    let now = codes::unix_now()?;
    let mut planned: Vec<(String, usize, PathBuf)> = Vec::new(); // (module, n, service dir)
    let mut all_ns: BTreeSet<usize> = BTreeSet::new();
    println!("\n## setup");
    let mut mfa_sizes = mfa_ns.clone();
    if race_users > 0 {
        mfa_sizes.push(race_users);
    }
    let mut race_dir = None;
    // pam_mfa is measured through mfad, as it runs: one daemon per store, ended with the
    // run.
    let mut daemons = run::Daemons::default();
    for (n, db, took) in fixtures::mfa_stores(w, &secrets, &mfa_sizes, now)? {
        println!(
            "pam_mfa store, {} users: ready after {:.1} s",
            group_thousands(n as u128),
            took.as_secs_f64()
        );
        let line = format!(
            "{} socket={}",
            libs.pam_mfa.display(),
            daemons.serve(&env, &db, None)?.display()
        );
        if mfa_ns.contains(&n) {
            planned.push((
                "pam_mfa".into(),
                n,
                fixtures::service_dir(w, &format!("mfa-{n}"), &line)?,
            ));
            all_ns.insert(n);
        }
        if n == race_users {
            // Its own copy: the concurrent run must not use the series' store.
            let race_db_dir = w.join("mfa-race");
            fixtures::private_dir(&race_db_dir)?;
            let race_db = race_db_dir.join("devices.db");
            std::fs::copy(&db, &race_db).map_err(|e| format!("{}: {e}", race_db.display()))?;
            fixtures::serving_wal(&race_db)?;
            let line = format!(
                "{} socket={}",
                libs.pam_mfa.display(),
                daemons.serve(&env, &race_db, None)?.display()
            );
            race_dir = Some(fixtures::service_dir(w, "mfa-race", &line)?);
        }
    }
    for &n in &sqlite_ns {
        let (db, took) = fixtures::sqlite_floor_store(w, &format!("sqlite-{n}"), &secrets, n, now)?;
        println!(
            "pam_sqlite_floor store, {} users: {:.1} s",
            group_thousands(n as u128),
            took.as_secs_f64()
        );
        let line = format!("{} db={}", libs.sqlite_floor.display(), db.display());
        planned.push((
            "pam_sqlite_floor".into(),
            n,
            fixtures::service_dir(w, &format!("sqlite-{n}"), &line)?,
        ));
        all_ns.insert(n);
    }
    for &n in &ga_ns {
        let (dir, took) = fixtures::ga_files(w, &format!("ga-{n}"), &secrets, n)?;
        println!(
            "pam_google_authenticator files, {} users: {:.1} s",
            group_thousands(n as u128),
            took.as_secs_f64()
        );
        let line = format!(
            "{} secret={}/${{USER}} user=root",
            libs.ga.display(),
            dir.display()
        );
        planned.push((
            "pam_google_authenticator".into(),
            n,
            fixtures::service_dir(w, &format!("ga-{n}"), &line)?,
        ));
        all_ns.insert(n);
    }
    for &n in &oath_ns {
        let (file, took) = fixtures::oath_file(w, &format!("oath-{n}"), &secrets, n)?;
        println!(
            "pam_oath users file, {} users: {:.1} s",
            group_thousands(n as u128),
            took.as_secs_f64()
        );
        let line = format!(
            "{} usersfile={} window=1 digits=6",
            libs.oath.display(),
            file.display()
        );
        planned.push((
            "pam_oath".into(),
            n,
            fixtures::service_dir(w, &format!("oath-{n}"), &line)?,
        ));
        all_ns.insert(n);
    }
    // Same order for every module at a given N, smallest N first.
    planned.sort_by_key(|(m, n, _)| (*n, module_rank(m)));
    let floor_dir = fixtures::service_dir(w, "permit", &libs.permit.display().to_string())?;

    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let (codes, took) = Codes::compute(&secrets, max_users, c.code_steps, threads)?;
    let codes_path = w.join("codes.bin");
    codes.save(&codes_path)?;
    println!(
        "codes from oathtool, {} users x {} steps ({} runs, {threads} at a time): {:.1} s",
        group_thousands(max_users as u128),
        c.code_steps,
        group_thousands(max_users as u128),
        took.as_secs_f64()
    );

    if c.setup_only {
        println!(
            "setup only: service directories, stores and codes are in {}",
            w.display()
        );
        return Ok(true);
    }

    let mut results = Results {
        floor: None,
        dsync: None,
        logins: Vec::new(),
        loads: Vec::new(),
        race: None,
    };
    let started = Instant::now();
    println!("\n## measurements");

    results.dsync = Some(run::dsync_writes(w, c.dsync_iters)?);
    println!("4 KiB O_DSYNC write: {}", show(results.dsync.as_ref()));

    if c.load_iters > 0 {
        let mut targets = vec![("pam_permit", &libs.permit)];
        if want("mfa") {
            targets.push(("pam_mfa", &libs.pam_mfa));
        }
        if want("sqlite") {
            targets.push(("pam_sqlite_floor", &libs.sqlite_floor));
        }
        if want("ga") || want("mfa") || want("sqlite") {
            targets.push(("pam_google_authenticator", &libs.ga));
        }
        if want("oath") {
            targets.push(("pam_oath", &libs.oath));
        }
        let paths: Vec<&std::path::Path> = targets.iter().map(|(_, p)| p.as_path()).collect();
        let costs = run::load_costs(&env, &paths, c.load_iters)?;
        for ((name, _), r) in targets.into_iter().zip(costs) {
            println!(
                "load {name}: median {} µs, p99 {} µs{}",
                micros(r.summary.median),
                micros(r.summary.p99),
                if r.unloads {
                    ""
                } else {
                    " (NOT unloaded by dlclose)"
                }
            );
            results.loads.push((name.to_owned(), r));
        }
    }

    if c.floor_users > 0 {
        let r = run::logins(
            &env,
            "pam_permit",
            &floor_dir,
            &codes_path,
            c.floor_users,
            c.floor_users,
        )?;
        println!("{}", r.line());
        results.floor = Some(r);
    }
    for (module, n, dir) in &planned {
        let r = run::logins(&env, module, dir, &codes_path, *n, *n)?;
        println!("{}", r.line());
        results.logins.push(r);
    }
    if let Some(dir) = &race_dir {
        let r = run::race(
            &env,
            std::slice::from_ref(dir),
            &codes_path,
            c.race_procs,
            c.race_users_per_proc,
        )?;
        println!("{}", r.line());
        results.race = Some(r);
    }
    println!(
        "(measurements took {:.0} s)",
        started.elapsed().as_secs_f64()
    );

    Ok(report(&results, &all_ns, &info))
}

/// `--backend fleet`: the fleet's database and two hosts, then the floor, one `O_DSYNC`
/// write, one series per `--fleet-users` (the database growing between them) through the
/// first host, and the concurrent run spread over both hosts; the same table and targets.
fn orchestrate_fleet(c: &Config) -> Result<bool, String> {
    let libs = Libraries::find(c.module.as_deref())?;
    let info = machine::describe(&c.dir);
    println!("# login-bench --backend fleet");
    println!("{info}");
    println!("libraries: {}", libs.describe());

    let work = make_work_dir(&c.dir, c.keep)?;
    let w = &work.path;
    let libs = libs.installed_in(&w.join("modules"))?;
    let (passwd, group) = fixtures::nss_files(w)?;
    let env = run::ChildEnv {
        libs: &libs,
        passwd,
        group,
        logs: w.join("logs"),
    };
    fixtures::private_dir(&env.logs)?;

    let mut sizes = c.fleet_users.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let race_users = c.race_procs * c.race_users_per_proc;
    let logins_at = |n: usize| {
        if c.fleet_logins == 0 {
            n
        } else {
            c.fleet_logins.min(n)
        }
    };
    let max_users = sizes.iter().copied().chain([race_users]).max().unwrap_or(0);
    // Codes only for the users who log in: users 0..k of each series, the concurrent
    // run's, the floor's.
    let coded = sizes
        .iter()
        .map(|&n| logins_at(n))
        .chain([race_users, c.floor_users])
        .max()
        .unwrap_or(0);
    let secrets = Secrets::generate(max_users.max(coded))?;

    println!("\n## setup");
    let mut daemons = run::Daemons::default();
    let started = Instant::now();
    let mut fleet = fleet::Fleet::start(w, &env, &mut daemons, c.keep, &c.pg_settings)?;
    println!(
        "PostgreSQL cluster (TLS, fsync on{}), fleet init, hosts {} and their mfads: {:.1} s",
        c.pg_settings
            .iter()
            .map(|s| format!(", {s}"))
            .collect::<String>(),
        fleet::HOSTS.join(" and "),
        started.elapsed().as_secs_f64()
    );
    let floor_dir = fixtures::service_dir(w, "permit", &libs.permit.display().to_string())?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let (codes, took) = Codes::compute(&secrets, coded, c.code_steps, threads)?;
    let codes_path = w.join("codes.bin");
    codes.save(&codes_path)?;
    println!(
        "codes from oathtool, {} users x {} steps: {:.1} s",
        group_thousands(coded as u128),
        c.code_steps,
        took.as_secs_f64()
    );
    if c.setup_only {
        let took = fleet.fill(&secrets, max_users, codes::unix_now()?)?;
        println!(
            "setup only: {} users in the fleet's database ({:.1} s); everything is in {}",
            group_thousands(max_users as u128),
            took.as_secs_f64(),
            w.display()
        );
        return Ok(true);
    }

    let mut results = Results {
        floor: None,
        dsync: None,
        logins: Vec::new(),
        loads: Vec::new(),
        race: None,
    };
    let started = Instant::now();
    println!("\n## measurements");
    results.dsync = Some(run::dsync_writes(w, c.dsync_iters)?);
    println!("4 KiB O_DSYNC write: {}", show(results.dsync.as_ref()));
    if c.floor_users > 0 {
        let r = run::logins(
            &env,
            "pam_permit",
            &floor_dir,
            &codes_path,
            c.floor_users,
            c.floor_users,
        )?;
        println!("{}", r.line());
        results.floor = Some(r);
    }
    let first_host = fleet.services.first().ok_or("no fleet host")?.clone();
    for &n in &sizes {
        let now = codes::unix_now()?;
        let took = fleet.fill(&secrets, n, now)?;
        fleet.forget_steps(now)?;
        println!(
            "fleet database: {} users with a device ({:.1} s, COPY and VACUUM ANALYZE)",
            group_thousands(n as u128),
            took.as_secs_f64()
        );
        let r = run::logins(
            &env,
            FLEET_MODULE,
            &first_host,
            &codes_path,
            n,
            logins_at(n),
        )?;
        println!("{}", r.line());
        results.logins.push(r);
    }
    if race_users > 0 {
        let now = codes::unix_now()?;
        if fleet.users < race_users {
            fleet.fill(&secrets, race_users, now)?;
        }
        fleet.forget_steps(now)?;
        let r = run::race(
            &env,
            &fleet.services,
            &codes_path,
            c.race_procs,
            c.race_users_per_proc,
        )?;
        println!("{}", r.line());
        results.race = Some(r);
    }
    println!(
        "(measurements took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    let ns: BTreeSet<usize> = sizes.into_iter().collect();
    let ok = report(&results, &ns, &info);
    drop(daemons);
    drop(fleet);
    Ok(ok)
}

fn module_rank(m: &str) -> usize {
    MODULE_ORDER
        .iter()
        .position(|&name| name == m)
        .unwrap_or(MODULE_ORDER.len())
}

fn show(s: Option<&Summary>) -> String {
    s.map_or_else(
        || "-".to_owned(),
        |s| format!("median {} µs, p99 {} µs", micros(s.median), micros(s.p99)),
    )
}

/// Prints the table and the targets; `false` if anything failed.
fn report(r: &Results, ns: &BTreeSet<usize>, info: &machine::Info) -> bool {
    let mut ok = true;
    println!("\n## results ({}, {})", info.date, info.short());
    println!();
    let header: Vec<String> = ns
        .iter()
        .map(|n| format!("{} users", group_thousands(*n as u128)))
        .collect();
    println!(
        "| per successful login: median / p99 (µs) | {} |",
        header.join(" | ")
    );
    println!("|---|{}", "---|".repeat(ns.len()));
    let floor_cell = r
        .floor
        .as_ref()
        .and_then(|f| f.summary)
        .map_or("-".to_owned(), |s| {
            format!("{} / {}", micros(s.median), micros(s.p99))
        });
    println!(
        "| pam_permit (libpam + dlopen floor, {} logins) | {floor_cell} |{}",
        r.floor.as_ref().map_or(0, |f| f.users),
        " |".repeat(ns.len().saturating_sub(1))
    );
    let dsync_cell = r.dsync.map_or("-".to_owned(), |s| {
        format!("{} / {}", micros(s.median), micros(s.p99))
    });
    println!(
        "| one 4 KiB O_DSYNC write on the store's filesystem | {dsync_cell} |{}",
        " |".repeat(ns.len().saturating_sub(1))
    );
    let median_of = |module: &str, n: usize| {
        r.logins
            .iter()
            .find(|l| l.module == module && l.users == n)
            .and_then(|l| l.summary)
            .map(|s| s.median)
    };
    let mfa_median = |n: usize| median_of("pam_mfa", n);
    for module in MODULE_ORDER {
        let runs: Vec<&LoginRun> = r.logins.iter().filter(|l| l.module == module).collect();
        if runs.is_empty() {
            continue;
        }
        let cells: Vec<String> = ns
            .iter()
            .map(|&n| {
                let Some(l) = runs.iter().find(|l| l.users == n) else {
                    return String::new();
                };
                let Some(s) = l.summary else {
                    return "failed".to_owned();
                };
                let mut cell = format!("{} / {}", micros(s.median), micros(s.p99));
                if module != "pam_mfa"
                    && let Some(m) = mfa_median(n)
                {
                    cell.push_str(&format!(" ({:.1}×)", ratio(s.median, m)));
                }
                cell
            })
            .collect();
        let label = match module {
            "pam_mfa" => "**pam_mfa** (through mfad: SQLite, WAL, synchronous=FULL)",
            FLEET_MODULE => {
                "**pam_mfa**, accounts in the fleet (a host's mfad → PostgreSQL on this \
                 machine: TLS, fsync on)"
            }
            "pam_sqlite_floor" => {
                "pam_sqlite_floor (the design's floor: same SQLite, one table, one write)"
            }
            "pam_google_authenticator" => "pam_google_authenticator (file per user)",
            _ => "pam_oath (one users file)",
        };
        println!("| {label} | {} |", cells.join(" | "));
    }
    println!("\n(×: that module's median divided by pam_mfa's at the same number of users)");

    let mut failures = Vec::new();
    for l in r.logins.iter().chain(r.floor.as_ref()) {
        if l.failed > 0 || l.summary.is_none() {
            failures.push(format!("{} at {} users: {}", l.module, l.users, l.outcomes));
        }
    }

    if !r.loads.is_empty() {
        println!("\n| module load (dlopen + dlclose) | median (µs) | p99 (µs) |");
        println!("|---|---|---|");
        for (name, l) in &r.loads {
            println!(
                "| {name}{} | {} | {} |",
                if l.unloads { "" } else { " (stays loaded!)" },
                micros(l.summary.median),
                micros(l.summary.p99)
            );
        }
    }
    if let Some(race) = &r.race {
        println!("\n{}", race.report());
        if !race.clean() {
            failures.push("the concurrent run had errors or a code accepted twice".to_owned());
        }
    }

    let fleet_median = |n: usize| median_of(FLEET_MODULE, n);
    if ns.iter().any(|&n| fleet_median(n).is_some()) {
        println!("\n## targets (issue 19: through a fleet host's mfad to PostgreSQL)");
        for &n in ns {
            if let Some(m) = fleet_median(n) {
                println!(
                    "- median per successful login ≤ 2 ms at {} users: {} µs — {}",
                    group_thousands(n as u128),
                    micros(m),
                    verdict(m <= Duration::from_millis(2))
                );
            }
        }
    } else {
        println!("\n## targets (issue 17: through mfad)");
    }
    let first = ns.iter().copied().find(|&n| mfa_median(n).is_some());
    let last = ns
        .iter()
        .copied()
        .filter(|&n| mfa_median(n).is_some())
        .max();
    // The floor of this run: a login through pam_permit plus one durable write.
    let floor = match (r.floor.as_ref().and_then(|f| f.summary), r.dsync) {
        (Some(permit), Some(dsync)) => Some(permit.median + dsync.median),
        _ => None,
    };
    for &n in ns {
        if let (Some(m), Some(f)) = (mfa_median(n), floor) {
            println!(
                "- median per pam_mfa login within 2× the floor (pam_permit + one O_DSYNC \
                 write: {} µs) at {} users: {} µs, {:.2}× — {}",
                micros(f),
                group_thousands(n as u128),
                micros(m),
                ratio(m, f),
                verdict(ratio(m, f) <= 2.0)
            );
        }
    }
    let faster = |other: &str, n: usize, times: f64| {
        if let (Some(m), Some(o)) = (mfa_median(n), median_of(other, n)) {
            println!(
                "- at {} users at least {times}× faster than {other}: {:.1}× — {}",
                group_thousands(n as u128),
                ratio(o, m),
                verdict(ratio(o, m) >= times)
            );
        }
    };
    faster("pam_oath", 100, 2.0);
    faster("pam_google_authenticator", 1000, 5.0);
    if let (Some(a), Some(b)) = (first, last)
        && a != b
        && let (Some(ma), Some(mb)) = (mfa_median(a), mfa_median(b))
    {
        let growth = (ratio(mb, ma) - 1.0) * 100.0;
        println!(
            "- growth from {} to {} users ≤ 20%: {growth:+.1}% — {}",
            group_thousands(a as u128),
            group_thousands(b as u128),
            verdict(growth <= 20.0)
        );
    }
    if let Some(race) = &r.race {
        println!(
            "- {} concurrent processes over {} host(s): {} errors, {} codes accepted twice, \
             {:.0} successful logins/s — {}",
            race.procs,
            race.hosts,
            race.errors,
            race.accepted_twice,
            race.logins_per_second(),
            verdict(race.clean())
        );
    }
    let load = |name: &str| {
        r.loads
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.summary.median)
    };
    if let (Some(m), Some(g)) = (load("pam_mfa"), load("pam_google_authenticator")) {
        println!(
            "- module load no slower than pam_google_authenticator's: {:.2}× — {}",
            ratio(m, g),
            verdict(ratio(m, g) <= 1.0)
        );
    }
    if !failures.is_empty() {
        ok = false;
        println!("\nFAILED:");
        for f in failures {
            println!("- {f}");
        }
    }
    ok
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_fleet_backend_and_its_options() {
        let c = parse_args(&args(&[])).unwrap();
        assert!(c.backend == Backend::Local);
        let c = parse_args(&args(&["--backend", "fleet"])).unwrap();
        assert!(c.backend == Backend::Fleet);
        assert_eq!(c.fleet_users, vec![1_000, 100_000]);
        assert_eq!(c.fleet_logins, 5_000);
        let c = parse_args(&args(&[
            "--fleet",
            "--smoke",
            "--fleet-users",
            "10,1_000",
            "--fleet-logins",
            "0",
        ]))
        .unwrap();
        assert!(c.backend == Backend::Fleet);
        assert_eq!(c.fleet_users, vec![10, 1_000]);
        assert_eq!(c.fleet_logins, 0);
        assert_eq!(c.race_procs, 4);
        assert!(parse_args(&args(&["--backend", "postgres"])).is_err());
    }
}
