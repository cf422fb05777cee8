package defender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// baseURLPath is a non-empty path the test server is mounted under, so that a client building
// absolute paths ("/api/...") instead of base-relative ones fails.
const baseURLPath = "/mde-base"

// setup starts a test API server under baseURLPath and returns a client for it and the mux
// the test registers its upstream handlers on (paths as the API spells them, "/api/...").
// Retries wait ~0: the backoff base and cap are 1 ns. opts may adjust the client's options.
func setup(t *testing.T, opts ...func(*Options)) (*Client, *http.ServeMux) {
	t.Helper()
	mux := http.NewServeMux()
	root := http.NewServeMux()
	root.Handle(baseURLPath+"/", http.StripPrefix(baseURLPath, mux))
	root.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request outside the base URL path: %s", r.URL)
		http.Error(w, "client used an absolute path instead of one under BaseURL", http.StatusBadRequest)
	})
	srv := httptest.NewServer(root)
	t.Cleanup(srv.Close)

	o := Options{
		BaseURL:        srv.URL + baseURLPath + "/",
		HTTPClient:     srv.Client(),
		RetryBaseDelay: time.Nanosecond,
		RetryMaxDelay:  time.Nanosecond,
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, mux
}

func testMethod(t *testing.T, r *http.Request, want string) {
	t.Helper()
	if r.Method != want {
		t.Errorf("request method: got %s, want %s", r.Method, want)
	}
}

func testHeader(t *testing.T, r *http.Request, name, want string) {
	t.Helper()
	if got := r.Header.Get(name); got != want {
		t.Errorf("header %s: got %q, want %q", name, got, want)
	}
}

// testRawQuery checks the query exactly as sent, escapes included.
func testRawQuery(t *testing.T, r *http.Request, want string) {
	t.Helper()
	if got := r.URL.RawQuery; got != want {
		t.Errorf("raw query:\n got %s\nwant %s", got, want)
	}
}

const deviceID = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"

func TestNew_BaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base    string
		wantErr bool
	}{
		{"https://api.securitycenter.microsoft.com", false},
		{"https://api.securitycenter.microsoft.com/", false},
		{"http://127.0.0.1:8080/prefix", false},
		{"", true},
		{"api.securitycenter.microsoft.com", true},
		{"/relative", true},
		{"ftp://example.com", true},
		{"https://", true},
		{"https://api.securitycenter.microsoft.com/api", true},
		{"https://api.securitycenter.microsoft.com/api/", true},
		{"http://[::1", true},
	}
	for _, tt := range tests {
		_, err := New(Options{BaseURL: tt.base})
		if gotErr := err != nil; gotErr != tt.wantErr {
			t.Errorf("New(%q): error %v, want error: %v", tt.base, err, tt.wantErr)
		}
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ref, wantPath string
	}{
		{"device id", deviceID, "/api/machines/" + deviceID},
		{"upper-case device id is lowered", strings.ToUpper(deviceID), "/api/machines/" + deviceID},
		{"computer name", "host-1.contoso.com", "/api/machines/host-1.contoso.com"},
		{"upper-case name is lowered", "HOST_1.Contoso.COM", "/api/machines/host_1.contoso.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, mux := setup(t)
			mux.HandleFunc("/api/machines/", func(w http.ResponseWriter, r *http.Request) {
				testMethod(t, r, http.MethodGet)
				if got := r.URL.EscapedPath(); got != tt.wantPath {
					t.Errorf("path: got %s, want %s", got, tt.wantPath)
				}
				testRawQuery(t, r, "")
				fmt.Fprint(w, machineJSON)
			})
			m, resp, err := client.Machines.Get(t.Context(), tt.ref)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			assertEqual(t, "id", m.ID, deviceID)
			assertEqual(t, "status", resp.StatusCode, http.StatusOK)
			assertEqual(t, "attempts", resp.Attempts, 1)
		})
	}
}

