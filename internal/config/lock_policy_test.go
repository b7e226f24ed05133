package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
)

// The waits for blockers and VALIDATE's own statement timeout come from
// the lock section; what does not make sense is refused by name.
func TestLockPolicyBlockerWaitAndValidateTimeout(t *testing.T) {
	tests := []struct {
		name    string
		lock    LockConfig
		check   func(t *testing.T, p dbx.LockPolicy)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, p dbx.LockPolicy) {
			assert.Equal(t, 2*time.Minute, p.BlockerWait)
			assert.Equal(t, 20*time.Millisecond, p.BlockerAge)
			assert.Zero(t, p.ValidateStatementTimeout, "none")
		}},
		{name: "configured", lock: LockConfig{BlockerWait: "10m", BlockerAge: "100ms", ValidateStatementTimeout: "6h"}, check: func(t *testing.T, p dbx.LockPolicy) {
			assert.Equal(t, 10*time.Minute, p.BlockerWait)
			assert.Equal(t, 100*time.Millisecond, p.BlockerAge)
			assert.Equal(t, 6*time.Hour, p.ValidateStatementTimeout)
		}},
		{name: "off", lock: LockConfig{BlockerWait: "off"}, check: func(t *testing.T, p dbx.LockPolicy) {
			assert.Negative(t, p.BlockerWait)
			assert.Negative(t, p.WithDefaults().BlockerWait, "off stays off")
		}},
		{name: "blocker_wait zero", lock: LockConfig{BlockerWait: "0s"}, wantErr: `lock.blocker_wait: "0s": want a positive duration (2m) or off`},
		{name: "blocker_wait words", lock: LockConfig{BlockerWait: "a while"}, wantErr: "lock.blocker_wait"},
		{name: "blocker_age zero", lock: LockConfig{BlockerAge: "0ms"}, wantErr: "lock.blocker_age"},
		{name: "blocker_age negative", lock: LockConfig{BlockerAge: "-1s"}, wantErr: "lock.blocker_age"},
		{name: "validate timeout too short", lock: LockConfig{ValidateStatementTimeout: "500ms"}, wantErr: "lock.validate_statement_timeout: 500ms is under a second"},
		{name: "validate timeout negative", lock: LockConfig{ValidateStatementTimeout: "-1h"}, wantErr: "lock.validate_statement_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Lock: tt.lock}
			p, err := c.LockPolicy()
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, p)
		})
	}
}
