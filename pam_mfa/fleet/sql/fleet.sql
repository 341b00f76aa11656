-- pam_mfa fleet database (issue 19): roles, schema `pam_mfa_fleet`, tables, functions and
-- grants, as fixed by the fleet contract (CONTRACT.md). Run as a superuser:
--
--     psql -v ON_ERROR_STOP=1 -d pam_mfa -f fleet.sql
--
-- It installs or upgrades in one transaction and can be run any number of times: roles and
-- the schema are created when missing, tables come from numbered migrations recorded in
-- `schema_version` (like the local store's `PRAGMA user_version`), functions are
-- `CREATE OR REPLACE`d and their grants set again each time. No psql meta-command is used,
-- so a client can also send the whole file as one simple-protocol batch.
--
-- Hosts (roles `mfa_host_<name>`, members of `pam_mfa_host`) have no table privileges at all:
-- only EXECUTE on the SECURITY DEFINER host functions, each a thin wrapper that reads the
-- server's clock and calls an owner-only `*_at(..., p_now)` function holding the logic (the
-- same semantics as the Rust library's login.rs, lockout.rs, otp.rs, hotp.rs and
-- enrollment/). Everything a user's codes touch serialises on that user's `auth_state` row
-- (see `lock_user`), so each check-and-record is atomic across every host.

BEGIN;

SET LOCAL client_min_messages = warning;
-- Two inits at once wait for each other instead of racing on the same objects.
DO $lock$ BEGIN PERFORM pg_advisory_xact_lock(7236975162386410803); END $lock$;

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pam_mfa_owner') THEN
        CREATE ROLE pam_mfa_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pam_mfa_host') THEN
        CREATE ROLE pam_mfa_host NOLOGIN;
    END IF;
END
$roles$;
-- Whatever an earlier hand-made setup did: the owner logs in never, and neither group role
-- is a member of the other (a host must never be able to SET ROLE pam_mfa_owner). Altered
-- only when needed, so that an administrator who is not a superuser (CREATEROLE, owner of
-- the database) can run this file too; such an administrator is made a member of the
-- owner role, which the SET ROLE below needs.
DO $members$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles
               WHERE rolname IN ('pam_mfa_owner', 'pam_mfa_host')
                 AND (rolcanlogin OR rolsuper OR rolcreatedb OR rolcreaterole
                      OR rolreplication OR rolbypassrls)) THEN
        ALTER ROLE pam_mfa_owner
            NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
        ALTER ROLE pam_mfa_host
            NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'pam_mfa_owner', 'MEMBER') THEN
        EXECUTE format('GRANT pam_mfa_owner TO %I', current_user);
    END IF;
    IF pg_has_role('pam_mfa_host', 'pam_mfa_owner', 'MEMBER') THEN
        RAISE EXCEPTION 'pam_mfa_host is a member of pam_mfa_owner: hosts could read secrets'
            USING ERRCODE = 'MF005';
    END IF;
END
$members$;

CREATE SCHEMA IF NOT EXISTS pam_mfa_fleet AUTHORIZATION pam_mfa_owner;
ALTER SCHEMA pam_mfa_fleet OWNER TO pam_mfa_owner;
REVOKE ALL ON SCHEMA pam_mfa_fleet FROM PUBLIC;
GRANT USAGE ON SCHEMA pam_mfa_fleet TO pam_mfa_host;

-- HMAC and random bytes. Installed in our schema when missing; when the database already
-- has pgcrypto elsewhere, that copy is used, always called schema-qualified (see
-- `hmac_` and `random_bytes_` below), never found through a search_path.
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA pam_mfa_fleet;

SET LOCAL ROLE pam_mfa_owner;

CREATE TABLE IF NOT EXISTS pam_mfa_fleet.schema_version (version int NOT NULL);
INSERT INTO pam_mfa_fleet.schema_version (version)
SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.schema_version);

-- The store's hard ceiling of 8 active devices per user (the local store's triggers),
-- so that no function, present or future, exceeds it.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.devices_at_most_8() RETURNS trigger
LANGUAGE plpgsql SET search_path = pam_mfa_fleet, pg_temp AS $$
BEGIN
    IF NEW.state = 'active' AND (TG_OP = 'INSERT' OR OLD.state <> 'active')
       AND (SELECT count(*) FROM pam_mfa_fleet.devices
            WHERE user_name = NEW.user_name AND state = 'active') >= 8 THEN
        RAISE EXCEPTION 'pam_mfa: at most 8 active devices per user' USING ERRCODE = 'MF002';
    END IF;
    RETURN NEW;
END
$$;

-- The rules of a device row, checked when a row is written other than by a login (schema
-- version 5 on; they were CHECK constraints, which PostgreSQL reads from the catalog and
-- prepares again at every UPDATE: 10-15% of the database's work for an accepted code).
-- A TOTP login writes last_step and last_used_at only, so this trigger does not fire
-- then; last_step keeps its CHECK constraint. Each rule is its former constraint's
-- expression over NEW and fails only when false, as a CHECK does, with that constraint's
-- name and SQLSTATE. A column added later must be added to the trigger's column list.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.devices_valid() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    broken text;
BEGIN
    broken := CASE
        WHEN NOT (octet_length(NEW.user_name) BETWEEN 1 AND 256) THEN 'devices_user_name_check'
        WHEN NOT (char_length(NEW.name) BETWEEN 1 AND 64) THEN 'devices_name_check'
        WHEN NOT (NEW.kind IN ('totp', 'token', 'fido2')) THEN 'devices_kind_check'
        WHEN NOT (NEW.state IN ('pending', 'active')) THEN 'devices_state_check'
        WHEN NOT (NEW.secret IS NULL OR length(NEW.secret) BETWEEN 1 AND 128)
            THEN 'devices_secret_check'
        WHEN NOT (NEW.algorithm IN ('SHA1', 'SHA256', 'SHA512')) THEN 'devices_algorithm_check'
        WHEN NOT (NEW.digits BETWEEN 6 AND 8) THEN 'devices_digits_check'
        WHEN NOT (NEW.period BETWEEN 1 AND 300) THEN 'devices_period_check'
        WHEN NOT (NEW.drift BETWEEN -1501 AND 1501) THEN 'devices_drift_check'
        WHEN NOT (NEW.counter BETWEEN 0 AND 281474976710656) THEN 'devices_counter_check'
        WHEN NOT (NEW.token_serial IS NULL OR length(NEW.token_serial) BETWEEN 1 AND 64)
            THEN 'devices_token_serial_check'
        WHEN NOT (NEW.credential_id IS NULL OR length(NEW.credential_id) BETWEEN 1 AND 1023)
            THEN 'devices_credential_id_check'
        WHEN NOT (NEW.cose_public_key IS NULL OR length(NEW.cose_public_key) BETWEEN 1 AND 1024)
            THEN 'devices_cose_public_key_check'
        WHEN NOT (NEW.sign_count IS NULL OR NEW.sign_count BETWEEN 0 AND 4294967295)
            THEN 'devices_sign_count_check'
        WHEN NOT (NEW.rp_id IS NULL OR length(NEW.rp_id) BETWEEN 1 AND 255)
            THEN 'devices_rp_id_check'
        WHEN NOT (NEW.kind = 'fido2' OR (NEW.secret IS NOT NULL AND NEW.algorithm IS NOT NULL
                                         AND NEW.digits IS NOT NULL
                                         AND (NEW.period IS NULL) <> (NEW.counter IS NULL)))
            THEN 'devices_check'
        WHEN NOT (NEW.kind = 'token' OR NEW.counter IS NULL) THEN 'devices_check1'
        WHEN NOT (NEW.kind <> 'fido2' OR (NEW.secret IS NULL AND NEW.credential_id IS NOT NULL
                                          AND NEW.cose_public_key IS NOT NULL
                                          AND NEW.sign_count IS NOT NULL
                                          AND NEW.rp_id IS NOT NULL
                                          AND NEW.uv_required IS NOT NULL))
            THEN 'devices_check2'
        WHEN NOT (NEW.state <> 'pending' OR NEW.expires_at IS NOT NULL) THEN 'devices_check3'
        WHEN NOT (NEW.kind = 'token' OR NEW.token_id IS NULL)
            THEN 'devices_token_from_inventory'
        WHEN NOT (NEW.login_hold IS NULL OR length(NEW.login_hold) = 32)
            THEN 'devices_login_hold_check'
    END;
    IF broken IS NOT NULL THEN
        RAISE EXCEPTION 'new row for relation "devices" violates check constraint "%"', broken
            USING ERRCODE = 'check_violation', CONSTRAINT = broken, TABLE = 'devices',
                  SCHEMA = 'pam_mfa_fleet';
    END IF;
    RETURN NEW;
END
$$;

-- A user's auth_state row is their lock (lock_user) and their failure count. A host
-- function takes the lock of whatever name it is given, so without this a host's unlock
-- or rename for a name that has nothing (or a compromised host calling them for made-up
-- names) would leave a row for good. A row made in a transaction that ends with its user
-- holding no device, no recovery or bypass code and no failures goes when that
-- transaction commits (a deferred trigger on INSERT, so the function's own lock is held to
-- the end and nothing else is touched). It fires at commit, after the host function
-- returned, so it runs with the owner's rights. Rows that already existed are the
-- functions' to delete (remove_device_at, the clean-up of count_failure_).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.auth_state_unused_() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp AS $$
BEGIN
    DELETE FROM pam_mfa_fleet.auth_state a
    WHERE a.user_name = NEW.user_name
      AND a.failures = 0 AND a.window_start = 0 AND a.locked_until IS NULL
      AND NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.devices d
                      WHERE d.user_name = NEW.user_name)
      AND NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.recovery_codes r
                      WHERE r.user_name = NEW.user_name);
    RETURN NULL;
END
$$;

-- Migrations: step i takes the schema from version i - 1 to i. Applied in order, once.
DO $migrate$
DECLARE
    v int;
    c name;
    known CONSTANT int := 7;
