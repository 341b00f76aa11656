//! The users check: who has an active device, and who would be locked out.
//!
//! Without `nullok`, pam_mfa refuses a user who has no active device. Under a control
//! that turns that refusal into a failed stack (`required`, `requisite`, or a bracketed
//! control whose `auth_err` is `bad` or `die`), every such user who can log in is locked
//! out. "Can log in" means an account in `/etc/passwd` whose shell is a login shell: one
//! listed in `/etc/shells` (or, without that file, one that exists and is not `nologin`
//! or `false`). Accounts from other sources (LDAP, SSSD) are not listed.

use std::collections::BTreeSet;
use std::path::Path;

use pam_mfa::names::UserName;

use super::pam::MfaLine;
use super::store::{StoreState, Stores};
use super::{Finding, Root, name_list};

const CHECK: &str = "users";

/// The most user names quoted in a message.
const MAX_NAMES: usize = 20;

pub fn check(root: &Root, lines: &[MfaLine], stores: &Stores) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (path, state) in &stores.states {
        findings.push(count(path, state, stores));
    }
    let strict: Vec<&MfaLine> = lines
        .iter()
        .filter(|l| l.refuses_users_without_device() && !l.services.is_empty())
        .collect();
    if strict.is_empty() {
        return findings;
    }
    let passwd = root.path("/etc/passwd");
    let login_users = match std::fs::read_to_string(&passwd) {
        Ok(text) => login_accounts(root, &text),
        Err(e) => {
            findings.push(Finding::warning(
                CHECK,
                format!(
                    "cannot read {}: {e}; cannot tell who would be locked out",
                    passwd.display()
                ),
                "check --root",
            ));
            return findings;
        }
    };
    for line in strict {
        let Some(args) = &line.args else { continue };
        let store = stores.path_for(args);
        let with_device: BTreeSet<&str> = match stores.states.get(&store) {
            Some(StoreState::Devices(list)) => list.iter().map(|u| u.user.as_str()).collect(),
            Some(StoreState::Absent) => BTreeSet::new(),
            Some(StoreState::Unreadable) | None => continue,
        };
        let locked: Vec<String> = login_users
            .iter()
            .filter(|u| !with_device.contains(u.as_str()))
            .cloned()
            .collect();
        let place = &line.place;
        if locked.is_empty() {
            findings.push(Finding::ok(
                CHECK,
                format!(
                    "{place}: every user with a login shell ({}) has an active device, as \
                     this line without nullok requires",
                    login_users.len()
                ),
            ));
            continue;
        }
        let n = locked.len();
        findings.push(Finding::problem(
            CHECK,
            format!(
                "{place}: `{}` has no nullok, so a user without an active device is refused \
                 at every login through {}; {n} user{} with a login shell {} none and would be \
                 locked out: {}",
                line.text,
                line.services_text(),
                if n == 1 { "" } else { "s" },
                if n == 1 { "has" } else { "have" },
                name_list(&locked, MAX_NAMES)
            ),
            format!(
                "register a device for each (`{} --user USER enroll totp NAME`), or add nullok \
                 to the line until everyone has one",
                stores.mfa_for(&store)
            ),
        ));
    }
    findings
}

fn count(path: &Path, state: &StoreState, stores: &Stores) -> Finding {
    let which = if path == stores.default {
        String::new()
    } else {
        format!(" in {}", path.display())
    };
    match state {
        StoreState::Devices(list) if !list.is_empty() => {
            let devices: u64 = list.iter().map(|u| u64::from(u.devices)).sum();
            Finding::ok(
                CHECK,
                format!(
                    "{} user{} {} active devices{which} ({devices} device{} in all)",
                    list.len(),
                    if list.len() == 1 { "" } else { "s" },
                    if list.len() == 1 { "has" } else { "have" },
                    if devices == 1 { "" } else { "s" },
                ),
            )
        }
        StoreState::Devices(_) | StoreState::Absent => Finding::warning(
            CHECK,
            format!("no user has an active device{which} yet"),
            format!(
                "register devices: each user runs `mfa enroll totp NAME`, or root runs `{} \
                 --user USER enroll totp NAME`",
                stores.mfa_for(path)
            ),
        ),
        StoreState::Unreadable => Finding::warning(
            CHECK,
            format!(
                "cannot tell who has a device: {} cannot be read (see the store check)",
                path.display()
            ),
            "fix the store first",
        ),
    }
}

/// Accounts that can log in, in `/etc/passwd` order, without duplicates.
fn login_accounts(root: &Root, passwd: &str) -> Vec<String> {
    let shells: Option<BTreeSet<String>> = std::fs::read_to_string(root.path("/etc/shells"))
        .ok()
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        });
    let mut out: Vec<String> = Vec::new();
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, _, _, _, _, shell] = fields[..] else {
            continue;
        };
        // NIS compat entries (+name, -name) and names a device cannot be registered for.
        if name.starts_with(['+', '-']) || UserName::parse(name).is_err() {
            continue;
        }
        let shell = if shell.is_empty() { "/bin/sh" } else { shell };
        let refusing = shell.ends_with("/nologin") || shell.ends_with("/false");
        let login = !refusing
            && match &shells {
                Some(list) => list.contains(shell),
                None => root.path(shell).is_file(),
            };
        if login && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn login_shells() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(Some(dir.path())).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      sync:x:4:65534:sync:/bin:/bin/sync\n\
                      alice:x:1000:1000::/home/alice:/bin/zsh\n\
                      bob:x:1001:1001::/home/bob:\n\
                      svc:x:999:999::/:/bin/false\n\
                      +nis::::::\n\
                      broken line\n\
                      alice:x:1000:1000::/home/alice:/bin/zsh\n";
        std::fs::write(
            dir.path().join("etc/shells"),
            "# /etc/shells\n/bin/sh\n/bin/bash\n/bin/zsh\n",
        )
        .unwrap();
        assert_eq!(login_accounts(&root, passwd), ["root", "alice", "bob"]);

        // Without /etc/shells: any existing shell that is not nologin or false.
        std::fs::remove_file(dir.path().join("etc/shells")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/bash"), "").unwrap();
        std::fs::write(dir.path().join("bin/sync"), "").unwrap();
        assert_eq!(login_accounts(&root, passwd), ["root", "sync"]);
    }
}
