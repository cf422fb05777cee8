package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// The demo sign-in exists only in the simulator: Entra ID signs people in interactively, which a
// demo without a browser login cannot do. Any origin may call it, so a playground served from
// another port can.

// demoGroup is a device group in the /demo/persons answer.
type demoGroup struct {
	ID   int     `json:"rbacGroupId"`
	Name *string `json:"rbacGroupName"`
}

type demoPerson struct {
	Person
	Groups []demoGroup `json:"groups"`
}

type demoPersonsAnswer struct {
	TenantID string       `json:"tenantId"`
	Issuer   string       `json:"issuer"`
	Audience string       `json:"audience"`
	Persons  []demoPerson `json:"persons"`
}

// demoSignInRequest is POST /demo/signin's body, JSON or form-encoded.
type demoSignInRequest struct {
	Person   string `json:"person"`
	Audience string `json:"audience"`
}

type demoSignInAnswer struct {
	TokenType   string     `json:"token_type"`
	AccessToken string     `json:"access_token"`
	ExpiresIn   int        `json:"expires_in"`
	Person      demoPerson `json:"person"`
}

// maxDemoBody bounds POST /demo/signin's body.
const maxDemoBody = 64 << 10

// serveDemo answers the demo routes:
//
//	GET  /demo/persons  {"tenantId","issuer","audience","persons":[{"id","oid","name","upn","rbacGroupIds","appRoles","consentMissing","groups":[{"rbacGroupId","rbacGroupName"}]}]}
//	POST /demo/signin   {"person":"megan","audience":"api://mdegraph"} (audience optional; or the same as a form)
//	                    → {"token_type":"Bearer","access_token":"<JWT>","expires_in":3599,"person":{...}}
//
// The access token is the one SignIn mints: a v2 token for the service's API whose issuer is
// this server's. Errors are {"error","error_description"}: 400 invalid_request, 404
// unknown_person, 405.
func (s *Simulator) serveDemo(r *http.Request, rt routed) response {
	var resp response
	switch rt.id {
	case "persons":
		resp = s.demoAllow(r, http.MethodGet, func() response { return s.demoPersons(r) })
	case "signin":
		resp = s.demoAllow(r, http.MethodPost, func() response { return s.demoSignIn(r) })
	default:
		resp = demoError(http.StatusNotFound, "not_found", "The demo routes are /demo/persons and /demo/signin.")
	}
	return resp.with("Access-Control-Allow-Origin", "*")
}

// demoAllow answers a CORS preflight or a wrong method, else calls serve.
func (s *Simulator) demoAllow(r *http.Request, method string, serve func() response) response {
	switch r.Method {
	case method:
		if f, ok := s.state(EndpointDemo).takeFault(); ok {
			return injected(f, func(f fault) response { return demoError(f.Status, "injected", "Injected fault.") })
		}
		return serve()
	case http.MethodOptions:
		return response{status: http.StatusNoContent, contentType: "text/plain"}.
			with("Access-Control-Allow-Methods", method+", OPTIONS").
			with("Access-Control-Allow-Headers", "Content-Type").
			with("Access-Control-Max-Age", "600")
	}
	return demoError(http.StatusMethodNotAllowed, "invalid_request",
		fmt.Sprintf("This route accepts %s, not %s.", method, clip(r.Method))).with("Allow", method)
}

func (s *Simulator) demoPersons(r *http.Request) response {
	ans := demoPersonsAnswer{TenantID: s.TenantID(), Issuer: issuerV2(s.authorityFor(r), s.TenantID()), Audience: s.opts.Audience}
	for _, p := range demoPersons {
		ans.Persons = append(ans.Persons, toDemoPerson(p))
	}
	return entraJSON(ans)
}

func toDemoPerson(p Person) demoPerson {
	dp := demoPerson{Person: p.clone(), Groups: []demoGroup{}}
	for _, id := range p.RBACGroupIDs {
		dp.Groups = append(dp.Groups, demoGroup{ID: id, Name: nullable(groupNames[id])})
	}
	return dp
}

func (s *Simulator) demoSignIn(r *http.Request) response {
	var req demoSignInRequest
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body := http.MaxBytesReader(nil, r.Body, maxDemoBody)
	if mediaType == "application/json" {
		b, err := io.ReadAll(body)
		if err == nil {
			err = json.Unmarshal(b, &req)
		}
		if err != nil {
			return demoError(http.StatusBadRequest, "invalid_request", "The body is not a JSON object like {\"person\":\"megan\"}.")
		}
	} else {
		r.Body = body
		if err := r.ParseForm(); err != nil {
			return demoError(http.StatusBadRequest, "invalid_request", "The form body could not be parsed.")
		}
		req = demoSignInRequest{Person: r.PostForm.Get("person"), Audience: r.PostForm.Get("audience")}
	}
	if strings.TrimSpace(req.Person) == "" {
		return demoError(http.StatusBadRequest, "invalid_request", "Name a person: {\"person\":\"megan\"} (an id, object id or UPN from GET /demo/persons).")
	}
	p := findPerson(req.Person)
	if p == nil {
		ids := make([]string, len(demoPersons))
		for i, p := range demoPersons {
			ids[i] = p.ID
		}
		return demoError(http.StatusNotFound, "unknown_person", fmt.Sprintf("There is no demo person %q; the demo persons are %s (GET /demo/persons describes them).",
			clip(req.Person), strings.Join(ids, ", ")))
	}
	claims, err := s.claimsFor(TokenClaims{Person: p.ID, Audience: req.Audience}, s.authorityFor(r))
	if err != nil {
		return demoError(http.StatusInternalServerError, "server_error", err.Error())
	}
	tok, err := s.sign(claims, "", false)
	if err != nil {
		return demoError(http.StatusInternalServerError, "server_error", err.Error())
	}
	resp := entraJSON(demoSignInAnswer{
		TokenType: "Bearer", AccessToken: tok, ExpiresIn: int(s.opts.TokenTTL / time.Second), Person: toDemoPerson(*p),
	}).with("Cache-Control", "no-store")
	resp.identity = p.OID
	return resp
}

func demoError(status int, code, msg string) response {
	b, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, msg})
	return response{status: status, contentType: contentTypeOAuth, body: b}
}
