//! A user's whole second factor as it stands (active devices with their replay state,
//! live recovery and bypass codes), read so that it can be moved to another store (`mfa
//! admin fleet import`), and removed from this one once it is there.
//!
//! The device readers are the login's own ([`super::devices::active_totp`] and friends), so
//! that only what a login here would accept is moved, checked the same way; a row they
//! cannot read is an error, not silently left behind.

use std::collections::BTreeSet;

use pam_mfa_protocol::UnixTime;
use rusqlite::{Connection, params};

use super::devices::{self, DeviceKind};
use super::params::Algorithm;
use super::secret::Secret;
use super::{audit, auth_state, recovery_codes, remembered};
use crate::{Error, Result};

/// How a moved device makes or proves its second factor.
#[derive(Debug)]
pub enum Factor {
    /// Time-based codes (an app, or a time-based token): the secret, its parameters, the
    /// clock offset found by resync and the newest step accepted (replay protection).
    Totp {
        secret: Secret,
        algorithm: Algorithm,
        digits: u8,
        period: u32,
        drift: i64,
        last_step: Option<i64>,
    },
    /// Event-based codes (an HOTP token): the counter value whose code comes next.
    Hotp {
        secret: Secret,
        algorithm: Algorithm,
        digits: u8,
        counter: i64,
    },
    /// A FIDO2 security key: public data only.
    Fido2(pam_mfa_fido2::ceremony::Credential),
}

/// One active device of the user, as it is to be recreated elsewhere.
#[derive(Debug)]
pub struct Device {
    pub name: String,
    pub kind: DeviceKind,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    /// A hardware token's serial number in the inventory.
    pub token_serial: Option<String>,
    pub factor: Factor,
}

/// A recovery or bypass code that can still be used: its salted hash as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub kind: recovery_codes::Kind,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub uses_left: u32,
    pub expires_at: Option<UnixTime>,
    pub created_at: UnixTime,
    pub created_by: u32,
}

/// Everything of one user that a login here would accept.
#[derive(Debug)]
pub struct Account {
    pub user: String,
    /// Oldest first (the order logins try them in).
    pub devices: Vec<Device>,
    pub codes: Vec<Code>,
}

/// Users with an active device or a usable recovery or bypass code at `now`, sorted.
/// (Someone with only an unfinished registration has nothing to move.)
pub fn users(conn: &Connection, now: UnixTime) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT user FROM devices WHERE state = 'active'
         UNION
         SELECT user FROM recovery_codes
         WHERE uses_left > 0 AND (expires_at IS NULL OR expires_at > ?1)",
    )?;
    let rows = stmt.query_map([now], |r| r.get::<_, String>(0))?;
    let set: BTreeSet<String> = rows.collect::<rusqlite::Result<_>>()?;
    Ok(set.into_iter().collect())
}

/// Each of [`users`] that `stays` does not keep in this store, read whole with
/// [`account`]; and, apart, those it keeps.
pub fn accounts(
    conn: &Connection,
    now: UnixTime,
    stays: impl Fn(&str) -> bool,
) -> Result<(Vec<Account>, Vec<String>)> {
    let mut moving = Vec::new();
    let mut staying = Vec::new();
    for user in users(conn, now)? {
        if stays(&user) {
            staying.push(user);
        } else {
            moving.push(account(conn, &user, now)?);
        }
    }
    Ok((moving, staying))
}

