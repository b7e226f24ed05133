package plan

// StatementKind classifies one statement of a migration file.
type StatementKind string

const (
	StmtAddForeignKey StatementKind = "add_foreign_key"
	StmtValidate      StatementKind = "validate_constraint"
	StmtBegin         StatementKind = "begin"
	StmtCommit        StatementKind = "commit"
	StmtRollback      StatementKind = "rollback"
	// StmtCreateTable is a CREATE TABLE: not run; its REFERENCES clauses
	// are taken as StmtAddForeignKey statements following it.
	StmtCreateTable StatementKind = "create_table"
	// StmtAddColumnRefs is ALTER TABLE … ADD COLUMN … REFERENCES: not taken.
	StmtAddColumnRefs StatementKind = "add_column_references"
	StmtOther         StatementKind = "other"
)

// Statement records what the linter needs to know about one statement (or,
// for an ALTER TABLE with several commands, one command; for a CREATE TABLE,
// the statement and then each foreign key taken from it).
type Statement struct {
	Kind StatementKind `json:"kind"`
	// Line is the 1-based line of the statement's first token (of the
	// constraint, for a foreign key inside CREATE TABLE).
	Line int `json:"line"`
	// Table and Constraint are set for additions and validations; Table
	// also for CREATE TABLE and ADD COLUMN.
	Table      TableName `json:"table,omitempty"`
	Constraint string    `json:"constraint,omitempty"`
	// FK indexes Source.Plan.ForeignKeys for additions, -1 otherwise.
	FK int `json:"fk"`
	// NotValid: the addition skips validation of existing rows.
	NotValid bool `json:"not_valid,omitempty"`
	// ExplicitOnDelete: ON DELETE was written (the parse tree cannot tell
	// an omitted clause from NO ACTION; the token stream can).
	ExplicitOnDelete bool `json:"explicit_on_delete,omitempty"`
	// DefaultName: the constraint was unnamed; Constraint is the name
	// PostgreSQL would give it.
	DefaultName bool `json:"default_name,omitempty"`
	// ImplicitRefColumns: REFERENCES without a column list (the referenced
	// table's primary key); the foreign key's RefColumns stay empty until
	// the catalog resolves them.
	ImplicitRefColumns bool `json:"implicit_ref_columns,omitempty"`
	// InCreateTable: the foreign key is a REFERENCES clause of a CREATE TABLE.
	InCreateTable bool `json:"in_create_table,omitempty"`
	// TakenFKs counts the foreign keys taken from a CREATE TABLE.
	TakenFKs int `json:"taken_fks,omitempty"`
	// Tx numbers the explicit BEGIN … COMMIT block holding the statement,
	// 0 outside any.
	Tx int `json:"tx"`
	// Detail names other statements ("CREATE INDEX", "ALTER TABLE DROP").
	Detail string `json:"detail,omitempty"`
}

// Source is a parsed plan file or migration: the plan plus, for SQL, the
// per-statement facts the linter needs.
type Source struct {
	Format     Format      `json:"format"`
	Plan       Plan        `json:"plan"`
	Statements []Statement `json:"statements,omitempty"`
	// HasPriorityHeaders: priorities came from "-- Priority N" comments.
	HasPriorityHeaders bool `json:"has_priority_headers,omitempty"`
	// LongIdentifiers lists identifiers over 63 bytes as written (PostgreSQL
	// truncates them silently), with their lines, from the statements that
	// add or validate foreign keys. The plan keeps them untruncated too.
	LongIdentifiers []LongIdent `json:"long_identifiers,omitempty"`
}

// LongIdent is an identifier PostgreSQL would truncate.
type LongIdent struct {
	Ident string `json:"ident"`
	Line  int    `json:"line"`
}

// MaxIdentLen is PostgreSQL's NAMEDATALEN-1.
const MaxIdentLen = 63
