package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/logtest"
	"github.com/mdegraph/mdegraph/internal/simulator"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	defaults := config{
		addr: "127.0.0.1:9090", seed: 1, devices: 300, tenant: simulator.DemoTenantID,
		clientID: simulator.DefaultClientID, clientSecret: simulator.DefaultClientSecret, perMinute: 100, perHour: 1500,
		audience: simulator.DefaultAudience, tokenTTL: simulator.DefaultTokenTTL, nextLink: "normal", pageSize: simulator.MaxTop,
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config)
		wantErr string
	}{
		{name: "defaults", want: func(*config) {}},
		{name: "flags", args: []string{"-addr", ":0", "-seed", "9", "-devices", "50", "-latency", "80ms", "-per-minute", "-1"},
			want: func(c *config) {
				c.addr, c.seed, c.devices, c.latency, c.perMinute = ":0", 9, 50, 80*time.Millisecond, -1
			}},
		{name: "env", env: map[string]string{"SIM_ADDR": "127.0.0.1:7000", "SIM_CLIENT_SECRET": "s", "SIM_PER_HOUR": "10", "SIM_VERBOSE": "true"},
			want: func(c *config) { c.addr, c.clientSecret, c.perHour, c.verbose = "127.0.0.1:7000", "s", 10, true }},
		{name: "flag beats env", args: []string{"-seed", "3"}, env: map[string]string{"SIM_SEED": "2"},
			want: func(c *config) { c.seed = 3 }},
		{name: "bad env", env: map[string]string{"SIM_SEED": "one"}, wantErr: `SIM_SEED="one"`},
		{name: "bad flag", args: []string{"-devices", "many"}, wantErr: "invalid value"},
		{name: "no devices", args: []string{"-devices", "0"}, want: func(c *config) { c.devices = 0 }},
		{name: "negative devices", args: []string{"-devices", "-1"}, wantErr: "SIM_DEVICES"},
		{name: "identity flags", args: []string{"-audience", "api://other", "-print-tokens", "-forbid-hidden-devices", "-token-ttl", "5m"},
			want: func(c *config) {
				c.audience, c.printTokens, c.forbidHidden, c.tokenTTL = "api://other", true, true, 5*time.Minute
			}},
		{name: "paging flags", env: map[string]string{"SIM_NEXT_LINK": "repeat", "SIM_PAGE_SIZE": "100"},
			want: func(c *config) { c.nextLink, c.pageSize = "repeat", 100 }},
		{name: "bad next-link", args: []string{"-next-link", "sometimes"}, wantErr: "SIM_NEXT_LINK"},
		{name: "page size too big", args: []string{"-page-size", "10001"}, wantErr: "SIM_PAGE_SIZE"},
		{name: "empty audience", args: []string{"-audience", ""}, wantErr: "SIM_AUDIENCE"},
		{name: "zero limit", env: map[string]string{"SIM_PER_MINUTE": "0"}, wantErr: "SIM_PER_MINUTE"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error: got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tt.want(&want)
			if got != want {
				t.Errorf("config:\ngot  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestServe(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.printTokens = true
	var logs, stdout logtest.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, cfg, slog.New(slog.NewTextHandler(&logs, nil)), &stdout) }()

	base := "http://" + ln.Addr().String()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cfg.clientID},
		"client_secret": {cfg.clientSecret}, "scope": {"https://api.securitycenter.microsoft.com/.default"}}
	resp, err := http.PostForm(base+"/"+cfg.tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("token: status %d", resp.StatusCode)
	}
	example := simulator.New(simulator.Options{}).ExampleMachineID()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/machines/"+example, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET example machine: status %d", resp.StatusCode)
	}

	checkPersonTokens(t, base, cfg, stdout.String())

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	out := logs.String()
	for _, want := range []string{
		"url=" + base,
		"example_machine_id=" + example,
		"MDE_API_URL=" + base + " MDE_TOKEN_URL=" + base + "/" + cfg.tenant + "/oauth2/v2.0/token MDE_TENANT_ID=" + cfg.tenant,
		"MDE_CLIENT_ID=" + cfg.clientID + " MDE_CLIENT_SECRET=" + cfg.clientSecret,
		"issuer=" + base + "/" + cfg.tenant + "/v2.0",
		"demo_persons=" + base + "/demo/persons",
		"shutting down",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

// checkPersonTokens reads the tokens -print-tokens wrote, one line per demo person, and trades
// Megan's on-behalf-of her for a Defender token that lists only her devices.
func checkPersonTokens(t *testing.T, base string, cfg config, printed string) {
	t.Helper()
	tokens := map[string]string{}
	for line := range strings.Lines(printed) {
		f := strings.Split(strings.TrimSpace(line), "\t")
		if len(f) != 3 || strings.Count(f[2], ".") != 2 {
			t.Fatalf("printed line %q: want id, UPN and a JWT separated by tabs", line)
		}
		tokens[f[0]] = f[2]
	}
	ref := simulator.New(simulator.Options{})
	if len(tokens) != len(ref.Persons()) {
		t.Fatalf("printed %d tokens, want one per demo person (%d)", len(tokens), len(ref.Persons()))
	}
	form := url.Values{"grant_type": {simulator.GrantOnBehalfOf}, "client_id": {cfg.clientID}, "client_secret": {cfg.clientSecret},
		"assertion": {tokens["megan"]}, "scope": {"https://api.securitycenter.microsoft.com/.default"}, "requested_token_use": {"on_behalf_of"}}
	resp, err := http.PostForm(base+"/"+cfg.tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var obo struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&obo)
	resp.Body.Close()
	if resp.StatusCode != 200 || obo.AccessToken == "" {
		t.Fatalf("on-behalf-of Megan: status %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/machines", nil)
	req.Header.Set("Authorization", "Bearer "+obo.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Value []simulator.Machine `json:"value"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	megan, _ := ref.Person("megan")
	want := 0
	for _, m := range ref.Machines() {
		if megan.CanSee(m) {
			want++
		}
	}
	if resp.StatusCode != 200 || len(list.Value) != want || want == 0 || want == len(ref.Machines()) {
		t.Fatalf("Megan's machines: status %d, %d devices; want 200 and her %d of %d", resp.StatusCode, len(list.Value), want, len(ref.Machines()))
	}
	for _, m := range list.Value {
		if !megan.CanSee(m) {
			t.Errorf("Megan sees %s of group %d", m.ID, m.RBACGroupID)
		}
	}
}
