//! The PAM check: which service files use pam_mfa, with what control and arguments, and
//! whether libpam will find the module the line names.
//!
//! Files are read from `/etc/pam.d` (and, for names not there, the vendor directory
//! `/usr/lib/pam.d`, as libpam does). A service uses a pam_mfa line when the line is in
//! its file or in one it reaches through `include`, `substack` or `@include`; the report
//! names those services, so a line in `common-auth` says which logins it guards.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pam_mfa_module::args::{self, ArgError, ModuleArgs};

use super::pam_flow::{self, Item};
use super::pam_syntax::{self, Control, Entry, Line, Rule, Type};
use super::{Finding, Root, sshd};

const CHECK: &str = "pam";

/// Where service files live, most specific first.
const CONFIG_DIRS: &[&str] = &["/etc/pam.d", "/usr/lib/pam.d"];

/// libpam stops following includes this deep (`PAM_SUBSTACK_MAX_LEVEL`).
const MAX_INCLUDE_DEPTH: usize = 16;

/// A line that loads pam_mfa.
pub struct MfaLine {
    /// `/etc/pam.d/sudo:3`, under the checked root.
    pub place: String,
    /// The name of the file the line is in (`sudo`, `common-auth`).
    pub file_name: String,
    /// The line as libpam reads it (joined, without comments).
    pub text: String,
    pub rule: Rule,
    /// The arguments as the module parses them; `None` when the module rejects them.
    pub args: Option<ModuleArgs>,
    /// The services whose stack contains this line.
    pub services: BTreeSet<String>,
    /// The services in which someone who knows no password reaches this line, each with
    /// the first-factor lines that did not stop them (none: no first factor in PAM, as
    /// behind an SSH key).
    pub outsiders: BTreeMap<String, Vec<String>>,
}

impl MfaLine {
    /// Whether a user without an active device is refused through this line: an auth
    /// line without `nullok` (the module then returns `PAM_AUTH_ERR`) whose control
    /// turns that into a failed stack.
    pub fn refuses_users_without_device(&self) -> bool {
        self.rule.ty == Type::Auth
            && self.args.as_ref().is_some_and(|a| !a.nullok)
            && self
                .rule
                .control
                .action_for("auth_err")
                .is_some_and(|a| a.fails())
    }

    /// The services for a message: the ones that include the file, or the file itself.
    pub fn services_text(&self) -> String {
        let others: Vec<&str> = self
            .services
            .iter()
            .map(String::as_str)
            .filter(|s| *s != self.file_name)
            .collect();
        if others.is_empty() {
            self.file_name.clone()
        } else {
            others.join(", ")
        }
    }
}

pub struct PamScan {
    pub findings: Vec<Finding>,
    pub lines: Vec<MfaLine>,
}

