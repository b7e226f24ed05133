package plan

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	sqlassets "github.com/fkrollout/fkrollout/sql"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var fixedNow = time.Date(2025, 12, 29, 1, 2, 28, 0, time.UTC)

func TestGenerateGolden(t *testing.T) {
	p, err := ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	p.ForeignKeys = append(p.ForeignKeys, ForeignKey{Name: "FK_Lines_Order", Table: TableName{"Sales", "OrderLines"}, Columns: []string{"tenantId", "order_id"},
		RefTable: TableName{"Sales", "Orders"}, RefColumns: []string{"tenantId", "id"}, OnDelete: ActionSetNull, OnUpdate: ActionCascade,
		Match: MatchFull, Deferrable: true, InitiallyDeferred: true, Priority: PriorityHigh, Comment: "Composite, quoted, deferrable\nsecond line"})
	rel, content := Generate(p, "Add Master-Tables FKs", fixedNow)
	assert.Equal(t, "20251229010228_add_master_tables_fks/migration.sql", rel)

	golden := filepath.Join("testdata", "seeds_generated.golden")
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
	assert.Equal(t, []string{RuleSetNull}, rules(fs))

	// Deterministic.
	_, again := Generate(p, "Add Master-Tables FKs", fixedNow)
	assert.Equal(t, content, again)
}

func TestWriteMigration(t *testing.T) {
	dir := t.TempDir()
	p := Plan{Name: "x", ForeignKeys: []ForeignKey{goodFK("a", PriorityCritical)}}
	path, err := WriteMigration(dir, "add_fks", p, fixedNow)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "20251229010228_add_fks", "migration.sql"), path)
	got, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, "add_fks", got.Name)
	assert.Equal(t, p.ForeignKeys, got.ForeignKeys)
	_, err = WriteMigration(dir, "add_fks", p, fixedNow)
	assert.Error(t, err, "must not overwrite an existing migration")
}
