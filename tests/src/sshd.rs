//! A real `sshd` inside a test's [`Namespace`] and the real `ssh` client logging into it.
//!
//! The server listens on 127.0.0.1 at a free port with host keys made for the test. Its
//! main configuration mirrors Debian 12's `/etc/ssh/sshd_config` (an `Include` of the
//! drop-in directory first, then `KbdInteractiveAuthentication no`, `UsePAM yes`, …), and the
//! drop-in directory holds a test file with the port, host key and logging, plus the
//! guide's drop-in verbatim: so the tests also prove that the guide's drop-in wins over
//! Debian's defaults, as it must on a real machine.
//!
//! The client answers keyboard-interactive prompts through `SSH_ASKPASS` (forced with
//! `SSH_ASKPASS_REQUIRE=force`): a shell script that writes each prompt it is asked to a
//! file, answers a password prompt with the password the test gave, and a code prompt with
//! a fixed code, or with the code of the next step that it computes with `oathtool` at the
//! moment it is asked; for a registration at login, it answers the dialogue's other prompts
//! with texts the test gave and the code prompts with two consecutive codes of the new
//! device, whose secret it reads from the dialogue.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::namespace::{Namespace, die_with_parent, sh_quote};
use crate::paths;
use crate::process::{self, Running};

/// An ssh key pair made with `ssh-keygen`.
#[derive(Debug, Clone)]
pub struct SshKey {
    /// The private key file.
    pub private: PathBuf,
    /// The public key line.
    pub public: String,
}

