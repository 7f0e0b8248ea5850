package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	// runModule is the program launcher shipped inside @pulumi/pulumi; it is resolved from the
	// program directory so the program's own SDK copy runs it.
	runModule = "@pulumi/pulumi/cmd/run"
	// runPluginModule and runPolicyPackModule start plugins written in Node.js.
	runPluginModule     = "@pulumi/pulumi/cmd/run-plugin"
	runPolicyPackModule = "@pulumi/pulumi/cmd/run-policy-pack"

	// exitBail is the exit code @pulumi/pulumi uses after it has already shown the user an
	// actionable message (a RunError, a config error): the CLI must stop without adding its own.
	exitBail = 32

	// analyzerKind is the RunPlugin kind of a policy pack.
	analyzerKind = "analyzer"
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string

	// cancelCtx is cancelled by the Cancel RPC: a running program gets SIGINT, like on Ctrl-C.
	cancelCtx  context.Context
	cancelFunc context.CancelFunc
	// shutdown stops the gRPC server (and so the process) when the engine goes away.
	shutdown context.CancelFunc
}

func newHost(engineAddress string, shutdown context.CancelFunc) *host {
	ctx, cancel := context.WithCancel(context.Background())
	return &host{engineAddress: engineAddress, cancelCtx: ctx, cancelFunc: cancel, shutdown: shutdown}
}

func (h *host) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

// Handshake is how a newer engine gives us its address instead of the command line.
func (h *host) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	h.engineAddress = req.GetEngineAddress()
	h.mu.Unlock()
	stopAll := func() {
		h.cancelFunc()
		h.shutdown()
	}
	if err := rpcutil.Healthcheck(h.cancelCtx, req.GetEngineAddress(), 5*time.Minute, stopAll); err != nil {
		return nil, fmt.Errorf("could not start health check of the engine at %s: %w", req.GetEngineAddress(), err)
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: hostVersion}, nil
}

// GetRequiredPlugins is superseded by GetRequiredPackages; 3.248's host answers Unimplemented so
// the engine falls back to GetRequiredPackages, and so do we.
func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method GetRequiredPlugins not implemented")
}

func (h *host) GetRequiredPackages(
	_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	pkgs, sdkVersions, err := findPackages(req.GetInfo().GetProgramDirectory())
	if err != nil {
		// Like upstream: a partly unreadable tree is not fatal, what was found is still returned.
		fmt.Fprintf(os.Stderr, "warning: while looking for Pulumi plugins in node_modules: %v\n", err)
	}
	warnIncompatibleSDKs(sdkVersions)
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancelFunc()
	return &emptypb.Empty{}, nil
}

// nodeOptions are the `runtime.options` of Pulumi.yaml / PulumiPolicy.yaml that change how node runs.
type nodeOptions struct {
	typescript     bool
	tsconfigPath   string
	nodeArgs       []string
	packageManager string
}

func parseOptions(info *pulumirpc.ProgramInfo) (nodeOptions, error) {
	opts := nodeOptions{typescript: true, packageManager: "auto"}
	if info == nil || info.GetOptions() == nil {
		return opts, nil
	}
	m := info.GetOptions().AsMap()
	if v, ok := m["typescript"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return opts, errors.New("runtime option 'typescript' must be a boolean (true or false)")
		}
		opts.typescript = b
	}
	if v, ok := m["tsconfig"]; ok {
		s, isString := v.(string)
		if !isString {
			return opts, errors.New("runtime option 'tsconfig' must be a string (a path to tsconfig.json)")
		}
		opts.tsconfigPath = s
	}
	if v, ok := m["nodeargs"]; ok {
		s, isString := v.(string)
		if !isString {
			return opts, errors.New("runtime option 'nodeargs' must be a string")
		}
		opts.nodeArgs = strings.Fields(s)
	}
	if v, ok := m["packagemanager"]; ok {
		s, isString := v.(string)
		if !isString {
			return opts, errors.New("runtime option 'packagemanager' must be a string")
		}
		opts.packageManager = s
	}
	return opts, nil
}

