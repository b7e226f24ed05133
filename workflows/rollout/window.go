package rollout

import (
	"fmt"
	"time"
)

// window is a parsed daily maintenance window.
type window struct {
	hour, min    int
	dur          time.Duration
	loc          *time.Location
	notifyBefore time.Duration
	label        string
}

func parseWindow(m *MaintenanceWindow) (window, error) {
	w := window{loc: time.UTC, notifyBefore: 30 * time.Minute}
	if _, err := fmt.Sscanf(m.Start, "%d:%d", &w.hour, &w.min); err != nil || w.hour < 0 || w.hour > 23 || w.min < 0 || w.min > 59 {
		return w, fmt.Errorf("maintenance_window.start %q: want HH:MM", m.Start)
	}
	d, err := time.ParseDuration(m.Duration)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return w, fmt.Errorf("maintenance_window.duration %q: want a duration between 1s and 24h", m.Duration)
	}
	w.dur = d
	if m.Timezone != "" {
		loc, err := time.LoadLocation(m.Timezone)
		if err != nil {
			return w, fmt.Errorf("maintenance_window.timezone %q: %v", m.Timezone, err)
		}
		w.loc = loc
	}
	if m.NotifyBefore != "" {
		nb, err := time.ParseDuration(m.NotifyBefore)
		if err != nil || nb < 0 {
			return w, fmt.Errorf("maintenance_window.notify_before %q: want a duration", m.NotifyBefore)
		}
		w.notifyBefore = nb
	}
	w.label = fmt.Sprintf("daily %02d:%02d %s for %s", w.hour, w.min, w.loc, w.dur)
	return w, nil
}

// at returns the window containing t (inside = true) or else the next one.
// Opening times are computed with time.Date in the window's zone, so a
// daylight-saving change moves the window with the wall clock.
func (w window) at(t time.Time) (opens, closes time.Time, inside bool) {
	lt := t.In(w.loc)
	for day := -1; day <= 1; day++ {
		o := time.Date(lt.Year(), lt.Month(), lt.Day()+day, w.hour, w.min, 0, 0, w.loc)
		c := o.Add(w.dur)
		if !t.Before(o) && t.Before(c) {
			return o, c, true
		}
		if o.After(t) {
			return o, c, false
		}
	}
	// Unreachable for dur <= 24h; fall back to tomorrow's.
	o := time.Date(lt.Year(), lt.Month(), lt.Day()+1, w.hour, w.min, 0, 0, w.loc)
	return o, o.Add(w.dur), false
}
