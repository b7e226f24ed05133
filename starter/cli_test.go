package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allCommands walks the real command tree: every command a user can type,
// with its path below the root ("fleet-start", "completion bash").
func allCommands(t *testing.T) map[string]*cobra.Command {
	t.Helper()
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden {
				continue
			}
			out[strings.TrimPrefix(sub.CommandPath(), programName+" ")] = sub
			walk(sub)
		}
	}
	walk(root)
	require.Greater(t, len(out), 30, "the command tree")
	return out
}

// positionals are the upper-case words of a command's Use line: its
// positional arguments (ROLLOUT_ID) and required flag values (--plan FILE).
func positionals(c *cobra.Command) []string {
	var names []string
	for _, w := range strings.Fields(c.Use)[1:] {
		if w == strings.ToUpper(w) && strings.Trim(w, "[]") == w && !strings.HasPrefix(w, "-") && strings.ContainsAny(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			names = append(names, w)
		}
	}
	return names
}

// argCount is how many positional arguments a command requires: the
// upper-case words before the first flag in its Use line.
func argCount(c *cobra.Command) int {
	n := 0
	for _, w := range strings.Fields(c.Use)[1:] {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") {
			break
		}
		n++
	}
	return n
}

func TestEveryCommandHelpAndUsageErrors(t *testing.T) {
	for path, c := range allCommands(t) {
		args := strings.Fields(path)
		t.Run(path, func(t *testing.T) {
			for _, h := range []string{"-h", "--help"} {
				code, out, errOut := cli(t, append(args, h)...)
				assert.Equal(t, 0, code, "%s %s: %s", path, h, errOut)
				assert.Contains(t, out, "fkrollout "+path, "help names the command")
				for _, p := range positionals(c) {
					assert.Contains(t, out, p, "help names the argument %s", p)
				}
				assert.Empty(t, errOut)
			}
			if c.Runnable() && path != "help" {
				code, _, errOut := cli(t, append(args, "--no-such-flag")...)
				assert.Equal(t, 2, code, "unknown flag: %s", errOut)
				assert.Contains(t, errOut, "fkrollout: unknown flag: --no-such-flag")
				assert.Contains(t, errOut, "usage: fkrollout "+path)
			}
		})
	}
}

func TestPositionalArgumentsAreChecked(t *testing.T) {
	cmds := allCommands(t)
	checked := 0
	for path, c := range cmds {
		if !c.Runnable() || c.Args == nil || strings.HasPrefix(path, "completion") || path == "help" {
			continue
		}
		n := argCount(c)
		args := strings.Fields(path)
		t.Run(path, func(t *testing.T) {
			// One short (when it takes any) and one too many: exit 2 before
			// anything connects or reads a file.
			if n > 0 {
				code, _, errOut := cli(t, append(args, make([]string, n-1)...)...)
				assert.Equal(t, 2, code, "missing argument: %s", errOut)
				assert.Contains(t, errOut, strings.Join(strings.Fields(c.Use)[1:n+1], " "), "the error names the arguments")
			}
			extra := append(append([]string{}, args...), strings.Split(strings.Repeat("x ", n+1), " ")[:n+1]...)
			code, _, errOut := cli(t, extra...)
			assert.Equal(t, 2, code, "extra argument: %s", errOut)
		})
		checked++
	}
	assert.Greater(t, checked, 25)
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command with a suggestion", []string{"aprove"}, `unknown command "aprove"; did you mean approve?`},
		{"duration that is not one", []string{"audit", "--plan", migrationSQL, "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
		{"start --perf as text", []string{"start", "--plan", migrationSQL, "--perf", "fast"}, `invalid argument "fast" for "--perf"`},
		{"start --perf zero", []string{"start", "--plan", migrationSQL, "--perf", "0s"}, "--perf must be a positive duration"},
		{"start --gate-timeout as text", []string{"start", "--plan", migrationSQL, "--gate-timeout", "tomorrow"}, `"--gate-timeout"`},
		{"watch --every as text", []string{"watch", "r1", "--every", "often"}, `"--every"`},
		{"number that is not one", []string{"fleet-start", "--canary", "one"}, `invalid argument "one" for "--canary"`},
		{"bool that is not one", []string{"lint", "--plan", migrationSQL, "--strict=maybe"}, `"--strict"`},
		{"float that is not one", []string{"discover", "--threshold", "high"}, `"--threshold"`},
		{"schedule --statement-timeout as text", []string{"schedule-health", "--env", "production", "--statement-timeout", "soon"}, `"--statement-timeout"`},
		{"bad --progress", []string{"watch", "r1", "--progress", "fancy"}, `--progress "fancy"`},
		{"demo and interactive", []string{"start", "--plan", migrationSQL, "--demo-auto-approve", "--interactive"}, "exclude each other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			assert.Equal(t, 2, code, "stdout=%s stderr=%s", out, errOut)
			assert.Contains(t, errOut, tc.want)
			assert.True(t, strings.HasPrefix(errOut, "fkrollout: "), errOut)
		})
	}
}

