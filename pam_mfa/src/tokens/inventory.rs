//! The inventory of hardware tokens: what an import may replace and what it keeps. The
//! table is [`crate::store::tokens`].
//!
//! Functions take a `&Connection` so that the caller decides the transaction (an import
//! and its audit row commit together).

use crate::clock::UnixTime;
use rusqlite::Connection;
use subtle::ConstantTimeEq;

use super::{Mode, TokenSeed};
use crate::store::tokens::{self as rows, NewToken};
pub use crate::store::tokens::{Assignment, InventoryToken, TokenInfo, by_serial, list};
use crate::{Error, Result};

/// How many tokens an import added, and how many it loaded over existing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    pub added: usize,
    pub replaced: usize,
}

fn assigned_error(serial: &str, a: Assignment) -> Error {
    Error::TokenAssigned {
        serial: serial.to_owned(),
        user: a.user,
        device: a.device,
    }
}

/// Loads `seeds` into the inventory inside the caller's transaction: all of them, or (on
/// the first error) none, since the caller then drops the transaction.
///
/// A serial already in the inventory is refused unless `replace`; a token assigned to
/// someone is never replaced (its owner's logins would silently stop working). Loading
/// the same seed again keeps what the store knows about codes already used, so that
/// re-importing a file never makes an old code valid again; a new seed starts afresh.
pub fn import(
    conn: &Connection,
    seeds: &[TokenSeed],
    replace: bool,
    now: UnixTime,
) -> Result<Imported> {
    let mut done = Imported::default();
    for seed in seeds {
        let (kind, counter) = match seed.mode {
            Mode::Totp { .. } => ("totp", None),
            Mode::Hotp { counter } => ("hotp", Some(counter)),
        };
        // What the store knows about codes already used: nothing for a new token.
        let (counter, last_step) = match by_serial(conn, &seed.serial)? {
            None => {
                done.added += 1;
                (counter, None)
            }
            Some(_) if !replace => {
                return Err(Error::DuplicateSerial {
                    serial: seed.serial.clone(),
                });
            }
            Some(InventoryToken {
                assigned: Some(a), ..
            }) => return Err(assigned_error(&seed.serial, a)),
            Some(old) => {
                done.replaced += 1;
                // The same token again only when every parameter is the same: a stored
                // step or counter means nothing under another period, digits or hash.
                let same_seed = old.mode.as_str() == kind
                    && old.algorithm == seed.algorithm
                    && old.digits == seed.digits
                    && match (old.mode, seed.mode) {
                        (Mode::Totp { period: a }, Mode::Totp { period: b }) => a == b,
                        (Mode::Hotp { .. }, Mode::Hotp { .. }) => true,
                        _ => false,
                    }
                    && bool::from(old.secret.as_bytes().ct_eq(seed.secret.as_bytes()));
                match (same_seed, old.mode, counter) {
                    (true, Mode::Hotp { counter: used }, Some(c)) => (Some(c.max(used)), None),
                    (true, _, _) => (counter, old.last_step),
                    (false, _, _) => (counter, None),
                }
            }
        };
        let mode = match (seed.mode, counter) {
            (Mode::Hotp { .. }, Some(counter)) => Mode::Hotp { counter },
            (mode, _) => mode,
        };
        rows::upsert(
            conn,
            &NewToken {
                serial: &seed.serial,
                secret: &seed.secret,
                algorithm: seed.algorithm,
                digits: seed.digits,
                mode,
                last_step,
                imported_at: now,
            },
        )?;
    }
    Ok(done)
}

