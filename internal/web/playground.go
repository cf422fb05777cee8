package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
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
	// AuthHint, when not empty, says above GraphiQL how to send a credential
	// (callerauth's Hint: the Authorization: Bearer or X-Api-Key header), for
	// an endpoint where callers sign in. A page with DemoPersons shows the
	// picker instead.
	AuthHint string
	// DemoPersons, when not empty (demo mode), puts a demo sign-in above
	// GraphiQL: a plain form (no script) whose choice reloads the page as
	// ?person=<id>; the page is then rendered for that request, with the
	// headers editor prefilled with {"Authorization": "Bearer <token>"}, the
	// token from DemoSignIn, and is never cached (Cache-Control: no-store).
	DemoPersons []DemoPerson
	// DemoSignIn returns a demo person's access token for the service, by
	// DemoPerson.ID (the simulator's SignIn). Required with DemoPersons.
	DemoSignIn func(id string) (string, error)
}

// DemoPerson is one choice of the playground's demo sign-in.
type DemoPerson struct {
	// ID is what DemoSignIn takes and the page's ?person= carries ("megan").
	ID string
	// Label is what the picker shows, e.g. "Megan Bowen (megan): device groups 12, 14, 41".
	Label string
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
// With DemoPersons, a request for ?person=<id> gets the page signed in as
// that person (an unknown id is 404, naming the persons there are; a failed
// sign-in 500, logged nowhere but the page).
func Playground(opts PlaygroundOptions) http.Handler {
	static := renderPage("playground.html", playgroundData(opts, ""))
	if len(opts.DemoPersons) == 0 || opts.DemoSignIn == nil {
		return SecurityHeaders(static)
	}
	return SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("person")
		if id == "" || !onMountedPath(r) {
			static.ServeHTTP(w, r)
			return
		}
		if !allowRead(w, r) {
			return
		}
		w.Header().Set("Cache-Control", "no-store") // the page holds a token
		if !slices.ContainsFunc(opts.DemoPersons, func(p DemoPerson) bool { return p.ID == id }) {
			if len(id) > 40 { // it is repeated in the answer: no more of it than a person's id needs
				id = id[:40] + "…"
			}
			ids := make([]string, len(opts.DemoPersons))
			for i, p := range opts.DemoPersons {
				ids[i] = p.ID
			}
			http.Error(w, fmt.Sprintf("no demo person %q: sign in as one of %s (/?person=%s), or open / to be served as the service itself",
				id, strings.Join(ids, ", "), ids[0]), http.StatusNotFound)
			return
		}
		token, err := opts.DemoSignIn(id)
		if err != nil {
			http.Error(w, "demo sign-in failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		signedIn := opts
		headers, _ := json.Marshal(map[string]string{"Authorization": "Bearer " + token}) // strings always marshal
		signedIn.Headers = string(headers)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(render("playground.html", playgroundData(signedIn, id)))
	}))
}

// playgroundData is the template data of the playground page, signed in as the demo person
// person ("" for nobody).
func playgroundData(opts PlaygroundOptions, person string) map[string]any {
	cfg := playgroundConfig{
		Endpoint:  orDefault(opts.Endpoint, "/query"),
		Title:     orDefault(opts.Title, "mdegraph"),
		Query:     orDefault(opts.Query, DefaultQuery),
		Variables: indentJSON(opts.Variables),
		Headers:   indentJSON(opts.Headers),
	}
	persons := opts.DemoPersons
	if opts.DemoSignIn == nil {
		persons = nil
	}
	return map[string]any{
		"Title":           cfg.Title,
		"Config":          configJSON(cfg),
		"CSS":             assetURL("playground/graphiql.css"),
		"JS":              assetURL("playground/graphiql.js"),
		"NoIntrospection": opts.NoIntrospection,
		"AuthHint":        opts.AuthHint,
		"Persons":         persons,
		"Person":          person,
		"Notices":         opts.NoIntrospection || opts.AuthHint != "" || len(persons) > 0,
	}
}

// renderPage executes the named template once, for a page whose content
// depends only on the options.
func renderPage(name string, data map[string]any) *page {
	return newPage(render(name, data))
}

// render executes the named template. Its data comes from options, constants
// and values of the kind the tests render, so a failure is a programming
// error that the tests catch.
func render(name string, data map[string]any) []byte {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		panic(fmt.Sprintf("web: render %s: %v", name, err))
	}
	return buf.Bytes()
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
