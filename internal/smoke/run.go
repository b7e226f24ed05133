package smoke

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Kinds of Result.
const (
	KindCheck   = "check"
	KindCleanup = "cleanup"
)

// Result is one check or cleanup step.
type Result struct {
	Name string
	Kind string
	OK   bool
	// Status is the HTTP status received (0: no answer).
	Status, Expected int
	// Failures lists every assertion that did not hold.
	Failures []string
	// Detail is the body excerpt or the error (redacted).
	Detail string
	// Captured names the values taken from the response (never the values).
	Captured []string
	// Skipped: not sent, because a value it needs was not captured.
	Skipped    bool
	DurationMS int64
	// missing is the variable a skipped step lacked.
	missing string
}

// Runner sends the checks.
type Runner struct {
	Client *http.Client
	// Redact removes the worker's secrets from text (header values, DSNs).
	Redact func(string) string
	// CommandEnv is the environment of a log check's command.
	CommandEnv []string
	// Poll is how often a log check looks again (default 200ms).
	Poll time.Duration
}

// maxBody is how much of a response is read for assertions.
const maxBody = 1 << 20

// detailBytes is how much of a failing response is kept as its detail.
const detailBytes = 512

// Run sends every check in order, carrying captured values forward, then
// every cleanup step, whatever happened before. vars are the builtins
// (rollout_id, environment). A captured value sent in a header (a login
// token) counts as a secret: it is redacted from every detail, so it never
// reaches the workflow history.
func (r Runner) Run(ctx context.Context, checks, cleanup []Check, vars map[string]string) []Result {
	values := map[string]string{}
	for k, v := range vars {
		values[k] = v
	}
	producer := map[string]string{}
	for _, c := range checks {
		for name := range c.Capture {
			producer[name] = c.Name
		}
	}
	inHeaders := map[string]bool{}
	for _, c := range slices.Concat(checks, cleanup) {
		for _, v := range c.Headers {
			for _, name := range refs(v) {
				inHeaders[name] = true
			}
		}
	}
	var secrets []string
	var out []Result
	run := func(c Check, kind string) {
		res := r.one(ctx, c, kind, values)
		if res.Skipped && kind == KindCheck {
			res.Detail = fmt.Sprintf("not sent: it needs ${%s}, which check %q did not capture", res.missing, producer[res.missing])
		}
		for _, name := range res.Captured {
			if inHeaders[name] {
				secrets = append(secrets, values[name])
			}
		}
		out = append(out, res)
	}
	for _, c := range checks {
		run(c, KindCheck)
	}
	for _, c := range cleanup {
		run(c, KindCleanup)
	}
	for i := range out {
		out[i].Detail = redactValues(out[i].Detail, secrets)
		for j, f := range out[i].Failures {
			out[i].Failures[j] = redactValues(f, secrets)
		}
	}
	return out
}

func (r Runner) redact(s string) string {
	if r.Redact == nil {
		return s
	}
	return r.Redact(s)
}

