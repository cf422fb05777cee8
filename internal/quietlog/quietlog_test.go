package quietlog

import (
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"
)

func TestRepeats(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := New(time.Minute)
		type step struct {
			after       time.Duration // sleep before the call
			key         string
			level       slog.Level
			wantLevel   slog.Level
			wantLowered int
		}
		steps := []step{
			{0, "down", slog.LevelWarn, slog.LevelWarn, 0},
			{time.Second, "down", slog.LevelWarn, slog.LevelDebug, 0},
			{time.Second, "down", slog.LevelWarn, slog.LevelDebug, 0},
			{0, "refused", slog.LevelWarn, slog.LevelWarn, 0}, // another key is its own
			{0, "quiet", slog.LevelInfo, slog.LevelInfo, 0},   // below warn: untouched
			{0, "quiet", slog.LevelInfo, slog.LevelInfo, 0},
			{58 * time.Second, "down", slog.LevelWarn, slog.LevelWarn, 2}, // a minute after the first
			{time.Second, "down", slog.LevelWarn, slog.LevelDebug, 0},
			{0, "bug", slog.LevelError, slog.LevelError, 0},
			{0, "bug", slog.LevelError, slog.LevelDebug, 0},
		}
		for i, s := range steps {
			time.Sleep(s.after)
			level, lowered := r.Level(s.key, s.level)
			if level != s.wantLevel || lowered != s.wantLowered {
				t.Errorf("step %d (%s at %v): got %v with %d lowered, want %v with %d", i, s.key, s.level, level, lowered, s.wantLevel, s.wantLowered)
			}
		}
	})
}

func TestRepeatsForgetsOldKeys(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := New(time.Minute)
		for i := range maxKeys {
			r.Level(fmt.Sprint(i), slog.LevelWarn)
		}
		time.Sleep(time.Minute)
		r.Level("new", slog.LevelWarn)
		if n := len(r.seen); n != 1 {
			t.Errorf("%d keys remembered, want 1: the old ones were due", n)
		}
	})
}
