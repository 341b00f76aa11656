//! `pam-client`: the smallest PAM application that can drive `pam_mfa.so` through the real
//! libpam, so the end-to-end tests exercise the same code path as sshd or sudo.
//!
//! ```text
//! pam-client --service NAME --user USER [--rhost HOST] [--answer TEXT]... [--answer-file PATH]...
//!            [--answer-null]... [--wait-stdin] [--script] [--answers-stdin] [--no-setcred]
//!            [--real-delay]
//! ```
//!
//! Answers (from `--answer`, `--answer-file` and `--answer-null`, which answers with a NULL
//! response, in command-line order) are handed out one per prompt (`PAM_PROMPT_ECHO_OFF` / `PAM_PROMPT_ECHO_ON`). An `--answer-file` supplies the
//! file's whole contents unchanged, which is how the tests send a 1 MB answer without
//! hitting the kernel's per-argument limit. When the answers run out, the conversation
//! returns `PAM_CONV_ERR` for that prompt, as a user pressing Ctrl-D would.
//!
//! `--wait-stdin` reads standard input to end-of-file after `pam_start` (which loads the
//! modules) and before `pam_authenticate`: the concurrency tests start many clients, then
//! close all their stdin pipes at once, so the logins really race inside the module.
//!
//! Every message the module sends is printed to stdout as one line:
//! `prompt-echo-off: TEXT`, `prompt-echo-on: TEXT`, `error: TEXT`, `info: TEXT` (other
//! styles: `unknown-style-N: TEXT`). TEXT has `\` `\n` `\r` `\t` and other control
//! characters escaped (`\\`, `\n`, `\r`, `\t`, `\u{XX}`), so one message is always one line.
//! After `pam_authenticate` it prints `result: NAME`; after a success it then calls
//! `pam_setcred(PAM_ESTABLISH_CRED)`, as sshd, sudo, su and login do (unless
//! `--no-setcred`: an application that stops after authentication), printing the messages
//! of that call like the others and then `setcred: NAME`. It exits with the numeric PAM
//! code of `pam_authenticate`.
//! As soon as `main` runs it prints `pam-client: started` on stderr (see `main`), then
//! `pam-client: time SECONDS`, the wall clock it sees (a fake one under libfaketime).
//! Errors of the client itself (bad usage, `pam_start` failing) exit with 64 / 70, values
//! no PAM code takes, and print no `result:` line.
//!
//! `--script` makes one process do many logins (the soak test: pam_wrapper limits how many
//! clients can start per second, not how many logins one client does). It reads lines
//! `UNIXTIME ANSWER` from stdin; for each it sets `FAKETIME` to `UNIXTIME` (under
//! libfaketime with `FAKETIME_FMT=%s` and `FAKETIME_NO_CACHE=1`, the clock then stands at
//! that moment), runs `pam_start`, `pam_authenticate` answering the first prompt with
//! ANSWER, and `pam_end`, and prints `login: NAME` (no message lines). It exits 0 at
//! end-of-file. `--answer` and `--wait-stdin` are ignored in this mode.
//!
//! The client never sets `PAM_SILENT` or any other flag: it calls `pam_authenticate(pamh, 0)`.
//! It installs a `PAM_FAIL_DELAY` callback that does not sleep, so a module asking for a
//! delay after a failure does not slow the test suite down: the delay libpam computed is
//! reported on stderr instead, as `pam-client: fail delay of N us after RESULT skipped`
//! (when N > 0). `--real-delay` installs none, so libpam sleeps as it does in sshd or
//! sudo.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::io::{Read, Write};
use std::process::ExitCode;

/// Linux-PAM return codes used by this client (values from `<security/_pam_types.h>`).
const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;

/// Message styles.
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

/// `pam_setcred` flag.
const PAM_ESTABLISH_CRED: c_int = 0x0002;

/// Item types for `pam_set_item`.
const PAM_RHOST: c_int = 4;
const PAM_FAIL_DELAY: c_int = 10;

/// Linux-PAM never passes more messages than this in one conversation call.
const PAM_MAX_NUM_MSG: c_int = 32;

