package resolvers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// KnownDeviceNotFoundError is a 404 from a device's logonusers or alerts call (GET
// /api/machines/{id}/logonusers, /alerts) for a device shown to exist (a fresh answer, in this
// request or the cache): Defender has nothing to give for it now, which is not "no such
// device". Such 404s are sometimes transient. It wraps the 404 (*defender.ErrorResponse), whose
// Target is the correlation id.
type KnownDeviceNotFoundError struct {
	// DeviceID is the device Defender knows.
	DeviceID string
	// Endpoint is the call that answered 404.
	Endpoint defender.Endpoint
	Err      error
}

func (e *KnownDeviceNotFoundError) Error() string {
	return fmt.Sprintf("device %s exists, but Defender answered 404 for its %s: %v", e.DeviceID, e.part(), e.Err)
}

func (e *KnownDeviceNotFoundError) Unwrap() error { return e.Err }

// part names what the call gives, for people.
func (e *KnownDeviceNotFoundError) part() string {
	if e.Endpoint == defender.EndpointAlerts {
		return "alerts"
	}
	return "logon users"
}

// notFoundOfKnown is err, from the call ep made about device id, as the field that asked
// should report it: a 404 for a device known to exist (see loaders.Loaders.Known) becomes a
// *KnownDeviceNotFoundError.
func notFoundOfKnown(ctx context.Context, id string, ep defender.Endpoint, err error) error {
	if defender.IsNotFound(err) && loaders.For(ctx).Known(ctx, id) {
		return &KnownDeviceNotFoundError{DeviceID: id, Endpoint: ep, Err: err}
	}
	return err
}

// machine resolves Query.machine: it makes the calls the selection needs, the details call
// first (GET /api/machines/{id}, when NeedsDetails), then, together, the logonusers and alerts
// calls the selection asks for (its parts), and decides with every outcome in hand what the
// answer is:
//
//   - A device Defender does not know is null with exactly one NOT_FOUND: at the machine's
//     path when the details call found out (no other call is then made), at the part's when a
//     part's 404 is the only fresh evidence (no fresh answer, in this request or the cache,
//     shows the device exists: a stale one only shows it did).
//   - When no call the selection needed succeeded, the machine is null, with one error per
//     failed call. A device named by its computer name whose details fail cannot be looked up
//     further (the parts take the device id), nor can any device once the credentials are
//     refused (every call would fail alike).
//   - Otherwise the machine is there, and a failed call nulls only what it would have given,
//     with one error at that path: the machine's own for the details (every detail field is
//     null), the part's for a part (a 404 there is a KnownDeviceNotFoundError: the device
//     exists).
//
// The machine is marked Prefetched: its logonUsers and alerts field resolvers answer what was
// fetched here. Answers served stale are noted for extensions.stale at the same paths.
func (r *Resolver) machine(ctx context.Context, id string) (*model.Machine, error) {
	ref, err := defender.ParseMachineRef(id)
	if err != nil {
		return nil, err
	}
	l := loaders.For(ctx)
	fc := graphql.GetFieldContext(ctx)
	path := slices.Clone(fc.Path())
	vars := graphql.GetOperationContext(ctx).Variables
	fields := graphql.CollectFieldsCtx(ctx, nil)
	parts := r.machineParts(ctx, fields, vars, path)

	var (
		details      *defender.Machine
		detailsStale *loaders.Stale
		detailsErr   error
	)
	if NeedsDetails(evidenceNames(ctx, fields, vars), ref) {
		m, stale, err := l.Machine(ctx, ref)
		switch {
		case err == nil:
			details, detailsStale = m, stale
		case len(parts) == 0 || !ref.IsDeviceID() || defender.IsNotFound(err) || refusesEveryCall(err):
			return nil, err
		default:
			detailsErr = err // the parts may still be had
		}
	}
	out := &model.Machine{ID: ref.String()}
	if details != nil {
		out = r.toMachine(ctx, details)
	}
	out.Prefetched = true
	if len(parts) == 0 {
		noteStale(ctx, path, detailsStale)
		return out, nil
	}

	// Together, the first on this goroutine: a part the cache answers costs no goroutine, and
	// every goroutine a request starts is one more wait for a turn on a busy CPU.
	var wg sync.WaitGroup
	for _, p := range parts[1:] {
		wg.Go(func() { p.stale, p.err = p.fetch(ctx, l, out) })
	}
	parts[0].stale, parts[0].err = parts[0].fetch(ctx, l, out)
	wg.Wait()
	known := l.Known(ctx, out.ID)
	for _, p := range parts {
		if defender.IsNotFound(p.err) && !known {
			// The only fresh evidence: Defender does not know the device.
			return nil, p.errorAt(p.err)
		}
	}
	var failed []*part
	for _, p := range parts {
		if p.err != nil {
			failed = append(failed, p)
			p.err = notFoundOfKnown(ctx, out.ID, p.ep, p.err)
		}
	}
	if detailsErr != nil { // reported at the machine's own path, as a returned error would be
		graphql.AddError(ctx, errorAt(detailsErr, path, fc.Field.Position))
	}
	for i, p := range failed {
		if details == nil && len(failed) == len(parts) && i == len(failed)-1 { // nothing was had
			return nil, p.errorAt(p.err)
		}
		graphql.AddError(ctx, p.errorAt(p.err))
	}
	noteStale(ctx, path, detailsStale)
	for _, p := range parts {
		noteStale(ctx, p.path, p.stale)
	}
	return out, nil
}

