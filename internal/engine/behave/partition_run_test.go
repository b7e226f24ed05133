package behave_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/behave"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// partitionedSchema has partitioned children (RANGE, LIST, HASH, several
// levels) and partitioned parents, each with existing rows. The test rows
// of readings go to its first partition, 2023, which has few rows; 2024
// has many, all referenced by notes with RESTRICT: removing the control
// row by ctid alone would also hit the row at that ctid in 2024.
const partitionedSchema = `
CREATE TABLE parents (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO parents (name) SELECT 'p' || g FROM generate_series(1, 5) g;

CREATE TABLE readings (id bigserial, parent_id int NOT NULL, taken_on date NOT NULL, value int NOT NULL,
  PRIMARY KEY (id, taken_on),
  CONSTRAINT readings_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE CASCADE) PARTITION BY RANGE (taken_on);
CREATE TABLE readings_2023 PARTITION OF readings FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO readings (parent_id, taken_on, value) SELECT 1 + g % 5, '2023-03-01', g FROM generate_series(1, 10) g;
INSERT INTO readings (parent_id, taken_on, value) SELECT 1 + g % 5, '2024-03-01', g FROM generate_series(1, 300) g;
CREATE TABLE notes (id serial PRIMARY KEY, reading_id bigint NOT NULL, taken_on date NOT NULL,
  FOREIGN KEY (reading_id, taken_on) REFERENCES readings (id, taken_on) ON DELETE RESTRICT);
INSERT INTO notes (reading_id, taken_on) SELECT id, taken_on FROM readings;

-- Three levels: year (RANGE) > region (LIST) > id (HASH); a DEFAULT region.
CREATE TABLE shipments (id bigint NOT NULL, parent_id int NOT NULL, shipped_on date NOT NULL, region text NOT NULL,
  CONSTRAINT shipments_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE RESTRICT) PARTITION BY RANGE (shipped_on);
CREATE TABLE shipments_2024 PARTITION OF shipments FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (region);
CREATE TABLE shipments_2024_eu PARTITION OF shipments_2024 FOR VALUES IN ('eu', 'uk') PARTITION BY HASH (id);
CREATE TABLE shipments_2024_eu_0 PARTITION OF shipments_2024_eu FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE shipments_2024_eu_1 PARTITION OF shipments_2024_eu FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE shipments_2024_other PARTITION OF shipments_2024 DEFAULT;
INSERT INTO shipments VALUES (1, 1, '2024-05-01', 'eu'), (2, 2, '2024-06-01', 'us');

CREATE TABLE tickets (id int NOT NULL, parent_id int, status text NOT NULL,
  CONSTRAINT tickets_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE SET NULL) PARTITION BY LIST (status);
CREATE TABLE tickets_open PARTITION OF tickets FOR VALUES IN ('open', 'pending');
CREATE TABLE tickets_closed PARTITION OF tickets FOR VALUES IN ('closed');
INSERT INTO tickets VALUES (1, 1, 'open'), (2, 2, 'closed');

CREATE TABLE sessions (key uuid NOT NULL, parent_id int NOT NULL,
  CONSTRAINT sessions_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON UPDATE CASCADE) PARTITION BY HASH (key);
CREATE TABLE sessions_0 PARTITION OF sessions FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE sessions_1 PARTITION OF sessions FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE sessions_2 PARTITION OF sessions FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO sessions SELECT gen_random_uuid(), 1 + g % 5 FROM generate_series(1, 30) g;

-- Partitioned by its serial id: a FROM bound would be an existing id.
CREATE TABLE ledger (id bigserial, parent_id int NOT NULL, PRIMARY KEY (id),
  CONSTRAINT ledger_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE RESTRICT) PARTITION BY RANGE (id);
CREATE TABLE ledger_low PARTITION OF ledger FOR VALUES FROM (1) TO (1000);
CREATE TABLE ledger_high PARTITION OF ledger FOR VALUES FROM (1000) TO (MAXVALUE);
INSERT INTO ledger (parent_id) SELECT 1 + g % 5 FROM generate_series(1, 999) g;

-- Partitioned parents: the foreign key references a partitioned primary key.
CREATE TABLE events (id bigint NOT NULL, happened_on date NOT NULL, title text NOT NULL, PRIMARY KEY (id, happened_on)) PARTITION BY RANGE (happened_on);
CREATE TABLE events_old PARTITION OF events FOR VALUES FROM (MINVALUE) TO ('1990-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO events VALUES (1, '1980-06-01', 'old'), (2, '2024-06-01', 'new');
CREATE TABLE attendees (id serial PRIMARY KEY, event_id bigint NOT NULL, event_on date NOT NULL,
  CONSTRAINT attendees_event_fk FOREIGN KEY (event_id, event_on) REFERENCES events (id, happened_on));
CREATE TABLE photos (id serial PRIMARY KEY, event_id bigint, event_on date,
  CONSTRAINT photos_event_fk FOREIGN KEY (event_id, event_on) REFERENCES events (id, happened_on) ON DELETE CASCADE ON UPDATE CASCADE);
INSERT INTO attendees (event_id, event_on) VALUES (1, '1980-06-01'), (2, '2024-06-01');
-- Its other foreign key needs a test event. PostgreSQL adds one copy of it
-- per events partition (badges_event_id_event_on_fkey, ..._fkey1), which
-- sort first: synthesis must follow the declared one.
CREATE TABLE badges (id serial PRIMARY KEY, parent_id int NOT NULL, event_id bigint NOT NULL, event_on date NOT NULL,
  CONSTRAINT badges_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id),
  CONSTRAINT badges_when FOREIGN KEY (event_id, event_on) REFERENCES events (id, happened_on));
INSERT INTO photos (event_id, event_on) VALUES (2, '2024-06-01');

-- A LIST-partitioned parent whose key is exactly the partition key.
CREATE TABLE regions (code text PRIMARY KEY) PARTITION BY LIST (code);
CREATE TABLE regions_europe PARTITION OF regions FOR VALUES IN ('eu', 'uk', 'fr');
CREATE TABLE regions_america PARTITION OF regions FOR VALUES IN ('us', 'ca');
INSERT INTO regions VALUES ('eu'), ('us');
CREATE TABLE offices (id int PRIMARY KEY, region_code text NOT NULL,
  CONSTRAINT offices_region_fk FOREIGN KEY (region_code) REFERENCES regions (code));
INSERT INTO offices VALUES (1, 'eu');

-- Co-partitioned by tenant, the tenant part of the foreign key.
CREATE TABLE orders (tenant int NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant, id)) PARTITION BY LIST (tenant);
CREATE TABLE orders_1 PARTITION OF orders FOR VALUES IN (1);
CREATE TABLE orders_2 PARTITION OF orders FOR VALUES IN (2);
CREATE TABLE orders_rest PARTITION OF orders DEFAULT;
CREATE TABLE order_lines (tenant int NOT NULL, order_id bigint NOT NULL, line int NOT NULL, PRIMARY KEY (tenant, order_id, line),
  CONSTRAINT order_lines_order_fk FOREIGN KEY (tenant, order_id) REFERENCES orders (tenant, id) ON DELETE CASCADE ON UPDATE CASCADE) PARTITION BY LIST (tenant);
CREATE TABLE order_lines_1 PARTITION OF order_lines FOR VALUES IN (1);
CREATE TABLE order_lines_2 PARTITION OF order_lines FOR VALUES IN (2);
INSERT INTO orders VALUES (1, 1), (2, 1);
INSERT INTO order_lines VALUES (1, 1, 1), (2, 1, 1);

-- Partitioned by the foreign key column, parent not partitioned: with a
-- DEFAULT partition a fresh tenant has somewhere to go; without one every
-- bound names a tenant that already exists.
CREATE TABLE tenants (id int PRIMARY KEY);
INSERT INTO tenants SELECT generate_series(1, 3);
CREATE TABLE projects (id int NOT NULL, tenant_id int NOT NULL,
  CONSTRAINT projects_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id)) PARTITION BY LIST (tenant_id);
CREATE TABLE projects_small PARTITION OF projects FOR VALUES IN (1, 2);
CREATE TABLE projects_three PARTITION OF projects FOR VALUES IN (3);
CREATE TABLE projects_rest PARTITION OF projects DEFAULT;
CREATE TABLE budgets (id int NOT NULL, tenant_id int NOT NULL,
  CONSTRAINT budgets_tenant_fk FOREIGN KEY (tenant_id) REFERENCES tenants (id)) PARTITION BY LIST (tenant_id);
CREATE TABLE budgets_all PARTITION OF budgets FOR VALUES IN (1, 2, 3);
INSERT INTO projects VALUES (1, 1), (2, 3);
`

