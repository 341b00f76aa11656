//! Child processes with captured output and a deadline.
//!
//! A product bug must fail a test, not hang the suite: every child is waited for with a
//! generous deadline and killed (by its own handle) when it passes. The deadline is a
//! safety net, never an assertion about speed.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any one child may run before it is considered hung.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(180);

/// How often a waiting test looks at a child again.
const POLL: Duration = Duration::from_millis(5);

/// Output collected from a pipe by a background thread.
type Sink = Arc<Mutex<Vec<u8>>>;

/// A running child whose stdout and stderr are collected in the background, so it can
/// never block on a full pipe, and whose stdin the test controls.
pub struct Running {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Sink,
    stderr: Sink,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

/// How a child ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

fn collect(mut from: impl Read + Send + 'static, into: Sink) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .expect("output sink poisoned")
                    .extend_from_slice(&buf[..n]),
            }
        }
    })
}

impl Running {
    /// Starts `cmd` with all three standard streams piped. `what` names it in panics.
    pub fn spawn(mut cmd: Command, what: impl Into<String>) -> Self {
        let what = what.into();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout: Sink = Arc::default();
        let stderr: Sink = Arc::default();
        let readers = vec![
            collect(
                child.stdout.take().expect("stdout is piped"),
                stdout.clone(),
            ),
            collect(
                child.stderr.take().expect("stderr is piped"),
                stderr.clone(),
            ),
        ];
        Self {
            what,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
            started: Instant::now(),
        }
    }

    /// What the child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("output sink poisoned")).into_owned()
    }

    /// What the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("output sink poisoned")).into_owned()
    }

    /// Writes to the child's stdin. A child that already exited (broken pipe) is not an
    /// error here: its exit status tells the test what happened.
    pub fn write_stdin(&mut self, data: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut()
            && (stdin.write_all(data).is_err() || stdin.flush().is_err())
        {
            self.stdin = None;
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has ended (without waiting for it).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Closes the child's stdin (it reads end-of-file).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Writes `data` from a background thread and then closes stdin, so a child that
    /// writes a lot before reading cannot deadlock against the test.
    pub fn feed_stdin(&mut self, data: Vec<u8>) {
        if let Some(mut stdin) = self.stdin.take() {
            self.readers.push(std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            }));
        }
    }

    /// Waits until `ready(stdout, stderr)` holds. Returns `false` if the child exited first
    /// (the caller then looks at its output); panics if the deadline passes.
    pub fn wait_for(&mut self, condition: &str, mut ready: impl FnMut(&str, &str) -> bool) -> bool {
        loop {
            if ready(&self.stdout(), &self.stderr()) {
                return true;
            }
            if self.child.try_wait().ok().flatten().is_some() {
                // Let the readers drain what the child wrote last, then look once more.
                self.join_readers_with_deadline();
                return ready(&self.stdout(), &self.stderr());
            }
            if self.started.elapsed() > CHILD_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} still running after {:?} while waiting for {condition}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    CHILD_DEADLINE,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn join_readers_with_deadline(&mut self) {
        // The pipes close when the child and any grandchildren holding them exit; readers
        // of pipes still held by a stray grandchild are left behind rather than waited on.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        for r in std::mem::take(&mut self.readers) {
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }

    /// Closes stdin, waits for the child to exit (killing it past the deadline, then
    /// panicking) and returns its status and output.
    pub fn wait(mut self) -> Finished {
        self.stdin = None;
        let status = loop {
            if let Some(status) = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what))
            {
                break status;
            }
            if self.started.elapsed() > CHILD_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.join_readers_with_deadline();
                panic!(
                    "{} hung: killed after {:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    CHILD_DEADLINE,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(POLL);
        };
        self.join_readers_with_deadline();
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// Kills the child with SIGKILL (unless it already exited) and returns how it ended:
    /// `status.signal()` is `Some(9)` if the kill is what ended it.
    ///
    /// libfaketime gives every process `/dev/shm/faketime_shm_PID` and
    /// `/dev/shm/sem.faketime_sem_PID` and removes them when it exits, which a killed
    /// process never does; a later process that gets the same pid then dies at start
    /// ("shm_open failed: File exists"). So the killed child's leftovers are removed here.
    pub fn kill(mut self) -> Finished {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let pid = self.child.id();
        let finished = self.wait();
        if std::os::unix::process::ExitStatusExt::signal(&finished.status).is_some() {
            let _ = std::fs::remove_file(format!("/dev/shm/faketime_shm_{pid}"));
            let _ = std::fs::remove_file(format!("/dev/shm/sem.faketime_sem_{pid}"));
            remove_pam_wrapper_dir(&finished.stderr);
        }
        finished
    }
}

/// pam_wrapper gives each process a directory `/tmp/pam.X` (one of a few dozen letters,
/// machine-wide) and removes it at exit, which a killed process never does; the letter then
/// stays taken for good, and once all are, every pam_wrapper process fails to start
/// ("Failed to find a possible path to create pam_wrapper config dir"). The client's stderr
/// names its directory (pam_wrapper's debug line "Copy config files from … to /tmp/pam.X"),
/// so a killed client's directory is removed here.
fn remove_pam_wrapper_dir(stderr: &str) {
    for line in stderr.lines() {
        let Some((_, dir)) = line.split_once("copy_confdir: Copy config files from ") else {
            continue;
        };
        let Some((_, dir)) = dir.rsplit_once(" to ") else {
            continue;
        };
        let dir = dir.trim();
        let is_slot = dir
            .strip_prefix("/tmp/pam.")
            .is_some_and(|l| l.chars().count() == 1);
        if is_slot {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Running {
    /// A test that panics half way must not leave its children running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            remove_pam_wrapper_dir(&self.stderr());
        }
    }
}

/// Runs `cmd` to completion with `input` on stdin (empty input: stdin at end-of-file).
pub fn run(cmd: Command, what: impl Into<String>, input: Vec<u8>) -> Finished {
    let mut running = Running::spawn(cmd, what);
    running.feed_stdin(input);
    running.wait()
}
