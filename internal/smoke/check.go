// Package smoke runs the smoke checks a runbook asks for after a deploy:
// HTTP requests whose status and body are asserted (JSON path and regex),
// values captured from one response and used by later checks as ${name}
// (create → query), cleanup requests that run even when a check failed, and
// an optional look at the application's log (a file or a command) for the
// line that proves the error was caught and answered clearly.
//
// Checks come from the worker configuration only (smoke_checks and
// smoke_cleanup of an environment); Validate checks them once, at start.
package smoke

// Check is one HTTP request and what its answer must show.
type Check struct {
	Name   string `yaml:"name" json:"name"`
	Method string `yaml:"method" json:"method,omitempty"`
	// URL, Body and header values may use ${name}: a value an earlier
	// check captured, or ${rollout_id} / ${environment}. In the URL a
	// value is path-escaped.
	URL  string `yaml:"url" json:"url"`
	Body string `yaml:"body" json:"body,omitempty"`
	// Headers are sent with the request. Their values count as secrets
	// (Authorization: Bearer ...), redacted from check details and errors;
	// only descriptive ones (Content-Type, Accept, User-Agent, ...) do not.
	Headers      map[string]string `yaml:"headers" json:"headers,omitempty"`
	ExpectStatus int               `yaml:"expect_status" json:"expect_status,omitempty"`
	Timeout      string            `yaml:"timeout" json:"timeout,omitempty"`
	// ExpectBody are assertions on the response body; every one must hold.
	ExpectBody []Assertion `yaml:"expect_body" json:"expect_body,omitempty"`
	// Capture takes values from the response for later checks, by name.
	Capture map[string]Capture `yaml:"capture" json:"capture,omitempty"`
	// ExpectLog, when set, looks for a line in the application's log
	// after the response arrived.
	ExpectLog *LogCheck `yaml:"expect_log" json:"expect_log,omitempty"`
}

// Assertion is one statement about the response body.
//
// With JSON (a path such as data.items[0].id) the value at the path must
// exist, and equal Equals and match Regex when they are set; with Absent the
// path must not exist. Without JSON, Regex is matched against the whole
// body (Absent: must not match) and Equals compared with the whole body,
// surrounding white space ignored.
type Assertion struct {
	JSON   string  `yaml:"json" json:"json,omitempty"`
	Equals *string `yaml:"equals" json:"equals,omitempty"`
	Regex  string  `yaml:"regex" json:"regex,omitempty"`
	Absent bool    `yaml:"absent" json:"absent,omitempty"`
}

// Capture names where a value comes from: a JSON path, or a regex whose
// first group (the whole match without a group) is the value.
type Capture struct {
	JSON  string `yaml:"json" json:"json,omitempty"`
	Regex string `yaml:"regex" json:"regex,omitempty"`
}

// LogCheck looks for Pattern (a regex; ${name} values match literally) in
// what the application logged: the lines appended to File since the
// request was sent, or the output of Command (run by the worker with no
// inherited environment besides PATH, HOME, LANG, TZ). It waits up to
// Within (default 5s) for the line; with Absent the pattern must not show
// up within that time.
type LogCheck struct {
	File    string   `yaml:"file" json:"file,omitempty"`
	Command []string `yaml:"command" json:"command,omitempty"`
	Pattern string   `yaml:"pattern" json:"pattern"`
	Absent  bool     `yaml:"absent" json:"absent,omitempty"`
	Within  string   `yaml:"within" json:"within,omitempty"`
}

// UsesVariables reports whether the check needs values from elsewhere
// (${...} in its URL, body or headers): such a check only makes sense in
// its chain, never on its own (the production monitor skips it).
func (c Check) UsesVariables() bool {
	if len(refs(c.URL)) > 0 || len(refs(c.Body)) > 0 {
		return true
	}
	for _, v := range c.Headers {
		if len(refs(v)) > 0 {
			return true
		}
	}
	return false
}

// Builtin variables every check may use.
const (
	VarRolloutID   = "rollout_id"
	VarEnvironment = "environment"
)
