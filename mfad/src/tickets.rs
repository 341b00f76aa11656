//! Single-use tickets held in the daemon's memory: the proofs of a device that a change
//! request must carry (see the protocol crate's "Proofs"), and recovery-code sets waiting
//! for the client to confirm it printed them ("Recovery codes").
//!
//! Security-key challenges (login, proof, registration) are held the same way, for
//! [`pam_mfa_protocol::KEY_CHALLENGE_LIFETIME_SECS`].
//!
//! A ticket is 32 random bytes, bound to the peer uid and the account it was issued for,
//! valid for [`pam_mfa_protocol::PROOF_LIFETIME_SECS`] (or its kind's lifetime), and forgotten the first time it is
//! presented by that peer for that account. Memory is bounded: a non-root uid holds at
//! most [`PER_UID`] of each kind (a new one replaces its oldest) and all together at most
//! [`TOTAL`] (past that, new ones are refused until some expire). Root is held to
//! [`TOTAL`] only: every login through sshd, sudo, su or login is root's, and one login's
//! key challenge must not be pushed out by the next few logins while its user touches the
//! key.

use pam_mfa::clock::UnixTime;
use std::collections::HashMap;

use pam_mfa_protocol::PROOF_LIFETIME_SECS;
use zeroize::Zeroizing;

pub const PER_UID: usize = 4;
pub const TOTAL: usize = 4096;

pub type Token = Zeroizing<[u8; 32]>;

struct Entry<T> {
    uid: u32,
    user: String,
    issued: UnixTime,
    value: T,
}

pub struct Held<T> {
    entries: HashMap<[u8; 32], Entry<T>>,
    /// How long a ticket is taken, in seconds.
    lifetime: i64,
}

/// Why no ticket was issued.
#[derive(Debug)]
pub enum IssueError {
    Random(String),
    Full,
}

impl<T> Held<T> {
    /// Tickets valid for [`PROOF_LIFETIME_SECS`].
    pub fn new() -> Self {
        Self::with_lifetime(PROOF_LIFETIME_SECS)
    }

    /// Tickets valid for `lifetime` seconds (security-key challenges).
    pub fn with_lifetime(lifetime: i64) -> Self {
        Self {
            entries: HashMap::new(),
            lifetime,
        }
    }

    fn expired(&self, issued: UnixTime, now: UnixTime) -> bool {
        now >= issued + self.lifetime || now < issued - 60
    }

    /// Holds `value` for `uid` and `user`; the ticket and when it expires.
    pub fn issue(
        &mut self,
        uid: u32,
        user: &str,
        value: T,
        now: UnixTime,
    ) -> Result<(Token, i64), IssueError> {
        let lifetime = self.lifetime;
        self.entries
            .retain(|_, e| !(now >= e.issued + lifetime || now < e.issued - 60));
        if uid != 0 {
            let mut mine: Vec<([u8; 32], i64)> = self
                .entries
                .iter()
                .filter(|(_, e)| e.uid == uid)
                .map(|(k, e)| (*k, e.issued))
                .collect();
            mine.sort_by_key(|(_, issued)| *issued);
            while mine.len() >= PER_UID {
                let (oldest, _) = mine.remove(0);
                self.entries.remove(&oldest);
            }
        }
        if self.entries.len() >= TOTAL {
            return Err(IssueError::Full);
        }
        let mut token = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *token).map_err(|e| IssueError::Random(e.to_string()))?;
        self.entries.insert(
            *token,
            Entry {
                uid,
                user: user.to_owned(),
                issued: now,
                value,
            },
        );
        Ok((token, now + self.lifetime))
    }

    /// The value held under `token` for `uid` and `user`, taken out: a ticket works once.
    /// A ticket of another uid or account is left alone (and not given).
    pub fn take(&mut self, token: &[u8], uid: u32, user: &str, now: UnixTime) -> Option<T> {
        let key: [u8; 32] = token.try_into().ok()?;
        let entry = self.entries.get(&key)?;
        if entry.uid != uid || entry.user != user {
            return None;
        }
        let entry = self.entries.remove(&key)?;
        (!self.expired(entry.issued, now)).then_some(entry.value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_ticket_works_once_for_its_uid_and_account_only() {
        let mut held = Held::new();
        let (t, expires) = held.issue(1000, "alice", 7, 100).unwrap();
        assert_eq!(expires, 100 + PROOF_LIFETIME_SECS);
        assert_eq!(held.take(&t[..], 1001, "alice", 101), None);
        assert_eq!(held.take(&t[..], 1000, "bob", 101), None);
        assert_eq!(held.take(&t[..5], 1000, "alice", 101), None);
        assert_eq!(held.take(&t[..], 1000, "alice", 101), Some(7));
        assert_eq!(held.take(&t[..], 1000, "alice", 101), None);
        let (t, _) = held.issue(1000, "alice", 8, 100).unwrap();
        assert_eq!(
            held.take(&t[..], 1000, "alice", 100 + PROOF_LIFETIME_SECS),
            None
        );
    }

    #[test]
    fn a_uid_holds_a_few_at_most() {
        let mut held = Held::new();
        let tickets: Vec<_> = (0..10)
            .map(|i| held.issue(1000, "alice", i, 100 + i64::from(i)).unwrap().0)
            .collect();
        assert_eq!(held.entries.len(), PER_UID);
        assert_eq!(held.take(&tickets[0][..], 1000, "alice", 120), None);
        assert_eq!(held.take(&tickets[9][..], 1000, "alice", 120), Some(9));
        // Root's many logins each keep theirs.
        let roots: Vec<_> = (0..10)
            .map(|i| held.issue(0, "bob", i, 100).unwrap().0)
            .collect();
        assert_eq!(held.take(&roots[0][..], 0, "bob", 120), Some(0));
    }
}
