//! `mfa admin fleet …`: the fleet database's administration, run by root with the
//! database administrator's connection. Everything is done by `pam_mfa_fleet::admin`;
//! this only prints.

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
                for (key, value) in policy {
                    println!("{key:<16} {value}");
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

fn connect(connection: &FleetConnection) -> Result<Admin, CliError> {
    Admin::connect(connection.connection.as_deref()).map_err(err)
}

fn err(e: pam_mfa_fleet::FleetError) -> CliError {
    CliError::msg(e.to_string())
}
