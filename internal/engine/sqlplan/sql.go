package sqlplan

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// ParseSQL reads a migration file into a plan (Parse with plan.FormatSQL).
// Statements other than foreign key additions are not taken; plan.Source.Lint
// reports them.
func ParseSQL(sql string) (plan.Plan, error) {
	src, err := ParseSQLDetailed(sql)
	if err != nil {
		return plan.Plan{}, err
	}
	return src.Plan, nil
}

// ParseSQLDetailed is Parse(sql, plan.FormatSQL): the plan plus the statement
// facts plan.Source.Lint uses.
func ParseSQLDetailed(sql string) (*plan.Source, error) { return Parse(sql, plan.FormatSQL) }

type comment struct {
	text      string // without the leading "--", trimmed
	line      int
	lineStart bool // nothing but whitespace before it on its line
}

type header struct {
	pos int
	p   plan.Priority
}

// sqlFile is the state of parsing one migration file.
type sqlFile struct {
	text     string
	lines    lineIndex
	toks     []*pg_query.ScanToken
	comments []comment
	headers  []header
	src      *plan.Source
	tx       int
	inTx     bool
}

// span is where one statement is in the text.
type span struct {
	start, end int // byte offsets of the raw statement
	first      int // offset of its first token
	line       int
	tx         int // enclosing BEGIN block, 0 outside
}

// parseSQL reads a migration with PostgreSQL's own parser (pg_query).
//
// Priority rule: a comment "-- Priority N: NAME …" (N 1-4, or just a name)
// sets the priority of the additions after it. Additions before the first
// such header, or in a file without headers, are CRITICAL. Within a priority
// the file order is kept (Plan.Sorted is stable).
func parseSQL(sql string) (*plan.Source, error) {
	// Editors on Windows add a BOM the parser rejects; blank it out without
	// moving any offset.
	if strings.HasPrefix(sql, "\uFEFF") {
		sql = "   " + sql[3:]
	}
	sql, psql := blankPsql(sql)
	f := &sqlFile{text: sql, lines: newLineIndex(sql), src: &plan.Source{Format: plan.FormatSQL}}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		var pe *parser.Error
		if errors.As(err, &pe) && pe.Cursorpos > 0 {
			return nil, fmt.Errorf("parse SQL: line %d: %s", f.lines.line(byteOffset(sql, pe.Cursorpos-1)), pe.Message)
		}
		return nil, fmt.Errorf("parse SQL: %w", err)
	}
	scan, err := pg_query.Scan(sql)
	if err != nil {
		return nil, fmt.Errorf("scan SQL: %w", err)
	}
	f.toks = scan.GetTokens()
	if err := f.readComments(); err != nil {
		return nil, err
	}
	if len(tree.GetStmts()) == 0 && len(psql) == 0 {
		return nil, plan.ErrEmptyPlan
	}
	for _, raw := range tree.GetStmts() {
		if err := f.statement(raw); err != nil {
			return nil, err
		}
	}
	f.src.Statements = mergeByLine(f.src.Statements, psql)
	if len(f.src.Plan.ForeignKeys) == 0 {
		return nil, f.noForeignKeys()
	}
	return f.src, nil
}

// readComments collects "--" comments, priority headers and lint directives.
func (f *sqlFile) readComments() error {
	var opts plan.LintOptions
	directives := false
	for _, t := range f.toks {
		if t.Token != pg_query.Token_SQL_COMMENT {
			continue
		}
		start := int(t.Start)
		ls := strings.LastIndexByte(f.text[:start], '\n') + 1
		c := comment{
			text:      strings.TrimSpace(strings.TrimPrefix(f.text[start:t.End], "--")),
			line:      f.lines.line(start),
			lineStart: strings.TrimSpace(f.text[ls:start]) == "",
		}
		f.comments = append(f.comments, c)
		if p, ok := priorityHeader(c.text); ok {
			f.headers = append(f.headers, header{start, p})
		}
		ok, err := plan.ParseDirective(c.text, &opts)
		if err != nil {
			return fmt.Errorf("parse SQL: line %d: %w", c.line, err)
		}
		directives = directives || ok
	}
	f.src.HasPriorityHeaders = len(f.headers) > 0
	if directives {
		f.src.Plan.Lint = &opts
	}
	return nil
}