// one sends one request and checks its answer; captured values go into
// values.
func (r Runner) one(ctx context.Context, c Check, kind string, values map[string]string) (res Result) {
	start := time.Now()
	want := c.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	res = Result{Name: c.Name, Kind: kind, Expected: want}
	defer func() { res.DurationMS = time.Since(start).Milliseconds() }()
	u, miss := expandURL(c.URL, values)
	body, miss2 := expand(c.Body, values, nil)
	headers := map[string]string{}
	var miss3 string
	for k, v := range c.Headers {
		var m string
		headers[k], m = expand(v, values, nil)
		miss3 = cmpOr(miss3, m)
	}
	if m := cmpOr(miss, miss2, miss3); m != "" {
		// A cleanup step whose value was never captured has nothing to clean.
		res.Skipped, res.OK, res.missing = true, kind == KindCleanup, m
		if kind == KindCleanup {
			res.Detail = "skipped: ${" + m + "} was not captured, so there is nothing to clean up"
		}
		return res
	}
	timeout := 10 * time.Second
	if d, err := time.ParseDuration(c.Timeout); err == nil && d > 0 {
		timeout = d
	}
	method := strings.ToUpper(c.Method)
	if method == "" {
		method = http.MethodGet
	}
	var logStart logMark
	if c.ExpectLog != nil {
		logStart = markLog(c.ExpectLog)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(rctx, method, u, rb)
	if err != nil {
		res.Detail = r.redact(err.Error())
		res.Failures = []string{"bad request: " + res.Detail}
		return res
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		res.Detail = r.redact(err.Error())
		res.Failures = []string{"no answer: " + res.Detail}
		return res
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		res.Detail = r.redact("read response: " + err.Error())
		res.Failures = []string{res.Detail}
		return res
	}
	res.Status = resp.StatusCode
	if res.Status != want {
		res.Failures = append(res.Failures, fmt.Sprintf("status %d, want %d", res.Status, want))
	}
	res.Failures = append(res.Failures, assertBody(c.ExpectBody, raw, values)...)
	for _, name := range sortedKeys(c.Capture) {
		v, err := capture(c.Capture[name], raw)
		if err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("capture %s: %v", name, err))
			continue
		}
		values[name] = v
		res.Captured = append(res.Captured, name)
	}
	if c.ExpectLog != nil {
		if f := r.checkLog(ctx, *c.ExpectLog, logStart, values); f != "" {
			res.Failures = append(res.Failures, f)
		}
	}
	for i, f := range res.Failures {
		res.Failures[i] = r.redact(f)
	}
	res.OK = len(res.Failures) == 0
	if !res.OK {
		res.Detail = r.redact(strings.TrimSpace(string(raw[:min(len(raw), detailBytes)])))
	}
	return res
}

// assertBody checks every assertion, returning what did not hold.
func assertBody(as []Assertion, raw []byte, values map[string]string) []string {
	var out []string
	var doc any
	var docErr error
	decoded := false
	for i, a := range as {
		what := fmt.Sprintf("expect_body[%d]", i)
		var equals string
		if a.Equals != nil {
			equals, _ = expand(*a.Equals, values, nil)
		}
		var re *regexp.Regexp
		if a.Regex != "" {
			var err error
			if re, err = regexp.Compile(quoteVars(a.Regex, values)); err != nil {
				out = append(out, fmt.Sprintf("%s: regex: %v", what, err))
				continue
			}
		}
		if a.JSON == "" {
			text := string(raw)
			switch {
			case re != nil && a.Absent && re.MatchString(text):
				out = append(out, fmt.Sprintf("%s: body matches %q, which must not appear", what, a.Regex))
			case re != nil && !a.Absent && !re.MatchString(text):
				out = append(out, fmt.Sprintf("%s: body does not match %q", what, a.Regex))
			}
			if a.Equals != nil && strings.TrimSpace(text) != strings.TrimSpace(equals) {
				out = append(out, fmt.Sprintf("%s: body is not %q", what, equals))
			}
			continue
		}
		if !decoded {
			doc, docErr = decodeJSON(raw)
			decoded = true
		}
		if docErr != nil {
			out = append(out, fmt.Sprintf("%s: %s: the body is not JSON (%v)", what, a.JSON, docErr))
			continue
		}
		path, err := parsePath(a.JSON)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", what, err))
			continue
		}
		v, found := lookup(doc, path)
		switch {
		case a.Absent && found:
			out = append(out, fmt.Sprintf("%s: %s is present (%s), want absent", what, a.JSON, clip(valueText(v))))
			continue
		case a.Absent:
			continue
		case !found:
			out = append(out, fmt.Sprintf("%s: %s is not in the response", what, a.JSON))
			continue
		}
		text := valueText(v)
		if a.Equals != nil && text != equals {
			out = append(out, fmt.Sprintf("%s: %s is %q, want %q", what, a.JSON, clip(text), equals))
		}
		if re != nil && !re.MatchString(text) {
			out = append(out, fmt.Sprintf("%s: %s is %q, which does not match %q", what, a.JSON, clip(text), a.Regex))
		}
	}
	return out
}

