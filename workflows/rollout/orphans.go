package rollout

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// orphanExportVersion: before the remediation gate opens, the worker
// writes every orphan row of the constraints it asks about to a file and
// the gate links it.
const orphanExportVersion = "checks-orphan-export"

// ExportOrphansInput asks for the full orphan list of fks in one
// environment, for one audit round (the files of each round are kept).
type ExportOrphansInput struct {
	Environment string            `json:"environment"`
	RolloutID   string            `json:"rollout_id"`
	Round       int               `json:"round"`
	FKs         []plan.ForeignKey `json:"fks"`
}

// OrphanExport is one constraint's orphan file. The rows stay on the
// worker host; the workflow carries only where they are and how many.
type OrphanExport struct {
	FK    string `json:"fk"`
	Round int    `json:"round"`
	// Path is the CSV file on the worker host.
	Path string `json:"path"`
	// Rows is how many orphans the file lists; Orphans how many there were.
	Rows    int64 `json:"rows"`
	Orphans int64 `json:"orphans"`
	// Truncated: the configured maximum stopped the list (Limit rows).
	Truncated bool   `json:"truncated,omitempty"`
	Limit     int64  `json:"limit,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
}

// Note is how a gate or report names the file: "path (120 rows)" or
// "path (first 1000 of 5400 rows: the export maximum)".
func (e OrphanExport) Note() string {
	if e.Truncated {
		return fmt.Sprintf("%s (first %d of %d rows: the configured export maximum)", e.Path, e.Rows, e.Orphans)
	}
	return fmt.Sprintf("%s (%d rows)", e.Path, e.Rows)
}

// exportOrphans writes the orphan lists of the dirty constraints before
// their gate opens. A failed export never holds the rollout up: the gate
// opens with the samples, and the timeline says why there is no file. An
// abort or rollback during the export returns errStopped.
func (w *rollout) exportOrphans(ctx workflow.Context, name string, dirty []AuditFigure) (map[string]OrphanExport, error) {
	if workflow.GetVersion(ctx, orphanExportVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil, nil
	}
	rep := w.report(name)
	in := ExportOrphansInput{Environment: name, RolloutID: w.id, Round: rep.AuditRounds}
	for _, f := range dirty {
		if fk, ok := w.fk(f.FK); ok {
			in.FKs = append(in.FKs, fk)
		}
	}
	// A few tries, then the gate opens without the file: the decision
	// must not wait on it.
	opts := steps.Long()
	rp := *opts.RetryPolicy
	rp.MaximumAttempts = 3
	opts.RetryPolicy = &rp
	// An abort cancels the export like any step (w.cancelStep).
	sctx, cancel := workflow.WithCancel(ctx)
	w.cancelStep = cancel
	actx := workflow.WithActivityOptions(sctx, steps.WithSummary(opts, fmt.Sprintf("export the orphans of %d constraint(s) in %s", len(in.FKs), name)))
	var res []OrphanExport
	err := workflow.ExecuteActivity(actx, ActExportOrphans, in).Get(actx, &res)
	cancel()
	w.cancelStep = nil
	if w.stop != nil {
		return nil, errStopped
	}
	if err != nil {
		w.event(ctx, name, w.st.Phase, fmt.Sprintf("orphan export failed (the gate shows the samples only): %v", steps.RootCause(err)))
		return nil, nil
	}
	rep = w.report(name)
	rep.OrphanExports = append(rep.OrphanExports, res...)
	w.setReport(name, rep)
	out := map[string]OrphanExport{}
	for _, e := range res {
		out[e.FK] = e
		w.event(ctx, name, w.st.Phase, fmt.Sprintf("orphans of %s exported to %s", e.FK, e.Note()))
	}
	return out, nil
}
