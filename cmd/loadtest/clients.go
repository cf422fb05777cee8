package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// newHTTPClient keeps one connection per client alive, as browsers behind a frontend would,
// instead of net/http's default of two idle connections per host (which would make most
// queries open a connection and leave thousands in TIME_WAIT).
func newHTTPClient(clients int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = clients
	tr.MaxIdleConnsPerHost = clients
	return &http.Client{Transport: tr}
}

// result is one query's outcome.
type result struct {
	sent    bool // false if the run was interrupted before this query went out
	target  int  // index in workload.targets
	latency time.Duration
	verdict verdict
}

// runResult is the outcome of every query.
type runResult struct {
	results     []result
	elapsed     time.Duration
	interrupted bool
}

// count counts the answers of outcome o.
func (r runResult) count(o outcome) int {
	n := 0
	for _, res := range r.results {
		if res.sent && res.verdict.outcome == o {
			n++
		}
	}
	return n
}

// runQueries sends the plan's queries from o.clients concurrent clients, each taking the next
// query as soon as its previous answer is in, and checks every answer. Query i goes to
// urls[i mod len(urls)] (the replicas in turn).
func runQueries(ctx context.Context, client *http.Client, urls []string, w workload, o options, progress io.Writer) runResult {
	res := runResult{results: make([]result, len(w.plan))}
	var next, done, nCorrect, nStale, nPartial, nDeclined, nWrong atomic.Int64
	start := time.Now()

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if o.progress > 0 {
		progressDone.Go(func() {
			tick := time.NewTicker(o.progress)
			defer tick.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-tick.C:
					fmt.Fprintf(progress, "loadtest: %d/%d answered in %s: %d correct, %d stale, %d partial, %d declined, %d wrong\n",
						done.Load(), len(w.plan), time.Since(start).Round(100*time.Millisecond),
						nCorrect.Load(), nStale.Load(), nPartial.Load(), nDeclined.Load(), nWrong.Load())
				}
			}
		})
	}

	var wg sync.WaitGroup
	for range o.clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(w.plan) {
					return
				}
				j := w.plan[i]
				r := ask(ctx, client, urls[i%len(urls)], w.bodies[j], w.targets[j], o.timeout)
				r.target = j
				res.results[i] = r // each index is written by one client only
				switch r.verdict.outcome {
				case correct:
					nCorrect.Add(1)
				case stale:
					nStale.Add(1)
				case partial:
					nPartial.Add(1)
				case declined:
					nDeclined.Add(1)
				default:
					nWrong.Add(1)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(stopProgress)
	progressDone.Wait()
	res.interrupted = ctx.Err() != nil || int(done.Load()) < len(w.plan)
	return res
}

// warmUp asks each distinct query of w's plan once, from o.clients clients, and returns
// their outcome: the cache then holds what the measured run asks, unless an answer failed.
func warmUp(ctx context.Context, client *http.Client, urls []string, w workload, o options, progress io.Writer) runResult {
	distinct := w
	distinct.plan = nil
	seen := make(map[int]bool, len(w.targets))
	for _, j := range w.plan {
		if !seen[j] {
			seen[j] = true
			distinct.plan = append(distinct.plan, j)
		}
	}
	fmt.Fprintf(progress, "loadtest: warm-up: asking each of the %d distinct queries once\n", len(distinct.plan))
	o.progress = 0
	return runQueries(ctx, client, urls, distinct, o, progress)
}

// ask sends one query and checks its answer. Transport errors, a body that cannot be read and
// an answer later than timeout are wrong.
func ask(ctx context.Context, client *http.Client, url string, body []byte, want expected, timeout time.Duration) result {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	r := result{sent: true}
	fail := func(err error) result {
		r.latency = time.Since(start)
		if errors.Is(err, context.DeadlineExceeded) {
			r.verdict = wrongf("device %s: no answer within -timeout %s (%v)", want.id, timeout, err)
		} else {
			r.verdict = wrongf("device %s: %v", want.id, err)
		}
		return r
	}
	req, err := http.NewRequestWithContext(qctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fail(err)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		return fail(fmt.Errorf("read the answer: %w", err))
	}
	r.latency = time.Since(start)
	r.verdict = check(resp.StatusCode, b, want)
	return r
}
