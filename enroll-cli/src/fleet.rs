//! `mfa admin fleet …`: the fleet database's administration, run by root with the
//! database administrator's connection. Everything is done by `pam_mfa_fleet::admin`;
//! this only prints.

use std::path::PathBuf;

use pam_mfa::store::{self, Store, export};
use pam_mfa_fleet::FleetConfig;
use pam_mfa_fleet::admin::import::Outcome;
use pam_mfa_fleet::admin::{self, Admin};
use serde_json::json;

use crate::CliError;
use crate::cli::{Fleet, FleetConnection, FleetPolicy};

pub fn run(cmd: Fleet) -> Result<(), CliError> {
    match cmd {
        Fleet::Init(connection) => {
            let mut db = connect(&connection)?;
            db.init().map_err(err)?;
            println!(
                "The fleet schema is installed in database {} (roles pam_mfa_owner, pam_mfa_host).",
                db.database()
            );
            Ok(())
        }
        Fleet::AddHost {
            name,
            server,
            connection,
        } => {
            admin::check_host_name(&name).map_err(err)?;
            for s in &server {
                pam_mfa_fleet::HostPort::parse(s).map_err(CliError::msg)?;
            }
            let mut db = connect(&connection)?;
            let credential = db.add_host(&name).map_err(err)?;
            let snippet = admin::config_snippet(&credential, &server, db.database());
            println!(
                "Host {name} can now reach the fleet as role {}. Its password is shown this \
                 once; put it in the host's /etc/pam_mfa/mfad.conf (owner root, mode 0600), \
                 and copy the CA certificate that signed the database server's certificate \
                 to /etc/pam_mfa/fleet-ca.pem:\n",
                credential.role
            );
            print!("{}", snippet.as_str());
            Ok(())
        }
        Fleet::RemoveHost { name, connection } => {
            admin::check_host_name(&name).map_err(err)?;
            let mut db = connect(&connection)?;
            db.remove_host(&name).map_err(err)?;
            println!("Host {name} was removed: its role is dropped and its sessions ended.");
            Ok(())
        }
        Fleet::Policy(FleetPolicy::Show { json, connection }) => {
            let mut db = connect(&connection)?;
            let policy = db.policy().map_err(err)?;
            if json {
                let map: serde_json::Map<String, serde_json::Value> = policy
                    .iter()
                    .map(|(k, v)| {
                        let value = v
                            .parse::<u64>()
                            .map(serde_json::Value::from)
                            .unwrap_or_else(|_| serde_json::Value::from(v.as_str()));
                        ((*k).to_owned(), value)
                    })
                    .collect();
                println!("{}", serde_json::Value::Object(map));
            } else {
                let width = policy.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (key, value) in policy {
                    println!("{key:<width$} {value}");
                }
            }
            Ok(())
        }
        Fleet::Policy(FleetPolicy::Set {
            key,
            value,
            connection,
        }) => {
            let mut db = connect(&connection)?;
            db.set_policy(&key, &value).map_err(err)?;
            println!(
                "The fleet's {key} is now {value}; every host follows it from its next login."
            );
            Ok(())
        }
        Fleet::Import {
            db,
            config,
            dry_run,
            connection,
        } => import(db, config, dry_run, &connection),
        Fleet::Hosts { json, connection } => {
            let mut db = connect(&connection)?;
            let hosts = db.list_hosts().map_err(err)?;
            if json {
                let out: Vec<_> = hosts
                    .iter()
                    .map(|h| json!({"name": h, "role": format!("{}{h}", admin::HOST_ROLE_PREFIX)}))
                    .collect();
                println!("{}", serde_json::Value::Array(out));
            } else if hosts.is_empty() {
                println!("No hosts yet: add one with `mfa admin fleet add-host NAME`.");
            } else {
                for h in hosts {
                    println!("{h}");
                }
            }
            Ok(())
        }
    }
}