// noForeignKeys explains a file that parses but adds no foreign key.
func (f *sqlFile) noForeignKeys() error {
	n, addCol := 0, 0
	for _, st := range f.src.Statements {
		switch st.Kind {
		case plan.StmtBegin, plan.StmtCommit, plan.StmtRollback:
		case plan.StmtAddColumnRefs:
			addCol++
			n++
		default:
			n++
		}
	}
	msg := fmt.Sprintf("none of its %d statement(s) adds a foreign key (fkrollout takes ALTER TABLE … ADD [CONSTRAINT …] FOREIGN KEY and REFERENCES clauses of CREATE TABLE)", n)
	if addCol > 0 {
		msg += fmt.Sprintf("; %d ADD COLUMN … REFERENCES are not taken because the column does not exist before the migration runs", addCol)
	}
	return fmt.Errorf("%w: %s", plan.ErrNoForeignKeys, msg)
}

func (f *sqlFile) priorityAt(pos int) plan.Priority {
	p := plan.PriorityCritical
	for _, h := range f.headers {
		if h.pos < pos {
			p = h.p
		}
	}
	return p
}

func (f *sqlFile) add(st plan.Statement) { f.src.Statements = append(f.src.Statements, st) }

func (f *sqlFile) statement(raw *pg_query.RawStmt) error {
	sp := span{start: int(raw.StmtLocation), end: len(f.text)}
	if raw.StmtLen > 0 {
		sp.end = sp.start + int(raw.StmtLen)
	}
	sp.first = firstToken(f.toks, sp.start, sp.end)
	sp.line = f.lines.line(sp.first)
	if f.inTx {
		sp.tx = f.tx
	}
	node := raw.GetStmt()
	switch {
	case node.GetTransactionStmt() != nil:
		f.transaction(node, sp)
	case node.GetAlterTableStmt() != nil && node.GetAlterTableStmt().Objtype == pg_query.ObjectType_OBJECT_TABLE:
		return f.alterTable(node.GetAlterTableStmt(), sp)
	case node.GetCreateStmt() != nil && node.GetCreateStmt().GetRelation().GetRelpersistence() != "t":
		return f.createTable(node.GetCreateStmt(), sp)
	default:
		f.add(plan.Statement{Kind: plan.StmtOther, Line: sp.line, FK: -1, Tx: sp.tx, Detail: stmtName(node)})
	}
	return nil
}

func (f *sqlFile) transaction(node *pg_query.Node, sp span) {
	switch node.GetTransactionStmt().Kind {
	case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
		f.tx++
		f.inTx = true
		f.add(plan.Statement{Kind: plan.StmtBegin, Line: sp.line, FK: -1, Tx: f.tx})
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
		f.inTx = false
		f.add(plan.Statement{Kind: plan.StmtCommit, Line: sp.line, FK: -1, Tx: sp.tx})
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		f.inTx = false
		f.add(plan.Statement{Kind: plan.StmtRollback, Line: sp.line, FK: -1, Tx: sp.tx})
	default:
		f.add(plan.Statement{Kind: plan.StmtOther, Line: sp.line, FK: -1, Tx: sp.tx, Detail: stmtName(node)})
	}
}

func (f *sqlFile) alterTable(at *pg_query.AlterTableStmt, sp span) error {
	long, found := f.longIdents(sp)
	table := restoreTable(rangeVarName(at.GetRelation()), long)
	before := len(f.src.Statements)
	defer func() { f.keepLongIdents(found, f.src.Statements[before:]) }()
	for _, c := range at.GetCmds() {
		cmd := c.GetAlterTableCmd()
		if cmd == nil {
			continue
		}
		con := cmd.GetDef().GetConstraint()
		switch {
		case cmd.Subtype == pg_query.AlterTableType_AT_AddConstraint && con != nil && con.Contype == pg_query.ConstrType_CONSTR_FOREIGN:
			// The constraint's own tokens run from its location to the
			// comma ending this command (or the statement end).
			loc := int(con.Location)
			fk := fkClause{table: table, con: con, cols: stringList(con.GetFkAttrs()), start: loc, end: commandEnd(f.toks, loc, sp.end), line: sp.line}
			if err := f.addForeignKey(fk, sp, long); err != nil {
				return err
			}
		case cmd.Subtype == pg_query.AlterTableType_AT_ValidateConstraint:
			f.add(plan.Statement{Kind: plan.StmtValidate, Line: sp.line, FK: -1, Tx: sp.tx, Table: table, Constraint: restore(cmd.Name, long)})
		case cmd.Subtype == pg_query.AlterTableType_AT_AddColumn && hasForeignKey(cmd.GetDef().GetColumnDef()):
			col := cmd.GetDef().GetColumnDef()
			f.add(plan.Statement{Kind: plan.StmtAddColumnRefs, Line: sp.line, FK: -1, Tx: sp.tx, Table: table,
				Detail: "ADD COLUMN " + plan.QuoteIfNeeded(col.Colname) + " … REFERENCES " + refTablesOf(col)})
		default:
			f.add(plan.Statement{Kind: plan.StmtOther, Line: sp.line, FK: -1, Tx: sp.tx, Table: table,
				Detail: "ALTER TABLE " + strings.TrimPrefix(cmd.Subtype.String(), "AT_")})
		}
	}
	return nil
}

