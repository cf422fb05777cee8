package simulator

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
)

// TestPagingToTheEnd pages through 1,000 devices with $top and $skip, as a client must: no page
// carries a nextLink, and the pages put together are every device once, in order.
func TestPagingToTheEnd(t *testing.T) {
	t.Parallel()
	s, _ := newTestSim(t, Options{Devices: 1000, PerMinute: -1, PerHour: -1})
	tok := getToken(t, s)
	all := machineIDs(s.Machines())
	if len(all) != 1000 {
		t.Fatalf("devices: %d", len(all))
	}
	for _, top := range []int{1, 7, 100, 333, 1000, 10000} {
		var got []string
		for skip := 0; ; skip += top {
			rec := get(t, s, "/api/machines?$top="+strconv.Itoa(top)+"&$skip="+strconv.Itoa(skip), tok)
			page := listIDs(t, rec)
			if next := decode[collection[Machine]](t, rec).NextLink; next != "" {
				t.Fatalf("$top=%d&$skip=%d: nextLink %q, want none with $top", top, skip, next)
			}
			got = append(got, page...)
			if len(page) < top {
				break
			}
		}
		if !slices.Equal(got, all) {
			t.Errorf("$top=%d: pages gave %d devices, want all %d in order", top, len(got), len(all))
		}
	}
	// A filtered walk ends the same way.
	f := url.QueryEscape("osPlatform eq 'Windows11'")
	var want []string
	for _, m := range s.Machines() {
		if m.OSPlatform == "Windows11" {
			want = append(want, m.ID)
		}
	}
	var got []string
	for skip := 0; ; skip += 50 {
		page := listIDs(t, get(t, s, "/api/machines?$filter="+f+"&$top=50&$skip="+strconv.Itoa(skip), tok))
		got = append(got, page...)
		if len(page) < 50 {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("filtered pages: %d devices, want %d", len(got), len(want))
	}
}

// TestNextLinkModes pages without $top under each Options.NextLink.
func TestNextLinkModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode      NextLinkMode
		wantPages int // pages a client following nextLink reads before it stops (0: it never stops)
		wantSeen  int // distinct devices it saw
	}{
		{NextLinkNormal, 4, 1000},
		{NextLinkMissing, 1, 300},
		{NextLinkRepeat, 0, 300},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(int(tt.mode)), func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSim(t, Options{Devices: 1000, PageSize: 300, NextLink: tt.mode, PerMinute: -1, PerHour: -1})
			tok := getToken(t, s)
			seen := map[string]bool{}
			target := "/api/machines"
			pages := 0
			for ; target != "" && pages < 10; pages++ {
				rec := get(t, s, target, tok)
				for _, id := range listIDs(t, rec) {
					seen[id] = true
				}
				target = ""
				if next := decode[collection[Machine]](t, rec).NextLink; next != "" {
					u, err := url.Parse(next)
					if err != nil || u.Host != "example.com" {
						t.Fatalf("nextLink %q: want a link back to the simulator", next)
					}
					target = u.RequestURI()
				}
			}
			if tt.wantPages == 0 && pages != 10 || tt.wantPages != 0 && pages != tt.wantPages {
				t.Errorf("pages read: got %d, want %d (0: endless)", pages, tt.wantPages)
			}
			if len(seen) != tt.wantSeen {
				t.Errorf("devices seen: got %d, want %d", len(seen), tt.wantSeen)
			}
			// $top never gets a link, whatever the mode.
			if next := decode[collection[Machine]](t, get(t, s, "/api/machines?$top=10", tok)).NextLink; next != "" {
				t.Errorf("with $top: nextLink %q", next)
			}
		})
	}
}

// TestNoRecentMachines: a tenant without devices, and a person who sees none, get the upstream's
// 404; a filter or skip that matches nothing still gets an empty 200.
func TestNoRecentMachines(t *testing.T) {
	t.Parallel()
	empty, _ := newIdentitySim(t, Options{NoDevices: true})
	if len(empty.Machines()) != 0 || empty.ExampleMachineID() != "" {
		t.Fatalf("NoDevices: %d devices, example %q", len(empty.Machines()), empty.ExampleMachineID())
	}
	tok := getToken(t, empty)
	for _, target := range []string{"/api/machines", "/api/machines?$top=10", "/api/machines?$filter=" + url.QueryEscape("osPlatform eq 'Linux'")} {
		msg := wantAPIError(t, get(t, empty, target, tok), http.StatusNotFound, codeResourceNotFound)
		if msg != "No recent machines were found." {
			t.Errorf("%s: message %q", target, msg)
		}
	}
	wantAPIError(t, get(t, empty, "/api/machines?$top=x", tok), http.StatusBadRequest, codeODataError) // 400 before 404
	if rec := get(t, empty, "/api/users/jdoe/machines", tok); !isEmptyMachineList(rec.Body.String()) {
		t.Errorf("users' machines in an empty tenant: %s", rec.Body.String())
	}

	s, _ := newIdentitySim(t, Options{})
	wantAPIError(t, get(t, s, "/api/machines", personToken(t, s, "nestor")), http.StatusNotFound, codeResourceNotFound)
	appTok := getToken(t, s)
	for _, target := range []string{"/api/machines?$skip=5000", "/api/machines?$filter=" + url.QueryEscape("computerDnsName eq 'nothing'")} {
		if got := listIDs(t, get(t, s, target, appTok)); len(got) != 0 {
			t.Errorf("%s: %d devices", target, len(got))
		}
	}
}

func isEmptyMachineList(body string) bool {
	return body == `{"@odata.context":"`+APIContextBase+`/$metadata#Machines","value":[]}`
}
