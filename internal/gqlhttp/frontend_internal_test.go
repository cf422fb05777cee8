package gqlhttp

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestNoteCacheable: a persisted GET's answer is cacheable only without errors and without
// anything stale, whichever hook ran first (extensions.stale may already be written).
func TestNoteCacheable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		candidate bool
		resp      *graphql.Response
		want      bool
	}{
		{"fresh", true, &graphql.Response{}, true},
		{"not a persisted GET", false, &graphql.Response{}, false},
		{"an error", true, &graphql.Response{Errors: gqlerror.List{{Message: "x"}}}, false},
		{"stale", true, &graphql.Response{Extensions: map[string]any{"stale": []any{map[string]any{"path": []any{"machine"}}}}}, false},
	}
	for _, tt := range tests {
		hint := &cacheHint{candidate: tt.candidate}
		noteCacheable(context.WithValue(context.Background(), cacheHintKey{}, hint), tt.resp)
		if hint.cacheable != tt.want {
			t.Errorf("%s: cacheable %v, want %v", tt.name, hint.cacheable, tt.want)
		}
	}
}
