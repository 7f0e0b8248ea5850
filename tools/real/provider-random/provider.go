package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"pms-secrets/tools/real/pluginkit"
)

const (
	providerName    = "random"
	providerVersion = "4.21.2"
	passwordType    = "random:index/randomPassword:RandomPassword"
	// Upstream's random_password has no remote object; Terraform's id is this constant.
	passwordID = "none"
)

// provider embeds pluginkit.Base (handshake, plugin info) and implements RandomPassword.
type provider struct {
	pluginkit.Base
}

func newProvider() *provider { return &provider{Base: pluginkit.Base{Version: providerVersion}} }

// GetSchema returns the part of pulumi-random's schema this stand-in implements.
func (p *provider) GetSchema(context.Context, plugin.GetSchemaRequest) (plugin.GetSchemaResponse, error) {
	prop := func(typ string) map[string]any { return map[string]any{"type": typ} }
	inputs := map[string]any{
		"keepers": map[string]any{"type": "object", "additionalProperties": prop("string")},
		"length":  prop("integer"), "lower": prop("boolean"), "upper": prop("boolean"),
		"special": prop("boolean"), "numeric": prop("boolean"),
		"number":   map[string]any{"type": "boolean", "deprecationMessage": "**NOTE**: This is deprecated, use `numeric` instead."},
		"minLower": prop("integer"), "minUpper": prop("integer"), "minNumeric": prop("integer"),
		"minSpecial": prop("integer"), "overrideSpecial": prop("string"),
	}
	outputs := map[string]any{
		"result":     map[string]any{"type": "string", "secret": true},
		"bcryptHash": map[string]any{"type": "string", "secret": true},
	}
	for k, v := range inputs {
		outputs[k] = v
	}
	schema := map[string]any{
		"name":    providerName,
		"version": providerVersion,
		"resources": map[string]any{passwordType: map[string]any{
			"inputProperties": inputs,
			"requiredInputs":  []string{"length"},
			"properties":      outputs,
			"required": []string{"bcryptHash", "length", "lower", "minLower", "minNumeric", "minSpecial",
				"minUpper", "number", "numeric", "result", "special", "upper"},
		}},
	}
	b, err := json.Marshal(schema)
	return plugin.GetSchemaResponse{Schema: b}, err
}

// The provider has no configuration (upstream's random provider has none either).
func (p *provider) CheckConfig(_ context.Context, req plugin.CheckConfigRequest) (plugin.CheckConfigResponse, error) {
	return plugin.CheckConfigResponse{Properties: req.News}, nil
}

func (p *provider) DiffConfig(context.Context, plugin.DiffConfigRequest) (plugin.DiffConfigResponse, error) {
	return plugin.DiffResult{Changes: plugin.DiffNone}, nil
}

func (p *provider) Configure(context.Context, plugin.ConfigureRequest) (plugin.ConfigureResponse, error) {
	return plugin.ConfigureResponse{}, nil
}

func checkType(typ string) error {
	if typ != passwordType {
		return fmt.Errorf("resource type %s is not implemented by this stand-in random provider "+
			"(it implements only %s); see tools/real/provider-random/README.md", typ, passwordType)
	}
	return nil
}

// Check validates the inputs as upstream's schema validators do and returns them unchanged
// (defaults are applied in the plan, as upstream's framework does, not written into inputs).
func (p *provider) Check(_ context.Context, req plugin.CheckRequest) (plugin.CheckResponse, error) {
	if err := checkType(string(req.Type)); err != nil {
		return plugin.CheckResponse{}, err
	}
	_, _, failures := parseSpec(req.News)
	resp := plugin.CheckResponse{Properties: req.News}
	for _, f := range failures {
		resp.Failures = append(resp.Failures, plugin.CheckFailure{Property: resource.PropertyKey(f.property), Reason: f.reason})
	}
	return resp, nil
}