/// `mfa admin fleet import`: the store is read and its moved accounts removed under one
/// SQLite write lock held across the database's commit, so that no local login changes
/// an account between its copy and its removal. Should the removal fail after the commit,
/// the accounts are in both places; the fleet's copy is the one mfad uses (they are not
/// local_users), and a second run skips them and says so.
fn import(
    db: Option<PathBuf>,
    config: Option<PathBuf>,
    dry_run: bool,
    connection: &FleetConnection,
) -> Result<(), CliError> {
    let config_path = config.unwrap_or_else(|| PathBuf::from(pam_mfa_fleet::config::DEFAULT_PATH));
    let fleet = FleetConfig::load(&config_path)
        .map_err(|e| CliError::msg(e.to_string()))?
        .ok_or_else(|| {
            CliError::msg(format!(
                "{} has no [fleet] section: set this host up for the fleet first (its \
                 local_users are the accounts that stay in the local store)",
                config_path.display()
            ))
        })?;
    let db_path = db.unwrap_or_else(|| PathBuf::from(store::DEFAULT_PATH));
    let Some(mut local) = Store::open_existing(&db_path)? else {
        println!(
            "There is no device store at {}: nothing to move.",
            db_path.display()
        );
        return Ok(());
    };
    let now = pam_mfa::clock::now()?;
    // A dry run only reads (no lock that would hold up the host's logins).
    let (results, kept_local, destination) = if dry_run {
        let (accounts, kept_local) =
            local.read(|s| export::accounts(s.conn(), now, |u| fleet.is_local_user(u)))?;
        let mut admin = connect(connection)?;
        let results = admin.import_accounts(&accounts, 0, true).map_err(err)?;
        (
            results,
            kept_local,
            format!("the fleet database {}", admin.database()),
        )
    } else {
        let tx = local.write()?;
        let (accounts, kept_local) = export::accounts(&tx, now, |u| fleet.is_local_user(u))?;
        let mut admin = connect(connection)?;
        let results = admin.import_accounts(&accounts, 0, false).map_err(err)?;
        let destination = format!("the fleet database {}", admin.database());
        let moved: Vec<String> = results
            .iter()
            .filter(|r| r.outcome == Outcome::Moved)
            .map(|r| r.user.clone())
            .collect();
        if !moved.is_empty() {
            export::remove_moved(&tx, &moved, 0, &destination, now)?;
            tx.commit().map_err(pam_mfa::Error::from)?;
        }
        (results, kept_local, destination)
    };
    let (mut n_moved, mut n_skipped, mut n_devices, mut n_codes) = (0, 0, 0, 0);
    for r in &results {
        let what = format!(
            "{} device{}, {} recovery and bypass code{}",
            r.devices,
            plural(r.devices),
            r.codes,
            plural(r.codes)
        );
        match r.outcome {
            Outcome::Moved | Outcome::WouldMove => {
                n_moved += 1;
                n_devices += r.devices;
                n_codes += r.codes;
                let verb = if r.outcome == Outcome::Moved {
                    "moved"
                } else {
                    "would move"
                };
                println!("{verb:<10} {}: {what}", r.user);
            }
            Outcome::Skipped => {
                n_skipped += 1;
                println!(
                    "skipped    {}: the fleet has devices or codes of this account already; \
                     nothing merged, the local copy is kept",
                    r.user
                );
            }
        }
    }
    for user in &kept_local {
        println!("local      {user}: in local_users, stays in this host's store");
    }
    let summary = format!(
        "{n_moved} account{} ({n_devices} device{}, {n_codes} code{}), {n_skipped} skipped, \
         {} kept local",
        plural(n_moved),
        plural(n_devices),
        plural(n_codes),
        kept_local.len()
    );
    if dry_run {
        println!("Dry run, nothing changed: would move {summary}.");
    } else {
        println!(
            "Moved {summary} to {destination}; the moved accounts' devices and codes are \
             removed from {}.",
            db_path.display()
        );
    }
    Ok(())
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn connect(connection: &FleetConnection) -> Result<Admin, CliError> {
    Admin::connect(connection.connection.as_deref()).map_err(err)
}

fn err(e: pam_mfa_fleet::FleetError) -> CliError {
    CliError::msg(e.to_string())
}
