package resolvers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
)

// DefaultPageSize is Query.machines's page when `first` is left out: with one call per device
// below it (logonUsers or alerts), it stays within the default MAX_UPSTREAM_CALLS_PER_QUERY
// (50) only with `first` ≤ 49, so a query that goes deeper must ask for a smaller page, and is
// told so before any call.
const DefaultPageSize = 50

// maxCursorOffset bounds the position a cursor may name: ten million devices is far beyond
// any tenant, and keeps $skip a plain number.
const maxCursorOffset = 10_000_000

// page is Query.machines's arguments, validated: the page to ask Defender for.
type page struct {
	query  loaders.PageQuery // Top is first + 1: one more device tells whether another page follows
	first  int
	filter string // the OData filter's fingerprint, which cursors carry
}

// pageOf validates Query.machines's arguments as the resolver receives them, before anything
// reaches a URL: the filter (translated to OData by defender.MachineFilter), `first` (1 to
// 1000, DefaultPageSize when absent) and `after` (a cursor of a page with the same filter).
// Refusals are *defender.InvalidInputError (BAD_USER_INPUT).
func pageOf(filter *model.MachineFilter, first *int, after *string) (page, error) {
	f, err := toFilter(filter)
	if err != nil {
		return page{}, err
	}
	odata, err := f.OData()
	if err != nil {
		return page{}, err
	}
	p := page{first: DefaultPageSize, filter: fingerprint(odata)}
	if first != nil {
		if p.first, err = firstInRange(*first, "first"); err != nil {
			return page{}, err
		}
	}
	skip := 0
	if after != nil {
		offset, err := decodeCursor(*after, p.filter)
		if err != nil {
			return page{}, err
		}
		skip = offset + 1
	}
	p.query = loaders.PageQuery{Filter: odata, Top: p.first + 1, Skip: skip}
	return p, nil
}

// fingerprint identifies an OData filter in a cursor, so that a cursor of one filter is not
// used with another (it would skip to a position in another list).
func fingerprint(odata string) string {
	sum := sha256.Sum256([]byte(odata))
	return hex.EncodeToString(sum[:8])
}

// cursorPrefix versions the cursors, so that their shape can change.
const cursorPrefix = "mdegraph:machines:v1:"

// cursor is the opaque cursor of the device at offset in the list filter (a fingerprint)
// selects: base64url of "mdegraph:machines:v1:<offset>:<filter>".
func cursor(offset int, filter string) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s%d:%s", cursorPrefix, offset, filter))
}

