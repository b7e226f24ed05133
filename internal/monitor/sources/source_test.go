package sources

import (
	"github.com/fkrollout/fkrollout/internal/monitor"

	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

const configYAML = `
sources:
  production-db:
    kind: postgres
    environment: production
    tables: [audit.events]
    log_path: /var/log/postgresql/postgresql-*.json
    log_format: jsonlog
    probes:
      - {name: insert-item, sql: "INSERT INTO items (order_id) VALUES (1)"}
  app:
    kind: prometheus
    url: http://prometheus:9090
    queries:
      error_rate_pct: 100 * sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
  smoke:
    kind: http
    checks:
      - {name: health, url: "https://apms.example.com/health", expect_status: 200}
`

func TestConfigParseBuildAndValidate(t *testing.T) {
	var c monitor.Config
	require.NoError(t, yaml.Unmarshal([]byte(configYAML), &c))
	require.NoError(t, c.Validate())

	var asked []string
	deps := Deps{Tables: []plan.TableName{{Schema: "public", Name: "items"}, {Schema: "public", Name: "items"}},
		DB: func(_ context.Context, env string) (DB, error) {
			asked = append(asked, env)
			if env != "production" {
				return nil, errors.New("unknown environment")
			}
			return nil, nil
		}}
	srcs, err := Build(context.Background(), c, []string{"production-db", "app", "smoke"}, deps)
	require.NoError(t, err)
	require.Len(t, srcs, 3)
	pg := srcs[0].(*PGSource)
	assert.Equal(t, []plan.TableName{{Schema: "public", Name: "items"}, {Schema: "audit", Name: "events"}}, pg.Tables)
	assert.Equal(t, "jsonlog", pg.Log.Format)
	assert.Len(t, pg.Probes, 1)
	assert.Contains(t, pg.Provides(), monitor.MetricFKViolations)
	assert.Equal(t, []string{monitor.MetricErrorRatePct}, srcs[1].Provides())
	assert.Equal(t, []string{monitor.MetricSmokeFailures}, srcs[2].Provides())
	assert.Equal(t, []string{"production"}, asked)

	_, err = Build(context.Background(), c, []string{"grafana"}, deps)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"grafana" is not configured on this worker (configured: app, production-db, smoke)`)

	bad := monitor.Config{Sources: map[string]monitor.SourceConfig{
		"a@b":  {Kind: monitor.KindHTTP},
		"p":    {Kind: monitor.KindPostgres, LogFormat: "stderr"},
		"prom": {Kind: monitor.KindPrometheus, Timeout: "soon"},
		"x":    {Kind: "graphite"},
	}}
	err = bad.Validate()
	require.Error(t, err)
	for _, want := range []string{"must not contain '@'", "http source needs checks", "postgres source needs environment", `log_format "stderr"`,
		"prometheus source needs url and queries", `timeout "soon"`, `kind "graphite"`} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestListForeignKeysIncludesNotValid(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `
CREATE SCHEMA app;
CREATE TABLE app.parent (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE app.child (id int PRIMARY KEY, pa int, pb int);
ALTER TABLE app.child ADD CONSTRAINT child_parent_fk FOREIGN KEY (pa, pb) REFERENCES app.parent (a, b) MATCH FULL ON DELETE CASCADE NOT VALID;
CREATE TABLE app.other (id int PRIMARY KEY, p int REFERENCES app.child (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED);`)
	fks, err := ListForeignKeys(context.Background(), db.Pool, nil)
	require.NoError(t, err)
	require.Len(t, fks, 2)
	c := fks[0]
	assert.Equal(t, "child_parent_fk", c.FK.Name)
	assert.False(t, c.Validated)
	assert.Equal(t, []string{"pa", "pb"}, c.FK.Columns)
	assert.Equal(t, []string{"a", "b"}, c.FK.RefColumns)
	assert.Equal(t, plan.MatchFull, c.FK.Match)
	assert.Equal(t, plan.ActionCascade, c.FK.OnDelete)
	o := fks[1]
	assert.True(t, o.Validated)
	assert.Equal(t, plan.ActionSetNull, o.FK.OnDelete)
	assert.True(t, o.FK.Deferrable)
	assert.True(t, o.FK.InitiallyDeferred)

	only, err := ListForeignKeys(context.Background(), db.Pool, []string{"public"})
	require.NoError(t, err)
	assert.Empty(t, only)
}
