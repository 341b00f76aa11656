//! Hardware OTP tokens end to end (issue 6): seed files loaded with the real `mfa admin
//! tokens import`, tokens registered with `mfa enroll token` by serial number and two
//! codes from `oathtool`, and logins through the real libpam with the built module.
//!
//! Encrypted PSKC files other than the RFC's example are made here with `openssl`, an
//! implementation independent of the product's AES and HMAC.

use pam_mfa_tests::PamCode;
use std::process::Command;

use pam_mfa_tests::tokens::{
    KEY_B32, KEY_HEX, enroll, hotp, import, import_text, inventory, token, write,
};
use pam_mfa_tests::{TestEnv, TestUser, TotpParams, tool, totp_with};
use serde_json::Value;

/// RFC 6030 Figure 6 and its pre-shared key (shared with the library's unit tests).
const FIGURE6: &str = include_str!("../pam_mfa/src/tokens/testdata/rfc6030-figure6.pskc");
const FIGURE6_PSK: &str = "12345678901234567890123456789012";

/// Writes `csv` as a seed file and imports it, asserting success.
fn import_csv(env: &TestEnv, csv: &str) {
    import_text(env, "seeds.csv", csv, &[]).assert_success();
}

/// `mfa enroll token` for an HOTP token with the RFC 4226 secret, with the codes of
/// `first` and the counter value after it.
fn enroll_hotp(
    env: &TestEnv,
    user: &str,
    name: &str,
    serial: &str,
    first: i64,
) -> pam_mfa_tests::MfaOutput {
    let (c1, c2) = (hotp(KEY_HEX, first, 6), hotp(KEY_HEX, first + 1, 6));
    enroll(env, user, name, serial, &c1, &c2)
}

// ----- HOTP: registration and logins through libpam -----

#[test]
fn hotp_token_logs_in_once_per_code_within_the_look_ahead() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["hotp_window=3"]);
    import_csv(&env, &format!("serial,secret,type\nH-1,{KEY_HEX},hotp\n"));
    // The token was pressed twice before registration: codes 2 and 3 register it.
    enroll_hotp(&env, user.name(), "fob", "H-1", 2).assert_success();
    let listed = env.listed(user.name(), "fob").expect("listed");
    assert_eq!(listed["kind"], "token", "{listed}");
    assert_eq!(token(&inventory(&env), "H-1")["user"], user.name());

    // The registration codes are used up.
    env.login(user.name(), &hotp(KEY_HEX, 3, 6))
        .assert_result(PamCode::AuthErr);
    // Next expected: 4. hotp_window=3 accepts 4..=7; 8 is beyond it.
    env.login(user.name(), &hotp(KEY_HEX, 8, 6))
        .assert_result(PamCode::AuthErr);
    let code = hotp(KEY_HEX, 6, 6);
    env.login(user.name(), &code)
        .assert_success()
        .assert_logged(&["authenticated with device \"fob\""]);
    // The same code twice: refused, and logged as a replay.
    env.login(user.name(), &code)
        .assert_result(PamCode::AuthErr)
        .assert_logged(&["replayed code of device \"fob\""]);
    // A code skipped over by the accepted one is gone too.
    env.login(user.name(), &hotp(KEY_HEX, 5, 6))
        .assert_result(PamCode::AuthErr);
    // Now 8 is within the look-ahead of 7.
    env.login(user.name(), &hotp(KEY_HEX, 8, 6))
        .assert_success();
}

#[test]
fn hotp_token_resyncs_far_ahead() {
    let env = TestEnv::new();
    let user = TestUser::new();
    // Each wrong code below is compared with the 11 codes of the default look-ahead and so
    // counts 4 failures (issue 16, finding 1): room for the two of them.
    env.write_service(&["max_failures=9"]);
    import_csv(&env, &format!("H-9,{KEY_B32},hotp\n"));
    enroll_hotp(&env, user.name(), "fob", "H-9", 0).assert_success();
    // 600 presses later the default look-ahead (10) no longer reaches.
    env.login(user.name(), &hotp(KEY_HEX, 600, 6))
        .assert_result(PamCode::AuthErr);
    let out = env.mfa(&[
        "--user",
        user.name(),
        "resync",
        "fob",
        &hotp(KEY_HEX, 601, 6),
        &hotp(KEY_HEX, 602, 6),
    ]);
    out.assert_success();
    assert!(
        out.stdout.contains("599 unused codes were skipped"),
        "{}",
        out.stdout
    );
    env.login(user.name(), &hotp(KEY_HEX, 602, 6))
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &hotp(KEY_HEX, 603, 6))
        .assert_success();
    // Beyond the 1,000-code look-ahead of resync: not found.
    env.mfa(&[
        "--user",
        user.name(),
        "resync",
        "fob",
        &hotp(KEY_HEX, 1700, 6),
        &hotp(KEY_HEX, 1701, 6),
    ])
    .assert_error(&["consecutive codes"]);
}

