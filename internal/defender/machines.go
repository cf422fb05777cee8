package defender

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// MachinesService calls the machines area of the API.
type MachinesService struct {
	client *Client
}

// MaxIDsPerList is how many device ids GetByIDs puts in one $filter: 25 terms of
// "id eq '<40 hex>'" keep the URL near 1.5 kB, under the 2 kB that proxies and IIS accept.
const MaxIDsPerList = 25

// listEnvelope is an OData collection answer.
type listEnvelope[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// Get returns one machine by device id or computer DNS name.
func (s *MachinesService) Get(ctx context.Context, id string) (*Machine, *Response, error) {
	ref, err := ParseMachineRef(id)
	if err != nil {
		return nil, nil, err
	}
	var m Machine
	resp, err := s.client.get(ctx, EndpointMachine, "/api/machines/"+url.PathEscape(ref.String()), "", &m)
	if err != nil {
		return nil, resp, about(ref, err)
	}
	return &m, resp, nil
}

// LogonUsers returns the users logged on to the device id.
func (s *MachinesService) LogonUsers(ctx context.Context, id string) ([]User, *Response, error) {
	return deviceList[User](ctx, s.client, EndpointLogonUsers, id, "logonusers")
}

// Alerts returns the alerts Defender raised on the device id (GET
// /api/machines/{id}/alerts), in the API's order. Defender answers 404 for a device it does
// not know (or, to a person, may not show). The documented {id} is the device id: a computer
// name is refused, to be resolved first.
func (s *MachinesService) Alerts(ctx context.Context, id string) ([]Alert, *Response, error) {
	if ref, err := ParseMachineRef(id); err == nil && !ref.IsDeviceID() {
		return nil, nil, &InvalidInputError{Field: "id", Value: id, Reason: "must be a 40-hex device id"}
	}
	return deviceList[Alert](ctx, s.client, EndpointAlerts, id, "alerts")
}

// deviceList calls GET /api/machines/{id}/{what} for endpoint, after validating id.
func deviceList[T any](ctx context.Context, c *Client, endpoint Endpoint, id, what string) ([]T, *Response, error) {
	ref, err := ParseMachineRef(id)
	if err != nil {
		return nil, nil, err
	}
	list, resp, err := getList[T](ctx, c, endpoint, "/api/machines/"+url.PathEscape(ref.String())+"/"+what, "")
	return list, resp, about(ref, err)
}

// getList calls GET path?query for endpoint and returns the values of its OData collection,
// an empty (non-nil) slice when there are none.
func getList[T any](ctx context.Context, c *Client, endpoint Endpoint, path, query string) ([]T, *Response, error) {
	var env listEnvelope[T]
	resp, err := c.get(ctx, endpoint, path, query, &env)
	if err != nil {
		return nil, resp, err
	}
	if env.Value == nil {
		env.Value = []T{}
	}
	return env.Value, resp, nil
}

// about notes in the API's error answer which machine the call asked about (nil stays nil).
func about(ref MachineRef, err error) error {
	var er *ErrorResponse
	if errors.As(err, &er) {
		er.Machine = ref
	}
	return err
}

// ListOptions are the OData query options of GET /api/machines.
type ListOptions struct {
	// Filter is an OData $filter expression, sent as given: build it with MachineFilter.OData,
	// never from a caller's text.
	Filter string
	// Top is $top (0: the API's default); the API allows at most 10000.
	Top int
	// Skip is $skip.
	Skip int
}

// MaxTop is the largest $top GET /api/machines accepts.
const MaxTop = 10000

// List returns one page of machines matching opts: at most Top of them, from the Skip-th on.
// With Top set the API sends no @odata.nextLink (../shared/UPSTREAM.md): page with Top and
// Skip, and stop on a page shorter than Top. A 404, Defender's answer when it has no recent
// machines (none the caller may see), is an empty page, not an error.
func (s *MachinesService) List(ctx context.Context, opts ListOptions) ([]Machine, *Response, error) {
	if opts.Top < 0 || opts.Top > MaxTop {
		return nil, nil, &InvalidInputError{Field: "$top", Value: strconv.Itoa(opts.Top), Reason: fmt.Sprintf("must be between 0 and %d", MaxTop)}
	}
	if opts.Skip < 0 {
		return nil, nil, &InvalidInputError{Field: "$skip", Value: strconv.Itoa(opts.Skip), Reason: "must not be negative"}
	}
	var q []string
	if opts.Filter != "" {
		q = append(q, "$filter="+escapeQuery(opts.Filter))
	}
	if opts.Top > 0 {
		q = append(q, "$top="+strconv.Itoa(opts.Top))
	}
	if opts.Skip > 0 {
		q = append(q, "$skip="+strconv.Itoa(opts.Skip))
	}
	ms, resp, err := getList[Machine](ctx, s.client, EndpointMachines, "/api/machines", strings.Join(q, "&"))
	if IsNotFound(err) {
		return []Machine{}, resp, nil
	}
	return ms, resp, err
}

// GetByIDs returns the machines among ids (device ids, at most MaxIDsPerList) in one list
// call; ids the API does not know are simply absent from the answer.
func (s *MachinesService) GetByIDs(ctx context.Context, ids []string) ([]Machine, *Response, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	if len(ids) > MaxIDsPerList {
		return nil, nil, &InvalidInputError{Field: "ids", Value: strconv.Itoa(len(ids)) + " ids", Reason: fmt.Sprintf("at most %d per call", MaxIDsPerList)}
	}
	terms := make([]string, len(ids))
	for i, id := range ids {
		if !isDeviceID(id) {
			return nil, nil, &InvalidInputError{Field: "id", Value: id, Reason: "must be a 40-hex device id"}
		}
		terms[i] = "id eq '" + strings.ToLower(id) + "'"
	}
	return s.List(ctx, ListOptions{Filter: strings.Join(terms, " or ")})
}

// escapeQuery escapes an OData query value with %20 for spaces (OData's preferred form) rather
// than '+'.
func escapeQuery(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
