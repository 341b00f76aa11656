//! Opening a store whose rows hold arbitrary bytes. A valid store is written once with the
//! library (two TOTP devices, one active and one pending, a FIDO2 key, an HOTP hardware
//! token assigned to the user and a TOTP one in the inventory, a failure count, a policy,
//! a recovery set, a bypass code and audit rows);
//! every input is a list of edits that overwrite one column of one row with a fuzzed value
//! of any SQLite type (CHECK constraints off, so values the schema forbids get in too, as
//! on a store damaged or edited by hand). Then the login path, `mfa list`, the policy,
//! the recovery/bypass check and the administrator's listings run on it: errors are fine,
//! panics are not, and neither a fuzzed security-key answer nor a made-up recovery code is
//! ever accepted.
//!
//! Edit format, repeated: [row] [column] [type] [len] [len bytes of value].
#![no_main]

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pam_mfa::enrollment;
use pam_mfa::fido2::ceremony;
use pam_mfa::fido2::transport::{
    GetAssertionRequest, KeyInfo, MakeCredentialRequest, RawAssertion, RawAttestation, Transport,
    TransportError,
};
use pam_mfa::login::{self, LoginSettings, Outcome};
use pam_mfa::names::{DeviceName, UserName};
use pam_mfa::otp::TotpParams;
use pam_mfa::secret::Secret;
use pam_mfa::store::Store;
use pam_mfa::store::devices::{self, NewFido2};
use rusqlite::types::Value;
use rusqlite::{Connection, params};

/// 5 s into a 30 s step.
const NOW: i64 = 1_800_000_005;

const DEVICE_COLUMNS: &[&str] = &[
    "id",
    "user",
    "name",
    "kind",
    "state",
    "secret",
    "algorithm",
    "digits",
    "period",
    "drift",
    "last_step",
    "created_at",
    "last_used_at",
    "expires_at",
    "credential_id",
    "cose_public_key",
    "sign_count",
    "rp_id",
    "uv_required",
    "token_id",
    "counter",
];
const TOKEN_COLUMNS: &[&str] = &[
    "id",
    "serial",
    "type",
    "secret",
    "algorithm",
    "digits",
    "period",
    "counter",
    "last_step",
    "imported_at",
];

/// Two tokens in the inventory (the RFC 4226 test secret as an HOTP token, another as a
/// TOTP one); the first is given to alice with its codes for counters 0 and 1.
const SEED_CSV: &[u8] = b"H-1,3132333435363738393031323334353637383930,hotp\n\
                          T-1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp,8,30\n";
const AUTH_STATE_COLUMNS: &[&str] = &["user", "failures", "window_start", "locked_until"];
const RECOVERY_COLUMNS: &[&str] = &[
    "id",
    "user",
    "kind",
    "salt",
    "hash",
    "uses_left",
    "expires_at",
    "created_at",
    "created_by",
];
const AUDIT_COLUMNS: &[&str] = &[
    "id",
    "at",
    "actor_uid",
    "user",
    "action",
    "device",
    "detail",
];

/// A code in the shape of a recovery code that was never issued.
const MADE_UP_RECOVERY_CODE: &str = "abcdefghjkmn";

/// The COSE encoding of a real P-256 public key (the curve's generator).
const P256_G_COSE: [u8; 77] = [
    0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c,
    0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb,
    0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x22, 0x58, 0x20, 0x4f, 0xe3, 0x42,
    0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33,
    0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
];

struct Fixture {
    /// Keeps the directories alive for the whole run.
    _dir: tempfile::TempDir,
    template: Vec<u8>,
    work: PathBuf,
}

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