#[test]
fn hotp_window_argument_is_checked() {
    let env = TestEnv::new();
    let user = TestUser::new();
    for bad in [
        "hotp_window=101",
        "hotp_window=x",
        "hotp_window",
        "hotp_window=-1",
    ] {
        env.write_service(&[bad]);
        env.login(user.name(), "123456")
            .assert_result(PamCode::ServiceErr)
            .assert_not_prompted();
    }
}

// ----- TOTP tokens -----

#[test]
fn eight_digit_sha256_totp_token_from_csv() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    import_csv(&env, &format!("T-8,{KEY_B32},totp-sha256,8,30\n"));
    let params = TotpParams {
        digits: 8,
        algorithm: "SHA256",
        period: 30,
    };
    let code = |delta: i64| totp_with(KEY_B32, env.now() + delta * 30, params);
    enroll(&env, user.name(), "card", "T-8", &code(-1), &code(0)).assert_success();
    env.advance_steps(1);
    let now = code(0);
    assert_eq!(now.len(), 8);
    // Its 6-digit truncation is not an answer.
    env.login(user.name(), &now[2..])
        .assert_result(PamCode::AuthErr);
    env.login(user.name(), &now).assert_success();
    env.login(user.name(), &now).assert_result(PamCode::AuthErr);
}

// ----- PSKC -----

