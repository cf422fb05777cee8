package loaders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// Source is the upstream the fetcher reads: defender.Client's machines area, adapted by
// FromClient, or a fake in tests.
type Source interface {
	// GetMachine returns one machine by device id or computer name.
	GetMachine(ctx context.Context, ref string) (*defender.Machine, error)
	// GetMachines returns the machines among ids (at most defender.MaxIDsPerList device ids).
	GetMachines(ctx context.Context, ids []string) ([]defender.Machine, error)
	// LogonUsers returns the users logged on to the device id.
	LogonUsers(ctx context.Context, id string) ([]defender.User, error)
}

// FromClient adapts a defender client to Source.
func FromClient(c *defender.Client) Source { return clientSource{c} }

type clientSource struct{ c *defender.Client }

func (s clientSource) GetMachine(ctx context.Context, ref string) (*defender.Machine, error) {
	m, _, err := s.c.Machines.Get(ctx, ref)
	return m, err
}

func (s clientSource) GetMachines(ctx context.Context, ids []string) ([]defender.Machine, error) {
	ms, _, err := s.c.Machines.GetByIDs(ctx, ids)
	return ms, err
}

func (s clientSource) LogonUsers(ctx context.Context, id string) ([]defender.User, error) {
	us, _, err := s.c.Machines.LogonUsers(ctx, id)
	return us, err
}

// Saving reasons, for Observer.Saved.
const (
	// SavedByBatching counts calls avoided inside one request: repeated keys and keys answered
	// together by one list call.
	SavedByBatching = "batching"
	// SavedBySharing counts calls avoided by joining an identical call already in flight for
	// another request.
	SavedBySharing = "sharing"
	// SavedByCache counts calls avoided by a cached answer.
	SavedByCache = "cache"
)

// Observer learns how many upstream calls were avoided and why; metrics implement it.
type Observer interface {
	Saved(endpoint defender.Endpoint, reason string, n int)
}

type nopObserver struct{}

func (nopObserver) Saved(defender.Endpoint, string, int) {}

// Options configure a Fetcher.
type Options struct {
	Source Source
	// CacheTTL is how long answers are reused; 0 disables caching.
	CacheTTL time.Duration
	// NotFoundTTL is how long a 404 is reused (capped at CacheTTL).
	NotFoundTTL time.Duration
	// Machines and LogonUsers cache the two kinds of answer; nil means an in-memory cache of
	// 100000 entries each.
	Machines   Cache[*defender.Machine]
	LogonUsers Cache[[]defender.User]
	// MachineCalls and LogonUserCalls share the calls in progress for the two kinds of
	// answer; nil means an in-process Flight each.
	MachineCalls   Sharing[*defender.Machine]
	LogonUserCalls Sharing[[]defender.User]
	// BatchWait is how long a request's dataloaders collect keys before fetching them
	// (default DefaultBatchWait).
	BatchWait time.Duration
	// CallTimeout bounds a shared upstream call of the default Flights, which outlives the
	// request that started it (default 30s).
	CallTimeout time.Duration
	Observer    Observer
	Logger      *slog.Logger
}

// Fetcher is the process-wide layer between the per-request dataloaders and the upstream: it
// answers from its cache, joins identical calls already in flight, and otherwise makes the
// fewest calls it can (device ids in list calls). It is safe for concurrent use.
type Fetcher struct {
	opts Options
}