// createTable takes the REFERENCES clauses of a CREATE TABLE (column and
// table constraints); the statement itself is not run.
func (f *sqlFile) createTable(cs *pg_query.CreateStmt, sp span) error {
	long, found := f.longIdents(sp)
	table := restoreTable(rangeVarName(cs.GetRelation()), long)
	ct := len(f.src.Statements)
	defer func() { f.keepLongIdents(found, f.src.Statements[ct:]) }()
	f.add(plan.Statement{Kind: plan.StmtCreateTable, Line: sp.line, FK: -1, Tx: sp.tx, Table: table, Detail: "CREATE TABLE " + table.String()})
	var clauses []fkClause
	for _, e := range cs.GetTableElts() {
		if con := e.GetConstraint(); con != nil && con.Contype == pg_query.ConstrType_CONSTR_FOREIGN {
			loc := int(con.Location)
			clauses = append(clauses, fkClause{table: table, con: con, cols: stringList(con.GetFkAttrs()), start: loc, end: commandEnd(f.toks, loc, sp.end), inCreate: true})
			continue
		}
		col := e.GetColumnDef()
		if col == nil {
			continue
		}
		cons := col.GetConstraints()
		for i, n := range cons {
			con := n.GetConstraint()
			if con == nil || con.Contype != pg_query.ConstrType_CONSTR_FOREIGN {
				continue
			}
			// A column constraint ends at the next constraint of the column
			// or at the comma ending the column definition.
			loc := int(con.Location)
			end := commandEnd(f.toks, loc, sp.end)
			if i+1 < len(cons) {
				if next := int(cons[i+1].GetConstraint().GetLocation()); next > loc && next < end {
					end = next
				}
			}
			clauses = append(clauses, fkClause{table: table, con: con, cols: []string{col.Colname}, start: loc, end: end, inCreate: true})
		}
	}
	for _, c := range clauses {
		c.line = f.lines.line(c.start)
		if err := f.addForeignKey(c, sp, long); err != nil {
			return err
		}
	}
	f.src.Statements[ct].TakenFKs = len(clauses)
	return nil
}

// fkClause is one FOREIGN KEY / REFERENCES clause and where it is.
type fkClause struct {
	table      plan.TableName
	con        *pg_query.Constraint
	cols       []string // referencing columns as parsed (truncated)
	start, end int      // the clause's tokens
	line       int      // the line findings point at
	inCreate   bool
}

func (f *sqlFile) addForeignKey(c fkClause, sp span, long map[string]string) error {
	fk, st, err := foreignKeyFrom(f.toks, c)
	if err != nil {
		return fmt.Errorf("parse SQL: line %d: %w", f.lines.line(max(c.start, sp.first)), err)
	}
	if fk.Name == "" {
		// Computed from the names as PostgreSQL sees them (truncated).
		fk.Name = plan.ChooseForeignKeyName(c.table.Name, c.cols, f.nameTaken(c.table.Schema))
		st.DefaultName = true
	}
	fk.Name = restore(fk.Name, long)
	fk.RefTable = restoreTable(fk.RefTable, long)
	fk.Columns = restoreAll(fk.Columns, long)
	fk.RefColumns = restoreAll(fk.RefColumns, long)
	fk.Priority = f.priorityAt(sp.first)
	fk.Comment = commentAbove(f.comments, c.line)
	st.Constraint = fk.Name
	st.Line, st.Tx, st.FK, st.InCreateTable = c.line, sp.tx, len(f.src.Plan.ForeignKeys), c.inCreate
	f.src.Plan.ForeignKeys = append(f.src.Plan.ForeignKeys, fk)
	f.add(st)
	return nil
}

