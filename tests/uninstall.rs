//! `scripts/uninstall.sh`: removes what `install.sh` installed, keeps the store unless told
//! to purge it, and refuses while a PAM file still names the module.
//!
//! It runs for real, as root, inside a private mount namespace ([`Namespace`]) in which
//! the directories `install.sh` writes to are overlays: the machine's files show through,
//! and what the script removes is removed only there. The installed state is what
//! `install.sh` leaves on a host without systemd: `mfad` at `/usr/sbin/mfad`, running,
//! its pid in `/run/pam_mfa/mfad.pid`, `mfa` in `/usr/local/bin`, the module and its
//! security-key library in the PAM module directory, the tmpfiles.d entry, the store in
//! `/var/lib/pam_mfa`, and the systemd units with their enablement (`systemctl enable`,
//! which works without a running systemd), as after an install on a host with systemd.

use std::path::Path;
use std::time::{Duration, Instant};

use pam_mfa_tests::namespace::sh_quote;
use pam_mfa_tests::process::Finished;
use pam_mfa_tests::{Namespace, Running, TestEnv, TestUser, paths, workspace_root};

/// The link `systemctl enable mfad.socket` makes.
const ENABLED: &str = "/etc/systemd/system/sockets.target.wants/mfad.socket";

/// Where `install.sh` puts files, beside the PAM module directory and `/var/lib`, which
/// every namespace overlays.
const INSTALL_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/bin",
    "/etc/tmpfiles.d",
    "/etc/systemd/system",
];

/// A host as `install.sh` leaves it without systemd, inside a namespace.
struct Installed {
    /// The installed `mfad`, started as `install.sh` starts it; first, so that it ends
    /// before the namespace.
    mfad: Option<Running>,
    ns: Namespace,
    /// The files `install.sh` writes, as the namespace sees them.
    files: Vec<String>,
}

impl Installed {
    /// The host with the `mfad` install.sh started, recorded in its pidfile.
    fn new(env: &TestEnv) -> Self {
        let mut host = Self::without_daemon(env);
        host.start_mfad();
        let pid = host.daemon_pid();
        host.run_common(&format!("record_started_mfad {pid}"));
        host
    }

    /// The installed files, no daemon running.
    fn without_daemon(env: &TestEnv) -> Self {
        let ns = Namespace::with_overlays(env, INSTALL_DIRS);
        let mut host = Self {
            mfad: None,
            ns,
            files: Vec::new(),
        };
        // The script must find the namespace's module directory, the overlaid one: on a
        // host with several, the machine's would be changed otherwise.
        let module_dir = host.run_common("pam_module_dir");
        assert_eq!(
            module_dir.trim(),
            host.ns.module_dir().display().to_string(),
            "uninstall.sh would look for the module elsewhere than the namespace put it"
        );
        // The namespace has the module and its security-key library in place already.
        let module_dir = module_dir.trim();
        host.files = vec![
            format!("{module_dir}/pam_mfa.so"),
            format!("{module_dir}/libpam_mfa_keys.so"),
        ];
        for (from, to, mode) in [
            (paths::mfad_bin(), "/usr/sbin/mfad", 0o755),
            (paths::mfa_bin(), "/usr/local/bin/mfa", 0o755),
        ] {
            std::fs::copy(&from, host.ns.path(to))
                .unwrap_or_else(|e| panic!("cannot copy {} to {to}: {e}", from.display()));
            set_mode(&host.ns.path(to), mode);
            host.files.push(to.to_owned());
        }
        let packaging = workspace_root().join("packaging");
        for (from, to) in [
            ("tmpfiles.d/pam_mfa.conf", "/etc/tmpfiles.d/pam_mfa.conf"),
            ("systemd/mfad.socket", "/etc/systemd/system/mfad.socket"),
            ("systemd/mfad.service", "/etc/systemd/system/mfad.service"),
        ] {
            // Only into directories the namespace overlays (those the machine has).
            let dir = Path::new(to).parent().expect("a file has a directory");
            if dir.is_dir() {
                let text = std::fs::read_to_string(packaging.join(from))
                    .unwrap_or_else(|e| panic!("cannot read packaging/{from}: {e}"));
                host.ns.write(to, &text, 0o644);
                host.files.push(to.to_owned());
            }
        }
        if Path::new("/etc/systemd/system").is_dir() {
            let systemctl = paths::tool("systemctl", "systemd");
            let enable = host.ns.sh(
                &format!("{} enable mfad.socket", systemctl.display()),
                Path::new("/"),
                "",
            );
            assert!(enable.status.success(), "{enable:?}");
            host.files.push(ENABLED.to_owned());
        }
        for f in &host.files {
            assert!(host.is_there(f), "{f} is not in place");
        }
        host
    }

