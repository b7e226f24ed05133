package interleave_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/interleave"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/testkit/perftest"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// BenchmarkAAFalseAlarms runs full interleaved comparisons where nothing
// changes between the two sides and counts the alarms:
//
//	go test ./internal/perf/interleave -run '^$' -bench AAFalseAlarms -benchtime 20x
//
// "present": the plan's keys already exist (both sides identical, nothing
// is toggled). "unrelated": a key on a table the workload never writes is
// added and dropped between the slices, so the toggling itself (catalogue
// invalidation, re-planning) is on trial. Metrics per comparison: alarms at
// the default limits (warn or rollback), alarms at a 1 ms / 2 ms limit, how
// often the interval excludes zero (its nominal rate is 5 %), and the
// median half-width of create_workflow's interval.
func BenchmarkAAFalseAlarms(b *testing.B) {
	unrelated := plan.ForeignKey{Name: "fk_unrelated", Table: plan.TableName{Schema: "public", Name: "unrelated"},
		Columns: []string{"workspace_id"}, RefTable: plan.TableName{Schema: "public", Name: "workspaces"}, RefColumns: []string{"id"}}
	for _, c := range []struct {
		name    string
		prepare func(b *testing.B, db *pgtest.DB) []plan.ForeignKey
	}{
		{"present", func(b *testing.B, db *pgtest.DB) []plan.ForeignKey {
			for _, fk := range fks {
				db.Exec(b, fk.AddSQL(true))
			}
			return fks
		}},
		{"unrelated", func(b *testing.B, db *pgtest.DB) []plan.ForeignKey {
			db.Exec(b, `CREATE TABLE unrelated (id bigserial PRIMARY KEY, workspace_id bigint NOT NULL)`)
			return []plan.ForeignKey{unrelated}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			db := pgtest.New(b)
			db.Exec(b, perftest.Schema)
			w, err := loadgen.ParseWorkload([]byte(perftest.Workload))
			if err != nil {
				b.Fatal(err)
			}
			plan := c.prepare(b, db)
			var alarms, tight, excludes0, rows int
			var halfWidths []float64
			b.ResetTimer()
			for i := range b.N {
				o := interleave.Options{Workers: 2, Warmup: 500 * time.Millisecond, Slice: 500 * time.Millisecond, Pairs: 6, Seed: uint64(i + 1)}
				res, err := interleave.Run(context.Background(), db.Pool, db.Pool, w, plan, o)
				if err != nil {
					b.Fatal(err)
				}
				def := perf.CompareInterleaved(res.Slices, perf.Thresholds{}, perf.Interval{Seed: uint64(i)})
				if def.Verdict == perf.Warn || def.Verdict == perf.Rollback {
					alarms++
				}
				tt := perf.CompareInterleaved(res.Slices, perf.Thresholds{AcceptableMS: 1, RollbackMS: 2}, perf.Interval{Seed: uint64(i)})
				if tt.Verdict == perf.Warn || tt.Verdict == perf.Rollback {
					tight++
				}
				for _, r := range def.Rows {
					rows++
					if r.LowMS > 0 || r.HighMS < 0 {
						excludes0++
					}
					if r.Operation == "create_workflow" {
						halfWidths = append(halfWidths, (r.HighMS-r.LowMS)/2)
					}
				}
			}
			b.StopTimer()
			slices.Sort(halfWidths)
			b.ReportMetric(float64(alarms)/float64(b.N), "alarms/op")
			b.ReportMetric(float64(tight)/float64(b.N), "alarms-at-1ms/op")
			b.ReportMetric(float64(excludes0)/float64(rows), "excl0/row")
			b.ReportMetric(halfWidths[len(halfWidths)/2], "halfwidth-ms")
		})
	}
}