/// Makes an ed25519 key pair without a passphrase at `path` (and `path.pub`).
pub fn keygen(path: &Path) -> SshKey {
    let out = Command::new(paths::tool("ssh-keygen", "openssh-client"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "pam_mfa_tests", "-f"])
        .arg(path)
        .output()
        .expect("cannot run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .expect("ssh-keygen wrote no public key");
    SshKey {
        private: path.to_owned(),
        public: public.trim().to_owned(),
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the kernel's choice).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port")
}

/// The main configuration: Debian 12's `/etc/ssh/sshd_config` without its comments, with
/// the drop-in directory moved into the test's directory.
fn main_config(dropin_dir: &Path) -> String {
    format!(
        "Include {}/*.conf\n\
         KbdInteractiveAuthentication no\n\
         UsePAM yes\n\
         X11Forwarding yes\n\
         PrintMotd no\n\
         AcceptEnv LANG LC_*\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
        dropin_dir.display()
    )
}

/// A running sshd; killed when dropped.
pub struct Sshd {
    running: Running,
    port: u16,
    dir: PathBuf,
}

impl Sshd {
    /// Starts sshd in `ns` with `dropin` (the guide's sshd_config drop-in) installed as
    /// `sshd_config.d/10-pam_mfa.conf` (the name the guide gives it), and waits until it
    /// listens. `name` keeps the files of several servers of one test apart.
    pub fn start(ns: &Namespace, name: &str, dropin: &str) -> Self {
        let sshd = paths::tool("sshd", "openssh-server");
        let dir = ns.dir().join(format!("sshd-{name}"));
        let dropin_dir = dir.join("sshd_config.d");
        std::fs::create_dir_all(&dropin_dir).expect("cannot create the sshd directory");
        let host_key = keygen(&dir.join("ssh_host_ed25519_key"));
        let config = dir.join("sshd_config");
        std::fs::write(&config, main_config(&dropin_dir)).expect("cannot write sshd_config");
        std::fs::write(dropin_dir.join("10-pam_mfa.conf"), dropin)
            .expect("cannot write the guide's drop-in");

        // OpenSSH 9.8 and later refuse connections from an address that failed to log in
        // a few times; the tests fail on purpose from 127.0.0.1, so turn that off where
        // this sshd knows the option.
        let penalties = ns
            .command(&sshd)
            .args(["-t", "-f"])
            .arg(&config)
            .args(["-o", "PerSourcePenalties=no"])
            .output()
            .is_ok_and(|o| o.status.success());

        let mut last_failure = String::new();
        for _ in 0..10 {
            let port = free_port();
            let mut test_conf = format!(
                "# Test settings: a free port on loopback, the test's host key, no pid file.\n\
                 ListenAddress 127.0.0.1\n\
                 Port {port}\n\
                 HostKey {}\n\
                 PidFile none\n\
                 LogLevel VERBOSE\n",
                host_key.private.display()
            );
            if penalties {
                test_conf.push_str("PerSourcePenalties no\n");
            }
            // "00-" sorts first: its values win over every later file (first one counts).
            std::fs::write(dropin_dir.join("00-test.conf"), &test_conf)
                .expect("cannot write the test drop-in");
            let mut cmd = ns.command(&sshd);
            cmd.args(["-D", "-e", "-f"]).arg(&config);
            die_with_parent(&mut cmd);
            let mut running = Running::spawn(cmd, format!("sshd on port {port}"));
            let listening = format!("Server listening on 127.0.0.1 port {port}.");
            if running.wait_for("sshd to listen", |_, err| err.contains(&listening)) {
                return Self { running, port, dir };
            }
            // Exited: most likely another test took the port in between; try another.
            last_failure = running.stderr();
        }
        panic!("sshd did not start:\n{last_failure}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What sshd logged so far (it logs to stderr with `-e`).
    pub fn log(&self) -> String {
        self.running.stderr()
    }

    /// A login as `user` with this server (configure it, then [`SshLogin::run`]).
    pub fn login(&self, user: &str) -> SshLogin<'_> {
        SshLogin {
            sshd: self,
            user: user.to_owned(),
            key: None,
            password: None,
            code: CodeAnswer::None,
            command: "echo logged-in-as-$(id -un)".to_owned(),
            answers: Vec::new(),
            password_authentication: false,
            from: None,
        }
    }
}

/// How the askpass script answers a code prompt.
#[derive(Debug, Clone)]
enum CodeAnswer {
    /// It fails (ssh then gives up): the test expected no code prompt.
    None,
    /// The code of the next step, computed with oathtool from this secret when asked.
    Next(String),
    /// Exactly this text.
    Fixed(String),
    /// A registration at login: two consecutive codes of the secret the dialogue showed
    /// (see [`SshLogin::registration_codes`]).
    Registration,
}

/// One `ssh` run; see [`Sshd::login`].
pub struct SshLogin<'a> {
    sshd: &'a Sshd,
    user: String,
    key: Option<SshKey>,
    password: Option<String>,
    code: CodeAnswer,
    command: String,
    answers: Vec<(String, String)>,
    password_authentication: bool,
    /// `ssh -b`: the local address the connection comes from (sshd's `PAM_RHOST`).
    from: Option<String>,
}

/// The `SSH_ASKPASS` program: ssh runs it once per prompt with the prompt as `$1` and
/// takes its output as the answer. `__DIR__` (its directory, holding the answers the test
/// wrote) and `__OATHTOOL__` are filled in by [`SshLogin::run`].
const ASKPASS: &str = r#"#!/bin/sh
# SSH_ASKPASS for the pam_mfa tests: logs the prompt, then answers it.
dir=__DIR__
printf '%s\n' "$1" >> "$dir/prompts"
# Prompts the test answers with a fixed text ("PART<tab>ANSWER" lines), before the rest.
if [ -f "$dir/answers" ]; then
    tab=$(printf '\t')
    while IFS="$tab" read -r part answer; do
        case "$1" in
        *"$part"*)
            printf '%s\n' "$answer"
            exit 0
            ;;
        esac
    done < "$dir/answers"
fi
case "$1" in
*assword*)
    [ -f "$dir/password" ] && exec cat "$dir/password"
    ;;
*code*)
    if [ -f "$dir/code" ]; then
        code=$(cat "$dir/code")
    elif [ -f "$dir/pair" ]; then
        # A registration at login: the key from the dialogue's "Secret key:" line (sshd
        # shows the module's messages with the next prompt), then the codes of the
        # previous step and of the one after, as a person types the code shown and the next.
        key=$(printf '%s\n' "$1" | sed -n 's/^.*Secret key: //p' | tr -d ' ')
        [ -n "$key" ] && printf '%s' "$key" > "$dir/secret"
        [ -f "$dir/secret" ] || exit 1
        [ -f "$dir/base" ] || echo "$(($(date +%s) - 30))" > "$dir/base"
        given=$(cat "$dir/codes" 2>/dev/null | wc -l)
        at=$(($(cat "$dir/base") + 30 * given))
        code=$(__OATHTOOL__ --totp --base32 --now="@$at" "$(cat "$dir/secret")") || exit 1
    elif [ -f "$dir/secret" ]; then
        # The next step's code, computed when ssh asks.
        now=$(date +%s)
        code=$(__OATHTOOL__ --totp --base32 --now="@$((now + 30))" "$(cat "$dir/secret")") || exit 1
    else
        exit 1
    fi
    printf '%s\n' "$code" >> "$dir/codes"
    printf '%s\n' "$code"
    exit 0
    ;;
