//! Running measurements in child processes of this binary, and the children's side.
//!
//! Each login measurement is a fresh process started with pam_wrapper and nss_wrapper
//! preloaded (they hook in through library constructors, so they cannot be switched on in
//! a running process). The child says `ready` once its `main` runs, waits for its standard
//! input to close (a start barrier, for the concurrent run) and prints a `RESULT` line.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::accounts;
use crate::codes::Codes;
use crate::ffi;
use crate::fixtures::SERVICE;
use crate::stats::{Summary, group_thousands, micros, parse_fields};

/// Everything the children load.
pub struct Libraries {
    pub pam_wrapper: PathBuf,
    pub nss_wrapper: PathBuf,
    pub nss_module: PathBuf,
    pub pam_mfa: PathBuf,
    /// `pam_sqlite_floor.so` (bench/sqlite-floor), found next to this binary.
    pub sqlite_floor: PathBuf,
    pub ga: PathBuf,
    pub oath: PathBuf,
    pub permit: PathBuf,
}

fn first_existing(what: &str, package: &str, candidates: &[PathBuf]) -> Result<PathBuf, String> {
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "{what} not found (looked in {}); apt-get install {package}",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

impl Libraries {
    pub fn find(module: Option<&Path>) -> Result<Self, String> {
        let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
        let lib_dirs: Vec<PathBuf> = [
            format!("/usr/lib/{triple}"),
            format!("/lib/{triple}"),
            "/usr/lib64".to_owned(),
            "/usr/lib".to_owned(),
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        let in_dirs = |dirs: &[PathBuf], name: &str| -> Vec<PathBuf> {
            dirs.iter().map(|d| d.join(name)).collect()
        };
        let security: Vec<PathBuf> = lib_dirs.iter().map(|d| d.join("security")).collect();
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let exe_dir = exe.parent().unwrap_or(Path::new("."));
        let pam_mfa = match module {
            Some(p) => p.to_owned(),
            None => exe_dir.join("libpam_mfa_module.so"),
        };
        if !pam_mfa.is_file() {
            return Err(format!(
                "{} not found: build it (cargo build --release -p pam_mfa) or pass --module",
                pam_mfa.display()
            ));
        }
        let sqlite_floor = exe_dir.join("libpam_sqlite_floor.so");
        if !sqlite_floor.is_file() {
            return Err(format!(
                "{} not found: build it with cargo build -p pam_sqlite_floor",
                sqlite_floor.display()
            ));
        }
        let nss_module = exe_dir.join("libnss_mfabench.so");
        if !nss_module.is_file() {
            return Err(format!(
                "{} not found: build it with cargo build -p pam_mfa_bench",
                nss_module.display()
            ));
        }
        Ok(Self {
            pam_wrapper: first_existing(
                "libpam_wrapper.so",
                "libpam-wrapper",
                &in_dirs(&lib_dirs, "libpam_wrapper.so"),
            )?,
            nss_wrapper: first_existing(
                "libnss_wrapper.so",
                "libnss-wrapper",
                &in_dirs(&lib_dirs, "libnss_wrapper.so"),
            )?,
            nss_module,
            pam_mfa,
            sqlite_floor,
            ga: first_existing(
                "pam_google_authenticator.so",
                "libpam-google-authenticator",
                &in_dirs(&security, "pam_google_authenticator.so"),
            )?,
            oath: first_existing(
                "pam_oath.so",
                "libpam-oath",
                &in_dirs(&security, "pam_oath.so"),
            )?,
            permit: first_existing(
                "pam_permit.so",
                "libpam-modules",
                &in_dirs(&security, "pam_permit.so"),
            )?,
        })
    }

    /// The same libraries with every PAM module copied into `dir` (mode 0644, as a
    /// package or `install` writes it), so that all of them are loaded from the same
    /// kind of file: how a file was written changes how the page cache holds it, and
    /// with it what mapping the module costs. The build's own `libpam_mfa_module.so`, written
    /// by the linker, loads 5–10% slower than a copy of it (README, "Performance"), and
    /// the modules compared with it are the ones dpkg installed.
    pub fn installed_in(&self, dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let install = |from: &Path, name: &str| -> Result<PathBuf, String> {
            let to = dir.join(name);
            std::fs::copy(from, &to)
                .and_then(|_| std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)))
                .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
            Ok(to)
        };
        Ok(Self {
            pam_wrapper: self.pam_wrapper.clone(),
            nss_wrapper: self.nss_wrapper.clone(),
            nss_module: self.nss_module.clone(),
            pam_mfa: install(&self.pam_mfa, "pam_mfa.so")?,
            sqlite_floor: install(&self.sqlite_floor, "pam_sqlite_floor.so")?,
            ga: install(&self.ga, "pam_google_authenticator.so")?,
            oath: install(&self.oath, "pam_oath.so")?,
            permit: install(&self.permit, "pam_permit.so")?,
        })
    }

    pub fn describe(&self) -> String {
        let size = |p: &Path| {
            std::fs::metadata(p).map_or_else(
                |_| "?".to_owned(),
                |m| {
                    format!(
                        "{} KiB",
                        group_thousands(u128::from(m.len().div_ceil(1024)))
                    )
                },
            )
        };
        format!(
            "{} ({}), {} ({}), {} ({})",
            self.pam_mfa.display(),
            size(&self.pam_mfa),
            self.ga.display(),
            size(&self.ga),
            self.oath.display(),
            size(&self.oath)
        )
    }
}