    /// Starts `/usr/sbin/mfad` at its defaults, as install.sh does without systemd.
    fn start_mfad(&mut self) {
        let run = self
            .ns
            .sh("install -d -m 0755 /run/pam_mfa", Path::new("/"), "");
        assert!(run.status.success(), "{run:?}");
        let mut daemon = Running::spawn(
            self.ns.command(Path::new("/usr/sbin/mfad")),
            "the installed mfad",
        );
        let ready = daemon.wait_for("mfad to serve", |_, err| err.contains("serving"));
        assert!(ready, "mfad did not start: {}", daemon.stderr());
        assert!(self.ns.path("/run/pam_mfa/mfad.sock").exists());
        self.mfad = Some(daemon);
    }

    /// The installed mfad's pid: nsenter execs it itself, so the child's pid is the
    /// daemon's, as `$!` is in install.sh.
    fn daemon_pid(&self) -> u32 {
        self.mfad.as_ref().expect("mfad was started").pid()
    }

    /// Runs `. scripts/common.sh; COMMAND` in the namespace, asserting success: its output.
    fn run_common(&self, command: &str) -> String {
        let out = self.ns.sh(
            &format!(". scripts/common.sh && {command}"),
            &workspace_root(),
            "",
        );
        assert!(out.status.success(), "{command}: {out:?}");
        out.stdout
    }

    /// Runs `scripts/uninstall.sh ARGS…` from this checkout, as root, in the namespace.
    fn uninstall(&self, args: &[&str]) -> Finished {
        let script = workspace_root().join("scripts/uninstall.sh");
        let mut cmd = self.ns.command(&script);
        cmd.args(args);
        pam_mfa_tests::process::run(cmd, format!("uninstall.sh {args:?}"), Vec::new())
    }

    /// Whether `file` is in the namespace, a symbolic link as itself (the enablement's link
    /// names its unit by an absolute path, which outside the namespace leads elsewhere).
    fn is_there(&self, file: &str) -> bool {
        std::fs::symlink_metadata(self.ns.path(file)).is_ok()
    }

