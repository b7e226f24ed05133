package uitest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/workflows"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// browser starts a headless chromium for the test. A missing chromium is
// a failure with instructions, never a skip: .ci/run installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: apt-get install chromium (.ci/run does): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 100*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// exampleInput is README's example JSON with the production window moved
// to open now (the test cannot wait for 02:00 in Jakarta) and the perf
// phase and monitor off (this stub worker has neither a workload nor
// monitor sources).
func exampleInput(t *testing.T, now time.Time) string {
	t.Helper()
	b, err := os.ReadFile("../../../workflows/testdata/example-input.json")
	require.NoError(t, err)
	var in rollout.Input
	require.NoError(t, json.Unmarshal(b, &in))
	for _, e := range in.Environments {
		if w := e.MaintenanceWindow; w != nil {
			loc, err := time.LoadLocation(w.Timezone)
			require.NoError(t, err)
			w.Start = now.In(loc).Add(-time.Minute).Format("15:04")
		}
	}
	in.Perf, in.Monitor = nil, rollout.MonitorInput{}
	in.Skip = []string{policy.SafeguardPerf, policy.SafeguardMonitor}
	out, err := json.MarshalIndent(in, "", "  ")
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "input.json")
	require.NoError(t, os.WriteFile(p, out, 0o600))
	return p
}

func pageText(ctx context.Context) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("FKROLLOUT_UI_SHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot: %s", p)
}

func TestReleaseOwnerInTemporalUI(t *testing.T) {
	srv, ui := devserver.StartWithUI(t, rollout.SearchAttributes())
	tq := "ui-test"
	w := worker.New(srv.Client(), tq, worker.Options{})
	workflows.Register(w)
	registerStubs(w, policy.Config{TrustClientIdentity: true, AllowSkip: policy.Safeguards})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	ctx := browser(t)
	input := exampleInput(t, time.Now())
	id := "ui-rollout"

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(ui+"/namespaces/default/workflows/start-workflow"),
		chromedp.WaitVisible(`#workflowId`),
		chromedp.SendKeys(`#workflowId`, id),
		chromedp.SendKeys(`#taskQueue`, tq),
		chromedp.SendKeys(`#workflowType`, rollout.WorkflowName),
		chromedp.SetUploadFiles(`input[type=file]`, []string{input}),
		chromedp.Sleep(time.Second),
	))
	shot(t, ctx, "1-start-form.png")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(`[data-testid=start-workflow-button]`), chromedp.Sleep(3*time.Second)))
	shot(t, ctx, "2-after-start.png")
	// The gate opens once staging is through.
	var st *rollout.Status
	require.Eventually(t, func() bool {
		v, err := srv.Client().QueryWorkflow(context.Background(), id, "", rollout.QueryStatus)
		if err != nil || v.Get(&st) != nil {
			return false
		}
		return len(st.OpenGates) == 1
	}, 30*time.Second, 200*time.Millisecond, "the promotion gate never opened")
	gate := st.OpenGates[0].ID
	// The UI started it with README's input, and the status query names
	// the gate block's facts the page must show.
	assert.Equal(t, "rita@example.com", st.Requester)
	assert.Equal(t, "production/promotion/1", gate)

	userMetadata := `[...document.querySelectorAll('*')].find(e => e.textContent.trim() === 'User Metadata' && e.children.length === 0)`
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(ui+"/namespaces/default/workflows/"+id),
		until(`!!`+userMetadata), js(userMetadata+`.click()`),
		until(`[...document.querySelectorAll('iframe')].some(f => { try { return f.contentDocument.body.textContent.includes('Votes:') } catch (e) { return false } })`),
		chromedp.Sleep(500*time.Millisecond))) // the frame sizes itself after its content
	shot(t, ctx, "gate-in-ui.png")
	// The UI renders current details (markdown) in a sandboxed iframe: read
	// its document, or its srcdoc when the sandbox hides the document.
	details, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('iframe')].map(f => {
		try { return f.contentDocument.body.textContent } catch (e) { return f.srcdoc || '' } }).join('\n') + document.body.textContent`))
	require.NoError(t, err)
	// Short enough to read without scrolling: the scrollable box that holds
	// the head line shows all of it (heights in CSS pixels).
	// The UI renders current details in an iframe it sizes itself (about
	// one line short of the content in UI 2.42.1; the details end with an
	// empty paragraph for it to cut): every line that says something must
	// be inside the frame.
	fit, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		for (const f of document.querySelectorAll('iframe')) {
			let d = null;
			try { d = f.contentDocument } catch (e) {}
			if (d && d.body && d.body.textContent.includes('phase promotion')) {
				// The bottom of the last line that says something (the
				// progress line), against the frame.
				const p = [...d.querySelectorAll('p, li')].filter(e => e.textContent.trim() !== '').pop();
				if (!p) return 'no text';
				return Math.ceil(p.getBoundingClientRect().bottom) + '/' + f.clientHeight;
			}
		}
		return 'no current details frame';
	})()`))
	require.NoError(t, err)
	t.Logf("current details: content/visible height %s px", fit)
	var content, visible int
	_, scanErr := fmt.Sscanf(fit, "%d/%d", &content, &visible)
	require.NoError(t, scanErr, "current details box: %s", fit)
	assert.LessOrEqual(t, content, visible, "the current details are readable without scrolling")
	for _, want := range []string{"phase promotion", "Gate production/promotion/1", "Votes: none yet (2 needed to proceed)",
		`"gate_id":"production/promotion/1"`, "fkrollout decide ui-rollout production/promotion/1 approve"} {
		assert.Contains(t, details, want, "the gate block on the page")
	}

	// Both approvers decide in the UI's Update dialog: decide, the payload
	// the gate block shows with their actor and reason, Submit.
	for i, actor := range []string{"alice@example.com", "bob@example.com"} {
		text := decideInUI(t, ctx, ui+"/namespaces/default/workflows/"+id, gate, actor, i)
		if i == 0 {
			// textContent: the handler list is a closed dropdown innerText skips.
			assert.Contains(t, text, rollout.HandlerDescription(approval.UpdateDecide), "the Update menu explains decide")
		}
		require.Eventually(t, func() bool {
			v, err := srv.Client().QueryWorkflow(context.Background(), id, "", rollout.QueryStatus)
			if err != nil || v.Get(&st) != nil {
				return false
			}
			for _, g := range st.Gates {
				if g.ID == gate && (len(g.Votes) == i+1 || g.Decision != nil) {
					return true
				}
			}
			return false
		}, 15*time.Second, 300*time.Millisecond, "the decide Update %s sent from the UI's dialog did not reach the workflow", actor)
	}
	require.Eventually(t, func() bool {
		v, err := srv.Client().QueryWorkflow(context.Background(), id, "", rollout.QueryStatus)
		return err == nil && v.Get(&st) == nil && st.State.Terminal()
	}, 60*time.Second, 300*time.Millisecond, "rollout did not finish after the UI's decisions")
	require.Equal(t, rollout.StateCompleted, st.State)
	var decided []string
	for _, d := range st.Decisions {
		decided = append(decided, d.Actor+"/"+d.Via)
	}
	assert.ElementsMatch(t, []string{"alice@example.com/ui", "bob@example.com/ui"}, decided, "both decisions came from the UI's decide Update")

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(ui+"/namespaces/default/workflows/"+id),
		until(`document.body.innerText.includes('"state": "completed"')`)))
	shot(t, ctx, "completed.png")
	text, err := pageText(ctx)
	require.NoError(t, err)
	assert.Contains(t, text, "Completed")
	assert.Contains(t, text, `"state": "completed"`)
}