esac
exit 1
"#;

/// How an `ssh` run ended.
#[derive(Debug)]
pub struct SshOutcome {
    /// ssh's exit status (255: it could not log in).
    pub status: ExitStatus,
    /// The remote command's output.
    pub stdout: String,
    /// ssh's messages.
    pub stderr: String,
    /// The prompts askpass was asked, in order, without ssh's `(user@host) ` prefix, one
    /// entry per line (sshd shows the module's messages as lines before the next prompt).
    pub prompts: Vec<String>,
    /// The answers it gave to code prompts (so a test can check they were not logged).
    pub codes_given: Vec<String>,
    /// sshd's log up to the end of this run (for failure messages).
    pub server_log: String,
}

impl SshOutcome {
    /// Whether ssh logged in and the command succeeded.
    pub fn succeeded(&self) -> bool {
        self.status.success()
    }

    fn show(&self) -> String {
        format!(
            "ssh exited with {}\nprompts: {:?}\nstdout:\n{}\nstderr:\n{}\nsshd's log:\n{}",
            self.status, self.prompts, self.stdout, self.stderr, self.server_log
        )
    }

    /// Asserts the login succeeded and the command printed `expected` (its whole stdout,
    /// trimmed).
    #[track_caller]
    pub fn assert_ran(&self, expected: &str) -> &Self {
        assert!(
            self.succeeded() && self.stdout.trim() == expected,
            "expected a login that prints {expected:?}\n{}",
            self.show()
        );
        self
    }

    /// The base32 key a registration dialogue showed on its "Secret key:" line, if any.
    pub fn shown_secret(&self) -> Option<String> {
        self.prompts
            .iter()
            .find_map(|p| p.strip_prefix("Secret key: "))
            .map(|key| key.replace(' ', ""))
    }

    /// Whether some prompt (or message shown with one) contains `text`.
    pub fn was_shown(&self, text: &str) -> bool {
        self.prompts.iter().any(|p| p.contains(text))
    }

    /// Asserts ssh was refused: exit 255 with "Permission denied", and no command output.
    #[track_caller]
    pub fn assert_refused(&self) -> &Self {
        assert!(
            self.status.code() == Some(255)
                && self.stderr.contains("Permission denied")
                && self.stdout.is_empty(),
            "expected the login to be refused\n{}",
            self.show()
        );
        self
    }

    /// Asserts the prompts were exactly `expected`, in order.
    #[track_caller]
    pub fn assert_prompts(&self, expected: &[&str]) -> &Self {
        assert_eq!(
            self.prompts,
            expected,
            "unexpected prompts\n{}",
            self.show()
        );
        self
    }
}

