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
}

impl Drop for Running {
    /// A test that panics half way must not leave its children running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion with `input` on stdin (empty input: stdin at end-of-file).
pub fn run(cmd: Command, what: impl Into<String>, input: Vec<u8>) -> Finished {
    let mut running = Running::spawn(cmd, what);
    running.feed_stdin(input);
    running.wait()
}
