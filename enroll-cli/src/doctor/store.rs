//! The store check: the store exists, is root's alone, has a schema this pam_mfa
//! understands and passes SQLite's integrity check.
//!
//! The judgement is the library's ([`health::open_for_inspection`] opens the store as a
//! login does); this module only adds the commands that fix what it found. Besides the
//! store `--db` names (or the default one), every store a PAM line names with `db=` is
//! checked, since that is the one those logins read.
//!
//! It also shows how much disk the store takes and warns when the file system holding it
//! runs low: every login writes to the store, so a full disk
//! refuses every login with pam_mfa.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pam_mfa::Error;
use pam_mfa::store::DEFAULT_PATH;
use pam_mfa::store::health::{self, ActiveUser, Inspection};
use pam_mfa_module::args::ModuleArgs;

use super::pam::MfaLine;
use super::{Finding, Root};

const CHECK: &str = "store";

/// The most integrity problems quoted in a message.
const MAX_QUOTED_PROBLEMS: u32 = 3;

/// Below this much free space on the store's file system the doctor warns. The store
/// itself needs little (a login adds a page or two, and the registration limits and the
/// audit retention bound its growth), but logs, package updates and core dumps eat
/// 100 MiB in minutes, and once the disk is full no login can record its code.
const LOW_FREE_BYTES: u64 = 100 * 1024 * 1024;

/// What the users check can learn from a store.
pub enum StoreState {
    /// No store: nobody has a device.
    Absent,
    /// The store cannot be read (the store check says why).
    Unreadable,
    Devices(Vec<ActiveUser>),
}

pub struct Stores {
    pub findings: Vec<Finding>,
    /// The store `--db` names, or the default one under the checked root.
    pub default: PathBuf,
    pub states: BTreeMap<PathBuf, StoreState>,
    root_default: PathBuf,
    root_dir: PathBuf,
}

impl Stores {
    /// The store a pam_mfa line reads: its `db=`, or the default.
    pub fn path_for(&self, args: &ModuleArgs) -> PathBuf {
        if args.db == Path::new(DEFAULT_PATH) {
            self.default.clone()
        } else {
            self.root_dir
                .join(args.db.strip_prefix("/").unwrap_or(&args.db))
        }
    }

    /// `mfa` or `mfa --db PATH`, whichever reaches `path`.
    pub fn mfa_for(&self, path: &Path) -> String {
        if path == self.root_default && self.root_dir == Path::new("/") {
            "mfa".to_owned()
        } else {
            format!("mfa --db {}", path.display())
        }
    }
}

