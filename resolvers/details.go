package resolvers

import (
	"github.com/mdegraph/mdegraph/internal/defender"
)

// NeedsDetails is the rule that spends no quota a query did not ask for: given the fields
// selected on a Machine, it reports whether GET /api/machines/{id} must be called. logonUsers
// needs no details when the machine is named by its device id, and then also proves the
// device exists, so id and __typename come free with it. In every other case (a detail
// field, or a computer name that must be resolved to an id, or nothing that proves existence)
// the details call is made. The query cost estimate uses the same rule.
func NeedsDetails(selected []string, ref defender.MachineRef) bool {
	logonUsers := false
	for _, f := range selected {
		switch f {
		case "logonUsers":
			logonUsers = true
		case "id", "__typename":
		default:
			return true
		}
	}
	return !logonUsers || !ref.IsDeviceID()
}
