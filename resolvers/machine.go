package resolvers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
	"github.com/mdegraph/mdegraph/internal/upstreamauth"
)

// LogonUsersNotFoundError is a 404 from GET /api/machines/{id}/logonusers for a device shown to
// exist (a fresh machine answer, in this request or the cache): Defender has no logon users to
// give for it now, which is not "no such device". Such 404s are sometimes transient. It
// wraps the 404 (*defender.ErrorResponse), whose Target is the correlation id.
type LogonUsersNotFoundError struct {
	// DeviceID is the device Defender knows.
	DeviceID string
	Err      error
}

func (e *LogonUsersNotFoundError) Error() string {
	return fmt.Sprintf("device %s exists, but Defender answered 404 for its logon users: %v", e.DeviceID, e.Err)
}

func (e *LogonUsersNotFoundError) Unwrap() error { return e.Err }

// machine resolves Query.machine: it makes the calls the selection needs, the details call
// first (GET /api/machines/{id}, when NeedsDetails), then the logonusers call (when logonUsers
// is selected), and decides with both outcomes in hand what the answer is:
//
//   - A device Defender does not know is null with exactly one NOT_FOUND: at the machine's
//     path when the details call found out (no logonusers call is then made), at logonUsers'
//     when that call's 404 is the only fresh evidence (no fresh machine answer, in this
//     request or the cache, shows the device exists: a stale one only shows it did).
//   - When no call the selection needed succeeded, the machine is null, with one error per
//     failed call. A device named by its computer name whose details fail cannot be looked up
//     further (logonusers takes the device id), nor can any device once the credentials are
//     refused (every call would fail alike).
//   - Otherwise the machine is there, and a failed call nulls only what it would have given,
//     with one error at that path: the machine's own for the details (every detail field is
//     null), logonUsers' for the logon users (a 404 there is a LogonUsersNotFoundError: the
//     device exists).
//
// Answers served stale are noted for extensions.stale at the same paths.
func (r *Resolver) machine(ctx context.Context, id string) (*model.Machine, error) {
	ref, err := defender.ParseMachineRef(id)
	if err != nil {
		return nil, err
	}
	l := loaders.For(ctx)
	path := slices.Clone(graphql.GetFieldContext(ctx).Path())
	fields := graphql.CollectFieldsCtx(ctx, nil)
	names := make([]string, len(fields))
	var users *graphql.CollectedField // the first logonUsers selection, for its path
	for i, f := range fields {
		names[i] = f.Name
		if f.Name == "logonUsers" && users == nil {
			users = &fields[i]
		}
	}

	var (
		details      *defender.Machine
		detailsStale *loaders.Stale
		detailsErr   error
	)
	if NeedsDetails(names, ref) {
		m, stale, err := l.Machine(ctx, ref)
		switch {
		case err == nil:
			details, detailsStale = m, stale
		case users == nil || !ref.IsDeviceID() || defender.IsNotFound(err) || refusesEveryCall(err):
			return nil, err
		default:
			detailsErr = err // the logon users may still be had
		}
	}
	out := &model.Machine{ID: ref.String()}
	if details != nil {
		out = r.toMachine(ctx, details)
	}
	if users == nil {
		noteStale(ctx, path, detailsStale)
		return out, nil
	}

	usersPath := append(slices.Clone(path), ast.PathName(users.Alias))
	list, usersStale, usersErr := l.LogonUsers(ctx, out.ID)
	switch {
	case usersErr == nil:
		out.LogonUsers = make([]*model.LogonUser, len(list))
		for i, u := range list {
			out.LogonUsers[i] = toLogonUser(u)
		}
	case defender.IsNotFound(usersErr) && !l.Known(ctx, out.ID):
		// The only fresh evidence: Defender does not know the device. (A stale details answer
		// says only that it did.)
		return nil, errorAt(usersErr, usersPath, users.Position)
	case defender.IsNotFound(usersErr):
		usersErr = &LogonUsersNotFoundError{DeviceID: out.ID, Err: usersErr}
	}

	if detailsErr != nil { // reported at the machine's own path, as a returned error would be
		graphql.AddError(ctx, errorAt(detailsErr, path, graphql.GetFieldContext(ctx).Field.Position))
	}
	if details == nil && usersErr != nil { // nothing was had
		return nil, errorAt(usersErr, usersPath, users.Position)
	}
	if usersErr != nil {
		graphql.AddError(ctx, errorAt(usersErr, usersPath, users.Position))
	}
	noteStale(ctx, path, detailsStale)
	noteStale(ctx, usersPath, usersStale)
	return out, nil
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
// own path by itself, and Query.machine reports for the logonUsers field below it.
func errorAt(err error, path ast.Path, pos *ast.Position) *gqlerror.Error {
	e := &gqlerror.Error{Err: err, Message: err.Error(), Path: path}
	if pos != nil && pos.Line > 0 {
		e.Locations = []gqlerror.Location{{Line: pos.Line, Column: pos.Column}}
	}
	return e
}