// TestRunPartitioned: the behaviour cases run, and pass, on partitioned
// children and partitioned parents alike; nothing is left behind.
func TestRunPartitioned(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, partitionedSchema)
	parentFK := func(name, table string, del, upd plan.Action) plan.ForeignKey {
		return fk(name, table, parentID, "parents", id, del, upd)
	}
	eventFK := func(name, table string, del, upd plan.Action) plan.ForeignKey {
		return fk(name, table, []string{"event_id", "event_on"}, "events", []string{"id", "happened_on"}, del, upd)
	}
	passed := func(names ...string) map[string]want {
		m := map[string]want{}
		for _, n := range names {
			m[n] = want{behave.Passed, ""}
		}
		return m
	}
	tests := []struct {
		name  string
		fk    plan.ForeignKey
		cases map[string]want
	}{
		{"range child", parentFK("readings_parent_fk", "readings", plan.ActionCascade, ""),
			passed("insert-orphan-rejected", "on-delete-cascade")},
		{"three-level child", parentFK("shipments_parent_fk", "shipments", plan.ActionRestrict, ""),
			passed("insert-orphan-rejected", "on-delete-restrict")},
		{"list child", parentFK("tickets_parent_fk", "tickets", plan.ActionSetNull, ""),
			passed("insert-orphan-rejected", "on-delete-set-null")},
		{"hash child", parentFK("sessions_parent_fk", "sessions", "", plan.ActionCascade),
			passed("insert-orphan-rejected", "on-delete-no-action", "on-update-cascade")},
		{"child ranged by serial id", parentFK("ledger_parent_fk", "ledger", plan.ActionRestrict, ""),
			passed("insert-orphan-rejected", "on-delete-restrict")},
		{"partitioned parent, restricting", eventFK("attendees_event_fk", "attendees", "", ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, "by attendees_event_fk"},
			// PostgreSQL reports the per-partition copy, attendees_event_id_event_on_fkey1.
			"on-delete-no-action": {behave.Passed, "rejected with 23503 by attendees_event_fk"},
		}},
		{"other foreign key to a partitioned parent", parentFK("badges_parent_fk", "badges", "", ""),
			passed("insert-orphan-rejected", "on-delete-no-action")},
		{"partitioned parent, cascading", eventFK("photos_event_fk", "photos", plan.ActionCascade, plan.ActionCascade),
			passed("insert-orphan-rejected", "on-delete-cascade", "on-update-cascade")},
		{"parent keyed by its partition key", fk("offices_region_fk", "offices", []string{"region_code"}, "regions", []string{"code"}, "", ""),
			passed("insert-orphan-rejected", "on-delete-no-action")},
		{"co-partitioned by tenant", fk("order_lines_order_fk", "order_lines", []string{"tenant", "order_id"}, "orders", []string{"tenant", "id"}, plan.ActionCascade, plan.ActionCascade),
			passed("insert-orphan-rejected", "on-delete-cascade", "on-update-cascade")},
		{"child partitioned by its key, DEFAULT partition", fk("projects_tenant_fk", "projects", []string{"tenant_id"}, "tenants", id, "", ""),
			passed("insert-orphan-rejected", "on-delete-no-action")},
		// Every partition names existing tenants: a test parent would have
		// to be an existing row, which the tests never use.
		{"child partitioned by its key, no room", fk("budgets_tenant_fk", "budgets", []string{"tenant_id"}, "tenants", id, "", ""), map[string]want{
			"insert-orphan-rejected": {behave.Skipped, "cannot synthesize a row for public.tenants"},
			"on-delete-no-action":    {behave.Skipped, "duplicate key"},
		}},
	}
	fks := make([]plan.ForeignKey, len(tests))
	for i, tc := range tests {
		fks[i] = tc.fk
	}

	before := census(t, db, 30, 5)
	results, err := behave.Run(context.Background(), db.Pool, fks, dbx.DefaultLockPolicy())
	require.NoError(t, err)
	assert.Equal(t, before, census(t, db, 30, 5), "row counts, contents and sequence positions identical after Run")

	require.Len(t, results, len(tests))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assertCases(t, results[i], tc.fk, tc.cases) })
	}
}
