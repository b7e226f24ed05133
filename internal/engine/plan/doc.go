// Package plan reads and writes two formats, described here (types.go
// introduces the package; the lead may lift this text into the README).
//
// Every caller goes through one entry point, Parse(text, format), which
// returns a Source (the plan plus what the linter needs to know about the
// text), and one review, (*Source).Lint(options). Load picks the format by
// extension (FormatForPath: .sql, .yaml/.yml, .json; anything else is an
// error), ParseAuto guesses it for text pasted inline. Text with nothing
// but whitespace and comments is refused (ErrEmptyPlan), and so is text that
// adds no foreign key (ErrNoForeignKeys), whatever the format.
//
// # Plan file (YAML or JSON)
//
//	name: add_master_tables_fks              # optional; Load uses the file name
//	lint:                                    # optional, see Lint severities
//	  strict: false
//	  rules: {missing-validate: warning}
//	foreign_keys:
//	  - name: fk_workflow_instances_config_version
//	    table: public.workflow_instances      # schema optional (default public)
//	    columns: [config_version_id]
//	    references: public.config_versions
//	    ref_columns: [id]                     # optional: omitted means the primary key
//	    on_delete: RESTRICT                   # optional: omitted means NO ACTION
//	    on_update: NO ACTION                  # optional
//	    match: SIMPLE                         # optional: SIMPLE | FULL
//	    deferrable: false                     # optional
//	    initially_deferred: false             # optional, needs deferrable
//	    priority: CRITICAL                    # CRITICAL|HIGH|MEDIUM|LOW or 1..4; default CRITICAL
//	    comment: Workflow instances must reference valid config version
//
// Identifiers (name, table, references, columns, ref_columns) follow SQL
// rules: bare words are folded to lower case, double-quoted ones are kept
// exactly, and "" inside quotes is one quote character. Tables are
// "table", "schema.table" or quoted parts such as `"My Schema"."Odd.Table"`
// (in YAML, put such a value in single quotes). A table may also be written
// as a mapping {schema: My Schema, name: Odd.Table}, whose values are taken
// literally (catalog spelling, no folding). Actions accept any spacing or
// case ("set_null", "Set Null"). Unknown fields are errors naming the field.
// JSON is accepted as YAML. EncodeYAML writes this format back faithfully,
// lint section included.
//
// Encoded with encoding/json (as Temporal carries it) a TableName is the
// string form with quoting where needed, so json.Marshal/Unmarshal of a Plan
// round-trips exactly, its lint options included.
//
// # Migration SQL
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
// shortens it (DefaultForeignKeyName), with _fkey1, _fkey2, … when an
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
// Generate writes the seeds' format (every table schema-qualified so the
// file does not depend on search_path) and ParseSQL reads it back to
// p.Sorted().
//
// # Lint severities
//
// An error stops the rollout; a warning and an info are shown. What the
// rollout itself makes safe is info, not an error: a missing NOT VALID, a
// missing VALIDATE, add and validate in one transaction, a missing ON
// DELETE, an unnamed constraint (the finding names the default), REFERENCES
// without columns, statements that are not run. Real problems stay errors:
// column count mismatch, MATCH PARTIAL, INITIALLY DEFERRED without
// DEFERRABLE, duplicate names, identifiers over 63 bytes, invalid
// priorities. Rules lists every rule id with its default severity
// (`fkrollout lint --rules`).
//
// Severities can be changed per rule to error, warning, info or off, and
// "strict" raises missing-not-valid, missing-on-delete, missing-name and
// implicit-ref-columns to error (the checklist before fkrollout made them
// safe). Three places set them: the caller (the worker's configuration,
// the command line) as the LintOptions passed to Lint; a plan file's lint:
// section (strict: true, rules: {id: severity}); and a migration's directive
// comments, anywhere in the file, one or more items per line separated by
// spaces or commas:
//
//	-- fkrollout:lint strict
//	-- fkrollout:lint missing-on-delete=error, missing-validate=off
//
// A plan may tighten any rule and decide what the caller left alone, but
// for a rule the caller set (strict included) the stricter of the two
// wins, and a plan never lowers a finding that is an error by nature; only
// the caller can. parse-error, lint-options and name-too-long cannot be
// overridden at all. Unknown rule ids and severities are errors naming them.
package plan
