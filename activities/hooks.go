package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/smoke"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// maxOutput is how much of a hook's output is kept (the tail).
const maxOutput = 4096

// RunDeployHooks runs the environment's configured hooks in order (for
// example: regenerate the Prisma client, restart the service); with
// in.Set, its rollback hooks instead (stop the service before the drop,
// start it after). Commands come
// from the worker configuration only. A hook that fails is reported (exit
// code and output tail) and the rest are skipped: the workflow asks a
// human. No hooks configured: an empty result.
func (a *Activities) RunDeployHooks(ctx context.Context, in rollout.HooksInput) ([]rollout.HookResult, error) {
	env, err := a.Config.Environment(in.Environment)
	if err != nil {
		return nil, err
	}
	hooks, err := env.HookSet(in.Set)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypeConfig, nil)
	}
	out := []rollout.HookResult{}
	hb := a.startHeartbeat(ctx, Progress{Total: len(hooks), Note: cmp.Or(in.Set, "deploy") + " hooks"})
	defer hb.end()
	for i, h := range pendingHooks(hooks, in.Done) {
		hb.set(Progress{Done: i, Total: len(hooks), Item: h.Name})
		res := a.runHook(ctx, in, h, h.TimeoutOr(10*time.Minute))
		out = append(out, res)
		if !res.OK || in.One {
			break
		}
	}
	return out, nil
}

// pendingHooks are the hooks not yet done, in order: each name in done
// accounts for one occurrence, so a repeated name runs as often as it is
// configured.
func pendingHooks(hooks []config.Hook, done []string) []config.Hook {
	left := map[string]int{}
	for _, d := range done {
		left[d]++
	}
	var out []config.Hook
	for _, h := range hooks {
		if left[h.Name] > 0 {
			left[h.Name]--
			continue
		}
		out = append(out, h)
	}
	return out
}

func (a *Activities) runHook(ctx context.Context, in rollout.HooksInput, h config.Hook, timeout time.Duration) rollout.HookResult {
	start := time.Now()
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env, secrets := hookEnv(h, in, os.LookupEnv)
	redact := func(s string) string { return redactValues(a.redact(s), secrets) }
	cmd := exec.CommandContext(hctx, h.Command[0], h.Command[1:]...)
	cmd.Dir = h.Dir
	cmd.Env = env
	var buf tailBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	res := rollout.HookResult{Name: h.Name, OK: err == nil, Output: redact(buf.String()), DurationMS: time.Since(start).Milliseconds()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		res.ExitCode = -1
		res.Output = strings.TrimSpace(res.Output + "\n" + redact(err.Error()))
	}
	if hctx.Err() == context.DeadlineExceeded {
		res.Output = strings.TrimSpace(res.Output + fmt.Sprintf("\n(timed out after %s)", timeout))
	}
	activityLogger(ctx, a.Log).Info("hook finished", "set", cmp.Or(in.Set, "deploy"), "environment", in.Environment, "hook", h.Name, "ok", res.OK, "exit_code", res.ExitCode)
	return res
}

// hookBaseEnv are the worker variables every hook gets (when set): enough
// to find programs and run them in the worker's locale and time zone.
var hookBaseEnv = []string{"PATH", "HOME", "LANG", "TZ"}

// hookEnv is a hook's whole environment, and the values in it that count
// as secrets (its env: map and what it inherits). The worker's own
// environment holds every DSN, the Slack tokens and whatever credentials
// its host injects; a hook sees none of it unless its configuration names
// the variable. Later sources win: base, inherit_env, env:, and the
// worker's FKROLLOUT_ROLLOUT_ID / FKROLLOUT_RUN_ID / FKROLLOUT_ENVIRONMENT
// last, so a hook can rely on them (the run id lets a script that did its
// work before a crash recognise the same run).
func hookEnv(h config.Hook, in rollout.HooksInput, lookup func(string) (string, bool)) (env, secrets []string) {
	vars := map[string]string{}
	for _, k := range hookBaseEnv {
		if v, ok := lookup(k); ok {
			vars[k] = v
		}
	}
	for _, k := range h.InheritEnv {
		if v, ok := lookup(k); ok {
			vars[k] = v
			secrets = append(secrets, v)
		}
	}
	for k, v := range h.Env {
		vars[k] = v
		secrets = append(secrets, v)
	}
	vars["FKROLLOUT_ROLLOUT_ID"] = in.RolloutID
	vars["FKROLLOUT_RUN_ID"] = in.RunID
	vars["FKROLLOUT_ENVIRONMENT"] = in.Environment
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return env, secrets
}

// redactValues replaces each value (longest first, so one that contains
// another goes whole) with the marker a.redact uses. Values shorter than 4
// characters are left, as a.redact leaves them: they would mangle output.
func redactValues(s string, values []string) string {
	values = slices.Clone(values)
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// tailBuffer keeps the last maxOutput bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > maxOutput {
		t.buf = t.buf[len(t.buf)-maxOutput:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// RunSmokeChecks sends each configured check in order (status, body
// assertions, captured values carried to later checks, log lines), then
// every cleanup step, even after a failure (package smoke).
func (a *Activities) RunSmokeChecks(ctx context.Context, in rollout.HooksInput) ([]rollout.SmokeResult, error) {
	env, err := a.Config.Environment(in.Environment)
	if err != nil {
		return nil, err
	}
	cmdEnv, _ := hookEnv(config.Hook{}, in, os.LookupEnv)
	r := smoke.Runner{Redact: a.redact, CommandEnv: cmdEnv}
	res := r.Run(ctx, env.SmokeChecks, env.SmokeCleanup, map[string]string{smoke.VarRolloutID: in.RolloutID, smoke.VarEnvironment: in.Environment})
	out := make([]rollout.SmokeResult, 0, len(res))
	for _, s := range res {
		kind := s.Kind
		if kind == smoke.KindCheck {
			kind = "" // the default, as results before cleanup steps existed
		}
		out = append(out, rollout.SmokeResult{Name: s.Name, Kind: kind, OK: s.OK, Status: s.Status, Expected: s.Expected, Detail: s.Detail,
			Failures: s.Failures, Captured: s.Captured, Skipped: s.Skipped, DurationMS: s.DurationMS})
	}
	activityLogger(ctx, a.Log).Info("smoke checks finished", "environment", in.Environment, "checks", len(out), "failed", failedCount(out))
	return out, nil
}

func failedCount(rs []rollout.SmokeResult) int {
	n := 0
	for _, r := range rs {
		if !r.OK {
			n++
		}
	}
	return n
}

// Notify hands an event to the configured notifier, adding the Temporal UI
// link. Delivery errors are returned (the workflow records and ignores
// them after the activity's few retries).
func (a *Activities) Notify(ctx context.Context, ev notify.Event) (notify.Receipt, error) {
	if ev.UILink == "" && a.Config != nil {
		info := activity.GetInfo(ctx)
		ev.UILink = UILink(a.Config.UIURL, info.WorkflowNamespace, info.WorkflowExecution.ID)
	}
	r, err := a.Notifier.Notify(ctx, ev)
	if err != nil {
		return r, a.notifyError(ev.Kind, err)
	}
	return r, nil
}

// UILink is the Temporal UI page of a workflow.
func UILink(base, namespace, workflowID string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/namespaces/" + namespace + "/workflows/" + workflowID
}
