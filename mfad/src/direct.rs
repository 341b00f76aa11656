//! The daemon's request handling without the daemon, for `mfa --db PATH` (root only):
//! preparing an image, repairing a host whose daemon is broken, tests. The same
//! authorisation and the same handlers as a request from the socket, run in the caller's
//! process as root (uid 0), one at a time.

use std::path::Path;

use pam_mfa_protocol::{Request, Response};

use crate::authorise::authorise;
use crate::log::Log;
use crate::service::Service;

pub struct Direct {
    service: Service,
    log: Log,
}

impl Direct {
    /// Opens the store at `db` (an absolute path) as the daemon would: an unsafe store is
    /// refused. A store that does not exist yet is created by the first change.
    pub fn open(db: &Path) -> Result<Self, String> {
        if !db.is_absolute() {
            return Err(format!("--db {}: must be an absolute path", db.display()));
        }
        let store = pam_mfa::store::Store::open_existing(db).map_err(|e| e.to_string())?;
        Ok(Self {
            service: Service::new(store, db.to_owned()),
            log: Log::syslog_only(),
        })
    }

    /// Answers `request` as the daemon answers root.
    pub fn ask(&mut self, request: Request) -> Response {
        match authorise(0, request) {
            Ok(work) => self.service.answer(0, work, &self.log),
            Err(refused) => {
                if let Some(line) = &refused.log {
                    self.log.log(crate::log::Level::Notice, line);
                }
                Response::Error(refused.reply)
            }
        }
    }
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct(..)")
    }
}
