//! The two queues between the connection threads and the store thread: root's requests
//! are always taken first, so no number of users' requests delays a login or root's `mfa`.

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;
use std::sync::{Condvar, Mutex, PoisonError};

use pam_mfa_protocol::Response;

use crate::authorise::Work;

/// Requests of non-root callers waiting at once. Each connection has at most one
/// request outstanding, so the connection caps bound it already; this is a second fence.
pub const USERS_WAITING: usize = 256;

pub struct Job {
    /// The peer's uid (for the audit trail and log lines).
    pub uid: u32,
    pub work: Work,
    pub reply: SyncSender<Response>,
}

#[derive(Default)]
struct Lanes {
    root: VecDeque<Job>,
    users: VecDeque<Job>,
}

pub struct Queue {
    lanes: Mutex<Lanes>,
    ready: Condvar,
}

impl Default for Queue {
    fn default() -> Self {
        Self::new()
    }
}

impl Queue {
    pub fn new() -> Self {
        Self {
            lanes: Mutex::new(Lanes::default()),
            ready: Condvar::new(),
        }
    }

    /// Queues a job; a non-root caller's is handed back when its lane is full.
    pub fn push(&self, job: Job) -> Result<(), Job> {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if job.uid == 0 {
            lanes.root.push_back(job);
        } else if lanes.users.len() >= USERS_WAITING {
            return Err(job);
        } else {
            lanes.users.push_back(job);
        }
        drop(lanes);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, root's first; waits for one.
    pub fn pop(&self) -> Job {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = lanes.root.pop_front().or_else(|| lanes.users.pop_front()) {
                return job;
            }
            lanes = self
                .ready
                .wait(lanes)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn job(uid: u32) -> (Job, std::sync::mpsc::Receiver<Response>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        (
            Job {
                uid,
                work: Work::Hello,
                reply: tx,
            },
            rx,
        )
    }

    #[test]
    fn root_first_and_users_bounded() {
        let q = Queue::new();
        let mut keep = Vec::new();
        for _ in 0..USERS_WAITING {
            let (j, rx) = job(1000);
            assert!(q.push(j).is_ok());
            keep.push(rx);
        }
        let (j, _rx) = job(1000);
        assert!(q.push(j).is_err(), "the users' lane is bounded");
        let (j, _rx2) = job(0);
        assert!(q.push(j).is_ok(), "root is never turned away");
        assert_eq!(q.pop().uid, 0);
        assert_eq!(q.pop().uid, 1000);
    }
}
