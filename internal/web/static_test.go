package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// fontName returns the path of one embedded font, as the playground build
// names them.
func fontName(t *testing.T) string {
	t.Helper()
	var names []string
	for name := range assets() {
		if strings.HasPrefix(name, "playground/fonts/") {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		t.Fatal("no fonts under static/playground/fonts; rebuild web/playground")
	}
	sort.Strings(names)
	return names[0]
}

func TestStaticBundleIsBuilt(t *testing.T) {
	t.Parallel()
	for name, minSize := range map[string]int{
		"playground/graphiql.js":              200 << 10,
		"playground/graphiql.css":             10 << 10,
		"playground/THIRD_PARTY_LICENSES.txt": 1 << 10,
		"example/example.js":                  1 << 10,
		"example/example.css":                 512,
	} {
		a := assets()[name]
		if a == nil {
			t.Errorf("%s is not embedded; run `cd web/playground && npm ci && npm run build`", name)
			continue
		}
		if len(a.data) < minSize {
			t.Errorf("%s has %d bytes, want at least %d", name, len(a.data), minSize)
		}
	}
}

func TestStaticContentTypes(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, want string }{
		{"playground/graphiql.js", "text/javascript; charset=utf-8"},
		{"playground/graphiql.css", "text/css; charset=utf-8"},
		{"playground/THIRD_PARTY_LICENSES.txt", "text/plain; charset=utf-8"},
		{"example/example.js", "text/javascript; charset=utf-8"},
		{"example/example.css", "text/css; charset=utf-8"},
		{fontName(t), "font/" + strings.TrimPrefix(path.Ext(fontName(t)), ".")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := serve(t, Static(), http.MethodGet, StaticPrefix+tt.name, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("got %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tt.want {
				t.Errorf("Content-Type = %q, want %q", got, tt.want)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if body := readBody(t, res); body != string(assets()[tt.name].data) {
				t.Errorf("body differs from the embedded file (%d bytes, want %d)", len(body), len(assets()[tt.name].data))
			}
		})
	}
}

// TestStaticEveryFileHasAType makes a new kind of file fail here rather than
// go out as application/octet-stream.
func TestStaticEveryFileHasAType(t *testing.T) {
	t.Parallel()
	for name := range assets() {
		if _, ok := contentTypes[path.Ext(name)]; !ok {
			t.Errorf("%s: no Content-Type for %q in contentTypes", name, path.Ext(name))
		}
	}
}

func TestStaticNotFound(t *testing.T) {
	t.Parallel()
	for _, target := range []string{
		"/static/",
		"/static/nope.js",
		"/static/playground",
		"/static/playground/",
		"/static/playground/fonts/",
		"/static/playground/graphiql.js.map",
		"/static/../web.go",
		"/static/playground/../example/example.js",
		"/static//playground/graphiql.js",
		"/static/static/playground/graphiql.js",
		"/",
	} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				if res := serve(t, Static(), method, target, nil); res.StatusCode != http.StatusNotFound {
					t.Errorf("%s %s: got %d, want 404", method, target, res.StatusCode)
				}
			}
		})
	}
}

