//! Recovery codes and administrator-issued bypass codes: the only ways back in for a user
//! who lost every device. Their rows are [`crate::store::recovery_codes`].
//!
//! Both are 12 characters from a 32-letter alphabet without look-alikes (60 bits),
//! shown as `abcd-efgh-jkmn`, shown once, and stored only as SHA-256 over a per-code
//! random 16-byte salt and the code. A slow password hash (argon2) exists to protect
//! low-entropy secrets people choose; these codes are machine-made with 60 bits, so even
//! with the store in hand, finding one takes ~2^59 SHA-256 evaluations per code (the salt
//! rules out shared tables), while a slow hash would only make every login pay for
//! nothing. Online guessing is bounded by the same lock-out as codes.
//!
//! A recovery code works once; `mfa recovery generate` replaces the whole set. A bypass
//! code works `uses` times until it expires.

use crate::clock::UnixTime;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::store::auth_state;
use crate::store::recovery_codes::{self as rows, NewRow};
pub use crate::store::recovery_codes::{Bypass, Kind, Outstanding, outstanding, remaining};
use crate::{Error, Result};

/// How many recovery codes a set has.
pub const SET_SIZE: usize = 10;
/// Characters in a code (5 bits each: 60 bits).
pub const CODE_CHARS: usize = 12;
/// Lower-case letters and digits without the look-alikes 0/o and 1/l: codes are read
/// aloud and typed from paper.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// What a login with a recovery or bypass code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Used {
    /// Accepted; `remaining` codes of this kind (recovery: codes left in the set; bypass:
    /// uses left of this code) remain.
    Accepted {
        kind: Kind,
        remaining: u32,
    },
    NotFound,
}

/// A new random code, `CODE_CHARS` characters, not grouped.
fn generate() -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; CODE_CHARS]);
    getrandom::fill(&mut *bytes).map_err(|e| Error::Random(e.to_string()))?;
    let a = ALPHABET;
    Ok(Zeroizing::new(
        bytes
            .iter()
            .map(|b| char::from(a[usize::from(b & 31)]))
            .collect(),
    ))
}

/// `abcdefghjkmn` → `abcd-efgh-jkmn`, for reading.
pub fn grouped(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The code typed at a prompt in canonical form (lower case, without dashes and
/// spaces), or `None` when it cannot be a recovery or bypass code (so a verification
/// code is never mistaken for one).
pub fn normalize(answer: &[u8]) -> Option<Zeroizing<String>> {
    let a = ALPHABET;
    let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS));
    for &b in answer {
        match b {
            b'-' | b' ' | b'\t' => {}
            _ => {
                let c = b.to_ascii_lowercase();
                if !a.contains(&c) || out.len() == CODE_CHARS {
                    return None;
                }
                out.push(char::from(c));
            }
        }
    }
    (out.len() == CODE_CHARS).then_some(out)
}

/// A new random code (ungrouped) that no store of this host keeps: a bypass code for the
/// fleet's database, which is sent only [`salted_hash`] of it.
pub fn new_code() -> Result<Zeroizing<String>> {
    generate()
}

/// A new random 16-byte salt and the code's hash over it: what a store keeps of a code,
/// the local one ([`insert`]) or the fleet's database (which compares hashes made the
/// same way, SHA-256 over the salt then the code).
pub fn salted_hash(code: &str) -> Result<([u8; 16], [u8; 32])> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
    let hash = hash(&salt, code);
    Ok((salt, hash))
}

fn hash(salt: &[u8], code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(code.as_bytes());
    h.finalize().into()
}

/// Whether two hashes are equal, in constant time (`subtle`, not a hand-written loop:
/// one wrong operator in such a loop let about one made-up code in 28 through).
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

/// One row to store: whose, which kind, how many uses, until when.
struct NewCode<'a> {
    user: &'a str,
    kind: Kind,
    uses: u32,
    expires_at: Option<UnixTime>,
    now: UnixTime,
    by_uid: u32,
}

/// Stores `code` as a salted hash.
fn insert(conn: &Connection, new: &NewCode<'_>, code: &str) -> Result<()> {
    let (salt, hash) = salted_hash(code)?;
    rows::insert(
        conn,
        &NewRow {
            user: new.user,
            kind: new.kind,
            salt: &salt,
            hash: &hash,
            uses: new.uses,
            expires_at: new.expires_at,
            now: new.now,
            by_uid: new.by_uid,
        },
    )
}

/// Replaces `user`'s recovery codes with a new set of [`SET_SIZE`], in the caller's
/// transaction, for tests: `mfa` itself shows a set before storing it ([`new_set`]).
#[cfg(test)]
pub(crate) fn generate_set(
    conn: &Connection,
    user: &str,
    now: UnixTime,
    by_uid: u32,
) -> Result<Vec<Zeroizing<String>>> {
    let codes = new_set()?;
    replace_set(conn, user, &codes, now, by_uid)?;
    Ok(codes)
}

/// A new set of [`SET_SIZE`] codes (ungrouped), not yet stored: `mfa` shows them first and
/// stores them with [`replace_set`] only once they were written out in full, so a set
/// nobody saw (the terminal closed, the disk full) never replaces one that works.
pub fn new_set() -> Result<Vec<Zeroizing<String>>> {
    (0..SET_SIZE).map(|_| generate()).collect()
}

/// Replaces `user`'s recovery codes with `codes` (from [`new_set`]), in the caller's
/// transaction.
pub fn replace_set(
    conn: &Connection,
    user: &str,
    codes: &[Zeroizing<String>],
    now: UnixTime,
    by_uid: u32,
) -> Result<()> {
    rows::delete_recovery_set(conn, user)?;
    let new = NewCode {
        user,
        kind: Kind::Recovery,
        uses: 1,
        expires_at: None,
        now,
        by_uid,
    };
    for code in codes {
        insert(conn, &new, code)?;
    }
    Ok(())
}