BEGIN
    SELECT version INTO v FROM pam_mfa_fleet.schema_version FOR UPDATE;
    IF v > known THEN
        RAISE EXCEPTION 'pam_mfa_fleet schema version % is newer than this file (%)', v, known;
    END IF;

    IF v < 1 THEN
        -- Code devices (authenticator apps, kind 'totp'; hardware tokens, kind 'token', whose
        -- seed is held here too) and security keys (kind 'fido2': public key and sign count
        -- only). A TOTP device has a period; an event-based (HOTP) token has a counter
        -- instead: the next value expected.
        CREATE TABLE pam_mfa_fleet.devices (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_name       text    NOT NULL CHECK (octet_length(user_name) BETWEEN 1 AND 256),
            name            text    NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
            kind            text    NOT NULL CHECK (kind IN ('totp', 'token', 'fido2')),
            state           text    NOT NULL CHECK (state IN ('pending', 'active')),
            secret          bytea   CHECK (secret IS NULL OR length(secret) BETWEEN 1 AND 128),
            algorithm       text    CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
            digits          int     CHECK (digits BETWEEN 6 AND 8),
            period          int     CHECK (period BETWEEN 1 AND 300),
            drift           bigint  NOT NULL DEFAULT 0 CHECK (drift BETWEEN -1501 AND 1501),
            last_step       bigint  CHECK (last_step BETWEEN 0 AND 1099511627776),
            counter         bigint  CHECK (counter BETWEEN 0 AND 281474976710656),
            created_at      bigint  NOT NULL,
            last_used_at    bigint,
            expires_at      bigint,
            token_serial    text    CHECK (token_serial IS NULL OR length(token_serial) BETWEEN 1 AND 64),
            credential_id   bytea   CHECK (credential_id IS NULL OR length(credential_id) BETWEEN 1 AND 1023),
            cose_public_key bytea   CHECK (cose_public_key IS NULL OR length(cose_public_key) BETWEEN 1 AND 1024),
            sign_count      bigint  CHECK (sign_count IS NULL OR sign_count BETWEEN 0 AND 4294967295),
            rp_id           text    CHECK (rp_id IS NULL OR length(rp_id) BETWEEN 1 AND 255),
            uv_required     boolean,
            UNIQUE (user_name, name),
            CHECK (kind = 'fido2' OR (secret IS NOT NULL AND algorithm IS NOT NULL
                                      AND digits IS NOT NULL
                                      AND (period IS NULL) <> (counter IS NULL))),
            CHECK (kind = 'token' OR counter IS NULL),
            CHECK (kind <> 'fido2' OR (secret IS NULL AND credential_id IS NOT NULL
                                       AND cose_public_key IS NOT NULL AND sign_count IS NOT NULL
                                       AND rp_id IS NOT NULL AND uv_required IS NOT NULL)),
            CHECK (state <> 'pending' OR expires_at IS NOT NULL)
        );
        CREATE UNIQUE INDEX devices_by_credential_id ON pam_mfa_fleet.devices (credential_id)
            WHERE credential_id IS NOT NULL;
        CREATE INDEX devices_pending_expiry ON pam_mfa_fleet.devices (expires_at)
            WHERE state = 'pending';
        CREATE TRIGGER devices_at_most_8 BEFORE INSERT OR UPDATE OF state
            ON pam_mfa_fleet.devices FOR EACH ROW
            EXECUTE FUNCTION pam_mfa_fleet.devices_at_most_8();

        -- Per-user failure counting (lockout.rs). The row is also the user's lock: every
        -- function that reads or changes a user's codes takes it FOR UPDATE first.
        CREATE TABLE pam_mfa_fleet.auth_state (
            user_name       text    PRIMARY KEY CHECK (octet_length(user_name) BETWEEN 1 AND 256),
            failures        bigint  NOT NULL DEFAULT 0 CHECK (failures >= 0),
            window_start    bigint  NOT NULL DEFAULT 0,
            locked_until    bigint
        );
        CREATE INDEX auth_state_by_window ON pam_mfa_fleet.auth_state (window_start);

        -- The administrator's policy: one row; NULL numbers mean the built-in default.
        CREATE TABLE pam_mfa_fleet.policy (
            id              int     PRIMARY KEY CHECK (id = 1),
            self_service    text    NOT NULL DEFAULT 'allow' CHECK (self_service IN ('allow', 'deny')),
            max_devices     int     NOT NULL DEFAULT 8 CHECK (max_devices BETWEEN 1 AND 8),
            no_device       text    NOT NULL DEFAULT 'deny'
                                    CHECK (no_device IN ('allow', 'deny', 'enroll')),
            max_failures    int     CHECK (max_failures IS NULL OR max_failures BETWEEN 1 AND 1000),
            lockout_seconds int     CHECK (lockout_seconds IS NULL
                                           OR lockout_seconds BETWEEN 1 AND 604800),
            "window"        int     CHECK ("window" IS NULL OR "window" BETWEEN 0 AND 10)
        );
        INSERT INTO pam_mfa_fleet.policy (id) VALUES (1);

        -- Every change and every code login, with the host that made it (its login role).
        CREATE TABLE pam_mfa_fleet.audit (
            id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at              bigint  NOT NULL,
            actor_uid       bigint  NOT NULL,
            user_name       text    NOT NULL,
            action          text    NOT NULL,
            device          text,
            detail          text,
            host            text    NOT NULL DEFAULT session_user
        );
        CREATE INDEX audit_by_user ON pam_mfa_fleet.audit (user_name, at);
        CREATE INDEX audit_by_time ON pam_mfa_fleet.audit (at);

        UPDATE pam_mfa_fleet.schema_version SET version = 1;
    END IF;

    IF v < 2 THEN
        -- Recovery codes and bypass codes (recovery.rs): only SHA-256 over a per-code
        -- random 16-byte salt and the code, never a code. The codes are made by the host's
        -- mfad, shown once to the person (or to root), and sent here already hashed.
        CREATE TABLE pam_mfa_fleet.recovery_codes (
            id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_name       text    NOT NULL CHECK (octet_length(user_name) BETWEEN 1 AND 256),
            kind            text    NOT NULL CHECK (kind IN ('recovery', 'bypass')),
            salt            bytea   NOT NULL CHECK (length(salt) = 16),
            hash            bytea   NOT NULL CHECK (length(hash) = 32),
            uses_left       int     NOT NULL CHECK (uses_left BETWEEN 0 AND 100),
            expires_at      bigint,
            created_at      bigint  NOT NULL,
            created_by      bigint  NOT NULL,
            host            text    NOT NULL DEFAULT session_user,
            CHECK (kind <> 'bypass' OR expires_at IS NOT NULL)
        );
        CREATE INDEX recovery_codes_by_user ON pam_mfa_fleet.recovery_codes (user_name);

        UPDATE pam_mfa_fleet.schema_version SET version = 2;
    END IF;

    IF v < 3 THEN
        -- Hardware OTP tokens (tokens/inventory.rs, the local store's migration 5): the
        -- fleet's inventory of seeds by serial number. A token given to a user is a
        -- device of kind 'token' pointing at it (one device per token at most), holding a
        -- copy of its seed and, while assigned, its replay state (TOTP: drift and
        -- last_step; HOTP: counter, the next value expected), so logins and resync treat
        -- it like any code device; removing the device hands the high-water mark back
        -- here, so that no code is ever accepted again under a new owner either.
        CREATE TABLE pam_mfa_fleet.tokens (
            id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            serial          text    NOT NULL UNIQUE
                                    CHECK (char_length(serial) BETWEEN 1 AND 64
                                           AND serial ~ '^[A-Za-z0-9._:/-]+$'),
            type            text    NOT NULL CHECK (type IN ('totp', 'hotp')),
            secret          bytea   NOT NULL CHECK (length(secret) BETWEEN 16 AND 128),
            algorithm       text    NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
            digits          int     NOT NULL CHECK (digits BETWEEN 6 AND 8),
            period          int     CHECK (period BETWEEN 1 AND 300),
            counter         bigint  CHECK (counter BETWEEN 0 AND 281474976710656),
            last_step       bigint  CHECK (last_step BETWEEN 0 AND 1099511627776),
            imported_at     bigint  NOT NULL,
            CHECK ((type = 'totp') = (period IS NOT NULL)),
            CHECK ((type = 'hotp') = (counter IS NOT NULL)),
            CHECK (type = 'totp' OR last_step IS NULL)
        );
        -- Who has a token: the device pointing at it (so an assignment cannot disagree
        -- with the devices), and a token cannot leave the inventory while one does.
        ALTER TABLE pam_mfa_fleet.devices
            ADD COLUMN token_id bigint REFERENCES pam_mfa_fleet.tokens (id);
        CREATE UNIQUE INDEX devices_by_token ON pam_mfa_fleet.devices (token_id)
            WHERE token_id IS NOT NULL;
        -- Only a token device points at a token. (A token device without one has no
        -- inventory entry to return to: a token whose seed came with its device.)
        ALTER TABLE pam_mfa_fleet.devices ADD CONSTRAINT devices_token_from_inventory
            CHECK (kind = 'token' OR token_id IS NULL);

        UPDATE pam_mfa_fleet.schema_version SET version = 3;
    END IF;

    IF v < 4 THEN
        -- Registration at login (login_hold.rs): a pending device held for one login keeps
        -- the SHA-256 of a value only that login holds; only that login's success
        -- activates it, and `mfa enroll finish` never does.
        ALTER TABLE pam_mfa_fleet.devices ADD COLUMN login_hold bytea
            CHECK (login_hold IS NULL OR length(login_hold) = 32);

        UPDATE pam_mfa_fleet.schema_version SET version = 4;
    END IF;

    IF v < 5 THEN
        -- The device rules move from CHECK constraints to devices_valid (see there), all
        -- but last_step's, the one column besides last_used_at that a TOTP login writes.
        -- Every other column is in the trigger's list.
        FOR c IN SELECT conname FROM pg_constraint
                 WHERE conrelid = 'pam_mfa_fleet.devices'::regclass AND contype = 'c'
                   AND conname <> 'devices_last_step_check' LOOP
            EXECUTE format('ALTER TABLE pam_mfa_fleet.devices DROP CONSTRAINT %I', c);
        END LOOP;
        CREATE TRIGGER devices_valid
            BEFORE INSERT OR UPDATE OF id, user_name, name, kind, state, secret, algorithm,
                digits, period, drift, counter, created_at, expires_at, token_serial,
                credential_id, cose_public_key, sign_count, rp_id, uv_required, token_id,
                login_hold
            ON pam_mfa_fleet.devices FOR EACH ROW
            EXECUTE FUNCTION pam_mfa_fleet.devices_valid();

        UPDATE pam_mfa_fleet.schema_version SET version = 5;
    END IF;

    IF v < 6 THEN
        -- The local store's audit_retention_days (NULL: the built-in 365 days); see audit_.
        -- Its least value, a day, must stay above the longest remembered login (12 hours):
        -- remembered_ended_at reads the audit rows that end them.
        ALTER TABLE pam_mfa_fleet.policy ADD COLUMN audit_retention_days int
            CHECK (audit_retention_days IS NULL OR audit_retention_days BETWEEN 1 AND 36500);
        -- Until now nothing deleted the fleet's rows: an upgrade must not start deleting
        -- what the administrator kept. Older rows than the default keeps set the retention
        -- to cover them (the administrator may shorten it).
        UPDATE pam_mfa_fleet.policy p
        SET audit_retention_days = least(36500, ((t.now_ - o.oldest) / 86400 + 2)::int)
        FROM (SELECT min(a.at) AS oldest FROM pam_mfa_fleet.audit a) o,
             (SELECT floor(extract(epoch FROM clock_timestamp()))::bigint AS now_) t
        WHERE p.id = 1 AND o.oldest < t.now_ - 365 * 86400;

        UPDATE pam_mfa_fleet.schema_version SET version = 6;
    END IF;

    IF v < 7 THEN
        -- See auth_state_unused_. Rows the earlier versions left for names that have
        -- nothing go now, as they would have.
        CREATE CONSTRAINT TRIGGER auth_state_unused AFTER INSERT ON pam_mfa_fleet.auth_state
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            EXECUTE FUNCTION pam_mfa_fleet.auth_state_unused_();
        DELETE FROM pam_mfa_fleet.auth_state a
        WHERE a.failures = 0 AND a.window_start = 0 AND a.locked_until IS NULL
          AND NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.devices d WHERE d.user_name = a.user_name)
          AND NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.recovery_codes r
                          WHERE r.user_name = a.user_name);

        UPDATE pam_mfa_fleet.schema_version SET version = 7;
    END IF;
END
$migrate$;

-- Superuser work again (the pgcrypto copy may not be ours), then back to the owner.
RESET ROLE;

-- hmac_ and random_bytes_: pgcrypto, wherever this database has it, schema-qualified.
DO $crypto$
DECLARE
    ext_schema text;
BEGIN
    SELECT n.nspname INTO STRICT ext_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pgcrypto';
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION pam_mfa_fleet.hmac_(p_data bytea, p_key bytea, p_alg text)
         RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
         RETURN %I.hmac(p_data, p_key, p_alg)', ext_schema);
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION pam_mfa_fleet.random_bytes_(p_n int)
         RETURNS bytea LANGUAGE sql VOLATILE STRICT
         RETURN %I.gen_random_bytes(p_n)', ext_schema);
    ALTER FUNCTION pam_mfa_fleet.hmac_(bytea, bytea, text) OWNER TO pam_mfa_owner;
    ALTER FUNCTION pam_mfa_fleet.random_bytes_(int) OWNER TO pam_mfa_owner;
    -- The owner calls pgcrypto through these, whatever PUBLIC may do there.
    IF NOT has_schema_privilege('pam_mfa_owner', ext_schema, 'USAGE') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO pam_mfa_owner', ext_schema);
    END IF;
    IF NOT has_function_privilege('pam_mfa_owner',
                                  format('%I.hmac(bytea, bytea, text)', ext_schema), 'EXECUTE') THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %I.hmac(bytea, bytea, text) TO pam_mfa_owner',
                       ext_schema);
    END IF;
    IF NOT has_function_privilege('pam_mfa_owner',
                                  format('%I.gen_random_bytes(int)', ext_schema), 'EXECUTE') THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %I.gen_random_bytes(int) TO pam_mfa_owner',
                       ext_schema);
    END IF;
END
$crypto$;

SET LOCAL ROLE pam_mfa_owner;

------------------------------------------------------------------------------------------
-- Building blocks (owner only)
------------------------------------------------------------------------------------------
-- The functions a login runs (login_state_at, check_code_at and what they call) have no
-- SET search_path of their own: every name in them is schema-qualified or pg_catalog's,
-- and the host wrappers that call them fix the search_path for everything below. A SET
-- clause costs a settings save and restore at every call; a login made a dozen. (One
-- function a refused code runs, count_failure_, sets plan_cache_mode: that saves far more
-- than it costs; see there.)

-- The server's clock, one clock for the fleet.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.now_() RETURNS bigint
LANGUAGE sql VOLATILE
RETURN floor(extract(epoch FROM clock_timestamp()))::bigint;

-- RFC 4226 §5.3: HMAC of the 8-byte big-endian counter, dynamic truncation, low digits.
-- A TOTP code is this with the time step as the counter (RFC 6238). NULL for values no
-- code exists for (negative, or past the HOTP counter cap of 2^48; steps stay far below).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.otp_code(
    p_secret bytea, p_alg text, p_digits int, p_counter bigint)
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
-- PL/pgSQL rather than SQL: ten times faster per code (a SQL function with a FROM is not
-- inlined). No SET search_path either (that costs more than the HMAC): every name here is
-- qualified or pg_catalog's, and only the owner's functions call it.
DECLARE
    m bytea;
    o int;
BEGIN
    IF p_counter < 0 OR p_counter > 281474976710656 OR p_digits < 6 OR p_digits > 8 THEN
        RETURN NULL;
    END IF;
    m := pam_mfa_fleet.hmac_(pg_catalog.int8send(p_counter), p_secret, pg_catalog.lower(p_alg));
    o := pg_catalog.get_byte(m, pg_catalog.length(m) - 1) & 15;
    -- (Parenthesised throughout: PostgreSQL gives &, | and << one precedence.)
    RETURN pg_catalog.lpad(
        ((((pg_catalog.get_byte(m, o) & 127)::bigint << 24)
          | (pg_catalog.get_byte(m, o + 1)::bigint << 16)
          | (pg_catalog.get_byte(m, o + 2)::bigint << 8)
          | pg_catalog.get_byte(m, o + 3)::bigint)
         % pg_catalog.power(10, p_digits)::bigint)::text,
        p_digits, '0');
END
$$;

-- The first value in lo..=hi whose code is p_code (NULL: none, or an empty range).
-- A PL/pgSQL loop, not a query over generate_series: a SQL function that is not inlined
-- is planned again at every call, which cost 150 µs of a 3-code search (the HMACs 10 µs).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.otp_find(
    p_secret bytea, p_alg text, p_digits int, p_code text, p_lo bigint, p_hi bigint)
RETURNS bigint LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    s bigint := greatest(p_lo, 0);
BEGIN
    WHILE s <= p_hi LOOP
        IF pam_mfa_fleet.otp_code(p_secret, p_alg, p_digits, s) = p_code THEN
            RETURN s;
        END IF;
        s := s + 1;
    END LOOP;
    RETURN NULL;
END
$$;

-- otp::find_consecutive: the first t in lo..=hi where p_first is the code of t and
-- p_second that of t + 1, failing that the other way round (t is always the earlier
-- code's value); NULL when neither order fits.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.otp_find_consecutive(
    p_secret bytea, p_alg text, p_digits int, p_first text, p_second text,
    p_lo bigint, p_hi bigint)
RETURNS bigint LANGUAGE plpgsql STABLE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    codes text[];
    n int;
