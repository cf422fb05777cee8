package quota

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Set holds one Limiter per endpoint family (for example "machines",
// "alerts"), all with the same windows, created on first use.
// A Set is safe for concurrent use by multiple goroutines.
type Set struct {
	// OnWait, if not nil, is called after every Set.Wait with the call's
	// context (which names its caller, see principal.FromContext), the family,
	// the time spent in Wait and its error (nil if granted), so the caller can
	// record metrics without this package knowing about them. Set it before
	// the first Wait and leave it.
	OnWait func(ctx context.Context, family string, waited time.Duration, err error)

	maxWait  time.Duration
	windows  []Window
	limiters sync.Map // family -> *Limiter
}

// NewSet returns a Set whose limiters enforce windows and whose Wait waits at
// most maxWait. It panics on windows NewLimiter would refuse.
func NewSet(maxWait time.Duration, windows ...Window) *Set {
	largestLimit(windows) // fail at start, not on a family's first use
	return &Set{maxWait: maxWait, windows: slices.Clone(windows)}
}

// Limiter returns family's Limiter, creating it if needed.
func (s *Set) Limiter(family string) *Limiter {
	if l, ok := s.limiters.Load(family); ok {
		return l.(*Limiter)
	}
	nl := NewLimiter(s.windows...)
	nl.family = family
	l, _ := s.limiters.LoadOrStore(family, nl)
	return l.(*Limiter)
}

// Wait is family's Limiter.Wait with the Set's maxWait. A non-nil error is
// wrapped with the family's name; use errors.As for *ExceededError and
// errors.Is for context.Canceled and context.DeadlineExceeded.
func (s *Set) Wait(ctx context.Context, family string) error {
	_, err := s.Take(ctx, family)
	return err
}

// Take is Wait, and also returns the time of the grant, for Refund.
func (s *Set) Take(ctx context.Context, family string) (time.Time, error) {
	start := time.Now()
	at, err := s.Limiter(family).Take(ctx, s.maxWait)
	if err != nil {
		err = fmt.Errorf("quota %s: %w", family, err)
	}
	if s.OnWait != nil {
		s.OnWait(ctx, family, time.Since(start), err)
	}
	return at, err
}

// Refund is family's Limiter.Refund: the call granted at at never reached the upstream.
func (s *Set) Refund(family string, at time.Time) {
	s.Limiter(family).Refund(at)
}

// Record is family's Limiter.Record: a grant made elsewhere at at.
func (s *Set) Record(family string, at time.Time) {
	s.Limiter(family).Record(at)
}

// Pause is family's Limiter.Pause: no grant for family before until.
func (s *Set) Pause(family string, until time.Time) {
	s.Limiter(family).Pause(until)
}

// FamilyStatus is one family's Status.
type FamilyStatus struct {
	Family string
	Status
}

// Status returns every family's state now, sorted by family.
func (s *Set) Status() []FamilyStatus {
	return s.status(func(l *Limiter) Status { return l.Status() })
}

// StatusAt returns every family's state at t, sorted by family.
func (s *Set) StatusAt(t time.Time) []FamilyStatus {
	return s.status(func(l *Limiter) Status { return l.StatusAt(t) })
}

func (s *Set) status(of func(*Limiter) Status) []FamilyStatus {
	var out []FamilyStatus
	s.limiters.Range(func(k, v any) bool {
		out = append(out, FamilyStatus{Family: k.(string), Status: of(v.(*Limiter))})
		return true
	})
	slices.SortFunc(out, func(a, b FamilyStatus) int { return strings.Compare(a.Family, b.Family) })
	return out
}