/// Exit codes of the client's own failures, chosen outside the PAM code range (0..=31).
const EXIT_USAGE: u8 = 64;
const EXIT_SOFTWARE: u8 = 70;

/// `struct pam_message`.
#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

/// `struct pam_response`: `resp` must be allocated with `malloc`, libpam frees it.
#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

/// The conversation callback type of `struct pam_conv`.
type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

/// The opaque `pam_handle_t`.
#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

/// The `PAM_FAIL_DELAY` callback type.
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
    fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// The parsed command line.
struct Args {
    service: CString,
    user: CString,
    rhost: Option<CString>,
    /// `None`: answer that prompt with a NULL response (`--answer-null`).
    answers: VecDeque<Option<CString>>,
    wait_stdin: bool,
    script: bool,
    /// `--answers-stdin`: once the given answers run out, each prompt is answered with
    /// the next line of stdin, read when the prompt comes (for conversations whose later
    /// answers depend on earlier messages, like registration at login).
    answers_stdin: bool,
    /// `--no-setcred`: stop after `pam_authenticate`, as an application that never sets
    /// credentials would.
    no_setcred: bool,
    /// `--real-delay`: no `PAM_FAIL_DELAY` callback; libpam sleeps after a failure.
    real_delay: bool,
}

/// State shared with the conversation callback through `appdata_ptr`.
struct ConvState {
    answers: VecDeque<Option<CString>>,
    answers_stdin: bool,
}

/// One line of stdin without its newline, for `--answers-stdin`; `None` at end of input.
fn stdin_answer() -> Option<CString> {
    use std::io::BufRead;
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => CString::new(line.trim_end_matches(['\n', '\r'])).ok(),
    }
}

fn usage() -> String {
    "usage: pam-client --service NAME --user USER [--rhost HOST] [--answer TEXT]... \
     [--answer-file PATH]... [--answer-null]... [--wait-stdin] [--script] [--answers-stdin] \
     [--no-setcred] [--real-delay]"
        .to_owned()
}

/// Turns bytes into a C string, refusing interior NUL bytes (PAM strings cannot hold them).
fn c_string(what: &str, bytes: Vec<u8>) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{what} contains a NUL byte"))
}

fn parse_args(mut argv: impl Iterator<Item = std::ffi::OsString>) -> Result<Args, String> {
    use std::os::unix::ffi::OsStringExt;

    let mut service = None;
    let mut user = None;
    let mut rhost = None;
    let mut answers = VecDeque::new();
    let mut wait_stdin = false;
    let mut script = false;
    let mut answers_stdin = false;
    let mut no_setcred = false;
    let mut real_delay = false;
    while let Some(flag) = argv.next() {
        let flag = flag
            .into_string()
            .map_err(|f| format!("unknown argument {f:?}\n{}", usage()))?;
        if flag == "--wait-stdin" {
            wait_stdin = true;
            continue;
        }
        if flag == "--script" {
            script = true;
            continue;
        }
        if flag == "--answer-null" {
            answers.push_back(None);
            continue;
        }
        if flag == "--answers-stdin" {
            answers_stdin = true;
            continue;
        }
        if flag == "--no-setcred" {
            no_setcred = true;
            continue;
        }
        if flag == "--real-delay" {
            real_delay = true;
            continue;
        }
        let value = argv
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?
            .into_vec();
        match flag.as_str() {
            "--service" => service = Some(c_string("--service", value)?),
            "--user" => user = Some(c_string("--user", value)?),
            "--rhost" => rhost = Some(c_string("--rhost", value)?),
            "--answer" => answers.push_back(Some(c_string("--answer", value)?)),
            "--answer-file" => {
                let path = std::path::PathBuf::from(std::ffi::OsString::from_vec(value));
                let contents = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                answers.push_back(Some(c_string("--answer-file contents", contents)?));
            }
            _ => return Err(format!("unknown argument {flag:?}\n{}", usage())),
        }
    }
    Ok(Args {
        service: service.ok_or_else(|| format!("--service is required\n{}", usage()))?,
        user: user.ok_or_else(|| format!("--user is required\n{}", usage()))?,
        rhost,
        answers,
        wait_stdin,
        answers_stdin,
        no_setcred,
        real_delay,
        script,
    })
}