/// How children are started.
pub struct ChildEnv<'a> {
    pub libs: &'a Libraries,
    pub passwd: PathBuf,
    pub group: PathBuf,
    pub logs: PathBuf,
}

impl ChildEnv<'_> {
    fn exe() -> Result<PathBuf, String> {
        std::env::current_exe().map_err(|e| format!("current_exe: {e}"))
    }

    /// A child under pam_wrapper (service files from `service_dir`) and nss_wrapper.
    fn wrapped(&self, service_dir: &Path) -> Result<Command, String> {
        let mut cmd = Command::new(Self::exe()?);
        let preload = format!(
            "{}:{}",
            self.libs.pam_wrapper.display(),
            self.libs.nss_wrapper.display()
        );
        cmd.env("LD_PRELOAD", preload)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", service_dir)
            .env_remove("PAM_WRAPPER_DEBUGLEVEL");
        self.accounts(&mut cmd);
        Ok(cmd)
    }

    /// The benchmark's accounts (nss_wrapper and its module), for a child that looks
    /// users up: the logins, and the `mfad` that checks their names.
    fn accounts(&self, cmd: &mut Command) {
        cmd.env("NSS_WRAPPER_PASSWD", &self.passwd)
            .env("NSS_WRAPPER_GROUP", &self.group)
            .env("NSS_WRAPPER_MODULE_SO_PATH", &self.libs.nss_module)
            .env("NSS_WRAPPER_MODULE_FN_PREFIX", "mfabench")
            .env_remove("NSS_WRAPPER_DEBUGLEVEL");
    }
}

/// The `mfad`s of a run, one per store (next to this binary, as the build leaves it),
/// pam_mfa being measured as it runs: through its daemon. Killed when the run ends.
#[derive(Default)]
pub struct Daemons(Vec<std::process::Child>);

impl Daemons {
    /// Starts `mfad` on `db` (its socket beside it) with the benchmark's accounts, and
    /// waits until it answers; the socket for the module's `socket=`. With `config`, the
    /// daemon is a fleet host (`--config`: its accounts are in the fleet's database);
    /// without, it reads a file that does not exist, so the machine's own
    /// `/etc/pam_mfa/mfad.conf` never changes what is measured.
    pub fn serve(
        &mut self,
        env: &ChildEnv<'_>,
        db: &Path,
        config: Option<&Path>,
    ) -> Result<PathBuf, String> {
        let bin = ChildEnv::exe()?.with_file_name("mfad");
        let socket = db.with_file_name("mfad.sock");
        let no_config = db.with_file_name("no-mfad.conf");
        let mut cmd = Command::new(&bin);
        cmd.arg("--db")
            .arg(db)
            .arg("--socket")
            .arg(&socket)
            .arg("--config")
            .arg(config.unwrap_or(&no_config))
            .env("LD_PRELOAD", &env.libs.nss_wrapper)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        env.accounts(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
        self.0.push(child);
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(socket);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(format!("mfad on {} did not start", db.display()))
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where pam_wrapper users serialise their start: the project's end-to-end tests use the
/// same lock, so a benchmark and a test run side by side do not collide either.
const STARTUP_LOCK_PATH: &str = "/tmp/pam_mfa_tests-pam_wrapper.lock";

/// pam_wrapper (1.1.x) claims a directory `/tmp/pam.<one character>` in a library
/// constructor by `lstat` then `mkdir`, with no exclusion: two processes starting at the
/// same instant can pick the same one. Holding this lock from spawn until the child's
/// `main` runs makes every claim see the ones made before it.
struct StartupLock {
    _file: File,
}

impl StartupLock {
    fn acquire() -> Result<Self, String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(STARTUP_LOCK_PATH)
            .map_err(|e| format!("{STARTUP_LOCK_PATH}: {e}"))?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Self { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("lock {STARTUP_LOCK_PATH}: {e}"));
            }
        }
    }
}

struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    label: String,
    stderr_path: PathBuf,
}

impl Running {
    /// Starts `cmd` and waits for its `ready`. A child that dies before that is started
    /// again, a few times: pam_wrapper has only 62 names for its directories, and when other
    /// pam_wrapper processes (a test suite running alongside) hold them all, it exits.
    fn spawn(mut cmd: Command, label: &str, logs: &Path) -> Result<Self, String> {
        let stderr_path = logs.join(format!("{label}.stderr"));
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::spawn_once(&mut cmd, label, &stderr_path) {
                Ok(running) => return Ok(running),
                Err(e) if attempt >= 20 => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    fn spawn_once(cmd: &mut Command, label: &str, stderr_path: &Path) -> Result<Self, String> {
        let stderr =
            File::create(stderr_path).map_err(|e| format!("{}: {e}", stderr_path.display()))?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let lock = StartupLock::acquire()?;
        let mut child = cmd.spawn().map_err(|e| format!("{label}: spawn: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| format!("{label}: no stdout"))?;
        let mut running = Self {
            child,
            stdout: BufReader::new(stdout),
            label: label.to_owned(),
            stderr_path: stderr_path.to_owned(),
        };
        let mut line = String::new();
        let read = running.stdout.read_line(&mut line);
        drop(lock);
        if !matches!(read, Ok(n) if n > 0) || line.trim() != "ready" {
            let _ = running.child.kill();
            let _ = running.child.wait();
            return Err(format!(
                "{label}: the child did not start: {}",
                running.stderr_tail()
            ));
        }
        Ok(running)
    }

    /// Opens the start barrier, handing the child `input`.
    fn release(&mut self, input: &str) -> Result<(), String> {
        if let Some(mut stdin) = self.child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| format!("{}: {e}", self.label))?;
        }
        Ok(())
    }

    /// Everything the child printed after `ready`; an error if it failed.
    fn finish(mut self) -> Result<Vec<String>, String> {
        let mut out = String::new();
        self.stdout
            .read_to_string(&mut out)
            .map_err(|e| format!("{}: {e}", self.label))?;
        let status = self
            .child
            .wait()
            .map_err(|e| format!("{}: {e}", self.label))?;
        if !status.success() {
            return Err(format!(
                "{}: the child failed ({status}): {}",
                self.label,
                self.stderr_tail()
            ));
        }
        Ok(out.lines().map(str::to_owned).collect())
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn result_line(
    lines: &[String],
    label: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(parse_fields)
        .ok_or_else(|| format!("{label}: no RESULT line"))
}

/// One measured series: `logins` of the `users` users with a device logging in once
/// each through `module`.
pub struct LoginRun {
    pub module: String,
    pub users: usize,
    pub logins: usize,
    /// Per successful login; `None` if none succeeded.
    pub summary: Option<Summary>,
    pub failed: usize,
    /// `PAM_SUCCESS 1000` or with the failures' codes.
    pub outcomes: String,
    pub wall: Duration,
    /// CPU time (user + system) of the login loop divided by the logins: what a login
    /// costs apart from waiting for the disk.
    pub cpu_per_login: Duration,
    /// Minor page faults of the login loop divided by the logins: each costs microseconds
    /// in a virtual machine (README, "Performance").
    pub faults_per_login: f64,
}

impl LoginRun {
    pub fn line(&self) -> String {
        let timing = self.summary.map_or("no successful login".to_owned(), |s| {
            format!("median {} µs, p99 {} µs", micros(s.median), micros(s.p99))
        });
        let some = if self.logins < self.users {
            format!(
                " ({} of them logging in)",
                group_thousands(self.logins as u128)
            )
        } else {
            String::new()
        };
        format!(
            "{}, {} users{some}: {timing}, CPU {} µs and {:.1} page faults per login ({}; {:.1} s)",
            self.module,
            group_thousands(self.users as u128),
            micros(self.cpu_per_login),
            self.faults_per_login,
            self.outcomes,
            self.wall.as_secs_f64()
        )
    }
}

fn outcomes_text(rcs: &str) -> (usize, String) {
    let mut failed = 0;
    let mut parts = Vec::new();
    for item in rcs.split(',').filter(|s| !s.is_empty()) {
        let Some((rc, n)) = item.split_once(':') else {
            continue;
        };
        let (rc, n) = (
            rc.parse::<i32>().unwrap_or(-1),
            n.parse::<usize>().unwrap_or(0),
        );
        if rc != ffi::PAM_SUCCESS {
            failed += n;
        }
        parts.push(format!(
            "{} {}",
            ffi::pam_code_name(rc),
            group_thousands(n as u128)
        ));
    }
    (failed, parts.join(", "))
}

/// Users `0..logins` (of the `users` that have a device) log in once each, in a shuffled
/// order, one after the other in one process.
pub fn logins(
    env: &ChildEnv<'_>,
    module: &str,
    service_dir: &Path,
    codes: &Path,
    users: usize,
    logins: usize,
) -> Result<LoginRun, String> {
    let label = format!("{module}-{users}");
    let logins = logins.min(users);
    let mut cmd = env.wrapped(service_dir)?;
    cmd.arg("child-logins")
        .arg("--codes")
        .arg(codes)
        .arg("--range")
        .arg(format!("0+{logins}"))
        .arg("--shuffle");
    let started = Instant::now();
    let mut child = Running::spawn(cmd, &label, &env.logs)?;
    child.release("")?;
    let lines = child.finish()?;
    let wall = started.elapsed();
    let fields = result_line(&lines, &label)?;
    let (failed, outcomes) = outcomes_text(fields.get("rcs").map_or("", String::as_str));
    let summary = if fields.contains_key("median") {
        Some(Summary::from_wire(&fields)?)
    } else {
        None
    };
    let cpu = fields
        .get("cpu")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos);
    Ok(LoginRun {
        module: module.to_owned(),
        users,
        logins,
        summary,
        failed,
        outcomes,
        wall,
        cpu_per_login: cpu / u32::try_from(logins.max(1)).unwrap_or(u32::MAX),
        faults_per_login: fields
            .get("faults")
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |f| f / logins.max(1) as f64),
    })
}

pub struct LoadResult {
    pub summary: Summary,
    /// Whether `dlclose` really unmapped the module.
    pub unloads: bool,
}

/// `dlopen` + `dlclose` of each of `paths`, in one child that links libpam as a PAM
/// application does (and without the wrappers, which have nothing to do with loading).
/// The modules take turns, one load each per round, so that whatever else the machine is
/// doing meanwhile weighs on all of them alike and the ratios between them hold.
pub fn load_costs(
    env: &ChildEnv<'_>,
    paths: &[&Path],
    iters: usize,
) -> Result<Vec<LoadResult>, String> {
    let mut cmd = Command::new(ChildEnv::exe()?);
    cmd.env_remove("LD_PRELOAD").arg("child-load");
    for path in paths {
        cmd.arg("--path").arg(path);
    }
    cmd.arg("--iters").arg(iters.to_string());
    let mut child = Running::spawn(cmd, "load", &env.logs)?;
    child.release("")?;
    let lines = child.finish()?;
    let results: Vec<LoadResult> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| {
            let fields = parse_fields(l);
            Ok(LoadResult {
                summary: Summary::from_wire(&fields)?,
                unloads: fields.get("unloads").is_some_and(|v| v == "yes"),
            })
        })
        .collect::<Result<_, String>>()?;
    if results.len() != paths.len() {
        return Err(format!(
            "load: {} RESULT lines for {} modules",
            results.len(),
            paths.len()
        ));
    }
    Ok(results)
}

/// One 4 KiB write with `O_DSYNC`, rewritten in place `iters` times, in `dir`: what one
/// durable commit costs on this disk at the least.
pub fn dsync_writes(dir: &Path, iters: usize) -> Result<Summary, String> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("dsync-probe");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_DSYNC | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let block = [0x5au8; 4096];
    let mut samples = Vec::with_capacity(iters);
    // The first write allocates the block; only rewrites are timed.
    for i in 0..=iters {
        let t = Instant::now();
        file.write_all_at(&block, 0)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if i > 0 {
            samples.push(t.elapsed());
        }
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    Summary::of(&samples).ok_or_else(|| "no O_DSYNC samples".to_owned())
}

/// The concurrent run: `procs` processes released at once on one store.
pub struct RaceResult {
    pub procs: usize,
    /// The services (hosts) the processes were spread over, in turn: 1 for a local store.
    pub hosts: usize,
    pub users: usize,
    pub attempts: usize,
    pub accepted: usize,
    pub refused: usize,
    /// Results other than success or refusal (a store error, SQLITE_BUSY surfacing, …).
    pub errors: usize,
    pub error_kinds: String,
    pub accepted_twice: usize,
    pub never_accepted: usize,
    pub wall: Duration,
    pub per_attempt: Option<Summary>,
}

impl RaceResult {
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.accepted_twice == 0 && self.never_accepted == 0
    }

