package plan

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
)

// StatementKind classifies one statement of a migration file.
type StatementKind string

const (
	StmtAddForeignKey StatementKind = "add_foreign_key"
	StmtValidate      StatementKind = "validate_constraint"
	StmtBegin         StatementKind = "begin"
	StmtCommit        StatementKind = "commit"
	StmtRollback      StatementKind = "rollback"
	StmtOther         StatementKind = "other"
)

// Statement records what the linter needs to know about one statement (or,
// for an ALTER TABLE with several commands, one command).
type Statement struct {
	Kind StatementKind `json:"kind"`
	// Line is the 1-based line of the statement's first token.
	Line int `json:"line"`
	// Table and Constraint are set for additions and validations.
	Table      TableName `json:"table,omitempty"`
	Constraint string    `json:"constraint,omitempty"`
	// FK indexes Source.Plan.ForeignKeys for additions, -1 otherwise.
	FK int `json:"fk"`
	// NotValid: the addition skips validation of existing rows.
	NotValid bool `json:"not_valid,omitempty"`
	// ExplicitOnDelete: ON DELETE was written (the parse tree cannot tell
	// an omitted clause from NO ACTION; the token stream can).
	ExplicitOnDelete bool `json:"explicit_on_delete,omitempty"`
	// Tx numbers the explicit BEGIN … COMMIT block holding the statement,
	// 0 outside any.
	Tx int `json:"tx"`
	// Detail names other statements ("CREATE INDEX", "ALTER TABLE DROP").
	Detail string `json:"detail,omitempty"`
}

// Source is a parsed migration file: the plan plus per-statement facts.
type Source struct {
	Plan       Plan        `json:"plan"`
	Statements []Statement `json:"statements"`
	// HasPriorityHeaders: priorities came from "-- Priority N" comments.
	HasPriorityHeaders bool `json:"has_priority_headers"`
	// LongIdentifiers lists identifiers over 63 bytes as written (PostgreSQL
	// truncates them silently), with their lines.
	LongIdentifiers []LongIdent `json:"long_identifiers,omitempty"`
}

// LongIdent is an identifier PostgreSQL would truncate.
type LongIdent struct {
	Ident string `json:"ident"`
	Line  int    `json:"line"`
}

// MaxIdentLen is PostgreSQL's NAMEDATALEN-1.
const MaxIdentLen = 63

// ParseSQL reads a migration file in the seeds' format (ALTER TABLE … ADD
// CONSTRAINT … FOREIGN KEY … NOT VALID, then VALIDATE CONSTRAINT) into a
// plan. Statements other than FK additions are ignored here; LintSQL
// reports them.
func ParseSQL(sql string) (Plan, error) {
	src, err := ParseSQLDetailed(sql)
	if err != nil {
		return Plan{}, err
	}
	return src.Plan, nil
}

type comment struct {
	text      string // without the leading "--", trimmed
	line      int
	lineStart bool // nothing but whitespace before it on its line
}