pub fn scan(root: &Root) -> PamScan {
    let etc = root.path(CONFIG_DIRS[0]);
    let mut files = Files::new(root);
    let services = files.services();
    if services.is_empty() {
        return PamScan {
            findings: vec![Finding::warning(
                CHECK,
                format!("{} has no service files", etc.display()),
                "check --root, or install libpam-runtime",
            )],
            lines: Vec::new(),
        };
    }

    // Which services reach which (file, line) of pam_mfa.
    let mut users: BTreeMap<(PathBuf, usize), BTreeSet<String>> = BTreeMap::new();
    for (name, path) in &services {
        let mut reached = Vec::new();
        files.reach(path, None, 0, &mut reached);
        for (file, only) in reached {
            for (i, line) in files.lines(&file).iter().enumerate() {
                if let Entry::Rule(rule) = &line.entry
                    && is_pam_mfa(rule)
                    && only.is_none_or(|t| t == rule.ty)
                {
                    users
                        .entry((file.clone(), i))
                        .or_default()
                        .insert(name.clone());
                }
            }
        }
    }

    // Which services let someone who knows no password reach which pam_mfa auth line.
    let mut outsiders: BTreeMap<(PathBuf, usize), BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (name, path) in &services {
        let stack = files.auth_stack(path, 0);
        for reach in pam_flow::outsider_reaches(&stack) {
            outsiders
                .entry(reach.key)
                .or_default()
                .entry(name.clone())
                .or_insert(reach.first_factors);
        }
    }
    let mut key_first = None;

    let mut findings = Vec::new();
    let mut lines = Vec::new();
    let module_dir = module_dir(root);
    for file in files.loaded() {
        for (i, line) in files.lines(&file).iter().enumerate() {
            let place = format!("{}:{}", file.display(), line.number);
            match &line.entry {
                Entry::Rule(rule) if is_pam_mfa(rule) => {
                    let services = users.remove(&(file.clone(), i)).unwrap_or_default();
                    let outsiders = outsiders.remove(&(file.clone(), i)).unwrap_or_default();
                    let (mut mfa, mut found) =
                        check_line(root, module_dir.as_deref(), &file, line, rule, services);
                    mfa.outsiders = outsiders;
                    let mut exposed = exposure_findings(&mfa, || {
                        *key_first.get_or_insert_with(|| sshd::key_before_pam(root))
                    });
                    if !exposed.is_empty() {
                        found.retain(|f| f.status != super::Status::Ok);
                        found.append(&mut exposed);
                    }
                    findings.append(&mut found);
                    lines.push(mfa);
                }
                Entry::Malformed(why) if line.text.contains("pam_mfa") => {
                    findings.push(Finding::problem(
                        CHECK,
                        format!(
                            "{place}: `{}`: libpam cannot read this line ({why}), so every \
                             stack that contains it fails",
                            line.text
                        ),
                        "write it as TYPE CONTROL MODULE [ARGUMENTS], e.g. \
                         `auth required pam_mfa.so nullok`",
                    ));
                }
                _ => {}
            }
        }
    }
    if lines.is_empty() {
        findings.push(Finding::warning(
            CHECK,
            format!(
                "no file in {} uses pam_mfa.so, so no login asks for a code yet",
                etc.display()
            ),
            "add `auth required pam_mfa.so nullok` after the password module of a service \
             (see \"Enabling the module\" in the README)",
        ));
    }
    PamScan { findings, lines }
}

fn is_pam_mfa(rule: &Rule) -> bool {
    !matches!(rule.control, Control::Include | Control::Substack)
        && Path::new(&rule.module).file_name().is_some_and(|n| {
            n == "pam_mfa.so" || n == "libpam_mfa.so" || n == "libpam_mfa_module.so"
        })
}