func TestGet_InvalidRefMakesNoCall(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	var hits atomic.Int32
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	for _, ref := range []string{"", "../x", "a/b", "a?b", "a#b", "a%2Fb", "a b", "hôst", ".."} {
		m, resp, err := client.Machines.Get(t.Context(), ref)
		if m != nil || resp != nil {
			t.Errorf("Get(%q): got %v, %v; want nil machine and response", ref, m, resp)
		}
		ie := errorAs[*InvalidInputError](t, err)
		assertEqual(t, "field", ie.Field, "id")
		_, _, err = client.Machines.LogonUsers(t.Context(), ref)
		errorAs[*InvalidInputError](t, err)
	}
	assertEqual(t, "server hits", hits.Load(), 0)
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct{ userAgent, want string }{
		{"", "mdegraph"},
		{"mdegraph/1.2.3 (test)", "mdegraph/1.2.3 (test)"},
	}
	for _, tt := range tests {
		client, mux := setup(t, func(o *Options) { o.UserAgent = tt.userAgent })
		mux.HandleFunc("GET /api/machines/{id}", func(w http.ResponseWriter, r *http.Request) {
			testHeader(t, r, "User-Agent", tt.want)
			testHeader(t, r, "Accept", "application/json")
			fmt.Fprint(w, machineJSON)
		})
		if _, _, err := client.Machines.Get(t.Context(), deviceID); err != nil {
			t.Fatalf("Get: %v", err)
		}
	}
}

func TestLogonUsers(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	mux.HandleFunc("GET /api/machines/{id}/logonusers", func(w http.ResponseWriter, r *http.Request) {
		assertEqual(t, "id", r.PathValue("id"), deviceID)
		fmt.Fprint(w, `{
  "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#Users",
  "value": [
    {"id": "contoso\\user1", "accountName": "user1", "accountDomain": "contoso", "accountSid": null,
     "firstSeen": "2019-12-18T08:02:54Z", "lastSeen": "2020-01-06T08:01:48.1234567Z",
     "logonTypes": "Interactive, Network", "isDomainAdmin": true, "isOnlyNetworkUser": null,
     "mostPrevalentMachineId": null, "leastPrevalentMachineId": null, "logOnMachinesCount": 3,
     "someFutureField": [1, 2, 3]},
    {"id": "HOST-1\\local admin", "accountName": "local admin", "accountDomain": "HOST-1",
     "logonTypes": "RemoteInteractive", "isDomainAdmin": false, "logOnMachinesCount": "1"}
  ]
}`)
	})
	users, resp, err := client.Machines.LogonUsers(t.Context(), strings.ToUpper(deviceID))
	if err != nil {
		t.Fatalf("LogonUsers: %v", err)
	}
	assertEqual(t, "attempts", resp.Attempts, 1)
	if len(users) != 2 {
		t.Fatalf("got %d users, want 2", len(users))
	}
	u := users[0]
	assertEqual(t, "id", u.ID, `contoso\user1`)
	assertEqual(t, "accountSid is nil", u.AccountSID == nil, true)
	assertEqual(t, "isOnlyNetworkUser is nil", u.IsOnlyNetworkUser == nil, true)
	assertEqual(t, "isDomainAdmin", *u.IsDomainAdmin, true)
	assertEqual(t, "logOnMachinesCount", *u.LogOnMachinesCount, FlexInt(3))
	assertEqual(t, "lastSeen", u.LastSeen.Time, time.Date(2020, 1, 6, 8, 1, 48, 123456700, time.UTC))
	assertEqual(t, "logon types", strings.Join(u.LogonTypeList(), "|"), "Interactive|Network")
	assertEqual(t, "second user's count from a string", *users[1].LogOnMachinesCount, FlexInt(1))
}

