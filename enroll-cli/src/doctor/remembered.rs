//! The remembered-logins check: where the policy lets a login be remembered
//! for sshd, a public key must come first. The exemption is keyed on the remote address,
//! and everyone behind one NAT address (an office, a mobile carrier) shares an address:
//! without `AuthenticationMethods publickey,…` any of them with the user's password
//! would log in without a code.

use std::path::Path;

use pam_mfa::policy;
use pam_mfa::store::health::{self, Inspection};

use super::pam::MfaLine;
use super::pam_syntax::Type;
use super::{Finding, Root, sshd};

const CHECK: &str = "remembered logins";

pub fn check(root: &Root, store: &Path, lines: &[MfaLine]) -> Vec<Finding> {
    // An absent, older or unreadable store: the store check reports it; nothing is
    // remembered from a store that cannot be read.
    let Ok(Inspection::Open(store)) = health::open_for_inspection(store) else {
        return Vec::new();
    };
    let Ok(policy) = policy::load(store.conn()) else {
        return Vec::new();
    };
    if policy.remember_seconds == 0 {
        return vec![Finding::ok(
            CHECK,
            "off (policy remember_seconds 0): every login asks for the second factor",
        )];
    }
    let sshd_lines: Vec<&MfaLine> = lines
        .iter()
        .filter(|l| l.rule.ty == Type::Auth && l.services.contains("sshd"))
        .filter(|l| l.args.as_ref().is_some_and(|a| a.remember > 0))
        .collect();
    let on = format!(
        "on: a successful login is remembered for {} s for the same user, service and \
         remote host{}",
        policy.remember_seconds,
        if policy.remember_local {
            ", local logins included (remember_local allow)"
        } else {
            ""
        }
    );
    if sshd_lines.is_empty() || sshd::key_before_pam(root) {
        return vec![Finding::ok(CHECK, on)];
    }
    vec![Finding::warning(
        CHECK,
        format!(
            "{on}, and sshd ({}) lets a client reach the PAM stack without a public key: \
             everyone behind one address (a shared NAT, a carrier) shares the exemption, so \
             anyone among them who knows the user's password logs in without a code",
            sshd_lines
                .iter()
                .map(|l| l.place.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "set `AuthenticationMethods publickey,keyboard-interactive` in sshd_config, or \
         turn remembering off for sshd (remember=0 on its pam_mfa line) or everywhere \
         (`mfa admin policy set remember_seconds 0`)",
    )]
}
