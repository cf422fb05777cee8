package web

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func examplePage(t *testing.T, opts ExampleOptions) string {
	t.Helper()
	res := serve(t, Example(opts), http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
	return readBody(t, res)
}

// TestExamplePageElements checks the ids and data-testids the browser test
// drives exist, each once.
func TestExamplePageElements(t *testing.T) {
	t.Parallel()
	page := examplePage(t, ExampleOptions{DeviceID: "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"})
	for _, id := range []string{"lookup-form", "device-id", "lookup", "authorization", "message", "device", "device-name", "users", "no-users", "users-unavailable", "device-stale", "users-stale", "alerts", "no-alerts", "alerts-unavailable", "alerts-stale"} {
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			if got := strings.Count(page, ` id="`+id+`"`); got != 1 {
				t.Errorf("id=%q appears %d times, want 1", id, got)
			}
			if got := strings.Count(page, `data-testid="`+id+`"`); got != 1 {
				t.Errorf("data-testid=%q appears %d times, want 1", id, got)
			}
		})
	}
	for _, want := range []string{
		`value="1e5bc9d7e413ddd7902c2932e418702b84d0cc07"`,
		`<button id="lookup" data-testid="lookup" type="submit">`,
		`<body data-state="idle">`,
		`<tbody></tbody>`,
		`<p id="message" data-testid="message" role="alert" hidden>`,
		`<section id="device" data-testid="device" hidden>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for _, col := range []string{"Account", "Domain", "Domain admin", "Network-only", "Logon types", "First seen", "Last seen", "Other devices",
		"Severity", "Title", "Status", "MITRE techniques", "Raised"} {
		if !strings.Contains(page, `<th scope="col">`+col+`</th>`) {
			t.Errorf("users table lacks column %q", col)
		}
	}
}

func TestExampleConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts ExampleOptions
		want exampleConfig
	}{
		{"default endpoint", ExampleOptions{}, exampleConfig{Endpoint: "/query"}},
		{"custom endpoint", ExampleOptions{Endpoint: "/api/graphql"}, exampleConfig{Endpoint: "/api/graphql"}},
		{"markup in endpoint", ExampleOptions{Endpoint: "/q</script><script>alert(1)</script>"}, exampleConfig{Endpoint: "/q</script><script>alert(1)</script>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			page := examplePage(t, tt.opts)
			var got exampleConfig
			if err := json.Unmarshal([]byte(configBlock(t, page)), &got); err != nil {
				t.Fatalf("config block is not JSON: %v", err)
			}
			if got != tt.want {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
			if n := strings.Count(strings.ToLower(page), "<script"); n != 2 {
				t.Errorf("page has %d <script elements, want 2", n)
			}
		})
	}
}

func TestExampleDeviceIDEscaped(t *testing.T) {
	t.Parallel()
	page := examplePage(t, ExampleOptions{DeviceID: `"><script>alert(1)</script>`})
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("device id reached the page unescaped")
	}
	if !strings.Contains(page, `value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Error("device id is not in the input's value, escaped")
	}
}

// TestExampleScript guards example.js: it must write data with textContent
// only, and every element it looks up must exist on the page.
func TestExampleScript(t *testing.T) {
	t.Parallel()
	js := string(assets()["example/example.js"].data)
	for _, banned := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, banned) {
			t.Errorf("example.js uses %s; render data with textContent", banned)
		}
	}
	for _, want := range []string{"'mdegraph-config'", "NOT_FOUND", "RATE_LIMITED", "retryAfter", "BAD_USER_INPUT", "'Content-Type': 'application/json'", "Authorization", "variables: { id }",
		"extensions.stale", "ageSeconds", "stale (", "partial"} {
		if !strings.Contains(js, want) {
			t.Errorf("example.js lacks %s", want)
		}
	}
	page := examplePage(t, ExampleOptions{})
	ids := regexp.MustCompile(`\$\('([^']+)'\)`).FindAllStringSubmatch(js, -1)
	if len(ids) < 5 {
		t.Fatalf("found %d element look-ups in example.js, want the form's", len(ids))
	}
	for _, m := range ids {
		if !strings.Contains(page, ` id="`+m[1]+`"`) {
			t.Errorf("example.js looks up #%s, which the page lacks", m[1])
		}
	}
	for _, want := range []string{
		`<link rel="stylesheet" href="` + assetURL("example/example.css") + `">`,
		`<script src="` + assetURL("example/example.js") + `" defer></script>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}
