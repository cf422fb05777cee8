package loaders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/quietlog"
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

// GraphSource is the upstream of the wider graph around a device: the list of machines, an
// account's machines, a device's alerts. defender.Client's adapter (FromClient) implements it;
// a Source that does not answers those calls with an error.
type GraphSource interface {
	// ListMachines returns one page of GET /api/machines (an empty page for Defender's 404,
	// "no recent machines").
	ListMachines(ctx context.Context, opts defender.ListOptions) ([]defender.Machine, error)
	// UserMachines returns the devices the account logged on to.
	UserMachines(ctx context.Context, name defender.AccountName) ([]defender.Machine, error)
	// Alerts returns the alerts of the device id.
	Alerts(ctx context.Context, id string) ([]defender.Alert, error)
}

// FromClient adapts a defender client to Source; the Source also implements GraphSource.
func FromClient(c *defender.Client) Source { return clientSource{c} }

type clientSource struct{ c *defender.Client }

var _ GraphSource = clientSource{}

func (s clientSource) ListMachines(ctx context.Context, opts defender.ListOptions) ([]defender.Machine, error) {
	ms, _, err := s.c.Machines.List(ctx, opts)
	return ms, err
}

func (s clientSource) UserMachines(ctx context.Context, name defender.AccountName) ([]defender.Machine, error) {
	ms, _, err := s.c.Users.Machines(ctx, name.String())
	return ms, err
}

func (s clientSource) Alerts(ctx context.Context, id string) ([]defender.Alert, error) {
	as, _, err := s.c.Machines.Alerts(ctx, id)
	return as, err
}

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

// Observer learns how many upstream calls were avoided and why, and which answers were
// served stale; metrics implement it.
type Observer interface {
	Saved(endpoint defender.Endpoint, reason string, n int)
	// Stale counts one answer served stale, with its Stale.Reason.
	Stale(endpoint defender.Endpoint, reason string)
}

type nopObserver struct{}

func (nopObserver) Saved(defender.Endpoint, string, int) {}
func (nopObserver) Stale(defender.Endpoint, string)      {}

// Options configure a Fetcher.
type Options struct {
	Source Source
	// CacheTTL is how long answers are reused; 0 disables caching.
	CacheTTL time.Duration
	// NotFoundTTL is how long a 404 is reused (capped at CacheTTL).
	NotFoundTTL time.Duration
	// StaleTTL is how long after the upstream gave it an answer is kept to stand in for a
	// fresh one that cannot be had (quota spent, a pause, 429, 5xx, timeouts, unreachable
	// hosts, a failing token endpoint); 0 serves nothing stale. Such answers carry a Stale.
	// It counts from the upstream's answer, so it adds nothing unless it exceeds CacheTTL.
	StaleTTL time.Duration
	// Machines, LogonUsers, Alerts, UserMachines and MachinePages cache each kind of answer
	// (a device's details; its logon users; its alerts; an account's machines; a page of
	// GET /api/machines); nil means an in-memory cache of 100000 entries each.
	Machines     Cache[*defender.Machine]
	LogonUsers   Cache[[]defender.User]
	Alerts       Cache[[]defender.Alert]
	UserMachines Cache[[]defender.Machine]
	MachinePages Cache[[]defender.Machine]
	// MachineCalls, LogonUserCalls, AlertCalls, UserMachineCalls and PageCalls share the calls
	// in progress for each kind of answer; nil means an in-process Flight each.
	MachineCalls     Sharing[*defender.Machine]
	LogonUserCalls   Sharing[[]defender.User]
	AlertCalls       Sharing[[]defender.Alert]
	UserMachineCalls Sharing[[]defender.Machine]
	PageCalls        Sharing[[]defender.Machine]
	// BatchWait is how long a request's dataloaders collect keys before fetching them
	// (default DefaultBatchWait).
	BatchWait time.Duration
	// CallTimeout bounds a shared upstream call of the default Flights, which outlives the
	// request that started it (default 30s).
	CallTimeout time.Duration
	Observer    Observer
	Logger      *slog.Logger
	// Forgotten, when set, is told the identity (IdentityFrom) whose answer a refusal (401,
	// 403, a refused sign-in) made the cache drop: what was built from that identity's
	// answers must not be reused either (the response cache of package gqlhttp).
	Forgotten func(identity string)
}

