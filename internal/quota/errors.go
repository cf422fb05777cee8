package quota

import (
	"fmt"
	"time"
)

// ExceededError is returned by Wait when the caller's slot would come later
// than it is willing to wait (maxWait or its context's deadline). Callers
// find it with errors.As.
type ExceededError struct {
	// RetryAfter is the projected wait for a slot, exact, not rounded. Round it
	// up, never down, when a whole number is needed (a Retry-After header, a
	// GraphQL extension in seconds), or the client comes back too early.
	RetryAfter time.Duration
}

// Error says how long until a slot frees, rounded up to whole seconds.
func (e *ExceededError) Error() string {
	return fmt.Sprintf("rate limit reached, next slot in %ds", (e.RetryAfter+time.Second-1)/time.Second)
}