/// The symbolic name of a PAM return code, as the tests compare them.
fn pam_code_name(code: c_int) -> String {
    let name = match code {
        0 => "PAM_SUCCESS",
        3 => "PAM_SERVICE_ERR",
        4 => "PAM_SYSTEM_ERR",
        6 => "PAM_PERM_DENIED",
        7 => "PAM_AUTH_ERR",
        8 => "PAM_CRED_INSUFFICIENT",
        9 => "PAM_AUTHINFO_UNAVAIL",
        10 => "PAM_USER_UNKNOWN",
        11 => "PAM_MAXTRIES",
        19 => "PAM_CONV_ERR",
        25 => "PAM_IGNORE",
        26 => "PAM_ABORT",
        other => return other.to_string(),
    };
    name.to_owned()
}

/// Escapes a message so that it fits on one output line (see the module docs).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Copies `s` into memory from `malloc`, as libpam will `free` every response string.
fn malloc_c_string(s: &CStr) -> *mut c_char {
    let bytes = s.to_bytes_with_nul();
    // SAFETY: malloc has no preconditions; a null result is handled by the caller.
    let p = unsafe { libc::malloc(bytes.len()) }.cast::<c_char>();
    if !p.is_null() {
        // SAFETY: `p` points to `bytes.len()` freshly allocated bytes that cannot overlap
        // `bytes`, and `bytes` is valid for reads of that length.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), p, bytes.len()) };
    }
    p
}

/// Frees a response array built by `converse` (used when the conversation fails part way).
///
/// # Safety
/// `replies` must come from `calloc(n, size_of::<PamResponse>())` and each non-null
/// `resp` field from `malloc`.
unsafe fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: the caller guarantees `replies` holds `n` initialised elements.
        let r = unsafe { &mut *replies.add(i) };
        if !r.resp.is_null() {
            // SAFETY: non-null `resp` fields were allocated with malloc and not yet freed.
            unsafe { libc::free(r.resp.cast()) };
            r.resp = std::ptr::null_mut();
        }
    }
    // SAFETY: `replies` came from calloc and is freed exactly once here.
    unsafe { libc::free(replies.cast()) };
}

/// The body of the conversation; `conversation` wraps it so no panic crosses into libpam.
///
/// # Safety
/// Arguments as libpam passes them to a `pam_conv` callback, with `appdata_ptr` pointing
/// to the `ConvState` that `main` registered.
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    if appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    let n = usize::try_from(num_msg).unwrap_or(0);
    // SAFETY: `appdata_ptr` is the `&mut ConvState` that `main` passed to pam_start, which
    // outlives the PAM handle; libpam calls the conversation from this thread only.
    let state = unsafe { &mut *appdata_ptr.cast::<ConvState>() };
    // SAFETY: calloc has no preconditions; zeroed memory is a valid array of PamResponse
    // (null pointers, zero codes).
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for i in 0..n {
        // SAFETY: Linux-PAM passes `msg` as an array of `num_msg` pointers to messages.
        let m_ptr = unsafe { *msg.add(i) };
        if m_ptr.is_null() {
            // SAFETY: `replies` holds `n` zero-initialised or filled elements.
            unsafe { free_replies(replies, n) };
            return PAM_CONV_ERR;
        }
        // SAFETY: non-null message pointers from libpam point to valid `pam_message`s.
        let m = unsafe { &*m_ptr };
        let text = if m.msg.is_null() {
            String::new()
        } else {
            // SAFETY: `msg` of a pam_message is a NUL-terminated string owned by libpam
            // for the duration of this call.
            unsafe { CStr::from_ptr(m.msg) }
                .to_string_lossy()
                .into_owned()
        };
        let label = match m.msg_style {
            PAM_PROMPT_ECHO_OFF => "prompt-echo-off".to_owned(),
            PAM_PROMPT_ECHO_ON => "prompt-echo-on".to_owned(),
            PAM_ERROR_MSG => "error".to_owned(),
            PAM_TEXT_INFO => "info".to_owned(),
            other => format!("unknown-style-{other}"),
        };
        // Output errors (a closed pipe) must not change what the module sees.
        let _ = writeln!(out, "{label}: {}", escape(&text));
        let _ = out.flush();
        match m.msg_style {
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                let answer = state.answers.pop_front().or_else(|| {
                    if state.answers_stdin {
                        stdin_answer().map(Some)
                    } else {
                        None
                    }
                });
                let Some(answer) = answer else {
                    eprintln!("pam-client: no answer left for prompt {:?}", text);
                    // SAFETY: as above.
                    unsafe { free_replies(replies, n) };
                    return PAM_CONV_ERR;
                };
                // `--answer-null`: the response stays NULL, as some applications send.
                let Some(answer) = answer else {
                    continue;
                };
                let p = malloc_c_string(&answer);
                if p.is_null() {
                    // SAFETY: as above.
                    unsafe { free_replies(replies, n) };
                    return PAM_BUF_ERR;
                }
                // SAFETY: `i < n`, inside the calloc'ed array.
                unsafe { (*replies.add(i)).resp = p };
            }
            PAM_ERROR_MSG | PAM_TEXT_INFO => {}
            _ => {
                // A style this client does not implement (binary prompts, radio): refuse
                // rather than guess an answer.
                // SAFETY: as above.
                unsafe { free_replies(replies, n) };
                return PAM_CONV_ERR;
            }
        }
    }
    // SAFETY: `resp` is a valid out-pointer given by libpam; ownership of `replies` passes
    // to libpam, which frees the array and each response string.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// The `pam_conv` callback libpam calls; it never lets a panic unwind into C.
