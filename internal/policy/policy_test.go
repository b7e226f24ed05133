package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/identity"
)

func testKey(t *testing.T) string {
	t.Helper()
	pub, _, err := identity.GenerateKey()
	require.NoError(t, err)
	return identity.FormatPublicKey(pub)
}

// validConfig: staging then production, as the package comment shows.
func validConfig(t *testing.T) Config {
	return Config{
		MaxClockSkew: "2m",
		Identities: map[string]Identity{
			"alice@example.com":  {PublicKeys: []string{testKey(t)}, Roles: []string{"dba"}},
			"bob@example.com":    {PublicKeys: []string{testKey(t)}, Roles: []string{"dba"}},
			"oncall@example.com": {PublicKeys: []string{testKey(t)}},
		},
		Operators: []string{"oncall@example.com"},
		Environments: map[string]Environment{
			"staging": {
				Approvers:          []string{"alice@example.com", "role:dba"},
				Perf:               true,
				RemediationChoices: []string{"delete", "re-audit", "abort"},
				TimeoutMayProceed:  []string{"continue"},
				Gates: map[string]GateRule{
					"investigate": {Timeout: "1h", OnTimeout: "continue"},
					"remediation": {Approvers: []string{"bob@example.com"}, Timeout: "24h", OnTimeout: "abort"},
				},
			},
			"production": {
				Approvers:    []string{"role:dba"},
				MinApprovals: 2,
				Requires:     []string{"staging"},
				Operators:    []string{"alice@example.com"},
				Gates:        map[string]GateRule{"promotion": {MinApprovals: 2, Timeout: "72h", OnTimeout: "reject"}},
			},
		},
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, validConfig(t).Validate())
	require.NoError(t, Config{}.Validate(), "an empty section is valid (no environment is allowed)")

	cases := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"bad public key", func(c *Config) {
			c.Identities["alice@example.com"] = Identity{PublicKeys: []string{"ed25519:short"}}
		}, []string{"policy.identities[alice@example.com]", "ed25519:short"}},
		{"key without prefix", func(c *Config) {
			c.Identities["bob@example.com"] = Identity{PublicKeys: []string{"AAAA"}}
		}, []string{"policy.identities[bob@example.com]", "want ed25519:"}},
		{"identity named like a role", func(c *Config) {
			c.Identities["role:dba"] = Identity{}
		}, []string{`policy.identities "role:dba"`}},
		{"identity with a space", func(c *Config) {
			c.Identities["alice smith"] = Identity{}
		}, []string{`policy.identities "alice smith"`}},
		{"approver not in identities", func(c *Config) {
			e := c.Environments["staging"]
			e.Approvers = append(e.Approvers, "mallory@example.com")
			c.Environments["staging"] = e
		}, []string{"policy.environments[staging].approvers", `"mallory@example.com" is not in policy.identities`}},
		{"gate approver not in identities", func(c *Config) {
			e := c.Environments["staging"]
			e.Gates["remediation"] = GateRule{Approvers: []string{"eve@example.com"}}
			c.Environments["staging"] = e
		}, []string{"policy.environments[staging].gates[remediation].approvers", `"eve@example.com"`}},
		{"operator not in identities", func(c *Config) {
			c.Operators = []string{"ghost@example.com"}
		}, []string{"policy.operators", `"ghost@example.com" is not in policy.identities`}},
		{"environment operator not in identities", func(c *Config) {
			e := c.Environments["production"]
			e.Operators = []string{"ghost@example.com"}
			c.Environments["production"] = e
		}, []string{"policy.environments[production].operators", `"ghost@example.com"`}},
		{"empty role", func(c *Config) {
			e := c.Environments["production"]
			e.Approvers = []string{"role:"}
			c.Environments["production"] = e
		}, []string{"policy.environments[production].approvers: empty role"}},
		{"empty approvers", func(c *Config) {
			e := c.Environments["production"]
			e.Approvers = nil
			c.Environments["production"] = e
		}, []string{"policy.environments[production].approvers: list at least one"}},
		{"unknown safeguard", func(c *Config) {
			c.AllowSkip = []string{SafeguardPerf, "backup"}
		}, []string{`policy.allow_skip: "backup" is not a safeguard (want some of perf, monitor, window, full_backup)`}},
		{"min_watch not a duration", func(c *Config) {
			c.MinWatch = "a day"
		}, []string{`policy.min_watch "a day": want a positive duration such as 24h`}},
		{"negative min_approvals", func(c *Config) {
			e := c.Environments["production"]
			e.MinApprovals = -1
			c.Environments["production"] = e
		}, []string{"policy.environments[production].min_approvals: must not be negative"}},
		{"remediation choice unknown", func(c *Config) {
			e := c.Environments["staging"]
			e.RemediationChoices = []string{"truncate", "abort"}
			c.Environments["staging"] = e
		}, []string{"policy.environments[staging].remediation_choices", `"truncate" is not one of`}},
		{"remediation choices without abort", func(c *Config) {
			e := c.Environments["staging"]
			e.RemediationChoices = []string{"delete", "re-audit"}
			c.Environments["staging"] = e
		}, []string{"policy.environments[staging].remediation_choices: abort must stay available"}},
		{"timeout_may_proceed with approve-override", func(c *Config) {
			e := c.Environments["production"]
			e.TimeoutMayProceed = []string{"approve-override"}
			c.Environments["production"] = e
		}, []string{"policy.environments[production].timeout_may_proceed", `"approve-override" is not a choice a timeout may apply`}},
		{"timeout_may_proceed with a conservative choice", func(c *Config) {
			e := c.Environments["production"]
			e.TimeoutMayProceed = []string{"reject"}
			c.Environments["production"] = e
		}, []string{`"reject" is not a choice a timeout may apply`}},
		{"requires unknown environment", func(c *Config) {
			e := c.Environments["production"]
			e.Requires = []string{"stagign"}
			c.Environments["production"] = e
		}, []string{"policy.environments[production].requires", `"stagign" is not a policy environment`}},
		{"requires itself", func(c *Config) {
			e := c.Environments["production"]
			e.Requires = []string{"production"}
			c.Environments["production"] = e
		}, []string{"policy.environments[production].requires: an environment cannot require itself"}},
		{"gate kind unknown", func(c *Config) {
			e := c.Environments["staging"]
			e.Gates["promotoin"] = GateRule{}
			c.Environments["staging"] = e
		}, []string{"policy.environments[staging].gates[promotoin]: want one of remediation, promotion, approval, investigate"}},
		{"bad gate timeout", func(c *Config) {
			e := c.Environments["staging"]
			e.Gates["approval"] = GateRule{Timeout: "a day"}
			c.Environments["staging"] = e
		}, []string{`policy.environments[staging].gates[approval].timeout "a day"`}},
		{"proceeding on_timeout not in timeout_may_proceed", func(c *Config) {
			e := c.Environments["production"]
			e.Gates["promotion"] = GateRule{Timeout: "72h", OnTimeout: "approve"}
			c.Environments["production"] = e
		}, []string{`policy.environments[production].gates[promotion].on_timeout "approve" proceeds`}},
		{"bad max_clock_skew", func(c *Config) { c.MaxClockSkew = "five minutes" }, []string{`policy.max_clock_skew "five minutes"`}},
		{"negative max_clock_skew", func(c *Config) { c.MaxClockSkew = "-5m" }, []string{`policy.max_clock_skew "-5m"`}},
		{"every mistake at once", func(c *Config) {
			c.MaxClockSkew = "0s"
			c.Operators = []string{"ghost@example.com"}
			e := c.Environments["production"]
			e.Requires = []string{"production"}
			e.Approvers = nil
			c.Environments["production"] = e
		}, []string{"policy.max_clock_skew", "policy.operators", "cannot require itself", "list at least one"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.edit(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "invalid policy: ")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// Development mode believes named actors, so they need no identity; roles
// and the rest are still checked.
func TestValidateDevelopmentMode(t *testing.T) {
	c := Config{TrustClientIdentity: true, Operators: []string{"anyone@example.com"},
		Environments: map[string]Environment{"staging": {Approvers: []string{"alice@example.com"}}}}
	require.NoError(t, c.Validate())

	c.TrustClientIdentity = false
	err := c.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"anyone@example.com" is not in policy.identities`)
	assert.Contains(t, err.Error(), `"alice@example.com" is not in policy.identities`)

	c.TrustClientIdentity = true
	c.Environments["staging"] = Environment{}
	assert.ErrorContains(t, c.Validate(), "list at least one", "development mode still needs approvers")
}

func TestSkew(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 5 * time.Minute},
		{"2m", 2 * time.Minute},
		{"90s", 90 * time.Second},
		{"nonsense", 5 * time.Minute},
		{"-1m", 5 * time.Minute},
		{"0s", 5 * time.Minute},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, Config{MaxClockSkew: tc.in}.Skew(), tc.in)
	}
}

func TestSafeguardDefaults(t *testing.T) {
	assert.Equal(t, DefaultMinWatch, Config{}.Watch(), "the runbook's 24 hours")
	assert.Equal(t, time.Minute, Config{MinWatch: "1m"}.Watch())
	assert.False(t, Config{}.MaySkip(SafeguardPerf), "nothing may be skipped unless listed")
	assert.True(t, Config{AllowSkip: []string{SafeguardWindow}}.MaySkip(SafeguardWindow))
	assert.False(t, Config{AllowSkip: []string{SafeguardWindow}}.MaySkip(SafeguardMonitor))
}
