package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/principal"
	"github.com/mdegraph/mdegraph/internal/quota"
)

//go:embed limiter.lua
var limiterLua string

var (
	limiterScript = rueidis.NewLuaScript(limiterLua)
	limiterSHA    = sha1Hex(limiterLua)
)

// Limiter is quota.Set's guarantee for all replicas together: per endpoint family, never more
// than Limit grants in any sliding window (t-Per, t], counted by Redis's clock (TIME), with
// waiters served in fair turns between callers, in the order package quota documents. It is a
// defender.Limiter. It is safe for concurrent use.
//
// One Lua script per family keeps the grant log (a sorted set), the waiters and the fair-share
// state. A call that finds a slot free and nobody in line is granted at once. Otherwise it gets
// a reservation: its place in line and the projected time of its grant, computed along the line
// from the log and the waiters ahead; or, when that time is past QUOTA_MAX_WAIT or the call's
// deadline, an *quota.ExceededError with the wait. The holder sleeps on a local timer until its
// time and confirms: the script grants it then if the windows allow it, counting the waiters
// still ahead as granted at their times, or gives it a later time (after a pause, or a waiter
// ahead whose holder was late). Every grant is written to the log at the Redis time of the
// script that makes it and checked against the whole log then, which is what keeps every window
// within its limit, whatever the order and timing of the replicas. A holder whose caller goes
// away leaves (its caller's later waiters move up, as in package quota); a pause pushes waiters
// back and those pushed past their limits find out when they confirm, no later than their
// previous time, so nobody waits longer than promised.
//
// While Redis is unreachable each replica takes from a local quota.Set whose limits are the
// shared ones divided by Replicas (at least 1 a window); it knows this replica's own grants
// (recorded as they are made) and, when Redis is back, the grants it made locally are written
// to the shared log. What it cannot know is what the other replicas were granted just before
// Redis went away: a window spanning that moment may hold their grants and the local ones.
type Limiter struct {
	// OnWait, if not nil, is called after every Take as quota.Set.OnWait is.
	OnWait func(ctx context.Context, family string, waited time.Duration, err error)

	store    *Store
	maxWait  time.Duration
	windows  []quota.Window
	longest  time.Duration // the longest window's Per: how long this replica's grants are kept
	winArg   string
	local    *quota.Set
	families sync.Map // family -> struct{}: the ones Status reports

	mu          sync.Mutex
	last        []quota.FamilyStatus // the latest shared Status, reused for StatusMaxAge
	lastAt      time.Time
	own         map[string][]ownGrant // this replica's grants within the longest window
	localPauses map[string]time.Time  // pauses decided while Redis was away
}

// StatusMaxAge is how long a Status read from Redis is reused when this replica has not taken,
// refunded or paused since: Query.quota and extensions.quota, read at the end of every
// operation, then show this replica's own calls at once and the other replicas' within this.
const StatusMaxAge = 250 * time.Millisecond

// ownGrant is one of this replica's grants: at is on this replica's clock (Take's time for a
// local grant), shared says whether Redis has it.
type ownGrant struct {
	at     time.Time
	shared bool
}

var _ defender.Limiter = (*Limiter)(nil)

// LimiterOptions configure NewLimiter.
type LimiterOptions struct {
	// Windows are the limits every replica shares (all replicas must use the same ones).
	Windows []quota.Window
	// MaxWait is the longest a call waits in line (QUOTA_MAX_WAIT).
	MaxWait time.Duration
	// Replicas divides the limits into the local budget used while Redis is unreachable.
	Replicas int
	// Families are reported by Status from the start; others are added when first used.
	Families []string
}

