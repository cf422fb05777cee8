// Package loaders decides how upstream answers are obtained: per-request dataloaders batch and
// deduplicate what one GraphQL request asks for, and a process-wide Fetcher shares calls in
// flight between requests and caches answers for a short while.
package loaders

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/graph-gophers/dataloader/v7"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// DefaultBatchWait is how long a dataloader collects keys before calling the fetcher, unless
// Options.BatchWait says otherwise. Resolvers of one request run concurrently and usually ask
// within microseconds of each other, but a busy machine can delay one by a few milliseconds;
// the window is cheap next to the upstream call that follows it (tens to hundreds of
// milliseconds), and answers already cached skip it (see Loaders.Machine).
const DefaultBatchWait = 5 * time.Millisecond

// batchInput is the capacity of a dataloader's key queue. A request asks for a few keys, and
// the cost limit bounds it to a few dozen; more keys only wait their turn to be queued.
const batchInput = 64

type ctxKey struct{}

// Loaders are one request's dataloaders.
type Loaders struct {
	fetcher  *Fetcher
	machines *dataloader.Loader[string, *defender.Machine]
	users    *dataloader.Loader[string, []defender.User]

	mu   sync.Mutex
	seen map[string]bool // endpoint+key already asked for in this request
}

// New returns fresh loaders for one request, answering from f.
func New(f *Fetcher) *Loaders {
	l := &Loaders{fetcher: f, seen: make(map[string]bool)}
	l.machines = dataloader.NewBatchedLoader(l.loadMachines,
		dataloader.WithWait[string, *defender.Machine](f.opts.BatchWait),
		dataloader.WithInputCapacity[string, *defender.Machine](batchInput))
	l.users = dataloader.NewBatchedLoader(l.loadUsers,
		dataloader.WithWait[string, []defender.User](f.opts.BatchWait),
		dataloader.WithInputCapacity[string, []defender.User](batchInput))
	return l
}

// Middleware gives every request its own Loaders, and the identity upstream calls are made
// as (identity(r)), before calling next.
func Middleware(f *Fetcher, identity func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := WithIdentity(r.Context(), identity(r))
		ctx = context.WithValue(ctx, ctxKey{}, New(f))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// For returns the request's loaders, or nil when the middleware did not run.
func For(ctx context.Context) *Loaders {
	l, _ := ctx.Value(ctxKey{}).(*Loaders)
	return l
}

// Machine returns the machine with the given device id or computer name. A cached answer is
// returned at once; anything else goes through the request's dataloader, which waits
// Options.BatchWait for the other keys of the request.
func (l *Loaders) Machine(ctx context.Context, ref defender.MachineRef) (*defender.Machine, error) {
	if l == nil {
		return nil, errNoLoaders
	}
	if r, ok := cached(ctx, l.fetcher, defender.EndpointMachine, l.fetcher.opts.Machines, ref.String()); ok {
		return r.Value, r.Err
	}
	l.noteRepeat(defender.EndpointMachine, ref.String())
	return l.machines.Load(ctx, ref.String())()
}

// LogonUsers returns the users logged on to the device id, from the cache at once when it
// has them.
func (l *Loaders) LogonUsers(ctx context.Context, id string) ([]defender.User, error) {
	if l == nil {
		return nil, errNoLoaders
	}
	if r, ok := cached(ctx, l.fetcher, defender.EndpointLogonUsers, l.fetcher.opts.LogonUsers, id); ok {
		return r.Value, r.Err
	}
	l.noteRepeat(defender.EndpointLogonUsers, id)
	return l.users.Load(ctx, id)()
}

// noteRepeat counts a key asked for again in the same request: the dataloader's own cache
// answers it, saving a call.
func (l *Loaders) noteRepeat(ep defender.Endpoint, key string) {
	l.mu.Lock()
	k := string(ep) + "\x00" + key
	repeat := l.seen[k]
	l.seen[k] = true
	l.mu.Unlock()
	if repeat {
		l.fetcher.opts.Observer.Saved(ep, SavedByBatching, 1)
	}
}

func (l *Loaders) loadMachines(ctx context.Context, refs []string) []*dataloader.Result[*defender.Machine] {
	return toDataloader(l.fetcher.Machines(ctx, refs))
}

func (l *Loaders) loadUsers(ctx context.Context, ids []string) []*dataloader.Result[[]defender.User] {
	return toDataloader(l.fetcher.LogonUsers(ctx, ids))
}

func toDataloader[V any](rs []Result[V]) []*dataloader.Result[V] {
	out := make([]*dataloader.Result[V], len(rs))
	for i, r := range rs {
		out[i] = &dataloader.Result[V]{Data: r.Value, Error: r.Err}
	}
	return out
}
