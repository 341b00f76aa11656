//! The command line, as scripts rely on it: global options first, then the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mfa",
    version,
    about = "Register and manage the devices pam_mfa asks for at login",
    long_about = "Register and manage the devices (authenticator apps, hardware tokens, \
                  security keys) that pam_mfa asks for at login.\n\nWithout --user, mfa acts \
                  on the account that runs it."
)]
pub struct Cli {
    /// The daemon's socket [default: /run/pam_mfa/mfad.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Open this device store in mfa itself instead of asking the daemon (root only: to
    /// prepare an image, or repair a host whose daemon is broken)
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Act on this user's devices instead of your own (root only)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register a new device
    #[command(subcommand)]
    Enroll(Enroll),
    /// List devices (never shows secrets)
    List {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Give a device a new name
    Rename { name: String, new_name: String },
    /// Remove a device
    Remove {
        name: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Bring a device whose clock drifted back in sync with two consecutive codes (asked
    /// for, echo off)
    Resync {
        name: String,
        #[command(flatten)]
        codes: TwoCodes,
    },
    /// Check the store, the clock, PAM and sshd configuration, and who would be locked
    /// out (root only; changes nothing)
    Doctor(Doctor),
    /// Administration: policy, every user's devices, lock-outs, the audit trail (root
    /// only)
    #[command(subcommand)]
    Admin(Admin),
    /// One-time recovery codes, for logging in after losing every device
    #[command(subcommand)]
    Recovery(Recovery),
    /// Forget every remembered login, so that the next login everywhere asks for a code
    /// again (where the administrator lets logins be remembered)
    Forget,
}

impl Command {
    /// Whether the command changes the caller's devices, and so needs a current code of
    /// one of them (a proof) from a caller who has one: the daemon enforces it, `mfa`
    /// asks for it first. Finishing a registration needs none (beginning it did);
    /// `forget` only ever asks for codes more often; the rest change nothing.
    pub fn needs_proof(&self) -> bool {
        match self {
            Self::Enroll(Enroll::Totp(_) | Enroll::Fido2(_) | Enroll::Token { .. })
            | Self::Rename { .. }
            | Self::Remove { .. }
            | Self::Resync { .. }
            | Self::Recovery(_) => true,
            Self::Enroll(Enroll::Finish { .. })
            | Self::List { .. }
            | Self::Doctor(_)
            | Self::Admin(_)
            | Self::Forget => false,
        }
    }

    /// The two codes this command takes, if it is one that does.
    pub fn two_codes(&self) -> Option<&TwoCodes> {
        match self {
            Self::Resync { codes, .. }
            | Self::Enroll(Enroll::Token { codes, .. } | Enroll::Finish { codes, .. }) => {
                Some(codes)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Recovery {
    /// Make 10 new recovery codes and show them once; they replace any earlier set only
    /// after they were written out in full
    Generate,
}

#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Show or change the policy every service and `mfa` follow
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Every user's devices: names, kinds, states, last use (never secrets)
    List {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Remove USER's device NAME (a hardware token goes back to the inventory)
    Remove { user: String, name: String },
    /// The inventory of hardware OTP tokens: load the vendor's seed file, list, remove
    #[command(subcommand)]
    Tokens(Tokens),
    /// Clear USER's failed attempts and lock-out
    Unlock { user: String },
    /// Issue a temporary code for USER to log in with instead of a verification code
    /// (read it to them over the phone); also clears their lock-out
    Bypass {
        user: String,
        /// How many logins it is good for (1-100)
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=100))]
        uses: u32,
        /// How long it is valid: 90s, 30m, 12h, 7d at most
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        expires: String,
    },
    /// Who changed what, when and from which uid; `audit prune` removes old rows
    Audit(Audit),
    /// The fleet database (PostgreSQL) that many hosts share: install its schema, add
    /// and remove hosts. Connects to PostgreSQL directly as its administrator, not
    /// through the daemon
    #[command(subcommand)]
    Fleet(Fleet),
}

#[derive(Debug, Subcommand)]
pub enum Fleet {
    /// Install or upgrade the schema, roles and functions (safe to run again)
    Init(FleetConnection),
    /// Create the database role of host NAME (mfa_host_NAME) and print its password once,
    /// with a ready-to-paste /etc/pam_mfa/mfad.conf
    AddHost {
        /// The host's name: 1-40 characters of a-z, 0-9 and _
        name: String,
        /// A database server for the printed mfad.conf, as HOST:PORT (repeat for a
        /// standby) [default: an example to edit]
        #[arg(long, value_name = "HOST:PORT")]
        server: Vec<String>,
        #[command(flatten)]
        connection: FleetConnection,
    },
    /// Drop host NAME's role: it can no longer reach the fleet, and its open sessions
    /// end now
    RemoveHost {
        name: String,
        #[command(flatten)]
        connection: FleetConnection,
    },
    /// The fleet's policy, which every host follows for the fleet's accounts:
    /// self_service allow|deny, max_devices 1..8, no_device allow|deny|enroll,
    /// max_failures 1..1000, lockout_seconds 1..604800, window 0..10,
    /// audit_retention_days 1..36500 ("default" for the built-in value)
    #[command(subcommand)]
    Policy(FleetPolicy),
    /// Move this host's local device store into the fleet: every account but mfad.conf's
    /// local_users, with its devices (and their replay state), recovery and bypass codes,
    /// in one transaction; then remove their local copies. An account the fleet has
    /// devices or codes of already is skipped and kept here (nothing is merged).
    /// Unfinished registrations are not moved
    Import {
        /// The local device store [default: /var/lib/pam_mfa/devices.db]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// This host's mfad.conf, whose local_users stay local [default:
        /// /etc/pam_mfa/mfad.conf]
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Say what would be moved and skipped, and change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        connection: FleetConnection,
    },
    /// Every host that has a role
    Hosts {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: FleetConnection,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetPolicy {
    /// Print every setting
    Show {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: FleetConnection,
    },
    /// Change one setting
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        connection: FleetConnection,
    },
}

/// How `mfa admin fleet` reaches PostgreSQL as its administrator.
#[derive(Debug, Args)]
pub struct FleetConnection {
    /// A libpq connection string, e.g. "host=db1.example.com user=postgres
    /// sslrootcert=/etc/pam_mfa/fleet-ca.pem" (TCP needs sslrootcert, checked as
    /// verify-full, or sslmode=disable). Keys left out come from PGHOST, PGPORT, PGUSER,
    /// PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY [default:
    /// the local socket, user postgres, database pam_mfa]. Give a password in PGPASSWORD,
    /// not here: other users can read a command line
    #[arg(long, value_name = "CONNINFO")]
    pub connection: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Audit {
    #[command(subcommand)]
    pub command: Option<AuditCmd>,
    /// Only changes to this user's devices
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only changes since TIME: unix seconds, or an age such as 30m, 12h, 7d
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Remove the rows older than the policy's audit_retention_days (every change does
    /// this too), or older than --older-than; prints how many went
    Prune {
        /// Remove the rows older than AGE instead, such as 12h, 90d
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Tokens {
    /// Load the seeds of a box of tokens from the vendor's file (PSKC or CSV), all or
    /// none
    Import {
        /// The seed file (at most 16 MiB)
        file: PathBuf,
        /// The file's format [default: PSKC if it starts with '<', else CSV]
        #[arg(long, value_enum)]
        format: Option<SeedFormat>,
        /// A file holding the PSKC pre-shared key as 32 hex digits, for encrypted seeds
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Load the file's seeds over tokens already in the inventory (never over an
        /// assigned one)
        #[arg(long)]
        replace: bool,
    },
    /// Every token: serial, type, and to whom it is assigned (never the seed)
    List {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Take an unassigned token out of the inventory for good
    Remove { serial: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SeedFormat {
    Pskc,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Print every setting
    Show {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Change one setting: self_service allow|deny, max_devices 1..8, no_device
    /// allow|deny|enroll, max_failures 1..1000, lockout_seconds 1..604800, window 0..10,
    /// audit_retention_days 1..36500 ("default" for the built-in value of the last four),
    /// remember_seconds 0..43200 (how long a successful login is remembered for the same
    /// user, service and remote host; 0, the default: never), remember_local allow|deny
    /// (whether logins without a remote host may be remembered too; default deny)
    Set { key: String, value: String },
}

#[derive(Debug, Args)]
pub struct Doctor {
    /// Check the configuration under DIR (DIR/etc/pam.d, DIR/etc/ssh, ...) instead of /;
    /// --db is still taken as given
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print JSON for scripts: [{"check","status","message","fix"}]
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Enroll {
    /// Register an authenticator app (TOTP): shows a QR code, then asks for two codes
    Totp(EnrollTotp),
    /// Register a FIDO2 security key: asks for a touch (and its PIN where it has one)
    Fido2(EnrollFido2),
    /// Register a hardware OTP token from the inventory by its serial number and two
    /// consecutive codes (press the button twice, or wait for the next code)
    Token {
        /// A name for the token, e.g. "fob" (1-64 characters)
        name: String,
        /// The serial number printed on the token
        serial: String,
        #[command(flatten)]
        codes: TwoCodes,
    },
    /// Activate a device registered with --begin, with two consecutive codes (asked for,
    /// echo off)
    Finish {
        name: String,
        #[command(flatten)]
        codes: TwoCodes,
    },
}

/// The two consecutive codes `resync`, `enroll finish` and `enroll token` need. Left out,
/// they are asked for with echo off; `-` reads them from standard input. A command line
/// can be read by every user of the host (`ps`, /proc), so only root's scripts may give
/// the codes there.
#[derive(Debug, Args)]
pub struct TwoCodes {
    /// The code shown now. Leave both codes out to be asked for them, or give - to read
    /// them from standard input, one per line. Only root may give the codes here: other
    /// users can read a command line
    #[arg(value_name = "CODE1")]
    pub code1: Option<String>,
    /// The next code (root only, as CODE1)
    #[arg(value_name = "CODE2")]
    pub code2: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnrollTotp {
    /// A name for the device, e.g. "pixel-7" (1-64 characters)
    pub name: String,
    /// Issuer shown in the app [default: this host's name]
    #[arg(long, value_name = "TEXT")]
    pub issuer: Option<String>,
    /// Also print the secret key, for typing into an app by hand
    #[arg(long)]
    pub show_secret: bool,
    /// Only create the pending device and print its secret and URI, then exit; activate
    /// it with `mfa enroll finish` within 10 minutes
    #[arg(long)]
    pub begin: bool,
    /// With --begin: print one JSON object: user, name, issuer, account (the app's label),
    /// secret (base32), uri (otpauth://), algorithm, digits, period, expires_at (unix
    /// time)
    #[arg(long, requires = "begin")]
    pub json: bool,
    /// Also write the QR code as a PNG image to FILE
    #[arg(long, value_name = "FILE")]
    pub qr_png: Option<PathBuf>,
    /// Also write the QR code as an SVG image to FILE
    #[arg(long, value_name = "FILE")]
    pub qr_svg: Option<PathBuf>,
    /// Overwrite an existing QR image file
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct EnrollFido2 {
    /// A name for the key, e.g. "yubikey-blue" (1-64 characters)
    pub name: String,
    /// Require the key's PIN at every login (the key must have a PIN set)
    #[arg(long, conflicts_with = "uv")]
    pub pin: bool,
    /// Require user verification at every login: the key's PIN, or its built-in
    /// verification (e.g. a fingerprint)
    #[arg(long)]
    pub uv: bool,
    /// The relying-party id stored with the key [default: pam://HOSTNAME]
    #[arg(long, value_name = "ID")]
    pub rp_id: Option<String>,
    /// Seconds to wait for the touch (1-120)
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=120))]
    pub timeout: u32,
}
