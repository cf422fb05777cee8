package redisstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/quota"
	"github.com/mdegraph/mdegraph/internal/redistest"
)

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t, "--requirepass", "s3cret")
	srv.Stop()
	url := "redis://:s3cret@" + srv.Addr + "/2"
	_, err := Open(t.Context(), Options{URL: url, Prefix: "p", Timeout: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("Open succeeded with Redis down")
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret") || !strings.Contains(msg, srv.Addr+"/2") || !strings.Contains(msg, "REDIS_FALLBACK=local") {
		t.Errorf("error %q: want where (host, port, db), the way out, and never the password", msg)
	}

	s, err := Open(t.Context(), Options{URL: url, Prefix: "p", Timeout: 200 * time.Millisecond, StartDegraded: true, HealthInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open with StartDegraded: %v", err)
	}
	defer s.Close()
	if d, _ := s.Degraded(); !d {
		t.Error("not degraded with Redis down")
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { d, _ := s.Degraded(); return !d })
}

func TestOpenRefusesBadSettings(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{URL: "redis://127.0.0.1:1", Prefix: "a{b}"}, {URL: "http://127.0.0.1:1", Prefix: "p"}, {URL: "redis://127.0.0.1:1", Prefix: ""}} {
		if _, err := Open(t.Context(), o); err == nil {
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
}

// TestLimiterFallsBackAndWritesBack: with Redis gone each replica takes from its share of the
// limits; when Redis is back (here empty, as after a restart) the replicas' calls of the
// window count in the shared one again.
func TestLimiterFallsBackAndWritesBack(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	opts := LimiterOptions{Windows: []quota.Window{{Limit: 4, Per: time.Hour}}, MaxWait: 100 * time.Millisecond, Replicas: 2, Families: []string{"fam"}}
	sa, sb := openStore(t, srv, "fallback"), openStore(t, srv, "fallback")
	a, b := NewLimiter(sa, opts), NewLimiter(sb, opts)
	if _, err := a.Take(t.Context(), "fam"); err != nil { // one shared grant, counted in a's local share
		t.Fatal(err)
	}
	srv.Stop()
	granted := 0
	for range 4 {
		_, err := a.Take(t.Context(), "fam")
		var exceeded *quota.ExceededError
		switch {
		case err == nil:
			granted++
		case !errors.As(err, &exceeded):
			t.Fatalf("Take while Redis is down: %v", err)
		}
	}
	if granted != 1 {
		t.Errorf("granted %d on the local budget, want 1 (2 = 4/REPLICAS, one spent before Redis went away)", granted)
	}
	if d, _ := sa.Degraded(); !d {
		t.Error("store not degraded")
	}
	if st := a.Status(); len(st) != 1 || st[0].Windows[0].Limit != 2 {
		t.Errorf("Status while degraded = %+v, want the local budget", st)
	}
	if err := srv.Start(t.Context()); err != nil { // its data is gone, as after a crash
		t.Fatal(err)
	}
	waitFor(t, func() bool { da, _ := sa.Degraded(); db, _ := sb.Degraded(); return !da && !db })
	st := b.Status()
	if len(st) != 1 || st[0].Windows[0].Used != 2 {
		t.Errorf("shared Status after Redis came back = %+v, want 2: the call made meanwhile, and the one before (Redis restarted empty)", st)
	}
}
