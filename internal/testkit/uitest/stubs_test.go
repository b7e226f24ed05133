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
	"github.com/fkrollout/fkrollout/workflows"
)

// registerStubs stands in for the engine: the test is about what the UI
// shows, not about PostgreSQL. The plan is parsed for real (so the page
// names the README's constraints); every database step succeeds with no
// orphans. The policy check is the real one on pol.
func registerStubs(w worker.Worker, pol policy.Config) {
	reg := func(name string, fn any) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(workflows.ActResolvePolicy, func(ctx context.Context, req workflows.PolicyRequest) (*workflows.EffectivePolicy, error) {
		eff, err := workflows.ResolvePolicy(pol, req, "", time.Now())
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypePolicy, nil)
		}
		return eff, nil
	})
	reg(workflows.ActParsePlan, func(ctx context.Context, in workflows.ParsePlanInput) (workflows.ParsePlanResult, error) {
		src, err := sqlplan.ParseAutoSource(in.Text)
		if err != nil {
			return workflows.ParsePlanResult{}, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypePlan, nil)
		}
		src.Plan.Name = "workflow-fks"
		return workflows.ParsePlanResult{Plan: src.Plan}, nil
	})
	reg(workflows.ActCheckPlan, func(ctx context.Context, in workflows.EnvInput) (workflows.CheckResult, error) {
		return workflows.CheckResult{}, nil
	})
	reg(workflows.ActTakeStats, func(ctx context.Context, in workflows.StatsInput) (workflows.StatsResult, error) {
		return workflows.StatsResult{Snapshot: json.RawMessage(`{}`)}, nil
	})
	reg(workflows.ActAudit, func(ctx context.Context, in workflows.AuditInput) ([]workflows.AuditFigure, error) {
		var figs []workflows.AuditFigure
		for _, fk := range in.FKs {
			figs = append(figs, workflows.AuditFigure{FK: fk.Name})
		}
		return figs, nil
	})
	reg(workflows.ActBackup, func(ctx context.Context, in workflows.BackupInput) (workflows.BackupResult, error) {
		return workflows.BackupResult{}, nil
	})
	reg(workflows.ActApply, func(ctx context.Context, in workflows.ConstraintInput) (workflows.ConstraintResult, error) {
		return workflows.ConstraintResult{FK: in.FK.Name, Action: "created"}, nil
	})
	reg(workflows.ActValidate, func(ctx context.Context, in workflows.ConstraintInput) (workflows.ConstraintResult, error) {
		return workflows.ConstraintResult{FK: in.FK.Name, Action: "validated"}, nil
	})
	reg(workflows.ActBehaviour, func(ctx context.Context, in workflows.BehaviourInput) ([]workflows.BehaviourResult, error) {
		var out []workflows.BehaviourResult
		for _, fk := range in.FKs {
			out = append(out, workflows.BehaviourResult{FK: fk.Name, Passed: true})
		}
		return out, nil
	})
	reg(workflows.ActDeployHooks, func(ctx context.Context, in workflows.HooksInput) ([]workflows.HookResult, error) { return nil, nil })
	reg(workflows.ActSmokeChecks, func(ctx context.Context, in workflows.HooksInput) ([]workflows.SmokeResult, error) { return nil, nil })
	reg(workflows.ActNotify, func(ctx context.Context, ev notify.Event) (notify.Receipt, error) { return notify.Receipt{}, nil })
	reg(workflows.ActPublishReport, func(ctx context.Context, in workflows.ReportInput) (workflows.ReportResult, error) {
		return workflows.ReportResult{Path: "/reports/" + in.RolloutID + ".md"}, nil
	})
}
