package web

import (
	"encoding/json"
	"html"
	"net/http"
	"strings"
	"testing"
)

const configOpen = `<script type="application/json" id="mdegraph-config">`

// configBlock returns the raw text of the page's config block.
func configBlock(t *testing.T, page string) string {
	t.Helper()
	_, rest, ok := strings.Cut(page, configOpen)
	if !ok {
		t.Fatalf("page has no %s block", configOpen)
	}
	block, _, ok := strings.Cut(rest, "</script>")
	if !ok {
		t.Fatal("config block is not closed")
	}
	return block
}

func playgroundPage(t *testing.T, opts PlaygroundOptions) (string, playgroundConfig) {
	t.Helper()
	res := serve(t, Playground(opts), http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
	page := readBody(t, res)
	var cfg playgroundConfig
	if err := json.Unmarshal([]byte(configBlock(t, page)), &cfg); err != nil {
		t.Fatalf("config block is not JSON: %v", err)
	}
	return page, cfg
}

func TestPlaygroundConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts PlaygroundOptions
		want playgroundConfig
	}{
		{
			name: "defaults",
			want: playgroundConfig{Endpoint: "/query", Title: "mdegraph", Query: DefaultQuery},
		},
		{
			name: "demo device",
			opts: PlaygroundOptions{
				Endpoint:  "/api/query",
				Title:     "Defender graph",
				Variables: DeviceVariables("1e5bc9d7e413ddd7902c2932e418702b84d0cc07"),
				Headers:   `{"Authorization":"Bearer "}`,
			},
			want: playgroundConfig{
				Endpoint:  "/api/query",
				Title:     "Defender graph",
				Query:     DefaultQuery,
				Variables: "{\n  \"id\": \"1e5bc9d7e413ddd7902c2932e418702b84d0cc07\"\n}",
				Headers:   "{\n  \"Authorization\": \"Bearer \"\n}",
			},
		},
		{
			name: "custom query, invalid variables kept as written",
			opts: PlaygroundOptions{Query: "{ __typename }", Variables: "{id: oops"},
			want: playgroundConfig{Endpoint: "/query", Title: "mdegraph", Query: "{ __typename }", Variables: "{id: oops"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			page, got := playgroundPage(t, tt.opts)
			if got != tt.want {
				t.Errorf("config:\n got %+v\nwant %+v", got, tt.want)
			}
			if want := "<title>" + html.EscapeString(tt.want.Title) + "</title>"; !strings.Contains(page, want) {
				t.Errorf("page lacks %s", want)
			}
		})
	}
}

func TestPlaygroundDefaultQueryUsesID(t *testing.T) {
	t.Parallel()
	for _, want := range []string{"($id: ID!)", "machine(id: $id)", "logonUsers", "isOnlyNetworkUser", "logonTypes", "machines {", "alerts(first: 10)", "mitreTechniques"} {
		if !strings.Contains(DefaultQuery, want) {
			t.Errorf("DefaultQuery lacks %q", want)
		}
	}
}

