package quota

import (
	"testing"
	"time"
)

func TestExceededErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		retryAfter time.Duration
		want       string
	}{
		{time.Nanosecond, "rate limit reached, next slot in 1s"},
		{time.Second, "rate limit reached, next slot in 1s"},
		{1500 * time.Millisecond, "rate limit reached, next slot in 2s"},
		{time.Hour, "rate limit reached, next slot in 3600s"},
	}
	for _, tt := range tests {
		if got := (&ExceededError{RetryAfter: tt.retryAfter}).Error(); got != tt.want {
			t.Errorf("ExceededError{%v}.Error() = %q, want %q", tt.retryAfter, got, tt.want)
		}
	}
}
