package principal

import (
	"context"
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