/// Issues a bypass code for `user` (usable `uses` times until `expires_at`) and clears
/// their lock-out, in the caller's transaction.
pub fn issue_bypass(
    conn: &Connection,
    user: &str,
    uses: u32,
    expires_at: UnixTime,
    now: UnixTime,
    by_uid: u32,
) -> Result<Zeroizing<String>> {
    let code = generate()?;
    let new = NewCode {
        user,
        kind: Kind::Bypass,
        uses,
        expires_at: Some(expires_at),
        now,
        by_uid,
    };
    insert(conn, &new, &code)?;
    auth_state::clear(conn, user)?;
    Ok(code)
}

/// Uses up `code` for `user` if it is one of their valid recovery or bypass codes, in the
/// caller's transaction. Expired and used-up rows are deleted on the way.
pub fn consume(conn: &Connection, user: &str, code: &str, now: UnixTime) -> Result<Used> {
    rows::purge_spent(conn, user, now)?;
    let stored = rows::of_user(conn, user)?;
    // Every row is hashed, match or not, so the time taken does not say which matched.
    let mut found = None;
    for row in &stored {
        if same(&hash(&row.salt, code), &row.hash) && found.is_none() {
            found = Some((row.id, row.kind, row.uses_left));
        }
    }
    let Some((id, kind, uses_left)) = found else {
        return Ok(Used::NotFound);
    };
    let left = uses_left.saturating_sub(1);
    rows::set_uses_left(conn, id, left)?;
    let remaining = match kind {
        Kind::Recovery => remaining(conn, user)?,
        Kind::Bypass => left,
    };
    Ok(Used::Accepted { kind, remaining })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_distinct_and_normalise() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), CODE_CHARS);
        assert_ne!(*a, *b);
        let shown = grouped(&a);
        assert_eq!(shown.len(), CODE_CHARS + 2);
        assert_eq!(
            normalize(shown.to_uppercase().as_bytes())
                .as_deref()
                .map(String::as_str),
            Some(a.as_str())
        );
        assert!(normalize(b"123456").is_none());
        assert!(normalize(b"abcd-efgh-jkm").is_none());
        assert!(normalize(b"abcd-efgh-jkmnp").is_none());
        assert!(normalize(b"abcd-efgh-jkm0").is_none());
        assert!(normalize(b"abcd-efgh-jkml").is_none());
        // 5 bits per character, every symbol reachable.
        let a = ALPHABET;
        let mut sorted = a.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 32);
    }

    #[test]
    fn recovery_codes_work_once_and_regenerating_replaces_them() {
        let mut ts = crate::test_support::temp_store();
        let tx = ts.store.write().unwrap();
        let codes = generate_set(&tx, "alice", 100, 0).unwrap();
        assert_eq!(codes.len(), SET_SIZE);
        assert_eq!(
            consume(&tx, "alice", &codes[3], 101).unwrap(),
            Used::Accepted {
                kind: Kind::Recovery,
                remaining: 9
            }
        );
        assert_eq!(
            consume(&tx, "alice", &codes[3], 102).unwrap(),
            Used::NotFound
        );
        assert_eq!(consume(&tx, "bob", &codes[4], 102).unwrap(), Used::NotFound);
        // Stored only as salted hashes.
        let stored: Vec<Vec<u8>> = tx
            .prepare("SELECT hash FROM recovery_codes")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(stored.iter().all(|h| h.len() == 32));
        let again = generate_set(&tx, "alice", 200, 0).unwrap();
        assert_eq!(
            consume(&tx, "alice", &codes[4], 201).unwrap(),
            Used::NotFound
        );
        assert!(matches!(
            consume(&tx, "alice", &again[0], 201).unwrap(),
            Used::Accepted { .. }
        ));
    }

    /// Made-up codes never pass for one of a user's set (a comparison that let a few
    /// differing bytes through would accept some of 1,000), and the comparison itself
    /// tells equal from unequal hashes of any length.
    #[test]
    fn made_up_codes_are_refused() {
        assert!(same(&[7; 32], &[7; 32]));
        assert!(!same(&[7; 32], &[6; 32]));
        let mut one_off = [7; 32];
        one_off[31] ^= 0x80;
        assert!(!same(&[7; 32], &one_off));
        assert!(!same(&[7; 32], &[7; 31]));
        let mut ts = crate::test_support::temp_store();
        let tx = ts.store.write().unwrap();
        let set = generate_set(&tx, "alice", 100, 0).unwrap();
        for _ in 0..1000 {
            let guess = generate().unwrap();
            if set.contains(&guess) {
                continue;
            }
            assert_eq!(consume(&tx, "alice", &guess, 101).unwrap(), Used::NotFound);
        }
    }

    #[test]
    fn bypass_codes_have_uses_and_expire() {
        let mut ts = crate::test_support::temp_store();
        let tx = ts.store.write().unwrap();
        let code = issue_bypass(&tx, "alice", 2, 1000, 100, 0).unwrap();
        assert_eq!(
            consume(&tx, "alice", &code, 101).unwrap(),
            Used::Accepted {
                kind: Kind::Bypass,
                remaining: 1
            }
        );
        assert!(matches!(
            consume(&tx, "alice", &code, 102).unwrap(),
            Used::Accepted { .. }
        ));
        assert_eq!(consume(&tx, "alice", &code, 103).unwrap(), Used::NotFound);
        let late = issue_bypass(&tx, "alice", 5, 1000, 100, 0).unwrap();
        assert_eq!(consume(&tx, "alice", &late, 1000).unwrap(), Used::NotFound);
        assert!(rows::of_user(&tx, "alice").unwrap().is_empty());
    }
}