// ParseSQLDetailed is ParseSQL plus the statement facts LintSQL uses.
//
// Priority rule: a comment "-- Priority N: NAME …" (N 1-4, or just a name)
// sets the priority of the additions after it. Additions before the first
// such header, or in a file without headers, are CRITICAL. Within a priority
// the file order is kept (Plan.Sorted is stable).
func ParseSQLDetailed(sql string) (*Source, error) {
	// Editors on Windows add a BOM the parser rejects; blank it out without
	// moving any offset.
	if strings.HasPrefix(sql, "\uFEFF") {
		sql = "   " + sql[3:]
	}
	lines := newLineIndex(sql)
	tree, err := pg_query.Parse(sql)
	if err != nil {
		var pe *parser.Error
		if errors.As(err, &pe) && pe.Cursorpos > 0 {
			return nil, fmt.Errorf("parse SQL: line %d: %s", lines.line(byteOffset(sql, pe.Cursorpos-1)), pe.Message)
		}
		return nil, fmt.Errorf("parse SQL: %w", err)
	}
	scan, err := pg_query.Scan(sql)
	if err != nil {
		return nil, fmt.Errorf("scan SQL: %w", err)
	}
	toks := scan.GetTokens()

	src := &Source{}
	var comments []comment
	for _, t := range toks {
		switch t.Token {
		case pg_query.Token_SQL_COMMENT:
			start := int(t.Start)
			ls := strings.LastIndexByte(sql[:start], '\n') + 1
			comments = append(comments, comment{
				text:      strings.TrimSpace(strings.TrimPrefix(sql[start:t.End], "--")),
				line:      lines.line(start),
				lineStart: strings.TrimSpace(sql[ls:start]) == "",
			})
		case pg_query.Token_IDENT:
			raw := sql[t.Start:t.End]
			name := raw
			if strings.HasPrefix(raw, `"`) {
				if v, err := ParseIdent(raw); err == nil {
					name = v
				}
			}
			if len(name) > MaxIdentLen {
				src.LongIdentifiers = append(src.LongIdentifiers, LongIdent{Ident: name, Line: lines.line(int(t.Start))})
			}
		}
	}

	// Headers in source order, so each addition takes the last one above it.
	type header struct {
		pos int
		p   Priority
	}
	var headers []header
	for _, t := range toks {
		if t.Token != pg_query.Token_SQL_COMMENT {
			continue
		}
		if p, ok := priorityHeader(strings.TrimSpace(strings.TrimPrefix(sql[t.Start:t.End], "--"))); ok {
			headers = append(headers, header{int(t.Start), p})
		}
	}
	src.HasPriorityHeaders = len(headers) > 0
	priorityAt := func(pos int) Priority {
		p := PriorityCritical
		for _, h := range headers {
			if h.pos < pos {
				p = h.p
			}
		}
		return p
	}

	tx, txDepth := 0, false
	for _, raw := range tree.GetStmts() {
		start := int(raw.StmtLocation)
		end := len(sql)
		if raw.StmtLen > 0 {
			end = start + int(raw.StmtLen)
		}
		first := firstToken(toks, start, end)
		line := lines.line(first)
		cur := 0
		if txDepth {
			cur = tx
		}
		node := raw.GetStmt()
		switch {
		case node.GetTransactionStmt() != nil:
			ts := node.GetTransactionStmt()
			switch ts.Kind {
			case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
				tx++
				txDepth = true
				src.Statements = append(src.Statements, Statement{Kind: StmtBegin, Line: line, FK: -1, Tx: tx})
			case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
				txDepth = false
				src.Statements = append(src.Statements, Statement{Kind: StmtCommit, Line: line, FK: -1, Tx: cur})
			case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
				txDepth = false
				src.Statements = append(src.Statements, Statement{Kind: StmtRollback, Line: line, FK: -1, Tx: cur})
			default:
				src.Statements = append(src.Statements, Statement{Kind: StmtOther, Line: line, FK: -1, Tx: cur, Detail: stmtName(node)})
			}
		case node.GetAlterTableStmt() != nil && node.GetAlterTableStmt().Objtype == pg_query.ObjectType_OBJECT_TABLE:
			at := node.GetAlterTableStmt()
			table := rangeVarName(at.GetRelation())
			for _, c := range at.GetCmds() {
				cmd := c.GetAlterTableCmd()
				if cmd == nil {
					continue
				}
				con := cmd.GetDef().GetConstraint()
				switch {
				case cmd.Subtype == pg_query.AlterTableType_AT_AddConstraint && con != nil && con.Contype == pg_query.ConstrType_CONSTR_FOREIGN:
					// The constraint's own tokens run from its location to
					// the comma ending this command (or the statement end).
					cEnd := commandEnd(toks, int(con.Location), end)
					fk, st, err := foreignKeyFrom(toks, table, con, int(con.Location), cEnd)
					if err != nil {
						return nil, fmt.Errorf("parse SQL: line %d: %w", lines.line(max(int(con.Location), first)), err)
					}
					fk.Priority = priorityAt(first)
					fk.Comment = commentAbove(comments, line)
					st.Line, st.Tx, st.FK = line, cur, len(src.Plan.ForeignKeys)
					src.Plan.ForeignKeys = append(src.Plan.ForeignKeys, fk)
					src.Statements = append(src.Statements, st)
				case cmd.Subtype == pg_query.AlterTableType_AT_ValidateConstraint:
					src.Statements = append(src.Statements, Statement{Kind: StmtValidate, Line: line, FK: -1, Tx: cur, Table: table, Constraint: cmd.Name})
				default:
					src.Statements = append(src.Statements, Statement{Kind: StmtOther, Line: line, FK: -1, Tx: cur, Table: table,
						Detail: "ALTER TABLE " + strings.TrimPrefix(cmd.Subtype.String(), "AT_")})
				}
			}
		default:
			src.Statements = append(src.Statements, Statement{Kind: StmtOther, Line: line, FK: -1, Tx: cur, Detail: stmtName(node)})
		}
	}
	return src, nil
}

