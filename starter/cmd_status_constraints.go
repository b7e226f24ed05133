package main

// fkrollout status ID --constraints: the constraints of a large plan, page
// by page. The status query lists the first ones with complete counts; the
// constraints query pages through all of them with their last audit.

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// constraintsFlags select a page of the constraints query.
type constraintsFlags struct {
	on     bool
	all    bool
	query  rollout.ConstraintsQuery
	states string
}

func (f *constraintsFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.on, "constraints", false, "list the constraints with their state and last audit per environment, a page at a time")
	fs.IntVar(&f.query.Offset, "offset", 0, "with --constraints: the first constraint to list (0-based; the page footer names the next)")
	fs.IntVar(&f.query.Limit, "limit", 50, fmt.Sprintf("with --constraints: constraints per page (at most %d)", rollout.MaxConstraintsPage))
	fs.StringVar(&f.query.Environment, "env", "", "with --constraints: only this environment's view")
	fs.StringVar(&f.states, "state", "", "with --constraints and --env: only constraints in this state (planned, applied, validated, tested, debt, skipped, rolled-back)")
	fs.BoolVar(&f.all, "all", false, "with --constraints: every page, one after the other")
}

// check refuses a page the query would refuse, before dialling.
func (f *constraintsFlags) check() error {
	if !f.on {
		if f.query.Offset != 0 || f.query.Environment != "" || f.states != "" || f.all {
			return usageError{"--offset, --env, --state and --all go with --constraints"}
		}
		return nil
	}
	if f.query.Offset < 0 || f.query.Limit < 1 || f.query.Limit > rollout.MaxConstraintsPage {
		return usageError{fmt.Sprintf("--offset %d --limit %d: want an offset of 0 or more and a limit from 1 to %d", f.query.Offset, f.query.Limit, rollout.MaxConstraintsPage)}
	}
	if f.states != "" && f.query.Environment == "" {
		return usageError{"--state needs --env (a state is per environment)"}
	}
	f.query.State = rollout.ConstraintState(f.states)
	return nil
}

// queryConstraints asks the rollout for one page.
func queryConstraints(ctx context.Context, c client.Client, id string, q rollout.ConstraintsQuery) (rollout.ConstraintsPage, error) {
	var page rollout.ConstraintsPage
	v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryConstraints, q)
	if err != nil {
		return page, fmt.Errorf("query constraints of %s: %w", id, err)
	}
	if err := v.Get(&page); err != nil {
		return page, fmt.Errorf("decode constraints of %s: %w", id, err)
	}
	return page, nil
}

// printConstraints lists the pages asked for: one, or with all every page.
func printConstraints(ctx context.Context, stdout io.Writer, c client.Client, id string, f constraintsFlags, asJSON bool) error {
	q := f.query
	for {
		page, err := queryConstraints(ctx, c, id, q)
		if err != nil {
			return err
		}
		if asJSON {
			if err := writeJSON(stdout, page); err != nil {
				return err
			}
		} else {
			writeConstraintsPage(stdout, page)
		}
		if !f.all || page.Next == 0 {
			if !asJSON && page.Next > 0 {
				fmt.Fprintf(stdout, "next page: fkrollout status %s --constraints --offset %d --limit %d%s\n", id, page.Next, q.Limit, filterFlags(q))
			}
			return nil
		}
		q.Offset = page.Next
	}
}

func filterFlags(q rollout.ConstraintsQuery) string {
	s := ""
	if q.Environment != "" {
		s += " --env " + q.Environment
	}
	if q.State != "" {
		s += " --state " + string(q.State)
	}
	return s
}

// writeConstraintsPage prints one line per constraint: name, table, and per
// environment its state and the orphans the last audit counted, with a
// sample row when there is one.
func writeConstraintsPage(w io.Writer, page rollout.ConstraintsPage) {
	end := page.Offset + len(page.Constraints)
	if len(page.Constraints) == 0 {
		fmt.Fprintf(w, "constraints: none from %d (%d in all)\n", page.Offset, page.Total)
		return
	}
	fmt.Fprintf(w, "constraints %d-%d of %d\n", page.Offset+1, end, page.Total)
	for _, c := range page.Constraints {
		envs := make([]string, 0, len(c.Environments))
		for env := range c.Environments {
			envs = append(envs, env)
		}
		sort.Strings(envs)
		var parts []string
		for _, env := range envs {
			st := c.Environments[env]
			p := fmt.Sprintf("%s %s", env, st.State)
			if st.Orphans > 0 {
				p += fmt.Sprintf(" (%d orphans)", st.Orphans)
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(w, "  %-40s %s → %s  %s\n", c.Name, c.Table, c.References, strings.Join(parts, ", "))
		for _, env := range envs {
			if a, ok := c.Audit[env]; ok && len(a.Samples) > 0 {
				fmt.Fprintf(w, "      %s e.g. %s\n", env, strings.Join(a.Samples, "; "))
			}
		}
	}
}
