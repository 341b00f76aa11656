//! sshd's effective settings, from `sshd -T` or from its configuration files.
//!
//! On the running system `sshd -T` is the truth (defaults, includes and all). Under
//! `--root` it cannot be asked (it would read the host's includes and host keys), so the
//! files are read the way sshd reads them: keywords are case-insensitive, the first value
//! obtained wins, `Include` takes globs (relative ones under `/etc/ssh`) in sorted order,
//! and a `Match` block applies only to some connections. Settings inside `Match` blocks
//! are noted, not applied; the report says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::Root;

/// sshd gives up on deeper nesting too.
const MAX_INCLUDE_DEPTH: usize = 16;

/// The settings that decide whether a login reaches PAM.
pub const RELEVANT: &[&str] = &[
    "usepam",
    "kbdinteractiveauthentication",
    "authenticationmethods",
    "pubkeyauthentication",
    "passwordauthentication",
];

#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// Relevant keywords set inside `Match` blocks.
    pub in_match: BTreeSet<String>,
}

/// The old name of `KbdInteractiveAuthentication`, which sshd (since 8.7) treats as the
/// same setting.
fn canonical(keyword: &str) -> String {
    let k = keyword.to_ascii_lowercase();
    if k == "challengeresponseauthentication" {
        "kbdinteractiveauthentication".to_owned()
    } else {
        k
    }
}

impl Settings {
    /// Reads `sshd -T` output: one lower-case `keyword value...` per line.
    pub fn from_dump(text: &str) -> Self {
        let mut s = Self::default();
        for line in text.lines() {
            let mut parts = line.splitn(2, ' ');
            let (Some(k), rest) = (parts.next(), parts.next()) else {
                continue;
            };
            let k = k.to_ascii_lowercase();
            let v = rest.unwrap_or_default().trim().to_owned();
            // sshd before 8.7 prints both names, and a login needs both to be yes.
            if k == "challengeresponseauthentication" {
                if v.eq_ignore_ascii_case("no") {
                    s.values.insert(canonical(&k), v);
                }
                continue;
            }
            if !(k == "kbdinteractiveauthentication"
                && s.values.contains_key("kbdinteractiveauthentication"))
            {
                s.values.insert(k, v);
            }
        }
        s
    }

    /// Reads `config` (an absolute path on the checked system) and what it includes.
    pub fn from_files(root: &Root, config: &str) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(root.path(config))?;
        let mut s = Self::default();
        s.read(root, &text, false, 0);
        Ok(s)
    }

    fn read(&mut self, root: &Root, text: &str, mut in_match: bool, depth: usize) {
        for line in text.lines() {
            let Some((keyword, args)) = split_line(line) else {
                continue;
            };
            let k = canonical(&keyword);
            match k.as_str() {
                "match" => {
                    in_match = !(args.len() == 1 && args[0].eq_ignore_ascii_case("all"));
                }
                "include" if depth < MAX_INCLUDE_DEPTH => {
                    for pattern in &args {
                        let abs = if pattern.starts_with('/') {
                            pattern.clone()
                        } else {
                            format!("/etc/ssh/{pattern}")
                        };
                        for file in glob(root, &abs) {
                            if let Ok(t) = std::fs::read_to_string(&file) {
                                self.read(root, &t, in_match, depth + 1);
                            }
                        }
                    }
                }
                _ if in_match => {
                    if RELEVANT.contains(&k.as_str()) {
                        self.in_match.insert(k);
                    }
                }
                _ => {
                    self.values.entry(k).or_insert_with(|| args.join(" "));
                }
            }
        }
    }

    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.values.get(keyword).map(String::as_str)
    }

    /// A yes/no setting, with sshd's default when it is not set.
    pub fn flag(&self, keyword: &str, default: bool) -> bool {
        self.get(keyword)
            .map_or(default, |v| v.eq_ignore_ascii_case("yes"))
    }

    /// The value as sshd would print it, for messages.
    pub fn shown(&self, keyword: &str, default: &str) -> String {
        self.get(keyword).unwrap_or(default).to_owned()
    }
}

/// `Keyword value...` or `Keyword=value...`, with double-quoted arguments; `None` for
/// blank lines and comments.
fn split_line(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_owned();
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(c) = chars.next() else { break };
        if c == '#' {
            break;
        }
        let mut arg = String::new();
        if c == '"' {
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                arg.push(c);
            }
        } else {
            arg.push(c);
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                arg.push(c);
            }
        }
        args.push(arg);
    }
    Some((keyword, args))
}