BEGIN
    IF p_hi < p_lo THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(pam_mfa_fleet.otp_code(p_secret, p_alg, p_digits, s) ORDER BY s)
    INTO codes FROM generate_series(p_lo, p_hi + 1) s;
    n := p_hi - p_lo + 1;
    FOR i IN 1..n LOOP
        IF codes[i] = p_first AND codes[i + 1] = p_second THEN
            RETURN p_lo + i - 1;
        END IF;
    END LOOP;
    FOR i IN 1..n LOOP
        IF codes[i] = p_second AND codes[i + 1] = p_first THEN
            RETURN p_lo + i - 1;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Raises MF005 for names outside the lengths the library allows (they arrive canonical).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.check_user(p_user text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_user IS NULL OR octet_length(p_user) NOT BETWEEN 1 AND 256 THEN
        RAISE EXCEPTION 'user name must be 1 to 256 bytes' USING ERRCODE = 'MF005';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.check_device_name(p_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_name IS NULL OR char_length(p_name) NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'device name must be 1 to 64 characters' USING ERRCODE = 'MF005';
    END IF;
END
$$;

-- The user's lock if they have one: their auth_state row FOR UPDATE, or a row of NULLs
-- (and nothing made) when there is none.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.locked_row_(p_user text)
RETURNS pam_mfa_fleet.auth_state
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s pam_mfa_fleet.auth_state;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    -- What is read after the lock must be what the previous holder committed: each
    -- statement's own snapshot, as READ COMMITTED gives. (Under REPEATABLE READ or
    -- SERIALIZABLE a waiter would fail with a serialisation error anyway; say why at once.)
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'pam_mfa_fleet functions run in READ COMMITTED transactions only'
            USING ERRCODE = 'MF005';
    END IF;
    SELECT * INTO s FROM pam_mfa_fleet.auth_state WHERE user_name = p_user FOR UPDATE;
    RETURN s;
END
$$;

-- Takes the user's lock: their auth_state row, made if missing, FOR UPDATE. Every function
-- that checks or changes a user's codes or devices calls this first, so they serialise per
-- user across all hosts. The row is usually there (a login resets it rather than deleting
-- it), so it is locked at once, with no insert tried first. (A row deleted by another
-- user's clean-up between the insert and the lock is simply made again.)
CREATE OR REPLACE FUNCTION pam_mfa_fleet.lock_user(p_user text)
RETURNS pam_mfa_fleet.auth_state
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s pam_mfa_fleet.auth_state;
BEGIN
    -- Bounded: a row made here is deleted at once if the caller made the auth_state_unused
    -- trigger immediate (SET CONSTRAINTS, which anyone may), which would loop for ever.
    FOR attempt IN 1..10 LOOP
        s := pam_mfa_fleet.locked_row_(p_user);
        IF s.user_name IS NOT NULL THEN
            RETURN s;
        END IF;
        INSERT INTO pam_mfa_fleet.auth_state (user_name) VALUES (p_user)
        ON CONFLICT (user_name) DO NOTHING;
    END LOOP;
    RAISE EXCEPTION 'cannot take the lock of a user (auth_state row)'
        USING ERRCODE = 'lock_not_available';
END
$$;

-- Deletes up to 1,000 of the oldest audit rows past the policy's audit_retention_days
-- (365 when unset), skipping rows another transaction is deleting. Bounded, so that the
-- login that happens to run it is not held up by a backlog (a retention just shortened,
-- a table imported): the next runs take the rest.
-- (The retention is at least a day, longer than any remembered login, whose end
-- remembered_ended_at reads from these rows.)
CREATE OR REPLACE FUNCTION pam_mfa_fleet.prune_audit_(p_now bigint)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    DELETE FROM pam_mfa_fleet.audit a WHERE a.id IN (
        SELECT o.id FROM pam_mfa_fleet.audit o
        WHERE o.at < p_now - 86400 * (SELECT p.audit_retention_days::bigint
                                      FROM pam_mfa_fleet.policy_at(p_now) p)
        ORDER BY o.at LIMIT 1000
        FOR UPDATE SKIP LOCKED);
END
$$;

-- PL/pgSQL, as every function a login calls, so that its statement is planned once per
-- connection (a SQL function's body is read and planned again at each call).
-- Rows are kept for the policy's audit_retention_days, as in the local store (audit.rs),
-- where every row written deletes the older ones; here every 64th row written does it, in
-- batches (prune_audit_), so that a login pays for it once in 64 and hosts do not queue
-- on the same old rows.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.audit_(
    p_now bigint, p_actor int, p_user text, p_action text, p_device text, p_detail text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO pam_mfa_fleet.audit (at, actor_uid, user_name, action, device, detail, host)
    VALUES (p_now, coalesce(p_actor, -1), p_user, p_action, p_device, p_detail, session_user)
    RETURNING id INTO new_id;
    IF new_id % 64 = 0 THEN
        PERFORM pam_mfa_fleet.prune_audit_(p_now);
    END IF;
END
$$;

-- Drops pending registrations of p_user that were never finished in time.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.purge_expired(p_user text, p_now bigint)
RETURNS void LANGUAGE sql VOLATILE
BEGIN ATOMIC
    DELETE FROM pam_mfa_fleet.devices
    WHERE user_name = p_user AND state = 'pending' AND expires_at <= p_now;
END;

------------------------------------------------------------------------------------------
-- Logic at a given time (owner only; the host functions below call these at the server's now)
------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pam_mfa_fleet.login_state_at(p_user text, p_now bigint)
RETURNS TABLE(code_devices int, keys int, locked_until bigint, no_device text, now bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    -- The user's active devices counted in one pass over their rows.
    RETURN QUERY SELECT
        (count(*) FILTER (WHERE d.kind <> 'fido2'))::int,
        (count(*) FILTER (WHERE d.kind = 'fido2'))::int,
        (SELECT a.locked_until FROM pam_mfa_fleet.auth_state a
         WHERE a.user_name = p_user AND p_now < a.locked_until),
        (SELECT p.no_device FROM pam_mfa_fleet.policy p WHERE p.id = 1),
        p_now
    FROM pam_mfa_fleet.devices d
    WHERE d.user_name = p_user AND d.state = 'active';
END
$$;

-- A success clears the user's failures (`st`, their row, locked by lock_user); a row
-- that holds none is left as it is, which spares most logins a write.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.clear_failures_(st pam_mfa_fleet.auth_state)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF st.failures <> 0 OR st.window_start <> 0 OR st.locked_until IS NOT NULL THEN
        UPDATE pam_mfa_fleet.auth_state a
        SET failures = 0, window_start = 0, locked_until = NULL
        WHERE a.user_name = st.user_name;
    END IF;
END
$$;

-- lockout::charge's result counted with FailureState::after_failure: p_charge failures
-- added to the user's row `st` (already locked by lock_user), the lock-out set when they
-- reach p_max_failures; returns its end, if any. One implementation for a wrong code at a
-- login and for a user's failed token registration (login::count_refusal).
--
-- Generic plans: the clean-up's plan depends on p_now, so the plan cache would make a
-- custom plan for it at every call (a custom plan expects no stale rows and always
-- looks cheaper than the generic one): about 100 µs of planning per wrong code, more
-- than the rest of the function. Its generic plan (with the LIMIT, an index scan on
-- window_start that deletes at most 100 rows) is as good for every p_now; without the
-- LIMIT the generic plan would read the whole table.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.count_failure_(
    p_user text, st pam_mfa_fleet.auth_state, p_charge bigint, p_max_failures bigint,
    p_lockout bigint, p_now bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    window_open boolean;
    n_failures bigint;
    n_window_start bigint;
    n_until bigint;
BEGIN
    window_open := st.failures > 0 AND p_now - st.window_start < p_lockout;
    IF window_open THEN
        n_failures := st.failures + p_charge;
        n_window_start := st.window_start;
    ELSE
        n_failures := p_charge;
        n_window_start := p_now;
    END IF;
    n_until := CASE WHEN n_failures >= p_max_failures
                    THEN p_now + p_lockout * n_failures / p_max_failures END;
    -- auth_state::save, with its clean-up of rows that say nothing any more (a day without
    -- a failure, not locked): this user's row is reset rather than deleted (it is the
    -- lock), other users' stale failure rows are deleted unless someone holds them. Reset
    -- rows (window_start 0) stay: they are their users' locks, which a login takes at
    -- once when the row is there (locked_row_), and deleting them all at every wrong code
    -- would be a write per idle user. At most 100 stale rows go per call, oldest first,
    -- so a backlog (a day after an attack on many names) costs no single login much.
    IF n_window_start < p_now - 86400 AND (n_until IS NULL OR n_until < p_now) THEN
        UPDATE pam_mfa_fleet.auth_state a
        SET failures = 0, window_start = 0, locked_until = NULL WHERE a.user_name = p_user;
    ELSE
        UPDATE pam_mfa_fleet.auth_state a
        SET failures = n_failures, window_start = n_window_start, locked_until = n_until
        WHERE a.user_name = p_user;
    END IF;
    DELETE FROM pam_mfa_fleet.auth_state a WHERE a.user_name IN (
        SELECT o.user_name FROM pam_mfa_fleet.auth_state o
        WHERE o.window_start > 0 AND o.window_start < p_now - 86400
          AND (o.locked_until IS NULL OR o.locked_until < p_now)
          AND o.user_name <> p_user
        ORDER BY o.window_start LIMIT 100
        FOR UPDATE SKIP LOCKED);
    RETURN n_until;
END
$$;

-- login.rs `verify`, with the lock-out rules of lockout.rs and the settings rule of
-- settings.rs: each setting the module's arguments give, else the policy's, else the
-- default (window 1, HOTP look-ahead 10, lock-out after 5 failures for 300 s).
-- (Schema version 2 had no lock-out arguments: that signature is replaced.)
DROP FUNCTION IF EXISTS pam_mfa_fleet.check_code(text, int, text, int, int);
DROP FUNCTION IF EXISTS pam_mfa_fleet.check_code_at(text, int, text, int, int, bigint);
CREATE OR REPLACE FUNCTION pam_mfa_fleet.check_code_at(
    p_user text, p_actor int, p_code text, p_window int, p_hotp_window int,
    p_max_failures int, p_lockout_secs bigint, p_now bigint)
RETURNS TABLE(outcome text, device text, locked_until bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    pol_window int;
    pol_max_failures int;
    pol_lockout bigint;
    st pam_mfa_fleet.auth_state;
    devs pam_mfa_fleet.devices[];
    d pam_mfa_fleet.devices;
    win bigint;
    hwin bigint;
    max_failures bigint;
    lockout bigint;
    centre bigint;
    lo bigint;
    hi bigint;
    fresh_from bigint;
    hit bigint;
    compared bigint := 0;
    replayed text;
    refusal text;
    n_until bigint;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    IF p_now IS NULL OR (p_window IS NOT NULL AND p_window < 0)
       OR (p_hotp_window IS NOT NULL AND p_hotp_window < 0)
       OR (p_max_failures IS NOT NULL AND p_max_failures < 1)
       OR (p_lockout_secs IS NOT NULL AND p_lockout_secs < 1) THEN
        RAISE EXCEPTION 'windows must not be negative, lock-out numbers must be positive'
            USING ERRCODE = 'MF005';
    END IF;
    -- The user's lock: their row, there since their first login, locked at once.
    st := pam_mfa_fleet.locked_row_(p_user);
    IF st.user_name IS NULL THEN
        -- Nothing to guess, nothing counted, nothing stored: a user without a code device
        -- looks like a made-up name. (Looked at again under the lock below.)
        IF NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.devices x
                       WHERE x.user_name = p_user AND x.state = 'active'
                         AND x.kind <> 'fido2') THEN
            RETURN QUERY SELECT 'no_devices'::text, NULL::text, NULL::bigint;
            RETURN;
        END IF;
        st := pam_mfa_fleet.lock_user(p_user);
    END IF;
    -- The policy and the user's code devices, oldest first, in one statement (each
    -- statement a login runs costs tens of microseconds before it reads a row).
    SELECT p."window", p.max_failures, p.lockout_seconds,
           (SELECT pg_catalog.array_agg(x ORDER BY x.id) FROM pam_mfa_fleet.devices x
            WHERE x.user_name = p_user AND x.state = 'active' AND x.kind <> 'fido2')
    INTO STRICT pol_window, pol_max_failures, pol_lockout, devs
    FROM pam_mfa_fleet.policy p WHERE p.id = 1;
    IF devs IS NULL THEN
        RETURN QUERY SELECT 'no_devices'::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF st.locked_until IS NOT NULL AND p_now < st.locked_until THEN
        PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'login-refused', NULL, 'locked');
        RETURN QUERY SELECT 'locked'::text, NULL::text, st.locked_until;
        RETURN;
    END IF;
    win := least(coalesce(p_window, pol_window, 1), 10);
    hwin := least(coalesce(p_hotp_window, 10), 100);
    max_failures := least(greatest(coalesce(p_max_failures, pol_max_failures, 5), 1), 1000);
    lockout := least(greatest(coalesce(p_lockout_secs, pol_lockout, 300), 1), 604800);

    IF p_code IS NULL OR p_code !~ '^[0-9]{6,8}$' THEN
        refusal := 'malformed';
    ELSE
        -- Time-based devices (apps and tokens), oldest first.
        FOREACH d IN ARRAY devs LOOP
            CONTINUE WHEN d.period IS NULL;
            centre := pg_catalog.floor(p_now::numeric / d.period::numeric)::bigint + d.drift;
            lo := centre - win;
            hi := centre + win;
            -- The replay check: only steps after the last accepted one are searched.
            fresh_from := CASE WHEN d.last_step IS NULL THEN lo
                               ELSE greatest(lo, d.last_step + 1) END;
            hit := pam_mfa_fleet.otp_find(d.secret, d.algorithm, d.digits, p_code,
                                          fresh_from, hi);
            IF hit IS NOT NULL THEN
                UPDATE pam_mfa_fleet.devices SET last_step = hit, last_used_at = p_now
                WHERE id = d.id;
                PERFORM pam_mfa_fleet.clear_failures_(st);
                PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'login-accepted', d.name,
                                             'accepted');
                RETURN QUERY SELECT 'accepted'::text, d.name, NULL::bigint;
                RETURN;
            END IF;
            compared := compared + greatest(hi - fresh_from + 1, 0);
            IF fresh_from > lo AND replayed IS NULL
               AND pam_mfa_fleet.otp_find(d.secret, d.algorithm, d.digits, p_code, lo,
                                          least(fresh_from - 1, hi)) IS NOT NULL THEN
                replayed := d.name;
            END IF;
        END LOOP;
        -- Event-based tokens: the next value expected and hwin presses beyond it.
        FOREACH d IN ARRAY devs LOOP
            CONTINUE WHEN d.kind <> 'token' OR d.counter IS NULL;
            compared := compared + hwin + 1;
            hit := pam_mfa_fleet.otp_find(d.secret, d.algorithm, d.digits, p_code,
                                          d.counter, d.counter + hwin);
            IF hit IS NOT NULL THEN
                UPDATE pam_mfa_fleet.devices
                SET counter = greatest(counter, hit + 1), last_used_at = p_now
                WHERE id = d.id;
                PERFORM pam_mfa_fleet.clear_failures_(st);
                PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'login-accepted', d.name,
                                             'accepted');
                RETURN QUERY SELECT 'accepted'::text, d.name, NULL::bigint;
                RETURN;
            END IF;
            IF d.counter > 0 AND replayed IS NULL
               AND pam_mfa_fleet.otp_find(d.secret, d.algorithm, d.digits, p_code,
                                          greatest(d.counter - 1 - hwin, 0),
                                          d.counter - 1) IS NOT NULL THEN
                replayed := d.name;
            END IF;
        END LOOP;
        refusal := CASE WHEN replayed IS NULL THEN 'wrong' ELSE 'replayed' END;
    END IF;

    n_until := pam_mfa_fleet.count_failure_(p_user, st, greatest((compared + 2) / 3, 1),
                                            max_failures, lockout, p_now);
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'login-refused',
                                 replayed, refusal);
    RETURN QUERY SELECT refusal, replayed, n_until;
END
$$;

-- enrollment::begin_totp_held: a pending device with a new random secret, returned once;
-- held for a login when p_hold (the SHA-256 of that login's value, login_hold.rs) is given.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.begin_totp_hold_at(
    p_user text, p_actor int, p_name text, p_algorithm text, p_digits int, p_period int,
    p_hold bytea, p_now bigint)
RETURNS bytea
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    alg text := upper(p_algorithm);
    max_devices int;
    pending int;
    existing text;
    new_secret bytea;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    PERFORM pam_mfa_fleet.check_device_name(p_name);
    IF alg IS NULL OR alg NOT IN ('SHA1', 'SHA256', 'SHA512') THEN
        RAISE EXCEPTION 'unknown algorithm' USING ERRCODE = 'MF005';
    END IF;
    IF p_digits IS NULL OR p_digits NOT BETWEEN 6 AND 8 THEN
        RAISE EXCEPTION '% digits (6 to 8 are supported)', p_digits USING ERRCODE = 'MF005';
    END IF;
    IF p_period IS NULL OR p_period NOT BETWEEN 1 AND 300 THEN
        RAISE EXCEPTION 'a period of % s (1 to 300 are supported)', p_period
            USING ERRCODE = 'MF005';
    END IF;
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'no time' USING ERRCODE = 'MF005';
    END IF;
    IF p_hold IS NOT NULL AND length(p_hold) <> 32 THEN
        RAISE EXCEPTION 'not a login''s hold' USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    PERFORM pam_mfa_fleet.purge_expired(p_user, p_now);
    -- devices::check_room, then limits::check_pending (held registrations counted apart
    -- from the others) and limits::check_begun, then devices::claim_name, in the
    -- library's order.
    SELECT least(p.max_devices, 8) INTO STRICT max_devices FROM pam_mfa_fleet.policy p
    WHERE p.id = 1;
    IF (SELECT count(*) FROM pam_mfa_fleet.devices
        WHERE user_name = p_user AND state = 'active') >= max_devices THEN
        RAISE EXCEPTION 'user has the most devices allowed (%)', max_devices
            USING ERRCODE = 'MF002';
    END IF;
    SELECT count(*) INTO pending FROM pam_mfa_fleet.devices
    WHERE user_name = p_user AND state = 'pending' AND expires_at > p_now AND name <> p_name
      AND (login_hold IS NULL) = (p_hold IS NULL);
    IF pending >= 3 THEN
        RAISE EXCEPTION 'too many unfinished registrations (3)' USING ERRCODE = 'MF003';
    END IF;
    IF p_actor IS DISTINCT FROM 0 THEN
        PERFORM pam_mfa_fleet.check_begun_(p_user, p_now);
    END IF;
    SELECT state INTO existing FROM pam_mfa_fleet.devices
    WHERE user_name = p_user AND name = p_name;
    IF existing = 'pending' THEN
        DELETE FROM pam_mfa_fleet.devices WHERE user_name = p_user AND name = p_name;
    ELSIF existing IS NOT NULL THEN
        RAISE EXCEPTION 'device name taken' USING ERRCODE = 'MF001';
    END IF;
    -- As long as the hash's output (RFC 6238's reference seeds); 160 bits for SHA-1, as
    -- the library's Secret::generate.
    new_secret := pam_mfa_fleet.random_bytes_(CASE alg WHEN 'SHA1' THEN 20
                                                   WHEN 'SHA256' THEN 32 ELSE 64 END);
    INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, secret, algorithm,
                                       digits, period, created_at, expires_at, login_hold)
    VALUES (p_user, p_name, 'totp', 'pending', new_secret, alg, p_digits, p_period, p_now,
            p_now + 600, p_hold);
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'begin', p_name, 'totp');
    RETURN new_secret;
