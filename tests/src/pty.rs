//! Driving a program through a pseudo-terminal, the way a person at a terminal does.
//!
//! `su` and an interactive `sudo` read the password and the code from their controlling
//! terminal, not from stdin, and they turn echo off with `TCSAFLUSH`, which throws away
//! anything typed before the prompt. So answers cannot be written ahead: the test must wait
//! for each prompt and only then type. [`PtySession`] runs a command as the leader of a new
//! session whose controlling terminal is a fresh pty, collects everything the terminal
//! shows, and lets the test wait for a text ([`PtySession::expect`]) and type a line
//! ([`PtySession::send_line`]), like `expect(1)`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::process::CHILD_DEADLINE;

/// How often a waiting test looks at the terminal output again.
const POLL: Duration = Duration::from_millis(5);

/// A command running on its own pseudo-terminal; see the module documentation.
pub struct PtySession {
    what: String,
    child: Child,
    master: File,
    output: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    /// How much of the output earlier `expect` calls consumed.
    consumed: usize,
    started: Instant,
}

/// How a session ended.
#[derive(Debug)]
pub struct PtyFinished {
    /// The exit status of the command.
    pub status: ExitStatus,
    /// Everything the terminal showed, `\r\n` turned into `\n`.
    pub transcript: String,
}

/// A new pty pair: (master, slave).
fn open_pty() -> (OwnedFd, OwnedFd) {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    // SAFETY: openpty writes two file descriptors into the two valid out-pointers; the
    // name, termios and winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // The child must not inherit the master (it would then never see end-of-file).
    // SAFETY: fcntl on a descriptor we own, with an integer argument.
    let rc = unsafe {
        use std::os::fd::AsRawFd;
        libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC)
    };
    assert_eq!(rc, 0, "fcntl(FD_CLOEXEC) failed");
    (master, slave)
}

impl PtySession {
    /// Starts `cmd` as a session leader with a new pty as its controlling terminal and as
    /// its stdin, stdout and stderr. `what` names it in panics.
    pub fn spawn(mut cmd: Command, what: impl Into<String>) -> Self {
        let what = what.into();
        let (master, slave) = open_pty();
        let dup = |fd: &OwnedFd| fd.try_clone().expect("cannot duplicate the pty slave");
        cmd.stdin(Stdio::from(dup(&slave)))
            .stdout(Stdio::from(dup(&slave)))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe and touch no memory of
        // the parent; they run in the forked child after stdin was made the pty slave.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        crate::namespace::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        // `cmd` still holds the parent's copies of the slave: drop them so that the master
        // reads end-of-file (EIO) once the child and its descendants have closed it.
        drop(cmd);
        let master = File::from(master);
        let output: Arc<Mutex<Vec<u8>>> = Arc::default();
        let reader = {
            let mut from = master.try_clone().expect("cannot duplicate the pty master");
            let output = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => output
                            .lock()
                            .expect("pty output poisoned")
                            .extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        // EIO: every slave descriptor is closed.
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            what,
            child,
            master,
            output,
            reader: Some(reader),
            consumed: 0,
            started: Instant::now(),
        }
    }

    /// Everything the terminal showed so far, `\r\n` as `\n`.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("pty output poisoned"))
            .replace("\r\n", "\n")
    }

    fn raw(&self) -> Vec<u8> {
        self.output.lock().expect("pty output poisoned").clone()
    }

    fn reader_done(&self) -> bool {
        self.reader.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits until the terminal shows `needle` after what earlier calls consumed, and
    /// returns the output up to and including it. Panics (with the transcript) if the
    /// terminal closes without it or the deadline passes.
    #[track_caller]
    pub fn expect(&mut self, needle: &str) -> String {
        loop {
            let raw = self.raw();
            let fresh = &raw[self.consumed.min(raw.len())..];
            if let Some(pos) = find(fresh, needle.as_bytes()) {
                let end = self.consumed + pos + needle.len();
                let got = String::from_utf8_lossy(&raw[self.consumed..end]).into_owned();
                self.consumed = end;
                return got.replace("\r\n", "\n");
            }
            if self.reader_done() && self.raw().len() == raw.len() {
                panic!(
                    "{}: the terminal closed without showing {needle:?}\ntranscript:\n{}",
                    self.what,
                    self.transcript()
                );
            }
            if self.started.elapsed() > CHILD_DEADLINE {
                let _ = self.child.kill();
                panic!(
                    "{}: no {needle:?} after {CHILD_DEADLINE:?}\ntranscript:\n{}",
                    self.what,
                    self.transcript()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for `prefix` and then for the end of that line, and returns the rest of the
    /// line after `prefix` (for `echo "status=$?"` markers, so a wrong value fails at
    /// once instead of waiting for the right one until the deadline).
    #[track_caller]
    pub fn expect_value(&mut self, prefix: &str) -> String {
        self.expect(prefix);
        self.expect("\n").trim().to_owned()
    }

    /// Types `line` and Enter.
    pub fn send_line(&mut self, line: &str) {
        let mut data = line.as_bytes().to_vec();
        data.push(b'\r');
        // A program that already exited (EIO) shows up in its exit status.
        let _ = self.master.write_all(&data);
        let _ = self.master.flush();
    }

    /// Waits for the command to exit (killing it past the deadline) and for the terminal
    /// to close, and returns its status and the whole transcript.
    pub fn finish(mut self) -> PtyFinished {
        let status = loop {
            if let Some(s) = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what))
            {
                break s;
            }
            if self.started.elapsed() > CHILD_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} hung: killed after {CHILD_DEADLINE:?}\ntranscript:\n{}",
                    self.what,
                    self.transcript()
                );
            }
            std::thread::sleep(POLL);
        };
        // Descendants that keep the terminal open are not waited for past a grace period.
        let grace = Instant::now() + Duration::from_secs(10);
        while !self.reader_done() && Instant::now() < grace {
            std::thread::sleep(POLL);
        }
        if let Some(r) = self.reader.take()
            && r.is_finished()
        {
            let _ = r.join();
        }
        PtyFinished {
            status,
            transcript: self.transcript(),
        }
    }
}

impl Drop for PtySession {
    /// A test that panics half way must not leave its children running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
