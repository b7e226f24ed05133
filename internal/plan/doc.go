// Package plan reads and writes two formats, described here (types.go
// introduces the package; the lead may lift this text into the README).
//
// # Plan file (YAML or JSON)
//
//	name: add_master_tables_fks              # optional; Load uses the file name
//	foreign_keys:
//	  - name: fk_workflow_instances_config_version
//	    table: public.workflow_instances      # schema optional (default public)
//	    columns: [config_version_id]
//	    references: public.config_versions
//	    ref_columns: [id]                     # required: the referenced key is never guessed
//	    on_delete: RESTRICT                   # lint requires it explicit
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
// JSON is accepted as YAML. EncodeYAML writes this format back faithfully.
//
// Encoded with encoding/json (as Temporal carries it) a TableName is the
// string form with quoting where needed, so json.Marshal/Unmarshal of a Plan
// round-trips exactly.
//
// # Migration SQL
//
// ParseSQL reads the seeds' migration format with PostgreSQL's own parser
// (pg_query): ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY … [NOT VALID] and
// ALTER TABLE … VALIDATE CONSTRAINT …. Priority comes from comment headers
// "-- Priority N: NAME - description" (or "-- Priority N", "-- Priority:
// NAME"); each addition takes the last header above it. Additions before the
// first header, or in a file without headers, are CRITICAL; order within a
// priority is file order. The whole-line "--" comment block directly above
// an addition (no blank line in between) becomes its Comment. An omitted ON
// DELETE / ON UPDATE / MATCH clause stays empty (the token stream tells it
// apart from an explicit NO ACTION / SIMPLE), so lint can insist on an
// explicit ON DELETE.
//
// Generate writes the same format (every table schema-qualified so the file
// does not depend on search_path) and ParseSQL reads it back to p.Sorted().
package plan
