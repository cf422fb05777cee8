package app_test

// Reproductions of the reports in issue 11 ("Faithful when Defender or Entra ID misbehave"):
// the service configured as for a real tenant (MDE_API_URL, MDE_TOKEN_URL), against an
// httptest fake of Entra ID and Defender whose every answer each test chooses.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdegraph/mdegraph/internal/app"
	"github.com/mdegraph/mdegraph/internal/defender"
)

// reply is how the fake answers one kind of call.
type reply string

const (
	replyOK       reply = "200"
	replyNotFound reply = "404"
	reply429      reply = "429"
	reply500      reply = "500"
	replyDenied   reply = "403"
	replyUnauth   reply = "401"
	replyAbort    reply = "network" // the connection is dropped without an answer
	replyHang     reply = "hang"    // no answer until the caller gives up
)

const (
	scriptedTenant = "contoso.onmicrosoft.com"
	fakeID         = "0123456789abcdef0123456789abcdef01234567"
	fakeName       = "desk-1.contoso.local"
)

// scriptedUpstream is Entra ID's token endpoint and Defender's machines API for one device.
type scriptedUpstream struct {
	srv *httptest.Server

	mu        sync.Mutex
	replies   map[string]reply // by call: "token", "machine", "logonusers"
	tokenLife int              // expires_in of the tokens it issues
	calls     map[string]int
}

func newScriptedUpstream(t *testing.T) *scriptedUpstream {
	t.Helper()
	f := &scriptedUpstream{replies: map[string]reply{}, calls: map[string]int{}, tokenLife: 3599}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /"+scriptedTenant+"/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		if !f.answer(w, r, "token") {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"access_token":"fake-token"}`, f.life())
	})
	mux.HandleFunc("GET /api/machines/{ref}", func(w http.ResponseWriter, r *http.Request) {
		ref := r.PathValue("ref")
		if ref != fakeID && ref != fakeName {
			writeDefenderError(w, http.StatusNotFound, "ResourceNotFound")
			return
		}
		if !f.answer(w, r, "machine") {
			return
		}
		writeJSON(w, map[string]any{"id": fakeID, "computerDnsName": fakeName, "osPlatform": "Windows11",
			"machineTags": []string{"vip"}, "ipAddresses": []any{}})
	})
	mux.HandleFunc("GET /api/machines/{id}/logonusers", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != fakeID {
			writeDefenderError(w, http.StatusNotFound, "ResourceNotFound")
			return
		}
		if !f.answer(w, r, "logonusers") {
			return
		}
		writeJSON(w, map[string]any{"value": []map[string]any{{"id": `contoso\jdoe`, "accountName": "jdoe",
			"accountDomain": "contoso", "logonTypes": "Interactive", "isDomainAdmin": false}}})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *scriptedUpstream) set(call string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[call] = r
}

func (f *scriptedUpstream) life() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenLife
}

func (f *scriptedUpstream) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[call]
}

// answer counts the call and writes its failure; it reports whether the call should succeed.
func (f *scriptedUpstream) answer(w http.ResponseWriter, r *http.Request, call string) bool {
	f.mu.Lock()
	f.calls[call]++
	rep := f.replies[call]
	f.mu.Unlock()
	switch rep {
	case "", replyOK:
		return true
	case replyAbort:
		panic(http.ErrAbortHandler)
	case replyHang:
		<-r.Context().Done()
		return false
	}
	status := map[reply]int{replyNotFound: 404, reply429: 429, reply500: 500, replyDenied: 403, replyUnauth: 401}[rep]
	if call == "token" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":"temporarily_unavailable","error_description":"AADSTS90033: A transient error has occurred."}`)
		return false
	}
	if status == 429 {
		w.Header().Set("Retry-After", "120") // longer than QUOTA_MAX_WAIT: the family is paused
	}
	writeDefenderError(w, status, map[int]string{404: "ResourceNotFound", 429: "TooManyRequests", 500: "InternalServerError",
		403: "Forbidden", 401: "Unauthorized"}[status])
	return false
}

func writeDefenderError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":"fake %d","target":"corr-%d"}}`, code, status, status)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	_ = json.NewEncoder(w).Encode(v)
}

