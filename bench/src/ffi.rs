//! The little of libpam and the dynamic loader the benchmark calls directly.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_AUTH_ERR: c_int = 7;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_FAIL_DELAY: c_int = 10;
/// Linux-PAM never passes more messages than this in one conversation call.
const PAM_MAX_NUM_MSG: c_int = 32;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

type FailDelayFn =
    unsafe extern "C" fn(retval: c_int, usec_delay: c_uint, appdata_ptr: *mut c_void);

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
}

/// Answers every prompt with `answer` (a copy that libpam frees), shows nothing.
unsafe extern "C" fn answer_prompts(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    let n = num_msg as usize; // in 1..=32, checked above
    // SAFETY: calloc of n zeroed responses; libpam takes ownership and frees it.
    let out = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if out.is_null() {
        return PAM_BUF_ERR;
    }
    // SAFETY: appdata_ptr is the `*const CString` that `login` passed to pam_start, valid for
    // the whole pam_start … pam_end sequence this callback runs in.
    let answer = unsafe { &*appdata_ptr.cast::<CString>() };
    for i in 0..n {
        // SAFETY: Linux-PAM passes `msg` as an array of num_msg message pointers.
        let style = unsafe { (**msg.add(i)).msg_style };
        if style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON {
            // SAFETY: strdup of a valid C string; the copy is freed by libpam.
            let copy = unsafe { libc::strdup(answer.as_ptr()) };
            if copy.is_null() {
                // SAFETY: frees what was allocated above; nothing else refers to it.
                unsafe { free_responses(out, i) };
                return PAM_BUF_ERR;
            }
            // SAFETY: i < n, inside the calloc'ed array.
            unsafe { (*out.add(i)).resp = copy };
        }
    }
    // SAFETY: resp is non-null (checked); libpam reads the array we hand it.
    unsafe { *resp = out };
    PAM_SUCCESS
}

/// # Safety
/// `out` must be a calloc'ed array whose first `filled` entries hold malloc'ed or null strings.
unsafe fn free_responses(out: *mut PamResponse, filled: usize) {
    for i in 0..filled {
        // SAFETY: per the contract, each entry is null or malloc'ed by strdup.
        unsafe { libc::free((*out.add(i)).resp.cast()) };
    }
    // SAFETY: allocated by calloc in answer_prompts.
    unsafe { libc::free(out.cast()) };
}

/// A module asking for a delay after a failure (pam_fail_delay) does not slow the
/// benchmark: the replay attempts of the concurrency run fail by design.
unsafe extern "C" fn no_delay(_retval: c_int, _usec_delay: c_uint, _appdata_ptr: *mut c_void) {}

/// One login: pam_start → pam_authenticate → pam_end, answering the prompt with `answer`.
/// Returns pam_authenticate's result, or the failing call's.
pub fn login(service: &CStr, user: &CStr, answer: &CString) -> c_int {
    let conv = PamConv {
        conv: Some(answer_prompts),
        appdata_ptr: std::ptr::from_ref(answer).cast_mut().cast(),
    };
    let mut pamh: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: valid C strings and a conversation that outlive the handle (pam_end is
    // called below before they go out of scope).
    let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh) };
    if rc != PAM_SUCCESS || pamh.is_null() {
        return rc;
    }
    let delay: FailDelayFn = no_delay;
    // SAFETY: pamh is the live handle from pam_start; PAM_FAIL_DELAY takes a function pointer.
    unsafe { pam_set_item(pamh, PAM_FAIL_DELAY, delay as *const c_void) };
    // SAFETY: pamh is live; flags 0, as sshd and sudo pass it without PAM_SILENT.
    let result = unsafe { pam_authenticate(pamh, 0) };
    // SAFETY: ends the handle started above, exactly once.
    unsafe { pam_end(pamh, result) };
    result
}

/// The loader's view of one `dlopen` + `dlclose` of `path`: whether the object really went
/// away again (a module marked NODELETE, or pinned by a thread-local destructor, would make
/// every later load a reference-count increment and this measurement meaningless).
pub fn load_unload(path: &CStr) -> Result<bool, String> {
    // SAFETY: path is a valid C string; RTLD_NOW | RTLD_LOCAL is how libpam loads modules.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        return Err(format!("dlopen {path:?}: {}", dlerror()));
    }
    // SAFETY: h is the handle returned above, closed exactly once.
    if unsafe { libc::dlclose(h) } != 0 {
        return Err(format!("dlclose {path:?}: {}", dlerror()));
    }
    // SAFETY: RTLD_NOLOAD only looks the object up; a non-null result is a new reference
    // that is closed at once.
    let still = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if still.is_null() {
        Ok(true)
    } else {
        // SAFETY: closes the reference RTLD_NOLOAD just took.
        unsafe { libc::dlclose(still) };
        Ok(false)
    }
}

/// One `dlopen` + `dlclose` pair, as libpam does per pam_start / pam_end.
pub fn load_once(path: &CStr) -> Result<(), String> {
    // SAFETY: as in load_unload.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        return Err(format!("dlopen {path:?}: {}", dlerror()));
    }
    // SAFETY: h is the handle returned above, closed exactly once.
    if unsafe { libc::dlclose(h) } != 0 {
        return Err(format!("dlclose {path:?}: {}", dlerror()));
    }
    Ok(())
}

fn dlerror() -> String {
    // SAFETY: dlerror returns null or a C string valid until the next dl* call; it is
    // copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".to_owned()
    } else {
        // SAFETY: non-null NUL-terminated string from dlerror, copied before any other dl* call.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// The symbolic name of a PAM return code.
pub fn pam_code_name(code: c_int) -> String {
    let name = match code {
        0 => "PAM_SUCCESS",
        3 => "PAM_SERVICE_ERR",
        4 => "PAM_SYSTEM_ERR",
        5 => "PAM_BUF_ERR",
        6 => "PAM_PERM_DENIED",
        7 => "PAM_AUTH_ERR",
        8 => "PAM_CRED_INSUFFICIENT",
        9 => "PAM_AUTHINFO_UNAVAIL",
        10 => "PAM_USER_UNKNOWN",
        11 => "PAM_MAXTRIES",
        19 => "PAM_CONV_ERR",
        25 => "PAM_IGNORE",
        26 => "PAM_ABORT",
        other => return format!("PAM code {other}"),
    };
    name.to_owned()
}