func TestAssetName(t *testing.T) {
	t.Parallel()
	tests := []struct{ path, want string }{
		{"/static/playground/graphiql.js", "playground/graphiql.js"}, // mounted at StaticPrefix
		{"/playground/graphiql.js", "playground/graphiql.js"},        // behind StripPrefix("/static")
		{"playground/graphiql.js", "playground/graphiql.js"},         // behind StripPrefix("/static/")
		{"/static/", ""},
		{"/", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := assetName(tt.path); got != tt.want {
			t.Errorf("assetName(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestStaticMethods(t *testing.T) {
	t.Parallel()
	const target = StaticPrefix + "example/example.js"
	head := serve(t, Static(), http.MethodHead, target, nil)
	if b := readBody(t, head); head.StatusCode != http.StatusOK || b != "" {
		t.Errorf("HEAD: got %d with %d body bytes, want 200 and none", head.StatusCode, len(b))
	}
	if got, want := head.Header.Get("Content-Type"), "text/javascript; charset=utf-8"; got != want {
		t.Errorf("HEAD Content-Type = %q, want %q", got, want)
	}
	if head.Header.Get("Content-Length") == "" || head.Header.Get("ETag") == "" {
		t.Errorf("HEAD: Content-Length %q, ETag %q, want both", head.Header.Get("Content-Length"), head.Header.Get("ETag"))
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		res := serve(t, Static(), method, target, nil)
		if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: got %d Allow=%q, want 405 Allow=\"GET, HEAD\"", method, res.StatusCode, res.Header.Get("Allow"))
		}
	}
}

func TestStaticCaching(t *testing.T) {
	t.Parallel()
	js := assets()["playground/graphiql.js"]
	font := fontName(t)
	tests := []struct {
		name   string
		target string
		want   string
	}{
		{"versioned by content", assetURL("playground/graphiql.js"), immutable},
		{"unversioned", StaticPrefix + "playground/graphiql.js", "no-cache"},
		{"stale version", StaticPrefix + "playground/graphiql.js?v=000000000000", "no-cache"},
		{"hashed file name", StaticPrefix + font, immutable},
		{"example script", assetURL("example/example.js"), immutable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := serve(t, Static(), http.MethodGet, tt.target, nil)
			if got := res.Header.Get("Cache-Control"); got != tt.want {
				t.Errorf("Cache-Control = %q, want %q", got, tt.want)
			}
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again := serve(t, Static(), http.MethodGet, tt.target, map[string]string{"If-None-Match": etag})
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match %s: got %d, want 304", etag, again.StatusCode)
			}
		})
	}
	if got, want := assetURL("playground/graphiql.js"), StaticPrefix+"playground/graphiql.js?v="+js.hash; got != want {
		t.Errorf("assetURL = %q, want %q", got, want)
	}
}

// TestFontNamesCarryTheirHash checks the build and the server agree on
// contentHash, which is what makes the fonts immutable.
func TestFontNamesCarryTheirHash(t *testing.T) {
	t.Parallel()
	for name, a := range assets() {
		if strings.HasPrefix(name, "playground/fonts/") && !a.hashedName {
			t.Errorf("%s: name does not carry its content hash %s; do build.mjs and static.go hash alike?", name, a.hash)
		}
	}
}

func TestStaticCompression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		target         string
		acceptEncoding string
		want           string // Content-Encoding
	}{
		{"gzip accepted", "playground/graphiql.js", "gzip, deflate, br", "gzip"},
		{"zstd preferred", "playground/graphiql.js", "gzip, deflate, br, zstd", "zstd"},
		{"gzip preferred by weight", "playground/graphiql.js", "gzip;q=1, zstd;q=0.5", "gzip"},
		{"no header", "playground/graphiql.js", "", ""},
		{"gzip refused", "playground/graphiql.js", "gzip;q=0, br", ""},
		{"only br", "playground/graphiql.js", "br", ""},
		{"css", "playground/graphiql.css", "gzip", "gzip"},
		{"example script", "example/example.js", "gzip", "gzip"},
		{"font is already compressed", fontName(t), "gzip, zstd", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := assets()[tt.target]
			res := serve(t, Static(), http.MethodGet, StaticPrefix+tt.target, map[string]string{"Accept-Encoding": tt.acceptEncoding})
			body := readBody(t, res)
			if got := res.Header.Get("Content-Encoding"); got != tt.want {
				t.Fatalf("Content-Encoding = %q, want %q", got, tt.want)
			}
			plain := []byte(body)
			switch tt.want {
			case "gzip":
				zr, err := gzip.NewReader(strings.NewReader(body))
				if err != nil {
					t.Fatalf("gzip body: %v", err)
				}
				if plain, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
			case "zstd":
				zr, err := zstd.NewReader(strings.NewReader(body))
				if err != nil {
					t.Fatalf("zstd body: %v", err)
				}
				defer zr.Close()
				if plain, err = io.ReadAll(zr); err != nil {
					t.Fatalf("unzstd: %v", err)
				}
			}
			if !bytes.Equal(plain, a.data) {
				t.Error("decoded body differs from the embedded file")
			}
			if tt.want != "" {
				if len(body) > len(a.data)/2 && a.name == "playground/graphiql.js" {
					t.Errorf("graphiql.js compresses to %d of %d bytes, want less than half", len(body), len(a.data))
				}
				etag := res.Header.Get("ETag")
				if etag == a.etag || etag == "" {
					t.Errorf("compressed answer ETag %q, want one of its own", etag)
				}
				// The client revalidates what it cached: unchanged, so 304.
				again := serve(t, Static(), http.MethodGet, StaticPrefix+tt.target,
					map[string]string{"Accept-Encoding": tt.acceptEncoding, "If-None-Match": etag})
				if again.StatusCode != http.StatusNotModified {
					t.Errorf("If-None-Match %s: got %d, want 304", etag, again.StatusCode)
				}
			}
			if compressible[path.Ext(tt.target)] && !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary = %q, want Accept-Encoding", res.Header.Get("Vary"))
			}
		})
	}
}

