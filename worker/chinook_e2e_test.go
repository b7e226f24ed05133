package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/discovery"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// chinookLab is Chinook with its foreign keys dropped, a chain of extra
// keys and a trigger, and orphans at several levels of the chain.
type chinookLab struct {
	db       *pgtest.DB
	original []pgtest.ChinookFK
	dump     string
	// before: every table's rows and checksum after the orphans went in,
	// before the rollout.
	before map[string]pgtest.Checksum
}

// The extra structure real schemas have around the keys being added: an
// existing CASCADE key (invoice_note), a trigger that records deletions
// (invoice_audit), and orphans whose rows other rows reference.
const chinookChain = `
CREATE TABLE invoice_note (note_id int PRIMARY KEY, invoice_id int NOT NULL REFERENCES invoice (invoice_id) ON DELETE CASCADE, note text NOT NULL);
CREATE TABLE invoice_audit (id serial PRIMARY KEY, invoice_id int NOT NULL, deleted_by text NOT NULL DEFAULT current_user);
CREATE FUNCTION record_invoice_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO invoice_audit (invoice_id) VALUES (OLD.invoice_id); RETURN OLD; END $$;
CREATE TRIGGER invoice_deleted AFTER DELETE ON invoice FOR EACH ROW EXECUTE FUNCTION record_invoice_delete();
INSERT INTO invoice_note VALUES (1, 1, 'a valid note');

-- An orphan invoice (no customer 9999) with two lines (NO ACTION through a
-- key this rollout adds) and a note (CASCADE through an existing key).
INSERT INTO invoice VALUES (100001, 9999, '2024-01-01', NULL, NULL, NULL, NULL, NULL, 1.98);
INSERT INTO invoice_line VALUES (200001, 100001, 1, 0.99, 1), (200002, 100001, 2, 0.99, 1);
INSERT INTO invoice_note VALUES (2, 100001, 'note of an orphan invoice');
-- A leaf orphan: a line of an invoice that does not exist.
INSERT INTO invoice_line VALUES (200003, 88888, 3, 0.99, 1);
-- An orphan track (no album 77777) in a playlist and sold on a valid invoice.
INSERT INTO track VALUES (100001, 'Orphan track', 77777, 1, 1, NULL, 1000, NULL, 0.99);
INSERT INTO playlist_track VALUES (1, 100001);
INSERT INTO invoice_line VALUES (200004, 1, 100001, 0.99, 1);
-- A self-reference orphan: employee 100 reports to nobody that exists, and
-- a customer's support rep is that employee.
INSERT INTO employee (employee_id, last_name, first_name, reports_to) VALUES (100, 'Orphan', 'Olive', 5555);
INSERT INTO customer (customer_id, first_name, last_name, email, support_rep_id) VALUES (100, 'Cora', 'Chain', 'cora@example.com', 100);
`

// chinookTables are the tables whose data must come back exactly.
var chinookTables = append(slices.Clone(pgtest.ChinookTables), "invoice_note")

func newChinookLab(t *testing.T) *chinookLab {
	db := pgtest.New(t)
	pgtest.LoadChinook(t, db)
	l := &chinookLab{db: db, original: pgtest.ChinookForeignKeys(t, db), dump: pgtest.DumpForeignKeySQL(t, db)}
	require.Len(t, l.original, 11)
	pgtest.DropForeignKeys(t, db)
	db.Exec(t, chinookChain)
	l.before = pgtest.TableChecksums(t, db, chinookTables...)
	return l
}

// chinookFKs is the live definition of the 11 Chinook keys, by name.
func (l *chinookLab) defs(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, fk := range pgtest.ChinookForeignKeys(t, l.db) {
		if fk.Table != "invoice_note" {
			out[fk.Name] = fk.Def
		}
	}
	return out
}

// chinookInput is a rollout of migration (SQL) over envs that alice or bob
// may approve; rita asks.
func chinookInput(migration string, envs ...rollout.EnvironmentInput) rollout.Input {
	return rollout.Input{Plan: migration, PlanFormat: "sql", Requester: rita, Environments: envs, Skip: skipAllBut(),
		Approval: approval.Policy{Default: approval.GateRule{Approvers: []string{alice, bob}}}}
}

// recordHistory writes the run's history to the replay corpus with -record.
func recordHistory(t *testing.T, ctx context.Context, c client.Client, id, file string) {
	if *record {
		require.NoError(t, os.WriteFile("../workflows/testdata/"+file, []byte(historyJSON(t, ctx, c, id)), 0o644))
		// Workflows that name children after themselves replay only under
		// their own id: the replay test reads it from here.
		idFile := "../workflows/testdata/" + strings.TrimSuffix(file, ".json") + ".workflow-id"
		require.NoError(t, os.WriteFile(idFile, []byte(id), 0o644))
	}
}