    pub fn line(&self) -> String {
        format!(
            "concurrent: {} processes, {} attempts in {:.2} s: {} accepted, {} refused, {} errors, {} accepted twice, {} never accepted",
            self.procs,
            group_thousands(self.attempts as u128),
            self.wall.as_secs_f64(),
            group_thousands(self.accepted as u128),
            group_thousands(self.refused as u128),
            self.errors,
            self.accepted_twice,
            self.never_accepted
        )
    }

    /// Successful logins per second of the whole run.
    pub fn logins_per_second(&self) -> f64 {
        self.accepted as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn report(&self) -> String {
        let rate = self.attempts as f64 / self.wall.as_secs_f64().max(1e-9);
        let place = if self.hosts > 1 {
            format!(
                "spread over {} hosts on one fleet database (each user's code tried on two \
                 hosts at about the same moment)",
                self.hosts
            )
        } else {
            "on one store (every user's code is tried by two processes at about the \
             same moment)"
                .to_owned()
        };
        let timing = self.per_attempt.map_or(String::new(), |s| {
            format!(
                "; per attempt under contention: median {} µs, p99 {} µs",
                micros(s.median),
                micros(s.p99)
            )
        });
        format!(
            "{} concurrent login processes {place}, {} users: {} attempts in {:.2} s \
             ({:.0}/s; {:.0} successful logins/s); accepted {}, refused {} (replays), errors \
             {}{}, codes accepted twice {}, right codes never accepted {}{timing}",
            self.procs,
            group_thousands(self.users as u128),
            group_thousands(self.attempts as u128),
            self.wall.as_secs_f64(),
            rate,
            self.logins_per_second(),
            group_thousands(self.accepted as u128),
            group_thousands(self.refused as u128),
            self.errors,
            if self.error_kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.error_kinds)
            },
            self.accepted_twice,
            self.never_accepted
        )
    }
}

