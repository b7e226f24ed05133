// Package workflows registers fkrollout's workflows on a worker. Each
// workflow lives in its own package: rollout (FKRollout), fleet
// (FKFleetRollout), watch (FKRolloutMonitor, FKHealthCheck) and discover
// (FKDiscover); approval is the gate kernel rollouts and fleets share, and
// steps is how they all run activities.
package workflows

import (
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/workflows/discovery"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// Registrar is what a worker (or a test environment) registers workflows on.
type Registrar interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// Register registers every workflow under its stable name.
func Register(r Registrar) {
	r.RegisterWorkflowWithOptions(rollout.Workflow, workflow.RegisterOptions{Name: rollout.WorkflowName})
	// The production watch (a child of the rollout) and the monthly FK
	// health check (started by a Schedule) run on the same worker.
	r.RegisterWorkflowWithOptions(watch.Workflow, workflow.RegisterOptions{Name: watch.WorkflowName})
	r.RegisterWorkflowWithOptions(watch.HealthCheckWorkflow, workflow.RegisterOptions{Name: watch.HealthCheckWorkflowName})
	r.RegisterWorkflowWithOptions(fleet.Workflow, workflow.RegisterOptions{Name: fleet.WorkflowName})
	r.RegisterWorkflowWithOptions(discovery.Workflow, workflow.RegisterOptions{Name: discovery.WorkflowName})
}

// ActivityNames are the names of every activity the workflows schedule;
// the worker must register each (a worker test checks it does).
func ActivityNames() []string {
	return slices.Concat(rollout.ActivityNames(), watch.ActivityNames(),
		[]string{steps.ActNotify, discovery.ActDiscoverForeignKeys})
}
