package sqlplan

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

func TestPlanJSONRoundTrip(t *testing.T) {
	p, err := ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	p.Name = "demo"
	p.ForeignKeys = append(p.ForeignKeys, plan.ForeignKey{Name: "Odd", Table: plan.TableName{Schema: "My Schema", Name: "Odd.Table"}, Columns: []string{"A", "b"},
		RefTable: plan.TableName{Schema: "public", Name: "select"}, RefColumns: []string{"id", `x"y`}, OnDelete: plan.ActionSetNull, OnUpdate: plan.ActionCascade,
		Match: plan.MatchFull, Deferrable: true, InitiallyDeferred: true, Priority: plan.PriorityLow, Comment: "two\nlines"})
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var back plan.Plan
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, p, back)

	// The JSON text is also a valid plan file... as long as identifiers are
	// plain; plan.EncodeYAML is the faithful text form.
	y, err := plan.EncodeYAML(p)
	require.NoError(t, err)
	back, err = plan.ParseYAML(y)
	require.NoError(t, err, string(y))
	assert.Equal(t, p, back)
}

func TestLoadAndParseAuto(t *testing.T) {
	dir := t.TempDir()
	migration := sqlassets.Migration
	mig := filepath.Join(dir, "20251229010228_add_master_tables_fks", "migration.sql")
	require.NoError(t, os.MkdirAll(filepath.Dir(mig), 0o755))
	require.NoError(t, os.WriteFile(mig, []byte(migration), 0o644))
	p, err := Load(mig)
	require.NoError(t, err)
	assert.Equal(t, "add_master_tables_fks", p.Name)
	assert.Len(t, p.ForeignKeys, 16)

	y, err := plan.EncodeYAML(p)
	require.NoError(t, err)
	for _, ext := range []string{".yaml", ".yml", ".json"} {
		path := filepath.Join(dir, "plan"+ext)
		data := y
		if ext == ".json" {
			data, _ = json.Marshal(p)
		}
		require.NoError(t, os.WriteFile(path, data, 0o644))
		got, err := Load(path)
		require.NoError(t, err, ext)
		assert.Equal(t, p, got, ext)
	}
	_, err = Load(filepath.Join(dir, "plan.txt"))
	assert.Error(t, err)

	for name, text := range map[string]string{"sql": migration, "yaml": string(y), "json": mustJSON(t, p)} {
		got, err := ParseAuto(text)
		require.NoError(t, err, name)
		assert.Len(t, got.ForeignKeys, 16, name)
	}
	// A YAML plan whose first key looks like a SQL keyword is still YAML.
	_, err = ParseAuto("set: 1\n")
	assert.ErrorContains(t, err, "parse plan")
	_, err = ParseAuto("/* c */ alter table a add constraint f foreign key (x) references b(id);")
	assert.NoError(t, err)
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
