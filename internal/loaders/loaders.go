// Package loaders decides how upstream answers are obtained: per-request dataloaders batch and
// deduplicate what one GraphQL request asks for, and a process-wide Fetcher shares calls in
// flight between requests, caches answers for a short while, and keeps the last good answer
// to serve, marked stale, when a fresh one cannot be had.
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

// Loaders are one request's dataloaders. Each is made when the request first asks for an
// answer the cache does not have fresh: a request the cache answers whole makes none.
type Loaders struct {
	fetcher *Fetcher
	reuse   reuse // what the request's answers came from

	mu           sync.Mutex
	machines     *dataloader.Loader[string, served[*defender.Machine]]
	users        *dataloader.Loader[string, served[[]defender.User]]
	alerts       *dataloader.Loader[string, served[[]defender.Alert]]
	userMachines *dataloader.Loader[string, served[[]defender.Machine]]
	seen         map[string]bool // endpoint+key already asked for in this request
	known        map[string]bool // device ids a fresh answer showed to exist in this request
	budget       *callBudget     // nil: no bound (see LimitCalls)
}

// served is a dataloader's value: the answer, and whether it is stale.
type served[V any] struct {
	value V
	stale *Stale
}

// New returns fresh loaders for one request, answering from f.
func New(f *Fetcher) *Loaders { return &Loaders{fetcher: f} }

// The request's dataloader of each kind, made on first use.

func (l *Loaders) machineLoader() *dataloader.Loader[string, served[*defender.Machine]] {
	return loader(l, &l.machines, l.fetcher.Machines)
}

func (l *Loaders) userLoader() *dataloader.Loader[string, served[[]defender.User]] {
	return loader(l, &l.users, l.fetcher.LogonUsers)
}

func (l *Loaders) alertLoader() *dataloader.Loader[string, served[[]defender.Alert]] {
	return loader(l, &l.alerts, l.fetcher.Alerts)
}

func (l *Loaders) userMachineLoader() *dataloader.Loader[string, served[[]defender.Machine]] {
	return loader(l, &l.userMachines, func(ctx context.Context, names []string) []Result[[]defender.Machine] {
		return each(ctx, l.fetcher, l.fetcher.userMachines, names)
	})
}

// loader returns *dl, first making it a dataloader over fetch with the request's call budget.
func loader[V any](l *Loaders, dl **dataloader.Loader[string, served[V]], fetch func(ctx context.Context, keys []string) []Result[V]) *dataloader.Loader[string, served[V]] {
	l.mu.Lock()
	defer l.mu.Unlock()
	if *dl == nil {
		batch := func(ctx context.Context, keys []string) []*dataloader.Result[served[V]] {
			return toDataloader(fetch(l.withBudget(ctx), keys))
		}
		*dl = dataloader.NewBatchedLoader(batch,
			dataloader.WithWait[string, served[V]](l.fetcher.opts.BatchWait),
			dataloader.WithInputCapacity[string, served[V]](batchInput))
	}
	return *dl
}