func capture(c Capture, raw []byte) (string, error) {
	if c.JSON != "" {
		doc, err := decodeJSON(raw)
		if err != nil {
			return "", fmt.Errorf("the body is not JSON (%v)", err)
		}
		path, err := parsePath(c.JSON)
		if err != nil {
			return "", err
		}
		v, ok := lookup(doc, path)
		if !ok || v == nil {
			return "", fmt.Errorf("%s is not in the response", c.JSON)
		}
		return valueText(v), nil
	}
	re, err := regexp.Compile(c.Regex)
	if err != nil {
		return "", err
	}
	m := re.FindSubmatch(raw)
	switch {
	case m == nil:
		return "", fmt.Errorf("the body does not match %q", c.Regex)
	case len(m) > 1:
		return string(m[1]), nil
	}
	return string(m[0]), nil
}

// expandURL expands ${name} in a URL: path-escaped before the "?",
// query-escaped after it, so a value cannot add a path segment or a
// query parameter.
func expandURL(u string, values map[string]string) (string, string) {
	path, query, hasQuery := strings.Cut(u, "?")
	p, miss := expand(path, values, url.PathEscape)
	if !hasQuery {
		return p, miss
	}
	q, miss2 := expand(query, values, url.QueryEscape)
	return p + "?" + q, cmpOr(miss, miss2)
}

// quoteVars expands ${name} in a pattern to the value, matched literally.
func quoteVars(p string, values map[string]string) string {
	out, _ := expand(p, values, regexp.QuoteMeta)
	return out
}

// logMark is where a log file ended before the request.
type logMark struct {
	size int64
}

// markLog notes the log file's size; a file that does not exist yet may
// appear with the first line the request causes (read from its start).
func markLog(l *LogCheck) logMark {
	if l.File == "" {
		return logMark{}
	}
	fi, err := os.Stat(l.File)
	if err != nil {
		return logMark{}
	}
	return logMark{size: fi.Size()}
}

// checkLog waits up to Within for the pattern in what was logged; it
// returns "" when the log says what it must.
func (r Runner) checkLog(ctx context.Context, l LogCheck, mark logMark, values map[string]string) string {
	within := 5 * time.Second
	if d, err := time.ParseDuration(l.Within); err == nil && d > 0 {
		within = d
	}
	poll := r.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	re, err := regexp.Compile(quoteVars(l.Pattern, values))
	if err != nil {
		return "expect_log: pattern: " + err.Error()
	}
	source := "log file " + l.File
	if l.File == "" {
		source = "output of " + strings.Join(l.Command, " ")
	}
	deadline := time.Now().Add(within)
	var lastErr error
	for {
		text, err := r.readLog(ctx, l, mark, deadline)
		lastErr = err
		if err == nil && re.MatchString(text) {
			if l.Absent {
				line := re.FindString(text)
				return fmt.Sprintf("expect_log: %s shows %q, which must not appear", source, clip(line))
			}
			return ""
		}
		if time.Now().Add(poll).After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
	switch {
	case l.Absent && lastErr == nil:
		return ""
	case lastErr != nil:
		return fmt.Sprintf("expect_log: %s: %v", source, lastErr)
	}
	return fmt.Sprintf("expect_log: %s has no line matching %q within %s", source, l.Pattern, within)
}

// maxLog bounds what one look at the log reads.
const maxLog = 4 << 20

func (r Runner) readLog(ctx context.Context, l LogCheck, mark logMark, deadline time.Time) (string, error) {
	if l.File != "" {
		f, err := os.Open(l.File)
		if err != nil {
			return "", err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return "", err
		}
		from := mark.size
		if fi.Size() < from {
			from = 0 // rotated or truncated since the request: read it all
		}
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			return "", err
		}
		b, err := io.ReadAll(io.LimitReader(f, maxLog))
		return string(b), err
	}
	cctx, cancel := context.WithDeadline(ctx, deadline.Add(time.Second))
	defer cancel()
	cmd := exec.CommandContext(cctx, l.Command[0], l.Command[1:]...)
	cmd.Env = slices.Clone(r.CommandEnv)
	var buf bytes.Buffer
	// One writer for both: exec then copies them on one goroutine.
	out := &limited{w: &buf, n: maxLog}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return buf.String(), fmt.Errorf("exit code %d: %s", ee.ExitCode(), clip(strings.TrimSpace(buf.String())))
		}
		return "", err
	}
	return buf.String(), nil
}

// limited writes at most n bytes to w, dropping the rest.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// redactValues replaces each value (longest first) of 4 characters or
// more with [redacted].
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