// TestPlaygroundEscaping feeds markup through every option and checks that it
// stays data: it cannot close the config block, start a script, or alter
// the title element.
func TestPlaygroundEscaping(t *testing.T) {
	t.Parallel()
	const evil = "</script><script>alert(1)</script><!-- \u2028\u2029 & ' \" </SCRIPT>"
	tests := []struct {
		name string
		opts PlaygroundOptions
	}{
		{"query", PlaygroundOptions{Query: "query { a } # " + evil}},
		{"title", PlaygroundOptions{Title: evil}},
		{"variables", PlaygroundOptions{Variables: `{"id": "` + strings.ReplaceAll(evil, `"`, `\"`) + `"}`}},
		{"invalid variables", PlaygroundOptions{Variables: evil}},
		{"headers", PlaygroundOptions{Headers: evil}},
		{"endpoint", PlaygroundOptions{Endpoint: "/q" + evil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			page, cfg := playgroundPage(t, tt.opts)
			lower := strings.ToLower(page)
			if got := strings.Count(lower, "<script"); got != 2 {
				t.Errorf("page has %d <script elements, want 2 (config and bundle)", got)
			}
			if got := strings.Count(lower, "</script"); got != 2 {
				t.Errorf("page has %d </script, want 2", got)
			}
			if strings.Contains(page, "alert(1)</script>") || strings.Contains(page, "<!--") {
				t.Error("markup from the options reached the page unescaped")
			}
			block := configBlock(t, page)
			for _, raw := range []string{"<", ">", "\u2028", "\u2029"} {
				if strings.Contains(block, raw) {
					t.Errorf("config block contains a raw %q", raw)
				}
			}
			// The value survives the trip: escaping is lossless.
			want := playgroundConfig{
				Endpoint:  orDefault(tt.opts.Endpoint, "/query"),
				Title:     orDefault(tt.opts.Title, "mdegraph"),
				Query:     orDefault(tt.opts.Query, DefaultQuery),
				Variables: indentJSON(tt.opts.Variables),
				Headers:   indentJSON(tt.opts.Headers),
			}
			if cfg != want {
				t.Errorf("config after the round trip:\n got %+v\nwant %+v", cfg, want)
			}
		})
	}
}

func TestPlaygroundReferencesOnlySameOrigin(t *testing.T) {
	t.Parallel()
	page, _ := playgroundPage(t, PlaygroundOptions{Variables: DeviceVariables("dev")})
	for _, bad := range []string{"http://", "https://", "//fonts.", "//unpkg", "//cdn"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q; every reference must be same-origin", bad)
		}
	}
	for _, want := range []string{
		`<link rel="stylesheet" href="` + assetURL("playground/graphiql.css") + `">`,
		`<script src="` + assetURL("playground/graphiql.js") + `" defer></script>`,
		`<div id="graphiql">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// TestPlaygroundBundleReadsConfig guards the contract between the page and
// src/index.jsx: the bundle must look for the block and the fields the page
// writes, and keep the header editor on.
func TestPlaygroundBundleReadsConfig(t *testing.T) {
	t.Parallel()
	js := string(assets()["playground/graphiql.js"].data)
	for _, want := range []string{`"mdegraph-config"`, "endpoint", "variables", "headers", "isHeadersEditorEnabled:!0"} {
		if !strings.Contains(js, want) {
			t.Errorf("graphiql.js lacks %q; was it rebuilt from web/playground?", want)
		}
	}
}

func TestDeviceVariables(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "ws01.contoso.local", `a"b\c</script>`, ""} {
		var got map[string]string
		if err := json.Unmarshal([]byte(DeviceVariables(id)), &got); err != nil {
			t.Fatalf("DeviceVariables(%q) is not JSON: %v", id, err)
		}
		if len(got) != 1 || got["id"] != id {
			t.Errorf("DeviceVariables(%q) = %v, want {id: %q}", id, got, id)
		}
	}
}

