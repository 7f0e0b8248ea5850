package main

import (
	"pms-secrets/tools/real/pluginkit/plugintest"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

// Unit tests that need no AWS endpoint: configuration, validation, diff semantics.

func reasons(f []plugin.CheckFailure) string {
	var out []string
	for _, x := range f {
		out = append(out, string(x.Property)+": "+x.Reason)
	}
	return strings.Join(out, "\n")
}

func TestConfigRequiresRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	resp, err := newProvider().CheckConfig(bg, plugin.CheckConfigRequest{News: pm(map[string]any{"version": "7.48.0"})})
	if err != nil {
		t.Fatal(err)
	}
	want := "missing required configuration key \"aws:region\": The region where AWS operations will take place. " +
		"Examples are us-east-1, us-west-2, etc.\nSet a value using the command `pulumi config set aws:region <value>`."
	if len(resp.Failures) != 1 || resp.Failures[0].Property != "" || resp.Failures[0].Reason != want {
		t.Fatalf("failures:\n%s", reasons(resp.Failures))
	}
	t.Setenv("AWS_REGION", "eu-central-1")
	cfg, fails := parseConfig(pm(map[string]any{}))
	if len(fails) != 0 || cfg.region != "eu-central-1" {
		t.Fatalf("region from AWS_REGION: %q %v", cfg.region, fails)
	}
}

func TestConfigValues(t *testing.T) {
	// Stack config reaches the provider as strings, objects as JSON text.
	cfg, fails := parseConfig(pm(map[string]any{
		"region": "eu-west-1", "defaultTags": `{"tags":{"owner":"ops"}}`,
		"endpoints": `[{"secretsmanager":"http://127.0.0.1:4566"}]`, "skipCredentialsValidation": "true", "maxRetries": "3",
	}))
	if len(fails) != 0 {
		t.Fatal(reasons(fails))
	}
	if cfg.defaultTags["owner"] != "ops" || cfg.endpoint != "http://127.0.0.1:4566" || !cfg.skipCredentialsValidation || cfg.maxRetries != 3 {
		t.Fatalf("cfg = %+v", cfg)
	}
	_, fails = parseConfig(pm(map[string]any{"region": "eu-west-1", "assumeRoles": `[{"roleArn":"x"}]`, "accessKey": "AKIA"}))
	got := reasons(fails)
	if len(fails) != 2 || !strings.Contains(got, "aws:assumeRoles is not implemented by this stand-in") ||
		!strings.Contains(got, "aws:accessKey and aws:secretKey must be set together") {
		t.Fatalf("failures:\n%s", got)
	}
}

