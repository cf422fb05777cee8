package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mdegraph/mdegraph/internal/callerauth"
)

func TestGenerate(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if err := run([]string{"soc-dashboard"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(out.String())
	var key, entry string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, callerauth.APIKeyPrefix):
			key = l
		case strings.HasPrefix(l, "soc-dashboard:"):
			entry = l
		}
	}
	if key == "" || entry == "" {
		t.Fatalf("output %q lacks a key or an entry", out.String())
	}
	keys, err := callerauth.ParseAPIKeys(entry)
	if err != nil || len(keys) != 1 || callerauth.HashAPIKey(key) != strings.TrimPrefix(entry, "soc-dashboard:") {
		t.Errorf("entry %q does not configure key %q: %v", entry, key, err)
	}
}

func TestFromStdin(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run([]string{"-stdin", "nightly"}, strings.NewReader("abc\n"), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if want := "nightly:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{nil, "", "exactly one NAME"},
		{[]string{"a", "b"}, "", "exactly one NAME"},
		{[]string{"bad name"}, "", "letters, digits"},
		{[]string{"-stdin", "n"}, "", "no key"},
		{[]string{"-stdin", "bad/name"}, "abc", "letters, digits"},
	} {
		var out bytes.Buffer
		err := run(tt.args, strings.NewReader(tt.stdin), &out, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
		}
		if out.Len() != 0 {
			t.Errorf("run(%q) printed %q despite the error", tt.args, out.String())
		}
	}
}
