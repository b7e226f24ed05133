package smoke

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// app is a small order service: orders reference customers; an order for
// a missing customer is refused with a clear FK message (and a log line),
// a malformed body with an unrelated validation error.
type app struct {
	mu      sync.Mutex
	orders  map[string]int
	deleted []string
	next    int
	logPath string
}

func newApp(t *testing.T) (*app, *httptest.Server) {
	a := &app{orders: map[string]int{}, next: 17, logPath: filepath.Join(t.TempDir(), "app.log")}
	if err := os.WriteFile(a.logPath, []byte("old line: caught FK violation long ago\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"token":"tok-s3cr3t-value"}`)
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-s3cr3t-value" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":"bad token %s"}`, r.Header.Get("Authorization"))
			return
		}
		fmt.Fprint(w, `{"user":"smoke"}`)
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			CustomerID *int `json:"customer_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.CustomerID == nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"code":"VALIDATION","message":"customer_id is required"}}`)
			return
		}
		if *in.CustomerID == 999 {
			a.log(fmt.Sprintf("caught FK violation fk_orders_customer for customer %d: answered 400", *in.CustomerID))
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"code":"FK_VIOLATION","message":"customer 999 does not exist"}}`)
			return
		}
		a.mu.Lock()
		id := fmt.Sprintf("ord-%d", a.next)
		a.next++
		a.orders[id] = *in.CustomerID
		a.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"data":{"id":%q,"items":[{"sku":"A-1","qty":2}]}}`, id)
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		c, ok := a.orders[r.PathValue("id")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"id":%q,"customer_id":%d}`, r.PathValue("id"), c)
	})
	mux.HandleFunc("DELETE /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.orders, r.PathValue("id"))
		a.deleted = append(a.deleted, r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *app) log(line string) {
	f, err := os.OpenFile(a.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

func str(s string) *string { return &s }

func TestRunChainsAssertsAndCleansUp(t *testing.T) {
	a, srv := newApp(t)
	fkBody := `{"customer_id": 999}`
	tests := []struct {
		name    string
		checks  []Check
		cleanup []Check
		// want: per result "name:ok" or "name:FAIL:<substring of a failure or detail>" or "name:skipped"
		want    []string
		deleted int
	}{
		{
			name: "create, query, clean up",
			checks: []Check{
				{Name: "create", Method: "POST", URL: srv.URL + "/orders", Body: `{"customer_id": 1}`, ExpectStatus: 201,
					ExpectBody: []Assertion{{JSON: "data.id", Regex: "^ord-[0-9]+$"}, {JSON: "data.items[0].qty", Equals: str("2")}, {JSON: "error", Absent: true}},
					Capture:    map[string]Capture{"order_id": {JSON: "data.id"}}},
				{Name: "query", URL: srv.URL + "/orders/${order_id}", ExpectBody: []Assertion{{JSON: "id", Equals: str("${order_id}")}, {JSON: "customer_id", Equals: str("1")}}},
			},
			cleanup: []Check{{Name: "delete", Method: "DELETE", URL: srv.URL + "/orders/${order_id}", ExpectStatus: 204}},
			want:    []string{"create:ok", "query:ok", "delete:ok"},
			deleted: 1,
		},
		{
			name: "an unrelated validation error does not pass as the FK check",
			checks: []Check{{Name: "invalid insert", Method: "POST", URL: srv.URL + "/orders", Body: `{"customer": 999}`, ExpectStatus: 400,
				ExpectBody: []Assertion{{JSON: "error.code", Equals: str("FK_VIOLATION")}, {Regex: "does not exist"}}}},
			want: []string{`invalid insert:FAIL:error.code is "VALIDATION", want "FK_VIOLATION"`},
		},
		{
			name: "the FK error is answered clearly and logged",
			checks: []Check{{Name: "invalid insert", Method: "POST", URL: srv.URL + "/orders", Body: fkBody, ExpectStatus: 400,
				ExpectBody: []Assertion{{JSON: "error.code", Equals: str("FK_VIOLATION")}, {JSON: "error.message", Regex: "customer [0-9]+ does not exist"}},
				ExpectLog:  &LogCheck{File: a.logPath, Pattern: `caught FK violation .* answered 400`, Within: "2s"}}},
			want: []string{"invalid insert:ok"},
		},
		{
			name: "a log line written before the request does not count",
			checks: []Check{{Name: "valid insert", Method: "POST", URL: srv.URL + "/orders", Body: `{"customer_id": 2}`, ExpectStatus: 201,
				ExpectLog: &LogCheck{File: a.logPath, Pattern: `caught FK violation`, Within: "300ms"}}},
			want: []string{"valid insert:FAIL:has no line matching"},
		},
		{
			name: "a log command sees the line; absent refuses one that must not appear",
			checks: []Check{
				{Name: "logged by command", Method: "POST", URL: srv.URL + "/orders", Body: fkBody, ExpectStatus: 400,
					ExpectLog: &LogCheck{Command: []string{"tail", "-n", "1", a.logPath}, Pattern: `customer 999: answered 400`, Within: "2s"}},
				{Name: "no FK error expected", Method: "POST", URL: srv.URL + "/orders", Body: fkBody, ExpectStatus: 400,
					ExpectLog: &LogCheck{Command: []string{"tail", "-n", "1", a.logPath}, Pattern: `caught FK violation`, Absent: true, Within: "300ms"}},
			},
			want: []string{"logged by command:ok", "no FK error expected:FAIL:must not appear"},
		},
		{
			name: "a failed create skips the query and its cleanup, and says why",
			checks: []Check{
				{Name: "create", Method: "POST", URL: srv.URL + "/orders", Body: `{}`, ExpectStatus: 201, Capture: map[string]Capture{"order_id": {JSON: "data.id"}}},
				{Name: "query", URL: srv.URL + "/orders/${order_id}"},
				{Name: "health", URL: srv.URL + "/me", ExpectStatus: 401},
			},
			cleanup: []Check{{Name: "delete", Method: "DELETE", URL: srv.URL + "/orders/${order_id}", ExpectStatus: 204}},
			want:    []string{"create:FAIL:status 400, want 201", `query:FAIL:it needs ${order_id}, which check "create" did not capture`, "health:ok", "delete:skipped"},
		},
		{
			name: "cleanup runs after a failed check and a regex capture feeds a header",
			checks: []Check{
				{Name: "create", Method: "POST", URL: srv.URL + "/orders", Body: `{"customer_id": 3}`, ExpectStatus: 201, Capture: map[string]Capture{"order_id": {Regex: `"id":"([^"]+)"`}}},
				{Name: "login", Method: "POST", URL: srv.URL + "/login", Capture: map[string]Capture{"token": {JSON: "token"}}},
				{Name: "me", URL: srv.URL + "/me", Headers: map[string]string{"Authorization": "Bearer ${token}"}, ExpectBody: []Assertion{{JSON: "user", Equals: str("someone-else")}}},
			},
			cleanup: []Check{{Name: "delete", Method: "DELETE", URL: srv.URL + "/orders/${order_id}", ExpectStatus: 204}},
			want:    []string{"create:ok", "login:ok", `me:FAIL:user is "smoke", want "someone-else"`, "delete:ok"},
			deleted: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Validate("environments.test", tc.checks, tc.cleanup); err != nil {
				t.Fatalf("config does not validate: %v", err)
			}
			a.mu.Lock()
			a.deleted = nil
			a.mu.Unlock()
			r := Runner{CommandEnv: []string{"PATH=" + os.Getenv("PATH")}, Poll: 50 * time.Millisecond}
			got := r.Run(context.Background(), tc.checks, tc.cleanup, map[string]string{VarRolloutID: "r1", VarEnvironment: "test"})
			if len(got) != len(tc.want) {
				t.Fatalf("%d results, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				name, rest, _ := strings.Cut(w, ":")
				if g.Name != name {
					t.Errorf("result %d is %q, want %q", i, g.Name, name)
				}
				all := strings.Join(append(g.Failures, g.Detail), " | ")
				switch {
				case rest == "ok" && (!g.OK || g.Skipped):
					t.Errorf("%s: not ok: %s", name, all)
				case rest == "skipped" && !g.Skipped:
					t.Errorf("%s: sent, want skipped (%+v)", name, g)
				case strings.HasPrefix(rest, "FAIL:"):
					if g.OK {
						t.Errorf("%s: passed, want a failure containing %q", name, rest[5:])
					} else if !strings.Contains(all, rest[5:]) {
						t.Errorf("%s: failures %q do not mention %q", name, all, rest[5:])
					}
				}
				if strings.Contains(all, "tok-s3cr3t-value") {
					t.Errorf("%s: a captured token sent in a header leaked into the result: %s", name, all)
				}
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if len(a.deleted) != tc.deleted {
				t.Errorf("cleanup deleted %v, want %d orders", a.deleted, tc.deleted)
			}
		})
	}
}

