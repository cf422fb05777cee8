package redisstore

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/mdegraph/mdegraph/internal/loaders"
)

//go:embed share.lua
var shareLua string

var (
	shareScript = rueidis.NewLuaScript(shareLua)
	shareSHA    = sha1Hex(shareLua)
)

// Lock timings of Sharing. The lock is short so that a replica that dies frees the key soon;
// its owner extends it while its call runs.
const (
	lockTTL     = 3 * time.Second
	extendEvery = lockTTL / 3
	pollEvery   = 250 * time.Millisecond // waiters re-check this often in case a notification is missed
	doneTTL     = 10 * time.Second       // how long an owner's "answered" mark stays for its waiters
)

var _ loaders.Sharing[int] = (*Sharing[int])(nil)

// Sharing is a loaders.Sharing across replicas. In front, an in-process loaders.Flight makes
// concurrent callers of one replica share one call and one Redis round trip per key. Behind
// it, a replica that must fetch keys first takes a short lock per key in Redis (share.lua):
//   - a key with a fresh cache entry (another replica answered it meanwhile) is answered from
//     it, with no call;
//   - a key locked by another replica is waited for: when that replica's call is done it
//     publishes the key (and marks it answered), and the waiter reads the answer from the
//     cache; it also re-checks every 250 ms, in case the notification was missed. If the other
//     replica's call failed, or it died (its lock expires within 3 s) or timed out, the waiter
//     takes the lock and calls itself;
//   - otherwise this replica holds the lock, extends it while the call runs, and frees it
//     when the call's answers are in the cache.
//
// A call that answers several keys (a list call) goes out as soon as this replica holds the
// lock of one of them: it costs one call however many keys it answers. The answers pass
// through the Cache: with both CACHE_TTL and STALE_TTL at 0 nothing is written there, and
// waiters end up calling after the other replica. While Redis is unreachable, sharing is
// within the replica only.
type Sharing[V any] struct {
	cache *Cache[V]
	local *loaders.Flight[V]
}

// NewSharing returns the Sharing of the answers cache holds; each call runs for at most
// callTimeout.
func NewSharing[V any](cache *Cache[V], callTimeout time.Duration) *Sharing[V] {
	return &Sharing[V]{cache: cache, local: loaders.NewFlight[V](callTimeout)}
}

// Join joins the calls in flight in this replica and reserves the others, as Flight does.
func (s *Sharing[V]) Join(keys []string) (loaders.Shared[V], []string) {
	sh, missing := s.local.Join(keys)
	return &share[V]{Shared: sh, s: s}, missing
}

type share[V any] struct {
	loaders.Shared[V]
	s *Sharing[V]
}

// Start runs fn for keys as the replica's call in flight, after checking with the others.
func (sh *share[V]) Start(ctx context.Context, keys []string, fn func(ctx context.Context) (map[string]loaders.Result[V], error)) {
	sh.Shared.Start(ctx, keys, func(cctx context.Context) (map[string]loaders.Result[V], error) {
		return sh.s.across(cctx, keys, fn)
	})
}

// lockState is share.lua's answer for one key.
type lockState struct {
	kind  int64 // 0 answered, 1 locked by us, 2 held by another replica
	entry []byte
	pttl  time.Duration
	owner string
}

// across settles keys with the other replicas: answers found in the cache, answers another
// replica is fetching, and a call of fn for the rest.
func (s *Sharing[V]) across(ctx context.Context, keys []string, fn func(ctx context.Context) (map[string]loaders.Result[V], error)) (map[string]loaders.Result[V], error) {
	store, obs := s.cache.store, s.cache.store.opts.Observer
	token := newToken()
	out := make(map[string]loaders.Result[V], len(keys))
	pending := keys
	owners := make(map[string]string) // key -> the token of the replica we waited for
	var waitStart time.Time
	waited := func() time.Duration {
		if waitStart.IsZero() {
			return 0
		}
		return time.Since(waitStart)
	}
	for {
		wake, stop := store.await(s.redisKeys(pending))
		states, err := s.lock(ctx, pending, token, owners)
		if err != nil {
			stop()
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			obs.Fallback("sharing")
			res, ferr := fn(ctx)
			return merge(out, res), ferr
		}
		var locked, held []string
		wait := pollEvery
		for i, k := range pending {
			st := states[i]
			switch st.kind {
			case 0:
				e, _, derr := s.cache.decode(st.entry)
				if derr != nil {
					locked = append(locked, k) // unreadable: as if there were none (the lock is not ours: fn overwrites it)
					continue
				}
				out[k] = loaders.ResultOf(k, e)
				if waitStart.IsZero() {
					obs.Share(s.cache.kind, "cached", 0)
				} else {
					obs.Share(s.cache.kind, "shared", waited())
				}
			case 1:
				locked = append(locked, k)
			default:
				held = append(held, k)
				owners[k] = st.owner
				wait = min(wait, st.pttl+time.Millisecond)
			}
		}
		if len(locked) > 0 || len(held) == 0 {
			stop()
		}
		if len(locked) > 0 {
			if !waitStart.IsZero() {
				for range locked {
					obs.Share(s.cache.kind, "took_over", waited())
				}
			}
			return s.call(ctx, token, locked, out, fn)
		}
		if len(held) == 0 {
			return out, nil
		}
		if waitStart.IsZero() {
			waitStart = time.Now()
		}
		timer := time.NewTimer(wait)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		stop()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		pending = held
	}
}

