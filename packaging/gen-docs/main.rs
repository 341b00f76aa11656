//! `gen-docs OUT_DIR`: writes the manual pages and shell completions the packages ship,
//! from the code itself, so that they never drift from it:
//!
//! - `OUT_DIR/man/mfa.1` and one page per subcommand (`mfa-enroll-totp.1`, ...), made
//!   with clap_mangen from the clap definition `mfa` parses its arguments with
//!   (`enroll_cli::cli`), so they say what `mfa --help` says;
//! - `OUT_DIR/man/pam_mfa.8`, whose OPTIONS are the table the module's argument parser
//!   accepts (`pam_mfa_module::args::ARGUMENTS`);
//! - `OUT_DIR/man/mfad.8`, the daemon's page, its synopsis and OPTIONS from the clap
//!   definition `mfad` parses with (`mfad::Args`);
//! - `OUT_DIR/completions/{mfa.bash,_mfa,mfa.fish}` for bash, zsh and fish (clap_complete);
//! - `OUT_DIR/schema-version`: the store schema this build knows
//!   (`pam_mfa::store::SCHEMA_VERSION`), which scripts/package.sh bakes into the packages'
//!   pre-install check (packaging/store-schema-check.sh), so that a package refuses to
//!   install over a store a newer version migrated.
//!
//! This is a build tool: it is never installed, and the setuid `mfa` contains none of it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use pam_mfa_module::args::ARGUMENTS;
use roff::{Roff, bold, italic, roman};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-docs OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(&out)) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-docs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;
    let mut written = Vec::new();

    let cmd = enroll_cli::cli::Cli::command();
    write_man_pages(&cmd, &man, &mut written)?;

    let path = man.join("pam_mfa.8");
    fs::write(&path, pam_mfa_8())?;
    written.push(path);

    let path = man.join("mfad.8");
    fs::write(&path, mfad_8()?)?;
    written.push(path);

    let path = out.join("schema-version");
    fs::write(&path, format!("{}\n", pam_mfa::store::SCHEMA_VERSION))?;
    written.push(path);

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = enroll_cli::cli::Cli::command();
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            "mfa",
            &completions,
        )?);
    }
    Ok(written)
}

/// mfa.1, then a page for every subcommand, named as git names its pages
/// (`mfa-enroll-totp.1`); each page's SUBCOMMANDS section points to the next level.
fn write_man_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    clap_mangen::generate_to(cmd.clone(), dir)?;
    let mut pages: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    pages.retain(|p| p.extension().is_some_and(|e| e == "1"));
    pages.sort();
    written.extend(pages);
    Ok(())
}