func TestCapturedHeaderValueIsRedacted(t *testing.T) {
	_, srv := newApp(t)
	checks := []Check{
		{Name: "login", Method: "POST", URL: srv.URL + "/login", Capture: map[string]Capture{"token": {JSON: "token"}}},
		// The app echoes the wrong header back; the token must not reach the detail.
		{Name: "me", URL: srv.URL + "/me", Headers: map[string]string{"Authorization": "Token ${token}"}},
	}
	got := Runner{}.Run(context.Background(), checks, nil, nil)
	if got[1].OK {
		t.Fatalf("me passed with the wrong scheme: %+v", got[1])
	}
	if strings.Contains(got[1].Detail, "tok-s3cr3t-value") || !strings.Contains(got[1].Detail, "[redacted]") {
		t.Errorf("detail %q: want the captured token redacted", got[1].Detail)
	}
}

func TestValidateNamesCheckAndField(t *testing.T) {
	tests := []struct {
		name    string
		checks  []Check
		cleanup []Check
		want    []string
	}{
		{name: "variable used before it is captured",
			checks: []Check{{Name: "query", URL: "http://app/orders/${order_id}"}, {Name: "create", URL: "http://app/orders", Capture: map[string]Capture{"order_id": {JSON: "id"}}}},
			want:   []string{"env.smoke_checks[0] (query).url: ${order_id} is not captured by an earlier check"}},
		{name: "bad json path and regex",
			checks: []Check{{Name: "c", URL: "http://app/", ExpectBody: []Assertion{{JSON: "data[x]"}, {Regex: "("}}}},
			want:   []string{"smoke_checks[0] (c).expect_body[0].json", `index "x" is not a number`, "smoke_checks[0] (c).expect_body[1].regex"}},
		{name: "capture needs one source, log check needs file or command",
			checks: []Check{{Name: "c", URL: "http://app/", Capture: map[string]Capture{"bad name": {}}, ExpectLog: &LogCheck{Pattern: "x"}}},
			want:   []string{`capture.bad name: "bad name" is not a variable name`, "capture.bad name: needs exactly one of json or regex", "(c).expect_log: needs exactly one of file or command"}},
		{name: "cleanup may use any capture, but not capture; names unique",
			checks:  []Check{{Name: "c", URL: "http://app/", Capture: map[string]Capture{"id": {JSON: "id"}}}},
			cleanup: []Check{{Name: "c", URL: "http://app/${id}", Capture: map[string]Capture{"x": {JSON: "x"}}}},
			want:    []string{"smoke_cleanup[0] (c).capture: a cleanup step captures nothing", `smoke_cleanup[0] (c).name: "c" is used by another check`}},
		{name: "empty assertion, contradictions, url, status",
			checks: []Check{{Name: "c", URL: "ftp://app/", ExpectStatus: 42, Method: "FETCH", ExpectBody: []Assertion{{}, {JSON: "a", Absent: true, Equals: str("1")}}}},
			want: []string{"(c).url: \"ftp://app/\": want an http", "(c).expect_status: 42", "(c).method: \"FETCH\"", "expect_body[0]: needs json, regex or equals",
				"expect_body[1]: absent and equals contradict"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate("env", tc.checks, tc.cleanup)
			if err == nil {
				t.Fatal("validated, want errors")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not mention %q", err, w)
				}
			}
		})
	}
	ok := []Check{{Name: "create", URL: "http://app/orders?env=${environment}", Capture: map[string]Capture{"id": {JSON: "data.id"}}},
		{Name: "get", URL: "http://app/orders/${id}", ExpectBody: []Assertion{{JSON: "$.id", Equals: str("${id}")}}}}
	if err := Validate("env", ok, []Check{{Name: "del", Method: "delete", URL: "http://app/orders/${id}"}}); err != nil {
		t.Errorf("a valid chain is refused: %v", err)
	}
}

