package rollout

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWindowAt(t *testing.T) {
	jkt, err := time.LoadLocation("Asia/Jakarta")
	require.NoError(t, err)
	tests := []struct {
		name       string
		win        MaintenanceWindow
		now        time.Time
		wantOpen   time.Time
		wantInside bool
	}{
		{"before today's window", MaintenanceWindow{Start: "02:00", Duration: "2h"}, time.Date(2026, 1, 5, 1, 0, 0, 0, time.UTC), time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC), false},
		{"inside", MaintenanceWindow{Start: "02:00", Duration: "2h"}, time.Date(2026, 1, 5, 3, 59, 0, 0, time.UTC), time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC), true},
		{"closed: next day", MaintenanceWindow{Start: "02:00", Duration: "2h"}, time.Date(2026, 1, 5, 4, 0, 0, 0, time.UTC), time.Date(2026, 1, 6, 2, 0, 0, 0, time.UTC), false},
		{"across midnight, after midnight", MaintenanceWindow{Start: "23:00", Duration: "3h"}, time.Date(2026, 1, 5, 1, 0, 0, 0, time.UTC), time.Date(2026, 1, 4, 23, 0, 0, 0, time.UTC), true},
		{"time zone", MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "Asia/Jakarta"}, time.Date(2026, 1, 5, 18, 0, 0, 0, time.UTC), time.Date(2026, 1, 6, 2, 0, 0, 0, jkt), false},
		{"time zone inside", MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "Asia/Jakarta"}, time.Date(2026, 1, 5, 19, 30, 0, 0, time.UTC), time.Date(2026, 1, 6, 2, 0, 0, 0, jkt), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := parseWindow(&tt.win)
			require.NoError(t, err)
			opens, closes, inside := w.at(tt.now)
			assert.True(t, opens.Equal(tt.wantOpen), "opens %s, want %s", opens, tt.wantOpen)
			assert.Equal(t, tt.wantInside, inside)
			assert.Equal(t, w.dur, closes.Sub(opens))
		})
	}
}

func TestParseWindowRejectsBadInput(t *testing.T) {
	for _, w := range []MaintenanceWindow{
		{Start: "2am", Duration: "2h"},
		{Start: "02:00", Duration: "forever"},
		{Start: "02:00", Duration: "25h"},
		{Start: "02:00", Duration: "2h", Timezone: "Mars/Olympus"},
	} {
		_, err := parseWindow(&w)
		assert.Error(t, err, "%+v", w)
	}
}