/// A root-owned 0700 directory on tmpfs where there is one (fast fsync), else in $TMPDIR.
fn scratch() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir()
        && let Ok(d) = tempfile::Builder::new()
            .prefix("pam_mfa-fuzz")
            .tempdir_in("/dev/shm")
    {
        return d;
    }
    tempfile::Builder::new()
        .prefix("pam_mfa-fuzz")
        .tempdir()
        .unwrap()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = scratch();
        let template_path = dir.path().join("template/devices.db");
        {
            let mut store = Store::open_or_create(&template_path).unwrap();
            let tx = store.write().unwrap();
            let params = TotpParams::DEFAULT;
            let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
            devices::insert_pending_totp(&tx, "alice", "phone", &secret, params, NOW, NOW + 600)
                .unwrap();
            let id: i64 = tx
                .query_row("SELECT id FROM devices WHERE name = 'phone'", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(devices::activate(&tx, "alice", id, NOW / 30 - 2, NOW).unwrap());
            let pending = Secret::from_bytes(vec![0x5a; 20]);
            devices::insert_pending_totp(&tx, "alice", "tablet", &pending, params, NOW, NOW + 600)
                .unwrap();
            let key = NewFido2 {
                credential_id: b"fuzz-credential",
                cose_public_key: &P256_G_COSE,
                sign_count: 7,
                rp_id: "pam://fuzz",
                uv_required: false,
            };
            devices::insert_fido2(&tx, "alice", "yubikey", &key, NOW).unwrap();
            tx.commit().unwrap();
            // The administrator's tables: a policy, a recovery set, a bypass code, audit
            // rows.
            let tx = store.write().unwrap();
            pam_mfa::policy::set(&tx, "window", "2").unwrap();
            let codes = pam_mfa::recovery::new_set().unwrap();
            pam_mfa::recovery::replace_set(&tx, "alice", &codes, NOW, 0).unwrap();
            pam_mfa::recovery::issue_bypass(&tx, "alice", 3, NOW + 3600, NOW, 0).unwrap();
            pam_mfa::audit::record(&tx, NOW, 0, "alice", "bypass", None, Some("3 use(s)")).unwrap();
            tx.commit().unwrap();
            let seeds = pam_mfa::tokens::parse(SEED_CSV, None, None).unwrap();
            let tx = store.write().unwrap();
            pam_mfa::tokens::inventory::import(&tx, &seeds, false, NOW).unwrap();
            tx.commit().unwrap();
            enrollment::register_token(
                &mut store,
                &user("alice"),
                &DeviceName::parse("fob").unwrap(),
                "H-1",
                b"755224",
                b"287082",
                NOW,
            )
            .unwrap();
            // One wrong code, so there is an auth_state row to damage too.
            let outcome = login::verify(
                &mut store,
                &user("alice"),
                b"000000",
                LoginSettings::default(),
                NOW,
            );
            assert!(
                matches!(outcome, Ok(Outcome::Refused { .. })),
                "{outcome:?}"
            );
        }
        // The last connection closed: the WAL is checkpointed into the file and removed.
        let template = fs::read(&template_path).unwrap();
        let work_dir = dir.path().join("work");
        fs::create_dir(&work_dir).unwrap();
        fs::set_permissions(
            &work_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        Fixture {
            work: work_dir.join("devices.db"),
            template,
            _dir: dir,
        }
    })
}

fn value(kind: u8, bytes: &[u8]) -> (Value, bool) {
    let mut eight = [0u8; 8];
    let n = bytes.len().min(8);
    eight[..n].copy_from_slice(&bytes[..n]);
    match kind % 6 {
        0 => (Value::Null, false),
        1 => (Value::Integer(i64::from_le_bytes(eight)), false),
        2 => (Value::Real(f64::from_le_bytes(eight)), false),
        // Text that need not be UTF-8: the blob is cast to TEXT inside SQLite.
        3 => (Value::Blob(bytes.to_vec()), true),
        4 => (
            Value::Text(String::from_utf8_lossy(bytes).into_owned()),
            false,
        ),
        _ => (Value::Blob(bytes.to_vec()), false),
    }
}