// Fetcher is the process-wide layer between the per-request dataloaders and the upstream: it
// answers from its cache, joins identical calls already in flight, and otherwise makes the
// fewest calls it can (device ids in list calls). When a fresh answer cannot be had, it
// serves the last good one younger than StaleTTL, marked with a Stale. It is safe for
// concurrent use.
type Fetcher struct {
	opts      Options
	staleLogs *quietlog.Repeats // one warning a minute per endpoint and reason

	// The kinds of answer: machines, batched into list calls by Machines, and the others,
	// fetched one key per call.
	machines     *kind[*defender.Machine]
	users        *kind[[]defender.User]
	alerts       *kind[[]defender.Alert]
	userMachines *kind[[]defender.Machine]
	pages        *kind[[]defender.Machine]
}

// NewFetcher returns a Fetcher for opts.
func NewFetcher(opts Options) *Fetcher {
	orCache(&opts.Machines)
	orCache(&opts.LogonUsers)
	orCache(&opts.Alerts)
	orCache(&opts.UserMachines)
	orCache(&opts.MachinePages)
	if opts.BatchWait <= 0 {
		opts.BatchWait = DefaultBatchWait
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	opts.NotFoundTTL = min(opts.NotFoundTTL, opts.CacheTTL)
	opts.StaleTTL = max(opts.StaleTTL, 0)
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	orFlight(&opts.MachineCalls, opts.CallTimeout)
	orFlight(&opts.LogonUserCalls, opts.CallTimeout)
	orFlight(&opts.AlertCalls, opts.CallTimeout)
	orFlight(&opts.UserMachineCalls, opts.CallTimeout)
	orFlight(&opts.PageCalls, opts.CallTimeout)
	f := &Fetcher{opts: opts, staleLogs: quietlog.New(time.Minute)}
	graph, _ := opts.Source.(GraphSource)
	f.machines = &kind[*defender.Machine]{ep: defender.EndpointMachine, cache: opts.Machines, calls: opts.MachineCalls}
	f.users = &kind[[]defender.User]{ep: defender.EndpointLogonUsers, cache: opts.LogonUsers, calls: opts.LogonUserCalls,
		fetch: opts.Source.LogonUsers}
	f.alerts = &kind[[]defender.Alert]{ep: defender.EndpointAlerts, cache: opts.Alerts, calls: opts.AlertCalls,
		fetch: func(ctx context.Context, id string) ([]defender.Alert, error) {
			if graph == nil {
				return nil, errNoGraphSource
			}
			return graph.Alerts(ctx, id)
		}}
	f.userMachines = &kind[[]defender.Machine]{ep: defender.EndpointUserMachines, cache: opts.UserMachines, calls: opts.UserMachineCalls,
		fetch: func(ctx context.Context, name string) ([]defender.Machine, error) {
			if graph == nil {
				return nil, errNoGraphSource
			}
			return graph.UserMachines(ctx, defender.AccountName(name))
		},
		after: f.storeMachines}
	f.pages = &kind[[]defender.Machine]{ep: defender.EndpointMachines, cache: opts.MachinePages, calls: opts.PageCalls,
		fetch: func(ctx context.Context, key string) ([]defender.Machine, error) {
			if graph == nil {
				return nil, errNoGraphSource
			}
			return graph.ListMachines(ctx, parsePageKey(key).ListOptions())
		},
		after: f.storeMachines}
	return f
}

func orCache[V any](c *Cache[V]) {
	if *c == nil {
		*c = NewMemoryCache[V](100_000)
	}
}

func orFlight[V any](s *Sharing[V], timeout time.Duration) {
	if *s == nil {
		*s = NewFlight[V](timeout)
	}
}

// errNoGraphSource answers the calls of the wider graph when Options.Source does not serve
// them (a test's fake, say).
var errNoGraphSource = errors.New("loaders: the upstream source does not implement GraphSource")

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
	b := newBatch(ctx, f, f.machines, refs, machineCalls)
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
		if settled := settleError(ctx, f, f.opts.Machines, k, err); settled {
			return map[string]Result[*defender.Machine]{k: {Err: err}}, nil
		}
		return nil, err
	}
	f.storeMachine(ctx, m)
	if ref != m.ID {
		store(ctx, f, f.opts.Machines, k, m)
	}
	return map[string]Result[*defender.Machine]{k: {Value: m}}, nil
}

// listMachines is the shared call for several device ids in one list call; ids the answer
// leaves out do not exist.
func (f *Fetcher) listMachines(ctx context.Context, ids []string) (map[string]Result[*defender.Machine], error) {
	ms, err := f.opts.Source.GetMachines(ctx, ids)
	if err != nil {
		for _, id := range ids {
			settleError(ctx, f, f.opts.Machines, cacheKey(ctx, defender.EndpointMachine, id), err)
		}
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
			err := notFound(defender.EndpointMachines, id)
			settleError(ctx, f, f.opts.Machines, k, err)
			out[k] = Result[*defender.Machine]{Err: err}
		}
	}
	return out, nil
}

