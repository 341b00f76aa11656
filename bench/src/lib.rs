//! `libnss_mfabench.so`: the password database of the benchmark's synthetic accounts.
//!
//! pam_mfa looks every login name up in the password database (`getpwnam`, then `getpwuid`
//! for the canonical name), so the benchmark's 100,000 users must be accounts. Creating
//! real ones is out of the question, and nss_wrapper's own flat-file backend scans its
//! file linearly: at 100,000 entries one `getpwnam` + `getpwuid` pair costs 4–6 ms, which
//! would swamp the login it is part of and measure nss_wrapper rather than pam_mfa (a real
//! host with that many accounts answers from an indexed directory cache such as sssd's).
//! So the benchmark children run under nss_wrapper with this module as its second backend
//! (`NSS_WRAPPER_MODULE_SO_PATH`, `NSS_WRAPPER_MODULE_FN_PREFIX=mfabench`): account
//! `mfab0000000` … `mfab9999999` exists with uid `3000000 + n`, computed, in O(1). Names
//! that are not ours (root, from nss_wrapper's passwd file) are someone else's business.
//!
//! The functions follow glibc's NSS module ABI (`enum nss_status`, `errnop`), which
//! nss_wrapper calls with the same signatures.

use std::ffi::{CStr, c_char, c_int, c_long};

#[path = "accounts.rs"]
mod accounts;

const NSS_STATUS_TRYAGAIN: c_int = -2;
const NSS_STATUS_NOTFOUND: c_int = 0;
const NSS_STATUS_SUCCESS: c_int = 1;

const HOME: &[u8] = b"/nonexistent\0";
const SHELL: &[u8] = b"/usr/sbin/nologin\0";
const PASSWD: &[u8] = b"x\0";
const GECOS: &[u8] = b"\0";

/// Fills `pwd` (its strings in `buf`) for account `n`.
///
/// # Safety
/// `pwd` must point to a writable `struct passwd`, `buf` to `buflen` writable bytes and
/// `errnop` to a writable int, as the NSS ABI guarantees.
unsafe fn fill(
    n: u32,
    pwd: *mut libc::passwd,
    buf: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
) -> c_int {
    let mut name = accounts::name(n).into_bytes();
    name.push(0);
    let parts: [&[u8]; 5] = [&name, PASSWD, GECOS, HOME, SHELL];
    let needed: usize = parts.iter().map(|p| p.len()).sum();
    if pwd.is_null() || buf.is_null() || needed > buflen {
        if !errnop.is_null() {
            // SAFETY: errnop is non-null and points to the caller's int (NSS ABI).
            unsafe { *errnop = libc::ERANGE };
        }
        return NSS_STATUS_TRYAGAIN;
    }
    let mut ptrs = [std::ptr::null_mut::<c_char>(); 5];
    let mut offset = 0;
    for (part, ptr) in parts.iter().zip(ptrs.iter_mut()) {
        // SAFETY: offset + part.len() <= needed <= buflen, so the destination lies inside
        // the caller's buffer, which cannot overlap our own slices.
        unsafe {
            let dst = buf.add(offset);
            std::ptr::copy_nonoverlapping(part.as_ptr().cast::<c_char>(), dst, part.len());
            *ptr = dst;
        }
        offset += part.len();
    }
    let uid = accounts::FIRST_UID + n;
    // SAFETY: pwd is non-null and points to the caller's struct passwd (NSS ABI); every
    // string pointer stored points into the caller's buffer filled above.
    unsafe {
        *pwd = libc::passwd {
            pw_name: ptrs[0],
            pw_passwd: ptrs[1],
            pw_uid: uid,
            pw_gid: uid,
            pw_gecos: ptrs[2],
            pw_dir: ptrs[3],
            pw_shell: ptrs[4],
        };
    }
    NSS_STATUS_SUCCESS
}

/// # Safety
/// NSS module ABI: `name` a C string, the rest as for [`fill`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_mfabench_getpwnam_r(
    name: *const c_char,
    pwd: *mut libc::passwd,
    buf: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
) -> c_int {
    if name.is_null() {
        return NSS_STATUS_NOTFOUND;
    }
    // SAFETY: name is a non-null, NUL-terminated string from the caller (NSS ABI).
    let name = unsafe { CStr::from_ptr(name) };
    match accounts::parse(name.to_bytes()) {
        // SAFETY: the caller's pointers are passed on unchanged (same contract).
        Some(n) => unsafe { fill(n, pwd, buf, buflen, errnop) },
        None => NSS_STATUS_NOTFOUND,
    }
}

/// # Safety
/// NSS module ABI, as for [`fill`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _nss_mfabench_getpwuid_r(
    uid: libc::uid_t,
    pwd: *mut libc::passwd,
    buf: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
) -> c_int {
    match accounts::from_uid(uid) {
        // SAFETY: the caller's pointers are passed on unchanged (same contract).
        Some(n) => unsafe { fill(n, pwd, buf, buflen, errnop) },
        None => NSS_STATUS_NOTFOUND,
    }
}

// Enumeration and groups: nss_wrapper looks these up when it loads the module. The
// benchmark never enumerates accounts, and its accounts belong to no supplementary group.

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_setpwent() -> c_int {
    NSS_STATUS_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_getpwent_r(
    _pwd: *mut libc::passwd,
    _buf: *mut c_char,
    _buflen: usize,
    _errnop: *mut c_int,
) -> c_int {
    NSS_STATUS_NOTFOUND
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_endpwent() -> c_int {
    NSS_STATUS_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_initgroups_dyn(
    _user: *const c_char,
    _group: libc::gid_t,
    _start: *mut c_long,
    _size: *mut c_long,
    _groups: *mut *mut libc::gid_t,
    _limit: c_long,
    _errnop: *mut c_int,
) -> c_int {
    NSS_STATUS_NOTFOUND
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_getgrnam_r(
    _name: *const c_char,
    _grp: *mut libc::group,
    _buf: *mut c_char,
    _buflen: usize,
    _errnop: *mut c_int,
) -> c_int {
    NSS_STATUS_NOTFOUND
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_getgrgid_r(
    _gid: libc::gid_t,
    _grp: *mut libc::group,
    _buf: *mut c_char,
    _buflen: usize,
    _errnop: *mut c_int,
) -> c_int {
    NSS_STATUS_NOTFOUND
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_setgrent() -> c_int {
    NSS_STATUS_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_getgrent_r(
    _grp: *mut libc::group,
    _buf: *mut c_char,
    _buflen: usize,
    _errnop: *mut c_int,
) -> c_int {
    NSS_STATUS_NOTFOUND
}

#[unsafe(no_mangle)]
pub extern "C" fn _nss_mfabench_endgrent() -> c_int {
    NSS_STATUS_SUCCESS
}
