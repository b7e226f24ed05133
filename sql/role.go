package sqlassets

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
)

// Role is sql/role.sql: the worker's non-superuser database role, with psql
// variables role, table_owner and database (docs/DATABASE-ROLE.md). Admins
// run it with psql; RoleSQL renders it for Go callers (tests, tools).
//
//go:embed role.sql
var Role string

// PerfRole is sql/role-perf.sql: the optional perf-phase role (perf_dsn),
// with psql variables role, database and schema.
//
//go:embed role-perf.sql
var PerfRole string

// MonitorRole is sql/role-monitor.sql: the optional read-only monitor role
// (monitor_dsn), with psql variables role and database.
//
//go:embed role-monitor.sql
var MonitorRole string

// psqlVar matches the variable references psql substitutes: :'name' (a
// quoted literal) and :"name" (a quoted identifier).
var psqlVar = regexp.MustCompile(`:'([A-Za-z_][A-Za-z0-9_]*)'|:"([A-Za-z_][A-Za-z0-9_]*)"`)

// RoleSQL returns Role with its variables substituted as psql would, ready
// to run as one multi-statement string (simple protocol) by a superuser.
func RoleSQL(role, tableOwner, database string) (string, error) {
	return Render(Role, map[string]string{"role": role, "table_owner": tableOwner, "database": database})
}

// Render substitutes psql variable references in a script that uses no
// other psql feature (no backslash commands, no references inside quotes).
// An unset variable is an error, where psql would send the text unchanged
// and fail later with a syntax error.
func Render(script string, vars map[string]string) (string, error) {
	var missing []string
	out := psqlVar.ReplaceAllStringFunc(script, func(m string) string {
		sub := psqlVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		if strings.ContainsRune(v, 0) {
			missing = append(missing, name+" (contains NUL)")
			return m
		}
		if sub[1] != "" {
			return quoteLiteral(v)
		}
		return `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("render SQL: variables not set: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// quoteLiteral quotes like libpq's PQescapeLiteral: quotes doubled, and an
// E-prefixed string with doubled backslashes when the value has any.
func quoteLiteral(v string) string {
	q := "'" + strings.ReplaceAll(v, "'", "''") + "'"
	if strings.Contains(v, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}