// inertHosts are the hosts the bundles may name, with why that is no request.
// A rebuild that adds a host fails TestBundlesFetchNothingElsewhere until
// someone checks the new URL is not fetched and adds it here.
var inertHosts = map[string]string{
	"www.w3.org":       "XML namespace names for SVG, MathML, XHTML and XLink in React DOM",
	"reactjs.org":      "text of React's minified error messages",
	"github.com":       "text of a GraphiQL error message, and GraphiQL's logo link, which the page replaces with its title",
	"codemirror.net":   "a link in GraphiQL's keyboard shortcut dialog, followed only when clicked",
	"commonmark.org":   "description text of graphql-js's built-in scalars",
	"en.wikipedia.org": "description text of graphql-js's built-in scalars",
	"yarnpkg.com":      "text of graphql-js's duplicate module error message",
}

// cdnHosts are never allowed, not even as text: they are where a playground
// usually loads scripts, styles and fonts from.
var cdnHosts = []string{
	"fonts.googleapis.com", "fonts.gstatic.com", "googleapis.com", "gstatic.com",
	"unpkg.com", "jsdelivr.net", "cdnjs.cloudflare.com", "esm.sh", "skypack.dev",
	"google-analytics.com", "googletagmanager.com", "sentry.io", "segment.io",
}

func TestBundlesFetchNothingElsewhere(t *testing.T) {
	t.Parallel()
	absolute := regexp.MustCompile(`(?i)(?:https?:)?//([a-z0-9-]+(?:\.[a-z0-9-]+)+)`)
	httpURL := regexp.MustCompile(`(?i)https?://([a-z0-9.-]+)`)
	cssRef := regexp.MustCompile(`(?i)(?:url\(\s*["']?|@import\s+["'])([^)"']*)`)

	texts := map[string]string{
		"playground page": readBody(t, serve(t, Playground(PlaygroundOptions{}), http.MethodGet, "/", nil)),
		"example page":    readBody(t, serve(t, Example(ExampleOptions{}), http.MethodGet, "/", nil)),
	}
	for name, a := range assets() {
		if compressible[path.Ext(name)] && !strings.HasSuffix(name, ".txt") {
			texts[name] = string(a.data)
		}
	}
	for name, text := range texts {
		for _, m := range absolute.FindAllStringSubmatch(text, -1) {
			host := strings.ToLower(m[1])
			for _, cdn := range cdnHosts {
				if host == cdn || strings.HasSuffix(host, "."+cdn) {
					t.Errorf("%s names %s (%s): a CDN must never be referenced", name, host, m[0])
				}
			}
		}
		for _, m := range httpURL.FindAllStringSubmatch(text, -1) {
			host := strings.ToLower(m[1])
			if _, ok := inertHosts[host]; !ok {
				t.Errorf("%s names %s; if the browser would fetch it, bundle it instead, and if it is only text, add it to inertHosts saying why", name, m[0])
			}
		}
		if strings.HasSuffix(name, ".css") {
			for _, m := range cssRef.FindAllStringSubmatch(text, -1) {
				ref := strings.TrimSpace(m[1])
				if strings.HasPrefix(ref, "data:") {
					continue
				}
				if strings.Contains(ref, ":") || strings.HasPrefix(ref, "//") || strings.HasPrefix(ref, "/") {
					t.Errorf("%s loads %q; stylesheets may only use relative URLs and data:", name, ref)
				}
			}
		}
	}
}