func TestLogonUsers_EmptyIsNotNil(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"value":[]}`, `{}`, `{"value":null}`} {
		client, mux := setup(t)
		mux.HandleFunc("GET /api/machines/{id}/logonusers", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, body)
		})
		users, _, err := client.Machines.LogonUsers(t.Context(), deviceID)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if users == nil || len(users) != 0 {
			t.Errorf("%s: got %#v, want an empty non-nil slice", body, users)
		}
	}
}

func TestList_Query(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts ListOptions
		want string
	}{
		{"nothing", ListOptions{}, ""},
		{"top", ListOptions{Top: 10000}, "$top=10000"},
		{"skip", ListOptions{Skip: 50}, "$skip=50"},
		{
			"filter with spaces, quotes and a plus",
			ListOptions{Filter: "healthStatus eq 'Active' and machineTags/any(t: t eq 'a+b&c')", Top: 100, Skip: 200},
			"$filter=healthStatus%20eq%20%27Active%27%20and%20machineTags%2Fany%28t%3A%20t%20eq%20%27a%2Bb%26c%27%29&$top=100&$skip=200",
		},
		{
			"startswith and a date",
			ListOptions{Filter: "startswith(computerDnsName,'host') and lastSeen gt 2024-01-01T00:00:00Z"},
			"$filter=startswith%28computerDnsName%2C%27host%27%29%20and%20lastSeen%20gt%202024-01-01T00%3A00%3A00Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, mux := setup(t)
			mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
				testRawQuery(t, r, tt.want)
				if strings.Contains(r.URL.RawQuery, "+") {
					t.Errorf("raw query %s: spaces must be %%20, not +", r.URL.RawQuery)
				}
				// The server must read back exactly the filter that was sent.
				assertEqual(t, "decoded $filter", r.URL.Query().Get("$filter"), tt.opts.Filter)
				fmt.Fprintf(w, `{"@odata.context":"x","value":[%s]}`, machineJSON)
			})
			ms, _, err := client.Machines.List(t.Context(), tt.opts)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			assertEqual(t, "machines", len(ms), 1)
		})
	}
}

func TestList_InvalidOptions(t *testing.T) {
	t.Parallel()
	client := fakeClient(t, &fakeTransport{fn: func(int, *http.Request) (*http.Response, error) {
		t.Error("no request expected")
		return nil, errors.New("unexpected")
	}})
	for _, opts := range []ListOptions{{Top: -1}, {Top: 10001}, {Skip: -1}} {
		_, resp, err := client.Machines.List(t.Context(), opts)
		errorAs[*InvalidInputError](t, err)
		if resp != nil {
			t.Errorf("List(%+v): got a response, want nil", opts)
		}
	}
}

func TestGetByIDs(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	var gotFilter string
	mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		gotFilter = r.URL.Query().Get("$filter")
		if strings.Contains(r.URL.RawQuery, "+") {
			t.Errorf("raw query %s: spaces must be %%20", r.URL.RawQuery)
		}
		fmt.Fprintf(w, `{"value":[%s]}`, machineJSON)
	})
	ids := []string{strings.ToUpper(deviceID), "0000000000000000000000000000000000000001"}
	ms, resp, err := client.Machines.GetByIDs(t.Context(), ids)
	if err != nil {
		t.Fatalf("GetByIDs: %v", err)
	}
	assertEqual(t, "filter", gotFilter,
		"id eq '"+deviceID+"' or id eq '0000000000000000000000000000000000000001'")
	assertEqual(t, "machines", len(ms), 1)
	assertEqual(t, "attempts", resp.Attempts, 1)
}

func TestGetByIDs_Bounds(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	var calls atomic.Int32
	var longest atomic.Int64
	mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		longest.Store(int64(len(r.URL.RequestURI())))
		fmt.Fprint(w, `{"value":[]}`)
	})

	many := func(n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%040x", i+1)
		}
		return ids
	}

	ms, resp, err := client.Machines.GetByIDs(t.Context(), nil)
	if ms != nil || resp != nil || err != nil {
		t.Errorf("GetByIDs(nil): got %v, %v, %v; want all nil", ms, resp, err)
	}

	if _, _, err := client.Machines.GetByIDs(t.Context(), many(MaxIDsPerList)); err != nil {
		t.Fatalf("GetByIDs(%d ids): %v", MaxIDsPerList, err)
	}
	// Proxies and IIS refuse URLs much past 2 kB: the bound exists to stay under it.
	if n := longest.Load() + int64(len(baseURLPath)); n > 2000 {
		t.Errorf("request URI for %d ids is %d bytes, want at most 2000", MaxIDsPerList, n)
	}

	_, _, err = client.Machines.GetByIDs(t.Context(), many(MaxIDsPerList+1))
	ie := errorAs[*InvalidInputError](t, err)
	assertEqual(t, "field", ie.Field, "ids")

	for _, bad := range []string{"host-1.contoso.com", deviceID[:39], deviceID + "0", "' or 1 eq 1 or id eq '"} {
		_, _, err := client.Machines.GetByIDs(t.Context(), []string{deviceID, bad})
		ie := errorAs[*InvalidInputError](t, err)
		assertEqual(t, "field", ie.Field, "id")
	}
	assertEqual(t, "server calls", calls.Load(), 1)
}

// realisticMachine is a GET /api/machines/{id} answer in the shape live tenants send: OData
// annotations, fields the docs omit, nulls, rbacGroupId as a number, 7 fractional digits.
const realisticMachine = `{
    "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#Machines/$entity",
    "id": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "computerDnsName": "mymachine1.contoso.com",
    "firstSeen": "2018-08-02T14:55:03.7791856Z",
    "lastSeen": "2021-01-25T07:27:36.052313Z",
    "osPlatform": "Windows10",
    "osVersion": null,
    "osProcessor": "x64",
    "version": "1901",
    "lastIpAddress": "10.166.113.46",
    "lastExternalIpAddress": "167.220.203.175",
    "agentVersion": "10.5850.17763.348",
    "osBuild": 19042,
    "healthStatus": "ImpairedCommunicationAndSomethingNew",
    "deviceValue": "Normal",
    "rbacGroupId": 140,
    "rbacGroupName": "The-A-Team",
    "riskScore": "Low",
    "exposureLevel": null,
    "isAadJoined": true,
    "aadDeviceId": "80fe8ff8-2624-418e-9591-41f0491218f9",
    "machineTags": ["test tag 1", "ExampleTag"],
    "defenderAvStatus": "NotSupported",
    "onboardingStatus": "Onboarded",
    "osArchitecture": "64-bit",
    "managedBy": "MicrosoftDefenderForEndpoint",
    "managedByStatus": "Unknown",
    "ipAddresses": [
        {"ipAddress": "10.166.113.47", "macAddress": "8CEC4B897E73", "type": "Ethernet", "operationalStatus": "Up"},
        {"ipAddress": "2a01:110:68:4:59e4:3916:3b3e:4f96", "macAddress": null, "type": null, "operationalStatus": "Up"}
    ],
    "vmMetadata": null,
    "isPotentialDuplication": false,
    "mergedIntoMachineId": null,
    "isExcluded": false,
    "exclusionReason": null,
    "deviceManualTags": [],
    "deviceDynamicTags": [{"tag": "x", "source": 1}],
    "futureObject": {"nested": {"deeper": [1, 2.5, null, true]}}
}`

func TestGet_LenientDecoding(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	mux.HandleFunc("GET /api/machines/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		fmt.Fprint(w, realisticMachine)
	})
	m, _, err := client.Machines.Get(t.Context(), deviceID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertEqual(t, "id", m.ID, deviceID)
	assertEqual(t, "computerDnsName", m.ComputerDNSName, "mymachine1.contoso.com")
	assertEqual(t, "firstSeen", m.FirstSeen.Time, time.Date(2018, 8, 2, 14, 55, 3, 779185600, time.UTC))
	assertEqual(t, "lastSeen", m.LastSeen.Time, time.Date(2021, 1, 25, 7, 27, 36, 52313000, time.UTC))
	assertEqual(t, "osVersion is nil", m.OSVersion == nil, true)
	assertEqual(t, "exposureLevel is nil", m.ExposureLevel == nil, true)
	assertEqual(t, "vmMetadata is nil", m.VMMetadata == nil, true)
	assertEqual(t, "osBuild", *m.OSBuild, FlexInt(19042))
	assertEqual(t, "rbacGroupId", *m.RBACGroupID, FlexString("140"))
	assertEqual(t, "unknown enum value kept", *m.HealthStatus, "ImpairedCommunicationAndSomethingNew")
	assertEqual(t, "isAadJoined", *m.IsAADJoined, true)
	assertEqual(t, "tags", strings.Join(m.MachineTags, ","), "test tag 1,ExampleTag")
	assertEqual(t, "addresses", len(m.IPAddresses), 2)
	assertEqual(t, "second mac is nil", m.IPAddresses[1].MACAddress == nil, true)
}

func TestList_LenientDecoding(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Machines",
"@odata.nextLink":"https://api.securitycenter.microsoft.com/api/machines?$skip=3",
"value":[
 {"id":"a000000000000000000000000000000000000001","osBuild":19042,"rbacGroupId":140,"lastSeen":"2024-05-01T10:00:00.1234567Z"},
 {"id":"a000000000000000000000000000000000000002","osBuild":"22621","rbacGroupId":"7","lastSeen":"2024-05-01T10:00:00"},
 {"id":"a000000000000000000000000000000000000003","osBuild":null,"rbacGroupId":null,"lastSeen":null,"firstSeen":"",
  "vmMetadata":{"vmId":"v","cloudProvider":"Azure","resourceId":null,"subscriptionId":"s","extra":1}}
]}`)
	})
	ms, _, err := client.Machines.List(t.Context(), ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(ms) != 3 {
		t.Fatalf("got %d machines, want 3", len(ms))
	}
	assertEqual(t, "osBuild number", *ms[0].OSBuild, FlexInt(19042))
	assertEqual(t, "osBuild string", *ms[1].OSBuild, FlexInt(22621))
	assertEqual(t, "osBuild null", ms[2].OSBuild == nil, true)
	assertEqual(t, "rbacGroupId number", *ms[0].RBACGroupID, FlexString("140"))
	assertEqual(t, "rbacGroupId string", *ms[1].RBACGroupID, FlexString("7"))
	assertEqual(t, "rbacGroupId null", ms[2].RBACGroupID == nil, true)
	assertEqual(t, "lastSeen 7 digits", ms[0].LastSeen.Time, time.Date(2024, 5, 1, 10, 0, 0, 123456700, time.UTC))
	assertEqual(t, "lastSeen without zone is UTC", ms[1].LastSeen.Time, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC))
	assertEqual(t, "lastSeen null", ms[2].LastSeen == nil, true)
	assertEqual(t, "firstSeen empty", ms[2].FirstSeen.IsZero(), true)
	assertEqual(t, "vm provider", *ms[2].VMMetadata.CloudProvider, "Azure")
}

