package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/redistest"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

// entryAt is an answer fetched now, fresh for fresh.
func entryAt[V any](v V, fresh time.Duration) loaders.Entry[V] {
	now := time.Now().Truncate(time.Millisecond)
	return loaders.Entry[V]{Value: v, Fetched: now, FreshUntil: now.Add(fresh)}
}

func TestCacheSharedBetweenReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	a := NewCache(openStore(t, srv, "cache"), "users", 100, JSON[[]string]{})
	b := NewCache(openStore(t, srv, "cache"), "users", 100, JSON[[]string]{})
	ctx := t.Context()

	e := entryAt([]string{"contoso\\jdoe"}, time.Minute)
	a.Set(ctx, "id\x00ep\x00k1", e, time.Hour)
	got, ok := b.Get(ctx, "id\x00ep\x00k1")
	if !ok || !reflect.DeepEqual(got.Value, e.Value) || !got.Fetched.Equal(e.Fetched) || !got.FreshUntil.Equal(e.FreshUntil) || got.NotFound {
		t.Fatalf("other replica Get = %+v, %v; want %+v", got, ok, e)
	}
	if _, until, ok := b.GetUntil(ctx, "id\x00ep\x00k1"); !ok || until.Before(e.FreshUntil.Add(-time.Second)) {
		t.Errorf("GetUntil = %v, %v; want the fresh entry's expiry (%v)", until, ok, e.FreshUntil)
	}
	// The in-process layer keeps it no longer than it is fresh (give or take the moment
	// between reading the clock and storing it).
	if _, until, ok := b.local.GetUntil(ctx, "id\x00ep\x00k1"); !ok || until.After(e.FreshUntil.Add(10*time.Millisecond)) {
		t.Errorf("in-process copy until %v (kept %v), want at most FreshUntil %v", until, ok, e.FreshUntil)
	}

	// A 404 is an entry; identities and keys do not mix.
	nf := loaders.Entry[[]string]{NotFound: true, Fetched: e.Fetched, FreshUntil: e.FreshUntil}
	a.Set(ctx, "id\x00ep\x00k2", nf, time.Minute)
	if got, ok := b.Get(ctx, "id\x00ep\x00k2"); !ok || !got.NotFound {
		t.Errorf("404 entry = %+v, %v; want NotFound", got, ok)
	}
	if _, ok := b.Get(ctx, "other\x00ep\x00k1"); ok {
		t.Error("another identity's key found the entry")
	}

	// A ttl of 0 forgets the key everywhere (a refusal drops what was kept).
	a.Set(ctx, "id\x00ep\x00k1", loaders.Entry[[]string]{}, 0)
	b.local.Set(ctx, "id\x00ep\x00k1", loaders.Entry[[]string]{}, 0) // (b's layer holds it while fresh)
	if _, ok := b.Get(ctx, "id\x00ep\x00k1"); ok {
		t.Error("forgotten key still found")
	}
}

// TestCacheWithoutRedis: while Redis is unreachable the replica keeps and serves what it
// fetches itself, and reads Redis's entries again once it is back.
func TestCacheWithoutRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	s := openStore(t, srv, "down")
	c := NewCache(s, "users", 100, JSON[string]{})
	ctx := t.Context()
	c.Set(ctx, "shared", entryAt("before", 0), time.Hour) // a stale fallback: in Redis only

	srv.Stop()
	c.Set(ctx, "k", entryAt("during", time.Minute), time.Hour)
	if degraded, _ := s.Degraded(); !degraded {
		t.Error("a failed write did not mark the store degraded")
	}
	if got, ok := c.Get(ctx, "k"); !ok || got.Value != "during" {
		t.Errorf("Get while Redis is down = %+v, %v; want the entry kept in process", got, ok)
	}
	if _, ok := c.Get(ctx, "shared"); ok {
		t.Error("an entry only Redis held was served while it was down")
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { d, _ := s.Degraded(); return !d })
	c.Set(ctx, "shared", entryAt("after", time.Minute), time.Hour)
	if got, ok := NewCache(openStore(t, srv, "down"), "users", 100, JSON[string]{}).Get(ctx, "shared"); !ok || got.Value != "after" {
		t.Errorf("after Redis came back, another replica read %+v, %v; want the shared entry", got, ok)
	}
}

// The JSON codec gives back exactly the answers Defender's types decoded.
func TestJSONCodecRoundTrip(t *testing.T) {
	t.Parallel()
	sim := simulator.New(simulator.Options{})
	for _, sm := range sim.Machines()[:50] {
		wire, _ := json.Marshal(sm) // as the simulator answers
		var m defender.Machine      // as the client decodes it
		if err := json.Unmarshal(wire, &m); err != nil {
			t.Fatal(err)
		}
		b, err := JSON[*defender.Machine]{}.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := JSON[*defender.Machine]{}.Unmarshal(b)
		if err != nil || !reflect.DeepEqual(got, &m) {
			t.Fatalf("machine %s: round trip gave %+v, %v; want %+v", m.ID, got, err, m)
		}
	}
}