// machineCalls is how many calls Machines makes for refs when nothing is cached or shared:
// one list call per MaxIDsPerList device ids (a lone id has a call of its own), one per name.
func machineCalls(refs []string) int {
	ids := 0
	for _, ref := range refs {
		if defender.MachineRef(ref).IsDeviceID() {
			ids++
		}
	}
	return len(refs) - ids + (ids+defender.MaxIDsPerList-1)/defender.MaxIDsPerList
}

// storeMachine caches m under its id.
func (f *Fetcher) storeMachine(ctx context.Context, m *defender.Machine) {
	store(ctx, f, f.opts.Machines, cacheKey(ctx, defender.EndpointMachine, m.ID), m)
}

// storeMachines caches every machine of a list answer under its id, so that their details
// cost nothing more.
func (f *Fetcher) storeMachines(ctx context.Context, ms []defender.Machine) {
	for i := range ms {
		f.storeMachine(ctx, &ms[i])
	}
}

// store keeps v, the upstream's answer for key: fresh for CacheTTL, and kept as a stale
// fallback for StaleTTL after the answer.
func store[V any](ctx context.Context, f *Fetcher, cache Cache[V], key string, v V) {
	now := time.Now()
	cache.Set(ctx, key, Entry[V]{Value: v, Fetched: now, FreshUntil: now.Add(f.opts.CacheTTL)}, max(f.opts.CacheTTL, f.opts.StaleTTL))
}

// settleError records what the upstream's error err says about key. A 404 is an answer:
// it is kept for NotFoundTTL, replacing any fallback, and settled reports true. A refusal (401,
// 403, a refused sign-in) drops what was kept, so that it never comes back stale. Other errors
// (spent quota, outages) leave the cache alone: the fallback is for them.
func settleError[V any](ctx context.Context, f *Fetcher, cache Cache[V], key string, err error) (settled bool) {
	switch {
	case defender.IsNotFound(err):
		now := time.Now()
		cache.Set(ctx, key, Entry[V]{NotFound: true, Fetched: now, FreshUntil: now.Add(f.opts.NotFoundTTL)}, f.opts.NotFoundTTL)
		return true
	case forgets(err):
		cache.Set(ctx, key, Entry[V]{}, 0)
		if f.opts.Forgotten != nil {
			f.opts.Forgotten(IdentityFrom(ctx))
		}
	}
	return false
}

// kind is a kind of answer: its endpoint family, its cache and calls in progress, and for a
// kind fetched one key per upstream call (all but machines, which Fetcher.Machines batches
// into list calls) the call itself and what else an answer tells (after, optional).
type kind[V any] struct {
	ep    defender.Endpoint
	cache Cache[V]
	calls Sharing[V]
	fetch func(ctx context.Context, key string) (V, error)
	after func(ctx context.Context, v V)
}

// each returns k's answer for every key, in order: cached, joined or fetched, one call per
// distinct key.
func each[V any](ctx context.Context, f *Fetcher, k *kind[V], keys []string) []Result[V] {
	b := newBatch(ctx, f, k, keys, oneCallEach)
	for _, key := range b.missing {
		ck := b.keyOf[key]
		b.start([]string{key}, func(cctx context.Context) (map[string]Result[V], error) {
			v, err := k.fetch(cctx, key)
			if err != nil {
				if settled := settleError(cctx, f, k.cache, ck, err); settled {
					return map[string]Result[V]{ck: {Err: err}}, nil
				}
				return nil, err
			}
			store(cctx, f, k.cache, ck, v)
			if k.after != nil {
				k.after(cctx, v)
			}
			return map[string]Result[V]{ck: {Value: v}}, nil
		})
	}
	return b.wait()
}

// oneCallEach is the calls a kind makes for keys: one each.
func oneCallEach(keys []string) int { return len(keys) }

// LogonUsers returns the logon users of each device id, in order.
func (f *Fetcher) LogonUsers(ctx context.Context, ids []string) []Result[[]defender.User] {
	return each(ctx, f, f.users, ids)
}

// Alerts returns the alerts of each device id, in order (GET /api/machines/{id}/alerts).
func (f *Fetcher) Alerts(ctx context.Context, ids []string) []Result[[]defender.Alert] {
	return each(ctx, f, f.alerts, ids)
}

