//! A private mount namespace in which real sshd, sudo, su and pam-auth-update run against
//! the test's PAM configuration while the machine's own files stay untouched.
//!
//! The real programs read fixed paths (`/etc/pam.d/sshd`, `/etc/sudoers.d`, the PAM module
//! directory, `/var/lib/pam_mfa`, `/dev/log`), so they cannot be pointed at a temporary
//! directory the way pam_wrapper points libpam. Instead a "holder" process is started with
//! `unshare --mount --propagation private`, and inside its namespace (and only there):
//!
//! * `/etc/pam.d`, `/etc/sudoers.d`, `/var/lib`, `/var/log`, `/var/cache/debconf`,
//!   `/usr/share/pam-configs` and the PAM module directory become writable overlays whose
//!   upper layer is in the test's temporary directory: the machine's files show through,
//!   and every change a test or a program makes (a PAM service edit, `pam-auth-update`'s
//!   rewrite of `common-auth`, sudo's lecture and timestamp files, sshd's wtmp records)
//!   lands in the temporary directory;
//! * `pam_mfa.so` (a copy of the built `libpam_mfa.so`) is in the module directory, so
//!   the guide's lines can name it as `pam_mfa.so`, exactly as after `install.sh`, with
//!   `libpam_mfa_keys.so` next to it;
//! * the test's store directory is bind-mounted on `/var/lib/pam_mfa`, the default store
//!   path, where [`Namespace::with_daemon`]'s `mfad` serves it on its default socket, so
//!   the guide's lines need no `socket=` argument;
//! * `/run` and `/home` are empty tmpfs: sshd gets its privilege-separation directory
//!   `/run/sshd`, test users get home directories, and sessions cannot reach the
//!   machine's D-Bus, logind or journal;
//! * `/dev` is a read-only overlay of the real `/dev` (its `pts` and `shm` mounts
//!   re-attached) with `/dev/log` bound to a datagram socket the test reads
//!   ([`crate::syslog::SyslogListener`]), whether or not the machine has a `/dev/log`.
//!
//! Mounts made inside a private namespace never propagate back, and the namespace ends
//! with its last process, so nothing needs undoing: a test that panics half way leaves no
//! trace outside its temporary directory. Commands enter the namespace with `nsenter`;
//! files are read and written through `/proc/PID/root`, which resolves paths in the
//! holder's namespace.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestEnv;
use crate::paths;
use crate::process::{self, Finished, Running};
use crate::syslog::SyslogListener;
use crate::users::TestUser;

/// The `PATH` every command in the namespace gets (the environment is cleared, so the
/// test runner's variables cannot change what the real programs do).
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Directories made writable overlays when they exist, see the module documentation.
const OVERLAID: &[&str] = &[
    "/etc/pam.d",
    "/etc/sudoers.d",
    "/var/lib",
    "/var/log",
    "/var/cache/debconf",
    "/usr/share/pam-configs",
];

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn path_str(p: &Path) -> &str {
    let s = p
        .to_str()
        .unwrap_or_else(|| panic!("{} is not valid UTF-8", p.display()));
    // overlayfs options are separated by ',' and lower directories by ':'.
    assert!(
        !s.contains([',', ':', '\n']),
        "path {s:?} cannot be used in mount options"
    );
    s
}

/// Reverses the octal escapes (`\040` for a space) of `/proc/self/mountinfo`.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts directly below `dir` (not `dir` itself, and not mounts below those, which a
/// recursive bind carries along), as seen by this process.
///
/// An overlay mounted on `dir` shows only the directories of the file system under it, so
/// these are the mounts (like `/dev/pts`) that must be bound into the overlay again.
pub fn submounts(dir: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_else(|e| panic!("cannot read /proc/self/mountinfo: {e}"));
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    let mut below: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|m| m.starts_with(&prefix))
        .collect();
    below.sort();
    below.dedup();
    below
        .iter()
        .filter(|m| {
            !below
                .iter()
                .any(|o| o != *m && m.starts_with(&format!("{o}/")))
        })
        .cloned()
        .collect()
}

