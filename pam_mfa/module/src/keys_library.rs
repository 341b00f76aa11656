//! Loading `libpam_mfa_keys.so`, the security-key half of the module, for a key login.
//!
//! The library (interface in [`pam_mfa_keys_abi`]) is found next to this module's own
//! file, as libpam loaded it: `/usr/lib/<triplet>/security/libpam_mfa_keys.so` beside
//! `pam_mfa.so` in the packages, and beside `libpam_mfa_module.so` in a build tree. No
//! environment variable or argument can point elsewhere. The file is opened without
//! following a symbolic link, checked through that descriptor (a regular file that root
//! owns and nobody else can write, in a directory of which the same is true) and loaded
//! through the same descriptor, so the file checked is the file loaded.
//!
//! It is loaded `RTLD_NODELETE`: once a process has used a key, the library stays mapped
//! until the process ends, so nothing it started or registered (a thread's last
//! instructions, a thread-local destructor, libudev loaded on demand) can ever run from
//! unmapped code. Processes that never see a key login never load it.

use std::ffi::{CStr, CString, c_void};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pam_mfa_keys_abi::{
    AskCredential, Assertion, ClientFailure, ENTRY_SYMBOL, Entry, LIBRARY_FILE, Person,
};

/// The loaded library (which stays loaded: `RTLD_NODELETE`).
pub struct KeysLibrary {
    entry: Entry,
}

impl KeysLibrary {
    /// Has the key sign the daemon's `challenge` for one of `credentials` (see
    /// [`pam_mfa_keys_abi::call`]).
    pub fn assert<E>(
        &self,
        challenge: &[u8; 32],
        credentials: &[AskCredential<'_>],
        timeout_secs: u32,
        person: &mut dyn Person<E>,
    ) -> Result<Result<Assertion, ClientFailure>, E> {
        pam_mfa_keys_abi::call(self.entry, challenge, credentials, timeout_secs, person)
    }
}

/// Where the library is: next to the file this module was loaded from.
fn path() -> Result<PathBuf, String> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let here = path as fn() -> Result<PathBuf, String>;
    // SAFETY: dladdr only reads its address argument (an address inside this module) and
    // writes `info`, a valid Dl_info.
    let found = unsafe { libc::dladdr(here as *const c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return Err("cannot find the directory pam_mfa.so was loaded from".to_owned());
    }
    // SAFETY: dladdr succeeded and dli_fname is the loaded object's NUL-terminated name,
    // owned by the dynamic linker while the module is loaded.
    let module = Path::new(std::ffi::OsStr::from_bytes(
        unsafe { CStr::from_ptr(info.dli_fname) }.to_bytes(),
    ));
    match module.parent() {
        Some(dir) if module.is_absolute() => Ok(dir.join(LIBRARY_FILE)),
        _ => Err(format!(
            "pam_mfa.so was loaded as {:?}, not by an absolute path",
            module.display()
        )),
    }
}

/// Why `meta` is not something only root can change, if it is not.
fn not_roots_alone(meta: &std::fs::Metadata) -> Option<String> {
    let mode = meta.permissions().mode() & 0o7777;
    (meta.uid() != 0 || mode & 0o022 != 0).then(|| format!("uid {}, mode {mode:04o}", meta.uid()))
}

/// Opens the library and checks it and its directory. The error says what is wrong.
fn open_checked(path: &Path) -> Result<File, String> {
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file; not loading it"));
    }
    if let Some(why) = not_roots_alone(&meta) {
        return Err(format!(
            "{shown} is not a root-owned file that only root can write ({why}); not loading it"
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let dir_meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(why) = not_roots_alone(&dir_meta) {
        return Err(format!(
            "{} is not a root-owned directory that only root can write ({why}); not loading \
             {shown} from it",
            dir.display()
        ));
    }
    Ok(file)
}

/// Loads the library and finds its entry point. The error says what is wrong, for the log.
pub fn load() -> Result<KeysLibrary, String> {
    let path = path()?;
    let shown = path.display();
    let file = open_checked(&path)?;
    // The descriptor's own name: what is loaded is the inode just checked, whatever
    // happens to the path meanwhile.
    let by_descriptor = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| format!("{shown}: bad descriptor name"))?;
    // SAFETY: `by_descriptor` is a valid C string naming the open, checked file; loading
    // runs the library's initialisers, which are Rust's and the C runtime's (the library
    // is pam_mfa's own). dlerror is read at once below, on this thread.
    let handle = unsafe {
        libc::dlopen(
            by_descriptor.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE,
        )
    };
    if handle.is_null() {
        return Err(format!("cannot load {shown}: {}", dl_error()));
    }
    drop(file);
    // SAFETY: clears any earlier error, so that the one read after dlsym is its own.
    let _ = unsafe { libc::dlerror() };
    // SAFETY: `handle` is a live handle from dlopen (never closed: RTLD_NODELETE, and no
    // dlclose here) and ENTRY_SYMBOL a C string.
    let symbol = unsafe { libc::dlsym(handle, ENTRY_SYMBOL.as_ptr()) };
    if symbol.is_null() {
        return Err(format!(
            "{shown} has no {} (it is from another version of pam_mfa): {}",
            ENTRY_SYMBOL.to_string_lossy(),
            dl_error()
        ));
    }
    // SAFETY: the symbol's versioned name fixes its type: the library defines it as an
    // `Entry` (checked at compile time in pam_mfa/keys-plugin); a library of another
    // interface version has no symbol of this name, and one whose structs differ is
    // caught by the version and sizes the request carries (`pam_mfa_keys_abi`).
    let entry = unsafe { std::mem::transmute::<*mut c_void, Entry>(symbol) };
    Ok(KeysLibrary { entry })
}

/// The dynamic linker's last error message.
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated message valid until the next dl*
    // call on this thread, copied out at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        return "unknown error".to_owned();
    }
    // SAFETY: as above.
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}
