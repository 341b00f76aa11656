//! The PAM module as a client of `mfad` (issue 17): the built `libpam_mfa_module.so` in a
//! service file with `socket=`, driven by `pam-client` under pam_wrapper, against a real
//! `mfad` serving the test's store on a socket in the test's directory.
//!
//! The daemon runs under libfaketime with its clock frozen at the test's fake time, read
//! from a file before every call (`FAKETIME_TIMESTAMP_FILE`, `FAKETIME_NO_CACHE`), so
//! codes from `oathtool` at [`TestEnv::now`] are the codes of the step the daemon sees.
//! Devices are registered with `mfa --db` (root, on the store file directly).

use pam_mfa_tests::PamCode;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pam_mfa_tests::at_login::register_at_login;
use pam_mfa_tests::env::{IGNORED, observing_ignore};
use pam_mfa_tests::{Enrolled, Running, TestEnv, TestUser, paths, wrong_code};

const DEFAULT_PROMPT: &str = "Verification code: ";
const ERR: u8 = 3;
const NOTICE: u8 = 5;

/// A running `mfad` on the test's store (ended when dropped).
struct Daemon {
    run: Option<Running>,
    socket: PathBuf,
    clock: PathBuf,
}

impl Daemon {
    fn start(env: &TestEnv) -> Self {
        let socket = env.path("mfad.sock");
        let clock = env.path("mfad.clock");
        let mut d = Self {
            run: None,
            socket,
            clock,
        };
        d.sync(env);
        let mut cmd = Command::new(paths::mfad_bin());
        cmd.arg("--db")
            .arg(env.db())
            .arg("--socket")
            .arg(&d.socket)
            .env("LD_PRELOAD", paths::faketime_lib())
            .env("FAKETIME_TIMESTAMP_FILE", &d.clock)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_FMT", "%s")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("NO_FAKE_STAT", "1")
            .env_remove("FAKETIME");
        let mut run = Running::spawn(cmd, "mfad");
        let ready = run.wait_for("mfad to serve", |_, err| err.contains("serving"));
        assert!(
            ready,
            "mfad did not start:\nstdout:\n{}\nstderr:\n{}",
            run.stdout(),
            run.stderr()
        );
        d.run = Some(run);
        d
    }

    /// Sets the daemon's clock to the test's.
    fn sync(&self, env: &TestEnv) {
        std::fs::write(&self.clock, format!("{}\n", env.now())).expect("write the clock file");
    }

    fn spec(&self, args: &[&str]) -> String {
        module_spec(&self.socket, args)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            let _ = run.kill();
        }
    }
}

/// `<abs path of libpam_mfa_module.so> socket=SOCKET ARGS…`.
fn module_spec(socket: &Path, args: &[&str]) -> String {
    let mut spec = format!(
        "{} socket={}",
        paths::pam_module().display(),
        socket.display()
    );
    for a in args {
        spec.push(' ');
        spec.push_str(a);
    }
    spec
}

fn service(env: &TestEnv, spec: &str) {
    env.write_service_lines(&[format!("auth required {spec}")]);
}

/// A store with one active device "phone" for a new user, the clock one step past its
/// registration, and a daemon serving it.
fn enrolled(args: &[&str]) -> (TestEnv, TestUser, Enrolled, Daemon) {
    let env = TestEnv::new();
    let user = TestUser::new();
    let dev = env.enroll(user.name(), "phone");
    env.advance_steps(1);
    let daemon = Daemon::start(&env);
    service(&env, &daemon.spec(args));
    (env, user, dev, daemon)
}

fn priority_of(out: &pam_mfa_tests::PamOutcome, needle: &str) -> u8 {
    out.syslog()
        .into_iter()
        .find(|(_, m)| m.contains(needle))
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("no syslog line with {needle:?}: {:#?}", out.syslog()))
}