#[test]
fn rfc6030_encrypted_example_imports_with_its_key_and_logs_in() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let file = write(&env, "figure6.pskc", FIGURE6.as_bytes());
    // Without the key: refused, nothing imported.
    import(&env, &file, &[]).assert_error(&["--password-file"]);
    assert!(inventory(&env).is_empty());
    let wrong = write(&env, "wrong.key", b"00000000000000000000000000000000\n");
    import(
        &env,
        &file,
        &["--password-file", wrong.to_str().expect("path")],
    )
    .assert_error(&["wrong pre-shared key"]);
    assert!(inventory(&env).is_empty());
    let key = write(&env, "psk.key", format!("{FIGURE6_PSK}\n").as_bytes());
    import(
        &env,
        &file,
        &["--password-file", key.to_str().expect("path")],
    )
    .assert_success();
    let list = inventory(&env);
    let t = token(&list, "987654321");
    assert_eq!(t["type"], "hotp", "{t}");
    assert_eq!(t["digits"], 8, "{t}");
    // The seed decrypted to the RFC 4226 secret: oathtool's codes register and log in.
    enroll(
        &env,
        user.name(),
        "fob",
        "987654321",
        &hotp(KEY_HEX, 0, 8),
        &hotp(KEY_HEX, 1, 8),
    )
    .assert_success();
    env.login(user.name(), &hotp(KEY_HEX, 2, 8))
        .assert_success();
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(tool("openssl", "openssl"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    out.stdout
}

fn b64(bytes: &[u8]) -> String {
    String::from_utf8(openssl(&["base64", "-A"], bytes)).expect("base64")
}

/// IV followed by the AES-128-CBC (PKCS#7-padded) encryption of `plain`, by openssl.
fn encrypt(psk_hex: &str, iv_hex: &str, plain: &[u8]) -> Vec<u8> {
    let mut out = (0..iv_hex.len() / 2)
        .map(|i| u8::from_str_radix(&iv_hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect::<Vec<u8>>();
    out.extend(openssl(
        &["enc", "-aes-128-cbc", "-K", psk_hex, "-iv", iv_hex],
        plain,
    ));
    out
}

/// A TOTP token encrypted as RFC 6030 §6.1 describes, with an HMAC-SHA256 MAC: built
/// entirely with openssl.
fn encrypted_totp_pskc(psk_hex: &str, secret: &[u8], mac_key: &[u8]) -> String {
    let mac_key_hex: String = mac_key.iter().map(|b| format!("{b:02x}")).collect();
    let enc_mac_key = encrypt(psk_hex, "0102030405060708090a0b0c0d0e0f10", mac_key);
    let enc_secret = encrypt(psk_hex, "f0e0d0c0b0a090807060504030201000", secret);
    let mac = openssl(
        &[
            "dgst",
            "-sha256",
            "-mac",
            "HMAC",
            "-macopt",
            &format!("hexkey:{mac_key_hex}"),
            "-binary",
        ],
        &enc_secret,
    );
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
  xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
  <EncryptionKey><ds:KeyName>box-42</ds:KeyName></EncryptionKey>
  <MACMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#hmac-sha256">
    <MACKey>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>
    </MACKey>
  </MACMethod>
  <KeyPackage>
    <DeviceInfo><Manufacturer>Acme</Manufacturer><SerialNo>TT-77</SerialNo></DeviceInfo>
    <Key Id="77" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <AlgorithmParameters>
        <Suite>HMAC-SHA1</Suite>
        <ResponseFormat Length="6" Encoding="DECIMAL"/>
      </AlgorithmParameters>
      <Data>
        <Secret>
          <EncryptedValue>
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>
          </EncryptedValue>
          <ValueMAC>{}</ValueMAC>
        </Secret>
        <Time><PlainValue>0</PlainValue></Time>
        <TimeInterval><PlainValue>30</PlainValue></TimeInterval>
      </Data>
    </Key>
  </KeyPackage>
</KeyContainer>
"#,
        b64(&enc_mac_key),
        b64(&enc_secret),
        b64(&mac)
    )
}

#[test]
fn own_encrypted_totp_example_with_hmac_sha256() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&[]);
    let psk = "000102030405060708090a0b0c0d0e0f";
    let doc = encrypted_totp_pskc(
        psk,
        b"12345678901234567890",
        b"a MAC key of 32 bytes, for tests",
    );
    let file = write(&env, "box.pskc", doc.as_bytes());
    let key = write(&env, "box.key", b"00010203 04050607 08090A0B 0C0D0E0F\n");
    import(
        &env,
        &file,
        &["--password-file", key.to_str().expect("path")],
    )
    .assert_success();
    let code = |delta: i64| totp_with(KEY_B32, env.now() + delta * 30, TotpParams::default());
    enroll(&env, user.name(), "card", "TT-77", &code(-1), &code(0)).assert_success();
    env.advance_steps(1);
    env.login(user.name(), &code(0)).assert_success();
    // The same file with its MAC altered is refused (a fresh store: nothing imported).
    let env2 = TestEnv::new();
    let altered = doc.replacen("<ValueMAC>", "<ValueMAC>AAAA", 1);
    let file = write(&env2, "box.pskc", altered.as_bytes());
    let key = write(&env2, "box.key", psk.as_bytes());
    import(
        &env2,
        &file,
        &["--password-file", key.to_str().expect("path")],
    )
    .assert_error(&["KeyPackage 1", "MAC"]);
    assert!(inventory(&env2).is_empty());
}

// ----- refusals: the whole file or nothing -----