/// `user`'s active devices and usable codes at `now`.
pub fn account(conn: &Connection, user: &str, now: UnixTime) -> Result<Account> {
    // id -> (name, kind, created, last used, serial) of every active device.
    let mut stmt = conn.prepare(
        "SELECT d.id, d.name, d.kind, d.created_at, d.last_used_at, t.serial
         FROM devices d LEFT JOIN tokens t ON t.id = d.token_id
         WHERE d.user = ?1 AND d.state = 'active' ORDER BY d.id",
    )?;
    type Meta = (i64, String, String, i64, Option<i64>, Option<String>);
    let meta: Vec<Meta> = stmt
        .query_map([user], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;

    let mut factors: Vec<(i64, Factor)> = Vec::new();
    for d in devices::active_totp(conn, user)? {
        factors.push((
            d.id,
            Factor::Totp {
                secret: d.secret,
                algorithm: d.params.algorithm,
                digits: d.params.digits,
                period: d.params.period,
                drift: d.drift,
                last_step: d.last_step,
            },
        ));
    }
    for d in devices::active_hotp(conn, user)? {
        factors.push((
            d.id,
            Factor::Hotp {
                secret: d.secret,
                algorithm: d.params.algorithm,
                digits: d.params.digits,
                counter: d.counter,
            },
        ));
    }
    for d in devices::active_fido2(conn, user)? {
        factors.push((d.id, Factor::Fido2(d.credential)));
    }

    let mut moved = Vec::with_capacity(meta.len());
    for (id, name, kind, created_at, last_used_at, token_serial) in meta {
        let at = factors.iter().position(|(fid, _)| *fid == id);
        let Some(at) = at else {
            return Err(Error::CorruptRecord(format!(
                "device {name:?} of {user:?} is of no kind a login can use"
            )));
        };
        let (_, factor) = factors.swap_remove(at);
        let kind = match kind.as_str() {
            "totp" => DeviceKind::Totp,
            "token" => DeviceKind::Token,
            "fido2" => DeviceKind::Fido2,
            other => {
                return Err(Error::CorruptRecord(format!(
                    "unknown device kind {other:?}"
                )));
            }
        };
        moved.push(Device {
            name,
            kind,
            created_at,
            last_used_at,
            token_serial,
            factor,
        });
    }

    let mut stmt = conn.prepare(
        "SELECT kind, salt, hash, uses_left, expires_at, created_at, created_by
         FROM recovery_codes
         WHERE user = ?1 AND uses_left > 0 AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY id",
    )?;
    let codes = stmt
        .query_map(params![user, now], |r| {
            let kind: String = r.get(0)?;
            Ok(Code {
                // As recovery_codes::of_user reads it.
                kind: if kind == "bypass" {
                    recovery_codes::Kind::Bypass
                } else {
                    recovery_codes::Kind::Recovery
                },
                salt: r.get(1)?,
                hash: r.get(2)?,
                uses_left: r.get(3)?,
                expires_at: r.get(4)?,
                created_at: r.get(5)?,
                created_by: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;

    Ok(Account {
        user: user.to_owned(),
        devices: moved,
        codes,
    })
}

/// Removes every device (unfinished registrations too), recovery and bypass code, failure
/// count and remembered login of each of `users`, and the inventory entries of the
/// hardware tokens they held (their seeds went with them), with an audit row each saying
/// where they went; inside the caller's transaction, so that all go or none.
pub fn remove_moved(
    conn: &Connection,
    users: &[String],
    actor_uid: u32,
    destination: &str,
    now: UnixTime,
) -> Result<()> {
    for user in users {
        let tokens: Vec<i64> = conn
            .prepare("SELECT token_id FROM devices WHERE user = ?1 AND token_id IS NOT NULL")?
            .query_map([user], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        conn.execute("DELETE FROM devices WHERE user = ?1", [user])?;
        for id in tokens {
            conn.execute("DELETE FROM tokens WHERE id = ?1", [id])?;
        }
        conn.execute("DELETE FROM recovery_codes WHERE user = ?1", [user])?;
        auth_state::clear(conn, user)?;
        remembered::forget_all(conn, user)?;
        audit::record(
            conn,
            now,
            actor_uid,
            user,
            "moved",
            None,
            Some(&format!("devices and codes moved to {destination}")),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::tests::temp_store;

    #[test]
    fn reads_every_kind_of_device_with_its_state_and_removes_all_of_a_user() {
        let (_dir, path) = temp_store();
        let mut store = Store::open_or_create(&path).unwrap();
        let tx = store.write().unwrap();
        tx.execute_batch(
            "INSERT INTO devices (user, name, kind, state, secret, algorithm, digits, period,
                                  drift, last_step, created_at, last_used_at)
             VALUES ('alice', 'phone', 'totp', 'active', x'0102', 'SHA256', 8, 60, -2, 77,
                     10, 11);
             INSERT INTO devices (user, name, kind, state, secret, algorithm, digits, period,
                                  created_at, expires_at)
             VALUES ('alice', 'half', 'totp', 'pending', x'03', 'SHA1', 6, 30, 10, 500);
             INSERT INTO tokens (serial, type, secret, algorithm, digits, counter, imported_at)
             VALUES ('H-1', 'hotp', x'31323334353637383930313233343536', 'SHA1', 6, 0, 1);
             INSERT INTO tokens (serial, type, secret, algorithm, digits, period, imported_at)
             VALUES ('T-1', 'totp', x'41424344454647484950515253545556', 'SHA1', 6, 30, 1);
             INSERT INTO tokens (serial, type, secret, algorithm, digits, counter, imported_at)
             VALUES ('SPARE', 'hotp', x'61626364656667686970717273747576', 'SHA1', 6, 0, 1);
             INSERT INTO devices (user, name, kind, state, created_at, token_id, counter)
             VALUES ('alice', 'fob', 'token', 'active', 12, 1, 42);
             INSERT INTO devices (user, name, kind, state, created_at, token_id, drift, last_step)
             VALUES ('alice', 'clock', 'token', 'active', 13, 2, 1, 88);
             INSERT INTO devices (user, name, kind, state, created_at, credential_id,
                                  cose_public_key, sign_count, rp_id, uv_required)
             VALUES ('alice', 'key', 'fido2', 'active', 14, x'c0', x'a5', 9, 'pam://h', 1);
             INSERT INTO recovery_codes (user, kind, salt, hash, uses_left, expires_at,
                                         created_at, created_by)
             VALUES ('alice', 'recovery', zeroblob(16), zeroblob(32), 1, NULL, 5, 0),
                    ('alice', 'recovery', zeroblob(16), zeroblob(32), 0, NULL, 5, 0),
                    ('alice', 'bypass', zeroblob(16), zeroblob(32), 2, 1000, 5, 0),
                    ('bob', 'bypass', zeroblob(16), zeroblob(32), 2, 50, 5, 0);
             INSERT INTO devices (user, name, kind, state, secret, algorithm, digits, period,
                                  created_at, expires_at)
             VALUES ('carol', 'half', 'totp', 'pending', x'03', 'SHA1', 6, 30, 10, 500);",
        )
        .unwrap();
        // bob's bypass code expired at 50; carol has only an unfinished registration.
        assert_eq!(users(&tx, 100).unwrap(), ["alice"]);
        assert_eq!(users(&tx, 10).unwrap(), ["alice", "bob"]);

        let a = account(&tx, "alice", 100).unwrap();
        let names: Vec<&str> = a.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["phone", "fob", "clock", "key"]);
        match &a.devices[0].factor {
            Factor::Totp {
                secret,
                algorithm,
                digits,
                period,
                drift,
                last_step,
            } => {
                assert_eq!(secret.as_bytes(), [1, 2]);
                assert_eq!(
                    (*algorithm, *digits, *period, *drift, *last_step),
                    (Algorithm::Sha256, 8, 60, -2, Some(77))
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a.devices[0].last_used_at, Some(11));
        assert_eq!(a.devices[1].token_serial.as_deref(), Some("H-1"));
        assert!(matches!(
            &a.devices[1].factor,
            Factor::Hotp { counter: 42, secret, .. } if secret.as_bytes() == b"1234567890123456"
        ));
        assert_eq!(a.devices[2].kind, DeviceKind::Token);
        assert!(matches!(
            &a.devices[2].factor,
            Factor::Totp {
                drift: 1,
                last_step: Some(88),
                period: 30,
                ..
            }
        ));
        assert!(matches!(
            &a.devices[3].factor,
            Factor::Fido2(c) if c.sign_count == 9 && c.uv_required && c.credential_id == [0xc0]
        ));
        // The used-up recovery code is not moved.
        let kinds: Vec<_> = a.codes.iter().map(|c| (c.kind, c.uses_left)).collect();
        assert_eq!(
            kinds,
            [
                (recovery_codes::Kind::Recovery, 1),
                (recovery_codes::Kind::Bypass, 2)
            ]
        );

        remove_moved(&tx, &["alice".to_owned()], 0, "elsewhere", 100).unwrap();
        let count = |sql: &str| -> i64 { tx.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM devices WHERE user = 'alice'"),
            0
        );
        assert_eq!(
            count("SELECT count(*) FROM recovery_codes WHERE user = 'alice'"),
            0
        );
        // The moved tokens left the inventory; the spare one stays.
        assert_eq!(count("SELECT count(*) FROM tokens"), 1);
        assert_eq!(
            count("SELECT count(*) FROM devices WHERE user = 'carol'"),
            1
        );
        assert_eq!(
            count("SELECT count(*) FROM recovery_codes WHERE user = 'bob'"),
            1
        );
        assert_eq!(
            count("SELECT count(*) FROM audit WHERE user = 'alice' AND action = 'moved'"),
            1
        );
        tx.commit().unwrap();
    }
}