/// Adds `SIGKILL on parent death` to a command, so a child of a test process that is
/// itself killed (not unwound) does not outlive it.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe, takes no pointers and touches
    // no memory of the parent; it runs in the forked child just before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// One test's private mount namespace; see the module documentation. Dropping it ends the
/// holder process (programs the test started inside must be dropped first, which Rust's
/// reverse drop order does when they are declared after the namespace).
pub struct Namespace {
    /// The namespace's own `mfad` ([`Namespace::with_daemon`]); first, so that it ends
    /// before the holder.
    mfad: Option<Running>,
    dir: PathBuf,
    /// Kept for its `Drop`, which ends the namespace.
    _holder: Running,
    pid: u32,
    syslog: SyslogListener,
    module_dir: PathBuf,
    /// Whether `/home` is the namespace's own tmpfs (it is when the machine has one).
    home_tmpfs: bool,
}

impl Namespace {
    /// Sets up a namespace for `env`: its store on `/var/lib/pam_mfa`, its work files in
    /// `<env root>/ns`. Panics with the setup script's output if any mount fails.
    pub fn new(env: &TestEnv) -> Self {
        Self::with_overlays(env, &[])
    }

    /// [`Namespace::new`] with the existing directories of `extra` made writable overlays
    /// too (where `install.sh` puts files: `/usr/sbin`, `/usr/local/bin`, …), each checked
    /// to keep what is written there out of the machine's.
    pub fn with_overlays(env: &TestEnv, extra: &[&str]) -> Self {
        paths::require_root();
        // The real programs run on the real clock, and so does the daemon they ask.
        env.keep_fleet_on_real_time();
        let dir = env.path("ns");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        // The syslog socket lives outside `dir`'s overlay layers, next to them.
        let syslog = SyslogListener::bind(&dir.join("log.sock"));
        let module_dir = paths::system_pam_module("pam_unix.so")
            .parent()
            .expect("a PAM module has a directory")
            .to_path_buf();
        let extra: Vec<&Path> = extra.iter().map(Path::new).filter(|p| p.is_dir()).collect();
        let script = Self::setup_script(&dir, env.store(), &module_dir, syslog.path(), &extra);
        let script_path = dir.join("setup.sh");
        std::fs::write(&script_path, &script)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", script_path.display()));

        let mut cmd = Command::new(paths::tool("unshare", "util-linux"));
        cmd.args(["--mount", "--propagation", "private", "--"])
            .arg("/bin/sh")
            .arg(&script_path)
            .env_clear()
            .env("PATH", SYSTEM_PATH);
        die_with_parent(&mut cmd);
        let mut holder = Running::spawn(cmd, "the namespace holder (unshare)");
        let ready = holder.wait_for("the namespace to be set up", |out, _| {
            out.lines().any(|l| l.starts_with("READY "))
        });
        assert!(
            ready,
            "setting up the mount namespace failed (script {}):\nstdout:\n{}\nstderr:\n{}",
            script_path.display(),
            holder.stdout(),
            holder.stderr()
        );
        let pid = holder
            .stdout()
            .lines()
            .find_map(|l| l.strip_prefix("READY "))
            .and_then(|p| p.trim().parse().ok())
            .expect("the holder prints its pid after READY");
        let ns = Self {
            mfad: None,
            dir,
            _holder: holder,
            pid,
            syslog,
            module_dir,
            home_tmpfs: Path::new("/home").is_dir(),
        };
        ns.check_isolation(Path::new("/etc/pam.d"));
        for dir in extra {
            ns.check_isolation(dir);
        }
        ns
    }

