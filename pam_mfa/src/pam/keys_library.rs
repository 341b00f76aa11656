//! Loading `libpam_mfa_keys.so`, the security-key half of the module, for a key login.
//!
//! The library (interface in [`crate::fido2::plugin`]) is found next to this module's own
//! file, as libpam loaded it: `/usr/lib/<triplet>/security/libpam_mfa_keys.so` beside
//! `pam_mfa.so` in the packages, and beside `libpam_mfa.so` in a build tree. No
//! environment variable or argument can point elsewhere; a file that root does not own,
//! or that others can write, is not loaded. Whoever can write the module's directory can
//! replace the module itself, so the directory is trusted as much as the module is.

use std::ffi::{CStr, CString, c_void};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fido2::plugin::{ENTRY_SYMBOL, Entry, LIBRARY_FILE};

/// The loaded library's entry point; the library is unloaded when this is dropped.
pub(super) struct KeysLibrary {
    pub entry: Entry,
    _handle: Handle,
}

/// A dlopen handle, closed when dropped.
struct Handle(*mut c_void);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful dlopen and is closed once; the entry
        // point taken from it is dropped with it (KeysLibrary).
        unsafe { libc::dlclose(self.0) };
    }
}

/// Where the library is: next to the file this module was loaded from.
pub(super) fn path() -> Result<PathBuf, String> {
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

/// Loads the library and finds its entry point. The error says what is wrong, for the log.
pub(super) fn load() -> Result<KeysLibrary, String> {
    let path = path()?;
    let shown = path.display();
    let meta = std::fs::metadata(&path).map_err(|e| format!("{shown}: {e}"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() || meta.uid() != 0 || mode & 0o022 != 0 {
        return Err(format!(
            "{shown} is not a root-owned file that only root can write (uid {}, mode \
             {mode:04o}); not loading it",
            meta.uid()
        ));
    }
    let c_path =
        CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("{shown}: bad path"))?;
    // SAFETY: `c_path` is a valid C string. Loading runs the library's initialisers, which
    // are Rust's and the C runtime's (the library is pam_mfa's own, checked above).
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("cannot load {shown}: {}", dl_error()));
    }
    let handle = Handle(handle);
    // SAFETY: `handle` is a live handle from dlopen and ENTRY_SYMBOL a C string.
    let symbol = unsafe { libc::dlsym(handle.0, ENTRY_SYMBOL.as_ptr()) };
    if symbol.is_null() {
        return Err(format!(
            "{shown} has no {} (it is from another version of pam_mfa)",
            ENTRY_SYMBOL.to_string_lossy()
        ));
    }
    // SAFETY: the symbol's versioned name fixes its type: the library defines it as an
    // `Entry` (checked at compile time in pam_mfa/keys-plugin), and a library of another
    // interface version has no symbol of this name.
    let entry = unsafe { std::mem::transmute::<*mut c_void, Entry>(symbol) };
    Ok(KeysLibrary {
        entry,
        _handle: handle,
    })
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
