//! Where the artifacts under test and the system tools live.
//!
//! The tests never build anything themselves: they drive whatever `cargo build --workspace`
//! left next to the test binary, so they test exactly the files that would be installed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Overrides the directory holding `libpam_mfa.so`, `mfa` and `pam-client` (for example to
/// run the suite against a release build); by default it is found from the test binary.
pub const ARTIFACT_DIR_VAR: &str = "PAM_MFA_ARTIFACT_DIR";

/// The cargo profile directory the current test binary was built into (`target/debug`).
///
/// Integration tests live in `target/<profile>/deps/<name>-<hash>`, binaries in
/// `target/<profile>/<name>`; both resolve to `target/<profile>`, wherever
/// `CARGO_TARGET_DIR` points and whichever directory the test runs from.
pub fn artifact_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(ARTIFACT_DIR_VAR) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("cannot find the running test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable has no parent directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// An artifact of the workspace build, or a panic that says how to make it.
fn artifact(name: &str) -> PathBuf {
    let path = artifact_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` first (or set {ARTIFACT_DIR_VAR})",
        path.display()
    );
    path
}

/// The source files cargo recorded for an artifact in its dep-info file (`mfa.d`,
/// `libpam_mfa.d` next to it): every path after a `target:` on each line, with `\ `
/// standing for a space inside a path.
fn recorded_sources(dep_info: &str) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for line in dep_info.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    current.push(' ');
                    chars.next();
                }
                ' ' => {
                    if !current.is_empty() {
                        sources.push(PathBuf::from(std::mem::take(&mut current)));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            sources.push(PathBuf::from(current));
        }
    }
    sources
}

/// A product artifact, checked once per test process to be at least as new as every source
/// file cargo built it from: `cargo test` alone does not rebuild `mfa` or the cdylib, and
/// testing a stale build would report on code that no longer exists.
fn product_artifact(name: &str, dep_info: &str, checked: &std::sync::OnceLock<PathBuf>) -> PathBuf {
    checked
        .get_or_init(|| {
            let path = artifact(name);
            let Ok(info) = std::fs::read_to_string(artifact_dir().join(dep_info)) else {
                // Not a cargo build directory (e.g. installed files): nothing to compare.
                return path;
            };
            let built = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            for src in recorded_sources(&info) {
                let fresh = std::fs::metadata(&src)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t <= built);
                assert!(
                    fresh,
                    "{} is older than {} (or that file is gone): run `cargo build --workspace` \
                     first",
                    path.display(),
                    src.display()
                );
            }
            path
        })
        .clone()
}

/// The built PAM module, by absolute path as a PAM service file needs it. The module
/// loads its security-key library from next to itself, so that is checked too.
pub fn pam_module() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    keys_library();
    product_artifact("libpam_mfa_module.so", "libpam_mfa_module.d", &CHECKED)
}

/// The built `libpam_mfa_keys.so`, which pam_mfa.so loads for a security-key login from
/// the directory it was itself loaded from.
pub fn keys_library() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    product_artifact("libpam_mfa_keys.so", "libpam_mfa_keys.d", &CHECKED)
}

/// The built `mfa` command.
pub fn mfa_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    product_artifact("mfa", "mfa.d", &CHECKED)
}

/// The built `mfad` daemon.
pub fn mfad_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    product_artifact("mfad", "mfad.d", &CHECKED)
}

/// The `mfad-client` test program of this crate (a hand-written client of mfad's socket).
pub fn mfad_client_bin() -> PathBuf {
    artifact("mfad-client")
}

/// The `fake-mfad` test program of this crate (a stand-in daemon that approves everything).
pub fn fake_mfad_bin() -> PathBuf {
    artifact("fake-mfad")
}

/// The `pam-client` test program of this crate (cargo builds it before integration tests).
pub fn pam_client_bin() -> PathBuf {
    artifact("pam-client")
}

/// The first existing file among `candidates`, or a panic naming the package to install.
fn first_existing(what: &str, package: &str, candidates: &[PathBuf]) -> PathBuf {
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("{what} not found (looked in {candidates:?}): install the Debian package `{package}`")
        })
}

/// The Debian multiarch library directories to search, most specific first.
fn lib_dirs() -> Vec<PathBuf> {
    let arch = std::env::consts::ARCH;
    let mut dirs = vec![
        PathBuf::from(format!("/usr/lib/{arch}-linux-gnu")),
        PathBuf::from(format!("/lib/{arch}-linux-gnu")),
        PathBuf::from("/usr/lib64"),
        PathBuf::from("/usr/lib"),
    ];
    if arch == "arm" {
        dirs.insert(0, PathBuf::from("/usr/lib/arm-linux-gnueabihf"));
    }
    dirs
}

/// `libpam_wrapper.so`, which redirects libpam to a private service directory so that no
/// test touches the machine's own `/etc/pam.d`.
pub fn pam_wrapper_lib() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    // pkg-config knows the exact file where the package ships one.
    if let Ok(out) = Command::new("pkg-config")
        .args(["--libs", "pam_wrapper"])
        .output()
        && out.status.success()
    {
        let libs = String::from_utf8_lossy(&out.stdout).into_owned();
        candidates.extend(
            libs.split_whitespace()
                .filter(|w| w.ends_with(".so"))
                .map(PathBuf::from),
        );
    }
    candidates.extend(lib_dirs().into_iter().map(|d| d.join("libpam_wrapper.so")));
    first_existing("libpam_wrapper.so", "libpam-wrapper", &candidates)
}

/// `libfaketime.so.1`, preloaded to give a child process a clock of the test's choosing.
pub fn faketime_lib() -> PathBuf {
    let candidates: Vec<PathBuf> = lib_dirs()
        .into_iter()
        .map(|d| d.join("faketime").join("libfaketime.so.1"))
        .collect();
    first_existing("libfaketime.so.1", "libfaketime", &candidates)
}

/// A module of the system's Linux-PAM (`pam_permit.so`, `pam_deny.so`, `pam_debug.so`, …).
pub fn system_pam_module(name: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = lib_dirs()
        .into_iter()
        .chain([PathBuf::from("/lib64"), PathBuf::from("/lib")])
        .map(|d| d.join("security").join(name))
        .collect();
    first_existing(name, "libpam-modules", &candidates)
}

/// A test module shipped with pam_wrapper (`pam_chatty.so`, `pam_matrix.so`, …).
pub fn pam_wrapper_module(name: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = lib_dirs()
        .into_iter()
        .map(|d| d.join("pam_wrapper").join(name))
        .collect();
    first_existing(name, "libpam-wrapper", &candidates)
}

/// An executable found on `PATH` or in the system directories (root's tools live in sbin,
/// which a CI `PATH` may lack).
pub fn tool(name: &str, package: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let candidates: Vec<PathBuf> = path_dirs
        .into_iter()
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .collect();
    first_existing(name, package, &candidates)
}

/// Panics unless the tests run as root: they create root-owned stores and real accounts,
/// which is what the product insists on.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests must run as root (they create real user accounts with useradd and \
         root-owned device stores); run `cargo test` as root, e.g. in CI or a container"
    );
}

/// The mode bits (`0o7777`) of a file, without following a final symlink.
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o7777
}
