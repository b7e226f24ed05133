-- Optional: a role for the perf phase only (perf_dsn). The workload writes
-- rows and EXPLAIN ANALYZEs its statements; it needs row privileges on the
-- workload's tables and nothing else: no DDL, no membership in the table
-- owner. Index builds the rollout asks for still go through the main role.
-- docs/DATABASE-ROLE.md has the details.
--
--   psql "postgres://admin@db.example.com/apms" -v ON_ERROR_STOP=1 -q \
--     -v role=fkrollout_perf -v database=apms -v schema=public \
--     -f sql/role-perf.sql
--
-- Run it as the table owner or a superuser, connected to the database.
-- It grants on every table of the schema as it is now; to narrow it to the
-- workload's tables, grant table by table instead of ON ALL TABLES.

SET fkrollout.role = :'role';

DO $role$
DECLARE
    r text := current_setting('fkrollout.role');
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r);
    ELSE
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r);
    END IF;
END
$role$;

GRANT CONNECT ON DATABASE :"database" TO :"role";
GRANT USAGE ON SCHEMA :"schema" TO :"role";
-- The workload's reads, inserts, updates and deletes (and EXPLAIN ANALYZE of
-- them, which executes them inside a rolled-back transaction).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"schema" TO :"role";
-- Serial and identity columns draw from sequences on insert.
GRANT USAGE ON ALL SEQUENCES IN SCHEMA :"schema" TO :"role";

RESET fkrollout.role;
