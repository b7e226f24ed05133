// Package perftest is the database and workload the perf comparison and
// the EXPLAIN checks are tested on.
package perftest

import "github.com/fkrollout/fkrollout/internal/engine/plan"

// Schema is a small database with one indexed and one unindexed
// referencing column (20 000 rows each), analysed.
const Schema = `
CREATE TABLE workspaces (id bigint PRIMARY KEY, code text NOT NULL);
INSERT INTO workspaces SELECT g, 'WS-' || g FROM generate_series(1, 200) g;
CREATE TABLE workflow_instances (id bigserial PRIMARY KEY, workspace_id bigint NOT NULL, status text NOT NULL DEFAULT 'ACTIVE');
INSERT INTO workflow_instances (workspace_id) SELECT 1 + g % 100 FROM generate_series(1, 20000) g;
CREATE INDEX ON workflow_instances (workspace_id);
CREATE TABLE punchlists (id bigserial PRIMARY KEY, workspace_id bigint NOT NULL, note text);
INSERT INTO punchlists (workspace_id) SELECT 1 + g % 100 FROM generate_series(1, 20000) g;
ANALYZE;`

// FKIndexed and FKUnindexed are its two foreign keys: the first column has
// an index, the second has none (a parent delete scans it).
var (
	FKIndexed = plan.ForeignKey{Name: "fk_workflow_instances_workspace", Table: plan.TableName{Schema: "public", Name: "workflow_instances"},
		Columns: []string{"workspace_id"}, RefTable: plan.TableName{Schema: "public", Name: "workspaces"}, RefColumns: []string{"id"}, OnDelete: plan.ActionRestrict}
	FKUnindexed = plan.ForeignKey{Name: "fk_punchlists_workspace", Table: plan.TableName{Schema: "public", Name: "punchlists"},
		Columns: []string{"workspace_id"}, RefTable: plan.TableName{Schema: "public", Name: "workspaces"}, RefColumns: []string{"id"}, OnDelete: plan.ActionCascade}
)

// Workload writes through both foreign keys: one insert per unit, and a
// bulk import of ten rows per unit.
const Workload = `
params:
  workspace_id: SELECT id FROM workspaces WHERE id <= 100
operations:
  - name: create_workflow
    statements:
      - INSERT INTO workflow_instances (workspace_id) VALUES (:workspace_id)
  - name: bulk_import
    units: 10
    statements:
      - INSERT INTO punchlists (workspace_id) SELECT :workspace_id FROM generate_series(1, 10)
`