END
$$;

-- enrollment::begin_totp: the same, held for no login.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.begin_totp_at(
    p_user text, p_actor int, p_name text, p_algorithm text, p_digits int, p_period int,
    p_now bigint)
RETURNS bytea
LANGUAGE sql VOLATILE SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.begin_totp_hold_at(p_user, p_actor, p_name, p_algorithm, p_digits,
                                        p_period, NULL, p_now);

-- enrollment::finish_totp: two consecutive codes near now (10 steps back, 1 ahead)
-- activate the pending device and burn both codes.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.finish_totp_at(
    p_user text, p_actor int, p_name text, p_code1 text, p_code2 text, p_now bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    d pam_mfa_fleet.devices;
    refusal text;
    t bigint;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    PERFORM pam_mfa_fleet.check_device_name(p_name);
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'no time' USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    SELECT * INTO d FROM pam_mfa_fleet.devices x
    WHERE x.user_name = p_user AND x.name = p_name AND x.period IS NOT NULL
      AND (x.state = 'active' OR x.expires_at > p_now);
    IF NOT FOUND THEN
        RETURN 'no_such_device';
    END IF;
    IF d.state = 'active' THEN
        RETURN 'already_active';
    END IF;
    -- A registration held for a login is that login's alone (login_hold.rs).
    IF d.login_hold IS NOT NULL THEN
        RETURN 'no_such_device';
    END IF;
    SELECT pp.refusal, pp.t INTO refusal, t
    FROM pam_mfa_fleet.pending_pair_(d.user_name, d.secret, d.algorithm, d.digits, d.period,
                                     p_code1, p_code2, p_now) pp;
    IF refusal IS NOT NULL THEN
        RETURN refusal;
    END IF;
    UPDATE pam_mfa_fleet.devices SET state = 'active', last_step = t + 1, expires_at = NULL
    WHERE id = d.id;
    -- The local store's row for the same event (audit::attach's audit_device_activate).
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'activate', p_name, d.kind);
    RETURN 'activated';
END
$$;

-- enrollment::totp::pending_pair for finish_totp and hold_totp: the step of the earlier
-- of two consecutive codes of the pending device d near now (10 steps back, 1 ahead), with
-- room for one more active device; or why not, as enrollment::confirm_totp says it: a pair
-- of another time within the resync range is the phone's clock being off ('clock_skew
-- SECONDS'); otherwise which code gave the person away (otp::find_consecutive's
-- PairError: 'first_wrong', 'second_wrong', 'not_consecutive'). No room raises MF002.
DROP FUNCTION IF EXISTS pam_mfa_fleet.pair_refusal_(bytea, text, int, int, text, text, bigint);
CREATE OR REPLACE FUNCTION pam_mfa_fleet.pending_pair_(
    p_user text, p_secret bytea, p_algorithm text, p_digits int, p_period int,
    p_code1 text, p_code2 text, p_now bigint, OUT refusal text, OUT t bigint)
LANGUAGE plpgsql STABLE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    now_step bigint := floor(p_now::numeric / p_period)::bigint;
    other bigint;
BEGIN
    -- (mfad refuses malformed codes in the library's words before asking.)
    IF p_code1 IS NULL OR p_code2 IS NULL
       OR p_code1 !~ '^[0-9]{6,8}$' OR p_code2 !~ '^[0-9]{6,8}$' THEN
        refusal := 'first_wrong';
        RETURN;
    END IF;
    t := pam_mfa_fleet.otp_find_consecutive(p_secret, p_algorithm, p_digits, p_code1, p_code2,
                                            now_step - 10, now_step + 1);
    IF t IS NULL THEN
        other := pam_mfa_fleet.otp_find_consecutive(p_secret, p_algorithm, p_digits, p_code1,
                                                    p_code2, now_step - 1500, now_step + 1500);
        IF other IS NOT NULL THEN
            refusal := 'clock_skew ' || ((other - now_step) * p_period);
        ELSIF pam_mfa_fleet.otp_find(p_secret, p_algorithm, p_digits, p_code1,
                                     now_step - 10, now_step + 1) IS NULL THEN
            refusal := 'first_wrong';
        ELSIF pam_mfa_fleet.otp_find(p_secret, p_algorithm, p_digits, p_code2,
                                     now_step - 10, now_step + 2) IS NULL THEN
            refusal := 'second_wrong';
        ELSE
            refusal := 'not_consecutive';
        END IF;
        RETURN;
    END IF;
    IF (SELECT count(*) FROM pam_mfa_fleet.devices
        WHERE user_name = p_user AND state = 'active')
       >= (SELECT least(p.max_devices, 8) FROM pam_mfa_fleet.policy p WHERE p.id = 1) THEN
        RAISE EXCEPTION 'user has the most devices allowed' USING ERRCODE = 'MF002';
    END IF;
END
$$;

-- enrollment::resync: a time-based device's clock searched for within ±1500 steps and its
-- drift stored; an event-based token's counter within the next 1000 values and moved past.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.resync_at(
    p_user text, p_actor int, p_name text, p_code1 text, p_code2 text, p_now bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    d pam_mfa_fleet.devices;
    now_step bigint;
    t bigint;
    outcome text;
    detail text;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    PERFORM pam_mfa_fleet.check_device_name(p_name);
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'no time' USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    -- The refusals of enrollment::resync, in its order.
    SELECT * INTO d FROM pam_mfa_fleet.devices x
    WHERE x.user_name = p_user AND x.name = p_name
      AND (x.state = 'active' OR x.expires_at > p_now);
    IF NOT FOUND THEN
        RETURN 'no_such_device';
    ELSIF d.kind = 'fido2' THEN
        RETURN 'not_totp';
    ELSIF d.state <> 'active' THEN
        RETURN 'not_active';
    END IF;
    -- (mfad refuses malformed codes in the library's words before asking.)
    IF p_code1 IS NULL OR p_code2 IS NULL
       OR p_code1 !~ '^[0-9]{6,8}$' OR p_code2 !~ '^[0-9]{6,8}$' THEN
        RETURN CASE WHEN d.counter IS NULL THEN 'not_found' ELSE 'counter_not_found' END;
    END IF;
    IF d.counter IS NOT NULL THEN
        t := pam_mfa_fleet.otp_find_consecutive(d.secret, d.algorithm, d.digits, p_code1,
                                                p_code2, d.counter, d.counter + 1000);
        IF t IS NULL THEN
            -- token::find_hotp_pair: both codes ahead but not in a row, or not found.
            IF pam_mfa_fleet.otp_find(d.secret, d.algorithm, d.digits, p_code1,
                                      d.counter, d.counter + 1000) IS NOT NULL
               AND pam_mfa_fleet.otp_find(d.secret, d.algorithm, d.digits, p_code2,
                                          d.counter, d.counter + 1001) IS NOT NULL THEN
                RETURN 'not_consecutive';
            END IF;
            RETURN 'counter_not_found';
        END IF;
        UPDATE pam_mfa_fleet.devices SET counter = greatest(counter, t + 2) WHERE id = d.id;
        outcome := 'resynced counter ' || (t - d.counter);
        detail := 'counter ' || greatest(d.counter, t + 2);
    ELSE
        now_step := floor(p_now::numeric / d.period)::bigint;
        t := pam_mfa_fleet.otp_find_consecutive(d.secret, d.algorithm, d.digits, p_code1,
                                                p_code2, now_step - 1500, now_step + 1500);
        IF t IS NULL THEN
            RETURN 'not_found';
        END IF;
        -- Resync codes are codes like any other: never accepted twice.
        IF d.last_step IS NOT NULL AND t <= d.last_step THEN
            RETURN 'already_used';
        END IF;
        UPDATE pam_mfa_fleet.devices
        SET drift = t + 1 - now_step, last_step = greatest(coalesce(last_step, t + 1), t + 1)
        WHERE id = d.id;
        outcome := 'resynced clock ' || ((t + 1 - now_step) * d.period);
        detail := 'drift ' || ((t + 1 - now_step) * d.period) || ' s';
    END IF;
    -- The local store's detail for the same event (audit_device_resync and
    -- audit_device_counter_resync).
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'resync', p_name, detail);
    -- What changed, as the local store reports it: the clock's offset in seconds, or how
    -- many codes a token had made unused.
    RETURN outcome;
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.list_devices_at(p_user text, p_now bigint)
RETURNS TABLE(name text, kind text, state text, created bigint, last_used bigint, expires bigint)
LANGUAGE plpgsql STABLE SET search_path = pam_mfa_fleet, pg_temp AS $$
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    RETURN QUERY
    SELECT d.name, d.kind, d.state, d.created_at, d.last_used_at, d.expires_at
    FROM pam_mfa_fleet.devices d
    WHERE d.user_name = p_user AND (d.state = 'active' OR d.expires_at > p_now)
    ORDER BY d.id;  -- registration order, as the local store lists them
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.remove_device_at(
    p_user text, p_actor int, p_name text, p_now bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    n int;
    gone record;
BEGIN
    PERFORM pam_mfa_fleet.check_device_name(p_name);
    PERFORM pam_mfa_fleet.lock_user(p_user);
    PERFORM pam_mfa_fleet.purge_expired(p_user, p_now);
    DELETE FROM pam_mfa_fleet.devices WHERE user_name = p_user AND name = p_name
    RETURNING token_id, last_step, counter, kind, state INTO gone;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN false;
    END IF;
    -- A hardware token goes back to the inventory with its high-water mark (the local
    -- store's devices_token_returned): its used codes stay used under its next owner.
    IF gone.token_id IS NOT NULL THEN
        UPDATE pam_mfa_fleet.tokens t SET
            last_step = CASE WHEN gone.last_step IS NULL OR t.type <> 'totp' THEN t.last_step
                             ELSE greatest(coalesce(t.last_step, gone.last_step),
                                           gone.last_step) END,
            counter = CASE WHEN gone.counter IS NULL OR t.type <> 'hotp' THEN t.counter
                           ELSE greatest(t.counter, gone.counter) END
        WHERE t.id = gone.token_id;
    END IF;
    -- As the local store's audit_device_delete writes it: 'discard' for a registration
    -- never finished, the kind and a token's serial number as the detail.
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user,
                                 CASE gone.state WHEN 'active' THEN 'remove' ELSE 'discard' END,
                                 p_name,
                                 gone.kind || coalesce(' ' || (SELECT t.serial
                                                               FROM pam_mfa_fleet.tokens t
                                                               WHERE t.id = gone.token_id), ''));
    -- The user's last device gone, a row that counts nothing goes too (the wrong-code
    -- clean-up keeps reset rows, the users' locks): a removed account's row does not stay
    -- for good, and the next lock_user makes it again if it is needed. Failures and a
    -- lock-out stay.
    IF NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.devices d WHERE d.user_name = p_user) THEN
        DELETE FROM pam_mfa_fleet.auth_state a
        WHERE a.user_name = p_user AND a.failures = 0 AND a.window_start = 0
          AND a.locked_until IS NULL;
    END IF;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.rename_device_at(
    p_user text, p_actor int, p_old text, p_new text, p_now bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    n int;
BEGIN
    PERFORM pam_mfa_fleet.check_device_name(p_old);
    PERFORM pam_mfa_fleet.check_device_name(p_new);
    PERFORM pam_mfa_fleet.lock_user(p_user);
    PERFORM pam_mfa_fleet.purge_expired(p_user, p_now);
    IF p_old <> p_new AND EXISTS (SELECT 1 FROM pam_mfa_fleet.devices
                                  WHERE user_name = p_user AND name = p_new) THEN
        RETURN 'name_taken';
    END IF;
    UPDATE pam_mfa_fleet.devices SET name = p_new WHERE user_name = p_user AND name = p_old;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 'no_such_device';
    END IF;
    -- As the local store's audit_device_rename: the new name, and the old one; a name
    -- kept is no change.
    IF p_old <> p_new THEN
        PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'rename', p_new, 'was ' || p_old);
    END IF;
    RETURN 'renamed';
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.unlock_at(p_user text, p_actor int, p_now bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    st pam_mfa_fleet.auth_state;
BEGIN
    st := pam_mfa_fleet.lock_user(p_user);
    PERFORM pam_mfa_fleet.clear_failures_(st);
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'unlock', NULL, NULL);
    -- Whether there was a lock-out or a failure count to clear.
    RETURN st.failures > 0 OR st.locked_until IS NOT NULL;
END
$$;

-- recovery::consume with login::verify_recovery: a recovery or bypass code (canonical, as
-- recovery::normalize gives it) compared with every unused, unexpired code of the user;
-- the first match is used up and audited. No row: refused. A lock-out does not stop it
-- and a wrong one counts no failure, nor does a right one clear the failures of short
-- codes (lockout.rs: 60 random bits cannot be guessed; it is the way back in for someone
-- locked out).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.use_recovery_code_at(
    p_user text, p_actor int, p_code text, p_now bigint)
