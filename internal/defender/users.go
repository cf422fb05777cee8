package defender

import (
	"context"
	"net/url"
)

// UsersService calls the users area of the API.
type UsersService struct {
	client *Client
}

// Machines returns the devices the account logged on to (GET /api/users/{accountName}/machines),
// in the API's order. {accountName} is the bare account name, without its domain and not a UPN
// (../shared/UPSTREAM.md): Defender matches it in every domain, so a local account such as
// administrator stands for the accounts of that name on every device. An account Defender does
// not know is an empty list (200), not an error; a person's token sees only the person's
// devices.
func (s *UsersService) Machines(ctx context.Context, accountName string) ([]Machine, *Response, error) {
	name, err := ParseAccountName(accountName)
	if err != nil {
		return nil, nil, err
	}
	return getList[Machine](ctx, s.client, EndpointUserMachines, "/api/users/"+url.PathEscape(name.String())+"/machines", "")
}
