package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// Page flags are checked before anything dials the server.
func TestStatusConstraintFlagsRefusedBeforeDialling(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--offset", "5"}, "go with --constraints"},
		{[]string{"--env", "production"}, "go with --constraints"},
		{[]string{"--constraints", "--state", "debt"}, "--state needs --env"},
		{[]string{"--constraints", "--limit", "0"}, "a limit from 1 to 200"},
		{[]string{"--constraints", "--limit", "201"}, "a limit from 1 to 200"},
		{[]string{"--constraints", "--offset", "-1"}, "an offset of 0 or more"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			code, _, errOut := cli(t, append([]string{"status", "r1", "--address", "127.0.0.1:1"}, c.args...)...)
			assert.Equal(t, exitUsage, code, errOut)
			assert.Contains(t, errOut, c.want)
		})
	}
}

func TestConstraintsPageLines(t *testing.T) {
	page := rollout.ConstraintsPage{Total: 500, Offset: 100, Next: 102, Constraints: []rollout.ConstraintDetail{
		{ConstraintStatus: rollout.ConstraintStatus{Name: "fk_a", Table: "public.a", References: "public.p",
			Environments: map[string]rollout.ConstraintEnvState{"staging": {State: rollout.CDebt, Orphans: 7}, "production": {State: rollout.CPlanned}}},
			Audit: map[string]rollout.AuditFigure{"staging": {FK: "fk_a", Orphans: 7, Samples: []string{"id=1, p_id=9"}}}},
		{ConstraintStatus: rollout.ConstraintStatus{Name: "fk_b", Table: "public.b", References: "public.p",
			Environments: map[string]rollout.ConstraintEnvState{"staging": {State: rollout.CTested}}}},
	}}
	var b bytes.Buffer
	writeConstraintsPage(&b, page)
	out := b.String()
	assert.Contains(t, out, "constraints 101-102 of 500")
	assert.Contains(t, out, "production planned, staging debt (7 orphans)")
	assert.Contains(t, out, "staging e.g. id=1, p_id=9")
	assert.Contains(t, out, "staging tested")
}
