package simulator

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// listQuery is GET /api/machines's query, validated.
type listQuery struct {
	filter    filterExpr // nil: every machine
	rawFilter string
	top       int
	topSet    bool
	skip      int
}

// parseListQuery reads $filter, $top and $skip (names case-insensitive, as the upstream's OData
// stack reads them). Other $-options are refused rather than ignored, so a caller cannot come to
// rely on one the upstream may not honour; parameters without $ are ignored.
func parseListQuery(raw string) (listQuery, *response) {
	q := listQuery{top: MaxTop}
	bad := func(format string, args ...any) (listQuery, *response) {
		resp := apiError(http.StatusBadRequest, codeODataError, fmt.Sprintf(format, args...))
		return listQuery{}, &resp
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return bad("The query string is malformed: %v.", err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report problems in a stable order
	seen := map[string]bool{}
	for _, k := range keys {
		name := strings.ToLower(strings.TrimSpace(k))
		if !strings.HasPrefix(name, "$") {
			continue
		}
		if seen[name] || len(values[k]) > 1 {
			return bad("The query option '%s' was specified more than once; it must be specified at most once.", clip(name))
		}
		seen[name] = true
		v := values[k][0]
		switch name {
		case "$filter":
			f, err := parseFilter(v)
			if err != nil {
				return bad("%v", err)
			}
			q.filter, q.rawFilter = f, v
		case "$top":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return bad("Invalid value '%s' for $top query option found. The $top query option requires a non-negative integer value.", clip(v))
			}
			if n > MaxTop {
				return bad("The limit of '%d' for Top query has been exceeded. The value from the incoming request is '%d'.", MaxTop, n)
			}
			q.top, q.topSet = n, true
		case "$skip":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return bad("Invalid value '%s' for $skip query option found. The $skip query option requires a non-negative integer value.", clip(v))
			}
			q.skip = n
		default:
			return bad("The query option '%s' is not supported on this resource; the supported options are $filter, $top and $skip.", clip(name))
		}
	}
	return q, nil
}

// refuseQueryOptions answers 400 ODataError for any $-option, on the list endpoints that take
// none (a device's alerts, a user's machines): a caller must not come to rely on options the
// upstream does not document there. Parameters without $ are ignored.
func refuseQueryOptions(raw string) (response, bool) {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return apiError(http.StatusBadRequest, codeODataError, fmt.Sprintf("The query string is malformed: %v.", err)), false
	}
	keys := slices.Sorted(maps.Keys(values))
	for _, k := range keys {
		if name := strings.ToLower(strings.TrimSpace(k)); strings.HasPrefix(name, "$") {
			return apiError(http.StatusBadRequest, codeODataError, fmt.Sprintf(
				"The query option '%s' is not supported on this resource; it takes no query options.", clip(name))), false
		}
	}
	return response{}, true
}
