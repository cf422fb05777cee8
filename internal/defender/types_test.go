package defender

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTime_UnmarshalJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{`"2021-01-25T07:27:36Z"`, time.Date(2021, 1, 25, 7, 27, 36, 0, time.UTC), false},
		{`"2021-01-25T07:27:36.0523135Z"`, time.Date(2021, 1, 25, 7, 27, 36, 52313500, time.UTC), false},
		{`"2021-01-25T07:27:36.052313Z"`, time.Date(2021, 1, 25, 7, 27, 36, 52313000, time.UTC), false},
		{`"2021-01-25T07:27:36.123456789Z"`, time.Date(2021, 1, 25, 7, 27, 36, 123456789, time.UTC), false},
		{`"2021-01-25T07:27:36.0523135"`, time.Date(2021, 1, 25, 7, 27, 36, 52313500, time.UTC), false},
		{`"2021-01-25T07:27:36"`, time.Date(2021, 1, 25, 7, 27, 36, 0, time.UTC), false},
		{`"2021-01-25T09:27:36.5+02:00"`, time.Date(2021, 1, 25, 7, 27, 36, 500000000, time.UTC), false},
		{`"2021-01-25 07:27:36.12Z"`, time.Date(2021, 1, 25, 7, 27, 36, 120000000, time.UTC), false},
		{`"2021-01-25 07:27:36"`, time.Date(2021, 1, 25, 7, 27, 36, 0, time.UTC), false},
		{`null`, time.Time{}, false},
		{`""`, time.Time{}, false},
		{`"yesterday"`, time.Time{}, true},
		{`"2021-13-01T00:00:00Z"`, time.Time{}, true},
		{`"25/01/2021"`, time.Time{}, true},
		{`1611559656`, time.Time{}, true},
		{`true`, time.Time{}, true},
	}
	for _, tt := range tests {
		var got Time
		err := json.Unmarshal([]byte(tt.in), &got)
		if (err != nil) != tt.wantErr {
			t.Errorf("Unmarshal(%s): error %v, want error: %v", tt.in, err, tt.wantErr)
			continue
		}
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("Unmarshal(%s) = %v, want %v in UTC", tt.in, got.Time, tt.want)
		}
	}
}

func TestTime_MarshalJSONRoundTrip(t *testing.T) {
	t.Parallel()
	in := Time{time.Date(2021, 1, 25, 9, 27, 36, 52313500, time.FixedZone("CEST", 2*3600))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "marshalled", string(b), `"2021-01-25T07:27:36.0523135Z"`)
	var out Time
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "round trip", out.Equal(in.Time), true)
}

func TestFlexInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    FlexInt
		wantErr bool
	}{
		{`19042`, 19042, false},
		{`"19042"`, 19042, false},
		{`-1`, -1, false},
		{`0`, 0, false},
		{`19042.0`, 19042, false},
		{`1.9e4`, 19000, false},
		{`"22621.0"`, 22621, false},
		{`null`, 0, false},
		{`""`, 0, false},
		{`9223372036854775807`, 9223372036854775807, false},
		{`"abc"`, 0, true},
		{`"10.0.19045"`, 0, true},
		{`true`, 0, true},
		{`{}`, 0, true},
		{`[1]`, 0, true},
	}
	for _, tt := range tests {
		var got FlexInt
		err := json.Unmarshal([]byte(tt.in), &got)
		if (err != nil) != tt.wantErr {
			t.Errorf("Unmarshal(%s): error %v, want error: %v", tt.in, err, tt.wantErr)
			continue
		}
		assertEqual(t, "FlexInt("+tt.in+")", got, tt.want)
	}
}

func TestFlexString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    FlexString
		wantErr bool
	}{
		{`140`, "140", false},
		{`"140"`, "140", false},
		{`"The-A-Team"`, "The-A-Team", false},
		{`"a \"quoted\" \u00e9"`, `a "quoted" é`, false},
		{`1.5`, "1.5", false},
		{`-3`, "-3", false},
		{`12345678901234567890123`, "12345678901234567890123", false}, // beyond int64: kept verbatim
		{`null`, "", false},
		{`""`, "", false},
		{`true`, "", true},
		{`{}`, "", true},
		{`[]`, "", true},
	}
	for _, tt := range tests {
		var got FlexString
		err := json.Unmarshal([]byte(tt.in), &got)
		if (err != nil) != tt.wantErr {
			t.Errorf("Unmarshal(%s): error %v, want error: %v", tt.in, err, tt.wantErr)
			continue
		}
		assertEqual(t, "FlexString("+tt.in+")", got, tt.want)
	}
}

func TestLogonTypeList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{}},
		{"Interactive", []string{"Interactive"}},
		{"Interactive, Network", []string{"Interactive", "Network"}},
		{"Interactive,Network", []string{"Interactive", "Network"}},
		{"Interactive;Network", []string{"Interactive", "Network"}},
		{"Interactive | RemoteInteractive", []string{"Interactive", "RemoteInteractive"}},
		{" Interactive ,  Network ; Batch|Service ", []string{"Interactive", "Network", "Batch", "Service"}},
		{", ,;", []string{}},
		{"Network,", []string{"Network"}},
	}
	for _, tt := range tests {
		got := User{LogonTypes: tt.in}.LogonTypeList()
		if got == nil {
			t.Errorf("LogonTypeList(%q) = nil, want a non-nil slice", tt.in)
		}
		assertEqual(t, "LogonTypeList("+tt.in+")", strings.Join(got, "|"), strings.Join(tt.want, "|"))
		assertEqual(t, "LogonTypeList("+tt.in+") length", len(got), len(tt.want))
	}
}

func TestMachine_NullsEverywhere(t *testing.T) {
	t.Parallel()
	// Every nullable field null: the decode must succeed and leave the pointers nil.
	body := `{"id":"x","computerDnsName":null,"firstSeen":null,"lastSeen":null,"osPlatform":null,"osVersion":null,
"osProcessor":null,"osArchitecture":null,"version":null,"osBuild":null,"lastIpAddress":null,"lastExternalIpAddress":null,
"agentVersion":null,"healthStatus":null,"onboardingStatus":null,"riskScore":null,"exposureLevel":null,"deviceValue":null,
"rbacGroupId":null,"rbacGroupName":null,"isAadJoined":null,"aadDeviceId":null,"machineTags":null,"ipAddresses":null,
"defenderAvStatus":null,"managedBy":null,"isPotentialDuplication":null,"mergedIntoMachineId":null,"isExcluded":null,
"exclusionReason":null,"vmMetadata":null}`
	var m Machine
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if m.LastSeen != nil || m.OSBuild != nil || m.RBACGroupID != nil || m.IsAADJoined != nil || m.VMMetadata != nil {
		t.Errorf("nulls decoded to values: %+v", m)
	}
}