// part is one upstream call below a machine that Query.machine makes itself: the logon users
// or the alerts of the device.
type part struct {
	ep    defender.Endpoint
	field graphql.CollectedField // the first selection of the field, for its error's path
	path  ast.Path
	// fetch makes the call for m and fills m's field.
	fetch func(ctx context.Context, l *loaders.Loaders, m *model.Machine) (*loaders.Stale, error)

	stale *loaders.Stale
	err   error
}

// errorAt is err reported at the part's path.
func (p *part) errorAt(err error) *gqlerror.Error { return errorAt(err, p.path, p.field.Position) }

// machineParts lists the parts the fields selected on a machine at path ask for, in the order
// of their first selection: logonUsers, and alerts when one of its selections has a `first`
// the field accepts (a refused one makes no call).
func (r *Resolver) machineParts(ctx context.Context, fields []graphql.CollectedField, vars map[string]any, path ast.Path) []*part {
	var parts []*part
	has := map[string]bool{}
	for _, f := range fields {
		if has[f.Name] || (f.Name == "alerts" && !alertsAccepted(ctx, f, vars)) {
			continue
		}
		p := &part{field: f, path: append(slices.Clone(path), ast.PathName(f.Alias))}
		switch f.Name {
		case "logonUsers":
			p.ep = defender.EndpointLogonUsers
			p.fetch = func(ctx context.Context, l *loaders.Loaders, m *model.Machine) (*loaders.Stale, error) {
				users, stale, err := l.LogonUsers(ctx, m.ID)
				if err == nil {
					m.LogonUsers = toLogonUsers(users)
				}
				return stale, err
			}
		case "alerts":
			p.ep = defender.EndpointAlerts
			p.fetch = func(ctx context.Context, l *loaders.Loaders, m *model.Machine) (*loaders.Stale, error) {
				alerts, stale, err := l.Alerts(ctx, m.ID)
				if err == nil {
					m.Alerts = r.toAlerts(ctx, alerts)
				}
				return stale, err
			}
		default:
			continue
		}
		has[f.Name] = true
		parts = append(parts, p)
	}
	return parts
}

// refusesEveryCall reports whether err, from one call, would fail any other call the same way:
// Entra ID or Defender refused the service's credentials. (A 403 is not such an error: each
// endpoint needs its own permission. Nor is a token endpoint that fails or throttles: the other
// call gets the same remembered failure without spending quota, and may be answered stale.)
func refusesEveryCall(err error) bool {
	var (
		auth *upstreamauth.Error
		resp *defender.ErrorResponse
	)
	return errors.As(err, &auth) && (auth.Kind == upstreamauth.Refused || auth.Kind == upstreamauth.Rejected) ||
		errors.As(err, &resp) && resp.StatusCode == http.StatusUnauthorized
}

// errorAt is err reported at path, for the field at pos: a resolver can only report at its
// own path by itself, and Query.machine reports for the fields below it.
func errorAt(err error, path ast.Path, pos *ast.Position) *gqlerror.Error {
	e := &gqlerror.Error{Err: err, Message: err.Error(), Path: path}
	if pos != nil && pos.Line > 0 {
		e.Locations = []gqlerror.Location{{Line: pos.Line, Column: pos.Column}}
	}
	return e
}