/// Judges one pam_mfa line: its arguments (by the module's own parser), its type and
/// control, and the module file it names.
fn check_line(
    root: &Root,
    module_dir: Option<&Path>,
    file: &Path,
    line: &Line,
    rule: &Rule,
    services: BTreeSet<String>,
) -> (MfaLine, Vec<Finding>) {
    let place = format!("{}:{}", file.display(), line.number);
    let text = line.text.clone();
    let mut findings = Vec::new();
    let parsed = args::parse(rule.args.iter().map(|a| a.as_bytes()));
    if let Err(e) = &parsed {
        findings.push(Finding::problem(
            CHECK,
            format!(
                "{place}: `{text}`: {e}; pam_mfa refuses every login through this line \
                 (PAM_SERVICE_ERR) until it is fixed"
            ),
            argument_fix(e),
        ));
    }
    if rule.ty != Type::Auth {
        findings.push(Finding::warning(
            CHECK,
            format!(
                "{place}: `{text}`: pam_mfa only authenticates; on an {} line it does nothing \
                 (it returns PAM_IGNORE)",
                rule.ty.as_str()
            ),
            "use it on an auth line, or remove this one",
        ));
    }
    match &rule.control {
        Control::Bracketed {
            text: c,
            pairs: Err(why),
        } => findings.push(Finding::problem(
            CHECK,
            format!(
                "{place}: the control [{c}] is not valid ({why}); libpam then treats every \
                 result of this line as a failure, even a right code"
            ),
            "write the control as `required`, or as [RESULT=ACTION ...] with PAM's result \
             and action names (see pam.conf(5))",
        )),
        Control::Sufficient => findings.push(Finding::warning(
            CHECK,
            format!(
                "{place}: `{text}`: with `sufficient`, a right code alone completes \
                 authentication (the modules after it are skipped) and a wrong code does \
                 not refuse the login"
            ),
            "use `required`, after the password module, for a second factor",
        )),
        Control::Optional => findings.push(Finding::warning(
            CHECK,
            format!(
                "{place}: `{text}`: with `optional`, a wrong code does not refuse the login \
                 (unless pam_mfa is the only module of the stack)"
            ),
            "use `required` to make the code necessary",
        )),
        _ => {}
    }
    match module_file(root, module_dir, &rule.module) {
        None => findings.push(Finding::warning(
            CHECK,
            format!(
                "{place}: cannot tell where libpam looks for {}: no PAM module directory \
                 (one with pam_unix.so) under {}",
                rule.module,
                root.path("/").display()
            ),
            "give the module's absolute path on the line",
        )),
        Some(file) => match module_file_finding(&place, &text, rule, &file) {
            Some(f) => findings.push(f),
            None => findings.extend(keys_library_finding(&place, &file)),
        },
    }
    let mfa = MfaLine {
        file_name: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        place,
        text,
        rule: rule.clone(),
        args: parsed.ok(),
        services,
        outsiders: BTreeMap::new(),
    };
    if findings.is_empty() {
        let used = if mfa.services.is_empty() {
            "no service".to_owned()
        } else {
            mfa.services_text()
        };
        findings.push(Finding::ok(
            CHECK,
            format!("{}: `{}` (used by {used})", mfa.place, mfa.text),
        ));
    }
    (mfa, findings)
}

/// The module argument that registers a device at login for an account without one
/// (looked for in the raw arguments, so that the doctor judges it whatever the parser of
/// this build knows).
const ENROLL_AT_LOGIN: &str = "enroll_at_login";

/// The service whose stack sshd runs, where a public key checked by sshd itself can be
/// the first factor.
const SSHD_SERVICE: &str = "sshd";

/// A pam_mfa auth line that someone who knows no password
/// reaches. Behind a first factor that does not end the stack (a `required` password
/// line), wrong codes typed after wrong passwords lock the user out: a warning. With
/// `enroll_at_login`, whoever reaches the line registers a device on an account without
/// one: a problem, unless a first factor ends the stack before it or, for sshd, sshd
/// demands a public key before keyboard-interactive (`key_first`, asked only when needed).
fn exposure_findings(line: &MfaLine, key_first: impl FnOnce() -> bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    if line.rule.ty != Type::Auth || line.outsiders.is_empty() {
        return findings;
    }
    let (place, text) = (&line.place, &line.text);
    let mut behind: Vec<&str> = Vec::new();
    let mut services_behind: Vec<&str> = Vec::new();
    for (service, first_factors) in &line.outsiders {
        if !first_factors.is_empty() {
            services_behind.push(service);
        }
        for f in first_factors {
            if !behind.contains(&f.as_str()) {
                behind.push(f);
            }
        }
    }
    if !behind.is_empty() {
        findings.push(Finding::warning(
            CHECK,
            format!(
                "{place}: `{text}`: a wrong password at {} does not end the stack of {}, so \
                 pam_mfa still asks for a code: anyone who knows a user name can type wrong \
                 codes after a wrong password and lock that user out",
                behind.join(", "),
                services_behind.join(", ")
            ),
            "make the password line end the stack when it fails: `auth requisite \
             pam_unix.so` (or the control [success=ok default=die]), or follow it with \
             `auth requisite pam_deny.so` as Debian's common-auth does (see the \
             deployment guide, deployment.md)",
        ));
    }
    if line.rule.args.iter().any(|a| a == ENROLL_AT_LOGIN) {
        // sshd demanding a key first is a first factor outside PAM.
        let key_guards_sshd = line.outsiders.contains_key(SSHD_SERVICE) && key_first();
        let exposed: Vec<&str> = line
            .outsiders
            .keys()
            .map(String::as_str)
            .filter(|s| !(*s == SSHD_SERVICE && key_guards_sshd))
            .collect();
        if !exposed.is_empty() {
            findings.push(Finding::problem(
                CHECK,
                format!(
                    "{place}: `{text}`: {ENROLL_AT_LOGIN} registers a device during the login \
                     of an account that has none, and in {} this line is reached without a \
                     right password (no first factor before it ends the stack when it \
                     fails{}): anyone who knows a user name can register their own \
                     authenticator on that account",
                    exposed.join(", "),
                    if exposed.contains(&SSHD_SERVICE) {
                        ", and sshd does not demand a public key first"
                    } else {
                        ""
                    }
                ),
                format!(
                    "put {ENROLL_AT_LOGIN} only on a line behind a first factor that ends the \
                     stack when it fails (`auth requisite pam_unix.so` before it), or, for \
                     sshd, behind `AuthenticationMethods publickey,keyboard-interactive` in \
                     every method list; otherwise remove {ENROLL_AT_LOGIN} and register \
                     devices with `mfa`"
                ),
            ));
        }
    }
    findings
}