#[test]
fn a_right_code_succeeds_a_replayed_or_wrong_one_is_refused() {
    let (env, user, dev, daemon) = enrolled(&[]);
    daemon.sync(&env);
    let code = env.code(&dev.secret);
    let out = env.login(user.name(), &code);
    out.assert_success().assert_prompted(DEFAULT_PROMPT, false);
    out.assert_logged(&[
        "authenticated with device \"phone\"",
        &format!("user={}", user.name()),
    ]);
    out.assert_module_silent();
    assert_eq!(out.threads_after_end(), Some(1), "{}", out.stderr);

    let out = env.login(user.name(), &code);
    out.assert_result(PamCode::AuthErr);
    out.assert_logged(&["replayed code of device \"phone\"", user.name()]);

    let wrong = wrong_code(&dev.secret, env.now(), 3);
    let out = env.login(user.name(), &wrong);
    out.assert_result(PamCode::AuthErr);
    let line = out.assert_logged(&["authentication failure: wrong code", user.name()]);
    assert_eq!(priority_of(&out, &line), NOTICE);
    assert!(!out.stderr.contains(&wrong) && !out.stdout.contains(&wrong));

    let out = env.login(user.name(), "12ab56");
    out.assert_result(PamCode::AuthErr);
    out.assert_logged(&["malformed code: it has letters", user.name()]);
    out.assert_module_silent();
}

#[test]
fn the_line_s_lockout_numbers_reach_the_daemon() {
    let (env, user, dev, daemon) = enrolled(&["max_failures=2"]);
    daemon.sync(&env);
    let wrong = wrong_code(&dev.secret, env.now(), 3);
    env.login(user.name(), &wrong)
        .assert_result(PamCode::AuthErr);
    let out = env.login(user.name(), &wrong);
    out.assert_result(PamCode::AuthErr);
    out.assert_logged(&["locked out until", user.name()]);
    let out = env.login(user.name(), &env.code(&dev.secret));
    out.assert_locked_out();
    assert!(
        out.infos()
            .iter()
            .any(|t| t.starts_with("Too many failed attempts: verification codes are locked")),
        "{}",
        out.transcript()
    );
    out.assert_logged(&["refused: locked out until", user.name()]);
}

#[test]
fn unknown_accounts_are_prompted_and_refused() {
    let (env, _user, _dev, daemon) = enrolled(&[]);
    daemon.sync(&env);
    let out = env.login("nosuchuser-pam-mfa-x", "123456");
    out.assert_result(PamCode::AuthErr)
        .assert_prompted(DEFAULT_PROMPT, false);
    out.assert_logged(&["no such account", "user=nosuchuser-pam-mfa-x"]);
}

#[test]
fn nullok_lets_a_user_without_a_device_through() {
    let (env, _user, _dev, daemon) = enrolled(&[]);
    let other = TestUser::new();
    env.write_service_lines(&observing_ignore(&daemon.spec(&["nullok"])));
    let out = env.pam(other.name()).run();
    out.assert_result(IGNORED);
    out.assert_logged(&[
        "no active device; nullok lets the user through",
        other.name(),
    ]);
    // Without nullok (policy no_device=deny): prompted and refused.
    service(&env, &daemon.spec(&[]));
    let out = env.login(other.name(), "123456");
    out.assert_result(PamCode::AuthErr)
        .assert_prompted(DEFAULT_PROMPT, false);
}

#[test]
fn no_daemon_is_authinfo_unavail_and_logged() {
    let env = TestEnv::new();
    let user = TestUser::new();
    service(&env, &module_spec(&env.path("absent.sock"), &[]));
    let out = env.login(user.name(), "123456");
    out.assert_result(PamCode::AuthinfoUnavail);
    let line = out.assert_logged(&["cannot connect to mfad", "absent.sock", user.name()]);
    assert_eq!(priority_of(&out, &line), ERR);
    assert!(out.prompts().is_empty(), "{}", out.transcript());
    out.assert_module_silent();
}

#[test]
fn a_daemon_that_does_not_answer_is_authinfo_unavail_within_the_timeout() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let socket = env.path("silent.sock");
    // Accepts connections (the kernel does, into the backlog) and never answers.
    let _listener = UnixListener::bind(&socket).expect("bind");
    service(&env, &module_spec(&socket, &["timeout=1"]));
    let started = Instant::now();
    let out = env.login(user.name(), "123456");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    out.assert_result(PamCode::AuthinfoUnavail);
    out.assert_logged(&["did not answer before-prompt", user.name()]);
}

