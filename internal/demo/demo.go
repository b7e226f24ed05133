// Package demo builds the APMS demo database (an approval-workflow
// application): the schema before the rollout (sqlassets.Schema, from
// sql/schema.sql), consistent data generated set-based (INSERT ... SELECT
// generate_series, millions of rows in minutes) and, on request, orphan rows
// for chosen foreign keys so the audit and remediation have something to
// find.
package demo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

// Options sizes the generated data.
type Options struct {
	// Workspaces is the number of workspaces (the first is XLSMART-AVIAT).
	Workspaces int `json:"workspaces"`
	// WorkflowsPerWorkspace is the scale: every runtime table grows with it.
	WorkflowsPerWorkspace int `json:"workflows_per_workspace"`
	// Seed makes ids differ between runs; the same seed gives the same ids.
	Seed int64 `json:"seed"`
	// Orphans maps a plan foreign-key name to the number of orphan child
	// rows to inject after seeding.
	Orphans map[string]int `json:"orphans,omitempty"`
}

// Counts is rows per table after seeding.
type Counts map[string]int64

// Tables lists the demo tables, parents before children.
var Tables = []string{
	"workspaces", "config_versions", "atp_scope_master", "vendor_master",
	"approval_role_master", "approval_policy_master", "approval_policy_stages",
	"cluster_master", "cluster_approver_master", "workflow_instances",
	"workflow_stages", "workflow_stage_actions", "atp_submissions",
	"atp_submission_documents", "punchlists", "punchlist_items", "approver_overrides",
}

// Per-workspace master sizes and per-workflow fan-out.
const (
	configsPerWS   = 3 // the last one is ACTIVE
	scopesPerWS    = 5
	vendorsPerWS   = 5
	rolesPerWS     = 4
	policiesPerWS  = 2
	stagesPerPol   = 3
	clustersPerWS  = 3
	approversPerCl = 2
	stagesPerWF    = 3
	docsPerSub     = 2
	wfPerPunch     = 2 // one punchlist per 2 workflows
	itemsPerPunch  = 3
	wfPerOverride  = 5 // one override per 5 workflows
)

// Setup creates the demo schema in an empty database.
func Setup(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, sqlassets.Schema); err != nil {
		return fmt.Errorf("demo setup: apply schema: %w", err)
	}
	return nil
}

