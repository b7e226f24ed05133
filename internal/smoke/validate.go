package smoke

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

var methods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true}

// Validate checks an environment's smoke checks and cleanup steps, every
// problem at once, each naming the check and field (prefix is where they
// sit in the configuration, e.g. "environments.staging"). A check may use
// only values captured by an earlier check (or the builtins); a cleanup
// step may use any value a check captures.
func Validate(prefix string, checks, cleanup []Check) error {
	var errs []error
	known := []string{VarRolloutID, VarEnvironment}
	names := map[string]bool{}
	for i, c := range checks {
		where := label(prefix+".smoke_checks", i, c.Name)
		errs = append(errs, validateCheck(where, c, known, names)...)
		for _, k := range sortedKeys(c.Capture) {
			known = append(known, k)
		}
	}
	for i, c := range cleanup {
		where := label(prefix+".smoke_cleanup", i, c.Name)
		if len(c.Capture) > 0 {
			errs = append(errs, fmt.Errorf("%s.capture: a cleanup step captures nothing (nothing runs after it)", where))
		}
		errs = append(errs, validateCheck(where, c, known, names)...)
	}
	return errors.Join(errs...)
}

func label(list string, i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", list, i, name)
}

func validateCheck(where string, c Check, known []string, names map[string]bool) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", where, field, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.Name == "":
		bad("name", "required")
	case names[c.Name]:
		bad("name", "%q is used by another check or cleanup step", c.Name)
	}
	names[c.Name] = true
	if c.URL == "" {
		bad("url", "required")
	} else {
		// Variables stand for path-escaped values: a placeholder parses.
		probe, _ := expand(c.URL, map[string]string{}, nil)
		probe = varRef.ReplaceAllString(probe, "x")
		if !strings.HasPrefix(probe, "http://") && !strings.HasPrefix(probe, "https://") {
			bad("url", "%q: want an http:// or https:// URL", c.URL)
		} else if _, err := http.NewRequest(http.MethodGet, probe, nil); err != nil {
			bad("url", "%q does not parse: %v", c.URL, err)
		}
	}
	if c.Method != "" && !methods[strings.ToUpper(c.Method)] {
		bad("method", "%q is not an HTTP method", c.Method)
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		bad("expect_status", "%d is not an HTTP status", c.ExpectStatus)
	}
	if c.Timeout != "" {
		if d, err := time.ParseDuration(c.Timeout); err != nil || d <= 0 {
			bad("timeout", "%q: want a positive duration such as 10s", c.Timeout)
		}
	}
	uses := func(field, s string) {
		for _, r := range refs(s) {
			if !slices.Contains(known, r) {
				bad(field, "${%s} is not captured by an earlier check (known: %s)", r, strings.Join(known, ", "))
			}
		}
	}
	uses("url", c.URL)
	uses("body", c.Body)
	for _, k := range sortedKeys(c.Headers) {
		uses("headers."+k, c.Headers[k])
	}
	for i, a := range c.ExpectBody {
		field := fmt.Sprintf("expect_body[%d]", i)
		if a.JSON != "" {
			if _, err := parsePath(a.JSON); err != nil {
				bad(field+".json", "%v", err)
			}
		}
		if a.JSON == "" && a.Regex == "" && a.Equals == nil {
			bad(field, "needs json, regex or equals")
		}
		if a.Absent && a.Equals != nil {
			bad(field, "absent and equals contradict each other")
		}
		if a.Absent && a.JSON == "" && a.Regex == "" {
			bad(field, "absent needs json or regex (what must not be there)")
		}
		if a.Regex != "" {
			if _, err := compileWithVars(a.Regex); err != nil {
				bad(field+".regex", "%v", err)
			}
			uses(field+".regex", a.Regex)
		}
		if a.Equals != nil {
			uses(field+".equals", *a.Equals)
		}
	}
	for _, name := range sortedKeys(c.Capture) {
		cp := c.Capture[name]
		field := "capture." + name
		if !validName.MatchString(name) {
			bad(field, "%q is not a variable name (letters, digits, _)", name)
		}
		if name == VarRolloutID || name == VarEnvironment {
			bad(field, "%q is a builtin variable", name)
		}
		switch {
		case (cp.JSON == "") == (cp.Regex == ""):
			bad(field, "needs exactly one of json or regex")
		case cp.JSON != "":
			if _, err := parsePath(cp.JSON); err != nil {
				bad(field+".json", "%v", err)
			}
		default:
			if _, err := regexp.Compile(cp.Regex); err != nil {
				bad(field+".regex", "%v", err)
			}
		}
	}
	if l := c.ExpectLog; l != nil {
		if (l.File == "") == (len(l.Command) == 0) {
			bad("expect_log", "needs exactly one of file or command")
		}
		if l.Pattern == "" {
			bad("expect_log.pattern", "required")
		} else if _, err := compileWithVars(l.Pattern); err != nil {
			bad("expect_log.pattern", "%v", err)
		}
		uses("expect_log.pattern", l.Pattern)
		if l.Within != "" {
			if d, err := time.ParseDuration(l.Within); err != nil || d <= 0 {
				bad("expect_log.within", "%q: want a positive duration such as 5s", l.Within)
			}
		}
	}
	return errs
}

// compileWithVars compiles a pattern whose ${name} parts are literal
// values (checked with a placeholder).
func compileWithVars(p string) (*regexp.Regexp, error) {
	return regexp.Compile(varRef.ReplaceAllString(p, "x"))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
