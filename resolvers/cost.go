package resolvers

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

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
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = CostLimit{}

// ExtensionName names the extension for gqlgen.
func (CostLimit) ExtensionName() string { return "UpstreamCallLimit" }

// Validate accepts any schema.
func (CostLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext rejects an operation that is too expensive.
func (c CostLimit) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	n := UpstreamCalls(ctx, opCtx)
	if n <= c.Max {
		return nil
	}
	return &gqlerror.Error{
		Message: fmt.Sprintf("this query could need %d calls to Defender, more than the %d allowed per query; ask for fewer distinct devices, or fewer fields", n, c.Max),
		Extensions: map[string]any{
			"code":             CodeQueryTooExpensive,
			"upstreamCalls":    n,
			"maxUpstreamCalls": c.Max,
		},
	}
}

// UpstreamCalls estimates the most upstream calls the operation can make (retries aside), for
// the request in ctx: an answer its loaders (package loaders) hold in their cache until the
// request's deadline costs nothing, and a device named by its computer name counts as the
// device id the cache resolves it to, if it does. Any other argument the resolver would call
// Defender with is counted, however it is spelled (a string, an integer, a variable). The
// device details of several device ids count as the list calls of defender.MaxIDsPerList
// that fetch them together.
func UpstreamCalls(ctx context.Context, opCtx *graphql.OperationContext) int {
	if opCtx.Operation == nil {
		return 0
	}
	e := &estimate{ctx: ctx, opCtx: opCtx, loaders: loaders.For(ctx),
		detailIDs: map[string]bool{}, detailNames: map[string]bool{}, users: map[string]bool{}}
	e.walk(opCtx.Operation.SelectionSet, "Query", nil)
	n := len(e.detailNames) + len(e.users)
	switch ids := len(e.detailIDs); {
	case ids == 1:
		n++
	case ids > 1:
		n += (ids + defender.MaxIDsPerList - 1) / defender.MaxIDsPerList
	}
	return n
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
	"Query.machine":      machineCost,
	"Query.quota":        nil, // reads the limiter
	"Machine.logonUsers": logonUsersCost,
}

// estimate is one operation's upstream calls, by kind, each distinct call once.
type estimate struct {
	ctx     context.Context
	opCtx   *graphql.OperationContext
	loaders *loaders.Loaders // nil without the loaders middleware: nothing is known cached

	detailIDs   map[string]bool // device details by id, fetched together in list calls
	detailNames map[string]bool // device details by computer name, one call each
	users       map[string]bool // logon users, by device id or, until resolved, "name:" + name
}

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
	var selected []string
	for _, sf := range graphql.CollectFields(e.opCtx, f.Selections, []string{"Machine"}) {
		selected = append(selected, sf.Name)
	}
	if !NeedsDetails(selected, ref) {
		return d
	}
	switch {
	case d.notFound:
		return nil // the resolver fails with NOT_FOUND: its fields cost nothing
	case d.detailsCached:
	case ref.IsDeviceID():
		e.detailIDs[ref.String()] = true
	default:
		e.detailNames[ref.String()] = true
	}
	return d
}

// logonUsersCost is Machine.logonUsers's: one call per distinct device, unless cached. A
// computer name the cache does not resolve counts once per name (two names of one device
// count twice: the estimate stays a bound).
func logonUsersCost(e *estimate, _ graphql.CollectedField, parent any) any {
	d, ok := parent.(*device)
	switch {
	case !ok:
		return nil
	case d.id == "":
		e.users["name:"+d.ref.String()] = true
	case !e.loaders.CachedLogonUsers(e.ctx, d.id):
		e.users[d.id] = true
	}
	return nil
}