impl SshLogin<'_> {
    /// Offers this key (public-key authentication); without it only
    /// keyboard-interactive is tried.
    pub fn key(mut self, key: &SshKey) -> Self {
        self.key = Some(key.clone());
        self
    }

    /// Answers a password prompt with `password`.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Answers a code prompt with the code of the next step for `secret`, computed by
    /// oathtool in the askpass script at the moment it is asked.
    pub fn next_code_of(mut self, secret: &str) -> Self {
        self.code = CodeAnswer::Next(secret.to_owned());
        self
    }

    /// Answers a code prompt with exactly `code`.
    pub fn code(mut self, code: &str) -> Self {
        self.code = CodeAnswer::Fixed(code.to_owned());
        self
    }

    /// Answers every prompt that contains `part` with `answer` (which may be empty: just
    /// Enter), whatever the other rules say.
    pub fn answer(mut self, part: &str, answer: &str) -> Self {
        assert!(
            !format!("{part}{answer}").contains(['\t', '\n']),
            "askpass answers are single lines without tabs"
        );
        self.answers.push((part.to_owned(), answer.to_owned()));
        self
    }

    /// Logs in with ssh's `password` method instead of keyboard-interactive (sshd then
    /// answers every PAM prompt with the password askpass gives).
    pub fn password_authentication(mut self) -> Self {
        self.password_authentication = true;
        self
    }

    /// Answers the code prompts of a registration at login with two consecutive codes
    /// (those of the previous and the current step) of the secret the dialogue showed
    /// before them: answer its "Press Enter once scanned" prompt with `secret` (see
    /// [`SshLogin::answer`]). [`SshOutcome::shown_secret`] gives that secret afterwards.
    pub fn registration_codes(mut self) -> Self {
        self.code = CodeAnswer::Registration;
        self
    }

    /// The remote command (default: `echo logged-in-as-$(id -un)`).
    pub fn command(mut self, command: &str) -> Self {
        self.command = command.to_owned();
        self
    }

    /// Connects from this local address (`ssh -b`; any of 127.0.0.0/8 works), which
    /// sshd gives the PAM stack as `PAM_RHOST`: another "remote host" on one machine.
    pub fn from_address(mut self, address: &str) -> Self {
        self.from = Some(address.to_owned());
        self
    }

    fn askpass_script(dir: &Path) -> String {
        ASKPASS
            .replace("__DIR__", &sh_quote(&dir.display().to_string()))
            .replace(
                "__OATHTOOL__",
                &sh_quote(&paths::tool("oathtool", "oathtool").display().to_string()),
            )
    }

    /// Runs `ssh` from outside the namespace (the network is shared) and collects the
    /// outcome.
    pub fn run(self) -> SshOutcome {
        let sshd = self.sshd;
        let n = std::fs::read_dir(&sshd.dir).map(|d| d.count()).unwrap_or(0);
        let dir = sshd.dir.join(format!("client-{n}"));
        std::fs::create_dir(&dir).expect("cannot create the client directory");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).expect("cannot write an askpass file");
        };
        if let Some(p) = &self.password {
            write("password", &format!("{p}\n"));
        }
        match &self.code {
            CodeAnswer::None => {}
            CodeAnswer::Next(secret) => write("secret", secret),
            CodeAnswer::Fixed(code) => write("code", code),
            CodeAnswer::Registration => write("pair", ""),
        }
        if !self.answers.is_empty() {
            let lines: String = self
                .answers
                .iter()
                .map(|(part, answer)| format!("{part}\t{answer}\n"))
                .collect();
            write("answers", &lines);
        }
        let askpass = dir.join("askpass");
        write("askpass", &Self::askpass_script(&dir));
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))
            .expect("cannot chmod askpass");

        let mut cmd = Command::new(paths::tool("ssh", "openssh-client"));
        cmd.env_clear()
            .env("PATH", crate::namespace::SYSTEM_PATH)
            .env("LC_ALL", "C")
            .env("HOME", &dir)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            // No system or user configuration, no known-hosts file, no agent.
            .args(["-F", "/dev/null"])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "BatchMode=no"])
            .args(["-o", "ConnectTimeout=60"])
            // One keyboard-interactive round: a refusal ends the run instead of retrying.
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .arg("-o")
            .arg(if self.password_authentication {
                "PasswordAuthentication=yes"
            } else {
                "PasswordAuthentication=no"
            })
            .args(["-o", "KbdInteractiveAuthentication=yes"]);
        match &self.key {
            Some(key) => {
                cmd.args(["-o", "IdentitiesOnly=yes", "-o", "PubkeyAuthentication=yes"])
                    .arg("-i")
                    .arg(&key.private)
                    .args([
                        "-o",
                        "PreferredAuthentications=publickey,keyboard-interactive",
                    ]);
            }
            None if self.password_authentication => {
                cmd.args(["-o", "PubkeyAuthentication=no"])
                    .args(["-o", "PreferredAuthentications=password"]);
            }
            None => {
                cmd.args(["-o", "PubkeyAuthentication=no"])
                    .args(["-o", "PreferredAuthentications=keyboard-interactive"]);
            }
        }
        if let Some(from) = &self.from {
            cmd.arg("-b").arg(from);
        }
        cmd.arg("-p")
            .arg(sshd.port.to_string())
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(&self.command);
        let f = process::run(cmd, format!("ssh {}@127.0.0.1", self.user), Vec::new());

        let lines = |name: &str| -> Vec<String> {
            std::fs::read_to_string(dir.join(name))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        };
        let prefix = format!("({}@127.0.0.1) ", self.user);
        let prompts = lines("prompts")
            .into_iter()
            .map(|p| p.strip_prefix(&prefix).map(str::to_owned).unwrap_or(p))
            .collect();
        SshOutcome {
            status: f.status,
            stdout: f.stdout,
            stderr: f.stderr,
            prompts,
            codes_given: lines("codes"),
            server_log: sshd.log(),
        }
    }
}
