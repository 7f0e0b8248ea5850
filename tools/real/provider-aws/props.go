package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"pms-secrets/tools/real/pluginkit"
)

// input is one property as the engine sent it (absent, unknown in a preview, or known, secret
// wrappers removed); get reads one. Both are pluginkit's, shared with the other stand-in.
type input = pluginkit.Input

func get(m resource.PropertyMap, key resource.PropertyKey) input { return pluginkit.Get(m, key) }

// str returns a known string property ("" when absent).
func str(m resource.PropertyMap, key resource.PropertyKey) string {
	in := get(m, key)
	if in.Known && in.V.IsString() {
		return in.V.StringValue()
	}
	return ""
}

// strMap returns a known map-of-strings property (nil when absent).
func strMap(m resource.PropertyMap, key resource.PropertyKey) map[string]string {
	in := get(m, key)
	if !in.Known || !in.V.IsObject() {
		return nil
	}
	out := map[string]string{}
	for k := range in.V.ObjectValue() {
		if e := get(in.V.ObjectValue(), k); e.Known && e.V.IsString() {
			out[string(k)] = e.V.StringValue()
		}
	}
	return out
}

func strList(m resource.PropertyMap, key resource.PropertyKey) ([]string, bool) {
	in := get(m, key)
	if !in.Known || !in.V.IsArray() {
		return nil, false
	}
	var out []string
	for _, e := range in.V.ArrayValue() {
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
	if in := get(news, resource.PropertyKey(key)); in.Known && !in.V.IsString() {
		f.add(key, "%s must be a string, got a %s", key, in.V.TypeString())
	}
}

func (f *failures) checkStringMap(news resource.PropertyMap, key string) {
	in := get(news, resource.PropertyKey(key))
	if !in.Known {
		return
	}
	if !in.V.IsObject() {
		f.add(key, "%s must be a map of strings, got a %s", key, in.V.TypeString())
		return
	}
	for k := range in.V.ObjectValue() {
		if e := get(in.V.ObjectValue(), k); e.Known && !e.V.IsString() {
			f.add(key, "%s.%s must be a string, got a %s", key, k, e.V.TypeString())
		}
	}
}

// diffKind is the detailed-diff kind for a property that changed from old to new.
func diffKind(oldIn, newIn input, replace bool) plugin.DiffKind {
	switch {
	case !oldIn.Set && replace:
		return plugin.DiffAddReplace
	case !oldIn.Set:
		return plugin.DiffAdd
	case !newIn.Set && replace:
		return plugin.DiffDeleteReplace
	case !newIn.Set:
		return plugin.DiffDelete
	case replace:
		return plugin.DiffUpdateReplace
	}
	return plugin.DiffUpdate
}

func sameInput(a, b input) bool {
	if a.Set != b.Set {
		return false
	}
	if !a.Set {
		return true
	}
	if !a.Known || !b.Known {
		return false
	}
	return a.V.DeepEquals(b.V)
}

// emptyAsUnset treats "" like an absent optional string, as Terraform's SDKv2 does.
func emptyAsUnset(in input) input {
	if in.Known && in.V.IsString() && in.V.StringValue() == "" {
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