// NewLimiter returns a Limiter keeping its state in s. It panics on windows quota.NewLimiter
// would refuse.
func NewLimiter(s *Store, opts LimiterOptions) *Limiter {
	local := make([]quota.Window, len(opts.Windows))
	parts := make([]string, len(opts.Windows))
	longest := time.Duration(0)
	for i, w := range opts.Windows {
		local[i] = quota.Window{Limit: LocalLimit(w.Limit, opts.Replicas), Per: w.Per}
		parts[i] = strconv.Itoa(w.Limit) + ":" + strconv.FormatInt(w.Per.Microseconds(), 10)
		longest = max(longest, w.Per)
	}
	l := &Limiter{
		store:       s,
		maxWait:     opts.MaxWait,
		windows:     slices.Clone(opts.Windows),
		longest:     longest,
		winArg:      strings.Join(parts, ","),
		local:       quota.NewSet(opts.MaxWait, local...),
		own:         make(map[string][]ownGrant),
		localPauses: make(map[string]time.Time),
	}
	for _, f := range opts.Families {
		l.families.Store(f, struct{}{})
		l.local.Limiter(f)
	}
	s.OnRecover(l.writeBack)
	return l
}

// LocalLimit is one replica's share of limit while Redis is unreachable: limit/replicas,
// rounded down, and at least 1.
func LocalLimit(limit, replicas int) int {
	return max(limit/max(replicas, 1), 1)
}

// keys are the Redis keys of family's state, in the order limiter.lua reads them.
func (l *Limiter) keys(family string) []string {
	tag := "q:" + family
	return []string{l.store.key(tag, ":log"), l.store.key(tag, ":w"), l.store.key(tag, ":o"),
		l.store.key(tag, ":s"), l.store.key(tag, ":cn")}
}

// reply is limiter.lua's answer: kind 1 granted at a, 2 reserved (id, projected a), 3
// refused (a: the wait), 0 unknown; now is Redis's clock then.
type reply struct {
	kind, id, a, now int64
	at               time.Time // when it arrived, on this replica's clock
}

// untilA is how long from the reply's arrival until Redis time a.
func (r reply) untilA() time.Duration {
	return time.Duration(r.a-r.now)*time.Microsecond - time.Since(r.at)
}

func (l *Limiter) script(ctx context.Context, family, op string, args ...string) (reply, error) {
	defer l.forgetStatus() // every op but status changes the shared state
	res, err := l.store.run(ctx, "limiter."+op, limiterScript, limiterSHA, l.keys(family), append([]string{op, l.winArg}, args...))
	if err != nil {
		return reply{}, err
	}
	v, err := res.AsIntSlice()
	if err != nil || len(v) < 3 {
		return reply{}, fmt.Errorf("redisstore: limiter %s answered %v: %v", op, v, err)
	}
	r := reply{kind: v[0], a: v[1], now: v[len(v)-1], at: time.Now()}
	if r.kind == 2 {
		r.id, r.a = v[1], v[2]
	}
	return r, nil
}

const (
	kindUnknown = 0
	kindGranted = 1
	kindWaiting = 2
	kindRefused = 3
)

// Take returns when a call of family may go out, with the time of its grant (Redis's clock;
// for Refund), or an error: a *quota.ExceededError when the grant would come later than
// MaxWait or ctx's deadline, or ctx's error. Errors are wrapped with the family's name, as
// quota.Set's are.
func (l *Limiter) Take(ctx context.Context, family string) (time.Time, error) {
	l.families.LoadOrStore(family, struct{}{})
	start := time.Now()
	at, err := l.take(ctx, family, start.Add(max(l.maxWait, 0)))
	if err != nil {
		err = fmt.Errorf("quota %s: %w", family, err)
	}
	if l.OnWait != nil {
		l.OnWait(ctx, family, time.Since(start), err)
	}
	return at, err
}