// Seed fills the schema with consistent data (no orphans, every CHECK
// satisfied), injects the requested orphans, analyzes, and returns counts.
// Ids are deterministic uuids derived from (seed, kind, number) so children
// can compute their parents' ids without joins.
func Seed(ctx context.Context, pool *pgxpool.Pool, o Options) (Counts, error) {
	if o.Workspaces < 1 {
		return nil, fmt.Errorf("demo seed: workspaces must be at least 1, got %d", o.Workspaces)
	}
	if o.WorkflowsPerWorkspace < 0 {
		return nil, fmt.Errorf("demo seed: workflows per workspace must not be negative, got %d", o.WorkflowsPerWorkspace)
	}
	for name, n := range o.Orphans {
		if _, err := findFK(name); err != nil {
			return nil, fmt.Errorf("demo seed: %w", err)
		}
		if n < 0 {
			return nil, fmt.Errorf("demo seed: orphans for %s must not be negative, got %d", name, n)
		}
	}
	W := o.WorkflowsPerWorkspace
	total := o.Workspaces * W
	args := pgx.NamedArgs{"seed": fmt.Sprint(o.Seed), "nws": o.Workspaces, "wpw": W, "total": total}
	for _, st := range seedStatements {
		if _, err := pool.Exec(ctx, st.sql, args); err != nil {
			return nil, fmt.Errorf("demo seed %s: %w", st.table, err)
		}
	}
	for name, n := range o.Orphans {
		if err := InjectOrphans(ctx, pool, name, n); err != nil {
			return nil, err
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		return nil, fmt.Errorf("demo seed: analyze: %w", err)
	}
	return CountRows(ctx, pool)
}

// CountRows returns the row count of every demo table.
func CountRows(ctx context.Context, pool *pgxpool.Pool) (Counts, error) {
	c := Counts{}
	for _, t := range Tables {
		var n int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{"public", t}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		c[t] = n
	}
	return c, nil
}

type seedStatement struct{ table, sql string }

// uuidSQL is the SQL expression of a deterministic uuid text for row n of a
// kind: the same @seed reproduces the same ids.
func uuidSQL(kind, n string) string {
	return fmt.Sprintf("md5(@seed::text || ':%s:' || (%s)::text)::uuid::text", kind, n)
}

var seedStatements = []seedStatement{
	{"workspaces", `INSERT INTO workspaces (id, code, name, status)
SELECT ` + uuidSQL("ws", "g") + `,
       CASE WHEN g = 1 THEN 'XLSMART-AVIAT' ELSE 'WS-' || lpad(g::text, 5, '0') END,
       CASE WHEN g = 1 THEN 'XLSmart Aviat' ELSE 'Workspace ' || g END,
       'ACTIVE'
FROM generate_series(1, @nws::int) g`},
	{"config_versions", fmt.Sprintf(`INSERT INTO config_versions (id, workspace_id, version_number, status, description, created_by, activated_at)
SELECT `+uuidSQL("cv", "g")+`, `+uuidSQL("ws", "(g-1)/%[1]d+1")+`, (g-1)%%%[1]d+1,
       CASE WHEN (g-1)%%%[1]d+1 = %[1]d THEN 'ACTIVE' ELSE 'SUPERSEDED' END,
       'config v' || ((g-1)%%%[1]d+1), 'seed',
       now() - ((%[1]d - (g-1)%%%[1]d) || ' days')::interval
FROM generate_series(1, @nws::int * %[1]d) g`, configsPerWS)},
	{"atp_scope_master", fmt.Sprintf(`INSERT INTO atp_scope_master (id, workspace_id, code, name, atp_category)
SELECT `+uuidSQL("sc", "g")+`, `+uuidSQL("ws", "(g-1)/%[1]d+1")+`, 'SCOPE-' || ((g-1)%%%[1]d+1), 'Scope ' || g,
       (ARRAY['HARDWARE','SOFTWARE','BOTH'])[(g-1)%%3+1]
FROM generate_series(1, @nws::int * %[1]d) g`, scopesPerWS)},
	{"vendor_master", fmt.Sprintf(`INSERT INTO vendor_master (id, workspace_id, code, name, vendor_type)
SELECT `+uuidSQL("vn", "g")+`, `+uuidSQL("ws", "(g-1)/%[1]d+1")+`, 'VENDOR-' || g, 'Vendor ' || g,
       (ARRAY['CONTRACTOR','OEM','SUBCONTRACTOR'])[(g-1)%%3+1]
FROM generate_series(1, @nws::int * %[1]d) g`, vendorsPerWS)},
	{"approval_role_master", fmt.Sprintf(`INSERT INTO approval_role_master (id, workspace_id, role_code, role_name, level)
SELECT `+uuidSQL("rl", "g")+`, `+uuidSQL("ws", "(g-1)/%[1]d+1")+`, 'ROLE-' || ((g-1)%%%[1]d+1), 'Role ' || g, (g-1)%%%[1]d+1
FROM generate_series(1, @nws::int * %[1]d) g`, rolesPerWS)},
	{"approval_policy_master", fmt.Sprintf(`INSERT INTO approval_policy_master (id, workspace_id, name, atp_category)
SELECT `+uuidSQL("ap", "g")+`, `+uuidSQL("ws", "(g-1)/%[1]d+1")+`, 'Policy ' || g,
       CASE WHEN g %% 2 = 1 THEN 'HARDWARE' ELSE 'SOFTWARE' END
FROM generate_series(1, @nws::int * %[1]d) g`, policiesPerWS)},
	{"approval_policy_stages", fmt.Sprintf(`INSERT INTO approval_policy_stages (id, approval_policy_id, stage_number, stage_name, approval_role_id, sla_hours)
SELECT `+uuidSQL("aps", "g")+`, `+uuidSQL("ap", "(g-1)/%[1]d+1")+`, (g-1)%%%[1]d+1, 'Stage ' || ((g-1)%%%[1]d+1),
       `+uuidSQL("rl", "((g-1)/%[1]d/%[2]d)*%[3]d + (g-1)%%%[1]d + 1")+`, 24 * ((g-1)%%%[1]d+1)
FROM generate_series(1, @nws::int * %[2]d * %[1]d) g`, stagesPerPol, policiesPerWS, rolesPerWS)},
	{"cluster_master", fmt.Sprintf(`INSERT INTO cluster_master (id, workspace_id, code, name, region)
SELECT `+uuidSQL("cl", "g")+`, `+uuidSQL("ws", "(g-1)/%[1]d+1")+`, 'CL-' || g, 'Cluster ' || g,
       (ARRAY['JAVA','SUMATRA','KALIMANTAN'])[(g-1)%%3+1]
FROM generate_series(1, @nws::int * %[1]d) g`, clustersPerWS)},
	{"cluster_approver_master", fmt.Sprintf(`INSERT INTO cluster_approver_master (id, cluster_id, user_id, is_primary)
SELECT `+uuidSQL("ca", "g")+`, `+uuidSQL("cl", "(g-1)/%[1]d+1")+`, 'user-' || g, (g-1)%%%[1]d = 0
FROM generate_series(1, @nws::int * %[2]d * %[1]d) g`, approversPerCl, clustersPerWS)},
	// Workflow w belongs to workspace (w-1)/wpw+1 and uses its ACTIVE
	// config, one of its policies and one of its scopes.
	{"workflow_instances", fmt.Sprintf(`INSERT INTO workflow_instances (id, workspace_id, config_version_id, approval_policy_id,
    site_id, scope_id, atp_category, status, current_stage_number, created_by, created_at, completed_at)
SELECT `+uuidSQL("wf", "w")+`, `+uuidSQL("ws", "ws")+`, `+uuidSQL("cv", "ws*%[1]d")+`,
       `+uuidSQL("ap", "(ws-1)*%[2]d + 1 + w%%%[2]d")+`, 'SITE-' || lpad(w::text, 7, '0'),
       `+uuidSQL("sc", "(ws-1)*%[3]d + 1 + w%%%[3]d")+`,
       CASE WHEN w %% 2 = 0 THEN 'HARDWARE' ELSE 'SOFTWARE' END,
       CASE WHEN w %% 4 = 0 THEN 'COMPLETED' ELSE 'IN_PROGRESS' END,
       CASE WHEN w %% 4 = 0 THEN %[4]d ELSE w %% %[4]d + 1 END, 'seed',
       now() - (w %% 1000 || ' minutes')::interval,
       CASE WHEN w %% 4 = 0 THEN now() END
FROM (SELECT w, (w-1)/@wpw::int + 1 AS ws FROM generate_series(1, @total::int) w) x`,
		configsPerWS, policiesPerWS, scopesPerWS, stagesPerWF)},
	{"workflow_stages", fmt.Sprintf(`INSERT INTO workflow_stages (id, workflow_instance_id, stage_number, stage_name, status, started_at)
SELECT `+uuidSQL("st", "g")+`, `+uuidSQL("wf", "(g-1)/%[1]d+1")+`, (g-1)%%%[1]d+1, 'Stage ' || ((g-1)%%%[1]d+1),
       (ARRAY['APPROVED','IN_PROGRESS','PENDING'])[(g-1)%%%[1]d+1], now()
FROM generate_series(1, @total::int * %[1]d) g`, stagesPerWF)},
	{"workflow_stage_actions", `INSERT INTO workflow_stage_actions (id, stage_id, action, actor_id, comment)
SELECT ` + uuidSQL("sa", "g") + `, ` + uuidSQL("st", "g") + `,
       (ARRAY['APPROVE','COMMENT','REASSIGN'])[(g-1)%3+1], 'user-' || (g % 50), 'seeded'
FROM generate_series(1, @total::int * ` + fmt.Sprint(stagesPerWF) + `) g`},
	{"atp_submissions", `INSERT INTO atp_submissions (id, workflow_instance_id, site_id, atp_category, status, submitted_by)
SELECT ` + uuidSQL("sub", "g") + `, ` + uuidSQL("wf", "g") + `, 'SITE-' || lpad(g::text, 7, '0'),
       CASE WHEN g % 2 = 0 THEN 'HARDWARE' ELSE 'SOFTWARE' END,
       (ARRAY['SUBMITTED','UNDER_REVIEW','APPROVED'])[(g-1)%3+1], 'seed'
FROM generate_series(1, @total::int) g`},
	{"atp_submission_documents", fmt.Sprintf(`INSERT INTO atp_submission_documents (id, submission_id, file_name, document_type, size_bytes)
SELECT `+uuidSQL("doc", "g")+`, `+uuidSQL("sub", "(g-1)/%[1]d+1")+`, 'atp-' || g || '.pdf',
       (ARRAY['PDF','PHOTO'])[(g-1)%%2+1], 1024 * (g %% 100)
FROM generate_series(1, @total::int * %[1]d) g`, docsPerSub)},
	{"punchlists", fmt.Sprintf(`INSERT INTO punchlists (id, workflow_instance_id, status, created_by)
SELECT `+uuidSQL("pl", "g")+`, `+uuidSQL("wf", "g*%[1]d")+`, (ARRAY['OPEN','IN_PROGRESS','CLOSED'])[(g-1)%%3+1], 'seed'
FROM generate_series(1, @total::int / %[1]d) g`, wfPerPunch)},
	{"punchlist_items", fmt.Sprintf(`INSERT INTO punchlist_items (id, punchlist_id, description, severity, status)
SELECT `+uuidSQL("pi", "g")+`, `+uuidSQL("pl", "(g-1)/%[1]d+1")+`, 'Item ' || g,
       (ARRAY['CRITICAL','MAJOR','MINOR'])[(g-1)%%3+1], (ARRAY['OPEN','FIXED','VERIFIED','WAIVED'])[(g-1)%%4+1]
FROM generate_series(1, (@total::int / %[2]d) * %[1]d) g`, itemsPerPunch, wfPerPunch)},
	{"approver_overrides", fmt.Sprintf(`INSERT INTO approver_overrides (id, workflow_instance_id, stage_number, override_approver_id, reason)
SELECT `+uuidSQL("ao", "g")+`, `+uuidSQL("wf", "g*%[1]d")+`, 1, 'user-' || g, 'approver on leave'
FROM generate_series(1, @total::int / %[1]d) g`, wfPerOverride)},
}

// findFK looks a foreign key up in the embedded plan.
func findFK(name string) (plan.ForeignKey, error) {
	p, err := plan.ParseYAML([]byte(sqlassets.Plan))
	if err != nil {
		return plan.ForeignKey{}, fmt.Errorf("embedded plan: %w", err)
	}
	var names []string
	for _, fk := range p.ForeignKeys {
		if fk.Name == name {
			return fk, nil
		}
		names = append(names, fk.Name)
	}
	return plan.ForeignKey{}, fmt.Errorf("unknown foreign key %q (the demo plan has %s)", name, strings.Join(names, ", "))
}

// InjectOrphans inserts n rows into the child table of the plan's foreign
// key fkName whose key points at no parent. Each row copies an existing
// child row (so NOT NULL and CHECK constraints hold) with a fresh id and a
// referencing value that no parent has.
func InjectOrphans(ctx context.Context, pool *pgxpool.Pool, fkName string, n int) error {
	fk, err := findFK(fkName)
	if err != nil {
		return fmt.Errorf("inject orphans: %w", err)
	}
	if n < 0 {
		return fmt.Errorf("inject orphans %s: n must not be negative, got %d", fkName, n)
	}
	if n == 0 {
		return nil
	}
	rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, fk.Table.Schema, fk.Table.Name)
	if err != nil {
		return fmt.Errorf("inject orphans %s: columns of %s: %w", fkName, fk.Table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("inject orphans %s: columns of %s: %w", fkName, fk.Table, err)
	}
	if len(cols) == 0 {
		return fmt.Errorf("inject orphans %s: table %s not found", fkName, fk.Table)
	}
	isFK := map[string]bool{}
	for _, c := range fk.Columns {
		isFK[c] = true
	}
	var names, exprs []string
	for _, c := range cols {
		q := pgx.Identifier{c}.Sanitize()
		names = append(names, q)
		switch {
		case c == "id":
			exprs = append(exprs, "gen_random_uuid()::text")
		case isFK[c]:
			exprs = append(exprs, "'orphan-' || gen_random_uuid()::text")
		default:
			exprs = append(exprs, "tpl."+q)
		}
	}
	sql := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (SELECT * FROM %s LIMIT 1) tpl CROSS JOIN generate_series(1, $1::int)",
		fk.Table.Sanitize(), strings.Join(names, ", "), strings.Join(exprs, ", "), fk.Table.Sanitize())
	tag, err := pool.Exec(ctx, sql, n)
	if err != nil {
		return fmt.Errorf("inject orphans %s into %s: %w", fkName, fk.Table, err)
	}
	if tag.RowsAffected() != int64(n) {
		return fmt.Errorf("inject orphans %s: %s has no row to copy (inserted %d of %d)", fkName, fk.Table, tag.RowsAffected(), n)
	}
	return nil
}

