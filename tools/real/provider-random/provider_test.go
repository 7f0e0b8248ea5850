package main

import (
	"context"
	"pms-secrets/tools/real/pluginkit/plugintest"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

var ctx = context.Background()

// created runs Create for these inputs and returns the state.
func created(t *testing.T, in map[string]any) resource.PropertyMap {
	t.Helper()
	resp, err := newProvider().Create(ctx, plugin.CreateRequest{Type: passwordType, Properties: props(in)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID != "none" {
		t.Fatalf("id = %q, want none", resp.ID)
	}
	return resp.Properties
}

func diff(t *testing.T, olds resource.PropertyMap, news resource.PropertyMap) plugin.DiffResult {
	t.Helper()
	d, err := newProvider().Diff(ctx, plugin.DiffRequest{Type: passwordType, OldOutputs: olds, NewInputs: news})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func programArgs(rotation string) map[string]any {
	// What components/generated-secrets.ts sends for a "safe" alphabet secret.
	return map[string]any{
		"length": 50, "upper": true, "lower": true, "numeric": true, "special": true,
		"overrideSpecial": "-_.~", "minUpper": 1, "minLower": 1, "minNumeric": 1, "minSpecial": 1,
		"keepers": map[string]any{"rotation": rotation, "rotate": "0"},
	}
}

func TestCreateStateShape(t *testing.T) {
	st := created(t, programArgs("1"))
	for _, k := range []resource.PropertyKey{"result", "bcryptHash"} {
		if !st[k].IsSecret() {
			t.Errorf("%s is not secret", k)
		}
	}
	result := st["result"].SecretValue().Element.StringValue()
	if len(result) != 50 {
		t.Fatalf("result length %d", len(result))
	}
	want := map[string]any{"length": 50.0, "upper": true, "lower": true, "numeric": true, "number": true,
		"special": true, "overrideSpecial": "-_.~", "minUpper": 1.0, "minLower": 1.0, "minNumeric": 1.0, "minSpecial": 1.0}
	for k, v := range want {
		if got := st[resource.PropertyKey(k)]; !got.DeepEquals(resource.NewPropertyValue(v)) {
			t.Errorf("state %s = %v, want %v", k, got, v)
		}
	}
	if !st["keepers"].DeepEquals(resource.NewPropertyValue(map[string]any{"rotation": "1", "rotate": "0"})) {
		t.Errorf("keepers = %v", st["keepers"])
	}
}

func TestDefaultsFilledIntoState(t *testing.T) {
	st := created(t, map[string]any{"length": 20})
	for _, k := range []string{"upper", "lower", "numeric", "number", "special"} {
		if !st[resource.PropertyKey(k)].DeepEquals(resource.NewBoolProperty(true)) {
			t.Errorf("%s = %v, want true", k, st[resource.PropertyKey(k)])
		}
	}
	if _, ok := st["overrideSpecial"]; ok {
		t.Error("overrideSpecial present in state though not set")
	}
	if _, ok := st["keepers"]; ok {
		t.Error("keepers present in state though not set")
	}
}

func TestDiffNoChange(t *testing.T) {
	st := created(t, programArgs("1"))
	if d := diff(t, st, props(programArgs("1"))); d.Changes != plugin.DiffNone {
		t.Fatalf("same inputs: %+v", d)
	}
	// Leaving a default unset is not a change against a state that holds the default.
	st = created(t, map[string]any{"length": 20, "special": true, "numeric": true})
	if d := diff(t, st, props(map[string]any{"length": 20})); d.Changes != plugin.DiffNone {
		t.Fatalf("defaults left unset: %+v", d)
	}
}

func TestKeepersChangeReplaces(t *testing.T) {
	st := created(t, programArgs("1"))
	d := diff(t, st, props(programArgs("2")))
	if d.Changes != plugin.DiffSome || len(d.DetailedDiff) != 1 {
		t.Fatalf("diff = %+v", d)
	}
	if got := d.DetailedDiff["keepers.rotation"]; got.Kind != plugin.DiffUpdateReplace {
		t.Fatalf("keepers.rotation: %+v, want update-replace", got)
	}

	added := programArgs("1")
	added["keepers"].(map[string]any)["extra"] = "x"
	if got := diff(t, st, props(added)).DetailedDiff["keepers.extra"]; got.Kind != plugin.DiffAddReplace {
		t.Fatalf("added keeper: %+v", got)
	}
	removed := programArgs("1")
	delete(removed["keepers"].(map[string]any), "rotate")
	if got := diff(t, st, props(removed)).DetailedDiff["keepers.rotate"]; got.Kind != plugin.DiffDeleteReplace {
		t.Fatalf("removed keeper: %+v", got)
	}
}

func TestEveryInputChangeReplaces(t *testing.T) {
	st := created(t, programArgs("1"))
	changes := map[string]any{
		"length": 51, "upper": false, "lower": false, "numeric": false, "special": false,
		"overrideSpecial": "-_", "minUpper": 2, "minLower": 2, "minNumeric": 2, "minSpecial": 2,
	}
	for k, v := range changes {
		news := programArgs("1")
		news[k] = v
		d := diff(t, st, props(news))
		kinds := []plugin.DiffKind{}
		for _, pd := range d.DetailedDiff {
			kinds = append(kinds, pd.Kind)
			if !pd.Kind.IsReplace() {
				t.Errorf("%s change: %v is not a replacement", k, pd.Kind)
			}
		}
		if len(kinds) == 0 {
			t.Errorf("%s change: no diff", k)
		}
	}
}

func TestUnknownKeeperReplaces(t *testing.T) {
	st := created(t, programArgs("1"))
	news := props(programArgs("1"))
	news["keepers"] = resource.MakeComputed(resource.NewStringProperty(""))
	if got := diff(t, st, news).DetailedDiff["keepers"]; got.Kind != plugin.DiffUpdateReplace {
		t.Fatalf("unknown keepers: %+v", got)
	}
}

func TestOverrideSpecialEmptyToUnsetIsInPlace(t *testing.T) {
	st := created(t, map[string]any{"length": 10, "overrideSpecial": ""})
	d := diff(t, st, props(map[string]any{"length": 10}))
	if got := d.DetailedDiff["overrideSpecial"]; got.Kind != plugin.DiffDelete {
		t.Fatalf("\"\" -> unset: %+v, want an in-place delete", d)
	}
	up, err := newProvider().Update(ctx, plugin.UpdateRequest{Type: passwordType, OldOutputs: st, NewInputs: props(map[string]any{"length": 10})})
	if err != nil {
		t.Fatal(err)
	}
	if !up.Properties["result"].DeepEquals(st["result"]) {
		t.Fatal("in-place update changed the result")
	}
}

func TestCheckReportsFailuresAndKeepsInputs(t *testing.T) {
	resp, err := newProvider().Check(ctx, plugin.CheckRequest{Type: passwordType, News: props(map[string]any{"length": 2, "minUpper": 3})})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Failures) != 1 || resp.Failures[0].Property != "length" {
		t.Fatalf("failures = %+v", resp.Failures)
	}
	if _, err := newProvider().Check(ctx, plugin.CheckRequest{Type: "random:index/randomString:RandomString", News: props(nil)}); err == nil ||
		!strings.Contains(err.Error(), "not implemented by this stand-in") {
		t.Fatalf("other type: err = %v", err)
	}
}

func TestPreviewCreateLeavesResultUnknown(t *testing.T) {
	resp, err := newProvider().Create(ctx, plugin.CreateRequest{Type: passwordType, Properties: props(programArgs("1")), Preview: true})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Properties["result"].IsComputed() || !resp.Properties["bcryptHash"].IsComputed() {
		t.Fatalf("preview state: %v", resp.Properties)
	}
}

func TestReadKeepsStateAndImports(t *testing.T) {
	st := created(t, programArgs("1"))
	r, err := newProvider().Read(ctx, plugin.ReadRequest{Type: passwordType, ID: "none", State: st, Inputs: props(programArgs("1"))})
	if err != nil || !r.Outputs.DeepEquals(st) {
		t.Fatalf("refresh changed the state: %v", err)
	}
	imp, err := newProvider().Read(ctx, plugin.ReadRequest{Type: passwordType, ID: "s3cretValue"})
	if err != nil {
		t.Fatal(err)
	}
	if imp.ID != "none" || imp.Outputs["result"].SecretValue().Element.StringValue() != "s3cretValue" ||
		!imp.Outputs["length"].DeepEquals(resource.NewNumberProperty(11)) {
		t.Fatalf("import: %+v", imp)
	}
}

// Through the gRPC server the engine talks to: the result travels as a secret.
func TestGRPCCreateMarksResultSecret(t *testing.T) {
	srv := plugin.NewProviderServer(newProvider())
	if _, err := srv.Configure(ctx, &pulumirpc.ConfigureRequest{AcceptSecrets: true, AcceptResources: true}); err != nil {
		t.Fatal(err)
	}
	in, err := plugin.MarshalProperties(props(programArgs("1")), plugin.MarshalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	urn := "urn:pulumi:dev::pms::random:index/randomPassword:RandomPassword::pw"
	resp, err := srv.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: in})
	if err != nil {
		t.Fatal(err)
	}
	out, err := plugin.UnmarshalProperties(resp.GetProperties(), plugin.MarshalOptions{KeepSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	if !out["result"].IsSecret() || !out["bcryptHash"].IsSecret() {
		t.Fatalf("result/bcryptHash not secret on the wire: %v", resp.GetProperties())
	}
}

// The built binary speaks the plugin protocol: first stdout line is the port; it reports the
// version @pulumi/random 4.21.2 asks for.
func TestBinaryServesPluginInfo(t *testing.T) {
	plugintest.ServesPluginInfo(t, providerName, providerVersion)
}