func TestIndentJSON(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{`{"id":"x"}`, "{\n  \"id\": \"x\"\n}"},
		{"{id: x", "{id: x"},
		{"  {\"a\": [1,2]}  ", "{\n  \"a\": [\n    1,\n    2\n  ]\n}"},
	}
	for _, tt := range tests {
		if got := indentJSON(tt.in); got != tt.want {
			t.Errorf("indentJSON(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPlaygroundSaysWhyDocsAreEmpty: with introspection off the page still loads GraphiQL and
// says, above it, why the Docs pane is empty and how to turn introspection on; with it on,
// the page says nothing of the kind.
func TestPlaygroundSaysWhyDocsAreEmpty(t *testing.T) {
	t.Parallel()
	off, cfg := playgroundPage(t, PlaygroundOptions{NoIntrospection: true})
	for _, want := range []string{`id="mdegraph-introspection-off"`, "Docs pane stays empty", "<code>INTROSPECTION=true</code>", `<div id="graphiql">`} {
		if !strings.Contains(off, want) {
			t.Errorf("introspection off: the page lacks %q", want)
		}
	}
	if cfg.Endpoint != "/query" {
		t.Errorf("introspection off: endpoint %q, want /query: GraphiQL still runs queries", cfg.Endpoint)
	}
	if on, _ := playgroundPage(t, PlaygroundOptions{}); strings.Contains(on, "mdegraph-introspection-off") {
		t.Error("introspection on: the page has the notice")
	}
}

// TestPlaygroundDemoSignIn: in demo mode the page offers the demo persons in a plain form;
// ?person=<id> renders it signed in as that person, the token in the headers editor, never
// cached.
func TestPlaygroundDemoSignIn(t *testing.T) {
	t.Parallel()
	var signedIn []string
	opts := PlaygroundOptions{
		DemoPersons: []DemoPerson{{ID: "megan", Label: "Megan Bowen (megan): device groups 12, 14, 41"}, {ID: "grady", Label: "Grady <Archie>"}},
		DemoSignIn: func(id string) (string, error) {
			signedIn = append(signedIn, id)
			return "token-of-" + id, nil
		},
		AuthHint: "send a token",
	}
	h := Playground(opts)

	page, cfg := playgroundPage(t, opts)
	for _, want := range []string{`<form class="mdegraph-notice" id="mdegraph-signin" method="get"`, `<option value="megan">Megan Bowen (megan): device groups 12, 14, 41</option>`,
		`Grady &lt;Archie&gt;`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if cfg.Headers != "" || strings.Contains(page, "mdegraph-signed-in") || strings.Contains(page, "mdegraph-auth-hint") || len(signedIn) > 0 {
		t.Errorf("nobody signed in: headers %q, signed in %v; want none, and the picker instead of the hint", cfg.Headers, signedIn)
	}

	res := serve(t, h, http.MethodGet, "/?person=megan", nil)
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("?person=megan: status %d, Cache-Control %q, CSP %q; want 200, no-store and the CSP", res.StatusCode,
			res.Header.Get("Cache-Control"), res.Header.Get("Content-Security-Policy"))
	}
	var got playgroundConfig
	if err := json.Unmarshal([]byte(configBlock(t, body)), &got); err != nil {
		t.Fatal(err)
	}
	var headers map[string]string
	if err := json.Unmarshal([]byte(got.Headers), &headers); err != nil || headers["Authorization"] != "Bearer token-of-megan" {
		t.Errorf("headers editor %q, want Authorization: Bearer token-of-megan", got.Headers)
	}
	if !strings.Contains(body, `<option value="megan" selected>`) || !strings.Contains(body, `data-person="megan"`) {
		t.Error("the page does not show megan as signed in")
	}

	for target, want := range map[string]int{"/?person=nobody": http.StatusNotFound, "/?person=": http.StatusOK} {
		if res := serve(t, h, http.MethodGet, target, nil); res.StatusCode != want {
			t.Errorf("%s: status %d, want %d", target, res.StatusCode, want)
		}
	}
	if body := readBody(t, serve(t, h, http.MethodGet, "/?person=nobody", nil)); !strings.Contains(body, `no demo person "nobody"`) ||
		!strings.Contains(body, "megan, grady") {
		t.Errorf("an unknown person's answer %q, want it to name the person asked for and the persons there are", body)
	}
	if res := serve(t, h, http.MethodPost, "/?person=megan", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST ?person=megan: status %d, want 405", res.StatusCode)
	}
	if len(signedIn) != 1 {
		t.Errorf("sign-ins %v, want megan's only", signedIn)
	}
}

// TestPlaygroundAuthHint: where callers sign in, the page says how to send the header.
func TestPlaygroundAuthHint(t *testing.T) {
	t.Parallel()
	page, _ := playgroundPage(t, PlaygroundOptions{AuthHint: "send your API key in the header X-Api-Key: <key>"})
	if !strings.Contains(page, `id="mdegraph-auth-hint"`) || !strings.Contains(page, "X-Api-Key: &lt;key&gt;") {
		t.Errorf("page does not explain how to send a credential:\n%s", page)
	}
	if page, _ := playgroundPage(t, PlaygroundOptions{}); strings.Contains(page, "mdegraph-notice") {
		t.Error("a page without sign-in shows a notice")
	}
}