// planned is what the state's input properties will be for these inputs: upstream's defaults
// filled in (true for the classes, 0 for the minimums) and number/numeric synchronised.
// Unknown inputs stay unknown.
func planned(news resource.PropertyMap) resource.PropertyMap {
	out := resource.PropertyMap{}
	for k, v := range news {
		if !v.IsNull() && passwordInputs[string(k)] {
			out[k] = v
		}
	}
	for _, k := range []resource.PropertyKey{"lower", "upper", "special"} {
		if _, ok := out[k]; !ok {
			out[k] = resource.NewBoolProperty(true)
		}
	}
	for _, k := range []resource.PropertyKey{"minLower", "minUpper", "minNumeric", "minSpecial"} {
		if _, ok := out[k]; !ok {
			out[k] = resource.NewNumberProperty(0)
		}
	}
	number, hasNumber := out["number"]
	numeric, hasNumeric := out["numeric"]
	switch {
	case !hasNumber && !hasNumeric:
		out["number"], out["numeric"] = resource.NewBoolProperty(true), resource.NewBoolProperty(true)
	case !hasNumeric:
		out["numeric"] = number
	case !hasNumber:
		out["number"] = numeric
	}
	return out
}

// Diff: every input of random_password requires replacement (upstream's RequiresReplace plan
// modifiers), with upstream's two exceptions: overrideSpecial going from "" to unset, and a
// keepers change that only adds keys with null values (both in-place, nothing regenerated).
func (p *provider) Diff(_ context.Context, req plugin.DiffRequest) (plugin.DiffResponse, error) {
	if err := checkType(string(req.Type)); err != nil {
		return plugin.DiffResult{}, err
	}
	plan := planned(req.NewInputs)
	detailed := map[string]plugin.PropertyDiff{}
	for _, name := range passwordInputOrder {
		key := resource.PropertyKey(name)
		oldIn, newIn := get(req.OldOutputs, key), get(plan, key)
		if key == "keepers" {
			diffKeepers(oldIn, newIn, detailed)
			continue
		}
		if sameInput(oldIn, newIn) {
			continue
		}
		kind := plugin.DiffUpdateReplace
		switch {
		case !oldIn.Set:
			kind = plugin.DiffAddReplace
		case !newIn.Set:
			kind = plugin.DiffDeleteReplace
		}
		if key == "overrideSpecial" && !newIn.Set && oldIn.Known && oldIn.V.IsString() && oldIn.V.StringValue() == "" {
			kind = plugin.DiffDelete
		}
		detailed[name] = plugin.PropertyDiff{Kind: kind}
	}
	if len(detailed) == 0 {
		return plugin.DiffResult{Changes: plugin.DiffNone}, nil
	}
	return plugin.DiffResult{Changes: plugin.DiffSome, DetailedDiff: detailed}, nil
}

func sameInput(a, b input) bool {
	if a.Set != b.Set {
		return false
	}
	if !a.Set {
		return true
	}
	if !a.Known || !b.Known {
		return false // an unknown new value may differ
	}
	return a.V.DeepEquals(b.V)
}

// diffKeepers follows upstream's RequiresReplaceIfValuesNotNull: a change replaces, except
// when the only difference is keys with null values that the old state did not have.
func diffKeepers(oldIn, newIn input, detailed map[string]plugin.PropertyDiff) {
	if sameInput(oldIn, newIn) {
		return
	}
	if !oldIn.Known || !newIn.Known || !oldIn.V.IsObject() || !newIn.V.IsObject() {
		kind := plugin.DiffUpdateReplace
		switch {
		case !oldIn.Set:
			kind = plugin.DiffAddReplace
		case !newIn.Set:
			kind = plugin.DiffDeleteReplace
		}
		// Unset to an all-null map is not a replacement upstream.
		if !oldIn.Set && newIn.Known && newIn.V.IsObject() && allNull(newIn.V.ObjectValue()) {
			kind = plugin.DiffAdd
		}
		detailed["keepers"] = plugin.PropertyDiff{Kind: kind}
		return
	}
	olds, news := oldIn.V.ObjectValue(), newIn.V.ObjectValue()
	for k := range news {
		o, n := get(olds, k), get(news, k)
		if sameInput(o, n) {
			continue
		}
		path := resource.PropertyPath{"keepers", string(k)}.String()
		switch {
		case !n.Set: // a null value for a key the state lacks: not a change upstream
			continue
		case !o.Set:
			detailed[path] = plugin.PropertyDiff{Kind: plugin.DiffAddReplace}
		default:
			detailed[path] = plugin.PropertyDiff{Kind: plugin.DiffUpdateReplace}
		}
	}
	for k := range olds {
		if _, ok := news[k]; !ok && get(olds, k).Set {
			detailed[resource.PropertyPath{"keepers", string(k)}.String()] = plugin.PropertyDiff{Kind: plugin.DiffDeleteReplace}
		}
	}
}

