package simulator

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)

func TestSlidingLimitMinute(t *testing.T) {
	t.Parallel()
	l := slidingLimit{perMinute: 100}
	for i := range 100 {
		if ok, _ := l.allowAt(t0.Add(time.Duration(i) * 100 * time.Millisecond)); !ok {
			t.Fatalf("call %d refused, want the first 100 admitted", i+1)
		}
	}
	steps := []struct {
		at       time.Duration // since t0
		wantOK   bool
		wantWait time.Duration
	}{
		{10 * time.Second, false, 50 * time.Second},                // the oldest (t0) leaves at t0+60s
		{60*time.Second - time.Nanosecond, false, time.Nanosecond}, // still inside (t-60s, t]
		{60 * time.Second, true, 0},                                // t0 has left the half-open window
		{60 * time.Second, false, 100 * time.Millisecond},          // full again; next leaver is t0+100ms
		{60*time.Second + 100*time.Millisecond, true, 0},           // exactly when it leaves
		{60*time.Second + 150*time.Millisecond, false, 50 * time.Millisecond},
	}
	for _, st := range steps {
		ok, wait := l.allowAt(t0.Add(st.at))
		if ok != st.wantOK || wait != st.wantWait {
			t.Errorf("at t0+%v: got (%v, %v), want (%v, %v)", st.at, ok, wait, st.wantOK, st.wantWait)
		}
	}
	if l.maxInMinute != 100 {
		t.Errorf("maxInMinute: got %d, want 100", l.maxInMinute)
	}
}

func TestSlidingLimitRejectedCallsDoNotCount(t *testing.T) {
	t.Parallel()
	l := slidingLimit{perMinute: 100}
	for range 100 {
		l.allowAt(t0)
	}
	for i := range 1000 { // a client ignoring Retry-After
		if ok, _ := l.allowAt(t0.Add(30*time.Second + time.Duration(i)*time.Millisecond)); ok {
			t.Fatal("admitted over the limit")
		}
	}
	if ok, _ := l.allowAt(t0.Add(60 * time.Second)); !ok {
		t.Error("rejected calls pushed back the slot: refused at t0+60s")
	}
}

func TestSlidingLimitHour(t *testing.T) {
	t.Parallel()
	l := slidingLimit{perMinute: 100, perHour: 1500}
	for minute := range 15 {
		for i := range 100 {
			at := t0.Add(time.Duration(minute)*time.Minute + time.Duration(i)*time.Millisecond)
			if ok, wait := l.allowAt(at); !ok {
				t.Fatalf("minute %d call %d refused (wait %v)", minute, i, wait)
			}
		}
	}
	ok, wait := l.allowAt(t0.Add(15 * time.Minute))
	if ok || wait != 45*time.Minute {
		t.Fatalf("call 1501: got (%v, %v), want refused for 45m", ok, wait)
	}
	if got := retryAfterSeconds(wait); got != 2700 {
		t.Errorf("Retry-After: got %d, want 2700", got)
	}
	if ok, _ := l.allowAt(t0.Add(time.Hour - time.Nanosecond)); ok {
		t.Error("admitted before the hour's oldest call left")
	}
	if ok, _ := l.allowAt(t0.Add(time.Hour)); !ok {
		t.Error("refused when the hour's oldest call left")
	}
	if l.maxInHour != 1500 || l.maxInMinute != 100 {
		t.Errorf("max: got %d/h %d/min, want 1500 and 100", l.maxInHour, l.maxInMinute)
	}
	if len(l.admitted) > 1501 {
		t.Errorf("kept %d calls, want at most an hour's worth", len(l.admitted))
	}
}

