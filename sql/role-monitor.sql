-- Optional: a read-only role for the production monitor's postgres sources
-- (monitor_dsn). It reads pg_stat_database and pg_stat_statements; it owns
-- nothing and can change nothing. docs/DATABASE-ROLE.md has the details.
--
--   psql "postgres://admin@db.example.com/apms" -v ON_ERROR_STOP=1 -q \
--     -v role=fkrollout_monitor -v database=apms -f sql/role-monitor.sql
--
-- Probes configured on a source (monitor.sources.<name>.probes) run as this
-- role too: grant SELECT on the tables they query, nothing more, e.g.
--   GRANT USAGE ON SCHEMA public TO fkrollout_monitor;
--   GRANT SELECT ON public.workflow_instances TO fkrollout_monitor;

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
-- Every user's statements in pg_stat_statements (others' are hidden
-- without it) and the other statistics views; no table data.
GRANT pg_read_all_stats TO :"role";

RESET fkrollout.role;