// decideInUI opens More Actions → Send an Update on the workflow's page,
// picks decide, loads the payload (the dialog's Upload JSON, as pasting
// would) and submits; it returns the dialog's text before submitting.
func decideInUI(t *testing.T, ctx context.Context, page, gate, actor string, n int) string {
	t.Helper()
	payload := `{"gate_id":"` + gate + `","choice":"approve","actor":"` + actor + `","reason":"staging clean","via":"ui"}`
	file := filepath.Join(t.TempDir(), "decide.json")
	require.NoError(t, os.WriteFile(file, []byte(payload), 0o600))
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(page),
		until(`!!document.querySelector('[aria-controls=workflow-actions]')`),
		js(`document.querySelector('[aria-controls=workflow-actions]').click()`),
		until(`!!document.querySelector('[data-testid=update-button]')`),
		js(`document.querySelector('[data-testid=update-button]').click()`),
		until(`!!document.querySelector('dialog[open] [data-testid=update-select-button]')`),
		js(`document.querySelector('dialog[open] [data-testid=update-select-button]').click()`),
		until(`[...document.querySelectorAll('dialog[open] #update-select-select li')].some(li => li.querySelector('span').textContent.trim() === 'decide')`),
		js(`[...document.querySelectorAll('dialog[open] #update-select-select li')].find(li => li.querySelector('span').textContent.trim() === 'decide').click()`),
		until(`!!document.querySelector('dialog[open] input[type=file]')`),
		chromedp.SetUploadFiles(`dialog[open] input[type=file]`, []string{file}),
		until(fmt.Sprintf(`(document.querySelector('dialog[open] .cm-content') || {textContent: ''}).textContent.includes(%q)`, actor))))
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.textContent`))
	require.NoError(t, err)
	editor, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('dialog[open] .cm-content').textContent`))
	require.NoError(t, err)
	require.Contains(t, editor, actor, "the payload is in the dialog's editor")
	shot(t, ctx, fmt.Sprintf("update-dialog-%d.png", n+1))
	// Other dialogs on the page have a confirm button too: this dialog's.
	require.NoError(t, chromedp.Do(ctx, js(`document.querySelector('dialog[open] [data-testid=confirm-modal-button]').click()`),
		until(`!document.querySelector('dialog[open]')`)))
	shot(t, ctx, fmt.Sprintf("decided-in-ui-%d.png", n+1))
	return text
}

// until waits (up to 30 s) for a JavaScript expression to be true in the
// page: the UI renders asynchronously, and fixed sleeps flake under load.
func until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))
}

// js runs a statement in the page: the UI's menus are clicked the way a
// user's click lands, without chromedp's visibility wait on animated menus.
func js(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
		return err
	})
}
