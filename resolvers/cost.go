package resolvers

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
)

// CostLimit is a gqlgen extension that estimates, before anything runs, how many upstream calls
// an operation can need, and rejects it with QUERY_TOO_EXPENSIVE when that exceeds Max. What is
// scarce here is Defender's quota, not CPU, so the cost counts upstream calls rather than
// fields (gqlgen's complexity counts fields, and the query limits of package querylimit bound
// the CPU); the estimate follows the resolvers' own rules, field by field (fieldCosts).
type CostLimit struct {
	Max int
	// Answered, when set, reports whether the operation in ctx will be answered without
	// running it (a response cache has its answer): it makes no upstream call, so nothing is
	// estimated or refused.
	Answered func(ctx context.Context) bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = CostLimit{}

// ExtensionName names the extension for gqlgen.
func (CostLimit) ExtensionName() string { return "UpstreamCallLimit" }

// Validate accepts any schema.
func (CostLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext rejects an operation that is too expensive, and bounds the upstream
// calls the request may start to Max (loaders.Loaders.LimitCalls): the estimate cannot count
// the calls below lists whose length only the answers tell (Estimate.Unbounded), and the
// bound refuses those past Max as they come, field by field, with QUERY_TOO_EXPENSIVE.
func (c CostLimit) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if c.Answered != nil && c.Answered(ctx) {
		return nil
	}
	est := EstimateUpstreamCalls(ctx, opCtx)
	loaders.For(ctx).LimitCalls(c.Max)
	n := est.Calls
	if n <= c.Max {
		return nil
	}
	could := "could need"
	if est.Unbounded {
		could = "needs at least"
	}
	return &gqlerror.Error{
		Message: fmt.Sprintf("this query %s %d calls to Defender, more than the %d allowed per query; ask for fewer distinct devices (a smaller first on machines), or fewer fields", could, n, c.Max),
		Extensions: map[string]any{
			"code":             CodeQueryTooExpensive,
			"upstreamCalls":    n,
			"maxUpstreamCalls": c.Max,
		},
	}
}

// Estimate is what an operation will cost upstream, estimated before it runs.
type Estimate struct {
	// Calls is the most upstream calls the operation can make (retries aside), below every
	// list whose length is known before the answers: a page's first, an answer in the cache.
	Calls int
	// Unbounded says the operation also asks for calls below lists whose length only the
	// answers tell (a device's logon users, an account's machines, when not cached): Calls
	// does not count them, and the request's call budget bounds them at execution.
	Unbounded bool
}

// EstimateUpstreamCalls estimates the upstream calls the operation can make, for the request
// in ctx, one per distinct call: an answer its loaders (package loaders) hold in their cache
// until the request's deadline costs nothing (and, for a list, tells which devices or accounts
// are below it), and a device named by its computer name counts as the device id the cache
// resolves it to, if it does. Any other argument the resolver would call Defender with is
// counted, however it is spelled (a string, an integer, a variable). The device details of
// several device ids count as the list calls of defender.MaxIDsPerList that fetch them
// together; a page of Query.machines as one call, and its devices, whose ids are unknown
// until it is fetched, as `first` devices each needing its own calls.
func EstimateUpstreamCalls(ctx context.Context, opCtx *graphql.OperationContext) Estimate {
	if opCtx.Operation == nil {
		return Estimate{}
	}
	e := &estimate{ctx: ctx, opCtx: opCtx, loaders: loaders.For(ctx)} // its sets are made when first needed
	e.walk(opCtx.Operation.SelectionSet, "Query", nil)
	n := len(e.detailNames) + len(e.users) + len(e.alerts) + len(e.userMachines) + len(e.pages) + e.unknown
	switch ids := len(e.detailIDs); {
	case ids == 1:
		n++
	case ids > 1:
		n += (ids + defender.MaxIDsPerList - 1) / defender.MaxIDsPerList
	}
	return Estimate{Calls: n, Unbounded: e.unbounded}
}

// Arg reads the argument name of field f as gqlgen's generated code reads it for the
// resolver (graph/generated.go, field_<Type>_<field>_args): the literal, the variable's
// coerced value or the default (ast.Field.ArgumentMap), handed to unmarshal, the function the
// generated code applies for the argument's type: graphql.UnmarshalID for ID (which takes a
// string, an integer literal, or a JSON number from the variables, and gives a string),
// graphql.UnmarshalInt for Int, graphql.UnmarshalString for String. An absent argument is T's
// zero value, as the resolver receives it.
//
// The cost estimate reads every argument through Arg, so that it sees what the resolver will
// be called with; the resolver then validates that value with the same function the estimate
// uses (defender.ParseMachineRef for a machine id).
func Arg[T any](ctx context.Context, f graphql.CollectedField, vars map[string]any, name string, unmarshal func(any) (T, error)) (T, error) {
	return graphql.ProcessArgField(ctx, f.ArgumentMap(vars), name, func(_ context.Context, v any) (T, error) {
		return unmarshal(v)
	})
}

// fieldCost is what one field adds to the estimate: given the field (its arguments read
// with Arg) and the value its parent's cost returned (nil under a field without a cost), it
// records the upstream calls its resolver may make in e and returns the value its own fields'
// costs receive, or nil when they cost nothing (the resolver fails first, say).
type fieldCost func(e *estimate, f graphql.CollectedField, parent any) any

// fieldCosts declares, by "Type.field", what each field costs upstream. A field whose value
// comes from our own code (a resolver method: graph.QueryResolver, graph.MachineResolver) or
// that takes arguments must be listed; TestEveryFieldDeclaresItsCost fails otherwise, so a
// new field cannot be free in the estimate by omission. A nil cost is free: the field calls
// no one, whatever its arguments. Fields not listed are read from their parent's answer. The
// fields under a field without a cost are still walked, with a nil parent.
//
// To add a field that calls Defender: read each argument that decides the call with Arg,
// refuse what the resolver refuses with the same validation function (a refused argument
// costs nothing), ask the request's loaders what they already hold (loaders.Loaders's
// Cached* methods), record the remaining calls in e, and say in the schema's description
// what the field costs.
var fieldCosts = map[string]fieldCost{
	"Query.machine":           machineCost,
	"Query.machines":          machinesCost,
	"Query.quota":             nil, // reads the limiter
	"Machine.logonUsers":      logonUsersCost,
	"Machine.alerts":          alertsCost,
	"LogonUser.machines":      userMachinesCost,
	"MachineConnection.edges": passDevices,
	"MachineConnection.nodes": passDevices,
	"MachineEdge.node":        passDevices,
}

// estimate is one operation's upstream calls, by kind, each distinct call once.
type estimate struct {
	ctx     context.Context
	opCtx   *graphql.OperationContext
	loaders *loaders.Loaders // nil without the loaders middleware: nothing is known cached

	detailIDs    map[string]bool // device details by id, fetched together in list calls
	detailNames  map[string]bool // device details by computer name, one call each
	users        map[string]bool // logon users, by device id or, until resolved, "name:" + name
	alerts       map[string]bool // alerts, likewise
	userMachines map[string]bool // an account's machines, by account name
	pages        map[string]bool // pages of GET /api/machines, by loaders.PageQuery

	// unknown counts the calls for devices whose ids are known only once a page is fetched:
	// one per device of the page (first), for each kind of call below it; charged records
	// which, so that a page's devices reached twice (edges { node } and nodes) count once.
	unknown int
	charged map[charge]bool
	// unbounded: some calls sit below a list of unknown length (Estimate.Unbounded).
	unbounded bool
}

// devices is what the estimate knows of a list of machines before the query runs: the ids
// the cache tells, and up to more devices whose ids are unknown, or (unbounded) any number.
type devices struct {
	ids       []string
	more      int
	unbounded bool
}

// accounts is what the estimate knows of a list of logon users: the account names the cache
// tells, or (unbounded) some it does not.
type accounts struct {
	names     []string
	unbounded bool
}

// perDevice records a call of kind per device of parent (a *device or *devices) in calls, the
// distinct calls of that kind, unless cached says the cache answers it. cached is asked once
// per device id known, in order; perDevice reports whether there may be devices besides them.
func (e *estimate) perDevice(parent any, kind string, calls *map[string]bool, cached func(id string) bool) (others bool) {
	var ids []string
	switch p := parent.(type) {
	case *device:
		if p.id == "" {
			add(calls, "name:"+p.ref.String())
			return true
		}
		ids = []string{p.id}
	case *devices:
		if c := (charge{p, kind}); !e.charged[c] {
			add(&e.charged, c)
			e.unknown += p.more
		}
		e.unbounded = e.unbounded || p.unbounded
		ids, others = p.ids, p.more > 0 || p.unbounded
	default:
		return false
	}
	for _, id := range ids {
		if !cached(id) {
			add(calls, id)
		}
	}
	return others
}

// add puts k in the set *m, making the set if there is none yet.
func add[K comparable](m *map[K]bool, k K) {
	if *m == nil {
		*m = map[K]bool{}
	}
	(*m)[k] = true
}

// charge is one kind of call ("logonUsers", "alerts") for a list's devices whose ids are
// unknown.
type charge struct {
	list *devices
	kind string
}

// passDevices hands a connection's devices to the fields below it.
func passDevices(_ *estimate, _ graphql.CollectedField, parent any) any { return parent }

// walk adds the costs of the fields selected on typeName (fragments, @skip and @include
// applied), then of their own fields.
func (e *estimate) walk(set ast.SelectionSet, typeName string, parent any) {
	for _, f := range graphql.CollectFields(e.opCtx, set, []string{typeName}) {
		if f.Definition == nil {
			continue
		}
		var child any
		if cost := fieldCosts[typeName+"."+f.Name]; cost != nil {
			if child = cost(e, f, parent); child == nil {
				continue
			}
		}
		if len(f.Selections) > 0 {
			e.walk(f.Selections, f.Definition.Type.Name(), child)
		}
	}
}

// device is a machine the operation names, with what the cache knows of it.
type device struct {
	ref defender.MachineRef
	// id is the device id: the ref itself, or the id the cache resolves a computer name to;
	// "" while unknown.
	id string
	// detailsCached: GET /api/machines/{ref} is answered from the cache; notFound: with 404.
	detailsCached, notFound bool
}

// machineCost is Query.machine's: the device details call, when NeedsDetails says the
// resolver makes it. Its fields receive the *device.
func machineCost(e *estimate, f graphql.CollectedField, _ any) any {
	id, err := Arg(e.ctx, f, e.opCtx.Variables, "id", graphql.UnmarshalID)
	if err != nil {
		return nil // gqlgen fails the field before the resolver runs
	}
	ref, err := defender.ParseMachineRef(id)
	if err != nil {
		return nil // the resolver refuses it before any call
	}
	d := &device{ref: ref}
	if ref.IsDeviceID() {
		d.id = ref.String()
	}
	if m, ok := e.loaders.CachedMachine(e.ctx, ref); ok {
		d.detailsCached, d.notFound = true, m == nil
		if m != nil {
			d.id = m.ID
		}
	}
	selected := evidenceNames(e.ctx, graphql.CollectFields(e.opCtx, f.Selections, []string{"Machine"}), e.opCtx.Variables)
	if !NeedsDetails(selected, ref) {
		return d
	}
	switch {
	case d.notFound:
		return nil // the resolver fails with NOT_FOUND: its fields cost nothing
	case d.detailsCached:
	case ref.IsDeviceID():
		add(&e.detailIDs, ref.String())
	default:
		add(&e.detailNames, ref.String())
	}
	return d
}

// logonUsersCost is Machine.logonUsers's: one call per distinct device, unless cached. A
// computer name the cache does not resolve counts once per name (two names of one device
// count twice: the estimate stays a bound). Its fields receive the *accounts: the names of the
// cached answers, or unbounded.
func logonUsersCost(e *estimate, _ graphql.CollectedField, parent any) any {
	out := &accounts{}
	others := e.perDevice(parent, "logonUsers", &e.users, func(id string) bool {
		users, ok := e.loaders.CachedLogonUsers(e.ctx, id) // one read: it may go to Redis
		if !ok {
			out.unbounded = true
		}
		for _, u := range users {
			out.names = append(out.names, u.AccountName)
		}
		return ok
	})
	out.unbounded = out.unbounded || others
	return out
}

// alertsCost is Machine.alerts's: one call per distinct device, unless cached, whatever
// `first` is; nothing when the resolver refuses `first`.
func alertsCost(e *estimate, f graphql.CollectedField, parent any) any {
	if !alertsAccepted(e.ctx, f, e.opCtx.Variables) {
		return nil
	}
	e.perDevice(parent, "alerts", &e.alerts, func(id string) bool { return e.loaders.CachedAlerts(e.ctx, id) })
	return nil
}

// userMachinesCost is LogonUser.machines's: one call per distinct account name, unless cached;
// below logon users the cache does not tell, any number (unbounded). Its fields receive the
// *devices the cached answers list.
func userMachinesCost(e *estimate, _ graphql.CollectedField, parent any) any {
	p, ok := parent.(*accounts)
	if !ok {
		return nil
	}
	out := &devices{unbounded: p.unbounded}
	e.unbounded = e.unbounded || p.unbounded
	for _, n := range p.names {
		name, err := defender.ParseAccountName(n)
		if err != nil {
			continue // the resolver refuses it before any call
		}
		ms, ok := e.loaders.CachedUserMachines(e.ctx, name)
		if !ok {
			add(&e.userMachines, n)
			out.unbounded = true
			continue
		}
		for _, m := range ms {
			out.ids = append(out.ids, m.ID)
		}
	}
	return out
}

// machinesCost is Query.machines's: one call for the page, unless cached or nothing but
// __typename is selected; nothing when the resolver refuses the arguments. Its fields receive
// the *devices: the cached page's, or `first` devices whose ids are unknown.
func machinesCost(e *estimate, f graphql.CollectedField, _ any) any {
	vars := e.opCtx.Variables
	first, err := Arg(e.ctx, f, vars, "first", unmarshalOptionalInt)
	if err != nil {
		return nil // gqlgen fails the field before the resolver runs
	}
	after, err := Arg(e.ctx, f, vars, "after", unmarshalOptionalString)
	if err != nil {
		return nil
	}
	if !selectsPage(graphql.CollectFields(e.opCtx, f.Selections, []string{"MachineConnection"})) {
		return nil
	}
	filter, err := Arg(e.ctx, f, vars, "filter", unmarshalMachineFilter)
	if err != nil {
		// This reading of the filter and gqlgen's differ; count what any valid filter costs.
		size := DefaultPageSize
		if first != nil {
			size = *first
		}
		e.unknown++
		return &devices{more: max(min(size, maxListFirst), 0)}
	}
	p, err := pageOf(filter, first, after)
	if err != nil {
		return nil // the resolver refuses it before any call
	}
	if ms, ok := e.loaders.CachedMachinePage(e.ctx, p.query); ok {
		out := &devices{}
		for _, m := range ms[:min(len(ms), p.first)] {
			out.ids = append(out.ids, m.ID)
		}
		return out
	}
	add(&e.pages, fmt.Sprint(p.query))
	return &devices{more: p.first}
}

// unmarshalMachineFilter reads a MachineFilter argument as gqlgen's generated code does
// (graph/generated.go, unmarshalInputMachineFilter), for the estimate.
func unmarshalMachineFilter(v any) (*model.MachineFilter, error) {
	if v == nil {
		return nil, nil
	}
	fields, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("MachineFilter: want an object, got %T", v)
	}
	var f model.MachineFilter
	var err error
	for k, v := range fields {
		switch k {
		case "computerDnsNamePrefix":
			f.ComputerDNSNamePrefix, err = optional(v, graphql.UnmarshalString)
		case "osPlatform":
			f.OsPlatform, err = optional(v, graphql.UnmarshalString)
		case "machineTag":
			f.MachineTag, err = optional(v, graphql.UnmarshalString)
		case "deviceGroupId":
			f.DeviceGroupID, err = optional(v, graphql.UnmarshalID)
		case "lastSeenAfter":
			f.LastSeenAfter, err = optional(v, graphql.UnmarshalTime)
		case "lastSeenBefore":
			f.LastSeenBefore, err = optional(v, graphql.UnmarshalTime)
		case "healthStatus":
			f.HealthStatus, err = optionalEnum[model.HealthStatus](v)
		case "riskScore":
			f.RiskScore, err = optionalEnum[model.RiskScore](v)
		case "exposureLevel":
			f.ExposureLevel, err = optionalEnum[model.ExposureLevel](v)
		default:
			err = fmt.Errorf("MachineFilter has no field %s", k)
		}
		if err != nil {
			return nil, err
		}
	}
	return &f, nil
}

// optional reads a nullable value with un.
func optional[T any](v any, un func(any) (T, error)) (*T, error) {
	if v == nil {
		return nil, nil
	}
	t, err := un(v)
	return &t, err
}

// optionalEnum reads a nullable enum value with its UnmarshalGQL.
func optionalEnum[E any, P interface {
	*E
	UnmarshalGQL(any) error
}](v any) (*E, error) {
	if v == nil {
		return nil, nil
	}
	var e E
	err := P(&e).UnmarshalGQL(v)
	return &e, err
}