func allNull(m resource.PropertyMap) bool {
	for _, v := range m {
		if !v.IsNull() {
			return false
		}
	}
	return true
}

// state is the resource's state: the planned inputs plus the two secret outputs.
func state(news resource.PropertyMap, result, hash resource.PropertyValue) resource.PropertyMap {
	out := planned(news)
	out["result"] = result
	out["bcryptHash"] = hash
	return out
}

func (p *provider) Create(_ context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	if err := checkType(string(req.Type)); err != nil {
		return plugin.CreateResponse{}, err
	}
	spec, known, failures := parseSpec(req.Properties)
	if len(failures) > 0 {
		return plugin.CreateResponse{}, fmt.Errorf("invalid RandomPassword inputs: %s: %s", failures[0].property, failures[0].reason)
	}
	if req.Preview || !known {
		unknown := resource.MakeComputed(resource.NewStringProperty(""))
		return plugin.CreateResponse{Properties: state(req.Properties, unknown, unknown), Status: resource.StatusOK}, nil
	}
	result, err := generate(spec)
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	hash, err := bcryptHash(result)
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	return plugin.CreateResponse{
		ID: passwordID,
		Properties: state(req.Properties,
			resource.MakeSecret(resource.NewStringProperty(result)),
			resource.MakeSecret(resource.NewStringProperty(hash))),
		Status: resource.StatusOK,
	}, nil
}

// Read returns the state unchanged (upstream's Read is a no-op: there is nothing remote).
// With no state it is an import: the ID is the password, as in upstream's ImportState.
func (p *provider) Read(_ context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	if err := checkType(string(req.Type)); err != nil {
		return plugin.ReadResponse{}, err
	}
	if len(req.State) > 0 {
		return plugin.ReadResponse{
			ReadResult: plugin.ReadResult{ID: req.ID, Inputs: req.Inputs, Outputs: req.State},
			Status:     resource.StatusOK,
		}, nil
	}
	imported := string(req.ID)
	hash, err := bcryptHash(imported)
	if err != nil {
		return plugin.ReadResponse{}, err
	}
	inputs := resource.PropertyMap{"length": resource.NewNumberProperty(float64(len(imported)))}
	return plugin.ReadResponse{
		ReadResult: plugin.ReadResult{
			ID:     passwordID,
			Inputs: inputs,
			Outputs: state(inputs,
				resource.MakeSecret(resource.NewStringProperty(imported)),
				resource.MakeSecret(resource.NewStringProperty(hash))),
		},
		Status: resource.StatusOK,
	}, nil
}

// Update is reached only for the in-place changes Diff allows; upstream copies the plan into
// the state and keeps the generated value.
func (p *provider) Update(_ context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	if err := checkType(string(req.Type)); err != nil {
		return plugin.UpdateResponse{}, err
	}
	return plugin.UpdateResponse{
		Properties: state(req.NewInputs, req.OldOutputs["result"], req.OldOutputs["bcryptHash"]),
		Status:     resource.StatusOK,
	}, nil
}

// Delete has nothing to remove (upstream's Delete is a no-op too).
func (p *provider) Delete(_ context.Context, req plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	if err := checkType(string(req.Type)); err != nil {
		return plugin.DeleteResponse{}, err
	}
	return plugin.DeleteResponse{Status: resource.StatusOK}, nil
}
