package callerauth

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The SHA-256 of "abc" (FIPS 180-2 appendix B.1) and of "abd".
const (
	hashABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	hashABD = "a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9"
)

func TestHashAPIKey(t *testing.T) {
	t.Parallel()
	if got := HashAPIKey("abc"); got != hashABC {
		t.Errorf("HashAPIKey(abc) = %s, want %s", got, hashABC)
	}
}

func TestParseAPIKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		names []string
		err   []string
	}{
		{in: "", names: nil},
		{in: " , ", names: nil},
		{in: "soc-dashboard:" + hashABC, names: []string{"soc-dashboard"}},
		{in: " a.b_c-1 : " + strings.ToUpper(hashABC) + " , nightly:" + hashABD + ",", names: []string{"a.b_c-1", "nightly"}},
		{in: "soc-dashboard", err: []string{"API_KEYS", "pair 1", "name:sha256hex"}},
		{in: ":" + hashABC, err: []string{"API_KEYS", "1 to 64"}},
		{in: strings.Repeat("n", 65) + ":" + hashABC, err: []string{"1 to 64"}},
		{in: "soc dashboard:" + hashABC, err: []string{"API_KEYS", `"soc dashboard"`, "letters, digits"}},
		{in: "soc/dashboard:" + hashABC, err: []string{"letters, digits"}},
		{in: "k:" + hashABC[:63], err: []string{"API_KEYS", "63 characters", "64 hex digits"}},
		{in: "k:" + hashABC + "0", err: []string{"65 characters"}},
		{in: "k:" + strings.Repeat("g", 64), err: []string{"not hexadecimal"}},
		{in: "k:mdg_sGf0", err: []string{"never the key"}},
		{in: "a:" + hashABC + ",a:" + hashABD, err: []string{"API_KEYS", `name "a" appears twice`}},
		{in: "a:" + hashABC + ",b:" + strings.ToUpper(hashABC), err: []string{"API_KEYS", `"a" and "b" have the same hash`}},
		{in: "ok:" + hashABC + ",bad,worse:x", err: []string{"pair 2", "pair 3"}},
	}
	for _, tt := range tests {
		keys, err := ParseAPIKeys(tt.in)
		if len(tt.err) > 0 {
			if err == nil {
				t.Errorf("ParseAPIKeys(%q) = %v, want an error", tt.in, keys)
				continue
			}
			for _, w := range tt.err {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseAPIKeys(%q) error %q lacks %q", tt.in, err, w)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAPIKeys(%q): %v", tt.in, err)
			continue
		}
		var names []string
		for _, k := range keys {
			names = append(names, k.Name)
		}
		if strings.Join(names, ",") != strings.Join(tt.names, ",") {
			t.Errorf("ParseAPIKeys(%q) names = %v, want %v", tt.in, names, tt.names)
		}
	}
}

func TestParseAPIKeysFile(t *testing.T) {
	t.Parallel()
	data := "# keys of the SOC's frontends\n\nsoc-dashboard:" + hashABC + "\n  # retired: old:...\r\nnightly-report:" + hashABD + "\r\n"
	keys, err := ParseAPIKeysFile("keys.txt", []byte(data))
	if err != nil || len(keys) != 2 || keys[0].Name != "soc-dashboard" || keys[1].Name != "nightly-report" {
		t.Fatalf("ParseAPIKeysFile = %+v, %v", keys, err)
	}
	_, err = ParseAPIKeysFile("keys.txt", []byte("# c\nsoc-dashboard:"+hashABC+"\nbroken\n"))
	if err == nil || !strings.Contains(err.Error(), "API_KEYS_FILE keys.txt: line 3") {
		t.Errorf("error = %v, want one naming API_KEYS_FILE keys.txt: line 3", err)
	}
}

func TestLoadAPIKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	if err := os.WriteFile(file, []byte("nightly:"+hashABD+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadAPIKeys("soc:"+hashABC, file)
	if err != nil || len(keys) != 2 {
		t.Fatalf("LoadAPIKeys = %+v, %v; want two keys", keys, err)
	}
	if keys, err := LoadAPIKeys("", ""); err != nil || len(keys) != 0 {
		t.Errorf("LoadAPIKeys of nothing = %+v, %v", keys, err)
	}
	if _, err := LoadAPIKeys("nightly:"+hashABC, file); err == nil || !strings.Contains(err.Error(), "API_KEYS and API_KEYS_FILE") {
		t.Errorf("a name in both: %v, want an error naming both settings", err)
	}
	if _, err := LoadAPIKeys("", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "API_KEYS_FILE") {
		t.Errorf("a missing file: %v, want an error naming API_KEYS_FILE", err)
	}
}

func TestNewAPIKey(t *testing.T) {
	t.Parallel()
	key, entry, err := NewAPIKey("soc-dashboard")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, APIKeyPrefix) || len(key) != 47 || !isB64Token(key) {
		t.Errorf("key %q: want %s and 43 base64url characters, a valid bearer token", key, APIKeyPrefix)
	}
	if strings.Contains(entry, key) {
		t.Error("the configuration entry contains the key")
	}
	keys, err := ParseAPIKeys(entry)
	if err != nil {
		t.Fatalf("the entry %q does not parse: %v", entry, err)
	}
	if k, ok := matchAPIKey(keys, key); !ok || k.Name != "soc-dashboard" {
		t.Errorf("the new key does not match its entry")
	}
	other, _, _ := NewAPIKey("soc-dashboard")
	if other == key {
		t.Error("two keys are equal")
	}
	if _, _, err := NewAPIKey("bad name"); err == nil {
		t.Error("NewAPIKey accepted a name with a space")
	}
}

func TestMatchAPIKey(t *testing.T) {
	t.Parallel()
	keys, err := ParseAPIKeys("first:" + hashABD + ",second:" + hashABC)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		presented, want string // want "" no match
	}{
		{"abc", "second"}, {"abd", "first"},
		{"ab", ""}, {"abcd", ""}, {"ABC", ""}, {"", ""}, {" abc", ""},
		{hashABC, ""}, // the hash itself is not the key
	}
	for _, tt := range tests {
		k, ok := matchAPIKey(keys, tt.presented)
		if (tt.want != "") != ok || k.Name != tt.want {
			t.Errorf("matchAPIKey(%q) = %q, %v; want %q", tt.presented, k.Name, ok, tt.want)
		}
	}
	if _, ok := matchAPIKey(nil, "abc"); ok {
		t.Error("matched a key with none configured")
	}
}

// FuzzParseAPIKeys: the parser never panics, accepts only label-safe unique names, and what it
// accepts reads back the same from its canonical form.
func FuzzParseAPIKeys(f *testing.F) {
	f.Add("soc:" + hashABC)
	f.Add("a:" + hashABC + ", b:" + hashABD)
	f.Add("a:" + hashABC + ",a:" + hashABD)
	f.Add(":,:,")
	f.Add("ñ:" + hashABC)
	f.Fuzz(func(t *testing.T, in string) {
		keys, err := ParseAPIKeys(in)
		if err != nil {
			return
		}
		var canon []string
		seen := map[string]bool{}
		for _, k := range keys {
			if checkKeyName(k.Name) != nil || seen[k.Name] {
				t.Fatalf("accepted the name %q", k.Name)
			}
			seen[k.Name] = true
			canon = append(canon, k.Name+":"+hex.EncodeToString(k.Hash[:]))
		}
		again, err := ParseAPIKeys(strings.Join(canon, ","))
		if err != nil || len(again) != len(keys) {
			t.Fatalf("canonical form %v reads as %v, %v", canon, again, err)
		}
		for i := range keys {
			if again[i] != keys[i] {
				t.Fatalf("key %d reads back as %+v, want %+v", i, again[i], keys[i])
			}
		}
	})
}

// BenchmarkMatchAPIKey measures the constant-time comparison against 100 configured keys.
func BenchmarkMatchAPIKey(b *testing.B) {
	var entries []string
	var last string
	for i := range 100 {
		key, entry, err := NewAPIKey(fmt.Sprintf("caller-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		entries, last = append(entries, entry), key
	}
	keys, err := ParseAPIKeys(strings.Join(entries, ","))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := matchAPIKey(keys, last); !ok {
			b.Fatal("no match")
		}
	}
}

func TestAPIKeyEntry(t *testing.T) {
	t.Parallel()
	entry, err := APIKeyEntry("soc-dashboard", "mdg_secret")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseAPIKeys(entry)
	if err != nil || len(keys) != 1 || keys[0].Name != "soc-dashboard" {
		t.Fatalf("ParseAPIKeys(%q) = %v, %v; want one key named soc-dashboard", entry, keys, err)
	}
	if got, ok := matchAPIKey(keys, "mdg_secret"); !ok || got.Name != "soc-dashboard" {
		t.Errorf("the entry does not match its own key")
	}
	if _, err := APIKeyEntry("bad name", "k"); err == nil {
		t.Error("APIKeyEntry accepted a name with a space")
	}
}
