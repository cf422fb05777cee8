package resolvers

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// CostLimit is a gqlgen extension that estimates, before anything runs, how many upstream calls
// an operation can need, and rejects it with QUERY_TOO_EXPENSIVE when that exceeds Max. What is
// scarce here is Defender's quota, not CPU, so the cost counts upstream calls rather than
// fields (gqlgen's complexity counts fields); the estimate follows the resolvers' own rules:
// NeedsDetails, one logonusers call per distinct device, and device ids fetched together in
// list calls of defender.MaxIDsPerList.
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
	n := UpstreamCalls(opCtx)
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

// UpstreamCalls estimates the most upstream calls the operation can need (retries aside).
func UpstreamCalls(opCtx *graphql.OperationContext) int {
	if opCtx.Operation == nil {
		return 0
	}
	detailIDs := map[string]bool{}
	detailNames := map[string]bool{}
	logonUsers := map[string]bool{}
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Query"}) {
		if f.Name != "machine" {
			continue
		}
		id, _ := f.ArgumentMap(opCtx.Variables)["id"].(string)
		ref, err := defender.ParseMachineRef(id)
		if err != nil {
			continue // refused before any call
		}
		var selected []string
		for _, sf := range graphql.CollectFields(opCtx, f.Selections, []string{"Machine"}) {
			selected = append(selected, sf.Name)
			if sf.Name == "logonUsers" {
				logonUsers[ref.String()] = true
			}
		}
		if NeedsDetails(selected, ref) {
			if ref.IsDeviceID() {
				detailIDs[ref.String()] = true
			} else {
				detailNames[ref.String()] = true
			}
		}
	}
	n := len(detailNames) + len(logonUsers)
	switch ids := len(detailIDs); {
	case ids == 1:
		n++
	case ids > 1:
		n += (ids + defender.MaxIDsPerList - 1) / defender.MaxIDsPerList
	}
	return n
}
