package remote

// Drives the provider through its gRPC server object the way the engine does:
// Configure, then Check/Diff/Create/Update/Delete with properties marshalled
// with secrets and unknowns kept. Log and status messages arrive at a fake
// engine, so the tests see exactly what the CLI would be sent.

import (
	"context"
	"strings"
	"testing"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/integration/fake"
	pprovider "github.com/pulumi/pulumi/pkg/v3/resource/provider"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

const testURN = "urn:pulumi:dev::pms-secrets::command:remote:Command::rollout-web1"

type harness struct {
	t      *testing.T
	ctx    context.Context
	server pulumirpc.ResourceProviderServer
	engine *fake.EngineServer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	engine := fake.NewEngineServer()
	addr, _, err := fake.StartEngineServer(ctx, engine)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	host, err := pprovider.NewHostClient(addr)
	if err != nil {
		t.Fatalf("host client: %v", err)
	}
	server, err := p.RawServer(PluginName, PluginVersion, NewProvider())(host)
	if err != nil {
		t.Fatalf("provider: %v", err)
	}
	// What the engine of pulumi 3.2xx sends.
	_, err = server.Configure(ctx, &pulumirpc.ConfigureRequest{
		AcceptSecrets: true, AcceptResources: true,
		SendsOldInputs: true, SendsOldInputsToDelete: true,
	})
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	return &harness{t: t, ctx: ctx, server: server, engine: engine}
}

var marshalOpts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true}

func (h *harness) marshal(m resource.PropertyMap) *structpb.Struct {
	h.t.Helper()
	s, err := plugin.MarshalProperties(m, marshalOpts)
	if err != nil {
		h.t.Fatalf("marshal: %v", err)
	}
	return s
}

func (h *harness) unmarshal(s *structpb.Struct) resource.PropertyMap {
	h.t.Helper()
	m, err := plugin.UnmarshalProperties(s, marshalOpts)
	if err != nil {
		h.t.Fatalf("unmarshal: %v", err)
	}
	return m
}

// check returns the checked inputs; it fails the test on check failures.
func (h *harness) check(olds, news resource.PropertyMap) resource.PropertyMap {
	h.t.Helper()
	resp, err := h.server.Check(h.ctx, &pulumirpc.CheckRequest{
		Urn: testURN, Olds: h.marshal(olds), News: h.marshal(news),
	})
	if err != nil {
		h.t.Fatalf("check: %v", err)
	}
	if len(resp.GetFailures()) > 0 {
		h.t.Fatalf("check failures: %v", resp.GetFailures())
	}
	return h.unmarshal(resp.GetInputs())
}

func (h *harness) create(inputs resource.PropertyMap, preview bool) (string, resource.PropertyMap, error) {
	h.t.Helper()
	resp, err := h.server.Create(h.ctx, &pulumirpc.CreateRequest{
		Urn: testURN, Properties: h.marshal(inputs), Preview: preview,
	})
	if err != nil {
		return "", nil, err
	}
	return resp.GetId(), h.unmarshal(resp.GetProperties()), nil
}

func (h *harness) diff(id string, state, oldInputs, news resource.PropertyMap) *pulumirpc.DiffResponse {
	h.t.Helper()
	resp, err := h.server.Diff(h.ctx, &pulumirpc.DiffRequest{
		Id: id, Urn: testURN, Olds: h.marshal(state), OldInputs: h.marshal(oldInputs), News: h.marshal(news),
	})
	if err != nil {
		h.t.Fatalf("diff: %v", err)
	}
	return resp
}

func (h *harness) update(id string, state, oldInputs, news resource.PropertyMap) (resource.PropertyMap, error) {
	h.t.Helper()
	resp, err := h.server.Update(h.ctx, &pulumirpc.UpdateRequest{
		Id: id, Urn: testURN, Olds: h.marshal(state), OldInputs: h.marshal(oldInputs), News: h.marshal(news),
	})
	if err != nil {
		return nil, err
	}
	return h.unmarshal(resp.GetProperties()), nil
}

func (h *harness) delete(id string, state, oldInputs resource.PropertyMap) error {
	h.t.Helper()
	_, err := h.server.Delete(h.ctx, &pulumirpc.DeleteRequest{
		Id: id, Urn: testURN, Properties: h.marshal(state), OldInputs: h.marshal(oldInputs),
	})
	return err
}

// statusLines returns the ephemeral (status) messages sent to the engine.
func (h *harness) statusLines() []string {
	var out []string
	for _, l := range h.engine.Logs() {
		if l.GetEphemeral() {
			out = append(out, l.GetMessage())
		}
	}
	return out
}

// logs returns the non-ephemeral messages of one severity.
func (h *harness) logs(sev diag.Severity) []string {
	var out []string
	want := map[diag.Severity]pulumirpc.LogSeverity{
		diag.Info: pulumirpc.LogSeverity_INFO, diag.Warning: pulumirpc.LogSeverity_WARNING,
		diag.Error: pulumirpc.LogSeverity_ERROR, diag.Debug: pulumirpc.LogSeverity_DEBUG,
	}[sev]
	for _, l := range h.engine.Logs() {
		if !l.GetEphemeral() && l.GetSeverity() == want {
			out = append(out, l.GetMessage())
		}
	}
	return out
}

// connection builds the connection object as @pulumi/command 1.2.1 sends it:
// its defaults (dialErrorLimit 10, perDialTimeout 15, port 22, user root)
// applied, then the whole object wrapped in a secret. Overrides win.
func connection(host string, port int, overrides map[string]any) resource.PropertyValue {
	c := map[string]any{
		"host": host, "port": float64(port), "user": "root",
		"dialErrorLimit": float64(10), "perDialTimeout": float64(15),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return resource.MakeSecret(resource.NewPropertyValue(c))
}

// inputs builds a Command's inputs; conn is from connection().
func inputs(conn resource.PropertyValue, fields map[string]any) resource.PropertyMap {
	m := resource.NewPropertyMapFromMap(fields)
	m["connection"] = conn
	return m
}

// str reads a plain or secret string property.
func str(m resource.PropertyMap, key string) string {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return ""
	}
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsString() {
		return ""
	}
	return v.StringValue()
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func anyContains(lines []string, part string) bool {
	for _, l := range lines {
		if strings.Contains(l, part) {
			return true
		}
	}
	return false
}
