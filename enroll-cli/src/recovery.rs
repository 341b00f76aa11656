//! `mfa recovery generate`: one-time codes for logging in after losing every device.

use std::io::Write;

use pam_mfa::{audit, clock, recovery};
use zeroize::Zeroizing;

use crate::identity::Target;
use crate::{CliError, open_store};

pub fn generate(target: &Target) -> Result<(), CliError> {
    let mut store = open_store(target)?;
    let now = clock::now()?;
    let tx = store.write()?;
    let codes = recovery::generate_set(&tx, target.user.as_str(), now, target.caller_uid)?;
    audit::record(
        &tx,
        now,
        target.caller_uid,
        target.user.as_str(),
        "recovery-generate",
        None,
        Some(&format!(
            "{} codes; earlier codes no longer work",
            codes.len()
        )),
    )?;
    tx.commit().map_err(pam_mfa::Error::from)?;
    // Shown once, from one wiped buffer: the store keeps only salted hashes.
    let mut text = Zeroizing::new(String::with_capacity(1024));
    text.push_str(&format!(
        "Recovery codes for {}. Each works once, in place of a verification code.\n\
         Keep them somewhere safe; they are not shown again, and any earlier codes no \
         longer work.\n\n",
        target.user
    ));
    for code in &codes {
        text.push_str("    ");
        text.push_str(&recovery::grouped(code));
        text.push('\n');
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::msg(format!("cannot write to standard output: {e}")))
}