// call runs fn holding the locks of locked, extending them meanwhile, then frees them, marks
// the keys fn answered and publishes them.
func (s *Sharing[V]) call(ctx context.Context, token string, locked []string, out map[string]loaders.Result[V], fn func(ctx context.Context) (map[string]loaders.Result[V], error)) (map[string]loaders.Result[V], error) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(extendEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.script(context.WithoutCancel(ctx), "share.extend", locked, func(string) []string {
					return []string{"extend", token, strconv.FormatInt(lockTTL.Milliseconds(), 10)}
				})
			}
		}
	})
	res, err := fn(ctx)
	close(done)
	wg.Wait()
	s.script(context.WithoutCancel(ctx), "share.unlock", locked, func(k string) []string {
		answered := "0"
		if r, ok := res[k]; ok && r.Err == nil {
			answered = "1"
		}
		return []string{"unlock", token, s.cache.store.channel(), answered, strconv.FormatInt(doneTTL.Milliseconds(), 10)}
	})
	return merge(out, res), err
}

// lock runs share.lua's lock for every key, in one pipeline.
func (s *Sharing[V]) lock(ctx context.Context, keys []string, token string, owners map[string]string) ([]lockState, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	results, err := s.script(ctx, "share.lock", keys, func(k string) []string {
		return []string{"lock", token, strconv.FormatInt(lockTTL.Milliseconds(), 10), now, owners[k]}
	})
	if err != nil {
		return nil, err
	}
	out := make([]lockState, len(keys))
	for i, res := range results {
		v, err := res.ToArray()
		if err != nil || len(v) == 0 {
			return nil, fmt.Errorf("redisstore: share.lock answered %v: %w", v, err)
		}
		if out[i].kind, err = v[0].AsInt64(); err != nil {
			return nil, err
		}
		switch {
		case out[i].kind == 0 && len(v) == 2:
			out[i].entry, err = v[1].AsBytes()
		case out[i].kind == 2 && len(v) == 3:
			var ms int64
			ms, err = v[1].AsInt64()
			out[i].pttl = max(time.Duration(ms)*time.Millisecond, 0)
			out[i].owner, _ = v[2].ToString()
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// script runs share.lua for each key with the arguments args gives it, in one pipeline.
func (s *Sharing[V]) script(ctx context.Context, op string, keys []string, args func(key string) []string) ([]rueidis.RedisResult, error) {
	execs := make([]rueidis.LuaExec, len(keys))
	for i, k := range keys {
		execs[i] = rueidis.LuaExec{Keys: s.cache.keys(k), Args: args(k)}
	}
	results, err := s.cache.store.runMulti(ctx, op, shareScript, shareSHA, execs)
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		if err := r.Error(); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// redisKeys are the entry keys of keys, as the unlock script publishes them.
func (s *Sharing[V]) redisKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = s.cache.entryKey(k)
	}
	return out
}

// merge adds to out the results of res for keys out has none for.
func merge[V any](out, res map[string]loaders.Result[V]) map[string]loaders.Result[V] {
	for k, r := range res {
		if _, ok := out[k]; !ok {
			out[k] = r
		}
	}
	return out
}

func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// LocalEntries is the size of each kind's in-process layer in front of Redis.
const LocalEntries = 10_000

// NewKind returns the Cache and the Sharing of one kind of answer (name is unique to the kind
// and part of its keys), JSON-encoded; each call runs for at most callTimeout. Wiring a kind
// of loaders.Options to Redis is one line:
//
//	opts.Machines, opts.MachineCalls = redisstore.NewKind[*defender.Machine](store, "machines", timeout)
func NewKind[V any](s *Store, name string, callTimeout time.Duration) (*Cache[V], *Sharing[V]) {
	c := NewCache(s, name, LocalEntries, JSON[V]{})
	return c, NewSharing(c, callTimeout)
}
