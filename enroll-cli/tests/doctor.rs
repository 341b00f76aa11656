//! `mfa doctor` against deliberately broken configurations.
//!
//! Each test builds a small system under a temporary directory (PAM files, a module
//! directory, sshd_config, passwd, a store made by the real `mfa` with codes from
//! `oathtool`), breaks one thing, and runs the built `mfa doctor --root DIR`, checking the
//! text report, the JSON report and the exit status. The clock check asks `timedatectl`
//! through `PATH`, so the tests put a stand-in first on it.
//!
//! Requirements: root (the store must be root-owned) and `oathtool`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

const MFA: &str = env!("CARGO_BIN_EXE_mfa");

const COMMON_AUTH: &str = "\
# the primary block, as pam-auth-update writes it
auth\t[success=1 default=ignore]\tpam_unix.so nullok
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
";

const SUDO: &str = "#%PAM-1.0\n@include common-auth\nauth required pam_mfa.so\n";
const SSHD_PAM: &str =
    "@include common-auth\nauth required pam_mfa.so\naccount required pam_unix.so\n";

const SSHD_CONFIG: &str = "\
Include /etc/ssh/sshd_config.d/*.conf
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
AuthenticationMethods publickey,keyboard-interactive
";

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A code from oathtool, the independent implementation, for Unix time `at`.
fn oath_code(secret: &str, at: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret, "-N", &format!("@{at}")])
        .output()
        .expect("oathtool is needed (apt install oathtool)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A configured system under a temporary directory, clean until a test breaks it.
struct System {
    dir: tempfile::TempDir,
    bin: tempfile::TempDir,
}

impl System {
    fn new() -> Self {
        assert!(is_root(), "the doctor tests must run as root");
        let dir = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let sys = Self { dir, bin };
        sys.write("etc/pam.d/common-auth", COMMON_AUTH);
        sys.write("etc/pam.d/sudo", SUDO);
        sys.write("etc/pam.d/sshd", SSHD_PAM);
        sys.write("etc/pam.d/other", "auth required pam_deny.so\n");
        sys.write("etc/ssh/sshd_config", SSHD_CONFIG);
        sys.write(
            "etc/ssh/sshd_config.d/50-local.conf",
            "# nothing here yet\nX11Forwarding no\n",
        );
        sys.write("etc/passwd", PASSWD);
        sys.write("etc/shells", "# /etc/shells\n/bin/sh\n/bin/bash\n");
        sys.write("usr/sbin/sshd", "");
        for module in [
            "pam_unix.so",
            "pam_deny.so",
            "pam_permit.so",
            "pam_mfa.so",
            "libpam_mfa_keys.so",
        ] {
            sys.write(&format!("{}/{module}", Self::module_dir()), "");
            chmod(
                &sys.path(&format!("{}/{module}", Self::module_dir())),
                0o644,
            );
        }
        fs::create_dir_all(sys.path("var/lib")).unwrap();
        sys.clock_says("yes");
        sys
    }

    /// A system with root's device registered.
    fn with_device() -> Self {
        let sys = Self::new();
        sys.enroll("root", "phone");
        sys
    }

    fn module_dir() -> String {
        format!("usr/lib/{}-linux-gnu/security", std::env::consts::ARCH)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        write(&self.path(rel), text);
    }

    fn store(&self) -> PathBuf {
        self.path("var/lib/pam_mfa/devices.db")
    }

    /// Makes the stand-in `timedatectl` answer `answer` for NTPSynchronized.
    fn clock_says(&self, answer: &str) {
        let script = self.bin.path().join("timedatectl");
        write(&script, &format!("#!/bin/sh\necho {answer}\n"));
        chmod(&script, 0o755);
    }

    /// Registers a device with the real `mfa`, in the two scripted steps.
    fn enroll(&self, user: &str, name: &str) {
        let store = self.store();
        let db = store.to_str().unwrap();
        let out = Command::new(MFA)
            .args(["--db", db, "--user", user, "enroll", "totp", name])
            .args(["--begin", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let begun: Value = serde_json::from_slice(&out.stdout).unwrap();
        let secret = begun["secret"].as_str().unwrap().to_owned();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let step = now / 30;
        let (c1, c2) = (
            oath_code(&secret, (step - 1) * 30),
            oath_code(&secret, step * 30),
        );
        let out = Command::new(MFA)
            .args([
                "--db", db, "--user", user, "enroll", "finish", name, &c1, &c2,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// Runs `mfa EXTRA... doctor [--json] --root DIR` with the stand-in tools first on
    /// `PATH`.
    fn run_doctor(&self, extra: &[&str], json: bool) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(MFA)
            .args(extra)
            .arg("doctor")
            .args(json.then_some("--json"))
            .arg("--root")
            .arg(self.dir.path())
            .env("PATH", path)
            .output()
            .unwrap()
    }

    fn run(&self, extra: &[&str]) -> Output {
        self.run_doctor(extra, false)
    }

    /// Runs the doctor in text and in JSON, checks that both say the same, and returns
    /// the report.
    fn doctor(&self) -> Report {
        self.doctor_with(&[])
    }

    fn doctor_with(&self, extra: &[&str]) -> Report {
        let text = self.run_doctor(extra, false);
        let json = self.run_doctor(extra, true);
        let stdout = String::from_utf8(text.stdout.clone()).unwrap();
        let findings: Vec<Value> = serde_json::from_slice(&json.stdout)
            .unwrap_or_else(|e| panic!("--json is not JSON ({e}): {json:?}"));
        assert_eq!(text.status.code(), json.status.code(), "{stdout}");
        let from_text: Vec<(String, String)> = stdout
            .lines()
            .filter_map(|l| {
                let (status, rest) = l.split_once(' ')?;
                let check = rest.trim_start().split_once(':')?.0;
                ["ok", "warning", "problem"]
                    .contains(&status)
                    .then(|| (check.to_owned(), status.to_owned()))
            })
            .collect();
        let from_json: Vec<(String, String)> = findings
            .iter()
            .map(|f| {
                for key in ["check", "status", "message", "fix"] {
                    assert!(f.get(key).is_some(), "no {key} in {f}");
                }
                assert_eq!(
                    f["fix"].is_null(),
                    f["status"] == "ok",
                    "a fix for exactly what is not ok: {f}"
                );
                (
                    f["check"].as_str().unwrap().to_owned(),
                    f["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(from_text, from_json, "text and JSON differ:\n{stdout}");
        Report {
            code: text.status.code(),
            stdout,
            stderr: String::from_utf8_lossy(&text.stderr).into_owned(),
            findings,
        }
    }
}

struct Report {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    findings: Vec<Value>,
}

impl Report {
    fn with(&self, status: &str, check: &str) -> Vec<&Value> {
        self.findings
            .iter()
            .filter(|f| f["status"] == status && f["check"] == check)
            .collect()
    }

    /// The one finding of `check` with `status` whose message contains `needle`.
    fn find(&self, status: &str, check: &str, needle: &str) -> &Value {
        self.with(status, check)
            .into_iter()
            .find(|f| f["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no {status} {check} line with {needle:?}:\n{}", self.stdout))
    }

    fn fix_of(&self, status: &str, check: &str, needle: &str) -> String {
        self.find(status, check, needle)["fix"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn assert_problem(&self, check: &str, needle: &str) -> String {
        assert_eq!(self.code, Some(1), "{}{}", self.stdout, self.stderr);
        let fix = self.fix_of("problem", check, needle);
        assert!(!fix.is_empty());
        fix
    }

    fn problems(&self) -> Vec<&Value> {
        self.findings
            .iter()
            .filter(|f| f["status"] == "problem")
            .collect()
    }
}

// ----- the clean configuration -----

#[test]
fn a_clean_configuration_is_all_ok() {
    let sys = System::with_device();
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    for f in &r.findings {
        assert_eq!(f["status"], "ok", "{}", r.stdout);
    }
    for check in ["store", "clock", "pam", "sshd", "users"] {
        assert!(
            !r.with("ok", check).is_empty(),
            "no {check} line:\n{}",
            r.stdout
        );
    }
    r.find(
        "ok",
        "store",
        &format!(
            "schema version {}, integrity check passed",
            pam_mfa::store::SCHEMA_VERSION
        ),
    );
    r.find("ok", "store", "directory 0700 and file 0600");
    r.find("ok", "clock", "NTPSynchronized=yes");
    r.find(
        "ok",
        "pam",
        "pam.d/sudo:3: `auth required pam_mfa.so` (used by sudo)",
    );
    r.find(
        "ok",
        "pam",
        "pam.d/sshd:2: `auth required pam_mfa.so` (used by sshd)",
    );
    r.find("ok", "sshd", "every SSH login reaches pam_mfa");
    r.find("ok", "users", "1 user has active devices (1 device in all)");
    r.find(
        "ok",
        "users",
        "every user with a login shell (1) has an active device",
    );
    assert!(
        r.stdout.ends_with("0 problems, 0 warnings.\n"),
        "{}",
        r.stdout
    );
}

// A full disk stops every login, and nothing showed how much the
// store takes. The store check now says (file and WAL); a warning about low free space
// is in tests/faults.rs, and a clean configuration on a roomy disk gets none (above).
#[test]
fn the_store_check_shows_the_stores_size() {
    let sys = System::with_device();
    let r = sys.doctor();
    let message = r.find("ok", "store", "integrity check passed")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    // `mfa` folds the WAL into the file when it closes, so the file is all of it.
    let file = fs::metadata(sys.store()).unwrap().len();
    let kib = format!("{:.1} KiB", file as f64 / 1024.0);
    assert!(
        message.contains(&format!("size {kib} (file {kib}, WAL 0 bytes)")),
        "{message}"
    );
}

#[test]
fn an_unsynchronised_clock_is_a_warning_not_a_problem() {
    let sys = System::with_device();
    sys.clock_says("no");
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let fix = r.fix_of(
        "warning",
        "clock",
        "not synchronised (timedatectl: NTPSynchronized=no)",
    );
    assert!(fix.contains("timedatectl set-ntp true"), "{fix}");
}

// ----- PAM -----

#[test]
fn a_misspelt_argument_is_a_problem_with_a_suggestion() {
    let sys = System::with_device();
    sys.write(
        "etc/pam.d/sudo",
        "@include common-auth\nauth required pam_mfa.so nulok\n",
    );
    let r = sys.doctor();
    let fix = r.assert_problem(
        "pam",
        "pam.d/sudo:2: `auth required pam_mfa.so nulok`: unknown module argument \"nulok\"; \
         pam_mfa refuses every login through this line (PAM_SERVICE_ERR)",
    );
    assert!(fix.starts_with("did you mean `nullok`?"), "{fix}");
    assert_eq!(r.problems().len(), 1, "{}", r.stdout);
}

#[test]
fn malformed_arguments_are_judged_by_the_modules_parser() {
    let sys = System::with_device();
    sys.write(
        "etc/pam.d/sudo",
        "auth required pam_mfa.so window=99 [prompt=Code please: ]\n",
    );
    let r = sys.doctor();
    r.assert_problem("pam", "module argument window: must be from 0 to 10");
    // A bracketed prompt with spaces is one argument, and fine.
    sys.write(
        "etc/pam.d/sudo",
        "auth required pam_mfa.so window=2 [prompt=Code please: ]\n",
    );
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    r.find(
        "ok",
        "pam",
        "`auth required pam_mfa.so window=2 [prompt=Code please: ]`",
    );
}

#[test]
fn a_missing_module_file_is_a_problem() {
    let sys = System::with_device();
    fs::remove_file(sys.path(&format!("{}/pam_mfa.so", System::module_dir()))).unwrap();
    let r = sys.doctor();
    let fix = r.assert_problem("pam", "/pam_mfa.so does not exist; libpam counts the line as failed, so every login through it is refused");
    assert!(fix.starts_with("install pam_mfa.so as "), "{fix}");
    // Both sudo and sshd name it.
    assert_eq!(r.problems().len(), 2, "{}", r.stdout);
}

/// The module loads its security-key library from its own directory, and only a file
/// root alone can change: without one, key logins are refused, which is a warning.
#[test]
fn the_security_key_library_next_to_the_module_is_checked() {
    let sys = System::with_device();
    let library = sys.path(&format!("{}/libpam_mfa_keys.so", System::module_dir()));
    fs::remove_file(&library).unwrap();
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "a warning only:\n{}", r.stdout);
    let msg = r.find("warning", "pam", "libpam_mfa_keys.so does not exist")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("logins with a security key are refused"),
        "{msg}"
    );
    let fix = r.fix_of("warning", "pam", "libpam_mfa_keys.so does not exist");
    assert!(fix.contains("chmod 0644"), "{fix}");
    sys.write(&format!("{}/libpam_mfa_keys.so", System::module_dir()), "");
    chmod(&library, 0o666);
    let r = sys.doctor();
    r.find(
        "warning",
        "pam",
        "libpam_mfa_keys.so is writable by group or others (mode 0666)",
    );
    chmod(&library, 0o644);
    let r = sys.doctor();
    assert!(r.with("warning", "pam").is_empty(), "{}", r.stdout);
}

#[test]
fn an_absolute_module_path_is_checked_under_the_root() {
    let sys = System::with_device();
    sys.write(
        "etc/pam.d/sudo",
        "-auth required /opt/pam_mfa/lib/pam_mfa.so\n",
    );
    let r = sys.doctor();
    let msg = r.find("problem", "pam", "does not exist")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains(&format!(
            "{}/opt/pam_mfa/lib/pam_mfa.so",
            sys.dir.path().display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("the leading '-' only keeps this out of the log"),
        "{msg}"
    );
    sys.write("opt/pam_mfa/lib/pam_mfa.so", "");
    chmod(&sys.path("opt/pam_mfa/lib/pam_mfa.so"), 0o664);
    let r = sys.doctor();
    let fix = r.assert_problem("pam", "is writable by group or others (mode 0664)");
    assert!(fix.contains("chmod 0644"), "{fix}");
    chmod(&sys.path("opt/pam_mfa/lib/pam_mfa.so"), 0o644);
    assert_eq!(sys.doctor().code, Some(0));
}

#[test]
fn includes_continuations_and_bracketed_controls() {
    let sys = System::with_device();
    sys.write(
        "etc/pam.d/common-mfa",
        "# pam_mfa for every service that includes this\n\
         auth [success=ok default=bad] pam_mfa.so \\\n     window=2   # trailing comment\n",
    );
    sys.write(
        "etc/pam.d/sudo",
        "@include common-auth\n@include common-mfa\n",
    );
    sys.write(
        "etc/pam.d/sshd",
        "auth substack common-mfa\naccount include common-auth\n",
    );
    sys.write("etc/pam.d/login", "account include common-mfa\n");
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    // The account include does not take auth lines: login does not use it.
    r.find(
        "ok",
        "pam",
        "pam.d/common-mfa:2: `auth [success=ok default=bad] pam_mfa.so window=2` (used by sshd, sudo)",
    );
    // The bracketed control fails on auth_err, so users without a device are locked out.
    r.find(
        "ok",
        "users",
        "pam.d/common-mfa:2: every user with a login shell",
    );

    sys.write(
        "etc/pam.d/common-mfa",
        "auth [success=ok auth_err=bogus] pam_mfa.so\n",
    );
    let r = sys.doctor();
    r.assert_problem(
        "pam",
        "the control [success=ok auth_err=bogus] is not valid",
    );
}

#[test]
fn lines_that_do_nothing_or_do_not_require_a_code_are_warnings() {
    let sys = System::with_device();
    sys.write(
        "etc/pam.d/sudo",
        "auth sufficient pam_mfa.so\nauth optional pam_mfa.so debug\naccount required pam_mfa.so\n",
    );
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    r.find(
        "warning",
        "pam",
        "with `sufficient`, a right code alone completes authentication",
    );
    r.find(
        "warning",
        "pam",
        "with `optional`, a wrong code does not refuse the login",
    );
    r.find(
        "warning",
        "pam",
        "pam_mfa only authenticates; on an account line it does nothing",
    );
}

/// The messages of the findings of `check` with `status` that contain `needle`.
fn messages_with<'a>(r: &'a Report, status: &str, check: &str, needle: &str) -> Vec<&'a str> {
    r.with(status, check)
        .into_iter()
        .map(|f| f["message"].as_str().unwrap())
        .filter(|m| m.contains(needle))
        .collect()
}

const WRONG_PASSWORD: &str = "does not end the stack";
const PLANTING: &str = "enroll_at_login registers a device during the login";

// The guide's old SSH stack (`required pam_unix.so` before pam_mfa)
// let a wrong password reach the code prompt, so anyone could lock anyone out. The doctor
// warns about a first factor that does not end the stack before pam_mfa and says to use
// `requisite`.
#[test]
fn a_password_line_that_does_not_end_the_stack_before_pam_mfa_is_a_warning() {
    let sys = System::with_device();
    sys.write(
        "etc/pam.d/sshd",
        "auth       required     pam_unix.so\nauth       required     pam_mfa.so\n",
    );
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "a warning only:\n{}", r.stdout);
    let warned = messages_with(&r, "warning", "pam", WRONG_PASSWORD);
    assert_eq!(warned.len(), 1, "{}", r.stdout);
    assert!(
        warned[0].contains("pam.d/sshd:2: `auth required pam_mfa.so`")
            && warned[0].contains("pam.d/sshd:1 `auth required pam_unix.so`")
            && warned[0].contains("lock that user out"),
        "{}",
        warned[0]
    );
    let fix = r.fix_of("warning", "pam", WRONG_PASSWORD);
    assert!(fix.contains("`auth requisite pam_unix.so`"), "{fix}");
    // The line is not also reported as ok.
    assert!(
        r.with("ok", "pam")
            .iter()
            .all(|f| !f["message"].as_str().unwrap().contains("pam.d/sshd:2")),
        "{}",
        r.stdout
    );

    // The guide's stack now: requisite ends the stack at a wrong password.
    sys.write(
        "etc/pam.d/sshd",
        "auth       requisite    pam_unix.so\nauth       required     pam_mfa.so\n",
    );
    let r = sys.doctor();
    assert!(
        messages_with(&r, "warning", "pam", WRONG_PASSWORD).is_empty(),
        "{}",
        r.stdout
    );
    r.find(
        "ok",
        "pam",
        "pam.d/sshd:2: `auth required pam_mfa.so` (used by sshd)",
    );

    // authselect's shape (pam_unix sufficient, then required pam_deny) goes on after a
    // wrong password too; an unknown module counts as a first factor; bookkeeping
    // modules (pam_env, pam_faildelay, pam_faillock preauth) do not.
    sys.write(
        "etc/pam.d/sudo",
        "auth required pam_env.so\nauth required pam_faillock.so preauth\n\
         auth sufficient pam_unix.so\nauth required pam_deny.so\nauth required pam_mfa.so\n",
    );
    sys.write(
        "etc/pam.d/login",
        "auth required pam_faildelay.so delay=2000000\nauth optional pam_radius_auth.so\n\
         auth required pam_mfa.so\n",
    );
    let r = sys.doctor();
    let warned = messages_with(&r, "warning", "pam", WRONG_PASSWORD);
    assert_eq!(warned.len(), 2, "{}", r.stdout);
    assert!(
        warned
            .iter()
            .any(|m| m.contains("sudo:3 `auth sufficient pam_unix.so`")
                && !m.contains("pam_env")
                && !m.contains("pam_faillock")),
        "{warned:?}"
    );
    assert!(
        warned
            .iter()
            .any(|m| m.contains("login:2 `auth optional pam_radius_auth.so`")
                && !m.contains("pam_faildelay")),
        "{warned:?}"
    );
}

// `enroll_at_login` registers a device for an account without one,
// so a line with it that someone who knows no password reaches lets anyone plant their
// authenticator on other accounts. The doctor flags it as a problem unless a first factor
// that ends the stack, or sshd's demand for a key, comes first.
#[test]
fn enroll_at_login_not_behind_a_first_factor_is_a_problem() {
    let sys = System::with_device();
    // The planting stack of the finding: a required password line, then enrolment.
    sys.write(
        "etc/pam.d/sudo",
        "auth required pam_unix.so\nauth required pam_mfa.so enroll_at_login\n",
    );
    let r = sys.doctor();
    let fix = r.assert_problem("pam", PLANTING);
    assert!(fix.contains("`auth requisite pam_unix.so`"), "{fix}");
    let planted = messages_with(&r, "problem", "pam", PLANTING);
    assert_eq!(planted.len(), 1, "{}", r.stdout);
    assert!(
        planted[0].contains("pam.d/sudo:2") && planted[0].contains("in sudo this line"),
        "{}",
        planted[0]
    );

    // Behind a requisite password line, or Debian's common-auth: not flagged.
    sys.write(
        "etc/pam.d/sudo",
        "auth requisite pam_unix.so\nauth required pam_mfa.so enroll_at_login\n",
    );
    sys.write(
        "etc/pam.d/su",
        "@include common-auth\nauth required pam_mfa.so enroll_at_login\n",
    );
    let r = sys.doctor();
    assert!(
        messages_with(&r, "problem", "pam", PLANTING).is_empty(),
        "{}",
        r.stdout
    );

    // sshd with pam_mfa alone: fine behind `publickey,keyboard-interactive` (the
    // fixture's), flagged when keyboard-interactive alone reaches it.
    sys.write(
        "etc/pam.d/sshd",
        "auth required pam_mfa.so enroll_at_login\naccount required pam_unix.so\n",
    );
    let r = sys.doctor();
    assert!(
        messages_with(&r, "problem", "pam", PLANTING).is_empty(),
        "{}",
        r.stdout
    );
    sys.write(
        "etc/ssh/sshd_config",
        &SSHD_CONFIG.replace(
            "AuthenticationMethods publickey,keyboard-interactive",
            "AuthenticationMethods keyboard-interactive",
        ),
    );
    let r = sys.doctor();
    let planted = messages_with(&r, "problem", "pam", PLANTING);
    assert_eq!(planted.len(), 1, "{}", r.stdout);
    assert!(
        planted[0].contains("pam.d/sshd:1") && planted[0].contains("in sshd this line"),
        "{}",
        planted[0]
    );
}

#[test]
fn a_misspelt_type_naming_pam_mfa_is_a_problem() {
    let sys = System::with_device();
    sys.write("etc/pam.d/sudo", "auht required pam_mfa.so\n");
    let r = sys.doctor();
    r.assert_problem("pam", "pam.d/sudo:1: `auht required pam_mfa.so`: libpam cannot read this line (unknown type \"auht\")");
}

#[test]
fn no_pam_mfa_line_is_a_warning() {
    let sys = System::with_device();
    sys.write("etc/pam.d/sudo", "@include common-auth\n");
    sys.write("etc/pam.d/sshd", "@include common-auth\n");
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    r.find(
        "warning",
        "pam",
        "uses pam_mfa.so, so no login asks for a code yet",
    );
    r.find("ok", "sshd", "does not use pam_mfa");
}

// ----- the store -----

#[test]
fn a_group_readable_store_is_a_problem() {
    let sys = System::with_device();
    chmod(&sys.store(), 0o640);
    let r = sys.doctor();
    let fix = r.assert_problem(
        "store",
        "the file has mode 0640; group and others must have no access",
    );
    assert!(
        fix.starts_with(&format!("chmod 0600 {}", sys.store().display())),
        "{fix}"
    );
    assert!(
        fix.contains("consider registering the devices again"),
        "{fix}"
    );
    r.find("warning", "users", "cannot tell who has a device");
}

#[test]
fn an_open_store_directory_is_a_problem() {
    let sys = System::with_device();
    let dir = sys.store().parent().unwrap().to_owned();
    chmod(&dir, 0o755);
    let r = sys.doctor();
    let fix = r.assert_problem("store", "its directory has mode 0755");
    assert_eq!(fix, format!("chmod 0700 {}", dir.display()));
}

#[test]
fn a_missing_store_is_a_problem_and_locks_everyone_out() {
    let sys = System::new();
    fs::create_dir(sys.path("var/lib/pam_mfa")).unwrap();
    chmod(&sys.path("var/lib/pam_mfa"), 0o700);
    let r = sys.doctor();
    let fix = r.assert_problem(
        "store",
        "devices.db does not exist: nobody has registered a device yet",
    );
    assert!(fix.contains("--user USER enroll totp NAME"), "{fix}");
    r.find("warning", "users", "no user has an active device yet");
    r.assert_problem(
        "users",
        "1 user with a login shell has none and would be locked out: root",
    );

    // Without even its directory.
    fs::remove_dir(sys.path("var/lib/pam_mfa")).unwrap();
    let r = sys.doctor();
    let fix = r.assert_problem("store", "its directory");
    assert!(fix.contains("install -d -m 0700"), "{fix}");
}

#[test]
fn a_damaged_store_is_a_problem() {
    let sys = System::with_device();
    // Keep page 1 (header and schema), overwrite the rest.
    let mut bytes = fs::read(sys.store()).unwrap();
    assert!(bytes.len() > 4096, "{}", bytes.len());
    for b in &mut bytes[4096..] {
        *b = 0xa5;
    }
    fs::write(sys.store(), &bytes).unwrap();
    let r = sys.doctor();
    let fix = r.assert_problem("store", "is damaged");
    assert!(fix.starts_with("restore "), "{fix}");

    // Not a database at all.
    fs::write(sys.store(), vec![0x5a; 8192]).unwrap();
    let r = sys.doctor();
    r.assert_problem("store", "is not a pam_mfa database");

    // Truncated.
    fs::write(sys.store(), b"").unwrap();
    let r = sys.doctor();
    r.assert_problem("store", "is empty (truncated?)");
}

#[test]
fn the_store_of_a_db_argument_is_checked_too() {
    let sys = System::with_device();
    sys.write(
        "etc/pam.d/sudo",
        "auth required pam_mfa.so db=/srv/mfa/devices.db\n",
    );
    fs::create_dir_all(sys.path("srv/mfa")).unwrap();
    chmod(&sys.path("srv/mfa"), 0o700);
    let r = sys.doctor();
    r.find("ok", "store", "var/lib/pam_mfa/devices.db: owned by root");
    r.assert_problem("store", "srv/mfa/devices.db does not exist");
    r.assert_problem(
        "users",
        "pam.d/sudo:1: `auth required pam_mfa.so db=/srv/mfa/devices.db` has no nullok",
    );
}

#[test]
fn db_names_the_store_to_check() {
    let sys = System::with_device();
    let elsewhere = tempfile::tempdir().unwrap();
    chmod(elsewhere.path(), 0o700);
    let db = elsewhere.path().join("devices.db");
    let r = sys.doctor_with(&["--db", db.to_str().unwrap()]);
    r.assert_problem("store", &format!("{} does not exist", db.display()));
}

// ----- sshd -----

#[test]
fn sshd_without_keyboard_interactive_is_a_problem() {
    let sys = System::with_device();
    sys.write(
        "etc/ssh/sshd_config",
        &SSHD_CONFIG.replace(
            "KbdInteractiveAuthentication yes",
            "KbdInteractiveAuthentication no",
        ),
    );
    let r = sys.doctor();
    let fix = r.assert_problem("sshd", "KbdInteractiveAuthentication is no");
    assert!(
        fix.starts_with("set `KbdInteractiveAuthentication yes`"),
        "{fix}"
    );
    assert_eq!(r.problems().len(), 1, "{}", r.stdout);
}

#[test]
fn an_included_file_wins_over_the_main_config() {
    let sys = System::with_device();
    sys.write(
        "etc/ssh/sshd_config.d/40-cloud.conf",
        "ChallengeResponseAuthentication no\n",
    );
    let r = sys.doctor();
    r.assert_problem("sshd", "KbdInteractiveAuthentication is no");
}

#[test]
fn sshd_without_pam_is_a_problem() {
    let sys = System::with_device();
    sys.write(
        "etc/ssh/sshd_config",
        &SSHD_CONFIG.replace("UsePAM yes", "UsePAM no"),
    );
    let r = sys.doctor();
    let fix = r.assert_problem("sshd", "UsePAM is no");
    assert!(fix.starts_with("set `UsePAM yes`"), "{fix}");
}

#[test]
fn keys_alone_bypass_pam() {
    let sys = System::with_device();
    sys.write(
        "etc/ssh/sshd_config",
        &SSHD_CONFIG.replace(
            "AuthenticationMethods publickey,keyboard-interactive",
            "AuthenticationMethods publickey",
        ),
    );
    let r = sys.doctor();
    let fix = r.assert_problem("sshd", "AuthenticationMethods publickey (");
    assert!(
        fix.contains("AuthenticationMethods publickey,keyboard-interactive"),
        "{fix}"
    );
    r.find(
        "problem",
        "sshd",
        "`publickey` completes a login without keyboard-interactive",
    );

    // The default, any, lets a key alone in: a warning.
    sys.write(
        "etc/ssh/sshd_config",
        "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n",
    );
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    r.find(
        "warning",
        "sshd",
        "a login with a key alone never reaches PAM",
    );
}

#[test]
fn sshd_settings_in_match_blocks_are_pointed_out() {
    let sys = System::with_device();
    sys.write(
        "etc/ssh/sshd_config",
        &format!("{SSHD_CONFIG}Match User backup\n    AuthenticationMethods publickey\n"),
    );
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    r.find("ok", "sshd", "every SSH login reaches pam_mfa");
    r.find("warning", "sshd", "Match blocks in");
}

#[test]
fn no_sshd_nothing_to_check() {
    let sys = System::with_device();
    fs::remove_file(sys.path("usr/sbin/sshd")).unwrap();
    sys.write("etc/ssh/sshd_config", "UsePAM no\n");
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    r.find("ok", "sshd", "sshd is not installed");
}

// ----- users -----

#[test]
fn a_required_line_without_nullok_locks_out_users_without_a_device() {
    let sys = System::with_device();
    sys.write(
        "etc/passwd",
        &format!(
            "{PASSWD}alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
             svc:x:998:998::/srv:/bin/false\n\
             bob:x:1001:1001::/home/bob:\n"
        ),
    );
    let r = sys.doctor();
    let fix = r.assert_problem(
        "users",
        "pam.d/sudo:3: `auth required pam_mfa.so` has no nullok, so a user without an active \
         device is refused at every login through sudo; 2 users with a login shell have none \
         and would be locked out: alice, bob",
    );
    assert!(fix.contains("add nullok to the line"), "{fix}");
    r.find("problem", "users", "pam.d/sshd:2:");

    // nullok lets them through: no problem.
    sys.write("etc/pam.d/sudo", "auth required pam_mfa.so nullok\n");
    sys.write("etc/pam.d/sshd", "auth required pam_mfa.so nullok\n");
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(r.with("problem", "users").is_empty());
    // So does a control that does not fail on a refusal.
    sys.write(
        "etc/pam.d/sudo",
        "auth [success=ok default=ignore] pam_mfa.so\n",
    );
    sys.write(
        "etc/pam.d/sshd",
        "auth [success=ok default=ignore] pam_mfa.so\n",
    );
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
}

// ----- the command -----

#[test]
fn only_root_may_run_it() {
    assert!(is_root(), "the doctor tests must run as root");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            MFA,
            "doctor",
        ])
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("mfa: doctor must be run as root"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_options_are_refused() {
    let sys = System::with_device();
    let out = sys.run(&["--user", "root"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user does not apply"));
    let out = Command::new(MFA)
        .args(["doctor", "--root", "/nonexistent/root"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
}

// ----- remembered logins -----

#[test]
fn remembered_logins_for_sshd_without_a_key_first_are_a_warning() {
    let sys = System::with_device();
    let r = sys.doctor();
    r.find("ok", "remembered logins", "off (policy remember_seconds 0)");

    let store = sys.store();
    let out = Command::new(MFA)
        .args(["--db", store.to_str().unwrap()])
        .args(["admin", "policy", "set", "remember_seconds", "600"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // A key comes first in sshd: on, and fine.
    let r = sys.doctor();
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    r.find("ok", "remembered logins", "remembered for 600 s");
    assert!(
        r.with("warning", "remembered logins").is_empty(),
        "{}",
        r.stdout
    );

    // A password alone reaches the code prompt: everyone behind one address shares the
    // exemption.
    sys.write(
        "etc/ssh/sshd_config",
        &SSHD_CONFIG.replace(
            "AuthenticationMethods publickey,keyboard-interactive",
            "AuthenticationMethods keyboard-interactive",
        ),
    );
    let r = sys.doctor();
    let fix = r.fix_of("warning", "remembered logins", "shares the exemption");
    assert!(
        fix.contains("AuthenticationMethods publickey,keyboard-interactive"),
        "{fix}"
    );
    // Turned off for sshd's line: nothing to warn about.
    sys.write(
        "etc/pam.d/sshd",
        &SSHD_PAM.replace("pam_mfa.so", "pam_mfa.so remember=0"),
    );
    let r = sys.doctor();
    assert!(
        r.with("warning", "remembered logins").is_empty(),
        "{}",
        r.stdout
    );
}

// ----- the fleet -----

const FLEET_CONF: &str = "[fleet]\nhosts = [\"db1.example.com:5432\"]\ndatabase = \"pam_mfa\"\n\
    role = \"mfa_host_web1\"\npassword = \"not-a-real-password\"\n\
    ca_certificate = \"/etc/pam_mfa/fleet-ca.pem\"\nlocal_users = [\"root\"]\n";

#[test]
fn the_fleet_configuration_is_checked_as_mfad_reads_it() {
    let sys = System::with_device();
    // No configuration: one host's store, nothing to say about a fleet.
    let r = sys.doctor();
    assert!(r.with("ok", "fleet").is_empty() && r.with("problem", "fleet").is_empty());

    // Readable by others: mfad would refuse to start.
    sys.write("etc/pam_mfa/mfad.conf", FLEET_CONF);
    chmod(&sys.path("etc/pam_mfa/mfad.conf"), 0o644);
    let r = sys.doctor();
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    r.assert_problem("fleet", "mfad does not start");
    assert!(!r.stdout.contains("not-a-real-password"), "{}", r.stdout);

    // Right: which accounts are local, where the database is.
    chmod(&sys.path("etc/pam_mfa/mfad.conf"), 0o600);
    let r = sys.doctor();
    r.find(
        "ok",
        "fleet",
        "accounts other than root are kept in the fleet database",
    );

    // Root not kept locally: a warning.
    sys.write(
        "etc/pam_mfa/mfad.conf",
        &FLEET_CONF.replace("local_users = [\"root\"]", "local_users = [\"breakglass\"]"),
    );
    chmod(&sys.path("etc/pam_mfa/mfad.conf"), 0o600);
    sys.doctor()
        .find("warning", "fleet", "root is not among local_users");

    // The packaged unit without the network drop-in: a problem, gone with the drop-in.
    sys.write(
        "usr/lib/systemd/system/mfad.service",
        "[Service]\nPrivateNetwork=yes\n",
    );
    let r = sys.doctor();
    r.assert_problem("fleet", "mfad.service has no network");
    sys.write(
        "etc/systemd/system/mfad.service.d/fleet.conf",
        "[Service]\nPrivateNetwork=no\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
    );
    let r = sys.doctor();
    assert!(r.with("problem", "fleet").is_empty(), "{}", r.stdout);
}