// decodeCursor returns the offset of a cursor made for the same filter.
func decodeCursor(s, filter string) (int, error) {
	refuse := func(reason string) (int, error) {
		return 0, &defender.InvalidInputError{Field: "after", Value: s, Reason: reason}
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	rest, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if err != nil || !ok {
		return refuse("is not a cursor of Query.machines; pass an edge's cursor or pageInfo.endCursor as it was given")
	}
	pos, fp, _ := strings.Cut(rest, ":")
	offset, err := strconv.Atoi(pos)
	if err != nil || offset < 0 || offset > maxCursorOffset {
		return refuse("is not a cursor of Query.machines; pass an edge's cursor or pageInfo.endCursor as it was given")
	}
	if fp != filter {
		return refuse("belongs to a page with another filter; page with the filter the cursor came with")
	}
	return offset, nil
}

// pageFields are the connection's fields that need the page; __typename alone does not.
var pageFields = []string{"edges", "nodes", "pageInfo"}

// selectsPage reports whether fields, selected on a MachineConnection, need the page.
func selectsPage(fields []graphql.CollectedField) bool {
	return slices.ContainsFunc(fields, func(f graphql.CollectedField) bool { return slices.Contains(pageFields, f.Name) })
}

// machines resolves Query.machines. It never fails the field: a refused argument or a failed
// page call is one error at the field's path, and the connection's fields are null.
func (r *Resolver) machines(ctx context.Context, filter *model.MachineFilter, first *int, after *string) (*model.MachineConnection, error) {
	conn := &model.MachineConnection{}
	fc := graphql.GetFieldContext(ctx)
	path := slices.Clone(fc.Path())
	p, err := pageOf(filter, first, after)
	if err != nil {
		graphql.AddError(ctx, errorAt(err, path, fc.Field.Position))
		return conn, nil
	}
	if !selectsPage(graphql.CollectFieldsCtx(ctx, nil)) {
		return conn, nil
	}
	ms, stale, err := loaders.For(ctx).MachinePage(ctx, p.query)
	if err != nil {
		graphql.AddError(ctx, errorAt(err, path, fc.Field.Position))
		return conn, nil
	}
	noteStale(ctx, path, stale)
	n := min(len(ms), p.first)
	conn.Nodes = r.toMachines(ctx, ms[:n])
	conn.Edges = make([]*model.MachineEdge, n)
	for i, m := range conn.Nodes {
		conn.Edges[i] = &model.MachineEdge{Cursor: cursor(p.query.Skip+i, p.filter), Node: m}
	}
	conn.PageInfo = &model.PageInfo{HasNextPage: len(ms) > p.first, HasPreviousPage: p.query.Skip > 0}
	if n > 0 {
		conn.PageInfo.StartCursor = &conn.Edges[0].Cursor
		conn.PageInfo.EndCursor = &conn.Edges[n-1].Cursor
	}
	return conn, nil
}

// toFilter is the schema's MachineFilter in Defender's terms: enumeration values in Defender's
// spelling (IMPAIRED_COMMUNICATION is ImpairedCommunication). OTHER, which stands for values
// added after this service was built, and empty strings are refused: neither can be asked for.
func toFilter(f *model.MachineFilter) (defender.MachineFilter, error) {
	var out defender.MachineFilter
	if f == nil {
		return out, nil
	}
	for _, s := range []struct {
		field string
		v     *string
		dst   *string
	}{
		{"computerDnsNamePrefix", f.ComputerDNSNamePrefix, &out.ComputerDNSNamePrefix},
		{"osPlatform", f.OsPlatform, &out.OSPlatform},
		{"machineTag", f.MachineTag, &out.MachineTag},
		{"deviceGroupId", f.DeviceGroupID, &out.RBACGroupID},
	} {
		if s.v == nil {
			continue
		}
		if *s.v == "" {
			return out, &defender.InvalidInputError{Field: s.field, Reason: "must not be empty; leave it out to match every device"}
		}
		*s.dst = *s.v
	}
	var err error
	if out.HealthStatus, err = defenderSpelling("healthStatus", f.HealthStatus, model.HealthStatusOther); err != nil {
		return out, err
	}
	if out.RiskScore, err = defenderSpelling("riskScore", f.RiskScore, model.RiskScoreOther); err != nil {
		return out, err
	}
	if out.ExposureLevel, err = defenderSpelling("exposureLevel", f.ExposureLevel, model.ExposureLevelOther); err != nil {
		return out, err
	}
	out.LastSeenAfter = timeOrZero(f.LastSeenAfter)
	out.LastSeenBefore = timeOrZero(f.LastSeenBefore)
	return out, nil
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// defenderSpelling is the inverse of enumOf: an enum value of the schema in Defender's
// spelling, "" for nil, refused for other.
func defenderSpelling[E graphQLEnum](field string, v *E, other E) (string, error) {
	switch {
	case v == nil:
		return "", nil
	case *v == other:
		return "", &defender.InvalidInputError{Field: field, Value: string(*v),
			Reason: "stands for values Defender added after this service was built; it cannot be asked for"}
	}
	var b strings.Builder
	for word := range strings.SplitSeq(string(*v), "_") {
		if word != "" {
			b.WriteString(word[:1] + strings.ToLower(word[1:]))
		}
	}
	return b.String(), nil
}
