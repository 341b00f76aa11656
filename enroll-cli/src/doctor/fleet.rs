//! The fleet (docs/fleet.md): with `/etc/pam_mfa/mfad.conf`, `mfad` keeps most accounts in
//! a PostgreSQL database. What goes wrong there locks people out of every host at once, so
//! the doctor checks what it can: the file as `mfad` reads it (the same parser, so the two
//! cannot disagree), that root is kept locally (the way in while the database is down),
//! that the packaged unit, which has no network, was given the network, and, on the
//! running system, that the database answers with the host's own role.

use pam_mfa_fleet::{Fleet, FleetConfig};

use super::{Finding, Root};

const CHECK: &str = "fleet";

/// Where the packaged unit and an administrator's drop-ins live.
const UNIT: &str = "/usr/lib/systemd/system/mfad.service";
const DROP_INS: &str = "/etc/systemd/system/mfad.service.d";

pub fn check(root: &Root) -> Vec<Finding> {
    let path = root.path(mfad::DEFAULT_CONFIG);
    let config = match FleetConfig::load(&path) {
        Ok(None) => return Vec::new(),
        Ok(Some(config)) => config,
        Err(e) => {
            return vec![Finding::problem(
                CHECK,
                format!("{e}: mfad does not start, so no login can check a code"),
                "make it a regular file owned by root with mode 0600, with the keys of \
                 docs/fleet.md (mfa admin fleet add-host prints one)",
            )];
        }
    };
    let servers: Vec<String> = config.hosts.iter().map(ToString::to_string).collect();
    let mut findings = vec![Finding::ok(
        CHECK,
        format!(
            "accounts other than {} are kept in the fleet database {} at {} (role {})",
            if config.local_users.is_empty() {
                "none".to_owned()
            } else {
                config.local_users.join(", ")
            },
            config.database,
            servers.join(", "),
            config.role
        ),
    )];
    if !config.local_users.iter().any(|u| u == "root") {
        findings.push(Finding::warning(
            CHECK,
            "root is not among local_users: while the fleet database is down, root cannot \
             log in where pam_mfa is required",
            "add \"root\" (and a break-glass administrator) to local_users, and register \
             their devices on this host",
        ));
    }
    if root.path(UNIT).is_file() && !network_given(root) {
        findings.push(Finding::problem(
            CHECK,
            format!(
                "mfad.service has no network (PrivateNetwork=yes) and no drop-in in {DROP_INS} \
                 gives it: mfad cannot reach the fleet database"
            ),
            format!(
                "write the drop-in of docs/fleet.md to {DROP_INS}/fleet.conf, then \
                 systemctl daemon-reload and systemctl restart mfad"
            ),
        ));
    }
    // Only the running system's database can be asked, and only as this host's role.
    if root.is_system() {
        findings.push(match Fleet::new(config).ping() {
            Ok(()) => Finding::ok(CHECK, "the fleet database answers this host's role"),
            Err(e) => Finding::problem(
                CHECK,
                format!("the fleet database does not answer: {e}"),
                "check the servers, the role and its credential, the CA certificate, and the \
                 database's pg_hba.conf (docs/fleet.md)",
            ),
        });
    }
    findings
}

/// Whether a drop-in turns `PrivateNetwork` off for `mfad.service`.
fn network_given(root: &Root) -> bool {
    let Ok(entries) = std::fs::read_dir(root.path(DROP_INS)) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        e.path().extension().is_some_and(|x| x == "conf")
            && std::fs::read_to_string(e.path()).is_ok_and(|text| {
                text.lines().any(|l| {
                    let l = l.replace(' ', "");
                    l == "PrivateNetwork=no" || l == "PrivateNetwork=false"
                })
            })
    })
}