///
/// # Safety
/// Called by libpam only, with the arguments of a `pam_conv` callback.
unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    let result = std::panic::catch_unwind(|| {
        // SAFETY: forwarded unchanged from libpam, see `converse`.
        unsafe { converse(num_msg, msg, resp, appdata_ptr) }
    });
    result.unwrap_or(PAM_CONV_ERR)
}

/// The `PAM_FAIL_DELAY` callback: reports the delay instead of sleeping.
///
/// # Safety
/// Called by libpam only.
unsafe extern "C" fn no_fail_delay(retval: c_int, usec_delay: c_uint, _appdata_ptr: *mut c_void) {
    if usec_delay > 0 {
        let _ = std::panic::catch_unwind(|| {
            eprintln!("pam-client: fail delay of {usec_delay} us after {retval} skipped");
        });
    }
}

/// The text libpam gives for a code.
fn strerror(pamh: *mut PamHandle, code: c_int) -> String {
    // SAFETY: pam_strerror accepts any handle (it is unused by Linux-PAM, and a null one is
    // allowed) and returns a static NUL-terminated string or null.
    let p = unsafe { pam_strerror(pamh, code) };
    if p.is_null() {
        return format!("PAM error {code}");
    }
    // SAFETY: non-null results of pam_strerror are static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn main() -> ExitCode {
    // By now every preloaded library's constructor has run (pam_wrapper sets up its
    // private copy of the service directory in its constructor); the harness waits for
    // this line before it lets the next client start, see `STARTED_MARK` in the harness.
    eprintln!("pam-client: started");
    // The clock this process (and so the module inside it) sees, for the harness to check
    // that a fake clock took effect.
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        eprintln!("pam-client: time {}", now.as_secs());
    }
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pam-client: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.script {
        return run_script(&args);
    }
    let mut state = Box::new(ConvState {
        answers: args.answers,
        answers_stdin: args.answers_stdin,
    });
    let conv = PamConv {
        conv: Some(conversation),
        appdata_ptr: std::ptr::from_mut::<ConvState>(&mut *state).cast(),
    };
    let mut pamh: *mut PamHandle = std::ptr::null_mut();
    let mut login_started = std::time::Instant::now();
    // SAFETY: all strings are NUL-terminated and live until pam_end; `conv` and the state
    // it points to live until the end of `main`, after pam_end; `pamh` is a valid out-pointer.
    let rc = unsafe { pam_start(args.service.as_ptr(), args.user.as_ptr(), &conv, &mut pamh) };
    if rc != PAM_SUCCESS || pamh.is_null() {
        eprintln!(
            "pam-client: pam_start failed: {} ({})",
            pam_code_name(rc),
            strerror(pamh, rc)
        );
        return ExitCode::from(EXIT_SOFTWARE);
    }
    if let Some(rhost) = &args.rhost {
        // SAFETY: `pamh` is a live handle; libpam copies the string.
        let rc = unsafe { pam_set_item(pamh, PAM_RHOST, rhost.as_ptr().cast()) };
        if rc != PAM_SUCCESS {
            eprintln!(
                "pam-client: pam_set_item(PAM_RHOST) failed: {}",
                pam_code_name(rc)
            );
            // SAFETY: `pamh` is live and ended exactly once.
            unsafe { pam_end(pamh, rc) };
            return ExitCode::from(EXIT_SOFTWARE);
        }
    }
    let delay: FailDelayFn = no_fail_delay;
    let rc = if args.real_delay {
        PAM_SUCCESS
    } else {
        // SAFETY: `pamh` is live; for PAM_FAIL_DELAY libpam stores the function pointer
        // itself.
        unsafe { pam_set_item(pamh, PAM_FAIL_DELAY, delay as *const c_void) }
    };
    if rc != PAM_SUCCESS {
        eprintln!(
            "pam-client: pam_set_item(PAM_FAIL_DELAY) failed: {}",
            pam_code_name(rc)
        );
    }
    if args.wait_stdin {
        eprintln!("pam-client: waiting for stdin to close");
        let mut sink = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut sink) {
            eprintln!("pam-client: reading stdin: {e}");
        }
        login_started = std::time::Instant::now();
    }
    // SAFETY: `pamh` is a live handle; flags 0 as documented above.
    let rc = unsafe { pam_authenticate(pamh, 0) };
    let name = pam_code_name(rc);
    if rc != PAM_SUCCESS {
        eprintln!("pam-client: pam_authenticate: {}", strerror(pamh, rc));
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "result: {name}");
        let _ = out.flush();
    }
    if rc == PAM_SUCCESS && !args.no_setcred {
        // SAFETY: `pamh` is a live handle that has just authenticated.
        let cred = unsafe { pam_setcred(pamh, PAM_ESTABLISH_CRED) };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "setcred: {}", pam_code_name(cred));
        let _ = out.flush();
    }
    // SAFETY: `pamh` is live and ended exactly once; the conversation state outlives it.
    unsafe { pam_end(pamh, rc) };
    // The login as its host sees it, from pam_start (or the barrier) to pam_end's return:
    // what a test that bounds a login's time measures, without this process's own start
    // and exit.
    eprintln!(
        "pam-client: login took {} us",
        login_started.elapsed().as_micros()
    );
    drop(state);
    // A module must not leave threads running in its host; the tests check this count.
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        eprintln!("pam-client: threads after pam_end {}", tasks.count());
    }
    ExitCode::from(u8::try_from(rc).unwrap_or(EXIT_SOFTWARE))
}