func TestSlidingLimitUnlimitedAndClockStep(t *testing.T) {
	t.Parallel()
	l := slidingLimit{}
	for range 5000 {
		if ok, _ := l.allowAt(t0); !ok {
			t.Fatal("unlimited window refused a call")
		}
	}
	if l.maxInMinute != 5000 {
		t.Errorf("maxInMinute: got %d, want 5000", l.maxInMinute)
	}
	l2 := slidingLimit{perMinute: 2}
	l2.allowAt(t0.Add(10 * time.Second))
	if ok, _ := l2.allowAt(t0); !ok { // the clock stepped back: read as t0+10s
		t.Fatal("refused after a clock step back")
	}
	if ok, wait := l2.allowAt(t0); ok || wait != 60*time.Second {
		t.Errorf("after step back: got (%v, %v), want refused for 60s", ok, wait)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		wait time.Duration
		want int
	}{
		{0, 1}, {time.Nanosecond, 1}, {time.Second, 1}, {time.Second + time.Nanosecond, 2},
		{59500 * time.Millisecond, 60}, {45 * time.Minute, 2700},
	}
	for _, tt := range tests {
		if got := retryAfterSeconds(tt.wait); got != tt.want {
			t.Errorf("retryAfterSeconds(%v): got %d, want %d", tt.wait, got, tt.want)
		}
	}
}

func TestRateLimitOverHTTP(t *testing.T) {
	t.Parallel()
	s, clk := newTestSim(t, Options{})
	tok := getToken(t, s)
	target := "/api/machines/" + s.ExampleMachineID()
	for i := range 100 {
		wantStatus(t, get(t, s, target, tok), http.StatusOK)
		if i < 99 {
			clk.Advance(100 * time.Millisecond)
		}
	}
	// Now t0+9.9s: the oldest call leaves at t0+60s, 50.1s away; Retry-After rounds up to 51.
	rec := get(t, s, target, tok)
	wantAPIError(t, rec, http.StatusTooManyRequests, codeTooManyRequests)
	if got := rec.Header().Get("Retry-After"); got != "51" {
		t.Errorf("Retry-After: got %q, want 51", got)
	}
	// Each endpoint has its own limit.
	wantStatus(t, get(t, s, target+"/logonusers", tok), http.StatusOK)
	wantStatus(t, get(t, s, "/api/machines?$top=1", tok), http.StatusOK)

	clk.Advance(50100*time.Millisecond - time.Nanosecond)
	wantStatus(t, get(t, s, target, tok), http.StatusTooManyRequests)
	clk.Advance(time.Nanosecond)
	wantStatus(t, get(t, s, target, tok), http.StatusOK)

	st := s.Stats()[EndpointGetMachine]
	if st.Calls != 103 || st.ByStatus[200] != 101 || st.ByStatus[429] != 2 || st.TooManyRequests != 2 || st.MaxInAnyMinute != 100 {
		t.Errorf("stats: got %+v", st)
	}
}

func TestRateLimitDisabled(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{PerMinute: -1, PerHour: -1})
	tok := getToken(t, s)
	for range 250 {
		wantStatus(t, get(t, s, "/api/machines?$top=1", tok), http.StatusOK)
	}
	if got := s.Stats()[EndpointListMachines].MaxInAnyMinute; got != 250 {
		t.Errorf("MaxInAnyMinute: got %d, want 250", got)
	}
}

func TestRateLimitCustomLimits(t *testing.T) {
	t.Parallel()
	s, clk := newTestSim(t, Options{PerMinute: 5, PerHour: 7})
	tok := getToken(t, s)
	target := "/api/machines/" + s.ExampleMachineID() + "/logonusers"
	var codes []int
	for range 3 {
		for range 6 {
			codes = append(codes, get(t, s, target, tok).Code)
		}
		clk.Advance(time.Minute)
	}
	want := []int{200, 200, 200, 200, 200, 429, 200, 200, 429, 429, 429, 429, 429, 429, 429, 429, 429, 429}
	if !slices.Equal(codes, want) {
		t.Errorf("statuses:\ngot  %v\nwant %v", codes, want)
	}
	rec := get(t, s, target, tok) // t0+3m: the hour's oldest leaves at t0+1h
	if got := rec.Header().Get("Retry-After"); got != strconv.Itoa(57*60) {
		t.Errorf("Retry-After: got %q, want %d", got, 57*60)
	}
}