#[test]
fn db_is_obsolete_only_the_default_path_is_accepted() {
    let (env, user, dev, daemon) = enrolled(&["db=/var/lib/pam_mfa/devices.db"]);
    daemon.sync(&env);
    let out = env.login(user.name(), &env.code(&dev.secret));
    out.assert_success();
    let line = out.assert_logged(&["db=/var/lib/pam_mfa/devices.db is obsolete"]);
    assert_eq!(priority_of(&out, &line), NOTICE);

    let other = env.path("store/other.db");
    let arg = format!("db={}", other.display());
    service(&env, &daemon.spec(&[&arg]));
    let out = env.login(user.name(), &env.code(&dev.secret));
    out.assert_result(PamCode::ServiceErr);
    let line = out.assert_logged(&["is no longer supported", "socket=PATH"]);
    assert_eq!(priority_of(&out, &line), ERR);
    assert!(out.prompts().is_empty(), "{}", out.transcript());
}

#[test]
fn unknown_and_malformed_arguments_are_refused() {
    let env = TestEnv::new();
    let user = TestUser::new();
    for (args, needle) in [
        (&["nulok"][..], "unknown module argument \"nulok\""),
        (&["timeout=0"][..], "module argument timeout"),
    ] {
        service(&env, &module_spec(&env.path("mfad.sock"), args));
        let out = env.login(user.name(), "123456");
        out.assert_result(PamCode::ServiceErr);
        out.assert_logged(&[needle]);
    }
    env.write_service_lines(&[format!(
        "auth required {} socket=relative.sock",
        paths::pam_module().display()
    )]);
    env.login(user.name(), "123456")
        .assert_result(PamCode::ServiceErr);
}

/// The module links neither SQLite nor the FIDO2/USB stack (issue 17): no symbol or
/// string of them is in the file, and it needs no library of theirs.
#[test]
fn the_module_links_no_sqlite_and_no_fido2_stack() {
    let module = paths::pam_module();
    let bytes = std::fs::read(&module).expect("read the module");
    for needle in [
        &b"sqlite3_"[..],
        b"rusqlite",
        b"ctap",
        b"hidapi",
        b"pam_mfa_fido2",
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} contains {:?}",
            module.display(),
            String::from_utf8_lossy(needle)
        );
    }
    let ldd = Command::new("ldd").arg(&module).output().expect("run ldd");
    let needed = String::from_utf8_lossy(&ldd.stdout);
    for lib in ["sqlite", "hidapi", "udev", "usb"] {
        assert!(
            !needed.contains(lib),
            "{} needs {lib}:\n{needed}",
            module.display()
        );
    }
    assert!(needed.contains("libpam"), "{needed}");
    // GCC's unwinder is linked in (pam_mfa/module/build.rs): sshd, sudo, su and login do
    // not have libgcc_s loaded, and loading it with the module at every login doubled
    // the module's load time.
    assert!(
        !needed.contains("libgcc_s"),
        "{} needs libgcc_s:\n{needed}",
        module.display()
    );
}

#[test]
fn recovery_and_bypass_codes_go_to_the_daemon_as_such() {
    let (env, user, _dev, daemon) = enrolled(&[]);
    let out = env.mfa(&["--user", user.name(), "recovery", "generate"]);
    out.assert_success();
    let codes = pam_mfa_tests::recovery::codes_in(&out.stdout);
    assert_eq!(codes.len(), 10, "{}", out.stdout);
    daemon.sync(&env);
    let out = env.login(user.name(), &codes[0].to_uppercase());
    out.assert_success();
    assert!(
        out.infos()
            .iter()
            .any(|t| t.starts_with("Recovery code accepted. You have 9 recovery codes left")),
        "{}",
        out.transcript()
    );
    out.assert_logged(&["authenticated with a recovery code; 9 left", user.name()]);
    assert!(!out.stderr.contains(&codes[0]) && !out.stdout.contains(&codes[0]));
    // Used up.
    let out = env.login(user.name(), &codes[0]);
    out.assert_result(PamCode::AuthErr);
    out.assert_logged(&["not a valid recovery or bypass code", user.name()]);

    let out = env.mfa(&["admin", "bypass", user.name()]);
    out.assert_success();
    let bypass = pam_mfa_tests::recovery::codes_in(&out.stdout);
    assert_eq!(bypass.len(), 1, "{}", out.stdout);
    let out = env.login(user.name(), &bypass[0]);
    out.assert_success();
    assert!(
        out.infos()
            .iter()
            .any(|t| t.starts_with("Temporary code accepted (0 uses left)")),
        "{}",
        out.transcript()
    );
    out.assert_logged(&["authenticated with a bypass code; 0 left", user.name()]);
}