// Middleware gives every request its own Loaders, the identity upstream calls are made as
// (identity(r)), and the age limit of stale answers the request's Cache-Control:
// stale-if-error sets (see StaleIfError), before calling next.
func Middleware(f *Fetcher, identity func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := WithIdentity(r.Context(), identity(r))
		if d, ok := staleLimit(r.Header); ok {
			ctx = WithStaleLimit(ctx, d)
		}
		ctx = context.WithValue(ctx, ctxKey{}, New(f))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// For returns the request's loaders, or nil when the middleware did not run.
func For(ctx context.Context) *Loaders {
	l, _ := ctx.Value(ctxKey{}).(*Loaders)
	return l
}

// Machine returns the machine with the given device id or computer name. A fresh cached
// answer is returned at once; anything else goes through the request's dataloader, which
// waits Options.BatchWait for the other keys of the request. stale is not nil when the answer
// is a stale one standing in for a fresh one that could not be had.
func (l *Loaders) Machine(ctx context.Context, ref defender.MachineRef) (m *defender.Machine, stale *Stale, err error) {
	if l == nil {
		return nil, nil, errNoLoaders
	}
	m, stale, err = load(ctx, l, l.fetcher.machines, l.machineLoader, ref.String())
	l.noteKnown(m, stale)
	return m, stale, err
}

// LogonUsers returns the users logged on to the device id, from the cache at once when it
// has them fresh. stale is not nil when the answer is a stale one. A fresh answer shows the
// device exists (Known).
func (l *Loaders) LogonUsers(ctx context.Context, id string) (users []defender.User, stale *Stale, err error) {
	if l == nil {
		return nil, nil, errNoLoaders
	}
	return loadAbout(ctx, l, l.fetcher.users, l.userLoader, id)
}

// Alerts returns the alerts of the device id, like LogonUsers.
func (l *Loaders) Alerts(ctx context.Context, id string) (alerts []defender.Alert, stale *Stale, err error) {
	if l == nil {
		return nil, nil, errNoLoaders
	}
	return loadAbout(ctx, l, l.fetcher.alerts, l.alertLoader, id)
}

// loadAbout is load for an answer about the device id: both Defender calls that give one
// answer 404 for an unknown device, so a fresh answer shows the device exists.
func loadAbout[V any](ctx context.Context, l *Loaders, k *kind[V], dl func() *dataloader.Loader[string, served[V]], id string) (V, *Stale, error) {
	v, stale, err := load(ctx, l, k, dl, id)
	l.noteKnownID(id, stale, err)
	return v, stale, err
}

// UserMachines returns the machines the account logged on to: one upstream call per distinct
// name, shared by every field of the request that asks (and by concurrent requests), cached
// like any answer. The machines fill the machine cache, and a fresh answer shows they exist.
func (l *Loaders) UserMachines(ctx context.Context, name defender.AccountName) (ms []defender.Machine, stale *Stale, err error) {
	if l == nil {
		return nil, nil, errNoLoaders
	}
	ms, stale, err = load(ctx, l, l.fetcher.userMachines, l.userMachineLoader, name.String())
	l.noteKnownList(ms, stale, err)
	return ms, stale, err
}

// MachinePage returns one page of GET /api/machines, like UserMachines. Identical pages asked
// by several fields of the request, or by concurrent requests, are one call.
func (l *Loaders) MachinePage(ctx context.Context, q PageQuery) (ms []defender.Machine, stale *Stale, err error) {
	if l == nil {
		return nil, nil, errNoLoaders
	}
	key := q.key()
	if r, ok := fromCache(ctx, l, l.fetcher.pages, key); ok {
		l.noteKnownList(r.Value, nil, r.Err)
		return r.Value, nil, r.Err
	}
	l.noteRepeat(defender.EndpointMachines, key)
	r := l.fetcher.MachinePage(l.withBudget(ctx), q)
	l.noteKnownList(r.Value, r.Stale, r.Err)
	return r.Value, r.Stale, r.Err
}

// load answers key of kind k from the cache when it is fresh there, from the request's
// dataloader (dl makes it) otherwise; l is not nil.
func load[V any](ctx context.Context, l *Loaders, k *kind[V], dl func() *dataloader.Loader[string, served[V]], key string) (V, *Stale, error) {
	if r, ok := fromCache(ctx, l, k, key); ok {
		return r.Value, nil, r.Err
	}
	l.noteRepeat(k.ep, key)
	s, err := dl().Load(ctx, key)()
	return s.value, s.stale, err
}

// Known reports whether the device id is known to exist: a fresh answer showed it, in this
// request (its details, a list that holds it, its logon users or alerts) or in the machine
// cache. It makes no upstream call and spends nothing. A stale
// answer proves nothing: the device may have gone since.
func (l *Loaders) Known(ctx context.Context, id string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	known := l.known[id]
	l.mu.Unlock()
	if known {
		return true
	}
	e, ok := l.fetcher.opts.Machines.Get(ctx, cacheKey(ctx, defender.EndpointMachine, id))
	return ok && !e.NotFound && e.Fresh(time.Now())
}

// noteKnown remembers that a fresh answer m showed its device to exist.
func (l *Loaders) noteKnown(m *defender.Machine, stale *Stale) {
	if m == nil || stale != nil {
		return
	}
	l.mu.Lock()
	l.noteKnownLocked(m.ID)
	l.mu.Unlock()
}

// noteKnownLocked adds id to the devices known to exist; l.mu is held.
func (l *Loaders) noteKnownLocked(id string) {
	if l.known == nil {
		l.known = make(map[string]bool)
	}
	l.known[id] = true
}

// noteKnownID remembers that a fresh answer about the device id (its logon users, its
// alerts: both 404 for an unknown device) showed it to exist.
func (l *Loaders) noteKnownID(id string, stale *Stale, err error) {
	if l == nil || err != nil || stale != nil {
		return
	}
	l.mu.Lock()
	l.noteKnownLocked(id)
	l.mu.Unlock()
}

// noteKnownList remembers the machines of a fresh list answer.
func (l *Loaders) noteKnownList(ms []defender.Machine, stale *Stale, err error) {
	if l == nil || err != nil || stale != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range ms {
		l.noteKnownLocked(ms[i].ID)
	}
}

// noteRepeat counts a key asked for again in the same request: the dataloader's own cache
// answers it, saving a call.
func (l *Loaders) noteRepeat(ep defender.Endpoint, key string) {
	l.mu.Lock()
	if l.seen == nil {
		l.seen = make(map[string]bool)
	}
	k := string(ep) + "\x00" + key
	repeat := l.seen[k]
	l.seen[k] = true
	l.mu.Unlock()
	if repeat {
		l.fetcher.opts.Observer.Saved(ep, SavedByBatching, 1)
	}
}

func toDataloader[V any](rs []Result[V]) []*dataloader.Result[served[V]] {
	out := make([]*dataloader.Result[served[V]], len(rs))
	for i, r := range rs {
		out[i] = &dataloader.Result[served[V]]{Data: served[V]{value: r.Value, stale: r.Stale}, Error: r.Err}
	}
	return out
}
