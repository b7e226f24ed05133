package sqlplan

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var fixedNow = time.Date(2025, 12, 29, 1, 2, 28, 0, time.UTC)

func TestGenerateGolden(t *testing.T) {
	p, err := ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	p.ForeignKeys = append(p.ForeignKeys, plan.ForeignKey{Name: "FK_Lines_Order", Table: plan.TableName{Schema: "Sales", Name: "OrderLines"}, Columns: []string{"tenantId", "order_id"},
		RefTable: plan.TableName{Schema: "Sales", Name: "Orders"}, RefColumns: []string{"tenantId", "id"}, OnDelete: plan.ActionSetNull, OnUpdate: plan.ActionCascade,
		Match: plan.MatchFull, Deferrable: true, InitiallyDeferred: true, Priority: plan.PriorityHigh, Comment: "Composite, quoted, deferrable\nsecond line"})
	rel, content := plan.Generate(p, "Add Master-Tables FKs", fixedNow)
	assert.Equal(t, "20251229010228_add_master_tables_fks/migration.sql", rel)

	golden := filepath.Join("testdata", "demo_generated.golden")
	if *update {
		require.NoError(t, os.WriteFile(golden, content, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(content))

	// Round trip: the generated file parses back to the sorted plan and is
	// lint-clean apart from the SET NULL note.
	back, err := ParseSQL(string(content))
	require.NoError(t, err)
	assert.Equal(t, p.Sorted(), back.ForeignKeys)
	fs := LintSQL(string(content))
	assert.Equal(t, []string{plan.RuleSetNull}, rules(fs))

	// Deterministic.
	_, again := plan.Generate(p, "Add Master-Tables FKs", fixedNow)
	assert.Equal(t, content, again)
}

func TestWriteMigration(t *testing.T) {
	dir := t.TempDir()
	p := plan.Plan{Name: "x", ForeignKeys: []plan.ForeignKey{goodFK("a", plan.PriorityCritical)}}
	path, err := plan.WriteMigration(dir, "add_fks", p, fixedNow)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "20251229010228_add_fks", "migration.sql"), path)
	got, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, "add_fks", got.Name)
	assert.Equal(t, p.ForeignKeys, got.ForeignKeys)
	_, err = plan.WriteMigration(dir, "add_fks", p, fixedNow)
	assert.Error(t, err, "must not overwrite an existing migration")
}