#[test]
fn a_user_name_the_daemon_refuses_is_user_unknown_without_a_prompt() {
    let (env, _user, _dev, daemon) = enrolled(&["nullok"]);
    daemon.sync(&env);
    let out = env.pam("evil\u{1b}[2Juser").answer("123456").run();
    out.assert_result(PamCode::UserUnknown)
        .assert_not_prompted();
    out.assert_logged(&["refusing invalid user name", "user=evil\\x1b[2Juser"]);
    out.assert_module_silent();
    // Too long for the module to ask about at all.
    let long = "a".repeat(300);
    let out = env.pam(&long).answer("123456").run();
    out.assert_result(PamCode::UserUnknown)
        .assert_not_prompted();
}

/// Registration at login through the daemon (`BeginHeld`, `ConfirmHeld`, then
/// `ActivateHeld` from `pam_sm_setcred`).
#[test]
fn registration_at_login_is_held_by_the_daemon_and_activated_at_setcred() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.mfa(&["admin", "policy", "set", "no_device", "enroll"])
        .assert_success();
    let daemon = Daemon::start(&env);
    service(&env, &daemon.spec(&["enroll_at_login"]));
    daemon.sync(&env);
    let (out, secret) = register_at_login(env.pam(user.name()).answer("phone"), |s| {
        (env.code_at_step(s, -1), env.code(s))
    });
    out.assert_success();
    assert_eq!(
        out.setcred.as_deref(),
        Some("PAM_SUCCESS"),
        "{}",
        out.transcript()
    );
    assert!(
        out.infos()
            .iter()
            .any(|t| t.contains("Device \"phone\" is registered.")),
        "{}",
        out.transcript()
    );
    out.assert_logged(&["registered device \"phone\" at login", user.name()]);
    // The device works at the next step.
    env.advance_steps(1);
    daemon.sync(&env);
    service(&env, &daemon.spec(&[]));
    env.login(user.name(), &env.code(&secret)).assert_success();
}

// ----- security keys, against a stand-in for the daemon's half -----