func (o nodeOptions) env() []string {
	var env []string
	if o.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if o.tsconfigPath != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+o.tsconfigPath)
	}
	return env
}

// resolveModule asks node where a module resolves from dir, so the copy of @pulumi/pulumi that the
// program itself would load is the one that runs it.
func resolveModule(ctx context.Context, nodeBin, dir, module, installHint string) (string, error) {
	script := fmt.Sprintf(
		"try { console.log(require.resolve(%q)); } catch (e) { "+
			"if (e.code === 'MODULE_NOT_FOUND') { console.error(%q); } else { console.error(e.message); } "+
			"process.exit(1); }",
		module, "It looks like the Pulumi SDK has not been installed. Have you run "+installHint+"?")
	cmd := exec.CommandContext(ctx, nodeBin, "-e", script)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", errors.New(string(ee.Stderr))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Run runs the program once, as `node <run> --monitor … <entry>`, and reports how it ended.
func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "could not find node on the $PATH: " + err.Error()}, nil
	}
	info := req.GetInfo()
	runPath, err := resolveModule(ctx, nodeBin, info.GetProgramDirectory(), runModule, "pulumi install")
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	opts, err := parseOptions(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	configJSON, err := programConfig(req.GetConfig())
	if err != nil {
		return &pulumirpc.RunResponse{Error: "failed to serialize configuration: " + err.Error()}, nil
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return &pulumirpc.RunResponse{Error: "failed to serialize configuration secret keys: " + err.Error()}, nil
	}

	args := append([]string{}, opts.nodeArgs...)
	args = append(args, runPath)
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engine())
	flagArg("organization", req.GetOrganization())
	flagArg("project", req.GetProject())
	flagArg("root-directory", info.GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", info.GetProgramDirectory())
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	args = append(args, info.GetEntryPoint())
	args = append(args, req.GetArgs()...)

	env := append(os.Environ(), "PULUMI_CONFIG="+configJSON, "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON))
	env = append(env, opts.env()...)

	// The process ends on the Cancel RPC or when the engine drops the call; SIGINT first so the
	// SDK can finish its in-flight registrations, like Ctrl-C.
	cmdCtx, cmdCancel := context.WithCancel(h.cancelCtx)
	defer cmdCancel()
	stopAfter := context.AfterFunc(ctx, cmdCancel)
	defer stopAfter()
	cmd := exec.CommandContext(cmdCtx, nodeBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = env
	// Wrapped so exec copies through a pipe instead of handing node our own fds: node switches
	// inherited stdio to non-blocking mode, which would break the engine's reads of our stdout.
	cmd.Stdout = struct{ io.Writer }{os.Stdout}
	cmd.Stderr = struct{ io.Writer }{os.Stderr}

	err = cmd.Run()
	_ = os.Stdout.Sync()
	_ = os.Stderr.Sync()
	if err == nil {
		return &pulumirpc.RunResponse{}, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		switch code := ee.ExitCode(); code {
		case exitBail:
			return &pulumirpc.RunResponse{Bail: true}, nil
		case 0:
			return &pulumirpc.RunResponse{Error: "Program exited unexpectedly: " + err.Error()}, nil
		default:
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", code)}, nil
		}
	}
	return &pulumirpc.RunResponse{
		Error: "Problem executing program (could not run language executor): " + err.Error(),
	}, nil
}

// programConfig renders the stack config for PULUMI_CONFIG. Keys go in the old
// `<namespace>:config:<name>` spelling, which every @pulumi/pulumi release understands.
func programConfig(cfg map[string]string) (string, error) {
	out := make(map[string]string, len(cfg))
	for k, v := range cfg {
		key, err := config.ParseKey(k)
		if err != nil {
			return "", fmt.Errorf("config key %q: %w", k, err)
		}
		out[key.Namespace()+":config:"+key.Name()] = v
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// RunPlugin starts a plugin written in Node.js: for a policy pack (kind "analyzer"), which is how
// CLI 3.248 starts a nodejs policy pack when a nodejs language host exists, it runs
// @pulumi/pulumi/cmd/run-policy-pack behind the SDK's PolicyProxy, which takes the engine's
// ConfigureStack call and hands the stack identity and config to the pack through the environment.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	ctx := server.Context()
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("could not find node on the $PATH: %w", err)
	}
	info := req.GetInfo()
	opts, err := parseOptions(info)
	if err != nil {
		return err
	}
	isPolicyPack := req.GetKind() == analyzerKind
	module := runPluginModule
	if isPolicyPack {
		module = runPolicyPackModule
	}
	runPath, err := resolveModule(ctx, nodeBin, info.GetProgramDirectory(), module,
		"npm install in "+info.GetProgramDirectory())
	if err != nil {
		return err
	}

	args := []string{runPath}
	args = append(args, opts.nodeArgs...)
	// A policy pack takes its directory last, any other plugin first.
	if isPolicyPack {
		args = append(args, req.GetArgs()...)
		args = append(args, info.GetProgramDirectory())
	} else {
		args = append(args, info.GetProgramDirectory())
		args = append(args, req.GetArgs()...)
	}
	env := append(append([]string{}, req.GetEnv()...), opts.env()...)

	if !isPolicyPack {
		cmd := exec.CommandContext(ctx, nodeBin, args...)
		cmd.Dir = req.GetPwd()
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			return pluginExitError(err)
		}
		return closer.Close()
	}
	return runPolicyPack(ctx, nodeBin, args, env, info.GetProgramDirectory(), stdout, stderr, closer)
}

func pluginExitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("Program exited with non-zero exit code: %d", ee.ExitCode())
	}
	return fmt.Errorf("Problem executing plugin program (could not run language executor): %w", err)
}