// env configures the service for the fake, plus extra settings.
func (f *scriptedUpstream) env(extra map[string]string) map[string]string {
	env := map[string]string{
		"MDE_TENANT_ID": scriptedTenant, "MDE_CLIENT_ID": "app-1", "MDE_CLIENT_SECRET": "right-secret",
		"MDE_API_URL": f.srv.URL, "MDE_TOKEN_URL": f.srv.URL + "/" + scriptedTenant + "/oauth2/v2.0/token",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// answer is a whole GraphQL answer.
type answer struct {
	status int
	header http.Header
	Data   map[string]json.RawMessage `json:"data"`
	Errors []gqlError                 `json:"errors"`
	Ext    struct {
		Stale []struct {
			Path       []any  `json:"path"`
			AgeSeconds *int   `json:"ageSeconds"`
			Reason     string `json:"reason"`
		} `json:"stale"`
		Quota map[string]json.RawMessage `json:"quota"`
	} `json:"extensions"`
}

func ask(t *testing.T, s *service, query string, header http.Header) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return a
}

// errorsAt lists the answer's errors as "CODE@path".
func (a answer) errorsAt() []string {
	var out []string
	for _, e := range a.Errors {
		code, _ := e.Extensions["code"].(string)
		var p []string
		for _, el := range e.Path {
			p = append(p, fmt.Sprint(el))
		}
		out = append(out, code+"@"+strings.Join(p, "."))
	}
	return out
}

// machine decodes data.machine; nil when it is null.
func (a answer) machine(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(a.Data["machine"], &m); err != nil {
		t.Fatalf("data.machine %s: %v", a.Data["machine"], err)
	}
	return m
}

// Selections of the matrix, by what they make the service call.
const (
	selUsers        = `{ machine(id: "` + fakeID + `") { id logonUsers { id } } }`
	selDetails      = `{ machine(id: "` + fakeID + `") { computerDnsName machineTags } }`
	selBoth         = `{ machine(id: "` + fakeID + `") { computerDnsName logonUsers { id } } }`
	selBothByName   = `{ machine(id: "` + fakeName + `") { id computerDnsName logonUsers { id } } }`
	codeUnavailable = "UPSTREAM_UNAVAILABLE"
)

// TestPartialAnswers runs every combination of the details call (GET /api/machines/{id}) and
// the logonusers call answering 200, 404, 429 or 500, for each kind of selection, and checks
// the answer against the rules Query.machine documents: a device Defender does not know is
// null with one NOT_FOUND; a device no call could be had for is null with one error per failed
// call; otherwise a failed call nulls only its own fields, with one error at their path.
func TestPartialAnswers(t *testing.T) {
	t.Parallel()
	replies := []reply{replyOK, replyNotFound, reply429, reply500}
	codeOf := map[reply]string{replyNotFound: "NOT_FOUND", reply429: "RATE_LIMITED", reply500: codeUnavailable}
	for _, sel := range []string{selUsers, selDetails, selBoth, selBothByName} {
		for _, d := range replies {
			for _, u := range replies {
				var (
					wantNull    bool
					wantErrors  []string // CODE@path; "*@path" for an error whose code errors.go decides
					wantDetails bool     // computerDnsName has its value
					wantUsers   bool     // logonUsers has its value
					wantCalls   = map[string]int{}
				)
				usesDetails := sel != selUsers
				usesUsers := sel != selDetails
				if usesDetails {
					wantCalls["machine"] = 1
				}
				switch {
				case !usesDetails: // logonUsers alone: its call is all there is
					wantCalls["logonusers"] = 1
					wantUsers = u == replyOK
					wantNull = !wantUsers
					if !wantUsers {
						wantErrors = []string{codeOf[u] + "@machine.logonUsers"}
					}
				case !usesUsers:
					wantDetails = d == replyOK
					wantNull = !wantDetails
					if !wantDetails {
						wantErrors = []string{codeOf[d] + "@machine"}
					}
				case d == replyNotFound || d != replyOK && sel == selBothByName:
					// Unknown device, or a name that cannot be resolved to an id: no logonusers call.
					wantNull, wantErrors = true, []string{codeOf[d] + "@machine"}
				default:
					wantCalls["logonusers"] = 1
					wantDetails, wantUsers = d == replyOK, u == replyOK
					switch {
					case d == replyOK && u == replyOK:
					case d == replyOK && u == replyNotFound:
						// The device exists: a 404 for its users is not "no such device".
						wantErrors = []string{"*@machine.logonUsers"}
					case d == replyOK && u != replyOK:
						wantErrors = []string{codeOf[u] + "@machine.logonUsers"}
					case u == replyOK: // d failed
						wantErrors = []string{codeOf[d] + "@machine"}
					case u == replyNotFound: // the only evidence: the device is unknown
						wantNull, wantErrors = true, []string{"NOT_FOUND@machine.logonUsers"}
					default: // both failed
						wantNull, wantErrors = true, []string{codeOf[d] + "@machine", codeOf[u] + "@machine.logonUsers"}
					}
				}
				if !usesDetails && d != replyOK || !usesUsers && u != replyOK {
					continue // the same answer as with that call answering 200
				}
				name := fmt.Sprintf("%s/details %s/logonusers %s", map[string]string{selUsers: "users only", selDetails: "details only",
					selBoth: "details and users", selBothByName: "by name"}[sel], d, u)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					f := newScriptedUpstream(t)
					f.set("machine", d)
					f.set("logonusers", u)
					s := newService(t, f.env(nil), app.Options{})
					a := ask(t, s, sel, nil)

					got := a.errorsAt()
					match := len(got) == len(wantErrors)
					for i := 0; match && i < len(got); i++ {
						w := wantErrors[i]
						match = got[i] == w || strings.HasPrefix(w, "*@") && strings.HasSuffix(got[i], w[1:])
					}
					if !match {
						t.Errorf("errors %v, want %v (%+v)", got, wantErrors, a.Errors)
					}
					if wantNull {
						if string(a.Data["machine"]) != "null" {
							t.Errorf("machine = %s, want null", a.Data["machine"])
						}
					} else {
						m := a.machine(t)
						if m == nil {
							t.Fatalf("machine = null, want it with what was fetched")
						}
						if sel != selDetails && string(m["id"]) != `"`+fakeID+`"` && sel != selBoth {
							t.Errorf("id = %s, want %s", m["id"], fakeID)
						}
						if usesDetails {
							if got, want := string(m["computerDnsName"]), map[bool]string{true: `"` + fakeName + `"`, false: "null"}[wantDetails]; got != want {
								t.Errorf("computerDnsName = %s, want %s", got, want)
							}
						}
						if usesUsers {
							if got, want := string(m["logonUsers"]), map[bool]string{true: `[{"id":"contoso\\jdoe"}]`, false: "null"}[wantUsers]; got != want {
								t.Errorf("logonUsers = %s, want %s", got, want)
							}
						}
					}
					for _, call := range []string{"machine", "logonusers"} {
						if got := f.count(call); got < wantCalls[call] || wantCalls[call] == 0 && got != 0 {
							t.Errorf("%s calls = %d, want %d", call, got, wantCalls[call])
						}
					}
				})
			}
		}
	}
}