// UserMachines returns the machines of each account name, in order (GET
// /api/users/{name}/machines); the machines fill the machine cache.
func (f *Fetcher) UserMachines(ctx context.Context, names []defender.AccountName) []Result[[]defender.Machine] {
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = n.String()
	}
	return each(ctx, f, f.userMachines, keys)
}

// MachinePage returns one page of GET /api/machines; its machines fill the machine cache.
func (f *Fetcher) MachinePage(ctx context.Context, q PageQuery) Result[[]defender.Machine] {
	return each(ctx, f, f.pages, []string{q.key()})[0]
}

// PageQuery is one page of GET /api/machines: an OData $filter (defender.MachineFilter's),
// $top and $skip.
type PageQuery struct {
	Filter    string
	Top, Skip int
}

// ListOptions is q as the client takes it.
func (q PageQuery) ListOptions() defender.ListOptions {
	return defender.ListOptions{Filter: q.Filter, Top: q.Top, Skip: q.Skip}
}

// key is q as a cache key: "top,skip,filter".
func (q PageQuery) key() string { return fmt.Sprintf("%d,%d,%s", q.Top, q.Skip, q.Filter) }

// parsePageKey reads a key written by PageQuery.key.
func parsePageKey(key string) PageQuery {
	top, rest, _ := strings.Cut(key, ",")
	skip, filter, _ := strings.Cut(rest, ",")
	q := PageQuery{Filter: filter}
	q.Top, _ = strconv.Atoi(top)
	q.Skip, _ = strconv.Atoi(skip)
	return q
}

// cached returns the fresh cached answer of kind k for ref (key is its cacheKey) and until
// when it is fresh, counting the call it saves.
func cached[V any](ctx context.Context, f *Fetcher, k *kind[V], key, ref string) (Result[V], time.Time, bool) {
	e, ok := k.cache.Get(ctx, key)
	if !ok || !e.Fresh(time.Now()) {
		return Result[V]{}, time.Time{}, false
	}
	f.opts.Observer.Saved(k.ep, SavedByCache, 1)
	return answer(k.ep, ref, e), e.FreshUntil, true
}

// answer is the result entry e gives for ref: its value, or Defender's 404.
func answer[V any](ep defender.Endpoint, ref string, e Entry[V]) Result[V] {
	if e.NotFound {
		return Result[V]{Err: notFound(ep, ref)}
	}
	return Result[V]{Value: e.Value}
}

// ResultOf is the result a cache entry gives for its key (a key the Fetcher made): the value,
// or Defender's 404 for a NotFound entry, as a cache hit gives it. A Sharing that hands one
// process's answer to another through the cache uses it.
func ResultOf[V any](key string, e Entry[V]) Result[V] {
	i := strings.LastIndexByte(key, 0) // keys are identity, endpoint, ref: no ref holds a NUL
	head := key[:max(i, 0)]
	return answer(defender.Endpoint(head[strings.LastIndexByte(head, 0)+1:]), key[i+1:], e)
}

// batch is one Fetcher call's bookkeeping, the same for every kind of answer: repeated refs are
// asked once, cached answers are used, calls already in flight are joined, and what is left
// (missing) is for the caller to start.
type batch[V any] struct {
	ctx     context.Context
	f       *Fetcher
	k       *kind[V]
	refs    []string
	keyOf   map[string]string // ref → key
	byKey   map[string]Result[V]
	shared  Shared[V] // the calls that will answer the keys not cached
	missing []string  // refs nobody is fetching yet

	span  trace.Span // the load's span (see startLoad)
	calls int        // calls started
}

