package callerauth

import "net/http"

// CredentialHeaders are the request headers that carry a credential: Authorization (bearer
// tokens, API keys, and the Basic credentials a browser or proxy may add), X-Api-Key, and
// Cookie. An answer to a request carrying one may differ by caller, so a cache must keep it
// private and list them in Vary.
var CredentialHeaders = []string{"Authorization", "X-Api-Key", "Cookie"}

// CarriesCredential reports whether r has any of CredentialHeaders, even empty. The HTTP layer
// marks such answers Cache-Control: private (or no-store), never public, and adds
// Vary: Authorization, X-Api-Key, Cookie.
func CarriesCredential(r *http.Request) bool {
	for _, h := range CredentialHeaders {
		if _, ok := r.Header[http.CanonicalHeaderKey(h)]; ok {
			return true
		}
	}
	return false
}

// MayCachePublicly reports whether a shared cache (a CDN, a proxy) may keep the answer to r:
// only in ModeNone and only when r carries no credential. In every other mode an answer is for
// its caller alone, since Defender may show each person something else.
func MayCachePublicly(mode Mode, r *http.Request) bool {
	return mode == ModeNone && !CarriesCredential(r)
}
