package quota

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/mdegraph/mdegraph/internal/tracing/tracingtest"
)

// TestWaitSpans: a call granted at once makes no span; one refused, or granted after waiting
// in line, makes a "quota wait" span under the caller's, saying how it ended.
func TestWaitSpans(t *testing.T) {
	t.Parallel()
	tp, exp := tracingtest.NewProvider(t)
	s := NewSet(time.Minute, Window{Limit: 1, Per: time.Hour})
	ctx, root := tp.Tracer("test").Start(t.Context(), "root")

	if _, err := s.Take(ctx, "machines.get"); err != nil { // a free slot
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, "machines.get"); err == nil { // the next one is an hour away
		t.Fatal("a second call within the window was granted")
	}
	root.End()

	tree := tracingtest.NewTree(exp.GetSpans())
	waits := tree.Named("quota wait machines.get")
	if len(waits) != 1 {
		t.Fatalf("want one wait span, for the refused call:\n%s", tree)
	}
	w := waits[0]
	if p, ok := tree.Parent(w); !ok || p.Name != "root" {
		t.Errorf("wait span under %q, want the caller's span", p.Name)
	}
	for k, want := range map[attribute.Key]string{AttrFamily: "machines.get", AttrOutcome: "exceeded"} {
		if got := tracingtest.Attr(w, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
