// Package sqlplan reads a team's migration SQL into a plan, and holds the
// entry points that read a plan in any format (Parse, Load, ParseAuto): the
// plan file format and the types are in package plan, which links no
// parser.
//
// fkrollout takes the foreign keys out of the migration a team already has
// and rolls each out safely itself: ADD CONSTRAINT … NOT VALID (a short
// lock, no scan), orphan remediation, then VALIDATE CONSTRAINT. It runs no
// statement of the file. The file is read with PostgreSQL's own parser
// (pg_query), so any dialect PostgreSQL accepts is read, including what
// Prisma, Rails, Django and pg_dump write:
//
//   - ALTER TABLE [ONLY] [IF EXISTS] t ADD [CONSTRAINT name] FOREIGN KEY
//     (cols) REFERENCES rt [(cols)] [MATCH …] [ON DELETE …] [ON UPDATE …]
//     [[NOT] DEFERRABLE] [INITIALLY …] [NOT VALID], several ADD commands in
//     one statement allowed. ONLY and IF EXISTS do not change the plan: the
//     key is added to the table itself, which the catalog check requires.
//   - REFERENCES in CREATE TABLE, on a column or as a table constraint. The
//     foreign keys are taken; the CREATE TABLE is not run, so the table must
//     already exist (the catalog check refuses otherwise).
//   - ALTER TABLE … ADD COLUMN … REFERENCES is not taken: the column does
//     not exist before the migration runs (a warning says so).
//
// An unnamed constraint gets the name PostgreSQL would give it,
// <table>_<col1>_<col2>…_fkey shortened to 63 bytes exactly as PostgreSQL
// shortens it (plan.DefaultForeignKeyName), with _fkey1, _fkey2, … when an
// earlier foreign key of the file in the same schema holds the name.
// REFERENCES without a column list means the referenced table's primary
// key: the plan leaves RefColumns empty and catalog.ResolveReferences fills
// it in from the live database (the catalog check resolves it too). An
// omitted ON DELETE / ON UPDATE is NO ACTION, as in PostgreSQL (pg_dump
// never writes ON DELETE NO ACTION); an omitted MATCH is SIMPLE. Everything
// else in the file (SET, SELECT set_config, CREATE INDEX, BEGIN/COMMIT,
// psql meta-commands such as pg_dump's \restrict, COPY … FROM stdin data)
// is reported and ignored, never a parse error.
//
// Identifiers over 63 bytes, which PostgreSQL (and pg_query) truncate
// silently, are kept in the plan as written so that every path refuses
// them, including a plan passed around as JSON.
//
// Priority comes from comment headers "-- Priority N: NAME - description"
// (or "-- Priority N", "-- Priority: NAME"); each addition takes the last
// header above it. Additions before the first header, or in a file without
// headers, are CRITICAL; order within a priority is file order. The
// whole-line "--" comment block directly above an addition (no blank line in
// between) becomes its Comment.
//
// plan.Generate writes the hand-written format of sql/migration.sql (every
// table schema-qualified so the file does not depend on search_path) and
// ParseSQL reads it back to p.Sorted().
package sqlplan
