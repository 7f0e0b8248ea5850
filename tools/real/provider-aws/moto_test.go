package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

// One moto per test binary, started by the first test that needs it (tools/real/moto.sh run
// on a free loopback port) and stopped by its PID when the tests end.
var (
	motoOnce     sync.Once
	motoEndpoint string
	motoErr      error
	motoCmd      *exec.Cmd
)

func TestMain(m *testing.M) {
	code := m.Run()
	if motoCmd != nil && motoCmd.Process != nil {
		_ = motoCmd.Process.Kill()
		_ = motoCmd.Wait()
	}
	os.Exit(code)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startMoto() (string, error) {
	script, err := filepath.Abs("../moto.sh")
	if err != nil {
		return "", err
	}
	if out, err := exec.Command(script, "bin").CombinedOutput(); err != nil {
		return "", fmt.Errorf("moto is not installed (%s): run tools/real/moto.sh install", strings.TrimSpace(string(out)))
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	motoCmd = exec.Command(script, "run", fmt.Sprint(port))
	logFile, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		return "", err
	}
	motoCmd.Stdout, motoCmd.Stderr = logFile, logFile
	if err := motoCmd.Start(); err != nil {
		return "", err
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return endpoint, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(logFile.Name())
	return "", fmt.Errorf("moto did not answer on %s within 60s; its log:\n%s", endpoint, log)
}

// withMoto points the AWS SDK at moto (as the host tests do: AWS_ENDPOINT_URL and dummy
// credentials; no user config files) and returns a configured provider. Without moto the
// test is skipped loudly, or fails when PMS_REQUIRE_MOTO=1 (CI).
func withMoto(t *testing.T) *provider {
	t.Helper()
	motoOnce.Do(func() { motoEndpoint, motoErr = startMoto() })
	if motoErr != nil {
		if os.Getenv("PMS_REQUIRE_MOTO") == "1" {
			t.Fatalf("moto required (PMS_REQUIRE_MOTO=1): %v", motoErr)
		}
		t.Skipf("SKIPPED, NOT RUN — %v", motoErr)
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": motoEndpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	p := newProvider()
	cfg := resource.NewPropertyMapFromMap(map[string]any{"region": "eu-west-1", "version": "7.48.0"})
	if _, err := p.Configure(context.Background(), plugin.ConfigureRequest{Inputs: cfg}); err != nil {
		t.Fatal(err)
	}
	return p
}

// awsClients are the test's own view of moto, independent of the provider.
func awsClients(t *testing.T) (*secretsmanager.Client, *kms.Client) {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("eu-west-1"))
	if err != nil {
		t.Fatal(err)
	}
	return secretsmanager.NewFromConfig(cfg), kms.NewFromConfig(cfg)
}

func uniqueSecretName(t *testing.T) string {
	return "pms-test/" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + requestToken()[:8]
}

func mustCreate(t *testing.T, p *provider, typ string, in resource.PropertyMap) plugin.CreateResponse {
	t.Helper()
	check, err := p.Check(context.Background(), plugin.CheckRequest{Type: tokenType(typ), Name: "res", News: in})
	if err != nil || len(check.Failures) > 0 {
		t.Fatalf("check %s: %v %v", typ, err, check.Failures)
	}
	resp, err := p.Create(context.Background(), plugin.CreateRequest{Type: tokenType(typ), Properties: check.Properties})
	if err != nil {
		t.Fatalf("create %s: %v", typ, err)
	}
	return resp
}

func stagesOf(t *testing.T, sm *secretsmanager.Client, secretID string) map[string][]string {
	t.Helper()
	out, err := sm.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{
		SecretId: aws.String(secretID), IncludeDeprecated: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, v := range out.Versions {
		m[aws.ToString(v.VersionId)] = v.VersionStages
	}
	return m
}

func hasStage(stages []string, s string) bool {
	for _, e := range stages {
		if e == s {
			return true
		}
	}
	return false
}
