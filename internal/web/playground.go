package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// DefaultQuery is the query the playground opens with when
// PlaygroundOptions.Query is empty: one device, who logged on to it, which
// other devices each of those accounts logs on to, and the device's alerts:
// the graph the service exists to answer, within the default limits (about
// ten upstream calls for the demo device; MAX_UPSTREAM_CALLS_PER_QUERY is 50).
const DefaultQuery = `# One Defender device, who logged on to it, which other devices each of
# those accounts logs on to, and the alerts the device raised.
# $id: a 40-hex device id or a computer DNS name.
# Costs in Defender calls: the details 1, logonUsers 1, alerts 1, and each
# account's machines 1 per distinct account name (shared by every device
# the account appears under, and cached). Run it twice: the second costs 0.
query Machine($id: ID!) {
  machine(id: $id) {
    id
    computerDnsName
    osPlatform
    healthStatus
    riskScore
    lastSeen
    logonUsers {
      id
      accountName
      accountDomain
      isDomainAdmin
      isOnlyNetworkUser
      logonTypes
      firstSeen
      lastSeen
      machines {
        id
        computerDnsName
        osPlatform
      }
    }
    alerts(first: 10) {
      id
      title
      severity
      status
      category
      mitreTechniques
      alertCreationTime
    }
  }
}
`

// PlaygroundOptions configures the GraphiQL page. Zero fields take the
// defaults documented on each.
type PlaygroundOptions struct {
	// Endpoint is the GraphQL URL the page queries. It must be same-origin
	// (a path such as "/query"): the page's CSP allows no other. Default
	// "/query".
	Endpoint string
	// Title is the page title and the name shown in GraphiQL's header.
	// Default "mdegraph".
	Title string
	// Query prefills the query editor. Default DefaultQuery.
	Query string
	// Variables prefills the variables editor with a JSON object, such as
	// DeviceVariables(demoID). Valid JSON is re-indented; anything else is
	// shown as it is.
	Variables string
	// Headers optionally prefills the headers editor with a JSON object,
	// such as `{"Authorization": "Bearer "}`. The editor is shown whether or
	// not this is set; its content is never saved in the browser.
	Headers string
	// NoIntrospection says the endpoint refuses schema queries
	// (INTROSPECTION=false): the page then says, above GraphiQL, why its
	// Docs pane is empty and how to turn introspection on.
	NoIntrospection bool
}

// DeviceVariables returns the variables JSON for DefaultQuery with $id set
// to deviceID, so callers need not build JSON by hand.
func DeviceVariables(deviceID string) string {
	b, _ := json.MarshalIndent(map[string]string{"id": deviceID}, "", "  ") // a map of strings always marshals
	return string(b)
}

// playgroundConfig is read by the bundle's src/index.jsx; keep the field
// names in step.
type playgroundConfig struct {
	Endpoint  string `json:"endpoint"`
	Title     string `json:"title"`
	Query     string `json:"query"`
	Variables string `json:"variables"`
	Headers   string `json:"headers"`
}

// Playground returns a handler serving the GraphiQL page for GET and HEAD,
// with SecurityHeaders applied. It answers only at the path it is mounted
// on: mounted on the subtree pattern "/", it serves "/" and 404s the rest.
// The page loads its script and stylesheet from Static under StaticPrefix.
func Playground(opts PlaygroundOptions) http.Handler {
	cfg := playgroundConfig{
		Endpoint:  orDefault(opts.Endpoint, "/query"),
		Title:     orDefault(opts.Title, "mdegraph"),
		Query:     orDefault(opts.Query, DefaultQuery),
		Variables: indentJSON(opts.Variables),
		Headers:   indentJSON(opts.Headers),
	}
	return SecurityHeaders(renderPage("playground.html", map[string]any{
		"Title":           cfg.Title,
		"Config":          configJSON(cfg),
		"CSS":             assetURL("playground/graphiql.css"),
		"JS":              assetURL("playground/graphiql.js"),
		"NoIntrospection": opts.NoIntrospection,
	}))
}

// renderPage executes the named template once. Its data comes from options
// and constants, so a failure is a programming error that the tests catch.
func renderPage(name string, data map[string]any) *page {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		panic(fmt.Sprintf("web: render %s: %v", name, err))
	}
	return newPage(buf.Bytes())
}

// configJSON encodes v for a <script type="application/json"> block.
// json.Marshal escapes <, > and & as \u003c, \u003e and \u0026, so no value
// can close the element ("</script>") or open a comment ("<!--"); the
// template.JS type tells html/template to insert it as it is.
func configJSON(v any) template.JS {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("web: encode page config: %v", err)) // plain strings always marshal
	}
	return template.JS(b)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// indentJSON re-indents valid JSON for the editors and leaves anything else
// alone, so a typo in configuration shows up in the editor rather than
// stopping the server.
func indentJSON(s string) string {
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(strings.TrimSpace(s)), "", "  ") != nil {
		return s
	}
	return buf.String()
}