    /// The shell script the holder runs: every mount, then `READY <pid>`, then it waits
    /// on its stdin (the test's pipe) for as long as the test holds it.
    fn setup_script(
        dir: &Path,
        store: &Path,
        module_dir: &Path,
        log_sock: &Path,
        extra: &[&Path],
    ) -> String {
        let q = |p: &Path| sh_quote(path_str(p));
        let mut s = String::from(
            "# Generated by pam_mfa_tests::namespace; runs inside `unshare --mount`.\nset -eu\n",
        );
        // Every mount is `mount -n`: libmount then records nothing in its utab (which
        // lives in the machine's /run/mount until our /run is mounted).
        // Empty /run (with sshd's privilege-separation directory) and /home.
        s.push_str("mount -n -t tmpfs -o mode=0755 pam_mfa_tests_run /run\n");
        s.push_str("mkdir -m 0755 /run/sshd\n");
        if Path::new("/home").is_dir() {
            s.push_str("mount -n -t tmpfs -o mode=0755 pam_mfa_tests_home /home\n");
        }
        let mut overlaid: Vec<&Path> = OVERLAID
            .iter()
            .map(Path::new)
            .filter(|p| p.is_dir())
            .collect();
        overlaid.push(module_dir);
        overlaid.extend_from_slice(extra);
        for (i, target) in overlaid.iter().enumerate() {
            let base = dir.join(format!("overlay{i}"));
            let (upper, work, stage) = (base.join("upper"), base.join("work"), base.join("stage"));
            for d in [&upper, &work, &stage] {
                std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            }
            s.push_str(&format!("# {}\n", target.display()));
            s.push_str(&format!(
                "mount -n -t overlay pam_mfa_tests_overlay -o lowerdir={},upperdir={},workdir={} {}\n",
                path_str(target),
                path_str(&upper),
                path_str(&work),
                q(&stage)
            ));
            Self::reattach_and_move(&mut s, target, &stage);
        }
        // The module under test, by the name the guide uses, and its security-key
        // library next to it, as the packages install them.
        for (built, name) in [
            (paths::pam_module(), "pam_mfa.so"),
            (paths::keys_library(), "libpam_mfa_keys.so"),
        ] {
            s.push_str(&format!(
                "cp {} {}\nchmod 0644 {}\n",
                q(&built),
                q(&module_dir.join(name)),
                q(&module_dir.join(name))
            ));
        }
        // The store directory at the default path (inside the /var/lib overlay).
        s.push_str(&format!(
            "mkdir -p /var/lib/pam_mfa\nmount -n --bind {} /var/lib/pam_mfa\n",
            q(store)
        ));
        // /dev with our log socket: a regular file `log` in an extra lower layer (hiding
        // any /dev/log of the machine, often a symlink into the journal) is the mount
        // point the socket is bound onto. The socket itself cannot be a lower-layer file:
        // connecting through overlayfs would not reach our socket's inode.
        let extra = dir.join("dev-extra");
        let stage = dir.join("dev-stage");
        for d in [&extra, &stage] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        std::fs::write(extra.join("log"), "").expect("cannot create the /dev/log mount point");
        s.push_str(&format!(
            "# /dev\nmount -n -t overlay pam_mfa_tests_dev -o ro,lowerdir={}:/dev {}\n",
            path_str(&extra),
            q(&stage)
        ));
        Self::reattach_and_move(&mut s, Path::new("/dev"), &stage);
        s.push_str(&format!("mount -n --bind {} /dev/log\n", q(log_sock)));
        s.push_str("echo \"READY $$\"\nexec cat >/dev/null\n");
        s
    }

    /// Binds the mounts below `target` into the overlay at `stage`, then moves the overlay
    /// onto `target`.
    fn reattach_and_move(s: &mut String, target: &Path, stage: &Path) {
        let target = path_str(target);
        for sub in submounts(target) {
            let rel = &sub[target.trim_end_matches('/').len()..];
            s.push_str(&format!(
                "mount -n --rbind {} {}\n",
                sh_quote(&sub),
                sh_quote(&format!("{}{rel}", path_str(stage)))
            ));
        }
        s.push_str(&format!(
            "mount -n --move {} {}\n",
            sh_quote(path_str(stage)),
            sh_quote(target)
        ));
    }

