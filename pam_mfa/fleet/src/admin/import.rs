//! `mfa admin fleet import`'s database side: a host's accounts, as the library reads them
//! from its SQLite store ([`pam_mfa::store::export`]), recreated in the fleet database by
//! the owner-only `import_accounts` function, in one transaction.
//!
//! The accounts travel as one JSON document (binary values in hex), built in memory that
//! is wiped afterwards because it holds the devices' secrets.

use std::fmt::Write as _;

use pam_mfa::store::export::{Account, Factor};
use pam_mfa::store::recovery_codes::Kind;
use zeroize::Zeroizing;

use super::{ADMIN_QUERY_TIMEOUT, Admin, not_initialised, timed_out};
use crate::error::{FleetError, Result};

/// What became of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its devices and codes are in the fleet now.
    Moved,
    /// A dry run: it would have been moved.
    WouldMove,
    /// The fleet has devices or codes of this account already; nothing was merged.
    Skipped,
}

/// One account's line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub user: String,
    pub outcome: Outcome,
    pub devices: u32,
    pub codes: u32,
}

impl Admin {
    /// Recreates `accounts` in the fleet (see `import_accounts_at` in fleet.sql), audited
    /// as done by `actor_uid` with this connection's role, in one transaction: all of them
    /// or, on any error, none. With `dry_run` the transaction is rolled back.
    pub fn import_accounts(
        &mut self,
        accounts: &[Account],
        actor_uid: u32,
        dry_run: bool,
    ) -> Result<Vec<Imported>> {
        if !self.group_exists()? {
            return Err(not_initialised());
        }
        let document = accounts_json(accounts)?;
        let actor = i32::try_from(actor_uid).unwrap_or(-1);
        let Self {
            runtime, client, ..
        } = self;
        let rows = runtime
            .block_on(async {
                tokio::time::timeout(ADMIN_QUERY_TIMEOUT, async {
                    let tx = client.transaction().await?;
                    let rows = tx
                        .query(
                            "SELECT account, outcome, n_devices, n_codes \
                             FROM pam_mfa_fleet.import_accounts($1, $2, $3)",
                            &[&actor, &document.as_str(), &dry_run],
                        )
                        .await?;
                    if dry_run {
                        tx.rollback().await?;
                    } else {
                        tx.commit().await?;
                    }
                    Ok::<_, tokio_postgres::Error>(rows)
                })
                .await
            })
            .map_err(|_| timed_out("import"))?
            .map_err(|e| FleetError::from_call("import", &e))?;
        rows.iter()
            .map(|row| {
                let get = |e: tokio_postgres::Error| FleetError::Database(e.to_string());
                let outcome: String = row.try_get(1).map_err(get)?;
                let count = |i: usize| -> Result<u32> {
                    let n: i32 = row.try_get(i).map_err(get)?;
                    u32::try_from(n).map_err(|_| FleetError::Database("import: a bad count".into()))
                };
                Ok(Imported {
                    user: row.try_get(0).map_err(get)?,
                    outcome: match outcome.as_str() {
                        "moved" => Outcome::Moved,
                        "would_move" => Outcome::WouldMove,
                        "skipped" => Outcome::Skipped,
                        other => {
                            return Err(FleetError::Database(format!(
                                "import: unknown outcome {other:?}"
                            )));
                        }
                    },
                    devices: count(2)?,
                    codes: count(3)?,
                })
            })
            .collect()
    }
}

