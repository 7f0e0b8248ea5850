package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

// input is one property as the engine sent it: absent/null, unknown (preview), or known
// (secret wrappers removed: the engine keeps secret-ness on its side, and the state this
// provider returns re-wraps what upstream marks secret).
type input struct {
	set, known bool
	v          resource.PropertyValue
}

func get(m resource.PropertyMap, key resource.PropertyKey) input {
	v, ok := m[key]
	if !ok || v.IsNull() {
		return input{}
	}
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.ContainsUnknowns() {
		return input{set: true}
	}
	return input{set: true, known: true, v: v}
}

// str returns a known string property ("" when absent).
func str(m resource.PropertyMap, key resource.PropertyKey) string {
	in := get(m, key)
	if in.known && in.v.IsString() {
		return in.v.StringValue()
	}
	return ""
}

// strMap returns a known map-of-strings property (nil when absent).
func strMap(m resource.PropertyMap, key resource.PropertyKey) map[string]string {
	in := get(m, key)
	if !in.known || !in.v.IsObject() {
		return nil
	}
	out := map[string]string{}
	for k := range in.v.ObjectValue() {
		if e := get(in.v.ObjectValue(), k); e.known && e.v.IsString() {
			out[string(k)] = e.v.StringValue()
		}
	}
	return out
}

func strList(m resource.PropertyMap, key resource.PropertyKey) ([]string, bool) {
	in := get(m, key)
	if !in.known || !in.v.IsArray() {
		return nil, false
	}
	var out []string
	for _, e := range in.v.ArrayValue() {
		for e.IsSecret() {
			e = e.SecretValue().Element
		}
		if e.IsString() {
			out = append(out, e.StringValue())
		}
	}
	return out, true
}

func stringsProperty(values []string) resource.PropertyValue {
	arr := make([]resource.PropertyValue, 0, len(values))
	for _, v := range values {
		arr = append(arr, resource.NewStringProperty(v))
	}
	return resource.NewArrayProperty(arr)
}

func mapProperty(m map[string]string) resource.PropertyValue {
	out := resource.PropertyMap{}
	for k, v := range m {
		out[resource.PropertyKey(k)] = resource.NewStringProperty(v)
	}
	return resource.NewObjectProperty(out)
}

func unknown() resource.PropertyValue {
	return resource.MakeComputed(resource.NewStringProperty(""))
}

// failures collects check failures; reasons never contain property values (they may be secret).
type failures []plugin.CheckFailure

func (f *failures) add(prop, format string, args ...any) {
	*f = append(*f, plugin.CheckFailure{Property: resource.PropertyKey(prop), Reason: fmt.Sprintf(format, args...)})
}

// checkKeys fails every property the resource does not accept, naming the ones it does.
func (f *failures) checkKeys(typ string, news resource.PropertyMap, accepted, unsupported []string) {
	ok := map[string]bool{}
	for _, k := range accepted {
		ok[k] = true
	}
	no := map[string]bool{}
	for _, k := range unsupported {
		no[k] = true
	}
	keys := make([]string, 0, len(news))
	for k := range news {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "__"):
		case no[k] && !news[resource.PropertyKey(k)].IsNull():
			f.add(k, "%s is a pulumi-aws %s input that this stand-in provider does not implement "+
				"(tools/real/provider-aws/README.md); remove it or use the real provider", k, typ)
		case !ok[k] && !no[k]:
			f.add(k, "unknown property %q: %s accepts %s", k, typ, strings.Join(accepted, ", "))
		}
	}
}

// checkType fails a property that is set and known but not of the wanted kind.
func (f *failures) checkString(news resource.PropertyMap, key string) {
	if in := get(news, resource.PropertyKey(key)); in.known && !in.v.IsString() {
		f.add(key, "%s must be a string, got a %s", key, in.v.TypeString())
	}
}

func (f *failures) checkStringMap(news resource.PropertyMap, key string) {
	in := get(news, resource.PropertyKey(key))
	if !in.known {
		return
	}
	if !in.v.IsObject() {
		f.add(key, "%s must be a map of strings, got a %s", key, in.v.TypeString())
		return
	}
	for k := range in.v.ObjectValue() {
		if e := get(in.v.ObjectValue(), k); e.known && !e.v.IsString() {
			f.add(key, "%s.%s must be a string, got a %s", key, k, e.v.TypeString())
		}
	}
}

// diffKind is the detailed-diff kind for a property that changed from old to new.
func diffKind(oldIn, newIn input, replace bool) plugin.DiffKind {
	switch {
	case !oldIn.set && replace:
		return plugin.DiffAddReplace
	case !oldIn.set:
		return plugin.DiffAdd
	case !newIn.set && replace:
		return plugin.DiffDeleteReplace
	case !newIn.set:
		return plugin.DiffDelete
	case replace:
		return plugin.DiffUpdateReplace
	}
	return plugin.DiffUpdate
}

func sameInput(a, b input) bool {
	if a.set != b.set {
		return false
	}
	if !a.set {
		return true
	}
	if !a.known || !b.known {
		return false
	}
	return a.v.DeepEquals(b.v)
}

// emptyAsUnset treats "" like an absent optional string, as Terraform's SDKv2 does.
func emptyAsUnset(in input) input {
	if in.known && in.v.IsString() && in.v.StringValue() == "" {
		return input{}
	}
	return in
}

func diffResult(detailed map[string]plugin.PropertyDiff) plugin.DiffResult {
	if len(detailed) == 0 {
		return plugin.DiffResult{Changes: plugin.DiffNone}
	}
	return plugin.DiffResult{Changes: plugin.DiffSome, DetailedDiff: detailed}
}
