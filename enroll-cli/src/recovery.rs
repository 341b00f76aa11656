//! `mfa recovery generate`: one-time codes for logging in after losing every device.
//!
//! The new set takes effect only once it was written out in full:
//! the codes are made in memory, printed and flushed, and only then stored, replacing the
//! old set, in one transaction. If the output fails (a closed or full standard output),
//! nothing is stored and the old codes keep working. The store is not held while
//! printing, so a terminal that stops its output (Ctrl-S) stops nobody's login.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use pam_mfa::recovery;
use pam_mfa_protocol::{Request, Response, SecretBytes};
use zeroize::Zeroizing;

use crate::CliError;
use crate::daemon::{Link, unexpected};
use crate::identity::Target;

pub fn generate(
    link: &mut Link,
    target: &Target,
    proof: Option<SecretBytes>,
) -> Result<(), CliError> {
    refuse_null_output()?;
    let user = target.user.as_str().to_owned();
    let set = match link.ask(Request::RecoveryGenerate {
        user: user.clone(),
        proof,
    })? {
        Response::RecoveryCodes(set) => set,
        other => return Err(unexpected(&other)),
    };
    // Shown once, from one wiped buffer: the store keeps only salted hashes.
    let mut text = Zeroizing::new(String::with_capacity(1024));
    text.push_str(&format!(
        "Recovery codes for {}. Each works once, in place of a verification code.\n\
         Keep them somewhere safe; they are not shown again, and any earlier codes no \
         longer work.\n\n",
        target.user
    ));
    for code in &set.codes {
        let code = std::str::from_utf8(code.as_bytes())
            .map_err(|_| CliError::msg("mfad sent a recovery code that is not text"))?;
        text.push_str("    ");
        text.push_str(&recovery::grouped(code));
        text.push('\n');
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            CliError::msg(format!(
                "cannot write the codes to standard output: {e}; nothing was changed, the \
                 earlier codes still work"
            ))
        })?;
    drop(out);
    match link.ask(Request::RecoveryCommit {
        user,
        ticket: set.ticket,
    }) {
        Ok(Response::Done) => Ok(()),
        Ok(other) => Err(unexpected(&other)),
        Err(e) => Err(CliError::msg(format!(
            "{}; the codes shown above were NOT saved and do not work (the earlier ones \
             still do): run mfa recovery generate again",
            e.message
        ))),
    }
}

/// Refuses to print the codes where nobody can read them: a standard output that was
/// closed (the runtime and `hardening` put /dev/null in its place) or is /dev/null.
fn refuse_null_output() -> Result<(), CliError> {
    let cannot = |e: std::io::Error| CliError::msg(format!("cannot check standard output: {e}"));
    let out = std::fs::File::from(
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(cannot)?,
    );
    let here = out.metadata().map_err(cannot)?;
    let null = std::fs::metadata("/dev/null").map_err(cannot)?;
    if here.file_type().is_char_device() && here.rdev() == null.rdev() {
        return Err(CliError::msg(
            "standard output is closed or /dev/null, so nobody would see the new codes; \
             nothing was changed, the earlier codes still work",
        ));
    }
    Ok(())
}