func (l *Limiter) take(ctx context.Context, family string, maxAt time.Time) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	caller := principal.IDFrom(ctx)
	for {
		deadline := int64(-1)
		if d, ok := ctx.Deadline(); ok {
			deadline = max(time.Until(d).Microseconds(), 0)
		}
		// The scripts run to their answer even if the caller goes away meanwhile: a
		// reservation made must be known, to be left.
		r, err := l.script(context.WithoutCancel(ctx), family, "take", caller, strconv.FormatInt(time.Until(maxAt).Microseconds(), 10),
			strconv.FormatInt(deadline, 10))
		for err == nil && r.kind == kindWaiting {
			r, err = l.wait(ctx, family, r)
		}
		switch {
		case ctx.Err() != nil:
			return time.Time{}, ctx.Err()
		case err != nil:
			return l.takeLocal(ctx, family, maxAt)
		case r.kind == kindGranted:
			l.local.Record(family, r.at) // this replica's share, for the local budget
			l.remember(family, ownGrant{at: r.at, shared: true})
			return time.UnixMicro(r.a), nil
		case r.kind == kindRefused:
			return time.Time{}, &quota.ExceededError{RetryAfter: time.Duration(r.a) * time.Microsecond}
		}
		// The reservation is gone (Redis lost its data): queue again while there is time.
		if !time.Now().Before(maxAt) {
			return time.Time{}, &quota.ExceededError{}
		}
	}
}

// wait sleeps until the reservation r's time and confirms it. If ctx ends first it leaves the
// line, and returns ctx's error.
func (l *Limiter) wait(ctx context.Context, family string, r reply) (reply, error) {
	timer := time.NewTimer(max(r.untilA(), 0))
	defer timer.Stop()
	id := strconv.FormatInt(r.id, 10)
	select {
	case <-timer.C:
		return l.script(context.WithoutCancel(ctx), family, "confirm", id) // a grant made is the caller's, as in package quota
	case <-ctx.Done():
	}
	// Leave on a context of our own: the caller's is done, and the place must be freed.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.store.opts.Timeout)
	defer cancel()
	_, _ = l.script(lctx, family, "leave", id)
	return reply{}, ctx.Err()
}

// takeLocal takes from the local budget while Redis is unreachable.
func (l *Limiter) takeLocal(ctx context.Context, family string, maxAt time.Time) (time.Time, error) {
	l.store.opts.Observer.Fallback("quota")
	at, err := l.local.Limiter(family).Take(ctx, time.Until(maxAt))
	if err == nil {
		l.remember(family, ownGrant{at: at})
	}
	return at, err
}

// remember keeps g among this replica's grants, and forgets those older than every window.
func (l *Limiter) remember(family string, g ownGrant) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gs := l.own[family]
	i := 0
	for i < len(gs) && time.Since(gs[i].at) >= l.longest {
		i++
	}
	l.own[family] = append(gs[i:], g)
}

// Pause stops every replica's grants of family before until, after Defender answered 429. The
// local budget pauses too, in case Redis goes away meanwhile.
func (l *Limiter) Pause(family string, until time.Time) {
	l.local.Pause(family, until)
	d := time.Until(until)
	if d <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.store.opts.Timeout)
	defer cancel()
	if _, err := l.script(ctx, family, "pause", strconv.FormatInt(d.Microseconds(), 10)); err != nil {
		l.mu.Lock()
		l.localPauses[family] = until
		l.mu.Unlock()
	}
}

// Refund gives back the slot granted at grantedAt (a time Take returned) by a call that never
// reached Defender.
func (l *Limiter) Refund(family string, grantedAt time.Time) {
	if grantedAt.IsZero() {
		return
	}
	l.mu.Lock()
	gs := l.own[family]
	local := slices.IndexFunc(gs, func(g ownGrant) bool { return !g.shared && g.at.Equal(grantedAt) })
	if local >= 0 {
		l.own[family] = slices.Delete(gs, local, local+1)
	} else {
		for i := len(gs) - 1; i >= 0; i-- { // the latest shared grant stands for this one
			if gs[i].shared {
				l.own[family] = slices.Delete(gs, i, i+1)
				break
			}
		}
	}
	l.mu.Unlock()
	if local >= 0 {
		l.local.Refund(family, grantedAt)
		return
	}
	l.local.Refund(family, time.Now()) // the record of this replica's share
	ctx, cancel := context.WithTimeout(context.Background(), l.store.opts.Timeout)
	defer cancel()
	_, _ = l.script(ctx, family, "refund", strconv.FormatInt(grantedAt.UnixMicro(), 10))
}