func foreignKeyFrom(toks []*pg_query.ScanToken, table TableName, con *pg_query.Constraint, start, end int) (ForeignKey, Statement, error) {
	st := Statement{Kind: StmtAddForeignKey, Table: table, Constraint: con.Conname, NotValid: con.SkipValidation}
	fk := ForeignKey{Name: con.Conname, Table: table, Deferrable: con.Deferrable, InitiallyDeferred: con.Initdeferred}
	if fk.Name == "" {
		return fk, st, fmt.Errorf("foreign key on %s has no name (write ADD CONSTRAINT name FOREIGN KEY …)", table)
	}
	fk.RefTable = rangeVarName(con.GetPktable())
	fk.Columns = stringList(con.GetFkAttrs())
	fk.RefColumns = stringList(con.GetPkAttrs())
	if len(fk.RefColumns) == 0 {
		return fk, st, fmt.Errorf("constraint %s: REFERENCES %s needs explicit ref columns (the referenced key is not guessed)", fk.Name, fk.RefTable)
	}
	if len(con.GetFkDelSetCols()) > 0 {
		return fk, st, fmt.Errorf("constraint %s: ON DELETE SET NULL/SET DEFAULT with a column list is not supported", fk.Name)
	}
	var explicitDel, explicitUpd, explicitMatch bool
	var prev pg_query.Token
	for _, t := range toks {
		if int(t.Start) < start || int(t.Start) >= end || t.Token == pg_query.Token_SQL_COMMENT || t.Token == pg_query.Token_C_COMMENT {
			continue
		}
		switch {
		case prev == pg_query.Token_ON && t.Token == pg_query.Token_DELETE_P:
			explicitDel = true
		case prev == pg_query.Token_ON && t.Token == pg_query.Token_UPDATE:
			explicitUpd = true
		case t.Token == pg_query.Token_MATCH:
			explicitMatch = true
		}
		prev = t.Token
	}
	var err error
	if explicitDel {
		if fk.OnDelete, err = actionFromCode(con.FkDelAction); err != nil {
			return fk, st, fmt.Errorf("constraint %s: ON DELETE: %w", fk.Name, err)
		}
	}
	if explicitUpd {
		if fk.OnUpdate, err = actionFromCode(con.FkUpdAction); err != nil {
			return fk, st, fmt.Errorf("constraint %s: ON UPDATE: %w", fk.Name, err)
		}
	}
	if explicitMatch {
		switch con.FkMatchtype {
		case "s":
			fk.Match = MatchSimple
		case "f":
			fk.Match = MatchFull
		case "p":
			fk.Match = MatchPartial
		default:
			return fk, st, fmt.Errorf("constraint %s: unknown MATCH code %q", fk.Name, con.FkMatchtype)
		}
	}
	st.ExplicitOnDelete = explicitDel
	return fk, st, nil
}

func actionFromCode(c string) (Action, error) {
	switch c {
	case "a":
		return ActionNoAction, nil
	case "r":
		return ActionRestrict, nil
	case "c":
		return ActionCascade, nil
	case "n":
		return ActionSetNull, nil
	case "d":
		return ActionSetDefault, nil
	}
	return "", fmt.Errorf("unknown action code %q", c)
}

