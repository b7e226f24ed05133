package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

func reportCmd() *cobra.Command {
	var out string
	var asJSON bool
	var tf temporalFlags
	cmd := &cobra.Command{
		Use:     "report ROLLOUT_ID",
		Short:   "print a rollout's (or a fleet's) completion report, markdown; --out FILE also writes it",
		Example: "  fkrollout report fkrollout-20260501-020000 --out reports/fkrollout-20260501-020000.md",
		Args:    exactArgs("ROLLOUT_ID"),
	}
	cmd.Flags().StringVar(&out, "out", "", "also write the report to this file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {\"rollout_id\", \"report\"} as JSON instead of the markdown")
	tf.register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout, id := cmd.Context(), cmd.OutOrStdout(), args[0]
		c, _, err := tf.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		md, err := fetchReport(ctx, c, id)
		if err != nil {
			return err
		}
		if out != "" {
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
		}
		if asJSON {
			return writeJSON(stdout, map[string]string{"rollout_id": id, "report": md})
		}
		_, err = io.WriteString(stdout, md)
		return err
	}
	return cmd
}

// fetchReport renders a closed rollout's report from its result (or, for
// one rolled back, aborted or cancelled, from the status its failure
// carries), which needs no worker, and asks a running one through the
// report query.
func fetchReport(ctx context.Context, c client.Client, id string) (string, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return "", fmt.Errorf("no rollout with id %q", id)
		}
		return "", fmt.Errorf("describe %s: %w", id, err)
	}
	switch desc.GetWorkflowExecutionInfo().GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		// A rolled-back, aborted or cancelled rollout carries its status in
		// the failure it closed with.
		if st, ok := rollout.OutcomeStatus(c.GetWorkflow(ctx, id, "").Get(ctx, nil)); ok {
			return st.Report(), nil
		}
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		var raw json.RawMessage
		if err := c.GetWorkflow(ctx, id, "").Get(ctx, &raw); err == nil {
			// A rollout's result is its Status, a fleet's its FleetStatus.
			var fleet fleet.Status
			if json.Unmarshal(raw, &fleet) == nil && fleet.FleetID != "" {
				return fleet.Report(), nil
			}
			var st rollout.Status
			// A bounded result (a large plan) lists only some constraints:
			// the report query renders the whole status instead.
			if json.Unmarshal(raw, &st) == nil && st.RolloutID != "" && st.Truncated == nil {
				return st.Report(), nil
			}
		}
	}
	v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryReport)
	if err != nil {
		return "", fmt.Errorf("query report of %s (a worker must be running to answer): %w", id, err)
	}
	var md string
	if err := v.Get(&md); err != nil {
		return "", fmt.Errorf("decode report of %s: %w", id, err)
	}
	return md, nil
}