func TestAuditExitCodes(t *testing.T) {
	clean := demoDB(t, nil)
	dirty := demoDB(t, map[string]int{"fk_punchlist_items_punchlist": 2})
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no orphans", []string{"audit", "--plan", planYAML, "--dsn", clean.DSN}, 0, ""},
		{"orphans are findings", []string{"audit", "--plan", planYAML, "--dsn", dirty.DSN}, 1, "2 orphan row(s) in 1 foreign key(s)"},
		{"orphans allowed", []string{"audit", "--plan", planYAML, "--dsn", dirty.DSN, "--allow-orphans"}, 0, ""},
		{"one page per chunk, paused", []string{"audit", "--plan", planYAML, "--dsn", dirty.DSN, "--chunk-pages", "1", "--pause", "1ms"}, 1, "2 orphan row(s) in 1 foreign key(s)"},
		{"chunk of no pages", []string{"audit", "--plan", planYAML, "--dsn", dirty.DSN, "--chunk-pages", "0"}, 2, "--chunk-pages must be at least 1, got 0"},
		{"pause too long", []string{"audit", "--plan", planYAML, "--dsn", dirty.DSN, "--pause", "2m"}, 2, "--pause must be between 0 and 1m0s, got 2m0s"},
		{"database nobody listens on", []string{"audit", "--plan", planYAML, "--dsn", "postgres://postgres@127.0.0.1:" + freePort(t) + "/x?connect_timeout=2"}, 3, "connect to database"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			assert.Equal(t, tc.code, code, "stdout=%s stderr=%s", out, errOut)
			assert.Contains(t, errOut, tc.want)
		})
	}
}

// freePort is a local TCP port nobody listens on (taken and released).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	require.NoError(t, l.Close())
	return port
}

func TestTemporalConnectionFailureExits3(t *testing.T) {
	addr := "127.0.0.1:" + freePort(t)
	for _, args := range [][]string{
		{"status", "r1"},
		{"approve", "r1", "g1", "--actor", "alice"},
		{"fleet-status", "f1"},
		{"schedule-health", "--env", "production"},
	} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			code, _, errOut := cli(t, append(args, "--address", addr, "--connect-timeout", "2s")...)
			assert.Equal(t, 3, code, errOut)
			assert.Contains(t, errOut, "fkrollout: connect to temporal at "+addr)
			assert.Less(t, time.Since(start), 20*time.Second, "--connect-timeout bounds the dial")
		})
	}
	// A profile that the config file does not have is a configuration error.
	cfg := filepath.Join(t.TempDir(), "temporal.toml")
	require.NoError(t, os.WriteFile(cfg, []byte("[profile.default]\naddress = \""+addr+"\"\n"), 0o600))
	code, _, errOut := cli(t, "status", "r1", "--config-file", cfg, "--profile", "nope", "--connect-timeout", "1s")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "nope")
	code, _, errOut = cli(t, "status", "r1", "--config-file", cfg, "--connect-timeout", "1s")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, addr, "the address comes from the config file's profile")
	// The flags override TEMPORAL_* (the variable points at a server that
	// does not exist; the flag too, but the error names the flag's).
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	code, _, errOut = cli(t, "status", "r1", "--address", addr, "--connect-timeout", "1s")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, addr)
}

func TestVersionAndCompletion(t *testing.T) {
	code, out, _ := cli(t, "version")
	require.Equal(t, 0, code)
	assert.Regexp(t, `^fkrollout \S+ \(go1\.`, out)
	code, out, _ = cli(t, "--version")
	require.Equal(t, 0, code)
	assert.Regexp(t, `^fkrollout \S+\n$`, out)
	code, out, _ = cli(t, "version", "--json")
	require.Equal(t, 0, code)
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.NotEmpty(t, v["version"])

	for shell, want := range map[string]string{"bash": "__start_fkrollout", "zsh": "#compdef fkrollout", "fish": "complete -c fkrollout"} {
		code, out, errOut := cli(t, "completion", shell)
		assert.Equal(t, 0, code, errOut)
		assert.Contains(t, out, want, shell)
	}
	// The completion script completes commands through the real tree.
	code, out, _ = cli(t, "__complete", "fleet-")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "fleet-start")
	assert.Contains(t, out, "fleet-status")
}

func TestBareCommandPrintsHelpWithExitCodes(t *testing.T) {
	code, out, _ := cli(t)
	require.Equal(t, 0, code)
	for _, want := range []string{"Usage:", "Exit codes:", "1  findings", "2  usage", "3  error", "Rollouts (Temporal):", "approve", "remediate-orphans"} {
		assert.Contains(t, out, want)
	}
}

func TestJSONOutputs(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"lint --rules": {"lint", "--rules", "--json"},
		"keygen":       {"keygen", "--out", filepath.Join(dir, "k.key"), "--identity", "alice", "--json"},
		"version":      {"version", "--json"},
		"generate":     {"generate", "--plan", planYAML, "--dir", dir, "--json"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := cli(t, args...)
			require.Equal(t, 0, code, errOut)
			var doc any
			require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
		})
	}
}