func rangeVarName(rv *pg_query.RangeVar) TableName {
	t := TableName{Schema: rv.GetSchemaname(), Name: rv.GetRelname()}
	if t.Schema == "" {
		t.Schema = DefaultSchema
	}
	return t
}

func stringList(nodes []*pg_query.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.GetString_().GetSval())
	}
	return out
}

// stmtName turns the parse node type into words: "CreateIndexStmt"-like
// names become "IndexStmt"; good enough to tell a reviewer what it is.
func stmtName(n *pg_query.Node) string {
	if n == nil || n.Node == nil {
		return "empty statement"
	}
	name := fmt.Sprintf("%T", n.Node)                // *pg_query.Node_IndexStmt
	name = name[strings.LastIndexByte(name, '_')+1:] // IndexStmt
	switch name {
	case "IndexStmt":
		return "CREATE INDEX"
	case "DropStmt":
		return "DROP"
	case "UpdateStmt":
		return "UPDATE"
	case "DeleteStmt":
		return "DELETE"
	case "InsertStmt":
		return "INSERT"
	case "CreateStmt":
		return "CREATE TABLE"
	case "VariableSetStmt":
		return "SET"
	case "SelectStmt":
		return "SELECT"
	}
	return strings.TrimSuffix(name, "Stmt")
}

// priorityHeader recognises "Priority 1: CRITICAL - Workflow Core Integrity",
// "Priority 2", "Priority: HIGH" (case-insensitive).
func priorityHeader(text string) (Priority, bool) {
	f := strings.Fields(strings.NewReplacer(":", " ", "-", " ").Replace(text))
	if len(f) < 2 || !strings.EqualFold(f[0], "priority") {
		return 0, false
	}
	if n, err := strconv.Atoi(f[1]); err == nil {
		if Priority(n).Valid() {
			return Priority(n), true
		}
		return 0, false
	}
	var p Priority
	if err := p.UnmarshalText([]byte(f[1])); err == nil {
		return p, true
	}
	return 0, false
}

// commentAbove returns the block of whole-line "--" comments ending on the
// line just above stmtLine, stopping at blank lines, separators ("-- ===")
// and priority headers.
func commentAbove(cs []comment, stmtLine int) string {
	var block []string
	want := stmtLine - 1
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		if c.line > want {
			continue
		}
		if c.line < want || !c.lineStart || isSeparator(c.text) {
			break
		}
		if _, ok := priorityHeader(c.text); ok {
			break
		}
		block = append([]string{c.text}, block...)
		want--
	}
	return strings.Join(block, "\n")
}

func isSeparator(s string) bool {
	return s != "" && strings.Trim(s, "=-*#~_ ") == ""
}

// commandEnd is the offset of the first top-level ',' at or after start (the
// next ALTER TABLE command), or end.
func commandEnd(toks []*pg_query.ScanToken, start, end int) int {
	depth := 0
	for _, t := range toks {
		if int(t.Start) < start {
			continue
		}
		if int(t.Start) >= end {
			break
		}
		switch t.Token {
		case pg_query.Token_ASCII_40:
			depth++
		case pg_query.Token_ASCII_41:
			depth--
		case pg_query.Token_ASCII_44:
			if depth == 0 {
				return int(t.Start)
			}
		}
	}
	return end
}

func firstToken(toks []*pg_query.ScanToken, start, end int) int {
	for _, t := range toks {
		if int(t.Start) >= start && int(t.Start) < end && t.Token != pg_query.Token_SQL_COMMENT && t.Token != pg_query.Token_C_COMMENT {
			return int(t.Start)
		}
	}
	return start
}

// byteOffset converts PostgreSQL's character position to a byte offset.
func byteOffset(s string, chars int) int {
	n := 0
	for i := range s {
		if n == chars {
			return i
		}
		n++
	}
	return len(s)
}

type lineIndex []int // byte offsets where lines start

func newLineIndex(s string) lineIndex {
	idx := lineIndex{0}
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			idx = append(idx, i+1)
		}
	}
	return idx
}

// line is the 1-based line holding byte offset off.
func (l lineIndex) line(off int) int {
	return sort.Search(len(l), func(i int) bool { return l[i] > off })
}
