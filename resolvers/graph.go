package resolvers

import (
	"context"
	"slices"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/mdegraph/mdegraph/graph/model"
	"github.com/mdegraph/mdegraph/internal/defender"
	"github.com/mdegraph/mdegraph/internal/loaders"
)

// The field resolvers of the graph around a device. A machine from Query.machine comes with
// its logonUsers and alerts already fetched (Prefetched: the null rules are decided there); a
// machine from a list (Query.machines, LogonUser.machines) has each fetched here, one call per
// device, through the request's loaders. Such a device is known to exist (a fresh list showed
// it), so a 404 for its logon users or alerts nulls only that field.

// logonUsersOf resolves Machine.logonUsers.
func (r *Resolver) logonUsersOf(ctx context.Context, m *model.Machine) ([]*model.LogonUser, error) {
	if m.Prefetched {
		return m.LogonUsers, nil
	}
	users, stale, err := loaders.For(ctx).LogonUsers(ctx, m.ID)
	if err != nil {
		return nil, notFoundOfKnown(ctx, m.ID, defender.EndpointLogonUsers, err)
	}
	noteStale(ctx, fieldPath(ctx), stale)
	return toLogonUsers(users), nil
}

// alertsOf resolves Machine.alerts: the device's alerts, the first `first` of them.
func (r *Resolver) alertsOf(ctx context.Context, m *model.Machine, first *int) ([]*model.Alert, error) {
	n, err := alertsLimit(first)
	if err != nil {
		return nil, err
	}
	alerts := m.Alerts
	if !m.Prefetched {
		list, stale, err := loaders.For(ctx).Alerts(ctx, m.ID)
		if err != nil {
			return nil, notFoundOfKnown(ctx, m.ID, defender.EndpointAlerts, err)
		}
		noteStale(ctx, fieldPath(ctx), stale)
		alerts = r.toAlerts(ctx, list)
	}
	if n > 0 && len(alerts) > n {
		alerts = alerts[:n]
	}
	return alerts, nil
}

// machinesOf resolves LogonUser.machines: the devices Defender has seen the account log on to,
// by its bare account name (one call per distinct name).
func (r *Resolver) machinesOf(ctx context.Context, u *model.LogonUser) ([]*model.Machine, error) {
	name, err := defender.ParseAccountName(u.AccountName)
	if err != nil {
		return nil, err
	}
	ms, stale, err := loaders.For(ctx).UserMachines(ctx, name)
	if err != nil {
		return nil, err
	}
	noteStale(ctx, fieldPath(ctx), stale)
	return r.toMachines(ctx, ms), nil
}

// fieldPath is the path of the field ctx resolves.
func fieldPath(ctx context.Context) ast.Path {
	return slices.Clone(graphql.GetFieldContext(ctx).Path())
}