fn damage(path: &Path, mut data: &[u8]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA ignore_check_constraints = ON;")
        .unwrap();
    while let [row, column, kind, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let (bytes, tail) = rest.split_at(len);
        data = tail;
        let (v, as_text) = value(*kind, bytes);
        let expr = if as_text { "CAST(?1 AS TEXT)" } else { "?1" };
        let pick = |cols: &[&'static str]| cols[usize::from(*column) % cols.len()];
        // Rows 0-3 (mod 10): the four devices; then one table each.
        let sql = if row % 10 == 4 {
            format!(
                "UPDATE auth_state SET {} = {expr}",
                pick(AUTH_STATE_COLUMNS)
            )
        } else if row % 10 == 5 {
            // The policy's columns are its keys, and its row id.
            let keys = pam_mfa::policy::KEYS;
            let col = match usize::from(*column) % (keys.len() + 1) {
                0 => "id",
                i => keys[i - 1],
            };
            format!("UPDATE policy SET {col} = {expr}")
        } else if row % 10 == 6 || row % 10 == 7 {
            format!(
                "UPDATE recovery_codes SET {} = {expr} WHERE id = \
                 (SELECT id FROM recovery_codes ORDER BY id LIMIT 1 OFFSET {})",
                pick(RECOVERY_COLUMNS),
                (row / 10) % 11
            )
        } else if row % 10 == 8 {
            format!("UPDATE audit SET {} = {expr}", pick(AUDIT_COLUMNS))
        } else if row % 10 == 9 {
            format!(
                "UPDATE tokens SET {} = {expr} WHERE id = \
                 (SELECT id FROM tokens ORDER BY id LIMIT 1 OFFSET {})",
                pick(TOKEN_COLUMNS),
                (row / 10) % 2
            )
        } else {
            let col = DEVICE_COLUMNS[usize::from(*column) % DEVICE_COLUMNS.len()];
            format!(
                "UPDATE devices SET {col} = {expr} WHERE id = \
                 (SELECT id FROM devices ORDER BY id LIMIT 1 OFFSET {})",
                row % 10
            )
        };
        // Constraint and trigger failures are fine: that edit just does not happen.
        let _ = conn.execute(&sql, params![v]);
    }
}

/// Every user name the damaged store mentions, as bytes (they need not be UTF-8).
fn users(path: &Path) -> Vec<Vec<u8>> {
    let conn = Connection::open(path).unwrap();
    let mut out = vec![b"alice".to_vec()];
    if let Ok(mut stmt) = conn.prepare(
        "SELECT CAST(user AS BLOB) FROM devices UNION SELECT CAST(user AS BLOB) FROM auth_state
         UNION SELECT CAST(user AS BLOB) FROM recovery_codes",
    ) && let Ok(rows) = stmt.query_map([], |r| r.get::<_, Option<Vec<u8>>>(0))
    {
        out.extend(rows.flatten().flatten());
    }
    out.sort();
    out.dedup();
    out
}

fn exercise(path: &Path, user: &UserName, finish: bool) {
    let Ok(Some(mut store)) = Store::open_existing(path) else {
        return;
    };
    let _ = login::readiness(&store, user, NOW);
    let _ = pam_mfa::policy::load(store.conn());
    let _ = pam_mfa::recovery::outstanding(store.conn(), NOW);
    let _ = pam_mfa::audit::list(store.conn(), Some(user.as_str()), None);
    let _ = pam_mfa::tokens::inventory::list(store.conn());
    let verdict = login::verify_recovery(&mut store, user, MADE_UP_RECOVERY_CODE, 0, NOW);
    assert!(
        !matches!(verdict, Ok(login::RecoveryOutcome::Accepted { .. })),
        "a recovery code that was never issued was accepted: {verdict:?}"
    );
    let _ = devices::list(store.conn(), user.as_str(), NOW);
    if let Ok(factors) = login::factors(&store, user) {
        // The login's ceremony over the (damaged) stored credentials, with a key that
        // answers for the first of them with made-up data; then the store's record of it.
        let credentials: Vec<_> = factors.fido2.iter().map(|d| d.credential.clone()).collect();
        let key = MadeUpKey(credentials.first().map(|c| c.credential_id.clone()));
        let answer =
            ceremony::authenticate(&key, &credentials, Duration::from_secs(1), &mut Nobody);
        let verdict = match answer {
            Ok(Ok(verified)) => {
                login::record_key_login(&mut store, user, &factors.fido2, verified, NOW)
            }
            Ok(Err(failure)) => Ok(login::key_failure(failure)),
        };
        assert!(
            !matches!(verdict, Ok(Outcome::Accepted { .. })),
            "a made-up security-key answer was accepted: {verdict:?}"
        );
    }
    // The right code of the undamaged active device at NOW (from oathtool), a wrong one,
    // a malformed one.
    // The HOTP token's code for counter 2 (oathtool --hotp -c 2) is tried too.
    for answer in [&b"768147"[..], b"359152", b"000000", b"x"] {
        let _ = login::verify(&mut store, user, answer, LoginSettings::default(), NOW);
    }
    if finish && let Ok(name) = DeviceName::parse("tablet") {
        let _ = enrollment::finish_totp(&mut store, user, &name, b"123456", b"654321", NOW);
    }
}

/// A plugged-in key whose every answer is made up: an authenticatorData of the right
/// length that holds nothing, and a well-formed signature of nothing.
struct MadeUpKey(Option<Vec<u8>>);

impl Transport for MadeUpKey {
    fn name(&self) -> &'static str {
        "made-up"
    }
    fn present(&self) -> bool {
        true
    }
    fn info(&self) -> Result<KeyInfo, TransportError> {
        Ok(KeyInfo::default())
    }
    fn make_credential(
        &self,
        _: &MakeCredentialRequest<'_>,
    ) -> Result<RawAttestation, TransportError> {
        Err(TransportError::NoKey)
    }
    fn get_assertion(&self, _: &GetAssertionRequest<'_>) -> Result<RawAssertion, TransportError> {
        Ok(RawAssertion {
            credential_id: self.0.clone(),
            auth_data: vec![0x11; 37],
            signature: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        })
    }
}

/// Nobody at the key: no PIN.
struct Nobody;

impl ceremony::Person<std::convert::Infallible> for Nobody {
    fn pin(&mut self) -> Result<Option<pam_mfa::fido2::Pin>, std::convert::Infallible> {
        Ok(None)
    }
    fn touch_cue(&mut self) {}
}

fn write_template(path: &Path, template: &[u8]) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = fs::remove_file(PathBuf::from(p));
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(template).unwrap();
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let Some((&flags, edits)) = data.split_first() else {
        return;
    };
    write_template(&fx.work, &fx.template);
    damage(&fx.work, edits);
    for name in users(&fx.work) {
        if let Ok(u) = UserName::from_bytes(&name) {
            exercise(&fx.work, &u, flags & 1 != 0);
        }
    }
});
