// Package plan holds the plan types and the plan file format, described
// here (types.go introduces the package). It links no SQL parser and no
// database driver, so workflow code can carry plans: migration SQL is read
// by package sqlplan, which also holds the entry points that take either
// format.
//
// Every caller goes through one entry point, sqlplan.Parse(text, format),
// which returns a Source (the plan plus what the linter needs to know about
// the text), and one review, (*Source).Lint(options). sqlplan.Load picks the
// format by extension (FormatForPath: .sql, .yaml/.yml, .json; anything else
// is an error), sqlplan.ParseAuto guesses it for text pasted inline. Text
// with nothing but whitespace and comments is refused (ErrEmptyPlan), and so
// is text that adds no foreign key (ErrNoForeignKeys), whatever the format.
//
// # Plan file (YAML or JSON)
//
//	name: add_master_tables_fks              # optional; Load uses the file name
//	lint:                                    # optional, see Lint severities
//	  strict: false
//	  rules: {missing-validate: warning}
//	expect:                                  # optional, see Expected figures
//	  foreign_keys: 45+
//	  check_constraints: 21
//	  tables: 16
//	  orphans: 0
//	  types_aligned: true
//	  queries: [no_unpaid_invoices]
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
// # Expected figures
//
// The expect: section states what the database must show once an
// environment's constraints are validated: validated foreign keys, CHECK
// constraints and tables in the environment's schemas, the planned
// constraints' orphans after remediation, whether every foreign key's
// column types match the referenced ones, and named runbook queries. A
// count is a number (exactly), "45+" (at least) or {min: 45, max: 60}.
// Queries are only named here: their SQL lives in the worker's
// configuration (expect.queries of the environment), never in a plan. A
// figure that does not hold opens a gate with the measured figures.
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