// CreateDatabase creates database name on the server of adminDSN
// (dropping it first, WITH (FORCE), when drop is set) and returns a DSN
// for it. The name is quoted; the admin DSN is never part of an error.
func CreateDatabase(ctx context.Context, adminDSN, name string, drop bool) (string, error) {
	if name == "" {
		return "", errors.New("create database: name is empty")
	}
	dsn, err := withDatabase(adminDSN, name)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", fmt.Errorf("create database %s: connect to admin database: %w", name, err)
	}
	defer conn.Close(context.Background())
	ident := pgx.Identifier{name}.Sanitize()
	if drop {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return "", fmt.Errorf("drop database %s: %w", name, err)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return dsn, nil
}

// withDatabase returns adminDSN pointed at database name (URL or
// keyword/value form).
func withDatabase(adminDSN, name string) (string, error) {
	if _, err := pgx.ParseConfig(adminDSN); err != nil {
		return "", errors.New("create database: admin DSN does not parse")
	}
	if strings.HasPrefix(adminDSN, "postgres://") || strings.HasPrefix(adminDSN, "postgresql://") {
		u, err := url.Parse(adminDSN)
		if err != nil {
			return "", errors.New("create database: admin DSN does not parse as a URL")
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return adminDSN + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name) + "'", nil
}