fn argument_fix(e: &ArgError) -> String {
    // The module's own table of arguments, the one its parser accepts.
    let known = pam_mfa_module::args::ARGUMENTS;
    let all: Vec<&str> = known.iter().map(|a| a.syntax).collect();
    let valid = format!("the module's arguments are {}", all.join(", "));
    let ArgError::Unknown(arg) = e else {
        return format!("correct the argument; {valid}");
    };
    let key = arg.split('=').next().unwrap_or_default();
    match known
        .iter()
        .map(|a| (edit_distance(key, a.name), a.syntax))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
    {
        Some((_, shown)) => format!("did you mean `{shown}`? {valid}"),
        None => format!("remove or correct it; {valid}"),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The directory libpam loads modules named without a path from: its compiled-in
/// default, found as the directory that holds pam_unix.so.
fn module_dir(root: &Root) -> Option<PathBuf> {
    let triplet = format!("{}-linux-gnu", std::env::consts::ARCH);
    let mut candidates: Vec<PathBuf> = [
        format!("/usr/lib/{triplet}/security"),
        format!("/lib/{triplet}/security"),
        "/usr/lib64/security".to_owned(),
        "/lib64/security".to_owned(),
        "/usr/lib/security".to_owned(),
        "/lib/security".to_owned(),
    ]
    .iter()
    .map(|d| root.path(d))
    .collect();
    // Other multiarch directories (aarch64-linux-gnu, ...).
    for lib in ["/usr/lib", "/lib"] {
        if let Ok(entries) = std::fs::read_dir(root.path(lib)) {
            let mut more: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("security"))
                .collect();
            more.sort();
            candidates.extend(more);
        }
    }
    candidates
        .into_iter()
        .find(|d| d.join("pam_unix.so").is_file())
}

/// Where the line's module is on the checked system; `None` when a bare name cannot be
/// resolved because there is no module directory.
fn module_file(root: &Root, module_dir: Option<&Path>, module: &str) -> Option<PathBuf> {
    if module.starts_with('/') {
        Some(root.path(module))
    } else {
        module_dir.map(|d| d.join(module))
    }
}

/// A problem with the module file: missing, not a file, or changeable by someone other
/// than root (who could then run code inside sshd, sudo and login).
fn module_file_finding(place: &str, text: &str, rule: &Rule, file: &Path) -> Option<Finding> {
    let shown = file.display();
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) => {
            let consequence = if rule
                .control
                .action_for("module_unknown")
                .is_some_and(|a| a.fails())
            {
                "every login through it is refused"
            } else {
                "it never asks for a code"
            };
            let dash = if rule.silent {
                " (the leading '-' only keeps this out of the log)"
            } else {
                ""
            };
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist".to_owned()
            } else {
                format!("cannot be read ({e})")
            };
            return Some(Finding::problem(
                CHECK,
                format!(
                    "{place}: `{text}`: the module file {shown} {what}; libpam counts the \
                     line as failed, so {consequence}{dash}"
                ),
                format!(
                    "install pam_mfa.so as {shown} (scripts/install.sh does), or point the \
                     line at the installed file"
                ),
            ));
        }
    };
    let why = not_roots_alone(&meta)?;
    Some(Finding::problem(
        CHECK,
        format!(
            "{place}: the module file {shown} {why}; whoever can change it runs code inside \
             every service that loads it"
        ),
        format!("chown root:root {shown} && chmod 0644 {shown}"),
    ))
}

