package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindPackagesReadsPulumiFieldsAndSkipsPolicyPacks(t *testing.T) {
	dir := t.TempDir()
	nm := filepath.Join(dir, "node_modules")
	writeFile(t, filepath.Join(nm, "@pulumi", "random", "package.json"),
		`{"name":"@pulumi/random","version":"4.21.2","pulumi":{"resource":true}}`)
	writeFile(t, filepath.Join(nm, "@pulumi", "pulumi", "package.json"), `{"name":"@pulumi/pulumi","version":"3.248.0"}`)
	writeFile(t, filepath.Join(nm, "vendor-pkg", "package.json"),
		`{"name":"vendor-pkg","version":"1.0.0","pulumi":{"resource":true,"name":"acme","version":"v2.0.0","server":"https://example.test"}}`)
	writeFile(t, filepath.Join(nm, "left-pad", "package.json"), `{"name":"left-pad","version":"1.3.0"}`)
	// A package.json outside node_modules is the program's own, not a plugin source.
	writeFile(t, filepath.Join(dir, "package.json"), `{"name":"@pulumi/self","version":"9.9.9","pulumi":{"resource":true}}`)
	// A policy pack's plugins are not the program's.
	writeFile(t, filepath.Join(dir, "policy", "PulumiPolicy.yaml"), "runtime: nodejs\n")
	writeFile(t, filepath.Join(dir, "policy", "node_modules", "@pulumi", "aws", "package.json"),
		`{"name":"@pulumi/aws","version":"7.48.0","pulumi":{"resource":true}}`)
	// A symlink loop must not hang the walk.
	if err := os.Symlink(dir, filepath.Join(nm, "loop")); err != nil {
		t.Fatal(err)
	}

	pkgs, sdks, err := findPackages(dir)
	if err != nil {
		t.Fatalf("findPackages: %v", err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.GetName()+"@"+p.GetVersion()+"@"+p.GetServer()+"@"+p.GetKind())
	}
	sort.Strings(got)
	want := []string{"acme@v2.0.0@https://example.test@resource", "random@v4.21.2@@resource"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("packages = %v, want %v", got, want)
	}
	if len(sdks) != 1 {
		t.Fatalf("@pulumi/pulumi copies found = %v, want one", sdks)
	}
}

func TestFindPackagesRejectsThirdPartyPluginWithoutName(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "node_modules", "x", "package.json"),
		`{"name":"x","version":"1.0.0","pulumi":{"resource":true}}`)
	pkgs, _, err := findPackages(dir)
	if err == nil || !strings.Contains(err.Error(), `must name its plugin`) {
		t.Fatalf("err = %v, want a message asking for pulumi.name", err)
	}
	if len(pkgs) != 0 {
		t.Fatalf("packages = %v, want none", pkgs)
	}
}

func TestProgramConfigUsesTheOldKeySpelling(t *testing.T) {
	got, err := programConfig(map[string]string{"proj:greeting": "hi", "aws:region": "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["proj:config:greeting"] != "hi" || m["aws:config:region"] != "eu-west-1" {
		t.Fatalf("config = %s", got)
	}
	if _, err := programConfig(map[string]string{"no-namespace": "x"}); err == nil {
		t.Fatal("a key without a namespace was accepted")
	}
}

// fakeNode puts a `node` on PATH that answers the require.resolve probe with a fixed path and
// otherwise records its argv and PULUMI_* environment, then exits with $FAKE_NODE_EXIT.
func fakeNode(t *testing.T) (record string) {
	t.Helper()
	dir := t.TempDir()
	record = filepath.Join(dir, "record")
	writeFile(t, filepath.Join(dir, "node"), `#!/bin/sh
if [ "$1" = "-e" ]; then echo /fake/@pulumi/pulumi/cmd/run/index.js; exit 0; fi
{ for a in "$@"; do printf 'ARG %s\n' "$a"; done; env | grep '^PULUMI_' | sed 's/^/ENV /'; } > "`+record+`"
exit "${FAKE_NODE_EXIT:-0}"
`)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return record
}

func runRequest(programDir string) *pulumirpc.RunRequest {
	return &pulumirpc.RunRequest{
		Project:          "proj",
		Stack:            "dev",
		Organization:     "organization",
		MonitorAddress:   "127.0.0.1:1111",
		DryRun:           true,
		Parallel:         16,
		Config:           map[string]string{"proj:token": "s3cr3t"},
		ConfigSecretKeys: []string{"proj:token"},
		Info: &pulumirpc.ProgramInfo{
			RootDirectory: programDir, ProgramDirectory: programDir, EntryPoint: ".",
		},
	}
}

func TestRunCommandLineAndEnvironment(t *testing.T) {
	record := fakeNode(t)
	t.Setenv("FAKE_NODE_EXIT", "0")
	dir := t.TempDir()
	h := newHost("127.0.0.1:2222", func() {})
	resp, err := h.Run(context.Background(), runRequest(dir))
	if err != nil || resp.GetError() != "" || resp.GetBail() {
		t.Fatalf("Run = %v, %v", resp, err)
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if a, ok := strings.CutPrefix(line, "ARG "); ok {
			args = append(args, a)
		} else if e, ok := strings.CutPrefix(line, "ENV "); ok {
			k, v, _ := strings.Cut(e, "=")
			env[k] = v
		}
	}
	want := []string{
		"/fake/@pulumi/pulumi/cmd/run/index.js", "--monitor", "127.0.0.1:1111", "--engine", "127.0.0.1:2222",
		"--organization", "organization", "--project", "proj", "--root-directory", dir, "--stack", "dev",
		"--pwd", dir, "--dry-run", "--parallel", "16", ".",
	}
	if strings.Join(args, " ") != strings.Join(want, " ") {
		t.Fatalf("node args =\n%v\nwant\n%v", args, want)
	}
	if env["PULUMI_CONFIG"] != `{"proj:config:token":"s3cr3t"}` {
		t.Fatalf("PULUMI_CONFIG = %q", env["PULUMI_CONFIG"])
	}
	if env["PULUMI_CONFIG_SECRET_KEYS"] != `["proj:token"]` {
		t.Fatalf("PULUMI_CONFIG_SECRET_KEYS = %q", env["PULUMI_CONFIG_SECRET_KEYS"])
	}
	if env["PULUMI_NODEJS_TYPESCRIPT"] != "true" {
		t.Fatalf("PULUMI_NODEJS_TYPESCRIPT = %q, want true (the default)", env["PULUMI_NODEJS_TYPESCRIPT"])
	}
}

func TestRunExitCodes(t *testing.T) {
	fakeNode(t)
	h := newHost("127.0.0.1:2222", func() {})
	for _, tc := range []struct {
		exit, wantError string
		wantBail        bool
	}{
		{exit: "32", wantBail: true},
		{exit: "3", wantError: "Program exited with non-zero exit code: 3"},
	} {
		t.Setenv("FAKE_NODE_EXIT", tc.exit)
		resp, err := h.Run(context.Background(), runRequest(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetBail() != tc.wantBail || resp.GetError() != tc.wantError {
			t.Fatalf("exit %s: Run = bail %v error %q, want bail %v error %q",
				tc.exit, resp.GetBail(), resp.GetError(), tc.wantBail, tc.wantError)
		}
	}
}
