package metrics

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// labelsUnderTest is a callerLabels over one counter, with a clock the test moves.
type labelsUnderTest struct {
	*callerLabels
	ops   *prometheus.CounterVec
	clock time.Time
}

func newLabelsUnderTest(top int) *labelsUnderTest {
	ops := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ops_total", Help: "test"}, []string{"caller"})
	l := &labelsUnderTest{callerLabels: newCallerLabels(top, ops.MetricVec), ops: ops, clock: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	l.now = func() time.Time { return l.clock }
	return l
}

// see observes caller id n times, and returns the label of the last observation.
func (l *labelsUnderTest) see(id string, n int) string {
	var label string
	for range n {
		l.observe(id, func(caller string) {
			label = caller
			l.ops.WithLabelValues(caller).Inc()
		})
	}
	return label
}

// series returns the caller label values that have a series.
func (l *labelsUnderTest) series(t *testing.T) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l.ops)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

func TestCallerLabels(t *testing.T) {
	t.Parallel()

	t.Run("the first callers get their own label, then others share one", func(t *testing.T) {
		t.Parallel()
		l := newLabelsUnderTest(2)
		for _, c := range []struct {
			id, want string
		}{{"apikey:a", "apikey:a"}, {"apikey:b", "apikey:b"}, {"apikey:c", OtherCallers}, {"apikey:a", "apikey:a"}} {
			if got := l.see(c.id, 1); got != c.want {
				t.Errorf("%s labelled %q, want %q", c.id, got, c.want)
			}
		}
		if got, want := l.series(t), map[string]float64{"apikey:a": 2, "apikey:b": 1, OtherCallers: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("series %v, want %v", got, want)
		}
	})

	t.Run("a much busier caller takes the least busy one's place, whose series goes", func(t *testing.T) {
		t.Parallel()
		l := newLabelsUnderTest(2)
		l.see("apikey:a", 10)
		l.see("apikey:b", 3)
		if got := l.see("apikey:c", 6); got != OtherCallers {
			t.Errorf("c after 6 (b has 3): %q, want other: not more than twice as busy", got)
		}
		if got := l.see("apikey:c", 1); got != "apikey:c" {
			t.Errorf("c after 7: %q, want its own label", got)
		}
		if got := l.see("apikey:b", 1); got != OtherCallers {
			t.Errorf("b after losing its place: %q, want other", got)
		}
		// c's first 6 observations stay under other; b's series is gone.
		if got, want := l.series(t), map[string]float64{"apikey:a": 10, "apikey:c": 1, OtherCallers: 7}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("series %v, want %v", got, want)
		}
	})

	t.Run("busiest means recently", func(t *testing.T) {
		t.Parallel()
		l := newLabelsUnderTest(1)
		l.see("apikey:old", 1000)
		if got := l.see("apikey:new", 100); got != OtherCallers {
			t.Fatalf("new while old is busier: %q, want other", got)
		}
		l.clock = l.clock.Add(5 * callerHalfLife) // old's 1000 count as 31, new's 100 as 3
		if got := l.see("apikey:new", 100); got != "apikey:new" {
			t.Errorf("new, as busy as before five half-lives later: %q, want its own label", got)
		}
	})

	t.Run("concurrent observations of a labelled caller are all counted", func(t *testing.T) {
		t.Parallel()
		l := newLabelsUnderTest(1)
		l.see("apikey:a", 1) // labelled: the others take the read-locked path
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				l.see("apikey:a", 500)
				l.see("apikey:b", 10) // not labelled: the write-locked path, at the same time
			})
		}
		wg.Wait()
		if got, want := l.series(t), map[string]float64{"apikey:a": 4001, OtherCallers: 80}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("series %v, want %v", got, want)
		}
		if n := l.counts["apikey:a"].count(); n != 4001 {
			t.Errorf("a's count = %v, want 4001", n)
		}
	})

	t.Run("series stay bounded under churn", func(t *testing.T) {
		t.Parallel()
		const top = 20
		l := newLabelsUnderTest(top)
		rng := rand.New(rand.NewPCG(7, 8))
		zipf := rand.NewZipf(rand.New(rand.NewPCG(9, 10)), 1.2, 1, 100000)
		total := 0
		for i := range 50000 {
			if i%250 == 0 {
				l.clock = l.clock.Add(time.Duration(rng.IntN(20)) * time.Second)
			}
			l.see(fmt.Sprintf("addr:10.0.%d", zipf.Uint64()), 1)
			total++
			if i%5000 == 0 {
				if n := len(l.series(t)); n > top+1 {
					t.Fatalf("after %d observations: %d caller series, want at most %d", i, n, top+1)
				}
			}
		}
		series := l.series(t)
		if n := len(series); n > top+1 {
			t.Errorf("%d caller series, want at most %d", n, top+1)
		}
		if _, ok := series["addr:10.0.0"]; !ok {
			t.Errorf("the busiest caller (addr:10.0.0) has no series of its own: %v", series)
		}
		if l.labelled > top || len(l.counts) > 4*top {
			t.Errorf("%d labelled, %d tracked; want at most %d and %d", l.labelled, len(l.counts), top, 4*top)
		}
		if n := testutil.CollectAndCount(l.ops); n != len(series) {
			t.Errorf("CollectAndCount = %d, want %d", n, len(series))
		}
	})
}