/// `--script`: one login per stdin line `UNIXTIME ANSWER`, each at its own fake time.
fn run_script(args: &Args) -> ExitCode {
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::BufRead::read_line(&mut stdin.lock(), &mut line) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(e) => {
                eprintln!("pam-client: reading the script: {e}");
                return ExitCode::from(EXIT_SOFTWARE);
            }
        }
        let Some((at, answer)) = line.trim_end_matches('\n').split_once(' ') else {
            eprintln!("pam-client: bad script line {line:?}");
            return ExitCode::from(EXIT_USAGE);
        };
        if at.is_empty() || !at.bytes().all(|b| b.is_ascii_digit()) {
            eprintln!("pam-client: bad time in script line {line:?}");
            return ExitCode::from(EXIT_USAGE);
        }
        // SAFETY: this process has a single thread (the module leaves none behind after
        // pam_end, which the tests check), so nothing reads the environment concurrently.
        unsafe { std::env::set_var("FAKETIME", at) };
        // The daemon decides by its own clock: a test that wants every script line at its
        // own time names the daemon's clock file (see TestEnv::clock_file), moved here.
        if let Some(file) = std::env::var_os("PAM_MFA_TEST_CLOCK_FILE") {
            let file = std::path::PathBuf::from(file);
            let tmp = file.with_extension("script-new");
            if std::fs::write(&tmp, format!("{at}\n"))
                .and_then(|()| std::fs::rename(&tmp, &file))
                .is_err()
            {
                eprintln!("pam-client: cannot move the daemon's clock");
                return ExitCode::from(EXIT_USAGE);
            }
        }
        let answer = match c_string("script answer", answer.as_bytes().to_vec()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("pam-client: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let mut state = Box::new(ConvState {
            answers: VecDeque::from([Some(answer)]),
            answers_stdin: false,
        });
        let conv = PamConv {
            conv: Some(silent_conversation),
            appdata_ptr: std::ptr::from_mut::<ConvState>(&mut *state).cast(),
        };
        let mut pamh: *mut PamHandle = std::ptr::null_mut();
        // SAFETY: as in `main`: the strings, `conv` and its state outlive the handle.
        let rc = unsafe { pam_start(args.service.as_ptr(), args.user.as_ptr(), &conv, &mut pamh) };
        if rc != PAM_SUCCESS || pamh.is_null() {
            eprintln!("pam-client: pam_start failed: {}", pam_code_name(rc));
            return ExitCode::from(EXIT_SOFTWARE);
        }
        let delay: FailDelayFn = no_fail_delay;
        // SAFETY: `pamh` is live; for PAM_FAIL_DELAY libpam stores the function pointer.
        unsafe { pam_set_item(pamh, PAM_FAIL_DELAY, delay as *const c_void) };
        // SAFETY: `pamh` is a live handle.
        let rc = unsafe { pam_authenticate(pamh, 0) };
        // SAFETY: `pamh` is live and ended exactly once; the state outlives it.
        unsafe { pam_end(pamh, rc) };
        drop(state);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "login: {}", pam_code_name(rc));
        let _ = out.flush();
    }
}