/// Serves the key login's requests the way the daemon will (a fixed challenge, the
/// credentials from the store, the answer checked with the relying party's own
/// `check_answer`), until the test ends. `check_with`: the challenge the answer is
/// checked against (another than the one issued: an answer to the wrong challenge).
fn stand_in_daemon(
    socket: &Path,
    credentials: Vec<pam_mfa::fido2::ceremony::Credential>,
    check_with: [u8; 32],
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use pam_mfa_protocol::{
        AccountState, BeforePromptReply, KeyChallengeReply, KeyCredential, NoDeviceRule,
        PublicBytes, RefusalKind, Request, Response, SecretBytes, VerifyOutcome,
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = UnixListener::bind(socket).expect("bind");
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            while let Ok(request) = pam_mfa_protocol::read_request(&mut conn) {
                log.lock().unwrap().push(request.name().to_owned());
                let response = match request {
                    // Without keys: an account with no device, under no_device=enroll.
                    // The decision is the library's, as mfad makes it.
                    Request::BeforePrompt { line, .. } => {
                        let mut reply = BeforePromptReply {
                            decision: None,
                            remembered_until: None,
                            state: if credentials.is_empty() {
                                AccountState::NoDevice
                            } else {
                                AccountState::Ready
                            },
                            has_code_device: false,
                            keys: u32::try_from(credentials.len()).unwrap(),
                            no_device: if credentials.is_empty() {
                                NoDeviceRule::Enroll
                            } else {
                                NoDeviceRule::Deny
                            },
                            store_exists: true,
                        };
                        reply.decision = line.map(|l| pam_mfa::decision::decide(&l, &reply));
                        Response::BeforePrompt(reply)
                    }
                    Request::KeyChallenge { .. } => Response::KeyChallenge(KeyChallengeReply {
                        ticket: SecretBytes::from_slice(b"ticket"),
                        challenge: PublicBytes(vec![7; 32]),
                        credentials: credentials
                            .iter()
                            .map(|c| KeyCredential {
                                name: c.name.clone(),
                                credential_id: PublicBytes(c.credential_id.clone()),
                                rp_id: c.rp_id.clone(),
                                uv_required: c.uv_required,
                            })
                            .collect(),
                        expires_at: i64::MAX,
                    }),
                    Request::KeyAnswer {
                        ticket, assertion, ..
                    } => {
                        assert_eq!(ticket.as_bytes(), b"ticket");
                        let allow: Vec<Vec<u8>> = credentials
                            .iter()
                            .filter(|c| c.rp_id == assertion.rp_id)
                            .map(|c| c.credential_id.clone())
                            .collect();
                        let raw = pam_mfa::fido2::transport::RawAssertion {
                            credential_id: assertion.credential_id.map(|b| b.0),
                            auth_data: assertion.auth_data.0,
                            signature: assertion.signature.0,
                        };
                        let outcome = match pam_mfa::fido2::ceremony::check_answer(
                            &credentials,
                            &allow,
                            &raw,
                            &check_with,
                        ) {
                            Ok(v) => VerifyOutcome::Accepted {
                                device: credentials[v.index].name.clone(),
                            },
                            Err(f) => VerifyOutcome::Refused {
                                reason: RefusalKind::Key {
                                    message: "The security key's answer was not accepted."
                                        .to_owned(),
                                    log: pam_mfa::fido2::failure_log(&f),
                                    clone_suspected: false,
                                },
                                locked_until: None,
                            },
                        };
                        Response::Verified(outcome)
                    }
                    // Registration at login: the hold value must come back unchanged,
                    // from authenticate (the codes) and from setcred (the activation).
                    Request::BeginHeld { user, name, .. } => {
                        Response::HeldTotp(pam_mfa_protocol::HeldTotpReply {
                            pending: pam_mfa_protocol::PendingTotpReply {
                                user,
                                name,
                                issuer: "host".into(),
                                secret: SecretBytes::from_slice(b"JBSWY3DPEHPK3PXP"),
                                uri: SecretBytes::from_slice(
                                    b"otpauth://totp/host:u?secret=JBSWY3DPEHPK3PXP",
                                ),
                                algorithm: "SHA1".into(),
                                digits: 6,
                                period: 30,
                                expires_at: i64::MAX,
                            },
                            hold: SecretBytes::from_slice(&[9; 32]),
                            qr: SecretBytes::from_slice("█▀▀█\n".as_bytes()),
                            secret_grouped: SecretBytes::from_slice(b"JBSW Y3DP EHPK 3PXP"),
                        })
                    }
                    Request::ConfirmHeld {
                        hold, code1, code2, ..
                    } if hold.as_bytes() == [9; 32]
                        && code1.as_bytes() == b"111111"
                        && code2.as_bytes() == b"222222" =>
                    {
                        Response::Done
                    }
                    Request::ConfirmHeld { .. } => {
                        Response::Error(pam_mfa_protocol::ErrorReply::new(
                            pam_mfa_protocol::ErrorKind::Invalid,
                            "those are not two consecutive codes of the app",
                        ))
                    }
                    Request::ActivateHeld { hold, .. } if hold.as_bytes() == [9; 32] => {
                        Response::Activated {
                            name: "phone".into(),
                        }
                    }
                    _ => Response::Error(pam_mfa_protocol::ErrorReply::new(
                        pam_mfa_protocol::ErrorKind::UnknownRequest,
                        "not in this test",
                    )),
                };
                if pam_mfa_protocol::write_response(&mut conn, &response).is_err() {
                    break;
                }
            }
        }
    });
    seen
}

