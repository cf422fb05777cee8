package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// serve runs one request through h in-process and returns the response.
func serve(t *testing.T, h http.Handler, method, target string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	h := SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	res := serve(t, h, http.MethodGet, "/", nil)
	for name, want := range map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestContentSecurityPolicyDirectives(t *testing.T) {
	t.Parallel()
	got := map[string]string{}
	for d := range strings.SplitSeq(ContentSecurityPolicy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		got[name] = value
	}
	for _, tt := range []struct{ directive, want string }{
		{"default-src", "'self'"},
		{"script-src", "'self'"}, // no 'unsafe-inline', no 'unsafe-eval', no CDN
		{"style-src", "'self' 'unsafe-inline'"},
		{"img-src", "'self' data:"},
		{"connect-src", "'self'"},
		{"font-src", "'self' data:"},
		{"worker-src", "'self' blob:"},
		{"frame-ancestors", "'none'"},
		{"base-uri", "'none'"},
	} {
		if got[tt.directive] != tt.want {
			t.Errorf("%s = %q, want %q", tt.directive, got[tt.directive], tt.want)
		}
	}
}

// TestPagesAnswerOnlyTheirPath mounts the pages the ways a server may and
// checks that a subtree mount does not turn every unknown URL into a page.
func TestPagesAnswerOnlyTheirPath(t *testing.T) {
	t.Parallel()
	page := func() http.Handler { return Playground(PlaygroundOptions{}) }
	tests := []struct {
		name    string
		pattern string
		path    string
		want    int
	}{
		{"root subtree, root", "/", "/", http.StatusOK},
		{"root subtree, favicon", "/", "/favicon.ico", http.StatusNotFound},
		{"root subtree, deep", "/", "/a/b", http.StatusNotFound},
		{"method and root subtree", "GET /", "/", http.StatusOK},
		{"method and root subtree, other", "GET /", "/x", http.StatusNotFound},
		{"exact root", "GET /{$}", "/", http.StatusOK},
		{"exact path", "/playground", "/playground", http.StatusOK},
		{"sub subtree, itself", "/playground/", "/playground/", http.StatusOK},
		{"sub subtree, below", "/playground/", "/playground/x", http.StatusNotFound},
		{"host subtree", "example.com/", "/", http.StatusOK},
		{"host subtree, other", "example.com/", "/x", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			mux.Handle(tt.pattern, page())
			res := serve(t, mux, http.MethodGet, "http://example.com"+tt.path, nil)
			if res.StatusCode != tt.want {
				t.Errorf("GET %s on %q: got %d, want %d", tt.path, tt.pattern, res.StatusCode, tt.want)
			}
		})
	}

	t.Run("without a mux", func(t *testing.T) {
		t.Parallel()
		if res := serve(t, page(), http.MethodGet, "/anything", nil); res.StatusCode != http.StatusOK {
			t.Errorf("got %d, want %d", res.StatusCode, http.StatusOK)
		}
	})
}

func TestPageMethodsAndCaching(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]http.Handler{
		"playground": Playground(PlaygroundOptions{}),
		"example":    Example(ExampleOptions{DeviceID: "d"}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			get := serve(t, h, http.MethodGet, "/", nil)
			body := readBody(t, get)
			if get.StatusCode != http.StatusOK || !strings.HasPrefix(body, "<!doctype html>") {
				t.Fatalf("GET: got %d %.40q, want 200 and an HTML page", get.StatusCode, body)
			}
			if got, want := get.Header.Get("Content-Type"), "text/html; charset=utf-8"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			if got := get.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy = %q, want ContentSecurityPolicy", got)
			}
			if got, want := get.Header.Get("Cache-Control"), "no-cache"; got != want {
				t.Errorf("Cache-Control = %q, want %q", got, want)
			}
			etag := get.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}

			head := serve(t, h, http.MethodHead, "/", nil)
			if b := readBody(t, head); head.StatusCode != http.StatusOK || b != "" {
				t.Errorf("HEAD: got %d with %d body bytes, want 200 and none", head.StatusCode, len(b))
			}
			if got, want := head.Header.Get("Content-Length"), get.Header.Get("Content-Length"); got != want || got == "" {
				t.Errorf("HEAD Content-Length = %q, want %q", got, want)
			}

			if res := serve(t, h, http.MethodGet, "/", map[string]string{"If-None-Match": etag}); res.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match: got %d, want 304", res.StatusCode)
			}

			post := serve(t, h, http.MethodPost, "/", nil)
			if post.StatusCode != http.StatusMethodNotAllowed || post.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("POST: got %d Allow=%q, want 405 Allow=\"GET, HEAD\"", post.StatusCode, post.Header.Get("Allow"))
			}
		})
	}
}

// TestPagesThroughServer serves the pages as a server would mount them and
// fetches every asset a page references, and every font its stylesheets
// reference, the way a browser resolves them.
func TestPagesThroughServer(t *testing.T) {
	t.Parallel()
	mounts := map[string]func(*http.ServeMux){
		"at prefix":      func(mux *http.ServeMux) { mux.Handle(StaticPrefix, Static()) },
		"strip /static":  func(mux *http.ServeMux) { mux.Handle("GET /static/", http.StripPrefix("/static", Static())) },
		"strip /static/": func(mux *http.ServeMux) { mux.Handle("GET /static/", http.StripPrefix("/static/", Static())) },
	}
	for name, mount := range mounts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			mux.Handle("GET /{$}", Playground(PlaygroundOptions{Variables: DeviceVariables("dev")}))
			mux.Handle("GET /example", Example(ExampleOptions{DeviceID: "dev"}))
			mount(mux)
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			checkPagesAndAssets(t, srv)
		})
	}
}

func checkPagesAndAssets(t *testing.T, srv *httptest.Server) {
	t.Helper()

	fetch := func(t *testing.T, url string) (*http.Response, string) {
		t.Helper()
		res, err := srv.Client().Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer res.Body.Close()
		return res, readBody(t, res)
	}
	ref := regexp.MustCompile(`(?:src|href)="(/[^"]*)"`)
	cssURL := regexp.MustCompile(`url\(\s*["']?([^)"']+)["']?\s*\)`)

	for _, pagePath := range []string{"/", "/example"} {
		t.Run(pagePath, func(t *testing.T) {
			t.Parallel()
			res, page := fetch(t, srv.URL+pagePath)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: got %d, want 200", pagePath, res.StatusCode)
			}
			refs := ref.FindAllStringSubmatch(page, -1)
			if len(refs) < 2 {
				t.Fatalf("page references %d assets, want a script and a stylesheet", len(refs))
			}
			for _, m := range refs {
				target := strings.ReplaceAll(m[1], "&amp;", "&")
				res, body := fetch(t, srv.URL+target)
				if res.StatusCode != http.StatusOK {
					t.Errorf("GET %s: got %d, want 200", target, res.StatusCode)
					continue
				}
				if got := res.Header.Get("Cache-Control"); got != immutable {
					t.Errorf("GET %s: Cache-Control = %q, want %q (the page names assets by content)", target, got, immutable)
				}
				if !strings.HasSuffix(strings.SplitN(target, "?", 2)[0], ".css") {
					continue
				}
				dir := target[:strings.LastIndex(target, "/")+1]
				for _, u := range cssURL.FindAllStringSubmatch(body, -1) {
					if strings.HasPrefix(u[1], "data:") {
						continue
					}
					res, _ := fetch(t, srv.URL+dir+u[1])
					if res.StatusCode != http.StatusOK {
						t.Errorf("%s references %s: got %d, want 200", target, u[1], res.StatusCode)
					}
				}
			}
		})
	}
}