// NewFetcher returns a Fetcher for opts.
func NewFetcher(opts Options) *Fetcher {
	if opts.Machines == nil {
		opts.Machines = NewMemoryCache[*defender.Machine](100_000)
	}
	if opts.LogonUsers == nil {
		opts.LogonUsers = NewMemoryCache[[]defender.User](100_000)
	}
	if opts.BatchWait <= 0 {
		opts.BatchWait = DefaultBatchWait
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	opts.NotFoundTTL = min(opts.NotFoundTTL, opts.CacheTTL)
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MachineCalls == nil {
		opts.MachineCalls = NewFlight[*defender.Machine](opts.CallTimeout)
	}
	if opts.LogonUserCalls == nil {
		opts.LogonUserCalls = NewFlight[[]defender.User](opts.CallTimeout)
	}
	return &Fetcher{opts: opts}
}

type identityKey struct{}

// WithIdentity returns ctx carrying the identity upstream calls are made as. Cache and sharing
// keys include it, so one identity's answers never serve another.
func WithIdentity(ctx context.Context, identity string) context.Context {
	return context.WithValue(ctx, identityKey{}, identity)
}

// IdentityFrom returns the identity in ctx ("" if none).
func IdentityFrom(ctx context.Context) string {
	s, _ := ctx.Value(identityKey{}).(string)
	return s
}

func cacheKey(ctx context.Context, endpoint defender.Endpoint, ref string) string {
	return IdentityFrom(ctx) + "\x00" + string(endpoint) + "\x00" + ref
}

// notFound is the error for a 404 served from the cache or implied by a list answer.
func notFound(endpoint defender.Endpoint, ref string) error {
	return &defender.ErrorResponse{Endpoint: endpoint, StatusCode: http.StatusNotFound,
		Code: "ResourceNotFound", Message: fmt.Sprintf("Machine %s was not found", ref), Machine: defender.MachineRef(ref)}
}

// Machines returns one result per ref, in order. refs are normalised machine refs (device ids
// or computer names, see defender.ParseMachineRef); repeated refs are answered once.
func (f *Fetcher) Machines(ctx context.Context, refs []string) []Result[*defender.Machine] {
	b := newBatch(ctx, f, defender.EndpointMachine, refs, f.opts.Machines, f.opts.MachineCalls)
	var ids, names []string
	for _, ref := range b.missing {
		if defender.MachineRef(ref).IsDeviceID() {
			ids = append(ids, ref)
		} else {
			names = append(names, ref)
		}
	}
	// One device id alone is asked for with GET /api/machines/{id}; several go in list calls.
	if len(ids) == 1 {
		names = append(names, ids[0])
		ids = nil
	}
	for chunk := range slices.Chunk(ids, defender.MaxIDsPerList) {
		if len(chunk) > 1 {
			f.opts.Observer.Saved(defender.EndpointMachines, SavedByBatching, len(chunk)-1)
		}
		b.start(chunk, func(cctx context.Context) (map[string]Result[*defender.Machine], error) {
			return f.listMachines(cctx, chunk)
		})
	}
	for _, ref := range names {
		b.start([]string{ref}, func(cctx context.Context) (map[string]Result[*defender.Machine], error) {
			return f.getMachine(cctx, ref)
		})
	}
	return b.wait()
}

// getMachine is the shared call for one machine by id or name.
func (f *Fetcher) getMachine(ctx context.Context, ref string) (map[string]Result[*defender.Machine], error) {
	k := cacheKey(ctx, defender.EndpointMachine, ref)
	m, err := f.opts.Source.GetMachine(ctx, ref)
	if err != nil {
		if defender.IsNotFound(err) {
			f.opts.Machines.Set(ctx, k, Entry[*defender.Machine]{NotFound: true}, f.opts.NotFoundTTL)
			return map[string]Result[*defender.Machine]{k: {Err: err}}, nil
		}
		return nil, err
	}
	f.storeMachine(ctx, m)
	if ref != m.ID {
		f.opts.Machines.Set(ctx, k, Entry[*defender.Machine]{Value: m}, f.opts.CacheTTL)
	}
	return map[string]Result[*defender.Machine]{k: {Value: m}}, nil
}

// listMachines is the shared call for several device ids in one list call; ids the answer
// leaves out do not exist.
func (f *Fetcher) listMachines(ctx context.Context, ids []string) (map[string]Result[*defender.Machine], error) {
	ms, err := f.opts.Source.GetMachines(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Result[*defender.Machine], len(ids))
	for i := range ms {
		m := &ms[i]
		f.storeMachine(ctx, m)
		out[cacheKey(ctx, defender.EndpointMachine, m.ID)] = Result[*defender.Machine]{Value: m}
	}
	for _, id := range ids {
		k := cacheKey(ctx, defender.EndpointMachine, id)
		if _, ok := out[k]; !ok {
			f.opts.Machines.Set(ctx, k, Entry[*defender.Machine]{NotFound: true}, f.opts.NotFoundTTL)
			out[k] = Result[*defender.Machine]{Err: notFound(defender.EndpointMachines, id)}
		}
	}
	return out, nil
}

// storeMachine caches m under its id.
func (f *Fetcher) storeMachine(ctx context.Context, m *defender.Machine) {
	f.opts.Machines.Set(ctx, cacheKey(ctx, defender.EndpointMachine, m.ID), Entry[*defender.Machine]{Value: m}, f.opts.CacheTTL)
}

// LogonUsers returns the logon users of each device id, in order.
func (f *Fetcher) LogonUsers(ctx context.Context, ids []string) []Result[[]defender.User] {
	b := newBatch(ctx, f, defender.EndpointLogonUsers, ids, f.opts.LogonUsers, f.opts.LogonUserCalls)
	for _, id := range b.missing {
		k := cacheKey(ctx, defender.EndpointLogonUsers, id)
		b.start([]string{id}, func(cctx context.Context) (map[string]Result[[]defender.User], error) {
			users, err := f.opts.Source.LogonUsers(cctx, id)
			if err != nil {
				if defender.IsNotFound(err) {
					f.opts.LogonUsers.Set(cctx, k, Entry[[]defender.User]{NotFound: true}, f.opts.NotFoundTTL)
					return map[string]Result[[]defender.User]{k: {Err: err}}, nil
				}
				return nil, err
			}
			f.opts.LogonUsers.Set(cctx, k, Entry[[]defender.User]{Value: users}, f.opts.CacheTTL)
			return map[string]Result[[]defender.User]{k: {Value: users}}, nil
		})
	}
	return b.wait()
}

// cached returns the cached answer for ref, counting the call it saves.
func cached[V any](ctx context.Context, f *Fetcher, ep defender.Endpoint, cache Cache[V], ref string) (Result[V], bool) {
	e, ok := cache.Get(ctx, cacheKey(ctx, ep, ref))
	if !ok {
		return Result[V]{}, false
	}
	f.opts.Observer.Saved(ep, SavedByCache, 1)
	if e.NotFound {
		return Result[V]{Err: notFound(ep, ref)}, true
	}
	return Result[V]{Value: e.Value}, true
}

// batch is one Fetcher call's bookkeeping, the same for every kind of answer: repeated refs are
// asked once, cached answers are used, calls already in flight are joined, and what is left
// (missing) is for the caller to start.
type batch[V any] struct {
	ctx     context.Context
	refs    []string
	keyOf   map[string]string // ref → key
	byKey   map[string]Result[V]
	shared  Shared[V] // the calls that will answer the keys not cached
	missing []string  // refs nobody is fetching yet
}

func newBatch[V any](ctx context.Context, f *Fetcher, ep defender.Endpoint, refs []string, cache Cache[V], calls Sharing[V]) *batch[V] {
	b := &batch[V]{ctx: ctx, refs: refs,
		keyOf: make(map[string]string, len(refs)), byKey: make(map[string]Result[V], len(refs))}
	var want []string
	refOf := make(map[string]string, len(refs))
	for _, ref := range refs {
		if _, dup := b.keyOf[ref]; dup {
			continue
		}
		k := cacheKey(ctx, ep, ref)
		b.keyOf[ref] = k
		if r, ok := cached(ctx, f, ep, cache, ref); ok {
			b.byKey[k] = r
			continue
		}
		want = append(want, k)
		refOf[k] = ref
	}
	shared, missing := calls.Join(want)
	if n := len(want) - len(missing); n > 0 {
		f.opts.Observer.Saved(ep, SavedBySharing, n)
	}
	b.shared = shared
	for _, k := range missing {
		b.missing = append(b.missing, refOf[k])
	}
	return b
}

// start runs fn as the shared call answering refs.
func (b *batch[V]) start(refs []string, fn func(ctx context.Context) (map[string]Result[V], error)) {
	keys := make([]string, len(refs))
	for i, ref := range refs {
		keys[i] = b.keyOf[ref]
	}
	b.shared.Start(b.ctx, keys, fn)
}

// wait waits for every call and returns one result per ref, in the order asked.
func (b *batch[V]) wait() []Result[V] {
	for k, r := range b.shared.Wait(b.ctx) {
		b.byKey[k] = r
	}
	out := make([]Result[V], len(b.refs))
	for i, ref := range b.refs {
		out[i] = b.byKey[b.keyOf[ref]]
	}
	return out
}

// Result is one key's answer: a value or an error.
type Result[V any] struct {
	Value V
	Err   error
}

// errNoLoaders is returned when a resolver runs without the loaders middleware.
var errNoLoaders = errors.New("loaders: no loaders in the request context (is loaders.Middleware installed?)")
