package web

import "net/http"

// ExampleOptions configures the example frontend page.
type ExampleOptions struct {
	// Endpoint is the GraphQL URL the page queries; same-origin, default
	// "/query".
	Endpoint string
	// DeviceID prefills the device id input, typically the demo device.
	DeviceID string
}

// exampleConfig is read by static/example/example.js; keep the field names
// in step.
type exampleConfig struct {
	Endpoint string `json:"endpoint"`
}

// Example returns a handler serving the example frontend for GET and HEAD,
// with SecurityHeaders applied: a plain HTML form that looks a device up with
// fetch and renders its logged-on users, their other devices and its alerts.
// Like Playground it answers only at the path it is mounted on, and loads its
// assets from Static.
//
// The page gives the elements a browser test drives stable ids, each also
// set as data-testid: #device-id (input), #lookup (button), #message (shown
// for every failure, with data-kind and data-code), #device, #device-name,
// #users (the table; one tbody row per user, whose last cell,
// data-testid="user-machines", names the other devices the account logs on
// to; #no-users when there are none, #users-unavailable when they could not
// be fetched), #alerts (one row per alert, data-testid="alert-row";
// #no-alerts, #alerts-unavailable), and the "stale (N s old)" badges
// #device-stale, #users-stale and #alerts-stale (and one per user's devices),
// shown for the parts extensions.stale lists. The body's data-state is "idle", "loading", "ok",
// "partial" (a device with a part missing, #message saying why) or "error".
func Example(opts ExampleOptions) http.Handler {
	cfg := exampleConfig{Endpoint: orDefault(opts.Endpoint, "/query")}
	return SecurityHeaders(renderPage("example.html", map[string]any{
		"Endpoint": cfg.Endpoint,
		"DeviceID": opts.DeviceID,
		"Config":   configJSON(cfg),
		"CSS":      assetURL("example/example.css"),
		"JS":       assetURL("example/example.js"),
	}))
}
