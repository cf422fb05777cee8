package csrf

import (
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/mdegraph/mdegraph/internal/logtest"
)

const (
	host    = "127.0.0.1:8080"
	self    = "http://" + host
	trusted = "https://soc.example.com"
	evil    = "https://evil.example"
)

// request builds a request to the service at host, headers as name, value pairs.
func request(method, target string, headers ...string) *http.Request {
	r := httptest.NewRequest(method, "http://"+host+target, nil)
	r.RemoteAddr = "192.0.2.7:51234"
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

const issueQuery = `/query?query=%7B+machine%28id%3A%22abc%22%29+%7B+logonUsers+%7B+id+%7D+%7D+%7D`

func TestCheck(t *testing.T) {
	t.Parallel()
	p, err := New(Options{TrustedOrigins: []string{trusted, "https://Dashboard.Example.com/"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		r       *http.Request
		refused Reason // "" allowed
	}{
		// What the service's own pages send (web/playground/src/index.jsx, internal/web/static/example/example.js).
		{"playground fetcher", request("POST", "/query", "Accept", "application/json", "Content-Type", "application/json",
			"Origin", self, "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "cors"), ""},
		{"example page", request("POST", "/query", "Content-Type", "application/json", "Accept", "application/json",
			"Authorization", "Bearer x", "Origin", self, "Sec-Fetch-Site", "same-origin"), ""},
		{"own page GETs a persisted query", request("GET", `/query?extensions={"persistedQuery":{"version":1,"sha256Hash":"ab"}}`,
			"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "cors"), ""},
		// Trusted frontends and non-browser clients.
		{"trusted frontend, JSON", request("POST", "/query", "Content-Type", "application/json", "Origin", trusted, "Sec-Fetch-Site", "cross-site"), ""},
		{"trusted origin configured in upper case", request("POST", "/query", "Content-Type", "application/json",
			"Origin", "https://dashboard.example.com", "Sec-Fetch-Site", "same-site"), ""},
		{"trusted frontend, GET with Apollo-Require-Preflight", request("GET", issueQuery, "Apollo-Require-Preflight", "true",
			"Origin", trusted, "Sec-Fetch-Site", "cross-site"), ""},
		{"curl POST JSON", request("POST", "/query", "Content-Type", "application/json; charset=utf-8"), ""},
		{"curl GET with Apollo-Require-Preflight", request("GET", issueQuery, "Apollo-Require-Preflight", "true"), ""},
		{"curl GET with X-Requested-With", request("GET", issueQuery, "X-Requested-With", "XMLHttpRequest"), ""},
		{"curl GET with X-Apollo-Operation-Name", request("GET", issueQuery, "X-Apollo-Operation-Name", "Machine"), ""},
		{"curl GET with an API key", request("GET", issueQuery, "X-Api-Key", "mdg_x"), ""},
		{"GET with Content-Type: application/json", request("GET", issueQuery, "Content-Type", "application/json"), ""},
		{"CORS preflight from anywhere", request("OPTIONS", "/query", "Origin", evil, "Access-Control-Request-Method", "POST",
			"Sec-Fetch-Site", "cross-site"), ""},
		{"browser without Sec-Fetch-Site, same origin", request("POST", "/query", "Content-Type", "application/json", "Origin", self), ""},

		// The issue's reproduction and its kind.
		{"the issue's curl: GET with Origin evil.example", request("GET", issueQuery, "Origin", evil), ReasonCrossOrigin},
		{"plain curl GET", request("GET", issueQuery), ReasonSimpleRequest},
		// Methods that run no operation pass, to be answered 405 by the endpoint.
		{"HEAD", request("HEAD", issueQuery), ""},
		{"HEAD from another site", request("HEAD", issueQuery, "Origin", evil, "Sec-Fetch-Site", "cross-site"), ""},
		{"PUT from another site", request("PUT", "/query", "Content-Type", "text/plain", "Origin", evil), ""},
		{"DELETE", request("DELETE", issueQuery), ""},
		{"<img src> on another site", request("GET", issueQuery, "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors",
			"Sec-Fetch-Dest", "image"), ReasonCrossOrigin},
		{"<form method=post> on another site", request("POST", "/query", "Content-Type", "application/x-www-form-urlencoded",
			"Origin", evil, "Sec-Fetch-Site", "cross-site"), ReasonCrossOrigin},
		{"fetch no-cors text/plain from another site", request("POST", "/query", "Content-Type", "text/plain;charset=UTF-8",
			"Origin", evil, "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors"), ReasonCrossOrigin},
		{"JSON from an untrusted site (preflight bypassed or CORS misread)", request("POST", "/query", "Content-Type", "application/json",
			"Origin", evil, "Sec-Fetch-Site", "cross-site"), ReasonCrossOrigin},
		{"sibling subdomain (same-site) not trusted", request("POST", "/query", "Content-Type", "application/json",
			"Origin", "https://wiki.example.com", "Sec-Fetch-Site", "same-site"), ReasonCrossOrigin},
		{"old browser, another origin", request("POST", "/query", "Content-Type", "application/json", "Origin", evil), ReasonCrossOrigin},
		{"trusted origin, text/plain without custom header", request("POST", "/query", "Content-Type", "text/plain",
			"Origin", trusted, "Sec-Fetch-Site", "cross-site"), ReasonSimpleRequest},
		{"link from a mail client (Sec-Fetch-Site: none)", request("GET", issueQuery, "Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate"), ReasonSimpleRequest},
		{"text/plain with a bad parameter", request("POST", "/query", "Content-Type", "text/plain; charset"), ReasonSimpleRequest},
		{"TEXT/PLAIN in capitals with spaces", request("POST", "/query", "Content-Type", "  TEXT/PLAIN ; x=y"), ReasonSimpleRequest},
		{"multipart form", request("POST", "/query", "Content-Type", "multipart/form-data; boundary=x"), ReasonSimpleRequest},
		{"two Content-Types, one safelisted", request("POST", "/query", "Content-Type", "application/json", "Content-Type", "text/plain"), ReasonSimpleRequest},
		{"empty Content-Type", request("POST", "/query", "Content-Type", ""), ReasonSimpleRequest},
		{"empty Apollo-Require-Preflight", request("GET", issueQuery, "Apollo-Require-Preflight", ""), ReasonSimpleRequest},
		{"Authorization: Basic a browser attached by itself", request("GET", issueQuery, "Authorization", "Basic eDp5"), ReasonSimpleRequest},
		{"a cookie", request("GET", issueQuery, "Cookie", "session=1"), ReasonSimpleRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.r)
			switch {
			case tt.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.refused != "" && err == nil:
				t.Errorf("allowed, want refused (%s)", tt.refused)
			case tt.refused != "":
				if e, ok := err.(*Error); !ok || e.Reason != tt.refused {
					t.Errorf("refused with %v, want reason %s", err, tt.refused)
				}
			}
		})
	}
}

func TestAnyOrigin(t *testing.T) {
	t.Parallel()
	p, err := New(Options{TrustedOrigins: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(request("POST", "/query", "Content-Type", "application/json", "Origin", evil, "Sec-Fetch-Site", "cross-site")); err != nil {
		t.Errorf("CORS_ORIGINS=*: JSON from any site refused: %v", err)
	}
	for _, r := range []*http.Request{
		request("GET", issueQuery, "Origin", evil, "Sec-Fetch-Site", "cross-site"),
		request("POST", "/query", "Content-Type", "text/plain", "Origin", evil, "Sec-Fetch-Site", "cross-site"),
	} {
		if err := p.Check(r); err == nil {
			t.Errorf("CORS_ORIGINS=*: a simple %s from another site allowed", r.Method)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, o := range []string{"soc.example.com", "https://soc.example.com/app", "https://"} {
		if _, err := New(Options{TrustedOrigins: []string{o}}); err == nil || !strings.Contains(err.Error(), "CORS_ORIGINS") {
			t.Errorf("New(%q) = %v, want an error naming CORS_ORIGINS", o, err)
		}
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var logs logtest.Buffer
		var refusals []Reason
		p, err := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnRefusal: func(r Reason) { refusals = append(refusals, r) }})
		if err != nil {
			t.Fatal(err)
		}
		served := 0
		h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
		for range 3 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request("GET", issueQuery, "Origin", evil))
			if rec.Code != http.StatusForbidden || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("answer %d %v, want 403 JSON no-store", rec.Code, rec.Header())
			}
			var body struct {
				Errors []struct {
					Message    string
					Extensions struct{ Code, Reason string }
				}
				Data json.RawMessage
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Extensions.Code != Code ||
				body.Errors[0].Extensions.Reason != string(ReasonCrossOrigin) || !strings.Contains(body.Errors[0].Message, evil) || body.Data != nil {
				t.Fatalf("body %s, want one CSRF_REFUSED error naming the origin, no data", rec.Body)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, request("GET", issueQuery))
		if !strings.Contains(rec.Body.String(), "Apollo-Require-Preflight: true") {
			t.Errorf("the refusal of a plain GET does not say which header to add: %s", rec.Body)
		}
		h.ServeHTTP(httptest.NewRecorder(), request("POST", "/query", "Content-Type", "application/json"))
		if served != 1 {
			t.Errorf("next ran %d times, want once (the JSON POST)", served)
		}
		if n := strings.Count(logs.String(), "cross-site request forgery"); n != 2 {
			t.Errorf("%d warnings for 3 cross-origin and 1 simple request from one client, want 2:\n%s", n, logs.String())
		}
		if len(refusals) != 4 {
			t.Errorf("OnRefusal called %d times, want 4", len(refusals))
		}
	})
}

// FuzzContentType checks the safelist against Go's own MIME parser: every Content-Type whose
// media type mime.ParseMediaType reads as one of the CORS-safelisted three (even with a
// parameter error) makes a simple request.
func FuzzContentType(f *testing.F) {
	for _, s := range []string{"text/plain", "text/plain; charset", "Text/Plain;x=\"", "application/json", "multipart/form-data; boundary=", " application/x-www-form-urlencoded ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		r := request("POST", "/query")
		r.Header["Content-Type"] = []string{ct}
		simple := IsSimpleRequest(r)
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil && err != mime.ErrInvalidMediaParameter {
			return
		}
		switch mt {
		case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
			if !simple {
				t.Fatalf("Content-Type %q (media type %s) not treated as a simple request", ct, mt)
			}
		}
	})
}