// watchGates calls decide once for every gate that opens, until the
// rollout ends. It runs beside the test, so failures go through t.Errorf.
func watchGates(t *testing.T, ctx context.Context, c client.Client, id string, decide func(g approval.Gate)) {
	decided := map[string]bool{}
	for ctx.Err() == nil {
		var st rollout.Status
		if v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus); err == nil && v.Get(&st) == nil {
			if st.State.Terminal() {
				return
			}
			for _, g := range st.OpenGates {
				if !decided[g.ID] {
					decided[g.ID] = true
					decide(g)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// send sends a decision or control and reports a refusal as a test error.
func send(t *testing.T, ctx context.Context, c client.Client, id, name string, in any) {
	var view approval.GateView
	if err := update(ctx, c, id, name, in, &view); err != nil {
		t.Errorf("%s %+v refused: %v", name, in, err)
	}
}

// remediationChoice is what an approver reading the impact picks for the
// gate's first constraint: set-null for the listed ones, delete where
// nothing else is touched, else delete-with-dependents.
func remediationChoice(g approval.Gate, setNull ...string) (fk, choice string) {
	o := g.Detail.Remediation.FKs[0]
	switch {
	case slices.Contains(setNull, o.Constraint):
		return o.Constraint, approval.ChoiceSetNull
	case o.Impossible[approval.ChoiceDelete] != "":
		return o.Constraint, approval.ChoiceDeleteWithDependents
	}
	return o.Constraint, approval.ChoiceDelete
}

// driveChinook decides gates like approvers who read the impact, one
// constraint at a time (remediationChoice), after checking that a plain
// delete is refused with the reason where rows reference the orphans
// (recorded in refusals). stopAt, when set, is sent at the first
// promotion gate instead of approving it.
func driveChinook(t *testing.T, ctx context.Context, c client.Client, id string, refusals map[string]string, stopAt *approval.ControlInput) {
	watchGates(t, ctx, c, id, func(g approval.Gate) {
		switch g.Kind {
		case notify.GateRemediation:
			fk, choice := remediationChoice(g, "employee_reports_to_fkey")
			if choice == approval.ChoiceDeleteWithDependents {
				var view approval.GateView
				err := update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceDelete,
					Actor: alice, Reason: "try", Constraints: []string{fk}}, &view)
				if err == nil {
					t.Errorf("plain delete of %s with dependents was accepted", fk)
					return
				}
				refusals[fk] = err.Error()
			}
			send(t, ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: choice, Actor: alice,
				Reason: "orphans of the import", Constraints: []string{fk}})
		case notify.GatePromotion:
			if stopAt != nil {
				send(t, ctx, c, id, approval.UpdateAbort, *stopAt)
				return
			}
			send(t, ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "ok"})
		default:
			t.Errorf("unexpected gate %s: %s", g.ID, g.Title)
			send(t, ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceAbort, Actor: alice, Reason: "unexpected"})
		}
	})
}