// sharedCall is a call one replica makes for key through its Sharing: fn stores the answer as
// the Fetcher does, and counts.
func sharedCall(ctx context.Context, s *Sharing[string], key string, fn func(ctx context.Context) (string, error)) loaders.Result[string] {
	sh, missing := s.Join([]string{key})
	if len(missing) == 1 {
		sh.Start(ctx, missing, func(ctx context.Context) (map[string]loaders.Result[string], error) {
			v, err := fn(ctx)
			if err != nil {
				return nil, err
			}
			s.cache.Set(ctx, key, entryAt(v, time.Minute), time.Hour)
			return map[string]loaders.Result[string]{key: {Value: v}}, nil
		})
	}
	return sh.Wait(ctx)[key]
}

func TestSharingAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	replica := func() *Sharing[string] {
		return NewSharing(NewCache(openStore(t, srv, "share"), "users", 100, JSON[string]{}), 10*time.Second)
	}
	a, b := replica(), replica()
	ctx := t.Context()
	key := "id\x00machines.logonusers\x00dev1"

	t.Run("the second replica waits for the first one's answer", func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		var calls atomic.Int32
		first := make(chan loaders.Result[string])
		go func() {
			first <- sharedCall(ctx, a, key, func(context.Context) (string, error) {
				calls.Add(1)
				close(started)
				<-release
				return "answer", nil
			})
		}()
		<-started
		second := make(chan loaders.Result[string])
		go func() {
			second <- sharedCall(ctx, b, key, func(context.Context) (string, error) { calls.Add(1); return "again", nil })
		}()
		waitFor(t, func() bool { return waitingOn(b.cache.store) })
		close(release)
		if r := <-first; r.Value != "answer" {
			t.Errorf("first replica got %+v", r)
		}
		if r := <-second; r.Value != "answer" || r.Err != nil {
			t.Errorf("second replica got %+v, want the first one's answer", r)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%d upstream calls, want 1", n)
		}
	})

	t.Run("a failed call is made again by the waiter", func(t *testing.T) {
		key := key + "-fail"
		release := make(chan struct{})
		started := make(chan struct{})
		go sharedCall(ctx, a, key, func(context.Context) (string, error) {
			close(started)
			<-release
			return "", errors.New("503")
		})
		<-started
		second := make(chan loaders.Result[string])
		go func() {
			second <- sharedCall(ctx, b, key, func(context.Context) (string, error) { return "own", nil })
		}()
		waitFor(t, func() bool { return waitingOn(b.cache.store) })
		close(release)
		if r := <-second; r.Value != "own" {
			t.Errorf("waiter got %+v, want its own call's answer", r)
		}
	})

	t.Run("a lock left by a replica that died expires, and the waiter calls", func(t *testing.T) {
		key := key + "-dead"
		c := *a.cache.store.client.Load()
		if err := c.Do(ctx, c.B().Set().Key(a.cache.keys(key)[1]).Value("dead-replica").PxMilliseconds(300).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if r := sharedCall(ctx, b, key, func(context.Context) (string, error) { return "own", nil }); r.Value != "own" {
			t.Errorf("waiter got %+v, want its own call's answer", r)
		}
	})
}

// waitingOn reports whether someone waits for a notification from s.
func waitingOn(s *Store) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters) > 0
}

// TestScriptsOnCluster runs every script against a one-node Redis Cluster, where a script
// whose keys are not all in one hash slot fails with CROSSSLOT; and checks that the keys of
// each script share one hash tag.
func TestScriptsOnCluster(t *testing.T) {
	t.Parallel()
	srv := redistest.NewCluster(t)
	s := openStore(t, srv, "cluster")
	l := NewLimiter(s, LimiterOptions{Windows: []quota.Window{{Limit: 1, Per: time.Hour}}, MaxWait: time.Second, Families: []string{"fam"}})
	ctx := t.Context()
	at, err := l.Take(ctx, "fam")
	if err != nil {
		t.Fatalf("Take on a cluster: %v", err)
	}
	l.Refund("fam", at)
	l.Pause("fam", time.Now().Add(time.Minute))
	if st := l.Status(); len(st) != 1 || st[0].PausedUntil.IsZero() {
		t.Errorf("Status on a cluster = %+v", st)
	}
	if d, _ := s.Degraded(); d {
		t.Fatal("a script failed on the cluster (the store degraded)")
	}
	sh := NewSharing(NewCache(s, "users", 10, JSON[string]{}), time.Second)
	if r := sharedCall(ctx, sh, "id\x00ep\x00k", func(context.Context) (string, error) { return "v", nil }); r.Value != "v" {
		t.Errorf("sharing on a cluster: %+v", r)
	}
	if got, ok := NewCache(openStore(t, srv, "cluster"), "users", 10, JSON[string]{}).Get(ctx, "id\x00ep\x00k"); !ok || got.Value != "v" {
		t.Errorf("cache on a cluster: %+v, %v", got, ok)
	}
	if d, _ := s.Degraded(); d {
		t.Fatal("a script failed on the cluster (the store degraded)")
	}

	for name, keys := range map[string][]string{"limiter": l.keys("fam"), "share": sh.cache.keys("id\x00ep\x00k")} {
		tag := hashTag(keys[0])
		for _, k := range keys {
			if hashTag(k) != tag || !strings.HasPrefix(tag, "cluster:") {
				t.Errorf("%s keys %q: not one hash tag under the prefix", name, keys)
			}
		}
	}
}

// hashTag is the part of key Redis Cluster hashes: between the first { and the next }.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	j := strings.IndexByte(key[i+1:], '}')
	if i < 0 || j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}