/// Process `p` owns users `p*k .. p*k+k` and also tries, interleaved with its own, the
/// users of process `p+1`, who try them at about the same time: each user's code is
/// tried twice at once. Every code must be accepted exactly once, and nothing but an
/// acceptance or a refusal may come back. Process `p` logs in through service
/// `service_dirs[p % len]`: with two fleet hosts, `p` and `p+1` are on different hosts.
pub fn race(
    env: &ChildEnv<'_>,
    service_dirs: &[PathBuf],
    codes: &Path,
    procs: usize,
    per_proc: usize,
) -> Result<RaceResult, String> {
    if service_dirs.is_empty() {
        return Err("race: no service".to_owned());
    }
    let users = procs * per_proc;
    let mut children = Vec::with_capacity(procs);
    for p in 0..procs {
        let neighbour = (p + 1) % procs;
        let mut cmd = env.wrapped(&service_dirs[p % service_dirs.len()])?;
        cmd.arg("child-logins")
            .arg("--codes")
            .arg(codes)
            .arg("--range")
            .arg(format!("{}+{per_proc}", p * per_proc))
            .arg("--range")
            .arg(format!("{}+{per_proc}", neighbour * per_proc))
            .arg("--per-attempt");
        children.push(Running::spawn(cmd, &format!("race-{p}"), &env.logs)?);
    }
    // Everyone answers with the code of the same step, so a second acceptance can only
    // mean a replay got through. The next step's: with the window of one step either
    // side it is accepted from now until two steps on, so a run as slow as the fleet's
    // under load (half a minute) has 60 to 90 s, not whatever is left of this step + 30.
    let step = crate::codes::unix_now()? / crate::codes::PERIOD + 1;
    let started = Instant::now();
    for child in &mut children {
        child.release(&format!("step={step}"))?;
    }
    let mut per_user = vec![0usize; users];
    let mut kinds: BTreeMap<i32, usize> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut attempts = 0;
    for child in children {
        let label = child.label.clone();
        for line in child.finish()? {
            let Some(rest) = line.strip_prefix("A ") else {
                continue;
            };
            let mut f = rest.split_whitespace().map(str::parse::<i64>);
            let (Some(Ok(idx)), Some(Ok(rc)), Some(Ok(ns))) = (f.next(), f.next(), f.next()) else {
                return Err(format!("{label}: bad line {line:?}"));
            };
            let idx = usize::try_from(idx).map_err(|e| e.to_string())?;
            let rc = i32::try_from(rc).map_err(|e| e.to_string())?;
            attempts += 1;
            *kinds.entry(rc).or_default() += 1;
            if rc == ffi::PAM_SUCCESS {
                *per_user.get_mut(idx).ok_or("user out of range")? += 1;
            }
            samples.push(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)));
        }
    }
    let wall = started.elapsed();
    let accepted = kinds.get(&ffi::PAM_SUCCESS).copied().unwrap_or(0);
    let refused = kinds.get(&ffi::PAM_AUTH_ERR).copied().unwrap_or(0);
    let errors = attempts - accepted - refused;
    let error_kinds = kinds
        .iter()
        .filter(|(rc, _)| **rc != ffi::PAM_SUCCESS && **rc != ffi::PAM_AUTH_ERR)
        .map(|(rc, n)| format!("{} {n}", ffi::pam_code_name(*rc)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(RaceResult {
        procs,
        hosts: service_dirs.len(),
        users,
        attempts,
        accepted,
        refused,
        errors,
        error_kinds,
        accepted_twice: per_user.iter().filter(|&&n| n > 1).count(),
        never_accepted: per_user.iter().filter(|&&n| n == 0).count(),
        wall,
        per_attempt: Summary::of(&samples),
    })
}

// ---- the children's side ----

/// A small deterministic shuffle (xorshift64*), so every run visits users in the same
/// scattered order and no two consecutive logins touch neighbouring records by design.
fn shuffle(v: &mut [usize], seed: u64) {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let j = usize::try_from(r % (i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
}

fn parse_range(v: &str) -> Result<std::ops::Range<usize>, String> {
    let (a, k) = v
        .split_once('+')
        .ok_or_else(|| format!("bad range {v:?}"))?;
    let a: usize = a.parse().map_err(|e| format!("bad range {v:?}: {e}"))?;
    let k: usize = k.parse().map_err(|e| format!("bad range {v:?}: {e}"))?;
    Ok(a..a + k)
}

/// Says `ready`, waits for the barrier, then logs the users in, one after the other.
pub fn child_logins(args: &[String]) -> Result<bool, String> {
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut codes_path = None;
    let mut ranges = Vec::new();
    let (mut shuffled, mut per_attempt) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--codes" => codes_path = it.next().map(PathBuf::from),
            "--range" => ranges.push(parse_range(it.next().ok_or("--range needs a value")?)?),
            "--shuffle" => shuffled = true,
            "--per-attempt" => per_attempt = true,
            other => return Err(format!("child-logins: unknown argument {other:?}")),
        }
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("stdin: {e}"))?;
    let step = match input.trim().strip_prefix("step=") {
        Some(s) => Some(s.parse::<u64>().map_err(|e| format!("bad step: {e}"))?),
        None => None,
    };
    let codes = Codes::load(&codes_path.ok_or("child-logins: --codes is required")?)?;

    // One range in order (or shuffled); several interleaved: a0 b0 a1 b1 …
    let mut order: Vec<usize> = Vec::new();
    let longest = ranges.iter().map(ExactSizeIterator::len).max().unwrap_or(0);
    for j in 0..longest {
        for r in &ranges {
            if j < r.len() {
                order.push(r.start + j);
            }
        }
    }
    if shuffled {
        let seed = 0x9e37_79b9_7f4a_7c15 ^ order.len() as u64;
        shuffle(&mut order, seed);
    }

    let service = CString::new(SERVICE).map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(order.len());
    let mut rcs: BTreeMap<i32, usize> = BTreeMap::new();
    let mut attempts = String::new();
    let cpu_before = cpu_time();
    let started = Instant::now();
    for &idx in &order {
        let code = match step {
            Some(s) => codes
                .code(idx, s)
                .ok_or_else(|| format!("no code for user {idx} at step {s}"))
                .and_then(|c| CString::new(format!("{c:06}")).map_err(|e| e.to_string()))?,
            None => codes.current(idx)?,
        };
        let user = CString::new(accounts::name(
            u32::try_from(idx).map_err(|e| e.to_string())?,
        ))
        .map_err(|e| e.to_string())?;
        let t = Instant::now();
        let rc = ffi::login(&service, &user, &code);
        let took = t.elapsed();
        *rcs.entry(rc).or_default() += 1;
        if rc == ffi::PAM_SUCCESS {
            samples.push(took);
        }
        if per_attempt {
            attempts.push_str(&format!("A {idx} {rc} {}\n", took.as_nanos()));
        }
    }
    let wall = started.elapsed();
    let cpu_after = cpu_time();
    let cpu = cpu_after.0.saturating_sub(cpu_before.0);
    let faults = cpu_after.1.saturating_sub(cpu_before.1);
    let rcs_text = rcs
        .iter()
        .map(|(rc, n)| format!("{rc}:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut out = std::io::stdout().lock();
    let stats = Summary::of(&samples).map_or(String::new(), Summary::to_wire);
    write!(out, "{attempts}").map_err(|e| e.to_string())?;
    writeln!(
        out,
        "RESULT rcs={rcs_text} wall={} cpu={} faults={faults} {stats}",
        wall.as_nanos(),
        cpu.as_nanos()
    )
    .map_err(|e| e.to_string())?;
    Ok(true)
}

/// User + system CPU time of this process so far, and its minor page faults.
fn cpu_time() -> (Duration, u64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the live, writable struct we pass; RUSAGE_SELF is valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (Duration::ZERO, 0);
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        u64::try_from(ru.ru_minflt).unwrap_or(0),
    )
}

/// `dlopen` + `dlclose` of each `--path` in turn, `--iters` rounds after a warm-up; one
/// RESULT line per path, in the order given.
pub fn child_load(args: &[String]) -> Result<bool, String> {
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let (mut paths, mut iters) = (Vec::new(), 100usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--path" => paths.push(
                CString::new(it.next().ok_or("--path needs a value")?.as_str())
                    .map_err(|e| e.to_string())?,
            ),
            "--iters" => {
                iters = it
                    .next()
                    .ok_or("--iters needs a value")?
                    .parse()
                    .map_err(|e| format!("--iters: {e}"))?;
            }
            other => return Err(format!("child-load: unknown argument {other:?}")),
        }
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("stdin: {e}"))?;
    if paths.is_empty() {
        return Err("child-load: --path is required".to_owned());
    }
    let mut unloads = Vec::with_capacity(paths.len());
    for path in &paths {
        for _ in 0..3 {
            ffi::load_once(path)?;
        }
        unloads.push(ffi::load_unload(path)?);
    }
    let mut samples = vec![Vec::with_capacity(iters); paths.len()];
    for _ in 0..iters {
        for (path, samples) in paths.iter().zip(&mut samples) {
            let t = Instant::now();
            ffi::load_once(path)?;
            samples.push(t.elapsed());
        }
    }
    for (samples, unloads) in samples.iter().zip(unloads) {
        let summary = Summary::of(samples).ok_or("--iters must be at least 1")?;
        println!(
            "RESULT unloads={} {}",
            if unloads { "yes" } else { "no" },
            summary.to_wire()
        );
    }
    Ok(true)
}
