package metrics

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdegraph/mdegraph/internal/principal"
)

// Per-caller metrics carry a caller label, and a label value per caller would let the number
// of series grow with every client address ever seen. So only the busiest callers of the last
// minutes get their own value (principal IDs: "addr:192.0.2.1", "apikey:frontend",
// "user:{tid}/{oid}", "anonymous"; never a key or a token); all others are counted as "other".

// OtherCallers is the caller label value of every caller not among the busiest.
const OtherCallers = "other"

// Defaults of the per-caller labels.
const (
	// TopCallers is how many callers get their own label value.
	TopCallers = 20
	// callerHalfLife is how fast a caller's count fades: "busiest" means recently.
	callerHalfLife = time.Minute
	// promoteFactor is how much busier than the least busy labelled caller another must be
	// to take its place, so that callers of about equal volume do not swap places (and
	// series) back and forth.
	promoteFactor = 2
)

// callerLabels decides the caller label value of each observation: a space-saving
// heavy-hitters count (Metwally et al., 2005) over a few times TopCallers callers, with counts
// halved every callerHalfLife, of which at most top are labelled. A caller leaving the
// labelled set has its series deleted (its later observations count as "other"); so each
// per-caller metric has at most top+1 caller values at any time.
type callerLabels struct {
	top, tracked int
	vecs         []*prometheus.MetricVec // the per-caller metrics, to delete a demoted caller's series
	now          func() time.Time

	// mu guards what follows; an observation of a labelled caller with no halving due takes
	// it for reading only (observeLabelled), so that the operations of the busiest callers,
	// every request of them, do not queue on it.
	mu       sync.RWMutex
	counts   map[string]*callerCount
	labelled int
	decayed  time.Time // when counts were last halved
}

type callerCount struct {
	// n is the recent observations, decayed (a float64's bits: observations under the read
	// lock add to it at once); an over-estimate for a caller that replaced another.
	n        atomic.Uint64
	labelled bool
}

func (e *callerCount) count() float64 { return math.Float64frombits(e.n.Load()) }

func (e *callerCount) set(n float64) { e.n.Store(math.Float64bits(n)) }

// add adds d to the count, also while others do under the read lock.
func (e *callerCount) add(d float64) {
	for {
		old := e.n.Load()
		if e.n.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func newCallerLabels(top int, vecs ...*prometheus.MetricVec) *callerLabels {
	return &callerLabels{top: top, tracked: 4 * top, vecs: vecs, now: time.Now, counts: map[string]*callerCount{}}
}

// observe counts one observation of caller id and runs record with its label value, under
// the lock, so that a concurrent demotion cannot delete the series between the decision and
// the record (which would leave it behind, unbounded).
func (c *callerLabels) observe(id string, record func(label string)) {
	if c.observeLabelled(id, record) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.decay()
	e := c.counts[id]
	if e == nil {
		e = &callerCount{}
		if len(c.counts) >= c.tracked {
			// Space-saving: the new caller replaces the least counted one and inherits its
			// count, so that a busy newcomer rises without a lifetime of history.
			minID, least := c.least(false)
			e.set(least.count())
			c.forget(minID, least)
		}
		c.counts[id] = e
	}
	e.add(1)
	if !e.labelled {
		switch {
		case c.labelled < c.top:
			e.labelled, c.labelled = true, c.labelled+1
		default:
			if minID, least := c.least(true); e.count() > promoteFactor*least.count() {
				c.demote(minID, least)
				e.labelled, c.labelled = true, c.labelled+1
			}
		}
	}
	label := OtherCallers
	if e.labelled {
		label = id
	}
	record(label)
}

// observeLabelled is observe for a caller already labelled, when no halving is due, under the
// read lock (a demotion, which deletes the caller's series, takes the write lock, so it cannot
// come between the decision and the record); it reports false, having done nothing, for
// every other observation.
func (c *callerLabels) observeLabelled(id string, record func(label string)) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.counts[id]
	if e == nil || !e.labelled || c.decayed.IsZero() || c.now().Sub(c.decayed) >= callerHalfLife {
		return false
	}
	e.add(1)
	record(id)
	return true
}

// least returns the tracked caller with the lowest count, among the labelled ones only if
// labelled is true.
func (c *callerLabels) least(labelled bool) (string, *callerCount) {
	var minID string
	var least *callerCount
	for id, e := range c.counts {
		if (!labelled || e.labelled) && (least == nil || e.count() < least.count()) {
			minID, least = id, e
		}
	}
	return minID, least
}

// forget stops tracking id, deleting its series if it was labelled.
func (c *callerLabels) forget(id string, e *callerCount) {
	c.demote(id, e)
	delete(c.counts, id)
}

// demote takes id's label away, if it had one, and deletes its series: its later
// observations count as "other".
func (c *callerLabels) demote(id string, e *callerCount) {
	if !e.labelled {
		return
	}
	for _, v := range c.vecs {
		v.DeletePartialMatch(prometheus.Labels{"caller": id})
	}
	e.labelled, c.labelled = false, c.labelled-1
}

// decay halves every count once per callerHalfLife passed.
func (c *callerLabels) decay() {
	now := c.now()
	if c.decayed.IsZero() {
		c.decayed = now
	}
	halvings := int(now.Sub(c.decayed) / callerHalfLife)
	if halvings <= 0 {
		return
	}
	c.decayed = c.decayed.Add(time.Duration(halvings) * callerHalfLife)
	f := 1.0 / float64(uint64(1)<<min(halvings, 62))
	for _, e := range c.counts {
		e.set(e.count() * f)
	}
}

// callerOf is the principal ID of the caller in ctx ("anonymous" if none).
func callerOf(ctx context.Context) string {
	return principal.IDFrom(ctx)
}
