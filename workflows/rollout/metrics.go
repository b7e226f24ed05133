package rollout

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// Rollout-level metrics, emitted through the SDK's metrics handler: the
// worker serves them for Prometheus next to the SDK's own on
// metrics.listen_addr, prefixed "fkrollout_" (fkrollout_gates_opened), and the SDK drops them while a history is replayed,
// so each is counted once however often the workflow is replayed.
const (
	// MetricGatesOpened counts gates opened, by kind and environment.
	MetricGatesOpened = "gates_opened"
	// MetricGateDecisions counts gate outcomes, by kind, choice and how
	// (slack, cli, ui, timer).
	MetricGateDecisions = "gate_decisions"
	// MetricGateWait is how long gates waited for people, by kind.
	MetricGateWait = "gate_wait"
	// MetricConstraintTransitions counts constraint state changes, by
	// environment and new state (applied, validated, debt, rolled-back, …).
	MetricConstraintTransitions = "constraint_transitions"
	// MetricRolloutsFinished counts rollouts that ended, by final state.
	MetricRolloutsFinished = "rollouts_finished"
	// MetricRollbacks counts rollbacks, by trigger (monitor, perf,
	// rollback update, abort with rollback).
	MetricRollbacks = "rollbacks"
)

func countMetric(ctx workflow.Context, name string, tags map[string]string) {
	workflow.GetMetricsHandler(ctx).WithTags(tags).Counter(name).Inc(1)
}

func timeMetric(ctx workflow.Context, name string, tags map[string]string, d time.Duration) {
	workflow.GetMetricsHandler(ctx).WithTags(tags).Timer(name).Record(d)
}
