//! `mfad-client`: a hand-written client of `mfad`'s socket, run by the tests as a
//! non-root user (the daemon decides from the peer's uid, so the request must come from a
//! process of that user).
//!
//! ```text
//! mfad-client SOCKET list USER            ListDevices
//! mfad-client SOCKET verify USER CODE     VerifyCode (with --loosen: overrides asking for
//!                                          max_failures=1000, lockout=1)
//! mfad-client SOCKET before-prompt-in USER SERVICE RHOST   BeforePrompt with a login context
//! mfad-client SOCKET verify-in USER CODE SERVICE RHOST     VerifyCode with a login context
//! mfad-client SOCKET reauth USER ANSWER    Reauth; prints `proof: HEX`
//! mfad-client SOCKET begin USER NAME [PROOF]   BeginTotp; prints `secret: BASE32`
//! mfad-client SOCKET finish USER NAME C1 C2    FinishTotp
//! mfad-client SOCKET rename USER NAME NEW [PROOF]
//! mfad-client SOCKET remove USER NAME [PROOF]
//! mfad-client SOCKET recovery-generate USER [PROOF]   prints `ticket: HEX`, `code: C`
//! mfad-client SOCKET recovery-commit USER TICKET
//! mfad-client SOCKET enroll-token USER NAME SERIAL C1 C2 [PROOF]   EnrollToken
//! mfad-client SOCKET policy-show | admin-list | audit-prune     (root's requests)
//! mfad-client SOCKET policy-set KEY VALUE
//! mfad-client SOCKET audit [USER]
//! mfad-client SOCKET bypass USER USES EXPIRES    prints `code: C`
//! mfad-client SOCKET unlock USER
//! mfad-client SOCKET admin-remove USER NAME
//! mfad-client SOCKET begin-held USER NAME        BeginHeld (root's request)
//! mfad-client SOCKET tokens-list                 TokensList (root's request)
//! mfad-client SOCKET big N                       TokensImport of N bytes (a large frame)
//! mfad-client - key-make RPID CHALLENGE USERID USERNAME   the software key (named by
//!                                          PAM_MFA_SOFT_FIDO2) registers a credential;
//!                                          prints `fmt:`, `auth_data:`, `alg:`, `sig:`,
//!                                          `x5c:` (hex)
//! mfad-client - key-sign RPID CHALLENGE [CREDID…]   the software key signs the challenge;
//!                                          prints `credential_id:`, `auth_data:`,
//!                                          `signature:` (hex)
//! mfad-client SOCKET flood N              N connections kept idle, then topped up until
//!                                          stdin closes
//! mfad-client SOCKET slow                 a request sent one byte a second, until the
//!                                          daemon closes the connection or stdin closes
//! ```
//! Answers are printed as `response: {:?}` (codes are redacted by the protocol's Debug).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pam_mfa_protocol::{Overrides, Request, Response, SecretBytes};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match argv.as_slice() {
        [socket, "list", user] => ask(
            socket,
            &Request::ListDevices {
                user: (*user).to_owned(),
            },
        ),
        [socket, "verify", user, code, rest @ ..] => {
            let overrides = if rest == ["--loosen"] {
                Overrides {
                    max_failures: Some(1000),
                    lockout_secs: Some(1),
                    ..Overrides::default()
                }
            } else {
                Overrides::default()
            };
            ask(
                socket,
                &Request::VerifyCode {
                    user: (*user).to_owned(),
                    answer: SecretBytes::from_slice(code.as_bytes()),
                    overrides,
                    context: None,
                },
            )
        }
        // A login's context as the module sends it (only root's counts).
        [socket, "before-prompt-in", user, service, rhost] => ask(
            socket,
            &Request::BeforePrompt {
                line: None,
                user: (*user).to_owned(),
                want_keys: false,
                context: Some(context(service, rhost)),
            },
        ),
        [socket, "verify-in", user, code, service, rhost] => ask(
            socket,
            &Request::VerifyCode {
                user: (*user).to_owned(),
                answer: SecretBytes::from_slice(code.as_bytes()),
                overrides: Overrides::default(),
                context: Some(context(service, rhost)),
            },
        ),
        [socket, "reauth", user, answer] => ask(
            socket,
            &Request::Reauth {
                user: (*user).to_owned(),
                answer: SecretBytes::from_slice(answer.as_bytes()),
            },
        ),
        [socket, "begin", user, name, proof @ ..] => ask(
            socket,
            &Request::BeginTotp {
                user: (*user).to_owned(),
                name: (*name).to_owned(),
                issuer: None,
                proof: proof_arg(proof),
            },
        ),
        [socket, "finish", user, name, c1, c2] => ask(
            socket,
            &Request::FinishTotp {
                user: (*user).to_owned(),
                name: (*name).to_owned(),
                code1: SecretBytes::from_slice(c1.as_bytes()),
                code2: SecretBytes::from_slice(c2.as_bytes()),
            },
        ),
        [socket, "rename", user, name, new_name, proof @ ..] => ask(
            socket,
            &Request::Rename {
                user: (*user).to_owned(),
                name: (*name).to_owned(),
                new_name: (*new_name).to_owned(),
                proof: proof_arg(proof),
            },
        ),
        [socket, "remove", user, name, proof @ ..] => ask(
            socket,
            &Request::Remove {
                user: (*user).to_owned(),
                name: (*name).to_owned(),
                proof: proof_arg(proof),
            },
        ),
        [socket, "recovery-generate", user, proof @ ..] => ask(
            socket,
            &Request::RecoveryGenerate {
                user: (*user).to_owned(),
                proof: proof_arg(proof),
            },
        ),
        [socket, "recovery-commit", user, ticket] => ask(
            socket,
            &Request::RecoveryCommit {
                user: (*user).to_owned(),
                ticket: SecretBytes::new(unhex(ticket)),
            },
        ),
        [
            socket,
            "enroll-token",
            user,
            name,
            serial,
            c1,
            c2,
            proof @ ..,
        ] => ask(
            socket,
            &Request::EnrollToken {
                user: (*user).to_owned(),
                name: (*name).to_owned(),
                serial: (*serial).to_owned(),
                code1: SecretBytes::from_slice(c1.as_bytes()),
                code2: SecretBytes::from_slice(c2.as_bytes()),
                proof: proof_arg(proof),
            },
        ),
        [socket, "policy-show"] => ask(socket, &Request::PolicyShow),
        [socket, "policy-set", key, value] => ask(
            socket,
            &Request::PolicySet {
                key: (*key).to_owned(),
                value: (*value).to_owned(),
            },
        ),
        [socket, "admin-list"] => ask(socket, &Request::AdminList),
        [socket, "audit", user @ ..] => ask(
            socket,
            &Request::Audit {
                user: user.first().map(|u| (*u).to_owned()),
                since: None,
            },
        ),
        [socket, "audit-prune"] => ask(socket, &Request::AuditPrune { older_than: None }),
        [socket, "bypass", user, uses, expires] => ask(
            socket,
            &Request::Bypass {
                user: (*user).to_owned(),
                uses: uses.parse().unwrap_or(1),
                expires_in: (*expires).to_owned(),
            },
        ),
        [socket, "unlock", user] => ask(
            socket,
            &Request::Unlock {
                user: (*user).to_owned(),
            },
        ),
        [socket, "admin-remove", user, name] => ask(
            socket,
            &Request::AdminRemove {
                user: (*user).to_owned(),
                name: (*name).to_owned(),
            },
        ),
        [socket, "begin-held", user, name] => ask(
            socket,
            &Request::BeginHeld {
                user: (*user).to_owned(),
                name: (*name).to_owned(),
                issuer: None,
            },
        ),
        [socket, "tokens-list"] => ask(socket, &Request::TokensList),
        [socket, "big", n] => ask(
            socket,
            &Request::TokensImport {
                data: SecretBytes::new(vec![b'#'; n.parse().unwrap_or(70_000)]),
                format: Some("csv".into()),
                key: None,
                replace: false,
            },
        ),
        [_, "key-make", rp_id, challenge, user_id, user_name] => {
            key_make(rp_id, challenge, user_id, user_name)
        }
        [_, "key-sign", rp_id, challenge, allow @ ..] => key_sign(rp_id, challenge, allow),
        [socket, "flood", n] => flood(Path::new(socket), n.parse().unwrap_or(5000)),
        [socket, "slow"] => slow(Path::new(socket)),
        _ => {
            eprintln!("usage: see the source of mfad-client");
            ExitCode::from(64)
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn proof_arg(rest: &[&str]) -> Option<SecretBytes> {
    rest.first().map(|p| SecretBytes::new(unhex(p)))
}

fn context(service: &str, rhost: &str) -> pam_mfa_protocol::LoginContext {
    pam_mfa_protocol::LoginContext {
        service: service.to_owned(),
        rhost: rhost.to_owned(),
        remember_secs: None,
    }
}

fn ask(socket: &str, request: &Request) -> ExitCode {
    match pam_mfa_tests::mfad::ask_at(Path::new(socket), request) {
        Ok(r) => {
            println!("response: {r:?}");
            // The secrets the protocol's Debug redacts, printed for the test to use.
            match &r {
                Response::Proof(p) => println!("proof: {}", hex(p.proof.as_bytes())),
                Response::PendingTotp(p) => {
                    println!("secret: {}", String::from_utf8_lossy(p.secret.as_bytes()))
                }
                Response::BypassCode(b) => {
                    println!("code: {}", String::from_utf8_lossy(b.code.as_bytes()))
                }
                Response::RecoveryCodes(c) => {
                    println!("ticket: {}", hex(c.ticket.as_bytes()));
                    for code in &c.codes {
                        println!("code: {}", String::from_utf8_lossy(code.as_bytes()));
                    }
                }
                _ => {}
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn arr32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bytes = unhex(s);
    let n = bytes.len().min(32);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

/// The software authenticator only: never a real USB key, whatever the environment.
fn soft_key() -> Option<Box<dyn pam_mfa::fido2::Transport>> {
    if std::env::var_os(pam_mfa::fido2::SOFT_STATE_VAR).is_none_or(|v| v.is_empty()) {
        println!("error: {} is not set", pam_mfa::fido2::SOFT_STATE_VAR);
        return None;
    }
    Some(pam_mfa::fido2::transport())
}

fn key_make(rp_id: &str, challenge: &str, user_id: &str, user_name: &str) -> ExitCode {
    let Some(key) = soft_key() else {
        return ExitCode::from(1);
    };
    let request = pam_mfa::fido2::transport::MakeCredentialRequest {
        rp_id,
        challenge: arr32(challenge),
        user_id: arr32(user_id),
        user_name,
        exclude: &[],
        pin: None,
        uv: false,
        timeout: Duration::from_secs(5),
    };
    match key.make_credential(&request) {
        Ok(a) => {
            println!("fmt: {}", a.fmt);
            println!("auth_data: {}", hex(&a.auth_data));
            if let Some(alg) = a.alg {
                println!("alg: {alg}");
            }
            println!("sig: {}", hex(&a.sig));
            for c in &a.x5c {
                println!("x5c: {}", hex(c));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn key_sign(rp_id: &str, challenge: &str, allow: &[&str]) -> ExitCode {
    let Some(key) = soft_key() else {
        return ExitCode::from(1);
    };
    let allow: Vec<Vec<u8>> = allow.iter().map(|a| unhex(a)).collect();
    let request = pam_mfa::fido2::transport::GetAssertionRequest {
        rp_id,
        challenge: arr32(challenge),
        allow: &allow,
        pin: None,
        uv: false,
        timeout: Duration::from_secs(5),
    };
    match key.get_assertion(&request) {
        Ok(a) => {
            if let Some(id) = &a.credential_id {
                println!("credential_id: {}", hex(id));
            }
            println!("auth_data: {}", hex(&a.auth_data));
            println!("signature: {}", hex(&a.signature));
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// A thread that sets the flag when stdin reaches end of file (the test is done).
fn stdin_closed() -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        flag.store(true, Ordering::SeqCst);
    });
    done
}

/// Drops the held connections the daemon has closed (or answered with its refusal);
/// returns how many.
fn sweep(held: &mut Vec<UnixStream>) -> usize {
    let before = held.len();
    held.retain(|s| {
        let mut b = [0u8; 1];
        s.set_nonblocking(true).is_ok()
            && matches!((&*s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    });
    before - held.len()
}

fn flood(socket: &Path, n: usize) -> ExitCode {
    let done = stdin_closed();
    let mut held: Vec<UnixStream> = Vec::new();
    let (mut attempts, mut refused, mut failed) = (0usize, 0usize, 0usize);
    let attempt = |held: &mut Vec<UnixStream>, attempts: &mut usize, failed: &mut usize| {
        *attempts += 1;
        match UnixStream::connect(socket) {
            Ok(s) => held.push(s),
            Err(_) => *failed += 1,
        }
    };
    for i in 0..n {
        attempt(&mut held, &mut attempts, &mut failed);
        if i % 64 == 63 {
            refused += sweep(&mut held);
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    refused += sweep(&mut held);
    println!(
        "flooded: attempts {attempts} held {} refused {refused} failed {failed}",
        held.len()
    );
    let _ = std::io::stdout().flush();
    // Keep the slots full: the daemon closes idle connections, so top them up.
    while !done.load(Ordering::SeqCst) {
        for _ in 0..16 {
            attempt(&mut held, &mut attempts, &mut failed);
        }
        std::thread::sleep(Duration::from_millis(200));
        refused += sweep(&mut held);
    }
    println!(
        "done: attempts {attempts} held {} refused {refused} failed {failed}",
        held.len()
    );
    ExitCode::SUCCESS
}

fn slow(socket: &Path) -> ExitCode {
    let done = stdin_closed();
    let frame = {
        let mut f = Vec::new();
        let body = pam_mfa_protocol::encode_request(&Request::Hello).unwrap_or_default();
        f.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes());
        f.extend_from_slice(&body);
        f
    };
    let mut connections = 0;
    while !done.load(Ordering::SeqCst) {
        let Ok(mut s) = UnixStream::connect(socket) else {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        connections += 1;
        let mut sent = 0;
        for b in &frame {
            if done.load(Ordering::SeqCst) || s.write_all(&[*b]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        println!("slow: connection {connections} ended after {sent} bytes");
    }
    ExitCode::SUCCESS
}