    /// The installed files still there.
    fn present(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| self.is_there(f))
            .map(String::as_str)
            .collect()
    }

    fn assert_all_present(&mut self, after: &str) {
        let all: Vec<&str> = self.files.iter().map(String::as_str).collect();
        assert_eq!(self.present(), all, "files removed by {after}");
        let daemon = self.mfad.as_mut().expect("the daemon is ours");
        assert!(!daemon.has_exited(), "{after} stopped mfad");
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

#[test]
fn uninstall_refuses_bad_arguments_a_pam_file_that_names_the_module_and_a_package() {
    let env = TestEnv::new();
    let mut host = Installed::new(&env);

    let bad = host.uninstall(&["--purg"]);
    assert!(!bad.status.success(), "{bad:?}");
    assert!(bad.stderr.contains("unknown argument '--purg'"), "{bad:?}");
    assert!(bad.stderr.contains("usage:"), "{bad:?}");
    host.assert_all_present("a bad argument");

    // A commented-out line does not count; a live one in another file does.
    host.ns.write(
        "/etc/pam.d/pam_mfa_tests_old",
        "#auth required pam_mfa.so\n",
        0o644,
    );
    host.ns.write(
        "/etc/pam.d/pam_mfa_tests_live",
        "auth required pam_unix.so\nauth required pam_mfa.so nullok\n",
        0o644,
    );
    let refused = host.uninstall(&[]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused.stderr.contains("/etc/pam.d/pam_mfa_tests_live"),
        "{refused:?}"
    );
    assert!(
        !refused.stderr.contains("pam_mfa_tests_old"),
        "a commented line counted: {refused:?}"
    );
    assert!(
        refused.stderr.contains("Nothing was removed"),
        "{refused:?}"
    );
    host.assert_all_present("a refused uninstall");
    assert!(host.ns.path("/run/pam_mfa/mfad.sock").exists());

    // A pam-auth-update profile that adds the module would put it back into common-auth
    // at the next pam-auth-update, with the module gone.
    std::fs::remove_file(host.ns.path("/etc/pam.d/pam_mfa_tests_live")).expect("rm");
    host.ns.write(
        "/usr/share/pam-configs/pam_mfa_tests_profile",
        "Name: a test profile\nDefault: no\nPriority: 0\nAuth-Type: Additional\n\
         Auth:\n\trequired\tpam_mfa.so nullok\n",
        0o644,
    );
    let profile = host.uninstall(&[]);
    assert!(!profile.status.success(), "{profile:?}");
    assert!(
        profile
            .stderr
            .contains("pam-auth-update profiles still add pam_mfa.so: /usr/share/pam-configs/pam_mfa_tests_profile"),
        "{profile:?}"
    );
    host.assert_all_present("a refused uninstall");

    // Files a package owns are the package manager's to remove. dpkg's record of which
    // package holds which file is in /var/lib, the namespace's overlay: passwd (which
    // every test machine has, for useradd) is made to list /usr/sbin/mfad.
    let list = "/var/lib/dpkg/info/passwd.list";
    assert!(
        host.ns.path(list).exists(),
        "no {list}: is passwd installed?"
    );
    let mut files = host.ns.read(list);
    files.push_str("/usr/sbin/mfad\n");
    host.ns.write(list, &files, 0o644);
    let packaged = host.uninstall(&[]);
    assert!(!packaged.status.success(), "{packaged:?}");
    assert!(
        packaged
            .stderr
            .contains("belongs to the package passwd: remove it with `apt-get remove passwd`"),
        "{packaged:?}"
    );
    host.assert_all_present("an uninstall of a package's files");
}

#[test]
fn uninstall_stops_mfad_removes_every_file_keeps_the_store_and_purges_on_request() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.enroll(user.name(), "phone");
    let mut host = Installed::new(&env);

    let done = host.uninstall(&[]);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(host.present(), Vec::<&str>::new(), "{done:?}");
    // Each file named: the enablement's link by systemctl, which removes it.
    let output = format!("{}{}", done.stdout, done.stderr);
    for f in &host.files {
        assert!(output.contains(f.as_str()), "{f} not reported: {done:?}");
    }
    // The daemon install.sh started has ended, its socket's directory with it.
    let mut daemon = host.mfad.take().expect("the daemon is ours");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !daemon.has_exited() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(daemon.has_exited(), "mfad still runs after uninstall.sh");
    assert!(!host.ns.path("/run/pam_mfa").exists());
    // The store is kept, every registration in it.
    assert!(
        done.stdout.contains("Kept the store /var/lib/pam_mfa"),
        "{done:?}"
    );
    assert!(host.ns.path("/var/lib/pam_mfa/devices.db").exists());
    assert!(env.listed(user.name(), "phone").is_some());

    // Again: nothing left to remove, which is not an error.
    let again = host.uninstall(&[]);
    assert!(again.status.success(), "{again:?}");
    assert!(
        again
            .stdout
            .contains("Nothing that install.sh installs is installed here"),
        "{again:?}"
    );

    // --purge deletes the store. It is the test's store bind-mounted on the default path:
    // a copy in its place instead, so the purge removes a directory, as on a host.
    let copy = host.ns.sh(
        &format!(
            "umount -n /var/lib/pam_mfa && rmdir /var/lib/pam_mfa && cp -a {} /var/lib/pam_mfa",
            sh_quote(&env.store().display().to_string())
        ),
        Path::new("/"),
        "",
    );
    assert!(copy.status.success(), "{copy:?}");
    assert!(host.ns.path("/var/lib/pam_mfa/devices.db").exists());
    host.ns
        .write("/var/log/pam_mfa-mfad.log", "mfad: serving\n", 0o600);
    let purged = host.uninstall(&["--purge"]);
    assert!(purged.status.success(), "{purged:?}");
    assert!(
        purged.stdout.contains("Deleted the store /var/lib/pam_mfa"),
        "{purged:?}"
    );
    assert!(!host.ns.path("/var/lib/pam_mfa").exists());
    assert!(!host.ns.path("/var/log/pam_mfa-mfad.log").exists());
    // Only the namespace's copy: the test's own store is where it was.
    assert!(env.store().join("devices.db").exists());
}

#[test]
fn uninstall_stops_only_the_mfad_install_sh_started() {
    let env = TestEnv::new();
    let mut host = Installed::without_daemon(&env);
    host.start_mfad();
    // The pidfile names this mfad's pid with another start time: a process that got the
    // pid of the one install.sh started (a container restarted with its /run kept), here
    // an mfad a supervisor runs. It is not install.sh's to stop.
    let pid = host.daemon_pid();
    host.ns
        .write("/run/pam_mfa/mfad.pid", &format!("{pid} 1\n"), 0o644);

    let done = host.uninstall(&[]);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(host.present(), Vec::<&str>::new(), "{done:?}");
    let daemon = host.mfad.as_mut().expect("the daemon is ours");
    assert!(
        !daemon.has_exited(),
        "uninstall.sh stopped an mfad it did not start"
    );
    assert!(
        done.stdout.contains(&format!(
            "mfad still runs as process {pid} (started by a supervisor?)"
        )),
        "{done:?}"
    );
}
