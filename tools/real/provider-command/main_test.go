package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi-go-provider/integration/fake"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The test binary doubles as the plugin when asked, so the real entry point
// (main) is exercised over the real plugin protocol: engine address as the
// argument, port printed on stdout, gRPC served.
const pluginModeEnv = "PMS_TEST_RUN_AS_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(pluginModeEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestPluginAnnouncesCommand121(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	engineAddr, _, err := fake.StartEngineServer(ctx, fake.NewEngineServer())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], engineAddr)
	cmd.Env = append(os.Environ(), pluginModeEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	portLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		portLine <- strings.TrimSpace(line)
	}()
	var port string
	select {
	case port = <-portLine:
	case <-time.After(20 * time.Second):
		t.Fatal("plugin did not print its port")
	}
	conn, err := grpc.NewClient("127.0.0.1:"+port, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pulumirpc.NewResourceProviderClient(conn)

	info, err := client.GetPluginInfo(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetVersion() != "1.2.1" {
		t.Errorf("version %q, want 1.2.1 (the engine matches @pulumi/command 1.2.1 by it)", info.GetVersion())
	}

	schemaResp, err := client.GetSchema(ctx, &pulumirpc.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Name      string                     `json:"name"`
		Resources map[string]json.RawMessage `json:"resources"`
		Types     map[string]struct {
			Properties map[string]struct {
				Default any `json:"default"`
			} `json:"properties"`
		} `json:"types"`
	}
	if err := json.Unmarshal([]byte(schemaResp.GetSchema()), &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Name != "command" || len(schema.Resources) != 1 || schema.Resources["command:remote:Command"] == nil {
		t.Errorf("schema name %q, resources %v", schema.Name, keys(schema.Resources))
	}
	conProps := schema.Types["command:remote:Connection"].Properties
	for prop, want := range map[string]any{"user": "root", "port": 22.0, "dialErrorLimit": 10.0, "perDialTimeout": 15.0} {
		if conProps[prop].Default != want {
			t.Errorf("schema default of connection.%s = %v, want %v", prop, conProps[prop].Default, want)
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