/// The module's manual page.
fn pam_mfa_8() -> String {
    let version = format!("pam_mfa {}", env!("CARGO_PKG_VERSION"));
    let mut r = Roff::new();
    r.control(
        "TH",
        ["PAM_MFA", "8", "", version.as_str(), "Linux-PAM Manual"],
    );

    r.control("SH", ["NAME"]);
    r.text([roman(
        "pam_mfa - ask for a verification code or a security key touch at login",
    )]);

    r.control("SH", ["SYNOPSIS"]);
    r.text([
        bold("auth"),
        roman(" "),
        italic("control"),
        roman(" "),
        bold("pam_mfa.so"),
        roman(" ["),
        italic("argument"),
        roman(" ...]"),
    ]);

    r.control("SH", ["DESCRIPTION"]);
    paragraph(
        &mut r,
        "pam_mfa asks for a second factor after the first one (a password, or an SSH key): \
         a verification code from one of the user's authenticator apps (TOTP, RFC 6238), \
         or, at the computer itself, a touch of one of the user's FIDO2 security keys. Users \
         register their devices with mfa(1). The module holds no secret and opens no \
         file: it asks mfad(8), the daemon that alone keeps the device store, over its \
         socket, and talks to the person through the PAM conversation.",
    );
    paragraph(
        &mut r,
        "A code is checked, in constant time, against every active TOTP device of the user \
         within the allowed window around that device's own clock drift, and is never \
         accepted twice. Repeated failures lock the user out for a while. One-time recovery \
         codes and administrator-issued bypass codes are typed at the same prompt. Every \
         decision is logged to syslog (facility authpriv), never with a code or a secret.",
    );
    paragraph(
        &mut r,
        "Only the auth type is provided (pam_sm_authenticate; pam_sm_setcred activates a \
         device registered during the same login, with enroll_at_login, and otherwise \
         succeeds). Any internal error, and a daemon that is unreachable or does not \
         answer within timeout=, fails closed and is logged.",
    );

    r.control("SH", ["OPTIONS"]);
    paragraph(
        &mut r,
        "Arguments are parsed strictly: an unknown, repeated or malformed argument is logged \
         and every login through that line is refused (PAM_SERVICE_ERR) until it is fixed. \
         The numbers given here override the store's policy (mfa admin policy).",
    );
    for arg in ARGUMENTS {
        r.control("TP", []);
        let (name, rest) = match arg.syntax.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg.syntax, None),
        };
        match rest {
            Some(value) => r.text([bold(format!("{name}=")), italic(value)]),
            None => r.text([bold(name)]),
        };
        match arg.default {
            // Quoted where the value has a space (the prompt), to show where it ends.
            Some(d) if d.contains(' ') => r.text([
                roman(format!("{} Default: \"", arg.description)),
                bold(d),
                roman("\"."),
            ]),
            Some(d) => r.text([
                roman(format!("{} Default: ", arg.description)),
                bold(d),
                roman("."),
            ]),
            None => r.text([roman(format!("{} Off unless given.", arg.description))]),
        };
    }

    r.control("SH", ["REMEMBERED LOGINS"]);
    paragraph(
        &mut r,
        "Off unless the administrator turns it on with mfa admin policy set \
         remember_seconds SECONDS (at most 43200, 12 hours). Then a successful second \
         factor (a code, a key, a recovery code; never a bypass code) lets the same user in \
         again at the same PAM service from the same remote host (PAM_RHOST, as sshd sets \
         it) without a prompt until that time has passed; the module logs \
         \"let through: remembered login\" and mfad writes an audit row \
         (login-remembered). A login without a remote host or from this host itself \
         (console, su, sudo, loopback) is never remembered unless the policy also says \
         remember_local allow. remember= on a line can only shorten the time, and \
         remember=0 turns it off there. A device removal, a lock-out, mfa admin unlock \
         and the user's own mfa forget end every remembered login of that user; mfa list \
         and mfa admin list show them. Since the exemption is keyed on an address, which \
         people behind one NAT share, use it for sshd only behind AuthenticationMethods \
         publickey,keyboard-interactive (mfa doctor warns otherwise).",
    );

    r.control("SH", ["RETURN VALUES"]);
    for (value, meaning) in [
        (
            "PAM_SUCCESS",
            "A fresh, valid code (or key touch) of one of the user's active devices, or a \
             valid recovery or bypass code.",
        ),
        (
            "PAM_AUTH_ERR",
            "A wrong, replayed or malformed code; a user without a device (without nullok); \
             a security key that was not touched or whose answer does not verify; a short \
             code while the user is locked out (not PAM_MAXTRIES, which makes sshd withdraw \
             keyboard-interactive authentication for the connection).",
        ),
        (
            "PAM_IGNORE",
            "The user has no active device and nullok is given.",
        ),
        (
            "PAM_AUTHINFO_UNAVAIL",
            "mfad is not running, does not answer in time, or cannot answer (its store is \
             unsafe, damaged or from a newer version), or an internal error happened. See \
             docs/deployment.md for what a stack does with it (authinfo_unavail=).",
        ),
        (
            "PAM_SERVICE_ERR",
            "Bad module arguments, or a db= naming another store than mfad's.",
        ),
        (
            "PAM_USER_UNKNOWN",
            "A user name that is not valid UTF-8 or contains control characters.",
        ),
    ] {
        r.control("TP", []);
        r.text([bold(value)]);
        r.text([roman(meaning)]);
    }

    r.control("SH", ["EXAMPLES"]);
    paragraph(
        &mut r,
        "On Debian, enable the packaged pam-auth-update profile, which adds the module to \
         /etc/pam.d/common-auth after the password (with nullok, so users who have not \
         registered a device yet still get in):",
    );
    example(&mut r, "pam-auth-update --enable mfa");
    paragraph(&mut r, "common-auth then contains:");
    example(
        &mut r,
        "auth [success=1 default=ignore] pam_unix.so nullok\n\
         auth requisite pam_deny.so\n\
         auth required pam_permit.so\n\
         auth [success=ok ignore=ignore default=die] pam_mfa.so nullok",
    );
    paragraph(
        &mut r,
        "A single service, by hand, after its password module (keep a root shell open while \
         you change PAM configuration):",
    );
    example(
        &mut r,
        "auth required pam_mfa.so window=2 prompt=[Enter code: ]",
    );

    r.control("SH", ["FILES"]);
    for (file, what) in [
        (
            mfad::DEFAULT_SOCKET,
            "mfad's socket, which the module asks (socket= names another).",
        ),
        (
            pam_mfa::store::DEFAULT_PATH,
            "The device store, which only mfad opens (directory mode 0700, file 0600, both \
             owned by root).",
        ),
        (
            "/usr/share/pam-configs/mfa",
            "The pam-auth-update profile (Debian).",
        ),
    ] {
        r.control("TP", []);
        r.text([italic(file)]);
        r.text([roman(what)]);
    }

    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("mfa"),
        roman("(1), "),
        bold("mfad"),
        roman("(8), "),
        bold("pam.conf"),
        roman("(5), "),
        bold("pam-auth-update"),
        roman("(8), "),
        bold("pam"),
        roman("(8)"),
    ]);
    r.to_roff()
}

