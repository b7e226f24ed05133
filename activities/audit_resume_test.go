package activities

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// The audit activity heartbeats its position after every chunk; an
// attempt that fails after some chunks is followed by one that starts from
// the last heartbeat (the SDK hands it over as it does after a retry or a
// lost worker), reads only the chunks left, and reports the same figures as
// an audit that was never interrupted.
func TestAuditActivityResumesFromHeartbeat(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `
CREATE TABLE customer (id int PRIMARY KEY); INSERT INTO customer SELECT generate_series(1, 100);
CREATE TABLE shop (id int PRIMARY KEY); INSERT INTO shop SELECT generate_series(1, 10);
CREATE TABLE purchase (id int PRIMARY KEY, customer_id int, shop_id int, pad text);
INSERT INTO purchase SELECT g, CASE WHEN g % 50 = 0 THEN 5000 + g ELSE 1 + g % 100 END,
       CASE WHEN g % 7 = 0 THEN NULL WHEN g % 333 = 0 THEN 99 ELSE 1 + g % 10 END, repeat('p', 100)
FROM generate_series(1, 4000) g;
CREATE TABLE visit (id int PRIMARY KEY, customer_id int);
INSERT INTO visit SELECT g, CASE WHEN g % 400 = 0 THEN -1 ELSE 1 + g % 100 END FROM generate_series(1, 3000) g;`)
	fk := func(name, table, col, ref string) plan.ForeignKey {
		return plan.ForeignKey{Name: name, Table: plan.TableName{Schema: "public", Name: table}, Columns: []string{col},
			RefTable: plan.TableName{Schema: "public", Name: ref}, RefColumns: []string{"id"}, Priority: plan.PriorityHigh}
	}
	in := rollout.AuditInput{Environment: "staging", FKs: []plan.ForeignKey{
		fk("purchase_customer_fk", "purchase", "customer_id", "customer"),
		fk("visit_customer_fk", "visit", "customer_id", "customer"),
		fk("purchase_shop_fk", "purchase", "shop_id", "shop"),
	}}
	cfg := cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}})
	cfg.Audit.ChunkPages = 4

	run := func(t *testing.T, saved *AuditProgress, after func(audit.Checkpoint) error) ([]rollout.AuditFigure, *AuditProgress, error) {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		a := mustNew(t, cfg, nil, nil)
		t.Cleanup(a.Close)
		a.afterAuditChunk = after
		a.Register(env)
		if saved != nil {
			env.SetHeartbeatDetails(*saved)
		}
		var last *AuditProgress
		env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
			var p AuditProgress
			require.NoError(t, d.Get(&p))
			last = &p
		})
		v, err := env.ExecuteActivity(rollout.ActAudit, in)
		if err != nil {
			return nil, last, err
		}
		var figs []rollout.AuditFigure
		require.NoError(t, v.Get(&figs))
		return figs, last, nil
	}

	whole, _, err := run(t, nil, nil)
	require.NoError(t, err)
	want := map[string]int64{"purchase_customer_fk": 80, "visit_customer_fk": 7, "purchase_shop_fk": 11}
	for _, f := range whole {
		assert.Equal(t, want[f.FK], f.Orphans, f.FK)
		f.DurationMS = 0
	}

	cases := []struct {
		name      string
		failAfter int
	}{{"fails after the first chunk", 1}, {"fails after four chunks", 4}, {"fails after nine chunks", 9}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chunks := 0
			_, hb, err := run(t, nil, func(audit.Checkpoint) error {
				chunks++
				if chunks == tc.failAfter {
					return errors.New("worker lost")
				}
				return nil
			})
			require.Error(t, err)
			require.NotNil(t, hb, "the failed attempt heartbeated")
			before := auditChunks(hb.Checkpoint)
			assert.Equal(t, tc.failAfter, before, "the last heartbeat holds the last chunk read")

			var firstSeen, lastSeen int
			resumed := 0
			figs, _, err := run(t, hb, func(cp audit.Checkpoint) error {
				resumed++
				if firstSeen == 0 {
					firstSeen = auditChunks(cp)
				}
				lastSeen = auditChunks(cp)
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, before+1, firstSeen, "the second attempt goes on after the heartbeat's position")
			assert.Equal(t, lastSeen-before, resumed, "every chunk read once across both attempts")
			assert.Greater(t, lastSeen, 9)
			require.Len(t, figs, len(whole))
			for i := range figs {
				figs[i].DurationMS, whole[i].DurationMS = 0, 0
			}
			assert.Equal(t, whole, figs, "same figures and samples as the uninterrupted audit")
		})
	}
}
