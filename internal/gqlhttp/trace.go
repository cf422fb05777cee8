package gqlhttp

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mdegraph/mdegraph/internal/tracing"
)

// tracerName is this package's OpenTelemetry tracer (instrumentation scope).
const tracerName = "github.com/mdegraph/mdegraph/internal/gqlhttp"

// AttrErrorCodes is the operation span's attribute listing its answer's errors' extensions.code
// values, in order (a string array).
const AttrErrorCodes = attribute.Key("mdegraph.graphql.error_codes")

// operationSpanName is the operation span's name until the operation is known: a request
// refused before execution (it does not parse, validate or pass the limits) keeps it, as the
// semantic conventions for GraphQL spans allow.
const operationSpanName = "GraphQL Operation"

type operationSpanKey struct{}

// withOperationSpan runs next in the GraphQL operation span, a child of the request's span,
// when that one records (see tracing.Start). The span covers reading the request, parsing,
// validation, execution and writing the answer; the operation hooks name it and record its
// errors (traceOperation, traceResponse). An OPTIONS request carries no operation.
func withOperationSpan(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || !tracing.Recording(r.Context()) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, span := tracing.Start(r.Context(), tracerName, operationSpanName)
		defer span.End()
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, operationSpanKey{}, span)))
	})
}

// operationSpan returns the request's operation span, or nil when none records.
func operationSpan(ctx context.Context) trace.Span {
	span, _ := ctx.Value(operationSpanKey{}).(trace.Span)
	return span
}

// traceOperation names the operation span after the operation about to execute, as the
// semantic conventions for GraphQL server spans say: "{type} {name}" ("query
// DeviceLogonUsers"), or the type alone for an anonymous operation, with graphql.operation.type
// and graphql.operation.name. The document itself (graphql.document) is not recorded: its
// arguments name devices and people.
func traceOperation(ctx context.Context) {
	span := operationSpan(ctx)
	if span == nil || !graphql.HasOperationContext(ctx) {
		return
	}
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil {
		return
	}
	kind := string(oc.Operation.Operation)
	span.SetAttributes(semconv.GraphQLOperationTypeKey.String(kind))
	name := oc.Operation.Name
	if name == "" {
		span.SetName(kind)
		return
	}
	span.SetName(kind + " " + name)
	span.SetAttributes(semconv.GraphQLOperationName(name))
}

// traceResponse records the answer's error codes on the operation span (AttrErrorCodes) and
// marks it failed, its status description listing each code once.
func traceResponse(ctx context.Context, errCodes []string) {
	span := operationSpan(ctx)
	if span == nil || len(errCodes) == 0 {
		return
	}
	span.SetAttributes(AttrErrorCodes.StringSlice(errCodes))
	span.SetStatus(codes.Error, strings.Join(slices.Compact(slices.Sorted(slices.Values(errCodes))), ", "))
}
