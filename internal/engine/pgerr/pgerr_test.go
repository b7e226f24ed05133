package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/pgerr"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// Each statement fails on a real server the way a rollout step can; the
// classification must match what a retry would do.
func TestClassifyRealErrors(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL, qty int CHECK (qty > 0), CONSTRAINT child_parent_fkey FOREIGN KEY (parent_id) REFERENCES parent (id));
		INSERT INTO parent VALUES (1, 'a'); INSERT INTO child VALUES (1, 1, 1);`)
	ctx := context.Background()
	cases := []struct {
		name, sql string
		o         pgerr.Options
		state     string // "" = not deterministic
	}{
		{"delete a referenced parent", `DELETE FROM parent WHERE id = 1`, pgerr.Options{}, "23503"},
		{"null into NOT NULL", `UPDATE child SET parent_id = NULL`, pgerr.Options{}, "23502"},
		{"check violation", `UPDATE child SET qty = 0`, pgerr.Options{}, "23514"},
		{"undefined table", `ALTER TABLE nope ADD CONSTRAINT x FOREIGN KEY (a) REFERENCES parent (id) NOT VALID`, pgerr.Options{}, "42P01"},
		{"undefined column", `ALTER TABLE child ADD CONSTRAINT x FOREIGN KEY (nope) REFERENCES parent (id) NOT VALID`, pgerr.Options{}, "42703"},
		{"undefined constraint", `ALTER TABLE child VALIDATE CONSTRAINT nope`, pgerr.Options{}, "42704"},
		{"type mismatch", `ALTER TABLE child ADD CONSTRAINT x FOREIGN KEY (qty) REFERENCES parent (code) NOT VALID`, pgerr.Options{}, "42804"},
		{"referenced columns not unique", `ALTER TABLE child ADD CONSTRAINT x FOREIGN KEY (qty) REFERENCES child (qty) NOT VALID`, pgerr.Options{}, "42830"},
		{"statement timeout, audit", `SET LOCAL statement_timeout = '10ms'; SELECT pg_sleep(1)`, pgerr.Options{StatementTimeout: true}, "57014"},
		{"statement timeout, elsewhere", `SET LOCAL statement_timeout = '10ms'; SELECT pg_sleep(1)`, pgerr.Options{}, ""},
		{"lock timeout is transient", `SET LOCAL lock_timeout = '10ms'; LOCK TABLE parent; SELECT 1`, pgerr.Options{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tx, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx)
			if c.name == "lock timeout is transient" {
				// Another session holds the lock, so ours times out.
				holder, err := db.Pool.Begin(ctx)
				require.NoError(t, err)
				defer holder.Rollback(ctx)
				_, err = holder.Exec(ctx, `LOCK TABLE parent`)
				require.NoError(t, err)
			}
			_, err = tx.Exec(ctx, c.sql)
			require.Error(t, err)
			f, ok := pgerr.Classify(ctx, fmt.Errorf("step: %w", err), c.o)
			if c.state == "" {
				assert.False(t, ok, "%v classified deterministic", err)
				return
			}
			require.True(t, ok, "%v not classified", err)
			assert.Equal(t, c.state, f.SQLState)
			assert.NotEmpty(t, f.Reason)
			assert.Contains(t, f.String(), c.state)
		})
	}
}

func TestClassifyIgnoresNonPostgresErrorsAndCancellation(t *testing.T) {
	_, ok := pgerr.Classify(context.Background(), errors.New("connection refused"), pgerr.Options{StatementTimeout: true})
	assert.False(t, ok)
	_, ok = pgerr.Classify(context.Background(), nil, pgerr.Options{})
	assert.False(t, ok)
}