func TestErrors(t *testing.T) {
	t.Parallel()
	const htmlPage = `<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>`
	tests := []struct {
		name         string
		status       int
		body         string
		header       map[string]string
		wantAttempts int
		wantCode     string
		wantMessage  string
		wantTarget   string
		notFound     bool
		rateLimited  bool
		retryAfter   time.Duration
	}{
		{
			name: "400", status: 400, wantAttempts: 1,
			body:     `{"error":{"code":"InvalidInput","message":"Invalid $filter","target":"c-400"}}`,
			wantCode: "InvalidInput", wantMessage: "Invalid $filter", wantTarget: "c-400",
		},
		{
			name: "401", status: 401, wantAttempts: 1,
			body:     `{"error":{"code":"Unauthorized","message":"Authorization token is invalid","target":"c-401"}}`,
			wantCode: "Unauthorized", wantMessage: "Authorization token is invalid", wantTarget: "c-401",
		},
		{
			name: "403", status: 403, wantAttempts: 1,
			body:     `{"error":{"code":"Forbidden","message":"The application does not have any of the required application roles","target":"c-403"}}`,
			wantCode: "Forbidden", wantMessage: "The application does not have any of the required application roles", wantTarget: "c-403",
		},
		{
			name: "404", status: 404, wantAttempts: 1, notFound: true,
			body:     `{"error":{"code":"ResourceNotFound","message":"Machine 1e5b was not found","target":"c-404"}}`,
			wantCode: "ResourceNotFound", wantMessage: "Machine 1e5b was not found", wantTarget: "c-404",
		},
		{
			name: "429 Retry-After seconds", status: 429, wantAttempts: 1, rateLimited: true,
			header:   map[string]string{"Retry-After": "17"},
			body:     `{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded. Try again in 17 seconds.","target":"c-429"}}`,
			wantCode: "TooManyRequests", wantMessage: "Rate limit is exceeded. Try again in 17 seconds.", wantTarget: "c-429",
			retryAfter: 17 * time.Second,
		},
		{
			name: "429 Retry-After HTTP date in the past", status: 429, wantAttempts: 1, rateLimited: true,
			header:   map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
			wantCode: "", wantMessage: "Too Many Requests", retryAfter: 0,
		},
		{
			name: "429 Retry-After HTTP date far ahead is capped", status: 429, wantAttempts: 1, rateLimited: true,
			header:   map[string]string{"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
			wantCode: "", wantMessage: "Too Many Requests", retryAfter: maxRetryAfter,
		},
		{
			name: "429 without Retry-After", status: 429, wantAttempts: 1, rateLimited: true,
			wantMessage: "Too Many Requests", retryAfter: defaultRetryAfter,
		},
		{
			name: "500 is retried", status: 500, wantAttempts: 3,
			body:     `{"error":{"code":"InternalServerError","message":"An error has occurred","target":"c-500"}}`,
			wantCode: "InternalServerError", wantMessage: "An error has occurred", wantTarget: "c-500",
		},
		{
			name: "503 with an empty body is retried", status: 503, wantAttempts: 3,
			wantMessage: "Service Unavailable",
		},
		{
			name: "502 HTML page from a proxy", status: 502, wantAttempts: 3, body: htmlPage,
			header:      map[string]string{"Content-Type": "text/html"},
			wantMessage: "Bad Gateway",
		},
		{
			name: "403 HTML page", status: 403, wantAttempts: 1, body: htmlPage,
			wantMessage: "Forbidden",
		},
		{
			name: "error envelope of the wrong shape", status: 400, wantAttempts: 1,
			body: `{"error":"invalid_request"}`, wantMessage: "Bad Request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &callRecorder{}
			client, mux := setup(t, func(o *Options) {
				o.MaxRateLimitRetries = -1 // a 429 would otherwise wait Retry-After in real time
				o.Observe = rec.observe
			})
			var hits atomic.Int32
			mux.HandleFunc("GET /api/machines/{id}", func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			m, resp, err := client.Machines.Get(t.Context(), deviceID)
			if m != nil {
				t.Errorf("got a machine %+v, want nil", m)
			}
			er := errorAs[*ErrorResponse](t, err)
			assertEqual(t, "status", er.StatusCode, tt.status)
			assertEqual(t, "endpoint", er.Endpoint, EndpointMachine)
			assertEqual(t, "code", er.Code, tt.wantCode)
			assertEqual(t, "message", er.Message, tt.wantMessage)
			assertEqual(t, "target", er.Target, tt.wantTarget)
			assertEqual(t, "IsNotFound", IsNotFound(err), tt.notFound)
			if tt.wantTarget != "" && !strings.Contains(err.Error(), tt.wantTarget) {
				t.Errorf("error %q does not carry the correlation id %q", err, tt.wantTarget)
			}
			var rl *RateLimitError
			assertEqual(t, "is a RateLimitError", errors.As(err, &rl), tt.rateLimited)
			if rl != nil {
				assertEqual(t, "RetryAfter", rl.RetryAfter, tt.retryAfter)
			}
			assertEqual(t, "resp.StatusCode", resp.StatusCode, tt.status)
			assertEqual(t, "resp.Attempts", resp.Attempts, tt.wantAttempts)
			assertEqual(t, "server hits", int(hits.Load()), tt.wantAttempts)
			calls := rec.all()
			assertEqual(t, "observed calls", len(calls), tt.wantAttempts)
			for _, c := range calls {
				assertEqual(t, "observed correlation id", c.CorrelationID, tt.wantTarget)
				assertEqual(t, "observed status", c.Status, tt.status)
			}
		})
	}
}

// countingBody records how much of it was read and whether it was closed.
type countingBody struct {
	r      io.Reader
	read   atomic.Int64
	closed atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { b.closed.Store(true); return nil }

func TestErrors_OversizedBodyIsReadThroughTheLimit(t *testing.T) {
	t.Parallel()
	const envelope = `{"error":{"code":"BadRequest","message":"too big","target":"c-big"}}`
	tests := []struct {
		name              string
		body              io.Reader
		wantCode, wantMsg string
	}{
		{
			// The envelope fits in the limit; the padding after it is cut off.
			name:     "envelope then padding",
			body:     io.MultiReader(strings.NewReader(envelope), strings.NewReader(strings.Repeat(" ", 10<<20))),
			wantCode: "BadRequest", wantMsg: "too big",
		},
		{
			// The envelope itself is larger than the limit: unreadable, so the status text.
			name: "huge message",
			body: io.MultiReader(strings.NewReader(`{"error":{"code":"BadRequest","message":"`),
				strings.NewReader(strings.Repeat("x", 10<<20)), strings.NewReader(`"}}`)),
			wantCode: "", wantMsg: "Bad Request",
		},
		{
			name:    "endless body",
			body:    endless('x'),
			wantMsg: "Bad Request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := &countingBody{r: tt.body}
			tr := &fakeTransport{fn: func(_ int, req *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 400, Header: http.Header{}, Body: body, Request: req}, nil
			}}
			client := fakeClient(t, tr)
			_, _, err := client.Machines.Get(t.Context(), deviceID)
			er := errorAs[*ErrorResponse](t, err)
			assertEqual(t, "code", er.Code, tt.wantCode)
			assertEqual(t, "message", er.Message, tt.wantMsg)
			// The limit, plus the little drained for connection reuse.
			if n := body.read.Load(); n > maxErrorBody+4<<10 {
				t.Errorf("read %d bytes of the error body, want at most %d", n, maxErrorBody+4<<10)
			}
			assertEqual(t, "body closed", body.closed.Load(), true)
		})
	}
}

