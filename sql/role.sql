-- The database role the fkrollout worker connects as: every phase of a
-- rollout (audit, backup, NOT VALID, remediation, VALIDATE, behaviour tests,
-- perf, monitor, rollback) and nothing more. docs/DATABASE-ROLE.md explains
-- each grant and the optional narrower perf and monitor roles.
--
-- Run it as a superuser (or a role with CREATEROLE plus ADMIN OPTION on the
-- table owner and on pg_read_all_stats), once per target database,
-- preferably connected to that database:
--
--   psql "postgres://admin@db.example.com/apms" -v ON_ERROR_STOP=1 -q \
--     -v role=fkrollout -v table_owner=apms_owner -v database=apms \
--     -f sql/role.sql
--
-- Variables:
--   role         the login role the worker uses; created when missing
--   table_owner  the role owning the application's tables (not a superuser)
--   database     the target database
--
-- Re-running is safe: the role's attributes and grants converge to the ones
-- below. No password is set here (it would end up in shell history and
-- logs): set one afterwards with psql's \password, or use certificates.
--
-- Only psql variable references of the two forms psql itself substitutes
-- appear below, and none inside quotes or dollar-quoted bodies; Go code
-- renders this file the same way (sqlassets.RoleSQL).

-- The DO blocks read the variables from session settings: psql does not
-- substitute variables inside a dollar-quoted body.
SET fkrollout.role = :'role';
SET fkrollout.table_owner = :'table_owner';
SET fkrollout.database = :'database';

DO $role$
DECLARE
    r     text := current_setting('fkrollout.role');
    owner text := current_setting('fkrollout.table_owner');
    o     pg_roles%ROWTYPE;
BEGIN
    IF r = '' OR owner = '' OR current_setting('fkrollout.database') = '' THEN
        RAISE EXCEPTION 'role.sql: set the psql variables role, table_owner and database';
    END IF;
    IF r = owner THEN
        RAISE EXCEPTION 'role.sql: role and table_owner are both %: the worker needs a login role of its own that is a member of the owner', r;
    END IF;
    SELECT * INTO o FROM pg_roles WHERE rolname = owner;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role.sql: table owner role % does not exist', owner;
    END IF;
    -- Membership lets the worker SET ROLE to the owner: a superuser owner
    -- would make the worker a superuser after all.
    IF o.rolsuper THEN
        RAISE EXCEPTION 'role.sql: table owner % is a superuser; have the application tables owned by an ordinary role (ALTER TABLE ... OWNER TO) and pass that role', owner;
    END IF;
    IF o.rolcreaterole OR o.rolcreatedb OR o.rolreplication OR o.rolbypassrls THEN
        RAISE WARNING 'role.sql: table owner % has CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, which the worker can use through SET ROLE; fkrollout needs none of them', owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT', r);
    ELSE
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT', r);
    END IF;
END
$role$;

-- ALTER TABLE ... ADD/VALIDATE/DROP CONSTRAINT, CREATE INDEX CONCURRENTLY,
-- remediation's DELETE/UPDATE, the audit's and pg_dump's reads: all need the
-- table owner's rights, which membership (with INHERIT) gives.
GRANT :"table_owner" TO :"role";

-- CONNECT in case PUBLIC's default was revoked; CREATE for fkrollout's own
-- bookkeeping schema (CREATE SCHEMA IF NOT EXISTS fkrollout).
GRANT CONNECT, CREATE ON DATABASE :"database" TO :"role";

-- The production monitor reads pg_stat_statements of every user (others'
-- statements are hidden without it); no table access comes with it.
GRANT pg_read_all_stats TO :"role";

-- An earlier run as another user (a superuser, typically) may have created
-- the fkrollout schema: hand it and its tables to the role so it can keep
-- writing ownership and quarantine rows. Only when connected to the target
-- database; elsewhere the schema is out of reach.
DO $schema$
DECLARE
    r text := current_setting('fkrollout.role');
    t regclass;
BEGIN
    IF current_database() <> current_setting('fkrollout.database') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'fkrollout') THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER SCHEMA fkrollout OWNER TO %I', r);
    -- Sequences owned by a column follow their table.
    FOR t IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'fkrollout' AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %I', t, r);
    END LOOP;
END
$schema$;

-- Anything else the role holds was not granted here: say so, so an admin
-- can revoke it (nothing is revoked automatically).
DO $check$
DECLARE
    r     text := current_setting('fkrollout.role');
    owner text := current_setting('fkrollout.table_owner');
    extra text;
BEGIN
    SELECT string_agg(g.rolname, ', ' ORDER BY g.rolname) INTO extra
    FROM pg_auth_members m
    JOIN pg_roles g ON g.oid = m.roleid
    JOIN pg_roles u ON u.oid = m.member
    WHERE u.rolname = r AND g.rolname NOT IN (owner, 'pg_read_all_stats');
    IF extra IS NOT NULL THEN
        RAISE WARNING 'role.sql: % is also a member of %, which fkrollout does not need', r, extra;
    END IF;
END
$check$;

RESET fkrollout.role;
RESET fkrollout.table_owner;
RESET fkrollout.database;