/// The files matching an absolute glob pattern (`*`, `?`) on the checked system, sorted
/// as glob(3) sorts them.
fn glob(root: &Root, pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![root.path("/")];
    for part in Path::new(pattern).components().skip(1) {
        let part = part.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for dir in &found {
            if part.contains(['*', '?']) {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && wildcard_match(&part, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            } else {
                next.push(dir.join(&*part));
            }
        }
        found = next;
    }
    found.into_iter().filter(|p| p.is_file()).collect()
}

fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic iterative matcher with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The method lists of `AuthenticationMethods`; `None` for `any`.
pub fn method_lists(value: &str) -> Option<Vec<Vec<String>>> {
    if value.trim().eq_ignore_ascii_case("any") || value.trim().is_empty() {
        return None;
    }
    Some(
        value
            .split_whitespace()
            .map(|list| list.split(',').map(str::to_owned).collect())
            .collect(),
    )
}

/// Whether a method runs PAM's conversation: keyboard-interactive, by itself or with
/// its `pam` device.
pub fn reaches_pam(method: &str) -> bool {
    method == "keyboard-interactive" || method == "keyboard-interactive:pam"
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            split_line("  UsePAM yes"),
            Some(("UsePAM".to_owned(), vec!["yes".to_owned()]))
        );
        assert_eq!(
            split_line("AuthenticationMethods=publickey,keyboard-interactive password # x"),
            Some((
                "AuthenticationMethods".to_owned(),
                vec![
                    "publickey,keyboard-interactive".to_owned(),
                    "password".to_owned()
                ]
            ))
        );
        assert_eq!(
            split_line("Banner \"/etc/my banner\""),
            Some(("Banner".to_owned(), vec!["/etc/my banner".to_owned()]))
        );
        assert_eq!(split_line("# comment"), None);
        assert_eq!(split_line("   "), None);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.conf", "50-cloud.conf"));
        assert!(!wildcard_match("*.conf", "50-cloud.conf.bak"));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(wildcard_match("*", "x"));
        assert!(!wildcard_match("x*y", "xz"));
    }

    #[test]
    fn files_with_includes_and_match() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(Some(dir.path())).unwrap();
        let ssh = dir.path().join("etc/ssh");
        std::fs::create_dir_all(ssh.join("sshd_config.d")).unwrap();
        std::fs::write(
            ssh.join("sshd_config"),
            "Include /etc/ssh/sshd_config.d/*.conf\n\
             usepam yes\n\
             KbdInteractiveAuthentication no\n\
             Match User alice\n\
             \tAuthenticationMethods publickey\n",
        )
        .unwrap();
        std::fs::write(
            ssh.join("sshd_config.d/20-b.conf"),
            "ChallengeResponseAuthentication no\n",
        )
        .unwrap();
        std::fs::write(
            ssh.join("sshd_config.d/10-a.conf"),
            "KbdInteractiveAuthentication yes\nUsePAM no\n",
        )
        .unwrap();
        std::fs::write(ssh.join("sshd_config.d/10-a.conf.disabled"), "UsePAM yes\n").unwrap();
        let s = Settings::from_files(&root, "/etc/ssh/sshd_config").unwrap();
        // The first value obtained wins: 10-a.conf is read before the main file's lines.
        assert!(s.flag("kbdinteractiveauthentication", false));
        assert!(!s.flag("usepam", true));
        assert_eq!(s.get("authenticationmethods"), None);
        assert!(s.in_match.contains("authenticationmethods"));
    }

    #[test]
    fn dump() {
        let s = Settings::from_dump(
            "port 22\nusepam yes\nkbdinteractiveauthentication yes\n\
             challengeresponseauthentication no\n\
             authenticationmethods publickey,keyboard-interactive password\n",
        );
        assert!(s.flag("usepam", false));
        assert!(!s.flag("kbdinteractiveauthentication", true));
        let lists = method_lists(s.get("authenticationmethods").unwrap()).unwrap();
        assert_eq!(lists.len(), 2);
        assert!(lists[0].iter().any(|m| reaches_pam(m)));
        assert!(!lists[1].iter().any(|m| reaches_pam(m)));
        assert_eq!(method_lists("any"), None);
    }
}