/// A user with a software key "yubi" registered in the test's store, and its stored
/// credentials.
fn with_soft_key(env: &TestEnv) -> (TestUser, PathBuf, Vec<pam_mfa::fido2::ceremony::Credential>) {
    let user = TestUser::new();
    let key = env.path("key-a.json");
    env.mfa_cmd(&["--user", user.name(), "enroll", "fido2", "yubi"])
        .env("PAM_MFA_SOFT_FIDO2", &key)
        .run()
        .assert_success();
    let store = pam_mfa::store::Store::open_existing(env.db())
        .unwrap()
        .expect("the store");
    let credentials = pam_mfa::store::devices::active_fido2(store.conn(), user.name())
        .unwrap()
        .into_iter()
        .map(|d| d.credential)
        .collect();
    (user, key, credentials)
}

/// The key login over the keys library's interface 2: the daemon's challenge goes to the
/// key, the key's raw answer comes back to the daemon, which decides.
#[test]
fn a_key_signs_the_daemons_challenge_and_the_daemon_decides() {
    let env = TestEnv::new();
    let (user, key, credentials) = with_soft_key(&env);
    let socket = env.path("stand-in.sock");
    let seen = stand_in_daemon(&socket, credentials, [7; 32]);
    service(&env, &module_spec(&socket, &["fido2=require"]));
    let out = env
        .pam(user.name())
        .env("PAM_MFA_SOFT_FIDO2", &key)
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT")
        .run();
    out.assert_success().assert_not_prompted();
    assert_eq!(
        out.infos(),
        ["Touch your security key."],
        "{}",
        out.transcript()
    );
    out.assert_logged(&["authenticated with device \"yubi\"", user.name()]);
    out.assert_module_silent();
    assert_eq!(
        *seen.lock().unwrap(),
        ["before-prompt", "key-challenge", "key-answer"]
    );
}

#[test]
fn an_answer_that_does_not_verify_is_refused_with_the_daemons_words() {
    let env = TestEnv::new();
    let (user, key, credentials) = with_soft_key(&env);
    let socket = env.path("stand-in.sock");
    let _seen = stand_in_daemon(&socket, credentials, [8; 32]);
    service(&env, &module_spec(&socket, &["fido2=require"]));
    let out = env
        .pam(user.name())
        .env("PAM_MFA_SOFT_FIDO2", &key)
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT")
        .run();
    out.assert_result(PamCode::AuthErr);
    assert_eq!(
        out.errors(),
        ["The security key's answer was not accepted."],
        "{}",
        out.transcript()
    );
    out.assert_logged(&["security key \"yubi\" refused", user.name()]);
}

#[test]
fn no_key_plugged_in_is_told_and_counts_nothing_at_the_daemon() {
    let env = TestEnv::new();
    let (user, key, credentials) = with_soft_key(&env);
    let socket = env.path("stand-in.sock");
    let seen = stand_in_daemon(&socket, credentials, [7; 32]);
    service(&env, &module_spec(&socket, &["fido2=require"]));
    // The software key's knob for "not plugged in".
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    state["knobs"]["absent"] = serde_json::json!(true);
    std::fs::write(&key, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = env
        .pam(user.name())
        .env("PAM_MFA_SOFT_FIDO2", &key)
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT")
        .run();
    out.assert_result(PamCode::AuthErr);
    assert_eq!(
        out.errors(),
        ["No security key found. Plug in your security key and try again."],
        "{}",
        out.transcript()
    );
    out.assert_logged(&["no security key plugged in", user.name()]);
    assert_eq!(*seen.lock().unwrap(), ["before-prompt", "key-challenge"]);
}

/// The value of a registration at login travels from authenticate to setcred (the
/// daemon's `hold`, through pam_set_data and the PAM environment) and no further.
#[test]
fn a_registration_at_login_is_confirmed_then_activated_by_setcred() {
    let env = TestEnv::new();
    let user = TestUser::new();
    let socket = env.path("stand-in.sock");
    let seen = stand_in_daemon(&socket, Vec::new(), [7; 32]);
    service(&env, &module_spec(&socket, &["enroll_at_login"]));
    let out = env
        .pam(user.name())
        .answer("phone")
        .answer("secret")
        .answer("111111")
        .answer("222222")
        .run();
    out.assert_success();
    assert_eq!(
        out.setcred.as_deref(),
        Some("PAM_SUCCESS"),
        "{}",
        out.transcript()
    );
    let infos = out.infos().join("\n");
    assert!(infos.contains("Scan this QR code"), "{}", out.transcript());
    assert!(infos.contains("Secret key: JBSW Y3DP EHPK 3PXP"), "{infos}");
    assert!(infos.contains("Device \"phone\" is registered."), "{infos}");
    out.assert_logged(&["registered device \"phone\" at login", user.name()]);
    assert!(
        !out.stdout.contains("PAM_MFA_ENROLL_HOLD"),
        "{}",
        out.stdout
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "before-prompt",
            "begin-held",
            "confirm-held",
            "activate-held"
        ]
    );

    // Wrong codes: the daemon refuses, the login fails, nothing is activated.
    seen.lock().unwrap().clear();
    let out = env
        .pam(user.name())
        .answer("phone")
        .answer("")
        .answer("111111")
        .answer("333333")
        .run();
    out.assert_result(PamCode::AuthErr);
    out.assert_logged(&[
        "registration at login failed: those are not two consecutive codes",
        user.name(),
    ]);
    assert_eq!(
        *seen.lock().unwrap(),
        ["before-prompt", "begin-held", "confirm-held"]
    );
}

