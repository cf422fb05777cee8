package principal

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Principal
		want string
	}{
		{Principal{Kind: KindUser, TenantID: "t1", ObjectID: "o1", Name: "Jane"}, "user:t1/o1"},
		{Principal{Kind: KindAPIKey, Name: "soc-dashboard"}, "apikey:soc-dashboard"},
		{Anonymous("192.0.2.7:51234"), "addr:192.0.2.7"},
		{Anonymous("[2001:db8::1]:443"), "addr:2001:db8::1"},
		{Anonymous("pipe"), "addr:pipe"},
		{Principal{}, "anonymous"},
	}
	for _, tt := range tests {
		if got := tt.p.ID(); got != tt.want {
			t.Errorf("%+v.ID() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestContext(t *testing.T) {
	t.Parallel()
	if _, ok := FromContext(context.Background()); ok {
		t.Error("FromContext of an empty context reported a principal")
	}
	p := Principal{Kind: KindAPIKey, Name: "k"}
	got, ok := FromContext(NewContext(context.Background(), p))
	if !ok || got != p {
		t.Errorf("FromContext = %+v, %v; want %+v, true", got, ok, p)
	}
}

func TestAssertionNeverPrints(t *testing.T) {
	t.Parallel()
	const secret = "eyJhbGciOiJSUzI1NiJ9.secret.sig"
	a := Assertion(secret)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %s %q %x %d %#v %+v", a, a, a, a, a, a, struct{ A Assertion }{a})} {
		if strings.Contains(s, "secret") || strings.Contains(s, hex.EncodeToString([]byte(secret))) {
			t.Errorf("formatted assertion shows the token: %s", s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "assertion", a)
	if b, _ := json.Marshal(struct{ A Assertion }{a}); strings.Contains(buf.String()+string(b), "secret") {
		t.Errorf("log or JSON shows the token: %s %s", buf.String(), b)
	}
	ctx := WithAssertion(context.Background(), a)
	if got, ok := AssertionFrom(ctx); !ok || got.Reveal() != secret {
		t.Errorf("AssertionFrom = %v, %v; want the token, true", got.Reveal() == secret, ok)
	}
	if _, ok := AssertionFrom(context.Background()); ok {
		t.Error("AssertionFrom of an empty context reported a token")
	}
}

func TestIDFrom(t *testing.T) {
	t.Parallel()
	if got := IDFrom(context.Background()); got != "anonymous" {
		t.Errorf("IDFrom(empty) = %q, want anonymous", got)
	}
	ctx := NewContext(context.Background(), Principal{Kind: KindAPIKey, Name: "k"})
	if got := IDFrom(ctx); got != "apikey:k" {
		t.Errorf("IDFrom = %q, want apikey:k", got)
	}
}
