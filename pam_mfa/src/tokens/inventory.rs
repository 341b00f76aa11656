//! The inventory of hardware tokens in the store (`tokens`, schema version 5): seeds by
//! serial number, waiting to be given to a user, or assigned to one as a device.
//!
//! Functions take a `&Connection` so that the caller decides the transaction (an import
//! and its audit row commit together); only [`by_serial`] hands out a secret, to the
//! registration that checks a token's codes.

use rusqlite::{Connection, OptionalExtension, Row, params};
use subtle::ConstantTimeEq;

use super::{Mode, TokenSeed};
use crate::otp::Algorithm;
use crate::secret::Secret;
use crate::{Error, Result};

/// Who has a token, if anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub user: String,
    pub device: String,
}

/// What may be shown about a token: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub serial: String,
    pub mode: Mode,
    pub algorithm: Algorithm,
    pub digits: u8,
    pub imported_at: i64,
    pub assigned: Option<Assignment>,
}

/// A token with what registering it needs.
#[derive(Debug)]
pub struct InventoryToken {
    pub id: i64,
    pub serial: String,
    pub secret: Secret,
    pub algorithm: Algorithm,
    pub digits: u8,
    /// For an HOTP token, the counter value after the last code ever accepted from it.
    pub mode: Mode,
    /// For a TOTP token, the last step ever accepted from it (under any owner).
    pub last_step: Option<i64>,
    pub assigned: Option<Assignment>,
}

/// How many tokens an import added, and how many it loaded over existing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    pub added: usize,
    pub replaced: usize,
}

const COLUMNS: &str = "t.id, t.serial, t.type, t.algorithm, t.digits, t.period, t.counter,
    t.imported_at, d.user, d.name, t.last_step";
const FROM: &str = "tokens t LEFT JOIN devices d ON d.token_id = t.id";

/// The columns every query reads, secret aside; anything no import could have written is
/// corruption.
fn info_from_row(r: &Row<'_>) -> rusqlite::Result<Result<(i64, TokenInfo, Option<i64>)>> {
    let id: i64 = r.get(0)?;
    let serial: String = r.get(1)?;
    let (kind, algorithm): (String, String) = (r.get(2)?, r.get(3)?);
    let (digits, period, counter): (i64, Option<i64>, Option<i64>) =
        (r.get(4)?, r.get(5)?, r.get(6)?);
    let imported_at: i64 = r.get(7)?;
    let (user, device): (Option<String>, Option<String>) = (r.get(8)?, r.get(9)?);
    let last_step: Option<i64> = r.get(10)?;
    Ok((|| {
        let corrupt = || Error::CorruptRecord(format!("token {serial:?}"));
        let mode = match (kind.as_str(), period, counter) {
            ("totp", Some(p), None) => Mode::Totp {
                period: u32::try_from(p).map_err(|_| corrupt())?,
            },
            ("hotp", None, Some(c)) => Mode::Hotp { counter: c },
            _ => return Err(corrupt()),
        };
        let info = TokenInfo {
            algorithm: algorithm.parse()?,
            digits: u8::try_from(digits).map_err(|_| corrupt())?,
            mode,
            imported_at,
            assigned: user
                .zip(device)
                .map(|(user, device)| Assignment { user, device }),
            serial,
        };
        Ok((id, info, last_step))
    })())
}

/// Every token, by serial number.
pub fn list(conn: &Connection) -> Result<Vec<TokenInfo>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} ORDER BY t.serial"))?;
    let rows = stmt
        .query_map([], info_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|row| row.map(|(_, info, _)| info))
        .collect()
}

/// One token with its secret, assigned or not.
pub fn by_serial(conn: &Connection, serial: &str) -> Result<Option<InventoryToken>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, t.secret FROM {FROM} WHERE t.serial = ?1"
        ))?
        .query_row([serial], |r| {
            let secret = zeroize::Zeroizing::new(r.get::<_, Vec<u8>>(11)?);
            Ok(info_from_row(r)?.map(|info| (info, secret)))
        })
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let ((id, info, last_step), secret) = row?;
    Ok(Some(InventoryToken {
        id,
        serial: info.serial,
        secret: Secret::from_bytes(secret.to_vec()),
        algorithm: info.algorithm,
        digits: info.digits,
        mode: info.mode,
        last_step,
        assigned: info.assigned,
    }))
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
pub fn import(conn: &Connection, seeds: &[TokenSeed], replace: bool, now: i64) -> Result<Imported> {
    let mut done = Imported::default();
    for seed in seeds {
        let (kind, period, counter) = match seed.mode {
            Mode::Totp { period } => ("totp", Some(period), None),
            Mode::Hotp { counter } => ("hotp", None, Some(counter)),
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
        conn.prepare_cached(
            "INSERT INTO tokens (serial, type, secret, algorithm, digits, period, counter,
                                 last_step, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (serial) DO UPDATE SET
                 type = excluded.type, secret = excluded.secret,
                 algorithm = excluded.algorithm, digits = excluded.digits,
                 period = excluded.period, counter = excluded.counter,
                 last_step = excluded.last_step, imported_at = excluded.imported_at",
        )?
        .execute(params![
            seed.serial,
            kind,
            seed.secret.as_bytes(),
            seed.algorithm.as_str(),
            seed.digits,
            period,
            counter,
            last_step,
            now
        ])?;
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
        Some(t) => {
            conn.prepare_cached("DELETE FROM tokens WHERE id = ?1")?
                .execute([t.id])?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

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
