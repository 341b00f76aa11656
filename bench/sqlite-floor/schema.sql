-- pam_sqlite_floor's whole store, created by login-bench (bench/src/fixtures.rs) and read
-- by the module (src/lib.rs): one user per row, the secret, the last step accepted.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    last_step INTEGER NOT NULL
) STRICT;
