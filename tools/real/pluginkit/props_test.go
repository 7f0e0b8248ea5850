package pluginkit

import (
	"context"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

func TestGet(t *testing.T) {
	m := resource.PropertyMap{
		"plain":   resource.NewStringProperty("a"),
		"secret":  resource.MakeSecret(resource.NewStringProperty("s")),
		"null":    resource.NewNullProperty(),
		"unknown": resource.MakeComputed(resource.NewStringProperty("")),
		"deep":    resource.MakeSecret(resource.NewObjectProperty(resource.PropertyMap{"x": resource.MakeComputed(resource.NewStringProperty(""))})),
	}
	cases := []struct {
		key        resource.PropertyKey
		set, known bool
		str        string
	}{
		{"plain", true, true, "a"},
		{"secret", true, true, "s"},
		{"null", false, false, ""},
		{"absent", false, false, ""},
		{"unknown", true, false, ""},
		{"deep", true, false, ""},
	}
	for _, c := range cases {
		in := Get(m, c.key)
		if in.Set != c.set || in.Known != c.known {
			t.Errorf("%s: Set=%v Known=%v, want %v %v", c.key, in.Set, in.Known, c.set, c.known)
		}
		if c.str != "" && (!in.V.IsString() || in.V.StringValue() != c.str) {
			t.Errorf("%s: value %v, want %q", c.key, in.V, c.str)
		}
	}
}

func TestBase(t *testing.T) {
	info, err := (&Base{Version: "4.21.2"}).GetPluginInfo(context.Background())
	if err != nil || info.Version == nil || info.Version.String() != "4.21.2" {
		t.Fatalf("GetPluginInfo = %v, %v", info.Version, err)
	}
	if _, err := (&Base{Version: "not-a-version"}).GetPluginInfo(context.Background()); err == nil {
		t.Fatal("a bad version must be an error, not a panic or a zero version")
	}
	hs, err := (&Base{}).Handshake(context.Background(), plugin.ProviderHandshakeRequest{})
	if err != nil || !hs.AcceptSecrets || !hs.AcceptResources {
		t.Fatalf("Handshake = %+v, %v", hs, err)
	}
}
