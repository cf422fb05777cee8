package resolvers

import (
	"context"
	"strconv"

	"github.com/99designs/gqlgen/graphql"

	"github.com/mdegraph/mdegraph/internal/defender"
)

// NeedsDetails is the rule that spends no quota a query did not ask for: given the fields
// selected on a Machine (as evidenceNames lists them), it reports whether GET
// /api/machines/{id} must be called. logonUsers and alerts need no details when the machine
// is named by its device id, and then also prove the device exists (both answer 404 for an
// unknown device), so id and __typename come free with them. In every other case (a detail
// field, or a computer name that must be resolved to an id, or nothing that proves existence)
// the details call is made. The query cost estimate uses the same rule.
func NeedsDetails(selected []string, ref defender.MachineRef) bool {
	evidence := false
	for _, f := range selected {
		switch f {
		case "logonUsers", "alerts":
			evidence = true
		case "id", "__typename":
		default:
			return true
		}
	}
	return !evidence || !ref.IsDeviceID()
}

// evidenceNames lists the names of the fields selected on a machine for NeedsDetails: an
// alerts selection whose `first` the field refuses makes no call, so it proves nothing and is
// left out (like __typename, it needs nothing but the device's existence).
func evidenceNames(ctx context.Context, fields []graphql.CollectedField, vars map[string]any) []string {
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		if f.Name == "alerts" && !alertsAccepted(ctx, f, vars) {
			continue
		}
		names = append(names, f.Name)
	}
	return names
}

// maxListFirst bounds `first` on Machine.alerts and Query.machines: answers of more than
// 1000 devices or alerts run to megabytes.
const maxListFirst = 1000

// alertsLimit validates Machine.alerts's `first`: how many alerts to keep, 0 for all.
func alertsLimit(first *int) (int, error) {
	if first == nil {
		return 0, nil
	}
	return firstInRange(*first, "first")
}

// firstInRange accepts a `first` argument from 1 to maxListFirst.
func firstInRange(n int, field string) (int, error) {
	if n < 1 || n > maxListFirst {
		return 0, &defender.InvalidInputError{Field: field, Value: strconv.Itoa(n), Reason: "must be between 1 and " + strconv.Itoa(maxListFirst)}
	}
	return n, nil
}

// alertsAccepted reports whether Machine.alerts, selected as f, accepts its `first` (read as
// gqlgen hands it to the resolver), so that its resolver will want the device's alerts.
func alertsAccepted(ctx context.Context, f graphql.CollectedField, vars map[string]any) bool {
	first, err := Arg(ctx, f, vars, "first", unmarshalOptionalInt)
	if err != nil {
		return false
	}
	_, err = alertsLimit(first)
	return err == nil
}

// unmarshalOptionalInt is gqlgen's unmarshaller of a nullable Int (nil for null or absent).
func unmarshalOptionalInt(v any) (*int, error) { return optional(v, graphql.UnmarshalInt) }

// unmarshalOptionalString is gqlgen's unmarshaller of a nullable String.
func unmarshalOptionalString(v any) (*string, error) { return optional(v, graphql.UnmarshalString) }
