//! `scripts/uninstall.sh`: removes what `install.sh` installed, keeps the store unless told
//! to purge it, and refuses while a PAM file still names the module.
//!
//! It runs for real, as root, inside a private mount namespace ([`Namespace`]) in which
//! the directories `install.sh` writes to are overlays: the machine's files show through,
//! and what the script removes is removed only there. The installed state is what
//! `install.sh` leaves on a host without systemd: `mfad` at `/usr/sbin/mfad`, running,
//! its pid in `/run/pam_mfa/mfad.pid`, `mfa` in `/usr/local/bin`, the module and its
//! security-key library in the PAM module directory, the tmpfiles.d entry, the store in
//! `/var/lib/pam_mfa`.

use std::path::Path;
use std::time::{Duration, Instant};

use pam_mfa_tests::namespace::sh_quote;
use pam_mfa_tests::process::Finished;
use pam_mfa_tests::{Namespace, Running, TestEnv, TestUser, paths, workspace_root};

/// Where `install.sh` puts files, beside the PAM module directory and `/var/lib`, which
/// every namespace overlays.
const INSTALL_DIRS: &[&str] = &["/usr/sbin", "/usr/local/bin", "/etc/tmpfiles.d"];

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
    fn new(env: &TestEnv) -> Self {
        let ns = Namespace::with_overlays(env, INSTALL_DIRS);
        let module_dir = ns.module_dir().display().to_string();
        // The namespace has the module and its security-key library in place already.
        let mut files = vec![
            format!("{module_dir}/pam_mfa.so"),
            format!("{module_dir}/libpam_mfa_keys.so"),
        ];
        for (from, to, mode) in [
            (paths::mfad_bin(), "/usr/sbin/mfad", 0o755),
            (paths::mfa_bin(), "/usr/local/bin/mfa", 0o755),
        ] {
            std::fs::copy(&from, ns.path(to))
                .unwrap_or_else(|e| panic!("cannot copy {} to {to}: {e}", from.display()));
            set_mode(&ns.path(to), mode);
            files.push(to.to_owned());
        }
        if Path::new("/etc/tmpfiles.d").is_dir() {
            let conf =
                std::fs::read_to_string(workspace_root().join("packaging/tmpfiles.d/pam_mfa.conf"))
                    .expect("cannot read packaging/tmpfiles.d/pam_mfa.conf");
            ns.write("/etc/tmpfiles.d/pam_mfa.conf", &conf, 0o644);
            files.push("/etc/tmpfiles.d/pam_mfa.conf".to_owned());
        }
        for f in &files {
            assert!(ns.path(f).exists(), "{f} is not in place");
        }

        let run = ns.sh("install -d -m 0755 /run/pam_mfa", Path::new("/"), "");
        assert!(run.status.success(), "{run:?}");
        let mut daemon = Running::spawn(
            ns.command(Path::new("/usr/sbin/mfad")),
            "the installed mfad",
        );
        let ready = daemon.wait_for("mfad to serve", |_, err| err.contains("serving"));
        assert!(ready, "mfad did not start: {}", daemon.stderr());
        // nsenter execs mfad itself: the child's pid is the daemon's, as `$!` is in
        // install.sh.
        ns.write(
            "/run/pam_mfa/mfad.pid",
            &format!("{}\n", daemon.pid()),
            0o644,
        );
        assert!(ns.path("/run/pam_mfa/mfad.sock").exists());
        Self {
            mfad: Some(daemon),
            ns,
            files,
        }
    }

    /// Runs `scripts/uninstall.sh ARGS…` from this checkout, as root, in the namespace.
    fn uninstall(&self, args: &[&str]) -> Finished {
        let script = workspace_root().join("scripts/uninstall.sh");
        let mut cmd = self.ns.command(&script);
        cmd.args(args);
        pam_mfa_tests::process::run(cmd, format!("uninstall.sh {args:?}"), Vec::new())
    }

    fn present(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| self.ns.path(f).exists())
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
    for f in &host.files {
        assert!(
            done.stdout.contains(f.as_str()),
            "{f} not reported: {done:?}"
        );
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
    let purged = host.uninstall(&["--purge"]);
    assert!(purged.status.success(), "{purged:?}");
    assert!(
        purged.stdout.contains("Deleted the store /var/lib/pam_mfa"),
        "{purged:?}"
    );
    assert!(!host.ns.path("/var/lib/pam_mfa").exists());
    // Only the namespace's copy: the test's own store is where it was.
    assert!(env.store().join("devices.db").exists());
}