// TestPartialAnswersAsReported are the two reports, exactly.
func TestPartialAnswersAsReported(t *testing.T) {
	t.Parallel()
	t.Run("details 200, logonusers 404", func(t *testing.T) {
		t.Parallel()
		f := newScriptedUpstream(t)
		f.set("logonusers", replyNotFound)
		s := newService(t, f.env(nil), app.Options{})
		a := ask(t, s, `{ machine(id: "`+fakeID+`") { computerDnsName logonUsers { id } } }`, nil)
		if got := string(a.Data["machine"]); got != `{"computerDnsName":"`+fakeName+`","logonUsers":null}` {
			t.Errorf("machine = %s, want the details kept and logonUsers null", got)
		}
		// The device is known, so the 404 is not "no such device": UPSTREAM_UNAVAILABLE, worded
		// after the logonusers call.
		if len(a.Errors) != 1 || fmt.Sprint(a.Errors[0].Path) != "[machine logonUsers]" || a.Errors[0].Extensions["correlationId"] != "corr-404" ||
			a.Errors[0].Extensions["code"] != "UPSTREAM_UNAVAILABLE" || !strings.Contains(a.Errors[0].Message, "logon users") {
			t.Errorf("errors %+v, want one UPSTREAM_UNAVAILABLE about the logon users, at machine.logonUsers, with Defender's correlation id", a.Errors)
		}
	})
	t.Run("logonusers quota spent", func(t *testing.T) {
		t.Parallel()
		f := newScriptedUpstream(t)
		s := newService(t, f.env(map[string]string{"STALE_TTL": "0"}), app.Options{})
		s.app.Quota.Pause(string(defender.EndpointLogonUsers), time.Now().Add(time.Hour))
		a := ask(t, s, `{ machine(id: "`+fakeID+`") { computerDnsName logonUsers { id } } }`, nil)
		if got := string(a.Data["machine"]); got != `{"computerDnsName":"`+fakeName+`","logonUsers":null}` {
			t.Errorf("machine = %s, want the details that were paid for, logonUsers null", got)
		}
		if got := a.errorsAt(); !slices.Equal(got, []string{"RATE_LIMITED@machine.logonUsers"}) {
			t.Errorf("errors %v, want one RATE_LIMITED at machine.logonUsers", got)
		}
		if n := f.count("machine"); n != 1 {
			t.Errorf("machine calls = %d, want 1", n)
		}
	})
	t.Run("logonusers 404 for a device the cache knows", func(t *testing.T) {
		t.Parallel()
		f := newScriptedUpstream(t)
		f.set("logonusers", replyNotFound)
		s := newService(t, f.env(nil), app.Options{})
		ask(t, s, selDetails, nil) // the device's details are now cached
		a := ask(t, s, selUsers, nil)
		if len(a.Errors) != 1 || fmt.Sprint(a.Errors[0].Path) != "[machine logonUsers]" || a.Errors[0].Extensions["correlationId"] != "corr-404" {
			t.Errorf("errors %+v, want one at machine.logonUsers with Defender's correlation id", a.Errors)
		}
		if string(a.Data["machine"]) != "null" {
			t.Errorf("machine = %s, want null: nothing was had for it", a.Data["machine"])
		}
	})
}

