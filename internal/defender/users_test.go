package defender

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseAccountName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"jdoe", true}, {"sql service", true}, {"o'brien", true}, {"jürgen", true}, {"田中", true},
		{"Administrator", true}, {"adm-jdoe", true}, {"a.b", true}, {"$svc", true}, {"a%2Fb", true}, {"a?b#c", true},
		{strings.Repeat("a", 256), true},

		{"", false}, {"   ", false}, {strings.Repeat("a", 257), false}, {`contoso\jdoe`, false}, {"jdoe@contoso.com", false},
		{"a/b", false}, {"../x", false}, {".", false}, {"..", false}, {"a\x00b", false}, {"a\nb", false}, {"a\u0085b", false},
		{"a\xffb", false},
	}
	for _, tt := range tests {
		name, err := ParseAccountName(tt.in)
		switch {
		case tt.ok && (err != nil || name.String() != tt.in):
			t.Errorf("ParseAccountName(%q) = %q, %v; want it as given", tt.in, name, err)
		case !tt.ok && err == nil:
			t.Errorf("ParseAccountName(%q) = %q; want an error", tt.in, name)
		case !tt.ok:
			errorAs[*InvalidInputError](t, err)
		}
	}
}

// TestUserMachines: the bare account name is one path segment however it is spelled, and
// reaches the server exactly as given; the answer's machines decode like GET /api/machines's.
func TestUserMachines(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, rawPath string }{
		{"jdoe", "/api/users/jdoe/machines"},
		{"sql service", "/api/users/sql%20service/machines"},
		{"jürgen", "/api/users/j%C3%BCrgen/machines"},
		{"a?b#c%d", "/api/users/a%3Fb%23c%25d/machines"},
		{"o'brien", "/api/users/o%27brien/machines"},
	} {
		client, mux := setup(t)
		mux.HandleFunc("GET /api/users/{name}/machines", func(w http.ResponseWriter, r *http.Request) {
			assertEqual(t, "account name", r.PathValue("name"), tt.name)
			if got := strings.TrimPrefix(r.URL.EscapedPath(), baseURLPath); got != tt.rawPath {
				t.Errorf("%q: path %s, want %s", tt.name, got, tt.rawPath)
			}
			fmt.Fprintf(w, `{"@odata.context":"x","value":[%s]}`, machineJSON)
		})
		ms, resp, err := client.Users.Machines(t.Context(), tt.name)
		if err != nil {
			t.Fatalf("%q: %v", tt.name, err)
		}
		assertEqual(t, "attempts", resp.Attempts, 1)
		if len(ms) != 1 || ms[0].ID != deviceID {
			t.Errorf("%q: machines %+v, want %s", tt.name, ms, deviceID)
		}
	}
}

func TestUserMachines_UnknownAndInvalid(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	calls := 0
	mux.HandleFunc("GET /api/users/{name}/machines", func(w http.ResponseWriter, r *http.Request) {
		calls++
		fmt.Fprint(w, `{"value":[]}`)
	})
	ms, _, err := client.Users.Machines(t.Context(), "nobody")
	if err != nil || ms == nil || len(ms) != 0 {
		t.Errorf("unknown user: %#v, %v; want an empty list", ms, err)
	}
	for _, bad := range []string{`contoso\jdoe`, "jdoe@contoso.com", "../machines", ""} {
		if _, _, err := client.Users.Machines(t.Context(), bad); err == nil {
			t.Errorf("%q: no error", bad)
		} else {
			errorAs[*InvalidInputError](t, err)
		}
	}
	assertEqual(t, "calls", calls, 1)
}

func TestAlerts(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	mux.HandleFunc("GET /api/machines/{id}/alerts", func(w http.ResponseWriter, r *http.Request) {
		assertEqual(t, "id", r.PathValue("id"), deviceID)
		fmt.Fprint(w, `{"@odata.context":"x","value":[
  {"id":"da637472900382838869_1364969609","incidentId":1126093,"investigationId":null,"severity":"High","status":"New",
   "classification":null,"determination":null,"category":"CredentialAccess","title":"Credential dumping activity observed",
   "description":"d","detectionSource":"WindowsDefenderAtp","alertCreationTime":"2021-01-26T20:33:57.7220239Z",
   "firstEventTime":"2021-01-26T20:31:32.9562661Z","lastEventTime":"2021-01-26T20:31:33.0577322Z",
   "lastUpdateTime":"2021-01-26T20:33:59.2Z","resolvedTime":null,"machineId":"`+deviceID+`",
   "computerDnsName":"host-1.contoso.com","threatName":null,"mitreTechniques":["T1003.001"],
   "relatedUser":{"userName":"jdoe","domainName":"CONTOSO"},"futureField":{"x":1}},
  {"id":"b","incidentId":"42","severity":"UnSpecified","status":"Resolved","classification":"FalsePositive",
   "determination":"NotMalicious","mitreTechniques":null,"relatedUser":null}]}`)
	})
	alerts, _, err := client.Machines.Alerts(t.Context(), strings.ToUpper(deviceID))
	if err != nil {
		t.Fatalf("Alerts: %v", err)
	}
	if len(alerts) != 2 {
		t.Fatalf("got %d alerts, want 2", len(alerts))
	}
	a := alerts[0]
	assertEqual(t, "incidentId", *a.IncidentID, FlexInt(1126093))
	assertEqual(t, "severity", *a.Severity, "High")
	assertEqual(t, "classification nil", a.Classification == nil, true)
	assertEqual(t, "lastUpdateTime", a.LastUpdateTime.Time, time.Date(2021, 1, 26, 20, 33, 59, 200000000, time.UTC))
	assertEqual(t, "techniques", strings.Join(a.MITRETechniques, ","), "T1003.001")
	assertEqual(t, "related user", *a.RelatedUser.UserName+`\`+*a.RelatedUser.DomainName, `jdoe\CONTOSO`)
	b := alerts[1]
	assertEqual(t, "incidentId from a string", *b.IncidentID, FlexInt(42))
	assertEqual(t, "determination", *b.Determination, "NotMalicious")
	assertEqual(t, "no related user", b.RelatedUser == nil, true)
}

func TestAlerts_NotFoundAndNames(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	mux.HandleFunc("GET /api/machines/{id}/alerts", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":"ResourceNotFound","message":"Machine x was not found","target":"c-1"}}`)
	})
	_, _, err := client.Machines.Alerts(t.Context(), deviceID)
	er := errorAs[*ErrorResponse](t, err)
	assertEqual(t, "endpoint", er.Endpoint, EndpointAlerts)
	assertEqual(t, "machine", er.Machine, MachineRef(deviceID))
	assertEqual(t, "not found", IsNotFound(err), true)
	// The alerts of a device are asked for by its id; a name is resolved first.
	_, _, err = client.Machines.Alerts(t.Context(), "host-1.contoso.com")
	errorAs[*InvalidInputError](t, err)
}

// TestList_NotFoundIsEmpty: Defender answers 404 when it has no recent machines (to a person:
// none they may see); that is an empty page.
func TestList_NotFoundIsEmpty(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":"ResourceNotFound","message":"No recent machines were found.","target":"c-2"}}`)
	})
	ms, resp, err := client.Machines.List(t.Context(), ListOptions{Top: 10})
	if err != nil || ms == nil || len(ms) != 0 {
		t.Errorf("List = %#v, %v; want an empty page", ms, err)
	}
	assertEqual(t, "status", resp.StatusCode, http.StatusNotFound)
}
