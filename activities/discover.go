package activities

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fkrollout/fkrollout/internal/engine/discover"
	"github.com/fkrollout/fkrollout/workflows/discovery"
)

// DiscoverForeignKeys runs discovery read-only against a configured
// environment and returns the proposals, the migration and the full
// report. The environment's DSN never leaves the worker.
func (a *Activities) DiscoverForeignKeys(ctx context.Context, in discovery.Input) (discovery.Result, error) {
	pool, err := a.pool(ctx, in.Environment)
	if err != nil {
		return discovery.Result{}, err
	}
	hb := a.startHeartbeat(ctx, Progress{Note: "discovering foreign keys"})
	defer hb.end()
	rep, err := discover.Run(ctx, pool, discover.Options{Schemas: in.Schemas, Threshold: in.Threshold, MigrationName: "discovered_" + in.Environment,
		Progress: func(p discover.Progress) {
			hb.set(Progress{Done: p.Done, Total: p.Total, Item: p.Detail, Note: p.Phase})
		}})
	if err != nil {
		return discovery.Result{}, a.clean(fmt.Errorf("discover in %s: %w", in.Environment, err))
	}
	return discoverResult(in.Environment, rep)
}

func discoverResult(env string, rep discover.Report) (discovery.Result, error) {
	raw, err := json.Marshal(rep)
	if err != nil {
		return discovery.Result{}, fmt.Errorf("encode discovery report: %w", err)
	}
	out := discovery.Result{Environment: env, Migration: rep.Migration, Warnings: rep.Warnings, DurationMS: rep.DurationMS, Report: raw,
		Summary: fmt.Sprintf("%d missing foreign key(s) proposed in %s (%d tables, %d existing keys, threshold %.2f)",
			len(rep.Candidates), env, rep.Tables, rep.ExistingForeignKeys, rep.Threshold)}
	var orphans int64
	for _, c := range rep.Candidates {
		out.Candidates = append(out.Candidates, discovery.Proposal{Name: c.Name, FK: c.String(), Confidence: c.Confidence, Priority: c.Priority,
			OnDelete: c.OnDelete, Orphans: c.Orphans.Rows, Indexed: c.Index.Supports})
		orphans += c.Orphans.Rows
	}
	if len(rep.Candidates) > 0 {
		out.Next = []string{
			"save `migration` as discovered.sql and review it (confidence and evidence per key are in its comments)",
			"fkrollout lint --plan discovered.sql && fkrollout check --plan discovered.sql --dsn …",
			fmt.Sprintf("fkrollout start --plan discovered.sql --requester you@example.com --environments %s,… (%d orphan row(s) will reach the remediation gate)", env, orphans),
		}
	}
	return out, nil
}
