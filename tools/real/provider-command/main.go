// Command pulumi-resource-command is a STAND-IN written by the pms-secrets
// project for the pulumi-command resource provider v1.2.1. It is not the
// upstream binary and contains no upstream code.
//
// Why it exists: the real provider's Go module cannot be fetched from the
// module proxy this project builds from, yet the host tests must run the real
// Pulumi engine against a provider that behaves like v1.2.1. It implements only
// command:remote:Command (what the pms-secrets program uses), on the same
// library upstream uses (pulumi-go-provider v1.3.0 `infer`) with the same
// property tags, defaults, retry schedule, SSH client settings and error texts,
// so that the engine sees the same Check/Diff/Create/Update/Delete behaviour.
// It reports version 1.2.1 because the engine matches plugins by name and
// version. README.md in this directory lists what is and is not reproduced.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/pms-secrets/tools/provider-command/remote"
)

func main() {
	provider := remote.NewProvider()
	if err := provider.Run(context.Background(), remote.PluginName, remote.PluginVersion); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s", err.Error())
		os.Exit(1)
	}
}