    /// Refuses to go on unless a file written in the namespace's `dir` stays out of the
    /// machine's: every test writes PAM configuration next (and the install tests remove
    /// programs), and must never reach the real one.
    fn check_isolation(&self, dir: &Path) {
        let name = format!(".pam_mfa_tests-{}", self.pid);
        let inside = self.path(&format!("{}/{name}", path_str(dir)));
        std::fs::write(&inside, "isolation check\n")
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", inside.display()));
        let leaked = dir.join(&name).exists();
        if leaked {
            let _ = std::fs::remove_file(dir.join(&name));
        }
        assert!(
            !leaked,
            "the namespace's {} is the machine's: refusing to change it",
            dir.display()
        );
        std::fs::remove_file(&inside).expect("cannot remove the isolation check file");
    }

    /// The holder's pid (the namespace's processes are entered through it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The test's work directory for this namespace.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The syslog messages sent to `/dev/log` inside the namespace.
    pub fn syslog(&self) -> &SyslogListener {
        &self.syslog
    }

    /// The PAM module directory (where `pam_mfa.so` is inside the namespace).
    pub fn module_dir(&self) -> &Path {
        &self.module_dir
    }

    /// `abs` (an absolute path as the namespace sees it) reached from outside, through
    /// `/proc/PID/root`.
    pub fn path(&self, abs: &str) -> PathBuf {
        assert!(abs.starts_with('/'), "{abs:?} is not absolute");
        PathBuf::from(format!("/proc/{}/root{abs}", self.pid))
    }

    /// Reads a file as the namespace sees it.
    pub fn read(&self, abs: &str) -> String {
        std::fs::read_to_string(self.path(abs))
            .unwrap_or_else(|e| panic!("cannot read {abs} in the namespace: {e}"))
    }

