package activities

import (
	"context"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// The lock section is read once, when the activities are built.
func TestNewResolvesTheLockPolicyOnce(t *testing.T) {
	tests := []struct {
		name    string
		lock    config.LockConfig
		want    dbx.LockPolicy
		wantErr string
	}{
		{name: "defaults", want: dbx.DefaultLockPolicy()},
		{name: "configured", lock: config.LockConfig{LockTimeout: "1500ms", StatementTimeout: "1m", Attempts: 3, BaseBackoff: "50ms", MaxBackoff: "2s"},
			want: dbx.LockPolicy{LockTimeout: 1500 * time.Millisecond, StatementTimeout: time.Minute, Attempts: 3, BaseBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second}.WithDefaults()},
		{name: "unparsable", lock: config.LockConfig{LockTimeout: "soon"}, wantErr: `lock.lock_timeout: time: invalid duration "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfgWith(nil)
			cfg.Lock = tt.lock
			a, err := New(cfg, nil, nil)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, a.Lock)
		})
	}
}

// The behaviour tests wait for a lock as long as the worker's lock policy
// says, not a timeout of their own.
func TestBehaviourTestsRunUnderTheLockPolicy(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))`)
	cfg := cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}})
	cfg.Lock = config.LockConfig{LockTimeout: "200ms"}
	env, a := newEnv(t, cfg)
	require.Equal(t, 200*time.Millisecond, a.Lock.LockTimeout)
	fk := childParentFK()
	fk.RefColumns = []string{"id"}
	in := rollout.BehaviourInput{Environment: "staging", FKs: []plan.ForeignKey{fk}}
	// Unlocked first: passes, and the pool is connected before the clock runs.
	_, err := env.ExecuteActivity(rollout.ActRunBehaviourTests, in)
	require.NoError(t, err)

	ctx := context.Background()
	holder, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `LOCK TABLE child IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	start := time.Now()
	_, err = env.ExecuteActivity(rollout.ActRunBehaviourTests, in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "55P03")
	assert.Less(t, time.Since(start), 2*time.Second, "the 200 ms policy, not the 2 s the behaviour tests used to hard-code")
}