/// Why a file is not one that root alone can change, or `None` if it is.
fn not_roots_alone(meta: &std::fs::Metadata) -> Option<String> {
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() {
        Some("is not a regular file".to_owned())
    } else if meta.uid() != 0 {
        Some(format!("is owned by uid {}, not root", meta.uid()))
    } else if mode & 0o022 != 0 {
        Some(format!("is writable by group or others (mode {mode:04o})"))
    } else {
        None
    }
}

/// A problem with the security-key library next to a usable module file: the module
/// loads it from there for a security-key login, and only if root alone can change it
/// (`pam_mfa_module::keys_library`). Without it, logins with codes work and logins with a
/// touch fail closed, so it is a warning.
fn keys_library_finding(place: &str, module: &Path) -> Option<Finding> {
    let library = module.with_file_name(pam_mfa::fido2::plugin::LIBRARY_FILE);
    let shown = library.display();
    let why = match std::fs::metadata(&library) {
        Ok(meta) => not_roots_alone(&meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        Err(e) => format!("cannot be read ({e})"),
    };
    Some(Finding::warning(
        CHECK,
        format!(
            "{place}: the security-key library {shown} {why}; pam_mfa does not load it, so \
             logins with a security key are refused (users who also have a code device are \
             asked for a code)"
        ),
        format!(
            "install libpam_mfa_keys.so next to the module as a root-owned file of mode 0644 \
             (the packages and scripts/install.sh do): chown root:root {shown} && chmod 0644 \
             {shown}"
        ),
    ))
}

/// The service files and everything they include, each parsed once.
struct Files<'a> {
    root: &'a Root,
    parsed: BTreeMap<PathBuf, Vec<Line>>,
}

impl<'a> Files<'a> {
    fn new(root: &'a Root) -> Self {
        Self {
            root,
            parsed: BTreeMap::new(),
        }
    }