// TestE2EChinookFromPgDump rolls the Chinook keys back out from the
// migration pg_dump --schema-only writes (no NOT VALID, no ON DELETE,
// ALTER TABLE ONLY, schema-qualified names) over orphans at several levels
// of a chain, on a real dev server and worker: every key ends validated
// with its original definition, every removed or changed row is in
// quarantine, and restoring after dropping the keys gives back the data
// exactly.
func TestE2EChinookFromPgDump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	lab := newChinookLab(t)
	require.NotContains(t, lab.dump, "NOT VALID")
	require.NotContains(t, lab.dump, "ON DELETE")

	cfg := testConfig(t, map[string]string{"chinook": pgtest.RoleDSN(t, lab.db)}, nil)
	tq := startRolloutWorker(t, c, "chinook", cfg, nil, discardLogger())
	in := chinookInput(lab.dump, rollout.EnvironmentInput{Name: "chinook"})
	id := "chinook-pgdump-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)
	refusals := map[string]string{}
	go driveChinook(t, ctx, c, id, refusals, nil)
	var st rollout.Status
	require.NoError(t, run.Get(ctx, &st))
	require.Equal(t, rollout.StateCompleted, st.State, st.Summary())

	// Every key validated, exactly as it was defined before it was dropped.
	defs := lab.defs(t)
	for _, fk := range lab.original {
		assert.Equal(t, fk.Def, defs[fk.Name], fk.Name)
	}
	assert.Zero(t, lab.db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated`))

	// Plain delete was refused, with the reason, where rows reference the orphans.
	for _, fk := range []string{"invoice_customer_id_fkey", "track_album_id_fkey"} {
		assert.Contains(t, refusals[fk], "delete is impossible for "+fk, fk)
	}

	// Quarantine rows = rows removed or changed, table by table.
	want := map[string]int64{
		"public.invoice delete": 1, "public.invoice_line delete": 4, "public.invoice_note delete": 1, // the orphan invoice, its lines and note, the leaf line, the track's sale
		"public.track delete": 1, "public.playlist_track delete": 1,
		"public.employee set_null": 1,
	}
	assert.Equal(t, want, pgtest.QuarantineCounts(t, lab.db, id))
	after := pgtest.TableChecksums(t, lab.db, chinookTables...)
	for _, tbl := range chinookTables {
		deleted := lab.before[tbl].Rows - after[tbl].Rows
		assert.Equal(t, want["public."+tbl+" delete"], deleted, "rows removed from %s", tbl)
	}
	assert.Equal(t, int64(1), lab.db.Count(t, `SELECT count(*) FROM employee WHERE employee_id = 100 AND reports_to IS NULL`))
	assert.Equal(t, int64(1), lab.db.Count(t, `SELECT count(*) FROM invoice_audit WHERE invoice_id = 100001`), "the trigger fired once")
	// The report lists the quarantine and how to restore.
	assert.Contains(t, st.Report(), "### Quarantine: chinook")

	// Dropping the keys (as a rollback does) and restoring gives back the
	// data exactly.
	for name := range defs {
		lab.db.Exec(t, `DO $$ DECLARE r record; BEGIN FOR r IN SELECT conrelid::regclass AS t FROM pg_constraint WHERE conname = '`+name+`' LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, '`+name+`'); END LOOP; END $$`)
	}
	restored, err := audit.RestoreAll(ctx, lab.db.Pool, dbx.DefaultLockPolicy(), id, "")
	require.NoError(t, err)
	var total int64
	for _, n := range restored {
		total += n
	}
	assert.Equal(t, int64(9), total)
	assert.Equal(t, lab.before, pgtest.TableChecksums(t, lab.db, chinookTables...), "restore brings the data back exactly")
	assert.Zero(t, lab.db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = $1`, id))

	recordHistory(t, ctx, c, id, "history-chinook-pgdump.json")
}

// TestE2EChinookPrismaRollbackRestores rolls the keys out from a
// Prisma-style migration over staging, then an operator rolls back at the
// promotion gate: the keys are dropped and every quarantined row goes back,
// so both tables and checksums are as before the rollout.
func TestE2EChinookPrismaRollbackRestores(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	staging, production := newChinookLab(t), newChinookLab(t)
	cfg := testConfig(t, map[string]string{"staging": pgtest.RoleDSN(t, staging.db), "production": pgtest.RoleDSN(t, production.db)}, nil)
	tq := startRolloutWorker(t, c, "chinook", cfg, nil, discardLogger())
	in := chinookInput(pgtest.ChinookMigration(t, "prisma"), stagingThenProduction()...)
	id := "chinook-prisma-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)
	go driveChinook(t, ctx, c, id, map[string]string{}, &approval.ControlInput{Actor: alice, Reason: "found a problem in staging", Rollback: true})
	st := closedWith(t, ctx, c, run, rollout.ErrTypeRolledBack)
	require.Equal(t, rollout.StateRolledBack, st.State, st.Summary())

	rep := st.Environments["staging"]
	require.NotNil(t, rep.Restored, "the rollback restored the quarantine")
	assert.Empty(t, rep.Restored.RestoreError)
	assert.Equal(t, int64(9), rep.Restored.Restored)
	assert.Equal(t, staging.before, pgtest.TableChecksums(t, staging.db, chinookTables...), "staging's data is back exactly")
	assert.Empty(t, staging.defs(t), "this rollout's keys are gone")
	assert.Equal(t, production.before, pgtest.TableChecksums(t, production.db, chinookTables...), "production untouched")
	assert.Contains(t, st.Report(), "The rollback put **9** quarantined rows back")

	recordHistory(t, ctx, c, id, "history-chinook-rollback.json")
}

