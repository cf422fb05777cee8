package resolvers

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mdegraph/mdegraph/graph"
)

// TestEveryFieldDeclaresItsCost: every field our own code resolves (a method of the
// resolvers graph.ResolverRoot returns) and every field that takes arguments is listed in
// fieldCosts, so no new field is free in the upstream-call estimate by omission; and every
// listed field exists.
func TestEveryFieldDeclaresItsCost(t *testing.T) {
	t.Parallel()
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &Resolver{}}).Schema()
	fieldName := func(typeName, method string) string {
		for _, f := range schema.Types[typeName].Fields {
			if strings.EqualFold(f.Name, method) {
				return typeName + "." + f.Name
			}
		}
		t.Fatalf("resolver method %s.%s matches no field of the schema", typeName, method)
		return ""
	}
	want := map[string]string{} // field → why it must be declared
	root := reflect.TypeFor[graph.ResolverRoot]()
	for i := range root.NumMethod() {
		typeName := root.Method(i).Name // Machine() MachineResolver
		resolver := root.Method(i).Type.Out(0)
		for j := range resolver.NumMethod() {
			want[fieldName(typeName, resolver.Method(j).Name)] = "it has a resolver"
		}
	}
	for typeName, def := range schema.Types {
		if strings.HasPrefix(typeName, "__") {
			continue // introspection: answered by gqlgen, never upstream
		}
		for _, f := range def.Fields {
			if len(f.Arguments) > 0 && !strings.HasPrefix(f.Name, "__") {
				want[typeName+"."+f.Name] = "it takes arguments"
			}
		}
	}
	if len(want) < 2 { // Query.machine and Query.quota at least
		t.Fatalf("found only %v: the schema walk is broken", want)
	}
	for field, why := range want {
		if _, ok := fieldCosts[field]; !ok {
			t.Errorf("%s is not in fieldCosts, but %s: declare what it costs upstream (nil if nothing)", field, why)
		}
	}
	for field := range fieldCosts {
		typeName, name, _ := strings.Cut(field, ".")
		if def := schema.Types[typeName]; def == nil || def.Fields.ForName(name) == nil {
			t.Errorf("fieldCosts lists %s, which the schema does not have", field)
		}
	}
}