func TestStatsMaxInAnyWindow(t *testing.T) {
	t.Parallel()
	s, clk := newTestSim(t, Options{PerMinute: -1})
	tok := getToken(t, s)
	burst := func(n int) {
		for range n {
			wantStatus(t, get(t, s, "/api/machines?$top=1", tok), http.StatusOK)
		}
	}
	burst(30)
	clk.Advance(40 * time.Second)
	burst(50) // (t0-20s, t0+40s]: 80
	clk.Advance(20 * time.Second)
	burst(40) // at t0+60s the first 30 have left: 50+40 = 90
	st := s.Stats()[EndpointListMachines]
	if st.MaxInAnyMinute != 90 || st.MaxInAnyHour != 120 || st.Calls != 120 {
		t.Errorf("stats: got %+v, want max 90/min, 120/h, 120 calls", st)
	}
	s.ResetStats()
	if st := s.Stats()[EndpointListMachines]; st.Calls != 0 || st.MaxInAnyMinute != 0 || len(st.ByStatus) != 0 {
		t.Errorf("after reset: got %+v, want zeros", st)
	}
	burst(1) // the window still holds 40 calls, but only calls since the reset are counted
	if got := s.Stats()[EndpointListMachines].MaxInAnyMinute; got != 1 {
		t.Errorf("after reset and one call: MaxInAnyMinute %d, want 1", got)
	}
}

func TestRateLimitConcurrent(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{})
	tok := getToken(t, s)
	target := "/api/machines/" + s.ExampleMachineID()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 50 {
		wg.Go(func() {
			for range 10 {
				c := get(t, s, target, tok).Code
				mu.Lock()
				codes[c]++
				mu.Unlock()
			}
			_ = s.Stats() // read while others write
		})
	}
	wg.Wait()
	if codes[200] != 100 || codes[429] != 400 {
		t.Errorf("statuses: got %v, want 100 OK and 400 Too Many Requests", codes)
	}
	if st := s.Stats()[EndpointGetMachine]; st.MaxInAnyMinute != 100 || st.TooManyRequests != 400 {
		t.Errorf("stats: got %+v", st)
	}
}

// TestRateLimitNewFamilies: a device's alerts and a user's machines have limits of their own, and
// people calling on-behalf-of themselves share the application's budget (counted per
// application + tenant upstream).
func TestRateLimitNewFamilies(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{PerMinute: 4, PerHour: 6, Authority: testAuthority}) // the bubble's clock
		app := getToken(t, s)
		megan, grady := personToken(t, s, "megan"), personToken(t, s, "grady")
		alerts := "/api/machines/" + s.ExampleMachineID() + "/alerts"
		users := "/api/users/administrator/machines"
		var codes []int
		for _, tok := range []string{app, megan, grady, megan, grady} { // alerts: 4 a minute, whoever asks
			target := alerts
			if tok != app {
				target = "/api/machines/" + s.Machines()[2].ID + "/alerts" // a device all three may or may not see: 200 or 404 both count
			}
			codes = append(codes, get(t, s, target, tok).Code)
		}
		if codes[4] != http.StatusTooManyRequests || slices.Contains(codes[:4], http.StatusTooManyRequests) {
			t.Errorf("alerts statuses %v: want the fifth call in the minute refused", codes)
		}
		for range 4 { // a user's machines has its own budget
			wantStatus(t, get(t, s, users, megan), http.StatusOK)
		}
		rec := get(t, s, users, grady)
		wantAPIError(t, rec, http.StatusTooManyRequests, codeTooManyRequests)
		if got := rec.Header().Get("Retry-After"); got != "60" {
			t.Errorf("Retry-After: got %q, want 60", got)
		}
		time.Sleep(time.Minute)
		wantStatus(t, get(t, s, users, grady), http.StatusOK)
		wantStatus(t, get(t, s, users, grady), http.StatusOK)
		rec = get(t, s, users, grady) // seven in the hour: the hour's limit of 6
		wantAPIError(t, rec, http.StatusTooManyRequests, codeTooManyRequests)
		if got := rec.Header().Get("Retry-After"); got != "3540" {
			t.Errorf("hourly Retry-After: got %q, want 3540", got)
		}
		st := s.Stats()
		m, _ := s.Person("megan")
		g, _ := s.Person("grady")
		if st[EndpointUserMachines].ByIdentity[m.OID] != 4 || st[EndpointUserMachines].ByIdentity[g.OID] != 4 ||
			st[EndpointUserMachines].MaxInAnyMinute != 4 || st[EndpointMachineAlerts].TooManyRequests != 1 {
			t.Errorf("stats: user-machines %+v, machine-alerts %+v", st[EndpointUserMachines], st[EndpointMachineAlerts])
		}
	})
}