/// The accounts as `import_accounts` reads them.
fn accounts_json(accounts: &[Account]) -> Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::from("["));
    for (i, account) in accounts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"user\":");
        push_str(&mut out, &account.user)?;
        out.push_str(",\"devices\":[");
        for (j, d) in account.devices.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            push_str(&mut out, &d.name)?;
            out.push_str(",\"kind\":");
            push_str(&mut out, d.kind.as_str())?;
            push_num(&mut out, "created_at", Some(d.created_at));
            push_num(&mut out, "last_used_at", d.last_used_at);
            if let Some(serial) = &d.token_serial {
                out.push_str(",\"token_serial\":");
                push_str(&mut out, serial)?;
            }
            match &d.factor {
                Factor::Totp {
                    secret,
                    algorithm,
                    digits,
                    period,
                    drift,
                    last_step,
                } => {
                    push_hex(&mut out, "secret", secret.as_bytes());
                    out.push_str(",\"algorithm\":");
                    push_str(&mut out, algorithm.as_str())?;
                    push_num(&mut out, "digits", Some(i64::from(*digits)));
                    push_num(&mut out, "period", Some(i64::from(*period)));
                    push_num(&mut out, "drift", Some(*drift));
                    push_num(&mut out, "last_step", *last_step);
                }
                Factor::Hotp {
                    secret,
                    algorithm,
                    digits,
                    counter,
                } => {
                    push_hex(&mut out, "secret", secret.as_bytes());
                    out.push_str(",\"algorithm\":");
                    push_str(&mut out, algorithm.as_str())?;
                    push_num(&mut out, "digits", Some(i64::from(*digits)));
                    push_num(&mut out, "counter", Some(*counter));
                }
                Factor::Fido2(c) => {
                    push_hex(&mut out, "credential_id", &c.credential_id);
                    push_hex(&mut out, "cose_public_key", &c.cose_public_key);
                    push_num(&mut out, "sign_count", Some(i64::from(c.sign_count)));
                    out.push_str(",\"rp_id\":");
                    push_str(&mut out, &c.rp_id)?;
                    out.push_str(if c.uv_required {
                        ",\"uv_required\":true"
                    } else {
                        ",\"uv_required\":false"
                    });
                }
            }
            out.push('}');
        }
        out.push_str("],\"codes\":[");
        for (j, c) in account.codes.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(match c.kind {
                Kind::Recovery => "{\"kind\":\"recovery\"",
                Kind::Bypass => "{\"kind\":\"bypass\"",
            });
            push_hex(&mut out, "salt", &c.salt);
            push_hex(&mut out, "hash", &c.hash);
            push_num(&mut out, "uses_left", Some(i64::from(c.uses_left)));
            push_num(&mut out, "expires_at", c.expires_at);
            push_num(&mut out, "created_at", Some(c.created_at));
            push_num(&mut out, "created_by", Some(i64::from(c.created_by)));
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    Ok(out)
}

/// A JSON string (names only; never a secret, which goes through [`push_hex`]).
fn push_str(out: &mut String, value: &str) -> Result<()> {
    let quoted =
        serde_json::to_string(value).map_err(|e| FleetError::Database(format!("import: {e}")))?;
    out.push_str(&quoted);
    Ok(())
}

fn push_num(out: &mut String, key: &str, value: Option<i64>) {
    // Writing to a String cannot fail.
    let _ = match value {
        Some(v) => write!(out, ",\"{key}\":{v}"),
        None => write!(out, ",\"{key}\":null"),
    };
}

/// Hex straight into `out`, so that a secret leaves no copy behind in memory.
fn push_hex(out: &mut String, key: &str, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let _ = write!(out, ",\"{key}\":\"");
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use pam_mfa::store::devices::DeviceKind;
    use pam_mfa::store::export::{Code, Device};
    use pam_mfa::store::params::Algorithm;
    use pam_mfa::store::secret::Secret;

    #[test]
    fn the_document_is_json_with_every_value_the_database_needs() {
        let account = Account {
            user: "al\"ice".into(),
            devices: vec![
                Device {
                    name: "phone".into(),
                    kind: DeviceKind::Totp,
                    created_at: 10,
                    last_used_at: None,
                    token_serial: None,
                    factor: Factor::Totp {
                        secret: Secret::from_bytes(vec![0, 1, 0xab, 0xff]),
                        algorithm: Algorithm::Sha256,
                        digits: 8,
                        period: 60,
                        drift: -3,
                        last_step: Some(123),
                    },
                },
                Device {
                    name: "fob".into(),
                    kind: DeviceKind::Token,
                    created_at: 11,
                    last_used_at: Some(12),
                    token_serial: Some("T-1".into()),
                    factor: Factor::Hotp {
                        secret: Secret::from_bytes(vec![9; 3]),
                        algorithm: Algorithm::Sha1,
                        digits: 6,
                        counter: 42,
                    },
                },
            ],
            codes: vec![Code {
                kind: Kind::Bypass,
                salt: vec![1; 2],
                hash: vec![2; 2],
                uses_left: 3,
                expires_at: Some(99),
                created_at: 5,
                created_by: 0,
            }],
        };
        let text = accounts_json(&[account]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let a = &v[0];
        assert_eq!(a["user"], "al\"ice");
        let phone = &a["devices"][0];
        assert_eq!(phone["secret"], "0001abff");
        assert_eq!(phone["algorithm"], "SHA256");
        assert_eq!(phone["digits"], 8);
        assert_eq!(phone["period"], 60);
        assert_eq!(phone["drift"], -3);
        assert_eq!(phone["last_step"], 123);
        assert_eq!(phone["last_used_at"], serde_json::Value::Null);
        let fob = &a["devices"][1];
        assert_eq!(fob["kind"], "token");
        assert_eq!(fob["token_serial"], "T-1");
        assert_eq!(fob["counter"], 42);
        assert_eq!(fob["secret"], "090909");
        let code = &a["codes"][0];
        assert_eq!(code["kind"], "bypass");
        assert_eq!(code["salt"], "0101");
        assert_eq!(code["uses_left"], 3);
        assert_eq!(code["expires_at"], 99);
        assert_eq!(accounts_json(&[]).unwrap().as_str(), "[]");
    }
}
