// Package quietlog keeps a repeated warning from flooding the log: while Defender is down or
// the credentials are refused, every query fails the same way, and one line a minute says as
// much as one line per query.
package quietlog

import (
	"log/slog"
	"sync"
	"time"
)

// maxKeys bounds the warnings remembered; past it, those older than Every are forgotten.
const maxKeys = 1000

// Repeats decides at which level a warning is logged: the first one of its key in each Every
// at its level, the repeats in between at debug. A Repeats is safe for concurrent use; the
// zero value is not usable, use New.
type Repeats struct {
	every time.Duration

	mu   sync.Mutex
	seen map[string]*warning
}

type warning struct {
	at      time.Time // when it was last logged at its level
	lowered int       // repeats logged at debug since
}

// New returns a Repeats that lets a warning of each key through once per every.
func New(every time.Duration) *Repeats {
	return &Repeats{every: every, seen: make(map[string]*warning)}
}

// Level returns the level to log a warning of key at: level itself (and how many repeats
// were lowered to debug since it was last logged at level), or slog.LevelDebug for a repeat
// within Every. Levels below warn are returned unchanged: only warnings and errors are kept
// quiet.
func (r *Repeats) Level(key string, level slog.Level) (slog.Level, int) {
	if level < slog.LevelWarn {
		return level, 0
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.seen[key]; ok && now.Sub(w.at) < r.every {
		w.lowered++
		return slog.LevelDebug, 0
	}
	lowered := 0
	if w, ok := r.seen[key]; ok {
		lowered = w.lowered
	}
	if len(r.seen) >= maxKeys {
		for k, w := range r.seen {
			if now.Sub(w.at) >= r.every {
				delete(r.seen, k)
			}
		}
	}
	r.seen[key] = &warning{at: now}
	return level, lowered
}
