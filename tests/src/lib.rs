//! Harness for the end-to-end tests of `pam_mfa.so` and `mfa`.
//!
//! The tests treat the product as a black box, the way an administrator meets it: the
//! built `libpam_mfa.so` is loaded by the real libpam from a service file (through
//! `pam-client` under pam_wrapper, so `/etc/pam.d` is never touched), and the built `mfa`
//! binary is run as a command. Codes come from `oathtool`, QR codes are read by `zbarimg`,
//! time is set with libfaketime, and users are real accounts made with `useradd` — no
//! test shares code or hooks with the product, so a bug in the product cannot be
//! mirrored by the same bug in the tests.
//!
//! Requirements: run as root (the tests create accounts and root-owned stores), after
//! `cargo build --workspace`, on a machine with the Debian packages `oathtool`,
//! `libpam-wrapper`, `faketime` (libfaketime), `zbar-tools` with
//! `libmagickcore-6.q16-6-extra` (SVG reading), `libpam0g-dev` (pam-client links libpam),
//! `libpam-modules` and `passwd` (and `openssl`, which makes encrypted PSKC files for
//! `hardware_tokens.rs`); the real-login tests (`real_logins.rs`) also need
//! `openssh-server`, `openssh-client`, `sudo`, `util-linux`, `mount` and `libpam-runtime`
//! (`pam-auth-update`), and a kernel with overlayfs. A missing piece makes the first test
//! that needs it panic with the package to install.
//!
//! Every test builds its own world ([`TestEnv`], [`TestUser`]), so tests run in parallel
//! threads; the one shared resource, pam_wrapper's directories in `/tmp`, is guarded
//! inside the harness (see [`env::PamRun`]).
//!
//! Typical use:
//! ```no_run
//! use pam_mfa_tests::{TestEnv, TestUser};
//!
//! let env = TestEnv::new();
//! let user = TestUser::new();
//! env.write_service(&[]);
//! let dev = env.enroll(user.name(), "phone");
//! env.advance_steps(1);
//! env.login(user.name(), &env.code(&dev.secret)).assert_success();
//! ```

pub mod accounts;
pub mod at_login;
pub mod backend;
pub mod clock;
pub mod env;
pub mod fleet;
pub mod guide;
pub mod keys;
pub mod mfa_run;
pub mod mfad;
pub mod namespace;
pub mod pam_code;
pub mod pam_run;
pub mod paths;
pub mod postgres;
pub mod process;
pub mod pty;
pub mod qr;
pub mod random;
pub mod realtime;
pub mod recovery;
pub mod sshd;
pub mod syslog;
pub mod tokens;
pub mod uri;
pub mod users;

pub use clock::{
    BASE_STEP, STEP, STEP_OFFSET, TotpParams, at_step, fake_time_env, step_of, totp, totp_with,
    unix_at, valid_codes, wrong_code, wrong_code_for_all,
};
pub use env::{
    Enrolled, IGNORED, MfaOutput, MfaRun, PamMessage, PamOutcome, PamRun, SERVICE, TestEnv,
    observing_ignore, race,
};
pub use paths::{
    artifact_dir, faketime_lib, mfa_bin, mfad_bin, mfad_client_bin, mode_of, pam_client_bin,
    pam_module, pam_wrapper_lib, pam_wrapper_module, require_root, system_pam_module, tool,
};
pub use process::{Finished, Running};
pub use qr::{decode_qr_image, decode_terminal_qr, terminal_qr_grid, wait_for_terminal_qr};
pub use uri::{OtpauthUri, percent_decode};
pub use users::{TestUser, user_exists};

// Real logins (sshd, sudo, su) in a private mount namespace: see `namespace`.
pub use accounts::{as_user, give_password, give_shell};
pub use guide::{snippet, snippet_names, unmarked_blocks, workspace_root};
pub use namespace::{Namespace, replace_line};
pub use pam_code::PamCode;
pub use pty::{PtyFinished, PtySession};
pub use realtime::{enroll_now, next_code, real_now, wrong_code_now, wrong_code_now_for_all};
pub use sshd::{SshKey, SshOutcome, Sshd, keygen};
pub use syslog::{SyslogListener, SyslogRecord, assert_code_not_logged, module_lines};