// TestStaleAnswers: once Defender answered, a later failure that says nothing about the answer
// gets the last good answer, marked in extensions.stale with its path, age and reason; a
// refusal or a 404 gets the error; so does a client that opts out.
func TestStaleAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fail       func(*scriptedUpstream, *service)
		env        map[string]string
		header     http.Header
		query      string
		wantReason string   // "" for no stale answer
		wantErrors []string // without a stale answer
		wantPaths  []string // served stale; default machine.logonUsers
	}{
		{name: "logonusers quota spent", fail: func(_ *scriptedUpstream, s *service) {
			s.app.Quota.Pause(string(defender.EndpointLogonUsers), time.Now().Add(time.Hour))
		}, wantReason: "RATE_LIMITED"},
		{name: "Defender answers 429", fail: func(f *scriptedUpstream, _ *service) { f.set("logonusers", reply429) }, wantReason: "RATE_LIMITED"},
		{name: "Defender answers 500", fail: func(f *scriptedUpstream, _ *service) { f.set("logonusers", reply500) }, wantReason: codeUnavailable},
		{name: "Defender cannot be reached", fail: func(f *scriptedUpstream, _ *service) { f.set("logonusers", replyAbort) }, wantReason: codeUnavailable},
		{name: "Defender does not answer in time", env: map[string]string{"REQUEST_TIMEOUT": "300ms"},
			fail: func(f *scriptedUpstream, _ *service) { f.set("logonusers", replyHang) }, wantReason: codeUnavailable},
		{name: "the token endpoint is down", env: map[string]string{}, fail: func(f *scriptedUpstream, _ *service) {
			f.set("token", reply500)
		}, wantReason: codeUnavailable},
		{name: "details: Defender answers 500", query: selDetails, fail: func(f *scriptedUpstream, _ *service) { f.set("machine", reply500) },
			wantReason: codeUnavailable, wantPaths: []string{"machine"}},
		{name: "details stale, logon users fresh", query: selBoth, fail: func(f *scriptedUpstream, _ *service) { f.set("machine", reply500) },
			wantReason: codeUnavailable, wantPaths: []string{"machine"}},
		{name: "details and logon users stale", query: selBoth, fail: func(f *scriptedUpstream, _ *service) {
			f.set("machine", reply500)
			f.set("logonusers", reply500)
		}, wantReason: codeUnavailable, wantPaths: []string{"machine", "machine.logonUsers"}},
		{name: "stale details prove nothing against a fresh 404", query: selBoth, fail: func(f *scriptedUpstream, _ *service) {
			f.set("machine", reply500)
			f.set("logonusers", replyNotFound)
		}, wantErrors: []string{"NOT_FOUND@machine.logonUsers"}},
		{name: "Defender answers 404", fail: func(f *scriptedUpstream, _ *service) { f.set("logonusers", replyNotFound) },
			wantErrors: []string{"NOT_FOUND@machine.logonUsers"}},
		{name: "Defender answers 403", fail: func(f *scriptedUpstream, _ *service) { f.set("logonusers", replyDenied) },
			wantErrors: []string{"FORBIDDEN@machine.logonUsers"}},
		{name: "Defender answers 401", fail: func(f *scriptedUpstream, _ *service) { f.set("logonusers", replyUnauth) },
			wantErrors: []string{"UPSTREAM_UNAUTHORIZED@machine.logonUsers"}},
		{name: "the client opts out", header: http.Header{"Cache-Control": {"stale-if-error=0"}},
			fail:       func(f *scriptedUpstream, _ *service) { f.set("logonusers", reply500) },
			wantErrors: []string{"UPSTREAM_UNAVAILABLE@machine.logonUsers"}},
		{name: "STALE_TTL=0", env: map[string]string{"STALE_TTL": "0"},
			fail:       func(f *scriptedUpstream, _ *service) { f.set("logonusers", reply500) },
			wantErrors: []string{"UPSTREAM_UNAVAILABLE@machine.logonUsers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newScriptedUpstream(t)
			f.tokenLife = 5                            // every call needs a new token: within oauth2's 10 s margin
			env := map[string]string{"CACHE_TTL": "0"} // nothing is fresh a moment later
			for k, v := range tt.env {
				env[k] = v
			}
			s := newService(t, f.env(env), app.Options{})
			q := tt.query
			if q == "" {
				q = selUsers
			}
			first := ask(t, s, q, nil)
			if len(first.Errors) > 0 || len(first.Ext.Stale) > 0 {
				t.Fatalf("first answer: %+v %+v", first.Errors, first.Ext.Stale)
			}
			tt.fail(f, s)
			a := ask(t, s, q, tt.header)
			if tt.wantReason == "" {
				if got := a.errorsAt(); !slices.Equal(got, tt.wantErrors) {
					t.Errorf("errors %v, want %v", got, tt.wantErrors)
				}
				if len(a.Ext.Stale) > 0 || string(a.Data["machine"]) != "null" {
					t.Errorf("machine %s, extensions.stale %+v: want null and nothing stale", a.Data["machine"], a.Ext.Stale)
				}
				return
			}
			if len(a.Errors) > 0 {
				t.Fatalf("errors %+v, want the stale answer", a.Errors)
			}
			if string(a.Data["machine"]) != string(first.Data["machine"]) {
				t.Errorf("machine = %s, want the last good answer %s", a.Data["machine"], first.Data["machine"])
			}
			wantPaths := tt.wantPaths
			if wantPaths == nil {
				wantPaths = []string{"machine.logonUsers"}
			}
			var gotPaths []string
			for _, st := range a.Ext.Stale {
				var p []string
				for _, el := range st.Path {
					p = append(p, fmt.Sprint(el))
				}
				gotPaths = append(gotPaths, strings.Join(p, "."))
				if st.Reason != tt.wantReason || st.AgeSeconds == nil || *st.AgeSeconds > 60 {
					t.Errorf("extensions.stale entry %+v, want reason %s and an age of a few seconds", st, tt.wantReason)
				}
			}
			if !slices.Equal(gotPaths, wantPaths) {
				t.Errorf("extensions.stale paths %v, want %v", gotPaths, wantPaths)
			}
			rec := httptest.NewRecorder()
			s.app.Metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if want := `mdegraph_stale_answers_total{endpoint=`; !strings.Contains(rec.Body.String(), want) ||
				!strings.Contains(grep(rec.Body.String(), "mdegraph_stale_answers_total{"), `reason="`+tt.wantReason+`"} `) {
				t.Errorf("metrics do not count the stale answer:\n%s", grep(rec.Body.String(), "mdegraph_stale_answers_total"))
			}
		})
	}
}