func TestSecretCheck(t *testing.T) {
	check := func(in map[string]any) []plugin.CheckFailure {
		resp, err := checkSecret(plugin.CheckRequest{Type: secretType, Name: "store", News: pm(in)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Failures
	}
	cases := []struct {
		in   map[string]any
		want string
	}{
		{map[string]any{"name": "a", "recoveryWindowInDays": 5}, "recoveryWindowInDays: expected recoveryWindowInDays to be in the range (7 - 30), got 5; expected recoveryWindowInDays to be one of [0], got 5"},
		{map[string]any{"name": "a", "namePrefix": "b"}, `name: "name": conflicts with namePrefix`},
		{map[string]any{"name": "pms backend"}, "name: invalid value for name (must contain only alphanumeric characters and the characters /_+=.@-)"},
		{map[string]any{"name": "a", "replicas": []any{map[string]any{"region": "us-east-1"}}}, "replicas: replicas is a pulumi-aws aws.secretsmanager.Secret input that this stand-in provider does not implement"},
		{map[string]any{"name": "a", "policy": "{not json"}, `policy: "policy" contains an invalid JSON`},
		{map[string]any{"name": "a", "tags": map[string]any{"n": 1}}, "tags: tags.n must be a string, got a number"},
	}
	for _, tc := range cases {
		got := reasons(check(tc.in))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%v:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, ok := range []map[string]any{{"name": "pms-backend/prod", "recoveryWindowInDays": 0}, {"name": "x", "recoveryWindowInDays": 30}} {
		if f := check(ok); len(f) != 0 {
			t.Errorf("%v: unexpected failures %s", ok, reasons(f))
		}
	}
}

func TestSecretAutonamedFromResourceName(t *testing.T) {
	req := plugin.CheckRequest{Type: secretType, Name: "store-secret", News: pm(map[string]any{}), RandomSeed: []byte("seed")}
	a, _ := checkSecret(req)
	b, _ := checkSecret(req)
	name := a.Properties["name"].StringValue()
	if !strings.HasPrefix(name, "store-secret-") || len(name) != len("store-secret-")+7 || name != b.Properties["name"].StringValue() {
		t.Fatalf("autoname %q / %q", name, b.Properties["name"].StringValue())
	}
	if namePrefixFromName(uniqueName("pms-")) != "pms-" || namePrefixFromName("pms-backend/prod") != "" {
		t.Fatal("namePrefixFromName does not invert uniqueName")
	}
}

func TestVersionCheck(t *testing.T) {
	const value = "c2VjcmV0#not-base64"
	in := pm(map[string]any{"secretId": "arn"})
	in["secretBinary"] = secretValue(value)
	resp, _ := checkVersion(plugin.CheckRequest{Type: versionType, News: in})
	if got := reasons(resp.Failures); !strings.Contains(got, "secretBinary must be base64-encoded") || strings.Contains(got, value) {
		t.Fatalf("failures: %s", got)
	}
	in = pm(map[string]any{})
	in["secretString"] = secretValue("a")
	in["secretStringWo"] = secretValue("b")
	resp, _ = checkVersion(plugin.CheckRequest{Type: versionType, News: in})
	got := reasons(resp.Failures)
	for _, want := range []string{`secretId: Missing required argument`, `"secretStringWo": conflicts with secretString`,
		"all of `secretStringWo,secretStringWoVersion` must be specified"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestSecretDiffSemantics(t *testing.T) {
	state := pm(map[string]any{
		"arn": "arn:1", "name": "pms/dev", "namePrefix": "", "description": "", "kmsKeyId": "", "policy": "",
		"region": "eu-west-1", "recoveryWindowInDays": 30, "forceOverwriteReplicaSecret": false,
		"tags": map[string]any{"a": "1"}, "tagsAll": map[string]any{"a": "1"},
	})
	base := map[string]any{"name": "pms/dev", "tags": map[string]any{"a": "1"}}
	cases := []struct {
		change  map[string]any
		key     string
		replace bool
	}{
		{map[string]any{"name": "pms/prod"}, "name", true},
		{map[string]any{"region": "us-east-1"}, "region", true},
		{map[string]any{"description": "x"}, "description", false},
		{map[string]any{"kmsKeyId": "alias/pms"}, "kmsKeyId", false},
		{map[string]any{"recoveryWindowInDays": 7}, "recoveryWindowInDays", false},
		{map[string]any{"tags": map[string]any{"a": "2"}}, "tags", false},
		{map[string]any{"policy": `{"Version":"2012-10-17"}`}, "policy", false},
	}
	for _, tc := range cases {
		in := map[string]any{}
		for k, v := range base {
			in[k] = v
		}
		for k, v := range tc.change {
			in[k] = v
		}
		d := diffSecret(plugin.DiffRequest{OldOutputs: state, NewInputs: pm(in)})
		got, ok := d.DetailedDiff[tc.key]
		if !ok || len(d.DetailedDiff) != 1 || got.Kind.IsReplace() != tc.replace {
			t.Errorf("%v: diff %+v, want %s replace=%v", tc.change, d.DetailedDiff, tc.key, tc.replace)
		}
	}
	// Unchanged inputs, "" vs unset, default window: no diff.
	if d := diffSecret(plugin.DiffRequest{OldOutputs: state, NewInputs: pm(map[string]any{"name": "pms/dev", "description": "", "tags": map[string]any{"a": "1"}, "recoveryWindowInDays": 30})}); d.Changes != plugin.DiffNone {
		t.Fatalf("no-op diff: %+v", d.DetailedDiff)
	}
	// An equivalent policy document is not a change.
	state["policy"] = resource.NewStringProperty(`{"Version":"2012-10-17","Statement":[]}`)
	if d := diffSecret(plugin.DiffRequest{OldOutputs: state, NewInputs: pm(map[string]any{"name": "pms/dev", "tags": map[string]any{"a": "1"}, "policy": `{"Statement": [], "Version": "2012-10-17"}`})}); d.Changes != plugin.DiffNone {
		t.Fatalf("equivalent policy: %+v", d.DetailedDiff)
	}
}

func TestVersionDiffSemantics(t *testing.T) {
	state := pm(map[string]any{"secretId": "arn:1", "versionId": "v1", "versionStages": []any{"AWSCURRENT"}, "region": "eu-west-1"})
	state["secretString"] = secretValue("old")
	news := func(value string, extra map[string]any) resource.PropertyMap {
		m := pm(extra)
		m["secretId"] = resource.NewStringProperty("arn:1")
		m["secretString"] = secretValue(value)
		return m
	}
	if d := diffVersion(plugin.DiffRequest{OldOutputs: state, NewInputs: news("old", nil)}); d.Changes != plugin.DiffNone {
		t.Fatalf("same value: %+v", d.DetailedDiff)
	}
	d := diffVersion(plugin.DiffRequest{OldOutputs: state, NewInputs: news("new", nil)})
	if d.DetailedDiff["secretString"].Kind != plugin.DiffUpdateReplace {
		t.Fatalf("new value: %+v", d.DetailedDiff)
	}
	unknownValue := news("x", nil)
	unknownValue["secretString"] = resource.MakeSecret(resource.MakeComputed(resource.NewStringProperty("")))
	if d := diffVersion(plugin.DiffRequest{OldOutputs: state, NewInputs: unknownValue}); d.DetailedDiff["secretString"].Kind != plugin.DiffUpdateReplace {
		t.Fatalf("unknown value: %+v", d.DetailedDiff)
	}
	moved := news("old", map[string]any{"secretId": "arn:2"})
	moved["secretId"] = resource.NewStringProperty("arn:2")
	if d := diffVersion(plugin.DiffRequest{OldOutputs: state, NewInputs: moved}); d.DetailedDiff["secretId"].Kind != plugin.DiffUpdateReplace {
		t.Fatalf("new secretId: %+v", d.DetailedDiff)
	}
	if d := diffVersion(plugin.DiffRequest{OldOutputs: state, NewInputs: news("old", map[string]any{"versionStages": []any{"AWSCURRENT", "pms-ok"}})}); d.DetailedDiff["versionStages"].Kind != plugin.DiffUpdate {
		t.Fatalf("stages: %+v", d.DetailedDiff)
	}
}

func TestUnknownTypeIsRefused(t *testing.T) {
	_, err := newProvider().Check(bg, plugin.CheckRequest{Type: "aws:s3/bucket:Bucket", News: pm(nil)})
	if err == nil || !strings.Contains(err.Error(), "not implemented by this stand-in aws provider") {
		t.Fatalf("err = %v", err)
	}
}

// Through the gRPC server the engine talks to: a version's secretString travels as a secret.
func TestGRPCVersionStateIsSecret(t *testing.T) {
	p := withMoto(t)
	srv := plugin.NewProviderServer(p)
	if _, err := srv.Configure(bg, &pulumirpc.ConfigureRequest{AcceptSecrets: true, AcceptResources: true,
		Args: mustStruct(t, pm(map[string]any{"region": "eu-west-1"}))}); err != nil {
		t.Fatal(err)
	}
	sec := mustCreate(t, p, secretType, pm(map[string]any{"name": uniqueSecretName(t)}))
	in := pm(map[string]any{"secretId": string(sec.ID)})
	in["secretString"] = secretValue("wire-value")
	resp, err := srv.Create(bg, &pulumirpc.CreateRequest{
		Urn:        "urn:pulumi:dev::pms::aws:secretsmanager/secretVersion:SecretVersion::v",
		Properties: mustStruct(t, in),
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := plugin.UnmarshalProperties(resp.GetProperties(), plugin.MarshalOptions{KeepSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	if !out["secretString"].IsSecret() || out["versionId"].IsSecret() {
		t.Fatalf("secret-ness on the wire: secretString=%v versionId=%v", out["secretString"].IsSecret(), out["versionId"].IsSecret())
	}
}

func mustStruct(t *testing.T, m resource.PropertyMap) *structpb.Struct {
	t.Helper()
	s, err := plugin.MarshalProperties(m, plugin.MarshalOptions{KeepSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBinaryServesPluginInfo(t *testing.T) {
	plugintest.ServesPluginInfo(t, providerName, providerVersion)
}
