package pluginkit

import "github.com/pulumi/pulumi/sdk/v3/go/common/resource"

// Input is one property as the engine sent it: absent/null, unknown (computed, during preview),
// or a known value. Secret wrappers are removed: the engine keeps secret-ness on its side, and
// the state a provider returns re-wraps what upstream marks secret.
type Input struct {
	Set, Known bool
	V          resource.PropertyValue
}

// Get reads property key of m.
func Get(m resource.PropertyMap, key resource.PropertyKey) Input {
	v, ok := m[key]
	if !ok || v.IsNull() {
		return Input{}
	}
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.ContainsUnknowns() {
		return Input{Set: true}
	}
	return Input{Set: true, Known: true, V: v}
}