RETURNS TABLE(kind text, remaining int)
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    r record;
    typed bytea;
    hit_id bigint;
    hit_kind text;
    hit_left int;
    left_now int;
    rem int;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'no time' USING ERRCODE = 'MF005';
    END IF;
    -- Only what recovery::normalize can give (12 characters of its alphabet, lower case)
    -- can be a code; anything else is refused without being looked at.
    IF p_code IS NULL OR p_code !~ '^[a-km-np-z2-9]{12}$' THEN
        RETURN;
    END IF;
    -- Nothing to compare with: refused without taking the lock or storing anything (a
    -- made-up name gets no auth_state row). Looked at again under the lock below.
    IF NOT EXISTS (SELECT 1 FROM pam_mfa_fleet.recovery_codes x WHERE x.user_name = p_user) THEN
        RETURN;
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    -- recovery_codes::purge_spent.
    DELETE FROM pam_mfa_fleet.recovery_codes x
    WHERE x.user_name = p_user
      AND (x.uses_left <= 0 OR (x.expires_at IS NOT NULL AND x.expires_at <= p_now));
    typed := pg_catalog.convert_to(p_code, 'UTF8');
    -- Every row is hashed, match or not, as recovery.rs does. The digests are compared
    -- with `=`, which is not constant-time (SQL has nothing that is): what it could leak
    -- is how much of a stored digest matches the digest of the typed code, and the
    -- digest is of a salt the caller does not know (hosts cannot read this table), so
    -- it says nothing about which code would match.
    FOR r IN SELECT x.id, x.kind, x.salt, x.hash, x.uses_left
             FROM pam_mfa_fleet.recovery_codes x
             WHERE x.user_name = p_user ORDER BY x.id LOOP
        IF pg_catalog.sha256(r.salt || typed) = r.hash AND hit_id IS NULL THEN
            hit_id := r.id;
            hit_kind := r.kind;
            hit_left := r.uses_left;
        END IF;
    END LOOP;
    IF hit_id IS NULL THEN
        RETURN;
    END IF;
    -- recovery_codes::set_uses_left: a row with no use left is deleted, not kept.
    left_now := greatest(hit_left - 1, 0);
    IF left_now = 0 THEN
        DELETE FROM pam_mfa_fleet.recovery_codes WHERE id = hit_id;
    ELSE
        UPDATE pam_mfa_fleet.recovery_codes SET uses_left = left_now WHERE id = hit_id;
    END IF;
    IF hit_kind = 'recovery' THEN
        SELECT count(*)::int INTO rem FROM pam_mfa_fleet.recovery_codes x
        WHERE x.user_name = p_user AND x.kind = 'recovery' AND x.uses_left > 0;
        PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'recovery-login', NULL,
                                     rem || ' recovery codes left');
    ELSE
        rem := left_now;
        PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'bypass-login', NULL,
                                     rem || ' uses of this bypass code left');
    END IF;
    RETURN QUERY SELECT hit_kind, rem;
END
$$;

-- selfservice::commit_recovery_codes: the user's recovery set replaced (bypass codes
-- stay) by the salted hashes of a set mfad made and showed.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.set_recovery_codes_at(
    p_user text, p_actor int, p_salts bytea[], p_hashes bytea[], p_now bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    n int := coalesce(pg_catalog.cardinality(p_salts), 0);
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'no time' USING ERRCODE = 'MF005';
    END IF;
    IF n NOT BETWEEN 1 AND 100 OR pg_catalog.array_ndims(p_salts) <> 1
       OR pg_catalog.array_ndims(p_hashes) <> 1
       OR coalesce(pg_catalog.cardinality(p_hashes), 0) <> n THEN
        RAISE EXCEPTION 'a recovery set is 1 to 100 salts and as many hashes'
            USING ERRCODE = 'MF005';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_salts, p_hashes) AS u(salt, hash)
               WHERE u.salt IS NULL OR u.hash IS NULL OR pg_catalog.length(u.salt) <> 16
                  OR pg_catalog.length(u.hash) <> 32) THEN
        RAISE EXCEPTION 'a salt is 16 bytes and a hash 32' USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    DELETE FROM pam_mfa_fleet.recovery_codes WHERE user_name = p_user AND kind = 'recovery';
    INSERT INTO pam_mfa_fleet.recovery_codes (user_name, kind, salt, hash, uses_left,
                                              expires_at, created_at, created_by)
    SELECT p_user, 'recovery', u.salt, u.hash, 1, NULL, p_now, coalesce(p_actor, -1)
    FROM unnest(p_salts, p_hashes) AS u(salt, hash);
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'recovery-generate', NULL,
                                 n || ' codes; earlier codes no longer work');
END
$$;

-- admin::issue_bypass: a bypass code (made and shown once by mfad) good for p_uses logins
-- until p_expires_at, and the user's lock-out cleared, as recovery::issue_bypass does.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.add_bypass_code_at(
    p_user text, p_actor int, p_salt bytea, p_hash bytea, p_uses int, p_expires_at bigint,
    p_now bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    st pam_mfa_fleet.auth_state;
    life bigint;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'no time' USING ERRCODE = 'MF005';
    END IF;
    IF p_salt IS NULL OR p_hash IS NULL OR pg_catalog.length(p_salt) <> 16
       OR pg_catalog.length(p_hash) <> 32 THEN
        RAISE EXCEPTION 'a salt is 16 bytes and a hash 32' USING ERRCODE = 'MF005';
    END IF;
    IF p_uses IS NULL OR p_uses NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'a bypass code has 1 to 100 uses' USING ERRCODE = 'MF005';
    END IF;
    -- At most the library's 7 days (admin::MAX_BYPASS_SECS), and a minute more for a
    -- host of the previous version, which reckoned the expiry from an earlier clock
    -- reading of its own (this version's hosts reckon it in the call, from p_now's clock).
    IF p_expires_at IS NULL OR p_expires_at <= p_now
       OR p_expires_at - p_now > 604800 + 60 THEN
        RAISE EXCEPTION 'a bypass code must expire in the future, within 7 days'
            USING ERRCODE = 'MF005';
    END IF;
    life := p_expires_at - p_now;
    st := pam_mfa_fleet.lock_user(p_user);
    INSERT INTO pam_mfa_fleet.recovery_codes (user_name, kind, salt, hash, uses_left,
                                              expires_at, created_at, created_by)
    VALUES (p_user, 'bypass', p_salt, p_hash, p_uses, p_expires_at, p_now,
            coalesce(p_actor, -1));
    PERFORM pam_mfa_fleet.clear_failures_(st);
    -- The lifetime in its largest whole unit, as the library's admin::duration_text
    -- writes it for the local store's row. A host reckons p_expires_at from this server's
    -- clock a moment before p_now (in the same statement; the previous version, in its
    -- previous call), so a lifetime up to 5 s short of a whole minute, hour or day is
    -- that one.
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'bypass', NULL,
                                 p_uses || ' use(s), expires in ' || CASE
                                     WHEN (life + 5) % 86400 <= 5 THEN (life + 5) / 86400 || 'd'
                                     WHEN (life + 5) % 3600 <= 5 THEN (life + 5) / 3600 || 'h'
                                     WHEN life >= 55 AND (life + 5) % 60 <= 5
                                         THEN (life + 5) / 60 || 'm'
                                     ELSE life || 's' END);
END
$$;

-- recovery_codes::remaining: the unused codes of the user's recovery set.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.recovery_codes_left_at(p_user text, p_now bigint)
RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pam_mfa_fleet, pg_temp AS $$
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    RETURN (SELECT count(*)::int FROM pam_mfa_fleet.recovery_codes x
            WHERE x.user_name = p_user AND x.kind = 'recovery' AND x.uses_left > 0);
END
$$;

-- The policy in effect: the built-in default where the stored number is NULL (5 failures,
-- 300 s, a window of 1, audit rows kept 365 days), so the caller always gets numbers. A
-- caller's own override still wins over these, as in settings.rs.
-- (Before schema version 6 it had no audit_retention_days: a result type is not replaced,
-- so the old function goes first. Only the owner's code and policy() call it.)
DO $policy_at$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_proc p
               WHERE p.oid = to_regprocedure('pam_mfa_fleet.policy_at(bigint)')
                 AND NOT 'audit_retention_days' = ANY (p.proargnames)) THEN
        DROP FUNCTION pam_mfa_fleet.policy_at(bigint);
    END IF;
END
$policy_at$;
CREATE OR REPLACE FUNCTION pam_mfa_fleet.policy_at(p_now bigint)
RETURNS TABLE(self_service text, max_devices int, no_device text, max_failures int,
              lockout_seconds int, "window" int, audit_retention_days int)
LANGUAGE sql STABLE
AS $$
SELECT p.self_service, least(p.max_devices, 8), p.no_device, coalesce(p.max_failures, 5),
       coalesce(p.lockout_seconds, 300), coalesce(p."window", 1),
       coalesce(p.audit_retention_days, 365)
FROM pam_mfa_fleet.policy p WHERE p.id = 1
$$;

-- Owner only: policy::set's keys and values ('default' for the built-in default).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.set_policy(p_key text, p_value text)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    v int;
BEGIN
    IF p_key IN ('max_failures', 'lockout_seconds', 'window', 'max_devices',
                 'audit_retention_days') THEN
        IF p_value = 'default' THEN
            v := NULL;
        ELSIF p_value ~ '^[0-9]{1,7}$' THEN
            v := p_value::int;
        ELSE
            RAISE EXCEPTION 'policy %: not a number', p_key USING ERRCODE = 'MF005';
        END IF;
    END IF;
    CASE p_key
        WHEN 'self_service' THEN
            UPDATE pam_mfa_fleet.policy SET self_service = coalesce(nullif(p_value, 'default'), 'allow');
        WHEN 'no_device' THEN
            UPDATE pam_mfa_fleet.policy SET no_device = coalesce(nullif(p_value, 'default'), 'deny');
        WHEN 'max_devices' THEN
            UPDATE pam_mfa_fleet.policy SET max_devices = coalesce(v, 8);
        WHEN 'max_failures' THEN
            UPDATE pam_mfa_fleet.policy SET max_failures = v;
        WHEN 'lockout_seconds' THEN
            UPDATE pam_mfa_fleet.policy SET lockout_seconds = v;
        WHEN 'window' THEN
            UPDATE pam_mfa_fleet.policy SET "window" = v;
        WHEN 'audit_retention_days' THEN
            UPDATE pam_mfa_fleet.policy SET audit_retention_days = v;
        ELSE
            RAISE EXCEPTION 'unknown policy key %', p_key USING ERRCODE = 'MF005';
    END CASE;
    -- admin::set_policy's row ('mfa admin fleet policy' is run by root), with the
    -- administrator's database role as the host.
    PERFORM pam_mfa_fleet.audit_(pam_mfa_fleet.now_(), 0, '*', 'policy', NULL,
                                 p_key || '=' || p_value);
EXCEPTION
    WHEN check_violation THEN
        RAISE EXCEPTION 'policy %: % is out of range', p_key, p_value USING ERRCODE = 'MF005';
END
$$;

------------------------------------------------------------------------------------------
-- Host functions (the contract): SECURITY DEFINER wrappers at the server's clock
------------------------------------------------------------------------------------------