// TestQuotaFigures: Query.quota and extensions.quota are one reading, taken after the query's
// own calls, in one shape.
func TestQuotaFigures(t *testing.T) {
	t.Parallel()
	f := newScriptedUpstream(t)
	s := newService(t, f.env(nil), app.Options{})
	a := ask(t, s, `{ machine(id: "`+fakeID+`") { logonUsers { id } }
		quota { endpoint call minute { limit used remaining seconds } hour { limit used remaining seconds } nextSlotAt nextSlotSeconds pausedUntil queued } }`, nil)
	if len(a.Errors) > 0 {
		t.Fatalf("errors: %+v", a.Errors)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(a.Data["quota"], &list); err != nil {
		t.Fatal(err)
	}
	if n := len(defender.Endpoints); len(list) != n || len(a.Ext.Quota) != n {
		t.Fatalf("Query.quota has %d families, extensions.quota %d; want %d each", len(list), len(a.Ext.Quota), n)
	}
	for _, q := range list {
		var endpoint string
		json.Unmarshal(q["endpoint"], &endpoint)
		field, _ := json.Marshal(q)
		ext, _ := json.Marshal(a.Ext.Quota[endpoint])
		var fieldAny, extAny any
		json.Unmarshal(field, &fieldAny)
		json.Unmarshal(ext, &extAny)
		if fmt.Sprint(fieldAny) != fmt.Sprint(extAny) {
			t.Errorf("%s: Query.quota %s, extensions.quota %s: want the same", endpoint, field, ext)
		}
		if endpoint == string(defender.EndpointLogonUsers) && !strings.Contains(string(q["minute"]), `"used":1`) {
			t.Errorf("logonusers minute = %s: the query's own call is missing", q["minute"])
		}
	}
}