// newBatch prepares a Fetcher call for refs: repeats dropped, cached answers taken, calls in
// flight joined. cost says how many upstream calls a set of refs takes when none is cached or
// shared: the request's call budget (LimitCalls) is taken for the refs not cached before they
// are joined, refs past it are answered with a *BudgetError and never joined, and what sharing
// saved is given back.
func newBatch[V any](ctx context.Context, f *Fetcher, k *kind[V], refs []string, cost func([]string) int) *batch[V] {
	ep := k.ep
	ctx, span := startLoad(ctx, ep)
	b := &batch[V]{ctx: ctx, f: f, k: k, refs: refs, span: span,
		keyOf: make(map[string]string, len(refs)), byKey: make(map[string]Result[V], len(refs))}
	var wantRefs []string
	for _, ref := range refs {
		if _, dup := b.keyOf[ref]; dup {
			continue
		}
		key := cacheKey(ctx, ep, ref)
		b.keyOf[ref] = key
		if r, _, ok := cached(ctx, f, k, key, ref); ok {
			b.byKey[key] = r
			continue
		}
		wantRefs = append(wantRefs, ref)
	}
	budget := budgetFrom(ctx)
	if n := budget.take(wantRefs, cost); n < len(wantRefs) {
		for _, ref := range wantRefs[n:] {
			b.byKey[b.keyOf[ref]] = Result[V]{Err: budget.refusal(ep)}
		}
		wantRefs = wantRefs[:n]
	}
	want := make([]string, len(wantRefs))
	refOf := make(map[string]string, len(wantRefs))
	for i, ref := range wantRefs {
		want[i] = b.keyOf[ref]
		refOf[want[i]] = ref
	}
	shared, missing := k.calls.Join(want)
	if n := len(want) - len(missing); n > 0 {
		f.opts.Observer.Saved(ep, SavedBySharing, n)
	}
	b.traceJoined(len(want) - len(missing))
	b.shared = shared
	for _, key := range missing {
		ref := refOf[key]
		// A call that ended between the look in the cache above and Join stored its answer
		// before it left the calls in progress: look again, rather than call twice.
		if r, _, ok := cached(ctx, f, k, key, ref); ok {
			b.shared.Start(ctx, []string{key}, func(context.Context) (map[string]Result[V], error) {
				return map[string]Result[V]{key: r}, nil
			})
			continue
		}
		b.missing = append(b.missing, ref)
	}
	budget.giveBack(cost(wantRefs) - cost(b.missing))
	return b
}

// start runs fn as the shared call answering refs.
func (b *batch[V]) start(refs []string, fn func(ctx context.Context) (map[string]Result[V], error)) {
	keys := make([]string, len(refs))
	for i, ref := range refs {
		keys[i] = b.keyOf[ref]
	}
	b.calls++
	b.shared.Start(b.ctx, keys, fn)
}

// wait waits for every call and returns one result per ref, in the order asked. A ref whose
// call failed in a way a stale answer may stand in for gets the one kept, if it is young
// enough.
func (b *batch[V]) wait() []Result[V] {
	for k, r := range b.shared.Wait(b.ctx) {
		if r.Err != nil {
			r = orStale(b.ctx, b.f, b.k, k, r)
		}
		b.byKey[k] = r
	}
	b.endSpan()
	out := make([]Result[V], len(b.refs))
	for i, ref := range b.refs {
		out[i] = b.byKey[b.keyOf[ref]]
	}
	return out
}

// Result is one key's answer: a value or an error. A value served after its freshness, because
// a fresh one could not be had, carries Stale.
type Result[V any] struct {
	Value V
	Err   error
	Stale *Stale
}

// orStale returns, for the failed result r of key, the answer kept for key if r's error allows
// a stale answer and the kept one is younger than the limit ctx allows; r otherwise.
func orStale[V any](ctx context.Context, f *Fetcher, k *kind[V], key string, r Result[V]) Result[V] {
	ep := k.ep
	reason, ok := staleReason(r.Err)
	limit := f.staleLimitFrom(ctx)
	if !ok || limit <= 0 {
		return r
	}
	e, ok := k.cache.Get(ctx, key)
	if !ok || e.NotFound {
		return r
	}
	age := time.Since(e.Fetched)
	if age >= limit {
		return r
	}
	f.opts.Observer.Stale(ep, reason)
	level, lowered := f.staleLogs.Level(string(ep)+"\x00"+reason, staleLogLevel(reason))
	f.opts.Logger.LogAttrs(ctx, level, "no fresh answer from Defender: serving the last good one, marked stale",
		slog.String("endpoint", string(ep)), slog.String("reason", reason), slog.Duration("age", age.Round(time.Second)),
		slog.String("error", r.Err.Error()), slog.Int("repeats_since_last_warning", lowered))
	return Result[V]{Value: e.Value, Stale: &Stale{Age: age, Reason: reason, Err: r.Err}}
}

// staleLogLevel is how loud serving stale is: an outage is worth an operator's attention
// (as UPSTREAM_UNAVAILABLE is), a spent quota is the service doing its job.
func staleLogLevel(reason string) slog.Level {
	if reason == ReasonUnavailable {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// errNoLoaders is returned when a resolver runs without the loaders middleware.
var errNoLoaders = errors.New("loaders: no loaders in the request context (is loaders.Middleware installed?)")
