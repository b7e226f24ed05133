package uitest

import (
	"context"
	"encoding/json"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// registerStubs stands in for the engine: the test is about what the UI
// shows, not about PostgreSQL. The plan is parsed for real (so the page
// names the README's constraints); every database step succeeds with no
// orphans. The policy check is the real one on pol.
func registerStubs(w worker.Worker, pol policy.Config) {
	reg := func(name string, fn any) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(rollout.ActResolvePolicy, func(ctx context.Context, req rollout.PolicyRequest) (*approval.EffectivePolicy, error) {
		eff, err := rollout.ResolvePolicy(pol, req, "", time.Now())
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), rollout.ErrTypePolicy, nil)
		}
		return eff, nil
	})
	reg(rollout.ActParsePlan, func(ctx context.Context, in rollout.ParsePlanInput) (rollout.ParsePlanResult, error) {
		src, err := sqlplan.ParseAutoSource(in.Text)
		if err != nil {
			return rollout.ParsePlanResult{}, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypePlan, nil)
		}
		src.Plan.Name = "workflow-fks"
		return rollout.ParsePlanResult{Plan: src.Plan}, nil
	})
	reg(rollout.ActCheckPlan, func(ctx context.Context, in rollout.EnvInput) (rollout.CheckResult, error) {
		return rollout.CheckResult{}, nil
	})
	reg(rollout.ActTakeStats, func(ctx context.Context, in rollout.StatsInput) (rollout.StatsResult, error) {
		return rollout.StatsResult{Snapshot: json.RawMessage(`{}`)}, nil
	})
	reg(rollout.ActAudit, func(ctx context.Context, in rollout.AuditInput) ([]rollout.AuditFigure, error) {
		var figs []rollout.AuditFigure
		for _, fk := range in.FKs {
			figs = append(figs, rollout.AuditFigure{FK: fk.Name})
		}
		return figs, nil
	})
	reg(rollout.ActBackup, func(ctx context.Context, in rollout.BackupInput) (rollout.BackupResult, error) {
		return rollout.BackupResult{}, nil
	})
	reg(rollout.ActApplyConstraint, func(ctx context.Context, in rollout.ConstraintInput) (rollout.ConstraintResult, error) {
		return rollout.ConstraintResult{FK: in.FK.Name, Action: "created"}, nil
	})
	reg(rollout.ActValidateConstraint, func(ctx context.Context, in rollout.ConstraintInput) (rollout.ConstraintResult, error) {
		return rollout.ConstraintResult{FK: in.FK.Name, Action: "validated"}, nil
	})
	reg(rollout.ActRunBehaviourTests, func(ctx context.Context, in rollout.BehaviourInput) ([]rollout.BehaviourResult, error) {
		var out []rollout.BehaviourResult
		for _, fk := range in.FKs {
			out = append(out, rollout.BehaviourResult{FK: fk.Name, Passed: true})
		}
		return out, nil
	})
	reg(rollout.ActRunDeployHooks, func(ctx context.Context, in rollout.HooksInput) ([]rollout.HookResult, error) { return nil, nil })
	reg(rollout.ActRunSmokeChecks, func(ctx context.Context, in rollout.HooksInput) ([]rollout.SmokeResult, error) { return nil, nil })
	reg(rollout.ActCheckExpectations, func(ctx context.Context, in rollout.ExpectInput) ([]rollout.ExpectationResult, error) {
		return nil, nil
	})
	reg(rollout.ActExportOrphans, func(ctx context.Context, in rollout.ExportOrphansInput) ([]rollout.OrphanExport, error) {
		return nil, nil
	})
	reg(steps.ActNotify, func(ctx context.Context, ev notify.Event) (notify.Receipt, error) { return notify.Receipt{}, nil })
	reg(rollout.ActPublishReport, func(ctx context.Context, in rollout.ReportInput) (rollout.ReportResult, error) {
		return rollout.ReportResult{Path: "/reports/" + in.RolloutID + ".md"}, nil
	})
}