// TestE2EDiscoverThenRollout is the path from a database without its keys
// to a rollout: the FKDiscover workflow (read-only, against a configured
// environment) proposes the 11 Chinook keys, and its migration, rolled out
// as it is, restores them exactly.
func TestE2EDiscoverThenRollout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	db := pgtest.New(t)
	pgtest.LoadChinook(t, db)
	original := pgtest.ChinookForeignKeys(t, db)
	pgtest.DropForeignKeys(t, db)
	before := pgtest.TableChecksums(t, db)

	cfg := testConfig(t, map[string]string{"chinook": pgtest.RoleDSN(t, db)}, nil)
	tq := startRolloutWorker(t, c, "discover", cfg, nil, discardLogger())

	bad, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "discover-bad-" + randHex(4), TaskQueue: tq}, discovery.WorkflowName,
		discovery.Input{Environment: "nowhere"})
	require.NoError(t, err)
	err = bad.Get(ctx, nil)
	require.Error(t, err, "an environment the worker does not know is refused")
	assert.Contains(t, err.Error(), `"nowhere"`)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "discover-" + randHex(4), TaskQueue: tq}, discovery.WorkflowName,
		discovery.Input{Environment: "chinook"})
	require.NoError(t, err)
	var res discovery.Result
	require.NoError(t, run.Get(ctx, &res))
	assert.Len(t, res.Candidates, len(original), res.Summary)
	assert.Equal(t, before, pgtest.TableChecksums(t, db), "discovery is read-only")
	require.NotEmpty(t, res.Migration)
	require.Len(t, res.Next, 3)

	in := chinookInput(res.Migration, rollout.EnvironmentInput{Name: "chinook"})
	var st rollout.Status
	require.NoError(t, startRollout(t, ctx, c, tq, "discovered-"+randHex(4), in).Get(ctx, &st))
	require.Equal(t, rollout.StateCompleted, st.State, st.Summary())
	got := map[string]string{}
	for _, fk := range pgtest.ChinookForeignKeys(t, db) {
		got[fk.Name] = fk.Def
	}
	for _, fk := range original {
		assert.Contains(t, got, fk.Name)
		if def, ok := got[fk.Name]; ok {
			// Discovery suggests RESTRICT or SET NULL where Chinook says NO
			// ACTION; the keys themselves must match.
			assert.Equal(t, keyPart(fk.Def), keyPart(def), fk.Name)
		}
	}
}

// keyPart is a constraint definition up to its ON DELETE/ON UPDATE clauses.
func keyPart(def string) string {
	if i := strings.Index(def, " ON "); i >= 0 {
		return def[:i]
	}
	return def
}

// TestE2EDeterministicFailureSkips: set-null on the orphan track is
// possible by the catalog (album_id is nullable) but a CHECK added NOT
// VALID refuses the NULL (23514). The gate opens on the first attempt with
// the SQLSTATE, skip records the key as debt, and the other ten keys finish.
func TestE2EDeterministicFailureSkips(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	lab := newChinookLab(t)
	lab.db.Exec(t, `ALTER TABLE track ADD CONSTRAINT track_album_required CHECK (album_id IS NOT NULL) NOT VALID`)
	cfg := testConfig(t, map[string]string{"chinook": pgtest.RoleDSN(t, lab.db)}, nil)
	tq := startRolloutWorker(t, c, "chinook", cfg, nil, discardLogger())
	in := chinookInput(lab.dump, rollout.EnvironmentInput{Name: "chinook"})
	id := "chinook-skip-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)
	var mu sync.Mutex
	var failureGate approval.Gate
	go watchGates(t, ctx, c, id, func(g approval.Gate) {
		d := approval.DecisionInput{GateID: g.ID, Actor: alice, Reason: "e2e", Choice: approval.ChoiceAbort}
		switch {
		case g.Kind == notify.GateRemediation:
			fk, choice := remediationChoice(g, "track_album_id_fkey", "employee_reports_to_fkey")
			d.Constraints, d.Choice = []string{fk}, choice
		case strings.Contains(g.Title, "a retry would fail the same way"):
			mu.Lock()
			failureGate = g
			mu.Unlock()
			d.Choice = approval.ChoiceSkip
		}
		send(t, ctx, c, id, approval.UpdateDecide, d)
	})
	var st rollout.Status
	require.NoError(t, run.Get(ctx, &st))
	require.Equal(t, rollout.StateCompletedWithDebt, st.State, st.Summary())
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, failureGate.Title, "SQLSTATE 23514")
	assert.Equal(t, []string{approval.ChoiceSkip, approval.ChoiceRetry, approval.ChoiceRollback, approval.ChoiceAbort}, failureGate.Choices)
	states := map[string]rollout.ConstraintState{}
	for _, c := range st.Constraints {
		states[c.Name] = c.Environments["chinook"].State
	}
	assert.Equal(t, rollout.CDebt, states["track_album_id_fkey"])
	assert.Equal(t, int64(10), lab.db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated AND conrelid::regclass::text <> 'invoice_note'`))
	assert.Equal(t, int64(1), lab.db.Count(t, `SELECT count(*) FROM pg_constraint WHERE conname = 'track_album_id_fkey' AND NOT convalidated`), "the skipped key stays NOT VALID")
	assert.Equal(t, int64(1), lab.db.Count(t, `SELECT count(*) FROM track WHERE track_id = 100001 AND album_id = 77777`), "the failed set-null changed nothing")
	assert.Contains(t, st.Report(), "⚠️ partial (1 skipped after failure)")

	recordHistory(t, ctx, c, id, "history-chinook-skip.json")
}