/// The daemon's manual page: clap_mangen's title, name, synopsis and options from
/// `mfad::Args`, with the sections a daemon's page needs around them.
fn mfad_8() -> io::Result<Vec<u8>> {
    let version = format!("pam_mfa {}", env!("CARGO_PKG_VERSION"));
    let man = clap_mangen::Man::new(mfad::Args::command())
        .section("8")
        .source(version)
        .manual("System Manager's Manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;

    let mut r = Roff::new();
    r.control("SH", ["DESCRIPTION"]);
    paragraph(
        &mut r,
        "mfad is the only process that opens pam_mfa's device store. pam_mfa.so (in sshd, \
         sudo, su, login, screen lockers) and mfa(1) ask it over a UNIX socket; it runs every \
         check and change (codes, replay and lock-out, registration, policy, recovery and \
         bypass codes, audit) and logs to syslog (facility authpriv), never a code or a \
         secret. It runs in the foreground as root.",
    );
    paragraph(
        &mut r,
        "What a caller may ask is decided from its credentials on the socket (SO_PEERCRED), \
         never from the message: a user acts only on their own account, root on any. Each \
         connection has deadlines and a size limit, each user a connection cap, and root's \
         requests are served before users', so no client can make the store wait.",
    );
    paragraph(
        &mut r,
        "Under systemd, mfad.socket listens and starts mfad.service on the first \
         connection; the socket passed by systemd is used and --socket is ignored. Without \
         systemd, start mfad yourself under a supervisor that restarts it.",
    );
    paragraph(
        &mut r,
        "While mfad is not running or does not answer in time, every login through \
         pam_mfa.so fails with PAM_AUTHINFO_UNAVAIL (see pam_mfa(8)), and mfa says the \
         daemon is unreachable; root's mfa --db PATH works on the store file directly.",
    );
    page.extend_from_slice(r.to_roff().as_bytes());

    man.render_options_section(&mut page)?;

    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    paragraph(
        &mut r,
        "1 if --db is not an absolute path or the socket cannot be listened on; the reason \
         is on standard error and in syslog. A store that is unsafe (not root's alone), \
         damaged or from a newer version does not stop the daemon: it refuses every \
         request with the reason until the store is repaired.",
    );
    r.control("SH", ["FILES"]);
    for (file, what) in [
        (
            pam_mfa::store::DEFAULT_PATH,
            "The device store (directory mode 0700, file 0600, both owned by root).",
        ),
        (
            mfad::DEFAULT_SOCKET,
            "The socket (mode 0666: callers are told apart by their credentials).",
        ),
        (
            "/usr/lib/systemd/system/mfad.socket, mfad.service",
            "The systemd units.",
        ),
    ] {
        r.control("TP", []);
        r.text([italic(file)]);
        r.text([roman(what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("pam_mfa"),
        roman("(8), "),
        bold("mfa"),
        roman("(1), "),
        bold("systemd.socket"),
        roman("(5)"),
    ]);
    page.extend_from_slice(r.to_roff().as_bytes());
    Ok(page)
}

fn paragraph(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.text([roman(text)]);
}

/// A literal block, one line per line.
fn example(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.control("RS", ["4"]);
    r.control("nf", []);
    for line in text.lines() {
        r.text([roman(line)]);
    }
    r.control("fi", []);
    r.control("RE", []);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfad_page_has_its_options() -> io::Result<()> {
        let page = String::from_utf8_lossy(&mfad_8()?).into_owned();
        for needle in [
            "mfad",
            "\\-\\-db",
            "\\-\\-socket",
            "SO_PEERCRED",
            "PAM_AUTHINFO_UNAVAIL",
        ] {
            assert!(page.contains(needle), "{needle} missing from:\n{page}");
        }
        Ok(())
    }

    #[test]
    fn every_argument_is_in_the_manual() {
        let page = pam_mfa_8();
        for arg in ARGUMENTS {
            assert!(page.contains(&format!("\\fB{}", arg.name)), "{}", arg.name);
        }
    }
}