/// Takes a token out of the inventory for good (lost, broken, returned to the vendor).
/// An assigned token is refused: its device must be removed first, so that nobody's
/// device silently stops working.
pub fn remove(conn: &Connection, serial: &str) -> Result<()> {
    match by_serial(conn, serial)? {
        None => Err(Error::NoSuchToken {
            serial: serial.to_owned(),
        }),
        Some(InventoryToken {
            assigned: Some(a), ..
        }) => Err(assigned_error(serial, a)),
        Some(t) => rows::delete(conn, t.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::Algorithm;
    use crate::secret::Secret;
    use crate::test_support::*;
    use rusqlite::params;

    fn seed(serial: &str, secret: &[u8], mode: Mode) -> TokenSeed {
        TokenSeed::new(
            serial,
            Secret::from_bytes(secret.to_vec()),
            Algorithm::Sha1,
            6,
            mode,
        )
        .unwrap()
    }

    fn import_all(ts: &mut TempStore, seeds: &[TokenSeed], replace: bool) -> Result<Imported> {
        let tx = ts.store.write()?;
        let n = import(&tx, seeds, replace, T0)?;
        tx.commit()?;
        Ok(n)
    }

    #[test]
    fn import_list_replace_remove() {
        let mut ts = temp_store();
        let a = seed("A", &[1; 20], Mode::Totp { period: 30 });
        let b = seed("B", &[2; 20], Mode::Hotp { counter: 5 });
        assert_eq!(
            import_all(&mut ts, &[a.clone(), b.clone()], false).unwrap(),
            Imported {
                added: 2,
                replaced: 0
            }
        );
        let listed = list(ts.store.conn()).unwrap();
        assert_eq!(
            listed.iter().map(|t| t.serial.as_str()).collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert_eq!(listed[1].mode, Mode::Hotp { counter: 5 });
        assert!(listed.iter().all(|t| t.assigned.is_none()));

        // A file with one new and one known serial: refused whole, nothing added.
        let c = seed("C", &[3; 20], Mode::Totp { period: 30 });
        let r = import_all(&mut ts, &[c.clone(), b.clone()], false);
        assert!(
            matches!(r, Err(Error::DuplicateSerial { ref serial }) if serial == "B"),
            "{r:?}"
        );
        assert_eq!(list(ts.store.conn()).unwrap().len(), 2);
        // With --replace it loads; the same seed keeps a counter that moved on.
        ts.store
            .conn()
            .execute("UPDATE tokens SET counter = 40 WHERE serial = 'B'", [])
            .unwrap();
        assert_eq!(
            import_all(&mut ts, &[c, b.clone()], true).unwrap(),
            Imported {
                added: 1,
                replaced: 1
            }
        );
        let b_now = by_serial(ts.store.conn(), "B").unwrap().unwrap();
        assert_eq!(b_now.mode, Mode::Hotp { counter: 40 });
        // A new seed under the same serial starts afresh.
        let b2 = seed("B", &[9; 20], Mode::Hotp { counter: 0 });
        import_all(&mut ts, &[b2], true).unwrap();
        let b_now = by_serial(ts.store.conn(), "B").unwrap().unwrap();
        assert_eq!(b_now.mode, Mode::Hotp { counter: 0 });
        assert_eq!(b_now.secret.as_bytes(), &[9; 20]);

        // The same secret with another time step is another token: the last step used,
        // counted in 30 s steps, means nothing in 60 s ones and is not carried over.
        ts.store
            .conn()
            .execute("UPDATE tokens SET last_step = 1000 WHERE serial = 'A'", [])
            .unwrap();
        import_all(&mut ts, std::slice::from_ref(&a), true).unwrap();
        let a_now = by_serial(ts.store.conn(), "A").unwrap().unwrap();
        assert_eq!(a_now.last_step, Some(1000), "same seed: kept");
        let a60 = seed("A", &[1; 20], Mode::Totp { period: 60 });
        import_all(&mut ts, &[a60], true).unwrap();
        let a_now = by_serial(ts.store.conn(), "A").unwrap().unwrap();
        assert_eq!(a_now.last_step, None, "another period: afresh");

        let tx = ts.store.write().unwrap();
        remove(&tx, "A").unwrap();
        assert!(matches!(remove(&tx, "A"), Err(Error::NoSuchToken { .. })));
        tx.commit().unwrap();
        assert_eq!(list(ts.store.conn()).unwrap().len(), 2);
    }

    #[test]
    fn the_schema_refuses_what_an_import_never_writes() {
        let ts = temp_store();
        let insert = |serial: &str,
                      kind: &str,
                      secret_len: usize,
                      period: Option<i64>,
                      counter: Option<i64>| {
            ts.store.conn().execute(
                "INSERT INTO tokens (serial, type, secret, algorithm, digits, period, counter,
                                     imported_at)
                 VALUES (?1, ?2, zeroblob(?3), 'SHA1', 6, ?4, ?5, 0)",
                params![serial, kind, secret_len as i64, period, counter],
            )
        };
        insert("ok1", "totp", 20, Some(30), None).unwrap();
        insert("ok2", "hotp", 20, None, Some(0)).unwrap();
        assert!(
            insert("ok1", "totp", 20, Some(30), None).is_err(),
            "duplicate serial"
        );
        assert!(
            insert("x y", "totp", 20, Some(30), None).is_err(),
            "space in serial"
        );
        assert!(
            insert("", "totp", 20, Some(30), None).is_err(),
            "empty serial"
        );
        assert!(insert("s1", "motp", 20, Some(30), None).is_err(), "type");
        assert!(
            insert("s2", "totp", 15, Some(30), None).is_err(),
            "short secret"
        );
        assert!(
            insert("s3", "totp", 20, None, None).is_err(),
            "totp without period"
        );
        assert!(
            insert("s4", "hotp", 20, None, None).is_err(),
            "hotp without counter"
        );
        assert!(
            insert("s5", "hotp", 20, Some(30), Some(0)).is_err(),
            "hotp with period"
        );
        assert!(
            insert("s6", "hotp", 20, None, Some(-1)).is_err(),
            "negative counter"
        );
    }
}