    /// Every service name with its file: `/etc/pam.d` first, then the vendor directory
    /// for names `/etc/pam.d` lacks.
    fn services(&mut self) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        for dir in CONFIG_DIRS {
            let Ok(entries) = std::fs::read_dir(self.root.path(dir)) else {
                continue;
            };
            for entry in entries.filter_map(|e| e.ok()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_leftover(&name) || !entry.path().is_file() {
                    continue;
                }
                out.entry(name).or_insert_with(|| entry.path());
            }
        }
        for path in out.values() {
            self.load(path);
        }
        out
    }

    fn load(&mut self, path: &Path) {
        if !self.parsed.contains_key(path) {
            let lines = std::fs::read(path)
                .map(|b| pam_syntax::parse_file(&String::from_utf8_lossy(&b)))
                .unwrap_or_default();
            self.parsed.insert(path.to_owned(), lines);
        }
    }

    fn lines(&self, path: &Path) -> &[Line] {
        self.parsed.get(path).map_or(&[], Vec::as_slice)
    }

    fn loaded(&self) -> Vec<PathBuf> {
        self.parsed.keys().cloned().collect()
    }

    /// Where an include names: an absolute path, or a service name.
    fn resolve(&self, name: &str) -> Option<PathBuf> {
        if name.starts_with('/') {
            return Some(self.root.path(name)).filter(|p| p.is_file());
        }
        CONFIG_DIRS
            .iter()
            .map(|d| self.root.path(d).join(name))
            .find(|p| p.is_file())
    }

    /// `file`'s auth lines in the order libpam runs them: `@include` and `auth include`
    /// expanded in place, `auth substack` as a nested stack.
    fn auth_stack(&mut self, file: &Path, depth: usize) -> Vec<Item> {
        if depth > MAX_INCLUDE_DEPTH {
            return Vec::new();
        }
        self.load(file);
        let lines = self.lines(file).to_vec();
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            match &line.entry {
                Entry::IncludeAll(name) => {
                    if let Some(path) = self.resolve(name) {
                        out.extend(self.auth_stack(&path, depth + 1));
                    }
                }
                Entry::Rule(rule) if rule.ty == Type::Auth => match rule.control {
                    Control::Include | Control::Substack => {
                        let Some(path) = self.resolve(&rule.module) else {
                            continue;
                        };
                        let inner = self.auth_stack(&path, depth + 1);
                        if rule.control == Control::Include {
                            out.extend(inner);
                        } else {
                            out.push(Item::Substack(inner));
                        }
                    }
                    _ => out.push(Item::Module {
                        key: (file.to_owned(), i),
                        shown: format!("{}:{} `{}`", file.display(), line.number, line.text),
                        rule: rule.clone(),
                        is_mfa: is_pam_mfa(rule),
                    }),
                },
                _ => {}
            }
        }
        out
    }

    /// Collects every file reachable from `file`, each with the one type its lines are
    /// taken for (`auth include x` takes only x's auth lines), or `None` for all.
    fn reach(
        &mut self,
        file: &Path,
        only: Option<Type>,
        depth: usize,
        out: &mut Vec<(PathBuf, Option<Type>)>,
    ) {
        if depth > MAX_INCLUDE_DEPTH || out.iter().any(|(f, t)| f == file && *t == only) {
            return;
        }
        self.load(file);
        out.push((file.to_owned(), only));
        let includes: Vec<(String, Option<Type>)> = self
            .lines(file)
            .iter()
            .filter_map(|l| match &l.entry {
                Entry::IncludeAll(name) => Some((name.clone(), None)),
                Entry::Rule(r) if matches!(r.control, Control::Include | Control::Substack) => {
                    Some((r.module.clone(), Some(r.ty)))
                }
                _ => None,
            })
            .collect();
        for (name, ty) in includes {
            let next = match (only, ty) {
                (Some(a), Some(b)) if a != b => continue,
                (a, b) => a.or(b),
            };
            if let Some(path) = self.resolve(&name) {
                self.reach(&path, next, depth + 1, out);
            }
        }
    }
}

/// Package managers' and editors' leftovers, which no service is named after.
fn is_leftover(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [
            ".dpkg-old",
            ".dpkg-dist",
            ".dpkg-new",
            ".dpkg-tmp",
            ".ucf-old",
            ".ucf-dist",
            ".rpmnew",
            ".rpmsave",
            ".orig",
            ".bak",
            ".swp",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let fix = argument_fix(&ArgError::Unknown("nulok".to_owned()));
        assert!(fix.starts_with("did you mean `nullok`?"), "{fix}");
        let fix = argument_fix(&ArgError::Unknown("windw=3".to_owned()));
        assert!(fix.starts_with("did you mean `window=N`?"), "{fix}");
        let fix = argument_fix(&ArgError::Unknown("frobnicate".to_owned()));
        assert!(fix.starts_with("remove or correct it"), "{fix}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }

    #[test]
    fn leftovers() {
        assert!(is_leftover("sudo.dpkg-old"));
        assert!(is_leftover("sshd~"));
        assert!(!is_leftover("common-auth"));
    }
}