// ----- only root's daemon is asked -----

/// `fake-mfad` (it approves every code) at `socket`, as root or, with `as_user`, as that
/// user; ready when it listens.
fn fake_daemon(socket: &Path, as_user: Option<&TestUser>) -> Running {
    let mut cmd = match as_user {
        None => Command::new(paths::fake_mfad_bin()),
        Some(user) => {
            let prefix = pam_mfa_tests::accounts::as_user(user);
            let mut cmd = Command::new(&prefix[0]);
            cmd.args(&prefix[1..]).arg(paths::fake_mfad_bin());
            cmd
        }
    };
    cmd.arg(socket);
    let mut run = Running::spawn(cmd, "fake-mfad");
    assert!(
        run.wait_for("fake-mfad to listen", |out, _| out.contains("listening")),
        "fake-mfad did not start: {}",
        run.stderr()
    );
    run
}

/// A `socket=` where a user's own program listens (a mistyped path, a directory users
/// can write) must not let that program decide: the module checks that root made the
/// socket before it sends the user's name, and refuses. The same program run as root
/// lets a wrong code in, so the refusal is the check's doing. `mfa` refuses it too.
#[test]
fn a_daemon_that_is_not_roots_is_never_asked() {
    let env = TestEnv::new();
    let victim = TestUser::new();
    let squatter = TestUser::new();
    // A directory the squatter owns, reachable by everyone.
    let top = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let theirs = top.path().join("theirs");
    std::fs::create_dir(&theirs).expect("mkdir");
    std::os::unix::fs::chown(&theirs, Some(squatter.uid()), None).expect("chown");

    // Control: root's fake daemon answers "accepted" to a wrong code.
    let roots = top.path().join("root.sock");
    let root_fake = fake_daemon(&roots, None);
    service(&env, &module_spec(&roots, &[]));
    env.login(victim.name(), "123456").assert_success();
    assert!(root_fake.stdout().contains("request: verify-code"));

    // The squatter's: refused before anything is sent.
    let socket = theirs.join("mfad.sock");
    let fake = fake_daemon(&socket, Some(&squatter));
    service(&env, &module_spec(&socket, &[]));
    let out = env.login(victim.name(), "123456");
    out.assert_result(PamCode::AuthinfoUnavail);
    let line = out.assert_logged(&["mfad.sock", &format!("uid {}, not root's", squatter.uid())]);
    assert_eq!(priority_of(&out, &line), ERR);
    assert!(out.prompts().is_empty(), "{}", out.transcript());
    assert!(
        !fake.stdout().contains("request:"),
        "the module asked a user's program: {}",
        fake.stdout()
    );

    // mfa, as root, sends it nothing either.
    let listed = env
        .mfa_cmd(&["--user", victim.name(), "list"])
        .socket_path(&socket)
        .run();
    listed.assert_error(&["refusing", "not root's"]);
    assert!(!fake.stdout().contains("request:"), "{}", fake.stdout());
}