-- The two a login calls are PL/pgSQL, so that their query is planned once per connection
-- rather than at every call as a SQL function's is.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.login_state(p_user text)
RETURNS TABLE(code_devices int, keys int, locked_until bigint, no_device text, now bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM pam_mfa_fleet.login_state_at(p_user, pam_mfa_fleet.now_());
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.check_code(
    p_user text, p_actor int, p_code text, p_window int, p_hotp_window int,
    p_max_failures int, p_lockout_secs bigint)
RETURNS TABLE(outcome text, device text, locked_until bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM pam_mfa_fleet.check_code_at(
        p_user, p_actor, p_code, p_window, p_hotp_window, p_max_failures, p_lockout_secs,
        pam_mfa_fleet.now_());
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.begin_totp(
    p_user text, p_actor int, p_name text, p_algorithm text, p_digits int, p_period int)
RETURNS bytea
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.begin_totp_at(p_user, p_actor, p_name, p_algorithm, p_digits, p_period,
                                   pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.finish_totp(
    p_user text, p_actor int, p_name text, p_code1 text, p_code2 text)
RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.finish_totp_at(p_user, p_actor, p_name, p_code1, p_code2,
                                    pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.resync(
    p_user text, p_actor int, p_name text, p_code1 text, p_code2 text)
RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.resync_at(p_user, p_actor, p_name, p_code1, p_code2,
                               pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.list_devices(p_user text)
RETURNS TABLE(name text, kind text, state text, created bigint, last_used bigint, expires bigint)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.list_devices_at(p_user, pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.remove_device(p_user text, p_actor int, p_name text)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.remove_device_at(p_user, p_actor, p_name, pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.rename_device(
    p_user text, p_actor int, p_old text, p_new text)
RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.rename_device_at(p_user, p_actor, p_old, p_new, pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.policy()
RETURNS TABLE(self_service text, max_devices int, no_device text, max_failures int,
              lockout_seconds int, "window" int)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT p.self_service, p.max_devices, p.no_device, p.max_failures, p.lockout_seconds,
       p."window"
FROM pam_mfa_fleet.policy_at(pam_mfa_fleet.now_()) p
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.unlock(p_user text, p_actor int)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.unlock_at(p_user, p_actor, pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.use_recovery_code(
    p_user text, p_actor int, p_code text)
RETURNS TABLE(kind text, remaining int)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.use_recovery_code_at(p_user, p_actor, p_code, pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.set_recovery_codes(
    p_user text, p_actor int, p_salts bytea[], p_hashes bytea[])
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT pam_mfa_fleet.set_recovery_codes_at(p_user, p_actor, p_salts, p_hashes,
                                           pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.add_bypass_code(
    p_user text, p_actor int, p_salt bytea, p_hash bytea, p_uses int, p_expires_at bigint)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT pam_mfa_fleet.add_bypass_code_at(p_user, p_actor, p_salt, p_hash, p_uses, p_expires_at,
                                        pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.recovery_codes_left(p_user text)
RETURNS int
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.recovery_codes_left_at(p_user, pam_mfa_fleet.now_());

------------------------------------------------------------------------------------------
-- Hardware OTP tokens: the fleet's inventory (tokens/inventory.rs) and a user's token
-- registered by serial number and two codes (enrollment/token.rs). Owner-only logic
-- first, then the host functions. No function here returns a seed.
------------------------------------------------------------------------------------------

-- tokens::inventory::import: one entry per array index, in the file's order (mfad parsed
-- and checked the file with tokens::parse; checked again here). The whole file or none of
-- it: every entry is looked at before anything is written, and the first refused one is
-- the answer ('duplicate': its serial is in the inventory and p_replace is false;
-- 'assigned': it is someone's device, never replaced). Loading the same seed again keeps
-- what the inventory knows about codes used; a new seed starts afresh.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.import_tokens_at(
    p_actor int, p_format text, p_replace boolean, p_serials text[], p_types text[],
    p_secrets bytea[], p_algorithms text[], p_digits int[], p_periods int[],
    p_counters bigint[], p_now bigint)
RETURNS TABLE(outcome text, serial text, holder text, holder_device text, added int,
              replaced int)
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    n int := coalesce(pg_catalog.cardinality(p_serials), 0);
    old pam_mfa_fleet.tokens;
    who record;
    same boolean;
    n_added int := 0;
    n_replaced int := 0;
BEGIN
    IF p_now IS NULL OR p_replace IS NULL OR p_format IS NULL
       OR p_format NOT IN ('pskc', 'csv') THEN
        RAISE EXCEPTION 'an import needs its format (pskc or csv) and whether it replaces'
            USING ERRCODE = 'MF005';
    END IF;
    IF n NOT BETWEEN 1 AND 100000
       OR coalesce(pg_catalog.cardinality(p_types), 0) <> n
       OR coalesce(pg_catalog.cardinality(p_secrets), 0) <> n
       OR coalesce(pg_catalog.cardinality(p_algorithms), 0) <> n
       OR coalesce(pg_catalog.cardinality(p_digits), 0) <> n
       OR coalesce(pg_catalog.cardinality(p_periods), 0) <> n
       OR coalesce(pg_catalog.cardinality(p_counters), 0) <> n
       OR pg_catalog.array_ndims(p_serials) <> 1 THEN
        RAISE EXCEPTION 'an import is 1 to 100000 tokens, every field given for each'
            USING ERRCODE = 'MF005';
    END IF;
    FOR i IN 1..n LOOP
        IF p_serials[i] IS NULL OR char_length(p_serials[i]) NOT BETWEEN 1 AND 64
           OR p_serials[i] !~ '^[A-Za-z0-9._:/-]+$'
           OR p_types[i] IS NULL OR p_types[i] NOT IN ('totp', 'hotp')
           OR p_secrets[i] IS NULL OR pg_catalog.length(p_secrets[i]) NOT BETWEEN 16 AND 128
           OR p_algorithms[i] IS NULL OR p_algorithms[i] NOT IN ('SHA1', 'SHA256', 'SHA512')
           OR p_digits[i] IS NULL OR p_digits[i] NOT BETWEEN 6 AND 8
           OR (p_types[i] = 'totp' AND (p_periods[i] IS NULL OR p_counters[i] IS NOT NULL
                                        OR p_periods[i] NOT BETWEEN 1 AND 300))
           OR (p_types[i] = 'hotp' AND (p_counters[i] IS NULL OR p_periods[i] IS NOT NULL
                                        OR p_counters[i] NOT BETWEEN 0 AND 281474976710656))
        THEN
            RAISE EXCEPTION 'entry % is not a token this schema can hold', i
                USING ERRCODE = 'MF005';
        END IF;
    END LOOP;
    IF (SELECT count(DISTINCT s) FROM unnest(p_serials) s) <> n THEN
        RAISE EXCEPTION 'a serial number appears twice' USING ERRCODE = 'MF005';
    END IF;
    -- One import at a time, and none while a token is being registered or removed (the
    -- local store's write transaction): what is looked at below stays so until the end.
    LOCK TABLE pam_mfa_fleet.tokens IN SHARE ROW EXCLUSIVE MODE;
    FOR i IN 1..n LOOP
        -- Held to the end: a registration of this token under way is waited for, and its
        -- device then seen below.
        SELECT * INTO old FROM pam_mfa_fleet.tokens t WHERE t.serial = p_serials[i]
        FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        IF NOT p_replace THEN
            RETURN QUERY SELECT 'duplicate'::text, p_serials[i], NULL::text, NULL::text, 0, 0;
            RETURN;
        END IF;
        SELECT d.user_name, d.name INTO who FROM pam_mfa_fleet.devices d
        WHERE d.token_id = old.id;
        IF FOUND THEN
            RETURN QUERY SELECT 'assigned'::text, p_serials[i], who.user_name, who.name, 0, 0;
            RETURN;
        END IF;
    END LOOP;
    FOR i IN 1..n LOOP
        SELECT * INTO old FROM pam_mfa_fleet.tokens t WHERE t.serial = p_serials[i];
        IF NOT FOUND THEN
            INSERT INTO pam_mfa_fleet.tokens (serial, type, secret, algorithm, digits, period,
                                              counter, last_step, imported_at)
            VALUES (p_serials[i], p_types[i], p_secrets[i], p_algorithms[i], p_digits[i],
                    p_periods[i], p_counters[i], NULL, p_now);
            n_added := n_added + 1;
        ELSE
            -- The same token again only when every parameter is the same: a stored step
            -- or counter means nothing under another period, digits or hash. (Digests
            -- compared, not the seeds.)
            same := old.type = p_types[i] AND old.algorithm = p_algorithms[i]
                    AND old.digits = p_digits[i]
                    AND old.period IS NOT DISTINCT FROM p_periods[i]
                    AND pg_catalog.sha256(old.secret) = pg_catalog.sha256(p_secrets[i]);
            UPDATE pam_mfa_fleet.tokens t
            SET type = p_types[i], secret = p_secrets[i], algorithm = p_algorithms[i],
                digits = p_digits[i], period = p_periods[i],
                counter = CASE WHEN same AND p_types[i] = 'hotp'
                               THEN greatest(p_counters[i], old.counter)
                               ELSE p_counters[i] END,
                last_step = CASE WHEN same THEN old.last_step END,
                imported_at = p_now
            WHERE t.id = old.id;
            n_replaced := n_replaced + 1;
        END IF;
    END LOOP;
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, '*', 'token-import', NULL,
                                 n_added || ' added, ' || n_replaced || ' replaced ('
                                 || upper(p_format) || ')');
    RETURN QUERY SELECT 'imported'::text, NULL::text, NULL::text, NULL::text, n_added,
                        n_replaced;
END
$$;

-- tokens::inventory::list: every token by serial number, with whoever has it; no seed.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.list_tokens_at(p_now bigint)
RETURNS TABLE(serial text, kind text, digits int, imported bigint, assigned_to text,
              device text)
LANGUAGE sql STABLE SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT t.serial, t.type, t.digits, t.imported_at, d.user_name, d.name
FROM pam_mfa_fleet.tokens t LEFT JOIN pam_mfa_fleet.devices d ON d.token_id = t.id
ORDER BY t.serial COLLATE "C"
$$;

-- tokens::inventory::remove: a token out of the inventory for good; refused while it is
-- someone's device ('assigned', with whose), 'no_such_token' when there is none.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.remove_token_at(
    p_actor int, p_serial text, p_now bigint)
RETURNS TABLE(outcome text, holder text, holder_device text)
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    tid bigint;
    who record;
BEGIN
    IF p_now IS NULL OR p_serial IS NULL THEN
        RAISE EXCEPTION 'no serial number' USING ERRCODE = 'MF005';
    END IF;
    SELECT t.id INTO tid FROM pam_mfa_fleet.tokens t WHERE t.serial = p_serial FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_such_token'::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    SELECT d.user_name, d.name INTO who FROM pam_mfa_fleet.devices d WHERE d.token_id = tid;
    IF FOUND THEN
        RETURN QUERY SELECT 'assigned'::text, who.user_name, who.name;
        RETURN;
    END IF;
    DELETE FROM pam_mfa_fleet.tokens WHERE id = tid;
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, '*', 'token-remove', NULL,
                                 'serial ' || p_serial);
    RETURN QUERY SELECT 'removed'::text, NULL::text, NULL::text;
END
$$;

-- enrollment::register_token_as: the inventory token p_serial becomes p_user's active
-- device p_name once p_code1, p_code2 are two consecutive codes of it: consecutive time
-- steps near now (10 back, 1 ahead; failing that within 12 hours, at most 1,500 steps,
-- its clock's offset then remembered as drift) for a TOTP token, consecutive counter
-- values within 1,000 of its counter for an HOTP one; never at or before a code it ever
-- had accepted. The device row holds a copy of the seed (check_code and resync read
-- it there) and the replay state.
--
-- Root (p_actor 0), who holds the inventory, is told what is wrong: 'too_many_devices',
-- 'name_taken', 'unavailable' (no such token, or assigned: not said which),
-- 'codes_not_found' (with the token's kind), 'already_used'. Anyone else registering for
-- themselves is refused while locked out ('locked'), and otherwise gets the one answer
-- 'not_registered', counted as one failure toward the lock-out (login::count_refusal;
-- locked_until set when it locked the user), so that which serials exist, which are
-- free and which code was right stay unsaid.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.enroll_token_at(
    p_user text, p_actor int, p_name text, p_serial text, p_code1 text, p_code2 text,
    p_now bigint)
RETURNS TABLE(outcome text, mode text, locked_until bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    st pam_mfa_fleet.auth_state;
    pol pam_mfa_fleet.policy;
    tok pam_mfa_fleet.tokens;
    refusal text;
    now_step bigint;
    span bigint;
    t bigint;
    drift bigint := 0;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    PERFORM pam_mfa_fleet.check_device_name(p_name);
    IF p_now IS NULL OR p_actor IS NULL THEN
        RAISE EXCEPTION 'no time or no actor' USING ERRCODE = 'MF005';
    END IF;
    IF p_serial IS NULL OR char_length(p_serial) NOT BETWEEN 1 AND 64
       OR p_serial !~ '^[A-Za-z0-9._:/-]+$' THEN
        RAISE EXCEPTION 'not a serial number' USING ERRCODE = 'MF005';
    END IF;
    IF p_code1 IS NULL OR p_code2 IS NULL
       OR p_code1 !~ '^[0-9]{6,8}$' OR p_code2 !~ '^[0-9]{6,8}$' THEN
        RAISE EXCEPTION 'a code is 6 to 8 digits' USING ERRCODE = 'MF005';
    END IF;
    st := pam_mfa_fleet.lock_user(p_user);
    PERFORM pam_mfa_fleet.purge_expired(p_user, p_now);
    -- Locked: not even the right codes of a free token are looked at.
    IF p_actor <> 0 AND st.locked_until IS NOT NULL AND p_now < st.locked_until THEN
        RETURN QUERY SELECT 'locked'::text, NULL::text, st.locked_until;
        RETURN;
    END IF;
    SELECT * INTO STRICT pol FROM pam_mfa_fleet.policy WHERE id = 1;
    -- The cheap refusals first (enrollment::check_room_for), then the token and its codes.
    IF (SELECT count(*) FROM pam_mfa_fleet.devices d
        WHERE d.user_name = p_user AND d.state = 'active') >= least(pol.max_devices, 8) THEN
        refusal := 'too_many_devices';
    ELSIF EXISTS (SELECT 1 FROM pam_mfa_fleet.devices d
                  WHERE d.user_name = p_user AND d.name = p_name AND d.state = 'active') THEN
        refusal := 'name_taken';
    ELSE
        -- The token's row is held to the end: one owner, and no import over it meanwhile.
        SELECT * INTO tok FROM pam_mfa_fleet.tokens x WHERE x.serial = p_serial FOR UPDATE;
        IF NOT FOUND OR EXISTS (SELECT 1 FROM pam_mfa_fleet.devices d
                                WHERE d.token_id = tok.id) THEN
            refusal := 'unavailable';
        ELSIF tok.type = 'totp' THEN
            now_step := floor(p_now::numeric / tok.period)::bigint;
            t := pam_mfa_fleet.otp_find_consecutive(tok.secret, tok.algorithm, tok.digits,
                                                    p_code1, p_code2, now_step - 10,
                                                    now_step + 1);
            IF t IS NULL THEN
                -- A token's clock cannot be set: its offset is found and remembered.
                span := least(43200 / tok.period, 1500);
                t := pam_mfa_fleet.otp_find_consecutive(tok.secret, tok.algorithm,
                                                        tok.digits, p_code1, p_code2,
                                                        now_step - span, now_step + span);
                drift := t + 1 - now_step;
            END IF;
            IF t IS NULL THEN
                refusal := 'codes_not_found';
            ELSIF tok.last_step IS NOT NULL AND t <= tok.last_step THEN
                refusal := 'already_used';
            END IF;
        ELSE
            t := pam_mfa_fleet.otp_find_consecutive(tok.secret, tok.algorithm, tok.digits,
                                                    p_code1, p_code2, tok.counter,
                                                    tok.counter + 1000);
            IF t IS NULL THEN
                refusal := 'codes_not_found';
            END IF;
        END IF;
    END IF;
    IF refusal IS NULL THEN
        -- devices::claim_name: a pending registration of that name gives way.
        DELETE FROM pam_mfa_fleet.devices d
        WHERE d.user_name = p_user AND d.name = p_name AND d.state = 'pending';
        INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, secret, algorithm,
                                           digits, period, drift, last_step, counter,
                                           created_at, token_id)
        VALUES (p_user, p_name, 'token', 'active', tok.secret, tok.algorithm, tok.digits,
                tok.period, drift,
                CASE WHEN tok.type = 'totp' THEN t + 1 END,
                CASE WHEN tok.type = 'hotp' THEN t + 2 END,
                p_now, tok.id);
        PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'register', p_name,
                                     'token ' || p_serial);
        RETURN QUERY SELECT 'registered'::text, tok.type, NULL::bigint;
        RETURN;
    END IF;
    IF p_actor = 0 THEN
        RETURN QUERY SELECT refusal, tok.type, NULL::bigint;
        RETURN;
    END IF;
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'register-refused', p_name, NULL);
    RETURN QUERY SELECT 'not_registered'::text, NULL::text,
        pam_mfa_fleet.count_failure_(
            p_user, st, 1, least(greatest(coalesce(pol.max_failures, 5), 1), 1000),
            least(greatest(coalesce(pol.lockout_seconds, 300), 1), 604800), p_now);
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.import_tokens(
    p_actor int, p_format text, p_replace boolean, p_serials text[], p_types text[],
    p_secrets bytea[], p_algorithms text[], p_digits int[], p_periods int[],
    p_counters bigint[])
RETURNS TABLE(outcome text, serial text, holder text, holder_device text, added int,
              replaced int)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.import_tokens_at(p_actor, p_format, p_replace, p_serials,
                                             p_types, p_secrets, p_algorithms, p_digits,
                                             p_periods, p_counters, pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.list_tokens()
RETURNS TABLE(serial text, kind text, digits int, imported bigint, assigned_to text,
              device text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.list_tokens_at(pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.remove_token(p_actor int, p_serial text)
RETURNS TABLE(outcome text, holder text, holder_device text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.remove_token_at(p_actor, p_serial, pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.enroll_token(
    p_user text, p_actor int, p_name text, p_serial text, p_code1 text, p_code2 text)
RETURNS TABLE(outcome text, mode text, locked_until bigint)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.enroll_token_at(p_user, p_actor, p_name, p_serial, p_code1,
                                            p_code2, pam_mfa_fleet.now_())
$$;

------------------------------------------------------------------------------------------
-- Privileges, set again at every run
------------------------------------------------------------------------------------------

RESET ROLE;

REVOKE ALL ON ALL TABLES IN SCHEMA pam_mfa_fleet FROM PUBLIC, pam_mfa_host;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pam_mfa_fleet FROM PUBLIC, pam_mfa_host;
DO $grants$
DECLARE
    f regprocedure;
BEGIN
    -- Every function of ours: nobody but the owner, then EXECUTE for hosts on the host
    -- functions alone (a function that stopped being one loses it here).
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'pam_mfa_fleet'::regnamespace
               AND p.proowner = 'pam_mfa_owner'::regrole LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, pam_mfa_host', f);
    END LOOP;
END
$grants$;
GRANT EXECUTE ON FUNCTION
    pam_mfa_fleet.login_state(text),
    pam_mfa_fleet.check_code(text, int, text, int, int, int, bigint),
    pam_mfa_fleet.begin_totp(text, int, text, text, int, int),
    pam_mfa_fleet.finish_totp(text, int, text, text, text),
    pam_mfa_fleet.resync(text, int, text, text, text),
    pam_mfa_fleet.list_devices(text),
    pam_mfa_fleet.remove_device(text, int, text),
    pam_mfa_fleet.rename_device(text, int, text, text),
    pam_mfa_fleet.policy(),
    pam_mfa_fleet.unlock(text, int),
    pam_mfa_fleet.use_recovery_code(text, int, text),
    pam_mfa_fleet.set_recovery_codes(text, int, bytea[], bytea[]),
    pam_mfa_fleet.add_bypass_code(text, int, bytea, bytea, int, bigint),
    pam_mfa_fleet.recovery_codes_left(text),
    -- Hardware tokens.
    pam_mfa_fleet.import_tokens(int, text, boolean, text[], text[], bytea[], text[], int[],
                                int[], bigint[]),
    pam_mfa_fleet.list_tokens(),
    pam_mfa_fleet.remove_token(int, text),
    pam_mfa_fleet.enroll_token(text, int, text, text, text, text)
TO pam_mfa_host;

------------------------------------------------------------------------------------------
-- Security keys (FIDO2): the host's mfad is the relying party. It reads the public keys
-- and sign counts (never a secret: a key has none here), checks the assertion itself with
-- the library's code, and records the login through record_key_login, which checks the
-- sign count again under the user's lock. Self-contained (own grants) so that it can be
-- merged beside other blocks.
------------------------------------------------------------------------------------------

SET LOCAL ROLE pam_mfa_owner;

-- devices::active_fido2: the user's active keys, oldest first; public values only.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.keys_at(p_user text, p_now bigint)
RETURNS TABLE(name text, credential_id bytea, cose_public_key bytea, sign_count bigint,
              rp_id text, uv_required boolean)
LANGUAGE plpgsql STABLE SET search_path = pam_mfa_fleet, pg_temp AS $$
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    RETURN QUERY SELECT d.name, d.credential_id, d.cose_public_key, d.sign_count, d.rp_id,
                        d.uv_required
                 FROM pam_mfa_fleet.devices d
                 WHERE d.user_name = p_user AND d.state = 'active' AND d.kind = 'fido2'
                 ORDER BY d.id;
END
$$;

-- enrollment::begin_fido2: room for one more device and the name free among active ones
-- (check_room_for), and the credential ids the key must not register again.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.begin_key_at(p_user text, p_name text, p_now bigint)
RETURNS SETOF bytea
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    max_devices int;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    PERFORM pam_mfa_fleet.check_device_name(p_name);
    SELECT least(p.max_devices, 8) INTO STRICT max_devices FROM pam_mfa_fleet.policy p
    WHERE p.id = 1;
    IF (SELECT count(*) FROM pam_mfa_fleet.devices
        WHERE user_name = p_user AND state = 'active') >= max_devices THEN
        RAISE EXCEPTION 'user has the most devices allowed (%)', max_devices
            USING ERRCODE = 'MF002';
    END IF;
    IF EXISTS (SELECT 1 FROM pam_mfa_fleet.devices
               WHERE user_name = p_user AND name = p_name AND state = 'active') THEN
        RAISE EXCEPTION 'device name taken' USING ERRCODE = 'MF001';
    END IF;
    RETURN QUERY SELECT d.credential_id FROM pam_mfa_fleet.devices d
                 WHERE d.user_name = p_user AND d.state = 'active' AND d.kind = 'fido2'
                 ORDER BY d.id;
END
$$;

-- devices::insert_fido2: a verified registration stored as an active key, under the
-- user's lock: an unfinished registration of the same name is replaced (claim_name), the
-- device limit (check_room) and a credential id registered already are refused.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.add_key_at(
    p_user text, p_actor int, p_name text, p_credential_id bytea, p_cose_public_key bytea,
    p_sign_count bigint, p_rp_id text, p_uv_required boolean, p_now bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    max_devices int;
    existing text;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    PERFORM pam_mfa_fleet.check_device_name(p_name);
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'no time' USING ERRCODE = 'MF005';
    END IF;
    IF p_credential_id IS NULL OR pg_catalog.length(p_credential_id) NOT BETWEEN 1 AND 1023
       OR p_cose_public_key IS NULL
       OR pg_catalog.length(p_cose_public_key) NOT BETWEEN 1 AND 1024
       OR p_sign_count IS NULL OR p_sign_count NOT BETWEEN 0 AND 4294967295
       OR p_rp_id IS NULL OR pg_catalog.length(p_rp_id) NOT BETWEEN 1 AND 255
       OR p_uv_required IS NULL THEN
        RAISE EXCEPTION 'not a security key registration' USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    PERFORM pam_mfa_fleet.purge_expired(p_user, p_now);
    SELECT state INTO existing FROM pam_mfa_fleet.devices
    WHERE user_name = p_user AND name = p_name;
    IF existing = 'pending' THEN
        DELETE FROM pam_mfa_fleet.devices WHERE user_name = p_user AND name = p_name;
    ELSIF existing IS NOT NULL THEN
        RAISE EXCEPTION 'device name taken' USING ERRCODE = 'MF001';
    END IF;
    SELECT least(p.max_devices, 8) INTO STRICT max_devices FROM pam_mfa_fleet.policy p
    WHERE p.id = 1;
    IF (SELECT count(*) FROM pam_mfa_fleet.devices
        WHERE user_name = p_user AND state = 'active') >= max_devices THEN
        RAISE EXCEPTION 'user has the most devices allowed (%)', max_devices
            USING ERRCODE = 'MF002';
    END IF;
    IF EXISTS (SELECT 1 FROM pam_mfa_fleet.devices WHERE credential_id = p_credential_id) THEN
        RAISE EXCEPTION 'this security key is already registered for this user'
            USING ERRCODE = 'MF001';
    END IF;
    INSERT INTO pam_mfa_fleet.devices (user_name, name, kind, state, created_at, credential_id,
                                       cose_public_key, sign_count, rp_id, uv_required)
    VALUES (p_user, p_name, 'fido2', 'active', p_now, p_credential_id, p_cose_public_key,
            p_sign_count, p_rp_id, p_uv_required);
    -- The local store's row for a key added active at once (audit_device_insert).
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'register', p_name, 'fido2');
END
$$;

-- login::record_key_login: an assertion the host verified against the key as keys()
-- returned it, recorded under the user's lock. The key is looked up again (it may have
-- been removed, or replaced, meanwhile) and its count checked again with the rule of
-- pam_mfa_fido2::verify::check_counter: a count that did not grow is refused, unless both
-- the stored and the new count are 0 (a key that does not count). As in the local store,
-- a lock-out does not stop a key, and a refusal counts no failure (a signature cannot be
-- guessed); the audit row is written either way.
-- Outcomes: ('accepted', name, new count), ('counter_regression', name, stored count),
-- ('unknown_credential', NULL, NULL).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.record_key_login_at(
    p_user text, p_actor int, p_credential_id bytea, p_cose_public_key bytea,
    p_sign_count bigint, p_now bigint)
RETURNS TABLE(outcome text, device text, sign_count bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    d pam_mfa_fleet.devices;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    IF p_now IS NULL OR p_credential_id IS NULL OR p_cose_public_key IS NULL
       OR p_sign_count IS NULL OR p_sign_count NOT BETWEEN 0 AND 4294967295 THEN
        RAISE EXCEPTION 'a credential id, its public key and a sign count of 0 to 2^32 - 1'
            USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    SELECT * INTO d FROM pam_mfa_fleet.devices x
    WHERE x.user_name = p_user AND x.state = 'active' AND x.kind = 'fido2'
      AND x.credential_id = p_credential_id AND x.cose_public_key = p_cose_public_key;
    IF NOT FOUND THEN
        PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'login-refused', NULL,
                                     'unknown credential');
        RETURN QUERY SELECT 'unknown_credential'::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF (d.sign_count <> 0 OR p_sign_count <> 0) AND p_sign_count <= d.sign_count THEN
        PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'login-refused', d.name,
                                     'sign count ' || p_sign_count || ' did not grow past '
                                     || d.sign_count);
        RETURN QUERY SELECT 'counter_regression'::text, d.name, d.sign_count;
        RETURN;
    END IF;
    UPDATE pam_mfa_fleet.devices SET sign_count = p_sign_count, last_used_at = p_now
    WHERE id = d.id;
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'login-accepted', d.name,
                                 'security key');
    RETURN QUERY SELECT 'accepted'::text, d.name, p_sign_count;
END
$$;

-- A key login refused by the host itself (a bad signature, a wrong challenge...): an
-- audit row only, as the local store counts no failure for it.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.key_refused_at(
    p_user text, p_actor int, p_device text, p_why text, p_now bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'login-refused',
                                 left(p_device, 64), left(coalesce(p_why, 'security key'), 200));
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.keys(p_user text)
RETURNS TABLE(name text, credential_id bytea, cose_public_key bytea, sign_count bigint,
              rp_id text, uv_required boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.keys_at(p_user, pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.begin_key(p_user text, p_name text)
RETURNS SETOF bytea
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.begin_key_at(p_user, p_name, pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.add_key(
    p_user text, p_actor int, p_name text, p_credential_id bytea, p_cose_public_key bytea,
    p_sign_count bigint, p_rp_id text, p_uv_required boolean)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT pam_mfa_fleet.add_key_at(p_user, p_actor, p_name, p_credential_id, p_cose_public_key,
                                p_sign_count, p_rp_id, p_uv_required, pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.record_key_login(
    p_user text, p_actor int, p_credential_id bytea, p_cose_public_key bytea,
    p_sign_count bigint)
RETURNS TABLE(outcome text, device text, sign_count bigint)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.record_key_login_at(p_user, p_actor, p_credential_id,
                                                p_cose_public_key, p_sign_count,
                                                pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.key_refused(
    p_user text, p_actor int, p_device text, p_why text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT pam_mfa_fleet.key_refused_at(p_user, p_actor, p_device, p_why, pam_mfa_fleet.now_())
$$;

RESET ROLE;

-- New functions are executable by PUBLIC until revoked: nobody but the owner, then the
-- host functions for hosts.
REVOKE ALL ON FUNCTION
    pam_mfa_fleet.keys_at(text, bigint),
    pam_mfa_fleet.begin_key_at(text, text, bigint),
    pam_mfa_fleet.add_key_at(text, int, text, bytea, bytea, bigint, text, boolean, bigint),
    pam_mfa_fleet.record_key_login_at(text, int, bytea, bytea, bigint, bigint),
    pam_mfa_fleet.key_refused_at(text, int, text, text, bigint),
    pam_mfa_fleet.keys(text),
    pam_mfa_fleet.begin_key(text, text),
    pam_mfa_fleet.add_key(text, int, text, bytea, bytea, bigint, text, boolean),
    pam_mfa_fleet.record_key_login(text, int, bytea, bytea, bigint),
    pam_mfa_fleet.key_refused(text, int, text, text)
FROM PUBLIC, pam_mfa_host;
GRANT EXECUTE ON FUNCTION
    pam_mfa_fleet.keys(text),
    pam_mfa_fleet.begin_key(text, text),
    pam_mfa_fleet.add_key(text, int, text, bytea, bytea, bigint, text, boolean),
    pam_mfa_fleet.record_key_login(text, int, bytea, bytea, bigint),
    pam_mfa_fleet.key_refused(text, int, text, text)
TO pam_mfa_host;

------------------------------------------------------------------------------------------
-- Moving a host's local store into the fleet (`mfa admin fleet import`; owner only, never
-- granted to hosts). Self-contained (own revokes) so that it can be merged beside other
-- blocks.
------------------------------------------------------------------------------------------

SET LOCAL ROLE pam_mfa_owner;

-- p_accounts is (the text of) a JSON array of accounts as pam_mfa_fleet's import module builds them from
-- the host's SQLite store: {"user", "devices": [...], "codes": [...]}, binary values in
-- hex, each device with everything that keeps it working (its replay state: last step,
-- drift, counter, sign count). An account is moved whole, or, when the fleet has a device
-- or a usable recovery or bypass code of it already, skipped untouched (nothing is
-- merged). Everything happens in the caller's one transaction; a device that cannot be
-- moved (too many, a security key or a token that another account of the fleet has)
-- fails the whole call. With p_dry_run only the outcomes are worked out. One row per
-- account: 'moved' ('would_move' in a dry run) or 'skipped', with its numbers of devices
-- and codes. Each moved account is audited with the importing role.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.import_accounts_at(
    p_actor int, p_accounts text, p_dry_run boolean, p_now bigint)
RETURNS TABLE(account text, outcome text, n_devices int, n_codes int)
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    doc jsonb;
    a jsonb;
    d jsonb;
    u text;
    nd int;
    nc int;
BEGIN
    BEGIN
        doc := p_accounts::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        doc := NULL;
    END;
    IF p_now IS NULL OR p_dry_run IS NULL OR doc IS NULL OR jsonb_typeof(doc) <> 'array' THEN
        RAISE EXCEPTION 'import: an array of accounts, a time and whether it is a dry run'
            USING ERRCODE = 'MF005';
    END IF;
    FOR a IN SELECT e.value FROM jsonb_array_elements(doc) e LOOP
        u := a->>'user';
        PERFORM pam_mfa_fleet.check_user(u);
        IF jsonb_typeof(a->'devices') IS DISTINCT FROM 'array'
           OR jsonb_typeof(a->'codes') IS DISTINCT FROM 'array' THEN
            RAISE EXCEPTION 'import: % has no list of devices or codes', u
                USING ERRCODE = 'MF005';
        END IF;
        nd := jsonb_array_length(a->'devices');
        nc := jsonb_array_length(a->'codes');
        IF nd > 8 THEN
            RAISE EXCEPTION 'pam_mfa: at most 8 active devices per user (% has %)', u, nd
                USING ERRCODE = 'MF002';
        END IF;
        PERFORM pam_mfa_fleet.lock_user(u);
        PERFORM pam_mfa_fleet.purge_expired(u, p_now);
        IF EXISTS (SELECT 1 FROM pam_mfa_fleet.devices x WHERE x.user_name = u)
           OR EXISTS (SELECT 1 FROM pam_mfa_fleet.recovery_codes x
                      WHERE x.user_name = u AND x.uses_left > 0
                        AND (x.expires_at IS NULL OR x.expires_at > p_now)) THEN
            RETURN QUERY SELECT u, 'skipped'::text, nd, nc;
            CONTINUE;
        END IF;
        FOR d IN SELECT e.value FROM jsonb_array_elements(a->'devices') e LOOP
            PERFORM pam_mfa_fleet.check_device_name(d->>'name');
            IF d->>'credential_id' IS NOT NULL AND EXISTS (
                   SELECT 1 FROM pam_mfa_fleet.devices x
                   WHERE x.credential_id = decode(d->>'credential_id', 'hex')) THEN
                RAISE EXCEPTION 'import: the security key % of % is registered in the fleet already',
                    d->>'name', u USING ERRCODE = 'MF005';
            END IF;
            IF d->>'token_serial' IS NOT NULL AND EXISTS (
                   SELECT 1 FROM pam_mfa_fleet.devices x
                   WHERE x.token_serial = d->>'token_serial') THEN
                RAISE EXCEPTION 'import: the token % of % is assigned in the fleet already',
                    d->>'token_serial', u USING ERRCODE = 'MF005';
            END IF;
            IF NOT p_dry_run THEN
                INSERT INTO pam_mfa_fleet.devices (
                    user_name, name, kind, state, secret, algorithm, digits, period, drift,
                    last_step, counter, created_at, last_used_at, token_serial,
                    credential_id, cose_public_key, sign_count, rp_id, uv_required)
                VALUES (
                    u, d->>'name', d->>'kind', 'active', decode(d->>'secret', 'hex'),
                    d->>'algorithm', (d->>'digits')::int, (d->>'period')::int,
                    coalesce((d->>'drift')::bigint, 0), (d->>'last_step')::bigint,
                    (d->>'counter')::bigint, (d->>'created_at')::bigint,
                    (d->>'last_used_at')::bigint, d->>'token_serial',
                    decode(d->>'credential_id', 'hex'), decode(d->>'cose_public_key', 'hex'),
                    (d->>'sign_count')::bigint, d->>'rp_id', (d->>'uv_required')::boolean);
            END IF;
        END LOOP;
        IF NOT p_dry_run THEN
            INSERT INTO pam_mfa_fleet.recovery_codes (
                user_name, kind, salt, hash, uses_left, expires_at, created_at, created_by)
            SELECT u, c.value->>'kind', decode(c.value->>'salt', 'hex'),
                   decode(c.value->>'hash', 'hex'), (c.value->>'uses_left')::int,
                   (c.value->>'expires_at')::bigint, (c.value->>'created_at')::bigint,
                   (c.value->>'created_by')::bigint
            FROM jsonb_array_elements(a->'codes') c;
            PERFORM pam_mfa_fleet.audit_(p_now, p_actor, u, 'import', NULL,
                                         nd || ' devices, ' || nc
                                         || ' recovery and bypass codes from a host''s store');
        END IF;
        RETURN QUERY SELECT u, CASE WHEN p_dry_run THEN 'would_move' ELSE 'moved' END, nd, nc;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.import_accounts(
    p_actor int, p_accounts text, p_dry_run boolean)
RETURNS TABLE(account text, outcome text, n_devices int, n_codes int)
LANGUAGE sql VOLATILE SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.import_accounts_at(p_actor, p_accounts, p_dry_run,
                                               pam_mfa_fleet.now_())
$$;

RESET ROLE;

-- New functions are executable by PUBLIC until revoked: the owner's alone.
REVOKE ALL ON FUNCTION
    pam_mfa_fleet.import_accounts_at(int, text, boolean, bigint),
    pam_mfa_fleet.import_accounts(int, text, boolean)
FROM PUBLIC, pam_mfa_host;

------------------------------------------------------------------------------------------
-- Self-service as on one host: registration at login (login_hold.rs), the hourly limits
-- of limits.rs counted fleet-wide from the audit rows, under the user's lock, and what
-- ends the hosts' remembered logins. Self-contained (own grants) so that it can be merged
-- beside other blocks.
------------------------------------------------------------------------------------------

SET LOCAL ROLE pam_mfa_owner;

-- limits::nth_recent: the time of the p_n-th most recent audit row of p_user written by a
-- non-root actor since p_since (of p_action only, if given), on any host.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.nth_recent_(
    p_user text, p_action text, p_n int, p_since bigint)
RETURNS bigint
LANGUAGE sql STABLE SET search_path = pam_mfa_fleet, pg_temp
RETURN (SELECT a.at FROM pam_mfa_fleet.audit a
        WHERE a.user_name = p_user AND a.at > p_since AND a.actor_uid <> 0
          AND (p_action IS NULL OR a.action = p_action)
        ORDER BY a.at DESC LIMIT 1 OFFSET greatest(p_n - 1, 0));

-- limits::check_begun (MAX_BEGUN = 10 an hour): raised with SQLSTATE MF020, whose message
-- ends with the time from which there is room again (mfad words it as the library does).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.check_begun_(p_user text, p_now bigint)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    at_ bigint := pam_mfa_fleet.nth_recent_(p_user, 'begin', 10, p_now - 3600);
BEGIN
    IF at_ IS NOT NULL THEN
        RAISE EXCEPTION 'too many registrations begun in the last hour; room again at %',
            at_ + 3600 USING ERRCODE = 'MF020';
    END IF;
END
$$;

-- limits::check_changes (MAX_CHANGES = 60 audit rows an hour by a non-root caller's own
-- commands): the time from which there is room again, NULL when there is room now. Root
-- is never limited. Taken under the user's lock, as every change is.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.change_room_at(p_user text, p_actor int, p_now bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    at_ bigint;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    IF p_now IS NULL OR p_actor IS NULL THEN
        RAISE EXCEPTION 'no time or no actor' USING ERRCODE = 'MF005';
    END IF;
    IF p_actor = 0 THEN
        RETURN NULL;
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    at_ := pam_mfa_fleet.nth_recent_(p_user, NULL, 60, p_now - 3600);
    RETURN at_ + 3600;
END
$$;

-- login_hold::hold_totp: the two consecutive codes of the registration p_name held for
-- the login whose value hashes to p_hold, checked as finish_totp checks them and used up
-- (its last step set), leaving it pending: only activate_held makes it active.
-- 'held', finish_totp's refusals of the codes, 'already_active' or 'no_such_device'
-- (none, expired, held for another login or for none, or already confirmed).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.hold_totp_at(
    p_user text, p_actor int, p_name text, p_hold bytea, p_code1 text, p_code2 text,
    p_now bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    d pam_mfa_fleet.devices;
    refusal text;
    t bigint;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    PERFORM pam_mfa_fleet.check_device_name(p_name);
    IF p_now IS NULL OR p_hold IS NULL OR length(p_hold) <> 32 THEN
        RAISE EXCEPTION 'no time or not a login''s hold' USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    SELECT * INTO d FROM pam_mfa_fleet.devices x
    WHERE x.user_name = p_user AND x.name = p_name AND x.period IS NOT NULL
      AND (x.state = 'active' OR x.expires_at > p_now);
    IF NOT FOUND THEN
        RETURN 'no_such_device';
    END IF;
    IF d.state = 'active' THEN
        RETURN 'already_active';
    END IF;
    IF d.login_hold IS DISTINCT FROM p_hold THEN
        RETURN 'no_such_device';
    END IF;
    SELECT pp.refusal, pp.t INTO refusal, t
    FROM pam_mfa_fleet.pending_pair_(d.user_name, d.secret, d.algorithm, d.digits, d.period,
                                     p_code1, p_code2, p_now) pp;
    IF refusal IS NOT NULL THEN
        RETURN refusal;
    END IF;
    UPDATE pam_mfa_fleet.devices SET last_step = t + 1
    WHERE id = d.id AND last_step IS NULL;
    IF NOT FOUND THEN
        RETURN 'no_such_device';
    END IF;
    RETURN 'held';
END
$$;

-- login_hold::activate_held: the registration held for p_hold whose codes were confirmed,
-- made active within the device limit; its name, NULL when there is none (expired, or
-- replaced by another of the same name).
CREATE OR REPLACE FUNCTION pam_mfa_fleet.activate_held_at(
    p_user text, p_actor int, p_hold bytea, p_now bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
DECLARE
    d pam_mfa_fleet.devices;
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    IF p_now IS NULL OR p_hold IS NULL OR length(p_hold) <> 32 THEN
        RAISE EXCEPTION 'no time or not a login''s hold' USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.lock_user(p_user);
    SELECT * INTO d FROM pam_mfa_fleet.devices x
    WHERE x.user_name = p_user AND x.login_hold = p_hold AND x.state = 'pending'
      AND x.expires_at > p_now AND x.last_step IS NOT NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF (SELECT count(*) FROM pam_mfa_fleet.devices
        WHERE user_name = p_user AND state = 'active')
       >= (SELECT least(p.max_devices, 8) FROM pam_mfa_fleet.policy p WHERE p.id = 1) THEN
        RAISE EXCEPTION 'user has the most devices allowed' USING ERRCODE = 'MF002';
    END IF;
    UPDATE pam_mfa_fleet.devices SET state = 'active', expires_at = NULL, login_hold = NULL
    WHERE id = d.id;
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'activate', d.name, d.kind);  -- as the local store's row
    RETURN d.name;
END
$$;

-- Remembered logins (remembered.rs) are kept by each host in its own store, for the fleet
-- account: a host remembers the logins it saw. What ends them ends them on every host: a
-- device removed, an unlock, the start of a lock-out or the person's `mfa forget`, on any
-- host, leave an audit row here, and a host lets no login in that it remembered at or
-- before the latest of them. Hosts keep a fleet account's remembered logins in the
-- database's time, so that they compare with these rows on one clock.
-- remembered_ended_at: that time (NULL: never), and now.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.remembered_ended_at(p_user text, p_now bigint)
RETURNS TABLE(ended bigint, now bigint)
LANGUAGE plpgsql STABLE SET search_path = pam_mfa_fleet, pg_temp AS $$
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    RETURN QUERY SELECT (SELECT max(a.at) FROM pam_mfa_fleet.audit a
                         WHERE a.user_name = p_user
                           AND a.action IN ('remove', 'unlock', 'forget')),
                        p_now;
END
$$;

-- The 'forget' row that ends p_user's remembered logins on every host (`mfa forget`, or a
-- lock-out a host saw start), with why.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.forget_remembered_at(
    p_user text, p_actor int, p_why text, p_now bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pam_mfa_fleet, pg_temp AS $$
BEGIN
    PERFORM pam_mfa_fleet.check_user(p_user);
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'no time' USING ERRCODE = 'MF005';
    END IF;
    PERFORM pam_mfa_fleet.audit_(p_now, p_actor, p_user, 'forget', NULL,
                                 left(coalesce(p_why, ''), 200));
END
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.remembered_ended(p_user text)
RETURNS TABLE(ended bigint, now bigint)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.remembered_ended_at(p_user, pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.forget_remembered(
    p_user text, p_actor int, p_why text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.forget_remembered_at(p_user, p_actor, p_why, pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.begin_totp_held(
    p_user text, p_actor int, p_name text, p_algorithm text, p_digits int, p_period int,
    p_hold bytea)
RETURNS bytea
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.begin_totp_hold_at(p_user, p_actor, p_name, p_algorithm, p_digits,
                                        p_period, p_hold, pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.hold_totp(
    p_user text, p_actor int, p_name text, p_hold bytea, p_code1 text, p_code2 text)
RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.hold_totp_at(p_user, p_actor, p_name, p_hold, p_code1, p_code2,
                                  pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.activate_held(p_user text, p_actor int, p_hold bytea)
RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.activate_held_at(p_user, p_actor, p_hold, pam_mfa_fleet.now_());

CREATE OR REPLACE FUNCTION pam_mfa_fleet.change_room(p_user text, p_actor int)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
RETURN pam_mfa_fleet.change_room_at(p_user, p_actor, pam_mfa_fleet.now_());

RESET ROLE;

REVOKE ALL ON FUNCTION
    pam_mfa_fleet.pending_pair_(text, bytea, text, int, int, text, text, bigint),
    pam_mfa_fleet.nth_recent_(text, text, int, bigint),
    pam_mfa_fleet.check_begun_(text, bigint),
    pam_mfa_fleet.change_room_at(text, int, bigint),
    pam_mfa_fleet.hold_totp_at(text, int, text, bytea, text, text, bigint),
    pam_mfa_fleet.activate_held_at(text, int, bytea, bigint),
    pam_mfa_fleet.begin_totp_held(text, int, text, text, int, int, bytea),
    pam_mfa_fleet.hold_totp(text, int, text, bytea, text, text),
    pam_mfa_fleet.activate_held(text, int, bytea),
    pam_mfa_fleet.change_room(text, int),
    pam_mfa_fleet.remembered_ended_at(text, bigint),
    pam_mfa_fleet.forget_remembered_at(text, int, text, bigint),
    pam_mfa_fleet.remembered_ended(text),
    pam_mfa_fleet.forget_remembered(text, int, text)
FROM PUBLIC, pam_mfa_host;
GRANT EXECUTE ON FUNCTION
    pam_mfa_fleet.begin_totp_held(text, int, text, text, int, int, bytea),
    pam_mfa_fleet.hold_totp(text, int, text, bytea, text, text),
    pam_mfa_fleet.activate_held(text, int, bytea),
    pam_mfa_fleet.change_room(text, int),
    pam_mfa_fleet.remembered_ended(text),
    pam_mfa_fleet.forget_remembered(text, int, text)
TO pam_mfa_host;

-- The administrator's views through a host (`mfa admin list`, `mfa admin audit` on a host
-- whose accounts are in the fleet): every account's devices and outstanding codes, and
-- the audit rows. Never a secret, a salt or a hash. Self-contained (own grants) so that
-- it can be merged beside other blocks.
------------------------------------------------------------------------------------------

SET LOCAL ROLE pam_mfa_owner;

-- admin::overview: one row per device (active, or pending and not yet expired) and per
-- outstanding recovery or bypass code of every account, by account (byte order, as the
-- local store sorts), devices by age, codes by issue. `what` is 'device', 'recovery' or
-- 'bypass'; the device columns are NULL for a code and the code columns for a device.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.admin_accounts_at(p_now bigint)
RETURNS TABLE(what text, user_name text, name text, kind text, state text, created bigint,
              last_used bigint, expires bigint, uses_left int, created_by bigint)
LANGUAGE sql STABLE SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT r.what, r.user_name, r.name, r.kind, r.state, r.created, r.last_used, r.expires,
       r.uses_left, r.created_by
FROM (
    SELECT 'device'::text AS what, d.user_name, d.name, d.kind, d.state,
           d.created_at AS created, d.last_used_at AS last_used, d.expires_at AS expires,
           NULL::int AS uses_left, NULL::bigint AS created_by, 0 AS part, d.id
    FROM pam_mfa_fleet.devices d
    WHERE d.state = 'active' OR d.expires_at > p_now
    UNION ALL
    SELECT c.kind, c.user_name, NULL, NULL, NULL, c.created_at, NULL, c.expires_at,
           c.uses_left, c.created_by, 1, c.id
    FROM pam_mfa_fleet.recovery_codes c
    WHERE c.uses_left > 0 AND (c.expires_at IS NULL OR c.expires_at > p_now)
) r
ORDER BY r.user_name COLLATE "C", r.part, r.created, r.id
$$;

-- audit::list: the rows about p_user (every row when NULL) at or after p_since (all when
-- NULL), oldest first, with the role of the host that wrote each.
CREATE OR REPLACE FUNCTION pam_mfa_fleet.audit_rows_at(
    p_user text, p_since bigint, p_now bigint)
RETURNS TABLE(at bigint, actor_uid bigint, user_name text, action text, device text,
              detail text, host text)
LANGUAGE sql STABLE SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT a.at, a.actor_uid, a.user_name, a.action, a.device, a.detail, a.host
FROM pam_mfa_fleet.audit a
WHERE (p_user IS NULL OR a.user_name = p_user) AND (p_since IS NULL OR a.at >= p_since)
ORDER BY a.at, a.id
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.admin_accounts()
RETURNS TABLE(what text, user_name text, name text, kind text, state text, created bigint,
              last_used bigint, expires bigint, uses_left int, created_by bigint)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.admin_accounts_at(pam_mfa_fleet.now_())
$$;

CREATE OR REPLACE FUNCTION pam_mfa_fleet.audit_rows(p_user text, p_since bigint)
RETURNS TABLE(at bigint, actor_uid bigint, user_name text, action text, device text,
              detail text, host text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pam_mfa_fleet, pg_temp
AS $$
SELECT * FROM pam_mfa_fleet.audit_rows_at(p_user, p_since, pam_mfa_fleet.now_())
$$;

RESET ROLE;

REVOKE ALL ON FUNCTION
    pam_mfa_fleet.admin_accounts_at(bigint),
    pam_mfa_fleet.audit_rows_at(text, bigint, bigint),
    pam_mfa_fleet.admin_accounts(),
    pam_mfa_fleet.audit_rows(text, bigint)
FROM PUBLIC, pam_mfa_host;
GRANT EXECUTE ON FUNCTION
    pam_mfa_fleet.admin_accounts(),
    pam_mfa_fleet.audit_rows(text, bigint)
TO pam_mfa_host;

COMMIT;