func TestPathLookup(t *testing.T) {
	doc, err := decodeJSON([]byte(`{"data":{"items":[{"id":42,"ok":true,"n":null},{"tags":["a","b"]}]},"top":[[1,2],[3]]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
		found      bool
	}{
		{"data.items[0].id", "42", true},
		{"$.data.items[0].ok", "true", true},
		{"data.items[0].n", "null", true},
		{"data.items[1].tags", `["a","b"]`, true},
		{"data.items[1].tags[1]", "b", true},
		{"top[0][1]", "2", true},
		{"data.items[2]", "", false},
		{"data.missing", "", false},
		{"data.items.id", "", false},
	}
	for _, tc := range tests {
		p, err := parsePath(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		v, found := lookup(doc, p)
		if found != tc.found || (found && valueText(v) != tc.want) {
			t.Errorf("%s: got %q found=%v, want %q found=%v", tc.path, valueText(v), found, tc.want, tc.found)
		}
	}
}

func TestExpandURLEscapesEachPart(t *testing.T) {
	vals := map[string]string{"id": "a/b c", "q": "x&admin=1"}
	got, miss := expandURL("http://app/orders/${id}?name=${q}&id=${id}", vals)
	if miss != "" || got != "http://app/orders/a%2Fb%20c?name=x%26admin%3D1&id=a%2Fb+c" {
		t.Errorf("got %q (missing %q)", got, miss)
	}
	if _, miss := expandURL("http://app/${nope}", vals); miss != "nope" {
		t.Errorf("missing %q, want nope", miss)
	}
}

func TestDurationIsMeasured(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	defer srv.Close()
	got := Runner{}.Run(context.Background(), []Check{{Name: "slow", URL: srv.URL}}, nil, nil)
	if got[0].DurationMS < 20 {
		t.Errorf("duration %d ms, want at least the 20 ms the answer took", got[0].DurationMS)
	}
}
