// Package historymeter estimates what a workflow run writes to its
// history, in the time-skipping test environment (which keeps no history):
// every payload the run sends or receives (activity and child inputs and
// results, updates, signals, its own input and result) and the number of
// events those exchanges produce. Scale tests assert size bounds with it.
package historymeter

import (
	"encoding/json"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Events each exchange adds: an activity is scheduled, started and
// completed, and its completion costs a workflow task (scheduled, started,
// completed); a child adds initiated, started, completed and a task; a
// timer started and fired and a task; an update accepted and completed and
// a task; a signal one event and a task; an upsert or a marker one event.
const (
	eventsPerActivity = 6
	eventsPerChild    = 6
	eventsPerTimer    = 5
	eventsPerUpdate   = 5
	eventsPerSignal   = 4
	// eventOverhead is what an event costs besides its payload data (ids,
	// timestamps, task queue, payload metadata): 110-121 bytes in the
	// histories recorded in workflows/testdata.
	eventOverhead = 120
)

// Run is one workflow run's ledger.
type Run struct {
	WorkflowType string
	Events       int
	// PayloadBytes is the sum of the payloads the run's events carry.
	PayloadBytes int
	// Largest is the largest single payload, and what carried it.
	Largest     int
	LargestWhat string
}

// HistoryBytes is the estimated history size: payloads plus a fixed
// overhead per event.
func (r Run) HistoryBytes() int { return r.PayloadBytes + r.Events*eventOverhead }

// Meter is a worker interceptor that keeps a ledger per workflow id.
type Meter struct {
	interceptor.WorkerInterceptorBase
	mu   sync.Mutex
	runs map[string]*Run
}

// Attach returns a meter metering every workflow env runs: an interceptor
// for what workflows send and receive, listeners for the results of their
// activities and children (a wrapped future would not work in a selector).
func Attach(env *testsuite.TestWorkflowEnvironment) *Meter {
	m := &Meter{runs: map[string]*Run{}}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{m}})
	env.SetOnActivityCompletedListener(func(info *activity.Info, res converter.EncodedValue, err error) {
		m.addResult(info.WorkflowExecution.ID, "activity "+info.ActivityType.Name+" result", res)
	})
	env.SetOnChildWorkflowCompletedListener(func(info *workflow.Info, res converter.EncodedValue, err error) {
		if info.ParentWorkflowExecution != nil {
			m.addResult(info.ParentWorkflowExecution.ID, "child "+info.WorkflowType.Name+" result", res)
		}
	})
	return m
}

// addResult records a result of workflow id (its events were counted when
// the activity or child was scheduled).
func (m *Meter) addResult(id, what string, res converter.EncodedValue) {
	var raw json.RawMessage
	if res == nil || !res.HasValue() || res.Get(&raw) != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.runs[id]
	if !ok {
		r = &Run{}
		m.runs[id] = r
	}
	r.PayloadBytes += len(raw)
	if len(raw) > r.Largest {
		r.Largest, r.LargestWhat = len(raw), what
	}
}

// Run returns the ledger of workflow id.
func (m *Meter) Run(id string) Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[id]; ok {
		return *r
	}
	return Run{}
}

// Reset forgets workflow id's ledger (a continued-as-new run starts anew).
func (m *Meter) Reset(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.runs, id)
}

// add records an exchange of workflow id: events and one payload.
func (m *Meter) add(info *workflow.Info, events int, what string, v any) {
	n := Size(v)
	m.mu.Lock()
	defer m.mu.Unlock()
	id := info.WorkflowExecution.ID
	r, ok := m.runs[id]
	if !ok {
		r = &Run{WorkflowType: info.WorkflowType.Name}
		m.runs[id] = r
	}
	r.Events += events
	r.PayloadBytes += n
	if n > r.Largest {
		r.Largest, r.LargestWhat = n, what
	}
}

// Size is v's size as the JSON data converter encodes it.
func Size(v any) int {
	if v == nil {
		return 0
	}
	if raw, ok := v.(json.RawMessage); ok {
		return len(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}

// InterceptWorkflow meters one workflow run.
func (m *Meter) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &inbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, m: m}
}

type inbound struct {
	interceptor.WorkflowInboundInterceptorBase
	m *Meter
}

func (i *inbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&outbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, m: i.m})
}

func (i *inbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	info := workflow.GetInfo(ctx)
	// Started (input), first task, completed (result).
	i.m.add(info, 4, "workflow input", args(in.Args))
	res, err := i.Next.ExecuteWorkflow(ctx, in)
	i.m.add(info, 0, "workflow result", res)
	return res, err
}

func (i *inbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	n := 0
	for _, p := range in.Arg.GetPayloads() {
		n += len(p.GetData())
	}
	i.m.add(workflow.GetInfo(ctx), eventsPerSignal, "signal "+in.SignalName, json.RawMessage(make([]byte, n)))
	return i.Next.HandleSignal(ctx, in)
}

func (i *inbound) ExecuteUpdate(ctx workflow.Context, in *interceptor.UpdateInput) (any, error) {
	info := workflow.GetInfo(ctx)
	i.m.add(info, eventsPerUpdate, "update "+in.Name+" input", args(in.Args))
	res, err := i.Next.ExecuteUpdate(ctx, in)
	i.m.add(info, 0, "update "+in.Name+" result", res)
	return res, err
}

type outbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	m *Meter
}

func (o *outbound) ExecuteActivity(ctx workflow.Context, name string, a ...any) workflow.Future {
	info := workflow.GetInfo(ctx)
	o.m.add(info, eventsPerActivity, "activity "+name+" input", args(a))
	return o.Next.ExecuteActivity(ctx, name, a...)
}

func (o *outbound) ExecuteChildWorkflow(ctx workflow.Context, name string, a ...any) workflow.ChildWorkflowFuture {
	info := workflow.GetInfo(ctx)
	o.m.add(info, eventsPerChild, "child "+name+" input", args(a))
	return o.Next.ExecuteChildWorkflow(ctx, name, a...)
}

func (o *outbound) NewTimerWithOptions(ctx workflow.Context, d time.Duration, opts workflow.TimerOptions) workflow.Future {
	o.m.add(workflow.GetInfo(ctx), eventsPerTimer, "timer", nil)
	return o.Next.NewTimerWithOptions(ctx, d, opts)
}

func (o *outbound) NewTimer(ctx workflow.Context, d time.Duration) workflow.Future {
	o.m.add(workflow.GetInfo(ctx), eventsPerTimer, "timer", nil)
	return o.Next.NewTimer(ctx, d)
}

func (o *outbound) UpsertTypedSearchAttributes(ctx workflow.Context, u ...temporal.SearchAttributeUpdate) error {
	o.m.add(workflow.GetInfo(ctx), 1, "upsert", nil)
	return o.Next.UpsertTypedSearchAttributes(ctx, u...)
}

func (o *outbound) NewContinueAsNewError(ctx workflow.Context, wfn any, a ...any) error {
	o.m.add(workflow.GetInfo(ctx), 1, "continue-as-new input", args(a))
	return o.Next.NewContinueAsNewError(ctx, wfn, a...)
}

// args is a call's arguments as one value to size (one argument: itself).
func args(a []any) any {
	if len(a) == 1 {
		return a[0]
	}
	return a
}