func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	info := req.GetInfo()
	opts, err := parseOptions(info)
	if err != nil {
		return err
	}
	if opts.packageManager != "auto" && opts.packageManager != "npm" {
		return fmt.Errorf("runtime option packagemanager=%q is not supported by this language host: use npm",
			opts.packageManager)
	}
	dir := info.GetProgramDirectory()
	fmt.Fprintln(stdout, "Installing dependencies...")
	fmt.Fprintln(stdout)
	cmd := exec.CommandContext(server.Context(), "npm", "install")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`npm install` failed in %s: %w", dir, err)
	}
	fmt.Fprintln(stdout, "Finished installing dependencies")
	return closer.Close()
}

func commandOutput(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (h *host) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("could not find executable \"node\": %w", err)
	}
	return &pulumirpc.AboutResponse{
		Executable: nodeBin,
		Version:    commandOutput(ctx, nodeBin, "--version"),
		Metadata: map[string]string{
			"packagemanager":        "npm",
			"packagemanagerVersion": commandOutput(ctx, "npm", "--version"),
		},
	}, nil
}

// GetProgramDependencies lists the program's direct dependencies with their installed versions
// (read from node_modules, not from `npm ls`; transitive listing is not implemented).
func (h *host) GetProgramDependencies(
	_ context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir := req.GetInfo().GetProgramDirectory()
	var manifest struct {
		Dependencies    map[string]string `json:"dependencies"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, fmt.Errorf("failed to get node dependencies: %w", err)
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		return nil, fmt.Errorf("failed to get node dependencies: %s/package.json: %w", dir, err)
	}
	var deps []*pulumirpc.DependencyInfo
	for _, set := range []map[string]string{manifest.Dependencies, manifest.DevDependencies} {
		for name, wanted := range set {
			version := wanted
			var installed struct {
				Version string `json:"version"`
			}
			if pb, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json")); err == nil &&
				json.Unmarshal(pb, &installed) == nil && installed.Version != "" {
				version = installed.Version
			}
			deps = append(deps, &pulumirpc.DependencyInfo{Name: name, Version: version})
		}
	}
	// Map order is random; a stable listing keeps `pulumi about` output diffable.
	sort.Slice(deps, func(i, j int) bool { return deps[i].GetName() < deps[j].GetName() })
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}
