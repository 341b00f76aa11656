//! `fake-mfad SOCKET`: a stand-in for `mfad` that approves everything, for the tests that
//! show a client never asks anything but root's daemon. It answers a greeting like mfad,
//! every `BeforePrompt` with an account that has a code device (the decision made by the
//! library, as mfad makes it), and every code with "accepted": run as root, it lets any
//! code in, which is what makes the refusal of the same program run as a user mean
//! something. Each request it reads is printed as `request: NAME`, so a test can see that
//! nothing reached it.

use std::io::Write;
use std::os::unix::net::UnixListener;

use pam_mfa_protocol::{
    AccountState, BeforePromptReply, ErrorKind, ErrorReply, NoDeviceRule, PROTOCOL_VERSION,
    Request, Response, VerifyOutcome,
};

fn main() {
    let Some(socket) = std::env::args_os().nth(1) else {
        eprintln!("usage: fake-mfad SOCKET");
        std::process::exit(2);
    };
    let listener = match UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-mfad: cannot bind: {e}");
            std::process::exit(1);
        }
    };
    println!("listening");
    let _ = std::io::stdout().flush();
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        while let Ok(request) = pam_mfa_protocol::read_request(&mut conn) {
            println!("request: {}", request.name());
            let _ = std::io::stdout().flush();
            let response = match request {
                Request::Hello => Response::Hello {
                    protocol: PROTOCOL_VERSION,
                    daemon: "fake".into(),
                    store: "/nonexistent/devices.db".into(),
                },
                Request::BeforePrompt { line, .. } => {
                    let mut reply = BeforePromptReply {
                        state: AccountState::Ready,
                        has_code_device: true,
                        keys: 0,
                        no_device: NoDeviceRule::Deny,
                        store_exists: true,
                        remembered_until: None,
                        decision: None,
                    };
                    reply.decision = line.map(|l| pam_mfa::decision::decide(&l, &reply));
                    Response::BeforePrompt(reply)
                }
                Request::VerifyCode { .. } => Response::Verified(VerifyOutcome::Accepted {
                    device: "fake".into(),
                }),
                _ => Response::Error(ErrorReply::new(ErrorKind::Invalid, "not served here")),
            };
            if pam_mfa_protocol::write_response(&mut conn, &response).is_err() {
                break;
            }
        }
    }
}