// writeBack writes the grants and pauses made while Redis was away into the shared state, so
// that the windows count them; if Redis lost its data meanwhile, it writes all of this
// replica's grants of the longest window, so that the fleet's log is whole again.
func (l *Limiter) writeBack(ctx context.Context, lost bool) error {
	l.mu.Lock()
	snap := time.Now()
	own, pauses := make(map[string][]ownGrant, len(l.own)), maps.Clone(l.localPauses)
	for family, gs := range l.own {
		own[family] = slices.Clone(gs)
	}
	l.mu.Unlock()
	for family, gs := range own {
		args := make([]string, 0, len(gs))
		for _, g := range gs {
			if age := time.Since(g.at); age < l.longest && (lost || !g.shared) {
				args = append(args, strconv.FormatInt(age.Microseconds(), 10))
			}
		}
		for chunk := range slices.Chunk(args, 1000) {
			if _, err := l.script(ctx, family, "record", chunk...); err != nil {
				return err
			}
		}
	}
	for family, until := range pauses {
		if d := time.Until(until); d > 0 {
			if _, err := l.script(ctx, family, "pause", strconv.FormatInt(d.Microseconds(), 10)); err != nil {
				return err
			}
		}
	}
	// Written: from now on Redis has them. (The Store is still degraded, so no Take adds to
	// them meanwhile.)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, gs := range l.own {
		for i := range gs {
			gs[i].shared = gs[i].shared || gs[i].at.Before(snap)
		}
	}
	for family := range pauses {
		delete(l.localPauses, family)
	}
	return nil
}

// Status returns every family's state now, sorted by family: the shared state, or the local
// budget's while Redis is unreachable.
func (l *Limiter) Status() []quota.FamilyStatus {
	var families []string
	l.families.Range(func(k, _ any) bool {
		families = append(families, k.(string))
		return true
	})
	slices.Sort(families)
	l.mu.Lock()
	last, fresh := l.last, time.Since(l.lastAt) < StatusMaxAge
	l.mu.Unlock()
	if fresh && len(last) == len(families) {
		return slices.Clone(last)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.store.opts.Timeout)
	defer cancel()
	start := time.Now()
	out, err := l.status(ctx, families)
	if err != nil {
		return l.local.Status()
	}
	l.mu.Lock()
	if l.lastAt.Before(start) {
		l.last, l.lastAt = slices.Clone(out), start
	}
	l.mu.Unlock()
	return out
}

// forgetStatus drops the Status kept, after this replica changed the shared state.
func (l *Limiter) forgetStatus() {
	l.mu.Lock()
	l.last = nil
	l.mu.Unlock()
}

func (l *Limiter) status(ctx context.Context, families []string) ([]quota.FamilyStatus, error) {
	execs := make([]rueidis.LuaExec, len(families))
	for i, f := range families {
		execs[i] = rueidis.LuaExec{Keys: l.keys(f), Args: []string{"status", l.winArg}}
	}
	results, err := l.store.runMulti(ctx, "limiter.status", limiterScript, limiterSHA, execs)
	if err != nil {
		return nil, err
	}
	arrived := time.Now()
	out := make([]quota.FamilyStatus, len(families))
	for i, res := range results {
		v, err := res.AsIntSlice()
		if err == nil && len(v) != 4+len(l.windows) {
			err = fmt.Errorf("redisstore: limiter status answered %v", v)
		}
		if err != nil {
			return nil, err
		}
		now := v[0]
		local := func(us int64) time.Time { return arrived.Add(time.Duration(us-now) * time.Microsecond) }
		s := quota.Status{NextSlot: local(v[1]), Queued: int(v[3]), Windows: make([]quota.WindowStatus, len(l.windows))}
		if v[2] > 0 {
			s.PausedUntil = local(v[2])
		}
		for j, w := range l.windows {
			used := int(v[4+j])
			s.Windows[j] = quota.WindowStatus{Window: w, Used: used, Remaining: max(w.Limit-used, 0)}
		}
		out[i] = quota.FamilyStatus{Family: families[i], Status: s}
	}
	return out, nil
}
