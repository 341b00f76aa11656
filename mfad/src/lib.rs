//! `mfad`: the resident root daemon that alone opens pam_mfa's device store.
//!
//! Logins (`pam_mfa.so` in sshd, sudo, su, login, screen lockers) and `mfa` ask it over a
//! UNIX socket, in the protocol of the `pam_mfa_protocol` crate; it runs every check and
//! change through the `pam_mfa` library, one implementation of each. `mfa --db` runs the
//! same handlers in its own process ([`Direct`]).
//!
//! # Design: nobody can make the store wait for them
//!
//! * **One request at a time at the store** ([`service`], [`turns`]): the
//!   [`pam_mfa::store::Store`] and its connection live for the daemon's life, and a
//!   request runs, to its end (the library's transactions), only once it has the turn,
//!   root's before any user's. A request takes the turn only when it has been read whole,
//!   decoded and authorised, and gives it back before its answer is written: a client
//!   that stops, hangs or goes away can therefore never hold a transaction open.
//! * **The acceptor** ([`conn`]) reads every new connection's SO_PEERCRED and admits it
//!   only within caps: [`conn::PER_UID`] connections per non-root uid and
//!   [`conn::USERS_TOTAL`] for all non-root peers together, and a separate allowance,
//!   [`conn::ROOT_TOTAL`], for root (sshd, sudo, su, login and root's `mfa` run as root).
//!   A connection over its cap gets a short `Busy` answer if the socket takes it at once,
//!   and is closed.
//! * **One thread per admitted connection** reads a request within deadlines (the first
//!   byte of a request within [`conn::FIRST_REQUEST_WAIT`] or, between requests,
//!   [`conn::IDLE_WAIT`]; the rest of it within [`conn::FRAME_TIME`]), refuses a frame over
//!   the size limit from its length alone, writes with [`conn::WRITE_TIMEOUT`], and runs
//!   the request when its turn comes ([`turns`]): root's always first, so a user's
//!   requests never delay a login's. A thread whose connection ended serves the next.
//! * **Who may ask what** ([`authorise`]) comes from the peer's uid, never from the
//!   message: a non-root caller may only name its own account (the name is resolved
//!   to its canonical account and uid, and compared), and its module-argument overrides
//!   are ignored, so a user cannot loosen their own lock-out. Anything else is refused and
//!   logged with the uid and what was asked.
//! * **Self-service** ([`selfservice`]): the changes `mfa` makes to a person's own
//!   devices, through the same library calls (`pam_mfa::selfservice`, `enrollment`), with
//!   the same rules: the policy's self-service switch and the change-rate limit for
//!   non-root callers, a single-use proof of an existing device ([`tickets`]) before a
//!   change, and audit rows written as the peer's uid, attached for that one request.
//! * **Administration** ([`admin`]): `mfa admin`'s requests, for root only, through
//!   `pam_mfa::admin` (one implementation with `mfa`), audit rows as the peer's uid; the
//!   hardware-token inventory too (`pam_mfa::tokens`), whose seed files are parsed in the
//!   connection's thread and may come in frames up to `MAX_ROOT_MESSAGE` from root only.
//! * **Security keys** ([`keys`], and `selfservice` for registering one): the daemon is
//!   the relying party. It issues every challenge (32 random bytes under a single-use
//!   ticket bound to the peer's uid and the account) and checks every answer; the client
//!   only carries them to and from the key.
//! * **Registration at login** ([`held`]): the module's `enroll_at_login`, root only,
//!   through `pam_mfa::login_hold`.
//! * **A fleet** ([`fleet`]): with a fleet configuration (`--config`), the accounts not
//!   kept locally are answered by the fleet's PostgreSQL database, whose functions check
//!   and record every code; this host never holds their secrets.
//! * **Logs** go to syslog, facility authpriv, like the module's ([`log`]): outcomes of
//!   logins and refusals, never a code or a secret.
//!
//! The store is checked with the store's own safety rules when the daemon starts: an
//! unsafe store (not root's, or readable by others) stops it with a line on stderr and
//! exit status 1. A store that does not exist yet is "nobody has a device", as for the
//! module, until `mfa` creates it.
//!
//! The socket is bound at `--socket` (default [`DEFAULT_SOCKET`], mode 0666: the peer
//! credentials decide, not the file mode), or received from systemd socket activation
//! ([`activation`]).

pub mod activation;
mod admin;
pub mod args;
pub mod authorise;
pub mod conn;
mod direct;
pub mod fleet;
mod held;
mod keys;
pub mod log;
pub(crate) mod remembered;
mod selfservice;
pub mod service;
mod tickets;
pub mod turns;

pub use args::Args;
pub use direct::Direct;

/// The fleet configuration's place unless `--config` says otherwise (see docs/fleet.md).
pub use pam_mfa_fleet::config::DEFAULT_PATH as DEFAULT_CONFIG;

/// Where the daemon listens unless told otherwise (systemd's `mfad.socket` uses it too).
pub use pam_mfa_protocol::DEFAULT_SOCKET;
