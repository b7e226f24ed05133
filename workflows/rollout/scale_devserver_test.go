package rollout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// TestScaleRolloutOnDevServer runs the scale test's rollout on a real
// Temporal dev server and reads the real history: its size in bytes and
// events and its largest payload (what the time-skipping estimate models).
// 100 constraints by default (a minute); 500 take five on the shared machine:
//
//	FKROLLOUT_SCALE_FKS=500 FKROLLOUT_TEMPORAL_CLI=bin/temporal go test ./workflows/rollout -run TestScaleRolloutOnDevServer -v -timeout 20m
func TestScaleRolloutOnDevServer(t *testing.T) {
	fks := scaleFKs(100)
	srv := devserver.Start(t, SearchAttributes())
	c := srv.Client()
	const queue = "fkrollout-scale"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	w.RegisterWorkflowWithOptions(watch.Workflow, workflow.RegisterOptions{Name: watch.WorkflowName})
	fake := newFake()
	fake.shape = newScaleShape(fks, 5)
	for _, env := range []string{"staging", "production"} {
		fake.orphans[env] = map[string]int64{}
		for i, fk := range fake.shape.plan.ForeignKeys {
			if i%2 == 0 {
				fake.orphans[env][fk.Name] = int64(10 + i)
			}
		}
	}
	fake.registerOn(w, time.Now)
	require.NoError(t, w.Start())
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	in := testInput()
	in.Environments[1].MaintenanceWindow = nil
	const id = "rollout-scale-devserver"
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, WorkflowName, in)
	require.NoError(t, err)
	done := make(chan error, 1)
	var result Status
	go func() { done <- run.Get(ctx, &result) }()

	// Approvers: alice and bob decide every gate as it opens.
	sent := map[string]bool{}
	for finished := false; !finished; {
		select {
		case err := <-done:
			require.NoError(t, err)
			finished = true
			continue
		case <-time.After(300 * time.Millisecond):
		}
		v, err := c.QueryWorkflow(ctx, id, "", QueryStatus)
		if err != nil {
			continue
		}
		var st Status
		require.NoError(t, v.Get(&st))
		for _, g := range st.OpenGates {
			for _, d := range approveAll(nil, g) {
				if sent[g.ID+d.Actor] {
					continue
				}
				sent[g.ID+d.Actor] = true
				_, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: approval.UpdateDecide,
					Args: []any{d}, WaitForStage: client.WorkflowUpdateStageCompleted})
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Logf("decide %s as %s: %v", g.ID, d.Actor, err)
				}
			}
		}
	}

	events, bytes, largest := 0, 0, 0
	it := c.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		events++
		bytes += proto.Size(e)
		largest = max(largest, largestPayload(e.ProtoReflect()))
	}
	t.Logf("dev server: rollout of %d constraints over 2 environments: history %.2f MB in %d events; largest payload %.1f KB",
		fks, float64(bytes)/(1<<20), events, float64(largest)/1024)
	assert.Equal(t, StateCompleted, result.State)
	assert.Less(t, largest, scaleMaxPayload)
	assert.Less(t, bytes, scaleMaxHistory)
}

// largestPayload is the largest payload's data in a history event.
func largestPayload(m protoreflect.Message) int {
	n := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			for i := range v.List().Len() {
				n = max(n, largestPayload(v.List().Get(i).Message()))
			}
		case fd.Kind() == protoreflect.MessageKind && fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					n = max(n, largestPayload(mv.Message()))
					return true
				})
			}
		case fd.Kind() == protoreflect.MessageKind:
			n = max(n, largestPayload(v.Message()))
		case fd.Name() == "data" && fd.Kind() == protoreflect.BytesKind && m.Descriptor().Name() == "Payload":
			n = max(n, len(v.Bytes()))
		}
		return true
	})
	return n
}