// nameTaken reports the names PostgreSQL's ChooseConstraintName would find
// used in schema: those of the file's earlier foreign keys there.
func (f *sqlFile) nameTaken(schema string) func(string) bool {
	return func(name string) bool {
		for _, fk := range f.src.Plan.ForeignKeys {
			if fk.Table.Schema == schema && fk.Name == name {
				return true
			}
		}
		return false
	}
}

// longIdents maps each identifier of the statement that PostgreSQL (and so
// pg_query) truncates to how it was written, so the plan carries the real
// name and lint can refuse it instead of rolling out a different one.
func (f *sqlFile) longIdents(sp span) (map[string]string, []plan.LongIdent) {
	var m map[string]string
	var found []plan.LongIdent
	for _, t := range f.toks {
		if int(t.Start) < sp.start || int(t.Start) >= sp.end || t.Token != pg_query.Token_IDENT {
			continue
		}
		name := f.text[t.Start:t.End]
		if strings.HasPrefix(name, `"`) {
			v, err := plan.ParseIdent(name)
			if err != nil {
				continue
			}
			name = v
		} else {
			name = foldIdent(name)
		}
		if len(name) <= plan.MaxIdentLen {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[plan.TruncateIdent(name)] = name
		found = append(found, plan.LongIdent{Ident: name, Line: f.lines.line(int(t.Start))})
	}
	return m, found
}

// keepLongIdents records the long identifiers of a statement that added or
// validated a foreign key; elsewhere they do not reach the rollout.
func (f *sqlFile) keepLongIdents(found []plan.LongIdent, stmts []plan.Statement) {
	for _, st := range stmts {
		if st.Kind == plan.StmtAddForeignKey || st.Kind == plan.StmtValidate {
			f.src.LongIdentifiers = append(f.src.LongIdentifiers, found...)
			return
		}
	}
}

func restore(s string, long map[string]string) string {
	if v, ok := long[s]; ok {
		return v
	}
	return s
}

func restoreAll(in []string, long map[string]string) []string {
	if len(long) == 0 {
		return in
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = restore(s, long)
	}
	return out
}

func restoreTable(t plan.TableName, long map[string]string) plan.TableName {
	return plan.TableName{Schema: restore(t.Schema, long), Name: restore(t.Name, long)}
}

func hasForeignKey(col *pg_query.ColumnDef) bool { return refTablesOf(col) != "" }

// refTablesOf lists the tables a column definition's REFERENCES name.
func refTablesOf(col *pg_query.ColumnDef) string {
	var out []string
	for _, n := range col.GetConstraints() {
		if con := n.GetConstraint(); con != nil && con.Contype == pg_query.ConstrType_CONSTR_FOREIGN {
			out = append(out, rangeVarName(con.GetPktable()).String())
		}
	}
	return strings.Join(out, ", ")
}

// foreignKeyFrom reads one clause. An unnamed constraint gets its name from
// the caller; REFERENCES without columns leaves RefColumns empty.
func foreignKeyFrom(toks []*pg_query.ScanToken, c fkClause) (plan.ForeignKey, plan.Statement, error) {
	con := c.con
	st := plan.Statement{Kind: plan.StmtAddForeignKey, Table: c.table, Constraint: con.Conname, NotValid: con.SkipValidation}
	fk := plan.ForeignKey{Name: con.Conname, Table: c.table, Columns: c.cols, Deferrable: con.Deferrable, InitiallyDeferred: con.Initdeferred}
	label := "foreign key on " + c.table.String()
	if fk.Name != "" {
		label = "constraint " + plan.QuoteIfNeeded(fk.Name)
	}
	fk.RefTable = rangeVarName(con.GetPktable())
	fk.RefColumns = stringList(con.GetPkAttrs())
	st.ImplicitRefColumns = len(fk.RefColumns) == 0
	if len(con.GetFkDelSetCols()) > 0 {
		return fk, st, fmt.Errorf("%s: ON DELETE SET NULL/SET DEFAULT with a column list is not supported", label)
	}
	var explicitDel, explicitUpd, explicitMatch bool
	var prev pg_query.Token
	for _, t := range toks {
		if int(t.Start) < c.start || int(t.Start) >= c.end || t.Token == pg_query.Token_SQL_COMMENT || t.Token == pg_query.Token_C_COMMENT {
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
			return fk, st, fmt.Errorf("%s: ON DELETE: %w", label, err)
		}
	}
	if explicitUpd {
		if fk.OnUpdate, err = actionFromCode(con.FkUpdAction); err != nil {
			return fk, st, fmt.Errorf("%s: ON UPDATE: %w", label, err)
		}
	}
	if explicitMatch {
		switch con.FkMatchtype {
		case "s":
			fk.Match = plan.MatchSimple
		case "f":
			fk.Match = plan.MatchFull
		case "p":
			fk.Match = plan.MatchPartial
		default:
			return fk, st, fmt.Errorf("%s: unknown MATCH code %q", label, con.FkMatchtype)
		}
	}
	st.ExplicitOnDelete = explicitDel
	return fk, st, nil
}

func actionFromCode(c string) (plan.Action, error) {
	switch c {
	case "a":
		return plan.ActionNoAction, nil
	case "r":
		return plan.ActionRestrict, nil
	case "c":
		return plan.ActionCascade, nil
	case "n":
		return plan.ActionSetNull, nil
	case "d":
		return plan.ActionSetDefault, nil
	}
	return "", fmt.Errorf("unknown action code %q", c)
}

func rangeVarName(rv *pg_query.RangeVar) plan.TableName {
	t := plan.TableName{Schema: rv.GetSchemaname(), Name: rv.GetRelname()}
	if t.Schema == "" {
		t.Schema = plan.DefaultSchema
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

// stmtName turns the parse node type into words ("CREATE INDEX", "COPY",
// "CREATE SEQ"); good enough to tell a reviewer what it is.
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
	return camelWords(strings.TrimSuffix(name, "Stmt"))
}

// camelWords turns "CreateSeq" into "CREATE SEQ".
func camelWords(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// priorityHeader recognises "Priority 1: CRITICAL - Workflow Core Integrity",
// "Priority 2", "Priority: HIGH" (case-insensitive).
func priorityHeader(text string) (plan.Priority, bool) {
	f := strings.Fields(strings.NewReplacer(":", " ", "-", " ").Replace(text))
	if len(f) < 2 || !strings.EqualFold(f[0], "priority") {
		return 0, false
	}
	if n, err := strconv.Atoi(f[1]); err == nil {
		if plan.Priority(n).Valid() {
			return plan.Priority(n), true
		}
		return 0, false
	}
	var p plan.Priority
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

// commandEnd is the offset of the first ',' at or after start at the same
// parenthesis depth (the next ALTER TABLE command or CREATE TABLE element),
// of the ')' closing the enclosing list, or end.
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
			if depth < 0 {
				return int(t.Start)
			}
		case pg_query.Token_ASCII_44:
			if depth == 0 {
				return int(t.Start)
			}
		}
	}
	return end
}

// foldIdent folds a bare identifier as PostgreSQL does: ASCII letters only.
func foldIdent(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// copyFromStdin is pg_dump's "COPY t (cols) FROM stdin;" line, after which
// data rows follow up to a line "\.".
var copyFromStdin = regexp.MustCompile(`(?i)^\s*COPY\s.*\sFROM\s+stdin\s*;\s*$`)

// blankPsql replaces what only psql understands with spaces, keeping every
// offset and line: meta-command lines (pg_dump writes \restrict, \connect)
// and COPY … FROM stdin data. Each meta-command becomes a statement so lint
// can say it was ignored. A line inside a string or function body that
// starts with a backslash is blanked too; such bodies are never run.
func blankPsql(sql string) (string, []plan.Statement) {
	var stmts []plan.Statement
	b := []byte(sql)
	inCopy := false
	line := 0
	for off := 0; off < len(b); {
		nl := bytes.IndexByte(b[off:], '\n')
		eol := len(b)
		if nl >= 0 {
			eol = off + nl
		}
		line++
		text := strings.TrimSpace(string(b[off:eol]))
		switch {
		case inCopy:
			inCopy = text != `\.`
			blank(b[off:eol])
		case strings.HasPrefix(text, `\`):
			cmd, _, _ := strings.Cut(text, " ")
			stmts = append(stmts, plan.Statement{Kind: plan.StmtOther, Line: line, FK: -1, Detail: "psql meta-command " + cmd})
			blank(b[off:eol])
		case copyFromStdin.MatchString(text):
			inCopy = true
		}
		off = eol + 1
	}
	return string(b), stmts
}

func blank(b []byte) {
	for i := range b {
		if b[i] != '\r' {
			b[i] = ' '
		}
	}
}

// mergeByLine inserts extra statements among stmts in line order; statements
// on the same line keep their order.
func mergeByLine(stmts, extra []plan.Statement) []plan.Statement {
	if len(extra) == 0 {
		return stmts
	}
	out := append(stmts, extra...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
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