#[test]
fn malformed_files_are_refused_and_change_nothing() {
    let env = TestEnv::new();
    let good = write(&env, "good.csv", format!("KEEP-1,{KEY_B32}\n").as_bytes());
    import(&env, &good, &[]).assert_success();
    let before = inventory(&env);
    let mut big = format!("BIG-1,{KEY_B32}\n").into_bytes();
    big.resize(17 << 20, b'\n');
    let key = write(&env, "psk.key", FIGURE6_PSK.as_bytes());
    let key = key.to_str().expect("path").to_owned();
    // (file name, contents, extra arguments, what the error must mention)
    type Case<'a> = (&'a str, Vec<u8>, Vec<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "bad-base32.csv",
            format!("NEW-1,{KEY_B32}\nNEW-2,NOT*BASE32\n").into_bytes(),
            vec![],
            vec!["line 2", "base32"],
        ),
        (
            "missing-field.csv",
            format!("NEW-1,{KEY_B32}\n\nNEW-3\n").into_bytes(),
            vec![],
            vec!["line 3", "1 fields"],
        ),
        (
            "duplicate.csv",
            format!("NEW-1,{KEY_B32}\nKEEP-1,{KEY_B32}\n").into_bytes(),
            vec![],
            vec!["KEEP-1", "already in the inventory"],
        ),
        (
            "bad.xml",
            b"<KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"><KeyPackage>".to_vec(),
            vec![],
            vec!["XML"],
        ),
        (
            "no-serial.pskc",
            FIGURE6
                .replace("<SerialNo>987654321</SerialNo>", "")
                .into_bytes(),
            vec!["--password-file", &key],
            vec!["KeyPackage 1", "serial number"],
        ),
        (
            "wrong-mac.pskc",
            FIGURE6
                .replace("Su+NvtQfmvfJzF6bmQiJqoLRExc=", "Tu+NvtQfmvfJzF6bmQiJqoLRExc=")
                .into_bytes(),
            vec!["--password-file", &key],
            vec!["KeyPackage 1", "MAC does not verify"],
        ),
        ("big.csv", big, vec![], vec!["larger than"]),
        (
            "wrong-format.csv",
            format!("NEW-1,{KEY_B32}\n").into_bytes(),
            vec!["--format", "pskc"],
            vec!["XML"],
        ),
    ];
    for (name, contents, extra, needles) in &cases {
        let file = write(&env, name, contents);
        import(&env, &file, extra).assert_error(needles);
        assert_eq!(inventory(&env), before, "{name} changed the inventory");
    }
    // --replace over an existing serial works, in one go with the new ones.
    let both = write(
        &env,
        "both.csv",
        format!("NEW-1,{KEY_B32}\nKEEP-1,{KEY_HEX}\n").as_bytes(),
    );
    let out = import(&env, &both, &["--replace"]);
    out.assert_success();
    assert!(out.stdout.contains("1 new, 1 replaced"), "{}", out.stdout);
    // Nothing shows a seed.
    let listing = env.mfa(&["admin", "tokens", "list"]);
    listing.assert_success();
    let json = env.mfa(&["admin", "tokens", "list", "--json"]);
    for out in [&listing.stdout, &json.stdout] {
        assert!(!out.contains(KEY_B32) && !out.contains(KEY_HEX), "{out}");
        assert!(!out.contains("MTIzNDU2"), "{out}");
    }
}

// ----- one owner at a time -----

#[test]
fn a_token_has_one_owner_and_removing_the_device_returns_it() {
    let env = TestEnv::new();
    let alice = TestUser::new();
    let bob = TestUser::new();
    env.write_service(&[]);
    import_csv(&env, &format!("H-5,{KEY_HEX},hotp\n"));
    enroll_hotp(&env, alice.name(), "fob", "H-5", 0).assert_success();
    // Bob cannot take it, and is not told whose it is.
    let out = enroll_hotp(&env, bob.name(), "fob", "H-5", 2);
    out.assert_error(&["H-5", "already assigned"]);
    assert!(!out.stderr.contains(alice.name()), "{}", out.stderr);
    // Nor can an administrator take it out of the inventory under alice.
    env.mfa(&["admin", "tokens", "remove", "H-5"])
        .assert_error(&["assigned to", alice.name()]);
    env.login(alice.name(), &hotp(KEY_HEX, 2, 6))
        .assert_success();

    // Removing alice's device returns the token, its used codes still used.
    env.mfa(&["--user", alice.name(), "remove", "fob", "--yes"])
        .assert_success();
    assert_eq!(token(&inventory(&env), "H-5")["user"], Value::Null);
    env.login(alice.name(), &hotp(KEY_HEX, 3, 6))
        .assert_result(PamCode::AuthErr);
    enroll_hotp(&env, bob.name(), "fob", "H-5", 1).assert_error(&[]);
    enroll_hotp(&env, bob.name(), "fob", "H-5", 3).assert_success();
    env.login(bob.name(), &hotp(KEY_HEX, 5, 6)).assert_success();
    // mfa admin remove returns it as well.
    env.mfa(&["admin", "remove", bob.name(), "fob"])
        .assert_success();
    assert_eq!(token(&inventory(&env), "H-5")["user"], Value::Null);
    env.mfa(&["admin", "tokens", "remove", "H-5"])
        .assert_success();
    assert!(inventory(&env).is_empty());

    // Every step is in the audit trail, with the serial number. (A fleet database also
    // records every login, naming its host: docs/fleet.md.)
    let audit = env.mfa(&["admin", "audit", "--json"]);
    audit.assert_success();
    let rows: Vec<(String, String, String)> = match audit.json() {
        Value::Array(rows) => rows
            .iter()
            .filter(|r| !r["action"].as_str().unwrap_or("").starts_with("login-"))
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
                (s("user"), s("action"), s("detail"))
            })
            .collect(),
        other => panic!("{other}"),
    };
    let expect = [
        ("*", "token-import", "1 added"),
        (alice.name(), "register", "token H-5"),
        (alice.name(), "remove", "token H-5"),
        (bob.name(), "register", "token H-5"),
        (bob.name(), "remove", "token H-5"),
        ("*", "token-remove", "serial H-5"),
    ];
    assert_eq!(rows.len(), expect.len(), "{rows:?}");
    for ((user, action, detail), (u, a, d)) in rows.iter().zip(expect) {
        assert_eq!((user.as_str(), action.as_str()), (u, a), "{rows:?}");
        assert!(detail.contains(d), "{rows:?}");
    }
}

