package loaders

import (
	"context"
	"fmt"
	"sync"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// BudgetError is an upstream call refused because the request already made as many as its
// budget allows (Loaders.LimitCalls: MAX_UPSTREAM_CALLS_PER_QUERY). No call was made. It
// happens only to calls whose number the cost estimate could not know before the query ran:
// those below lists whose length only the answers tell (an account's machines for each logon
// user, say).
type BudgetError struct {
	// Endpoint is the endpoint family of the call refused.
	Endpoint defender.Endpoint
	// Max is the request's budget, in upstream calls.
	Max int
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("loaders: %s: this request already made the %d upstream calls one query may make", e.Endpoint, e.Max)
}

// callBudget counts the upstream calls one request starts, up to max. Calls the cache answers
// or another request's call in flight answers cost nothing. It is safe for concurrent use; a
// nil *callBudget allows everything.
type callBudget struct {
	mu   sync.Mutex
	max  int
	used int
}

// LimitCalls bounds the upstream calls the request may start to n (n ≤ 0: no bound). A call
// past it is refused with a *BudgetError. The cost limit (package resolvers) sets it to
// MAX_UPSTREAM_CALLS_PER_QUERY, so that no query spends more, whatever its answers hold.
func (l *Loaders) LimitCalls(n int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= 0 {
		l.budget = nil
		return
	}
	l.budget = &callBudget{max: n}
}

// CallsStarted reports how many upstream calls the request started since LimitCalls (0
// without a limit).
func (l *Loaders) CallsStarted() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	b := l.budget
	l.mu.Unlock()
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// take reserves the calls of the longest prefix of refs whose cost fits, and returns its
// length. cost must not decrease as refs grow.
func (b *callBudget) take(refs []string, cost func([]string) int) int {
	if b == nil {
		return len(refs)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(refs)
	for n > 0 && b.used+cost(refs[:n]) > b.max {
		n--
	}
	b.used += cost(refs[:n])
	return n
}

// giveBack returns n calls reserved and not made (another request's call answered them).
func (b *callBudget) giveBack(n int) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used = max(b.used-n, 0)
}

// refusal is the error of a call b refuses.
func (b *callBudget) refusal(ep defender.Endpoint) error {
	return &BudgetError{Endpoint: ep, Max: b.max}
}

type budgetKey struct{}

// withBudget returns ctx carrying the request's call budget, for the Fetcher.
func (l *Loaders) withBudget(ctx context.Context) context.Context {
	l.mu.Lock()
	b := l.budget
	l.mu.Unlock()
	if b == nil {
		return ctx
	}
	return context.WithValue(ctx, budgetKey{}, b)
}

// budgetFrom returns the call budget in ctx, nil if none.
func budgetFrom(ctx context.Context) *callBudget {
	b, _ := ctx.Value(budgetKey{}).(*callBudget)
	return b
}
