// Command pulumi-language-nodejs is pms-secrets' OWN stand-in for Pulumi's Node.js language host.
//
// Why a stand-in: the upstream module (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)
// is not served by the Go module proxy this project can reach, so it cannot be built here. This
// program was written from scratch against sdk/v3 v3.248.0's gRPC contract (pulumirpc.LanguageRuntime)
// after reading what the upstream host does at tag v3.248.0; it behaves like it where the engine can
// tell: the port on stdout, the engine address as first argument, the node command line of
// `@pulumi/pulumi/cmd/run`, PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS, plugin discovery from
// node_modules package.json `pulumi` fields, exit code 32 = "bail", policy packs through RunPlugin.
//
// Known differences from upstream (none matters to a TypeScript program run with npm):
//   - the program talks to the engine's resource monitor directly (upstream interposes a proxy that
//     forwards every call untouched) and no `--sync` pipe directory is given: @pulumi/pulumi 3.248
//     only uses that for the long-deprecated synchronous invokes;
//   - runtime `bun`, package managers other than npm, fnm, debugging, code generation, Pack and Link
//     are not implemented (the engine gets Unimplemented);
//   - runtime option `nodeargs` is split on white space (no shell quoting);
//   - no out-of-memory hint after a crash.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"pms-secrets/tools/real/pluginkit"
)

// hostVersion is what GetPluginInfo and --version report: the SDK release this host stands in for.
const hostVersion = "3.248.0"

func main() {
	// -tracing and -runtime are passed by the engine; tracing is accepted and ignored (no tracing
	// backend here), only the nodejs runtime is implemented.
	tracing := flag.String("tracing", "", "Zipkin-compatible tracing endpoint (accepted, not used)")
	runtimeName := flag.String("runtime", "nodejs", "JavaScript runtime; only `nodejs` is implemented")
	showVersion := flag.Bool("version", false, "Print the plugin version and exit")
	flag.Parse()
	_ = tracing

	if *showVersion {
		fmt.Println(hostVersion)
		return
	}
	if *runtimeName != "nodejs" {
		fmt.Fprintf(os.Stderr, "error: runtime %q is not supported by this language host (only nodejs)\n", *runtimeName)
		os.Exit(1)
	}

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	host := newHost(engineAddress, stop)
	err := pluginkit.ServeGRPC(ctx, stop, engineAddress, func(srv *grpc.Server) {
		pulumirpc.RegisterLanguageRuntimeServer(srv, host)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: language host: %v\n", err)
		os.Exit(1)
	}
}