// endless is a reader that never ends.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

func TestSuccess_OversizedBody(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("decodes 64 MB")
	}
	body := &countingBody{r: io.MultiReader(strings.NewReader(`{"id":"`), endless('a'))}
	tr := &fakeTransport{fn: func(_ int, req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: body, Request: req}, nil
	}}
	client := fakeClient(t, tr, func(o *Options) { o.MaxRetries = -1 })
	_, _, err := client.Machines.Get(t.Context(), deviceID)
	ue := errorAs[*UnavailableError](t, err)
	if !strings.Contains(ue.Error(), "larger than") {
		t.Errorf("error %q: want it to say the answer is too large", ue)
	}
	if n := body.read.Load(); n > maxBody+1+4<<10 {
		t.Errorf("read %d bytes, want at most %d", n, maxBody+1+4<<10)
	}
}

func TestMalformedSuccessBody(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"id": "abc"`, `<html>oops</html>`, ``, `{"id": 42}`, `{"lastSeen":"yesterday"}`} {
		client, mux := setup(t)
		var hits atomic.Int32
		mux.HandleFunc("GET /api/machines/{id}", func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			io.WriteString(w, body)
		})
		m, resp, err := client.Machines.Get(t.Context(), deviceID)
		if m != nil {
			t.Errorf("%q: got machine %+v, want nil", body, m)
		}
		ue := errorAs[*UnavailableError](t, err)
		assertEqual(t, "endpoint", ue.Endpoint, EndpointMachine)
		if !strings.Contains(err.Error(), "decode answer") {
			t.Errorf("%q: error %q, want it to mention decoding", body, err)
		}
		assertEqual(t, "status", resp.StatusCode, http.StatusOK)
		// An unreadable answer would most likely come back the same: it is not retried, so it
		// spends no more quota.
		assertEqual(t, "attempts", resp.Attempts, 1)
		assertEqual(t, "hits", hits.Load(), 1)
	}
}

func TestNetworkError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more: connection refused

	rec := &callRecorder{}
	lim := &fakeLimiter{}
	client, err := New(Options{BaseURL: base + baseURLPath, RetryBaseDelay: time.Nanosecond, RetryMaxDelay: time.Nanosecond,
		Observe: rec.observe, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := client.Machines.Get(t.Context(), deviceID)
	// No attempt reached Defender, so each one's quota slot was given back, exactly the one
	// it was granted.
	wantRefunds := []time.Time{t0Grant.Add(time.Second), t0Grant.Add(2 * time.Second), t0Grant.Add(3 * time.Second)}
	if !slices.Equal(lim.refunds, wantRefunds) {
		t.Errorf("refunds %v, want the three grants %v", lim.refunds, wantRefunds)
	}
	ue := errorAs[*UnavailableError](t, err)
	var urlErr *url.Error
	if errors.As(ue.Err, &urlErr) {
		t.Errorf("cause %v: want the url.Error unwrapped (it repeats the URL)", ue.Err)
	}
	assertEqual(t, "status", resp.StatusCode, 0)
	assertEqual(t, "attempts", resp.Attempts, 3)
	for _, c := range rec.all() {
		assertEqual(t, "observed status", c.Status, 0)
		if c.Err == nil {
			t.Error("observed call without its error")
		}
	}
}

// TestNeverSent: only a connection that could not be made means Defender never saw the call;
// an answer of any kind, or a connection that broke after the request went out, spent quota.
func TestNeverSent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &UnavailableError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, true},
		{"name does not resolve", &UnavailableError{Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "api.example"}}}, true},
		{"bare DNS error", &net.DNSError{Err: "no such host"}, true},
		{"connection reset while reading", &UnavailableError{Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}, false},
		{"timeout", &UnavailableError{Err: context.DeadlineExceeded}, false},
		{"Defender answered 503", &ErrorResponse{StatusCode: 503}, false},
		{"Defender answered 429", &RateLimitError{ErrorResponse: ErrorResponse{StatusCode: 429}}, false},
	}
	for _, tt := range tests {
		if got := neverSent(tt.err); got != tt.want {
			t.Errorf("%s: neverSent = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNetworkError_ServerHangsUp(t *testing.T) {
	t.Parallel()
	client, mux := setup(t, func(o *Options) { o.MaxRetries = -1 })
	mux.HandleFunc("GET /api/machines/{id}", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	})
	_, resp, err := client.Machines.Get(t.Context(), deviceID)
	errorAs[*UnavailableError](t, err)
	assertEqual(t, "status", resp.StatusCode, 0)
}

func TestDebugLogLinePerAttempt(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	client, mux := setup(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var hits atomic.Int32
	mux.HandleFunc("GET /api/machines/{id}", func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":{"code":"ServiceUnavailable","message":"busy","target":"corr-1"}}`)
			return
		}
		io.WriteString(w, machineJSON)
	})
	if _, _, err := client.Machines.Get(t.Context(), deviceID); err != nil {
		t.Fatalf("Get: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"status=503 attempt=1 ", "status=200 attempt=2 "} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "endpoint=machines.get") {
			t.Errorf("log line %d %q: want %q and the endpoint", i+1, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], "correlation_id=corr-1") {
		t.Errorf("log line %q: want the correlation id", lines[0])
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	client, mux := setup(t)
	mux.HandleFunc("GET /api/machines/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, machineJSON)
	})
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			_, _, err := client.Machines.Get(context.Background(), deviceID)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
