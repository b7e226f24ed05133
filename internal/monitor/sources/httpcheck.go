package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/monitor"
)

// HTTPSource runs smoke checks every interval. A check that cannot connect
// fails (the application being unreachable is exactly what it detects);
// smoke_failures@<source> is the number of failing checks.
type HTTPSource struct {
	SourceName string
	Checks     []monitor.HTTPCheck
	Client     *http.Client
}

// Name implements monitor.Source.
func (h *HTTPSource) Name() string { return h.SourceName }

// Provides implements monitor.Source.
func (h *HTTPSource) Provides() []string { return []string{monitor.MetricSmokeFailures} }

// Collect implements monitor.Source.
func (h *HTTPSource) Collect(ctx context.Context, _ json.RawMessage) (monitor.Reading, error) {
	r := monitor.Reading{Values: map[string]float64{}}
	failed := 0
	for _, c := range h.Checks {
		ok, detail := h.run(ctx, c)
		v := 0.0
		if !ok {
			failed++
			v = 1
			r.Notes = append(r.Notes, "smoke check "+c.Name+" failed: "+detail)
		}
		r.Values["smoke_failed@"+h.SourceName+"/"+c.Name] = v
	}
	r.Values[monitor.MetricSmokeFailures+"@"+h.SourceName] = float64(failed)
	return r, nil
}

// RunCheck runs one check and says whether it passed and, if not, why.
func (h *HTTPSource) run(ctx context.Context, c monitor.HTTPCheck) (bool, string) {
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	timeout := 10 * time.Second
	if d, err := time.ParseDuration(c.Timeout); err == nil && d > 0 {
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := c.Method
	if method == "" {
		method = http.MethodGet
	}
	want := c.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL, body)
	if err != nil {
		return false, fmt.Sprintf("bad request: %v", err)
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Sprintf("%s %s: %v", method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return false, fmt.Sprintf("%s %s answered %d, want %d", method, req.URL.Redacted(), resp.StatusCode, want)
	}
	return true, ""
}