#[test]
fn tokens_count_toward_the_device_limit() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.set_policy("max_devices", "2");
    import_csv(
        &env,
        &format!("A,{KEY_HEX},hotp\nB,{KEY_HEX},hotp\nC,{KEY_HEX},hotp\n"),
    );
    for (name, serial) in [("a", "A"), ("b", "B")] {
        enroll_hotp(&env, user.name(), name, serial, 0).assert_success();
    }
    enroll_hotp(&env, user.name(), "c", "C", 0).assert_error(&["2 active devices"]);
    assert_eq!(token(&inventory(&env), "C")["user"], Value::Null);
    // Names are unique per user, across kinds.
    env.set_policy("max_devices", "8");
    enroll_hotp(&env, user.name(), "a", "C", 0).assert_error(&["already has a device named"]);
}

#[test]
fn the_same_hotp_code_from_8_logins_at_once_succeeds_exactly_once() {
    let env = TestEnv::new();
    let user = TestUser::new();
    env.write_service(&["max_failures=1000"]);
    import_csv(&env, &format!("H-R,{KEY_HEX},hotp\n"));
    enroll_hotp(&env, user.name(), "fob", "H-R", 0).assert_success();
    for counter in [2, 5, 9] {
        let code = hotp(KEY_HEX, counter, 6);
        let runs: Vec<_> = (0..8).map(|_| env.pam(user.name()).answer(&code)).collect();
        let outcomes = pam_mfa_tests::race(&runs);
        let results: Vec<PamCode> = outcomes.iter().map(|o| o.result).collect();
        assert_eq!(
            results.iter().filter(|r| **r == PamCode::Success).count(),
            1,
            "counter {counter}: {results:?}"
        );
        assert_eq!(
            results.iter().filter(|r| **r == PamCode::AuthErr).count(),
            7,
            "counter {counter}: {results:?}"
        );
    }
}

/// A time-based token's resync is audited with its offset in seconds, in its own period
/// (60 s here), which the token's device row does not carry: the inventory's row has it.
#[test]
fn a_totp_tokens_resync_is_audited_in_seconds() {
    // `mfa admin audit` shows the local store's rows.
    let env = TestEnv::with_backend(pam_mfa_tests::backend::Backend::Local);
    let user = TestUser::new();
    import_csv(&env, &format!("T-60,{KEY_B32},totp,6,60\n"));
    let params = TotpParams {
        digits: 6,
        algorithm: "SHA1",
        period: 60,
    };
    let code = |delta: i64| totp_with(KEY_B32, env.now() + delta * 60, params);
    enroll(&env, user.name(), "fob", "T-60", &code(-1), &code(0)).assert_success();
    env.advance_steps(2);
    // The token's clock 10 of its steps (600 s) ahead.
    let out = env.mfa(&["--user", user.name(), "resync", "fob", &code(9), &code(10)]);
    out.assert_success();
    assert!(out.stdout.contains("600 seconds ahead"), "{}", out.stdout);
    assert_eq!(
        env.audit_details("resync"),
        [Some("drift 600 s".to_owned())]
    );
}