    /// Writes a file in the namespace (root-owned) and sets its mode.
    pub fn write(&self, abs: &str, contents: &str, mode: u32) {
        let p = self.path(abs);
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {abs} in the namespace: {e}"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {abs} in the namespace: {e}"));
    }

    /// [`Namespace::new`] with `mfad` running inside, at its defaults (the test's store on
    /// `/var/lib/pam_mfa`, the socket `/run/pam_mfa/mfad.sock`) and the real clock, as
    /// after installation: the real sshd, sudo and su reach it through the guide's lines,
    /// which name no socket.
    pub fn with_daemon(env: &TestEnv) -> Self {
        let mut ns = Self::new(env);
        // With the test's own arguments (a fleet configuration, say).
        let mut daemon = ns.command(&paths::mfad_bin());
        daemon.args(env.mfad_args());
        let mut run = Running::spawn(daemon, "mfad (in the namespace)");
        let ready = run.wait_for("mfad to serve", |_, err| err.contains("serving"));
        assert!(
            ready,
            "mfad did not start in the namespace:\nstdout:\n{}\nstderr:\n{}",
            run.stdout(),
            run.stderr()
        );
        ns.mfad = Some(run);
        ns
    }

    /// What the namespace's `mfad` wrote on stderr so far.
    pub fn mfad_stderr(&self) -> String {
        self.mfad.as_ref().map(Running::stderr).unwrap_or_default()
    }

    /// A command that runs `program` inside the namespace, with a cleared environment
    /// (only `PATH` and `LC_ALL=C`, so messages are the untranslated ones the tests match)
    /// and `/` as its working directory.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(paths::tool("nsenter", "util-linux"));
        cmd.arg(format!("--target={}", self.pid))
            .args(["--mount", "--"])
            .arg(program)
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("LC_ALL", "C");
        cmd
    }

    /// A command that runs `program` inside the namespace as `user` (see
    /// [`crate::accounts::as_user`]: no authentication, no new session).
    pub fn command_as(&self, user: &TestUser, program: &Path) -> Command {
        let argv = crate::accounts::as_user(user);
        let mut cmd = self.command(Path::new(&argv[0]));
        cmd.args(&argv[1..]).arg(program);
        cmd
    }

    /// Runs `sh -c SCRIPT` in the namespace, in directory `cwd`, with `input` on stdin.
    pub fn sh(&self, script: &str, cwd: &Path, input: &str) -> Finished {
        let mut cmd = self.command(Path::new("/bin/sh"));
        cmd.arg("-c").arg(format!(
            "cd {} && {{\n{script}\n}}",
            sh_quote(path_str(cwd))
        ));
        process::run(
            cmd,
            format!("sh -c {script:?} in the namespace"),
            input.into(),
        )
    }

    /// Gives `user` an empty home directory (in the namespace's `/home`), owned by the
    /// user, mode 0755; returns its path as the namespace sees it.
    pub fn create_home(&self, user: &TestUser) -> String {
        let home = crate::accounts::home_of(user.name());
        // Only inside the namespace's own /home: anywhere else this would write to the
        // machine's file system.
        assert!(
            self.home_tmpfs && home.starts_with("/home/") && !home[6..].contains('/'),
            "{user}'s home directory {home:?} is not directly in the namespace's /home"
        );
        let p = self.path(&home);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {home}: {e}"));
        std::os::unix::fs::chown(&p, Some(user.uid()), Some(crate::accounts::gid_of(user)))
            .unwrap_or_else(|e| panic!("chown {home}: {e}"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {home}: {e}"));
        home
    }

    /// Lets `public_key` log in as `user`: `~/.ssh/authorized_keys` in a new home
    /// directory, with the ownership and modes sshd's `StrictModes` insists on.
    pub fn authorize_key(&self, user: &TestUser, public_key: &str) {
        let home = self.create_home(user);
        let ssh_dir = format!("{home}/.ssh");
        let keys = format!("{ssh_dir}/authorized_keys");
        std::fs::create_dir(self.path(&ssh_dir)).unwrap_or_else(|e| panic!("mkdir {ssh_dir}: {e}"));
        std::fs::write(self.path(&keys), format!("{}\n", public_key.trim()))
            .unwrap_or_else(|e| panic!("cannot write {keys}: {e}"));
        let gid = crate::accounts::gid_of(user);
        for (p, mode) in [(&ssh_dir, 0o700), (&keys, 0o600)] {
            std::os::unix::fs::chown(self.path(p), Some(user.uid()), Some(gid))
                .unwrap_or_else(|e| panic!("chown {p}: {e}"));
            std::fs::set_permissions(self.path(p), std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {p}: {e}"));
        }
    }

    /// Replaces, in the namespace's PAM service file `/etc/pam.d/SERVICE`, the one line
    /// equal to `line` (ignoring surrounding blanks) with `replacement`, as the guide
    /// tells an administrator to; panics unless exactly one such line exists.
    pub fn edit_pam_service(&self, service: &str, line: &str, replacement: &str) {
        let abs = format!("/etc/pam.d/{service}");
        let text = replace_line(&self.read(&abs), line, replacement);
        self.write(&abs, &text, 0o644);
    }
}

/// `text` with the one line equal to `line` (ignoring surrounding blanks) replaced by
/// `replacement` (which may be several lines); panics unless exactly one line matches.
pub fn replace_line(text: &str, line: &str, replacement: &str) -> String {
    let matches = text.lines().filter(|l| l.trim() == line.trim()).count();
    assert_eq!(
        matches, 1,
        "expected exactly one line {line:?} to replace, found {matches} in:\n{text}"
    );
    let mut out = String::new();
    for l in text.lines() {
        if l.trim() == line.trim() {
            out.push_str(replacement.trim_end_matches('\n'));
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_line_replaces_exactly_the_matching_line() {
        let text = "a\n@include common-auth\nb\n";
        assert_eq!(
            replace_line(text, "@include common-auth", "x\ny\n"),
            "a\nx\ny\nb\n"
        );
    }

    #[test]
    #[should_panic(expected = "exactly one line")]
    fn replace_line_panics_without_a_match() {
        replace_line("a\nb\n", "c", "d");
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b"), "/a b");
    }
}