/// The conversation of `--script`: answers prompts like `conversation`, but prints
/// nothing (thousands of logins would only fill the pipe).
///
/// # Safety
/// Called by libpam only, with the arguments of a `pam_conv` callback.
unsafe extern "C" fn silent_conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    let result = std::panic::catch_unwind(|| {
        if num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || msg.is_null() || resp.is_null() {
            return PAM_CONV_ERR;
        }
        if appdata_ptr.is_null() {
            return PAM_CONV_ERR;
        }
        let n = usize::try_from(num_msg).unwrap_or(0);
        // SAFETY: `appdata_ptr` is the `ConvState` `run_script` registered, alive until
        // after pam_end; libpam calls the conversation from this thread only.
        let state = unsafe { &mut *appdata_ptr.cast::<ConvState>() };
        // SAFETY: calloc has no preconditions; zeroed memory is a valid response array.
        let replies =
            unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
        if replies.is_null() {
            return PAM_BUF_ERR;
        }
        for i in 0..n {
            // SAFETY: libpam passes `msg` as an array of `num_msg` message pointers.
            let m_ptr = unsafe { *msg.add(i) };
            if m_ptr.is_null() {
                // SAFETY: `replies` holds `n` zero-initialised or filled elements.
                unsafe { free_replies(replies, n) };
                return PAM_CONV_ERR;
            }
            // SAFETY: non-null message pointers from libpam point to valid messages.
            let style = unsafe { (*m_ptr).msg_style };
            match style {
                PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                    let Some(Some(answer)) = state.answers.pop_front() else {
                        // SAFETY: as above.
                        unsafe { free_replies(replies, n) };
                        return PAM_CONV_ERR;
                    };
                    let p = malloc_c_string(&answer);
                    if p.is_null() {
                        // SAFETY: as above.
                        unsafe { free_replies(replies, n) };
                        return PAM_BUF_ERR;
                    }
                    // SAFETY: `i < n`, inside the calloc'ed array.
                    unsafe { (*replies.add(i)).resp = p };
                }
                PAM_ERROR_MSG | PAM_TEXT_INFO => {}
                _ => {
                    // SAFETY: as above.
                    unsafe { free_replies(replies, n) };
                    return PAM_CONV_ERR;
                }
            }
        }
        // SAFETY: `resp` is a valid out-pointer from libpam, which now owns `replies`.
        unsafe { *resp = replies };
        PAM_SUCCESS
    });
    result.unwrap_or(PAM_CONV_ERR)
}