pub fn check(default: &Path, root: &Root, lines: &[MfaLine]) -> Stores {
    let mut stores = Stores {
        findings: Vec::new(),
        default: default.to_owned(),
        states: BTreeMap::new(),
        root_default: root.path(DEFAULT_PATH),
        root_dir: root.path("/"),
    };
    let mut paths = vec![default.to_owned()];
    for line in lines {
        if let Some(args) = &line.args {
            let p = stores.path_for(args);
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    for path in paths {
        let (finding, state) = check_one(&path, &stores.mfa_for(&path));
        stores.findings.push(finding);
        stores.findings.extend(space(&path, &stores.mfa_for(&path)));
        stores.states.insert(path, state);
    }
    stores
}

fn check_one(path: &Path, mfa: &str) -> (Finding, StoreState) {
    let shown = path.display();
    let store = match health::open_for_inspection(path) {
        Ok(Inspection::Open(store)) => store,
        Ok(Inspection::Absent) => {
            return (
                Finding::problem(
                    CHECK,
                    format!("{shown} does not exist: nobody has registered a device yet"),
                    format!(
                        "register a device (`{mfa} --user USER enroll totp NAME`); that creates \
                         the store, 0600 in a 0700 directory"
                    ),
                ),
                StoreState::Absent,
            );
        }
        Ok(Inspection::Older { found, known }) => {
            return (
                Finding::warning(
                    CHECK,
                    format!(
                        "{shown} has schema version {found}, older than this pam_mfa's \
                         ({known}); the next mfa command or login upgrades it"
                    ),
                    format!("run `{mfa} list` as root to upgrade it now"),
                ),
                StoreState::Unreadable,
            );
        }
        // A schema larger than the first page (version 3 and later) makes damage past
        // it show up already while opening.
        Err(e) if e.is_corrupt() => {
            return (
                Finding::problem(
                    CHECK,
                    format!("{shown} is damaged: {e}"),
                    format!(
                        "restore {shown} from a backup, or move it aside and register the \
                         devices again"
                    ),
                ),
                StoreState::Unreadable,
            );
        }
        Err(e) => {
            let fix = fix_for(path, &e);
            return (
                Finding::problem(CHECK, e.to_string(), fix),
                StoreState::Unreadable,
            );
        }
    };
    let conn = store.conn();
    let restore =
        format!("restore {shown} from a backup, or move it aside and register the devices again");
    let damaged = |detail: String| {
        (
            Finding::problem(
                CHECK,
                format!("{shown} is damaged: {detail}"),
                restore.clone(),
            ),
            StoreState::Unreadable,
        )
    };
    match health::integrity_problems(conn, MAX_QUOTED_PROBLEMS) {
        Ok(p) if p.is_empty() => {}
        Ok(p) => return damaged(format!("the integrity check found: {}", p.join("; "))),
        Err(e) => return damaged(format!("the integrity check failed: {e}")),
    }
    let version = match health::schema_version(conn) {
        Ok(v) => v,
        Err(e) => return damaged(e.to_string()),
    };
    let devices = match health::users_with_active_devices(conn) {
        Ok(d) => d,
        Err(e) => return damaged(e.to_string()),
    };
    let mode = |p: &Path| {
        std::fs::metadata(p).map_or_else(
            |_| "?".to_owned(),
            |m| format!("{:04o}", m.permissions().mode() & 0o7777),
        )
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    (
        Finding::ok(
            CHECK,
            format!(
                "{shown}: owned by root, directory {} and file {}, schema version {version}, \
                 integrity check passed, {}",
                mode(dir),
                mode(path),
                size(path)
            ),
        ),
        StoreState::Devices(devices),
    )
}

/// The store's size for people: "120.0 KiB (file 116.0 KiB, WAL 4.0 KiB)".
fn size(path: &Path) -> String {
    let f = health::footprint(path);
    format!(
        "size {} (file {}, WAL {})",
        human(f.total()),
        human(f.file),
        human(f.wal)
    )
}

/// A byte count in binary units with one decimal, as `ls -lh` and `df -h` show them.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// A warning when the file system holding the store at `path` has little room left;
/// nothing when it has room, or when its directory does not exist (the store check says
/// so already).
fn space(path: &Path, mfa: &str) -> Option<Finding> {
    let dir = path.parent().filter(|d| d.is_dir())?;
    let free = match health::free_space(path) {
        Ok(free) => free,
        Err(e) => {
            return Some(Finding::warning(
                CHECK,
                format!(
                    "cannot tell how much space is free for {}: {e}",
                    path.display()
                ),
                format!("check the file system holding {} (`df -h`)", dir.display()),
            ));
        }
    };
    (free < LOW_FREE_BYTES).then(|| {
        Finding::warning(
            CHECK,
            format!(
                "only {} free on the file system holding {} ({} of store): when it is full, \
                 logins cannot record their codes and every login with pam_mfa is refused",
                human(free),
                path.display(),
                human(health::footprint(path).total())
            ),
            format!(
                "free space on it (`df -h {}`: old logs, packages, core dumps); the store \
                 itself grows little (`{mfa} admin audit prune` makes room inside it, and \
                 `{mfa} doctor` shows its size)",
                dir.display()
            ),
        )
    })
}

/// What to do about a store the library refused.
fn fix_for(path: &Path, e: &Error) -> String {
    let shown = path.display();
    match e {
        Error::UnsafeStore { .. } => match path.parent() {
            Some(dir) if !dir.exists() => format!(
                "create the directory (`install -d -m 0700 -o root -g root {}`, as \
                 scripts/install.sh does), or correct the store's path",
                dir.display()
            ),
            _ => safety_fix(path),
        },
        Error::NotADatabase { .. } | Error::Sqlite(_) | Error::CorruptRecord(_) => format!(
            "restore {shown} from a backup, or move it aside and register the devices again"
        ),
        Error::Uninitialised { .. } => format!(
            "restore {shown} from a backup; if there is none, remove it and register the \
             devices again"
        ),
        Error::SchemaTooNew { .. } => {
            "install the pam_mfa version that wrote it (pam_mfa.so and mfa together)".to_owned()
        }
        _ => format!("check that root can read {shown} and its directory"),
    }
}

/// The commands that give the store back its safety: directory 0700 and file 0600,
/// both root's, and no symbolic link.
fn safety_fix(path: &Path) -> String {
    let mut steps = Vec::new();
    let mut was_readable = false;
    if let Some(dir) = path.parent()
        && let Ok(m) = std::fs::metadata(dir)
    {
        let d = dir.display();
        if m.uid() != 0 {
            steps.push(format!("chown root:root {d}"));
        }
        if m.permissions().mode() & 0o077 != 0 {
            steps.push(format!("chmod 0700 {d}"));
        }
    }
    if let Ok(m) = std::fs::symlink_metadata(path) {
        let f = path.display();
        if m.file_type().is_symlink() {
            steps.push(format!(
                "replace the symbolic link {f} with the store itself"
            ));
        } else {
            if m.uid() != 0 {
                steps.push(format!("chown root:root {f}"));
                was_readable = true;
            }
            if m.permissions().mode() & 0o077 != 0 {
                steps.push(format!("chmod 0600 {f}"));
                was_readable |= m.permissions().mode() & 0o044 != 0;
            }
        }
    }
    let mut fix = if steps.is_empty() {
        "make the directory 0700 and the file 0600, both owned by root".to_owned()
    } else {
        steps.join(" && ")
    };
    if was_readable {
        fix.push_str(
            "; someone else could read the secrets meanwhile, so consider registering the \
             devices again",
        );
    }
    fix
}
