package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"

	sdk "github.com/pulumi/pulumi/sdk/v3"
)

// runPolicyPack starts a Node.js policy pack the way CLI 3.248 expects from a language host.
//
// The engine talks to us as if we were the analyzer: the SDK's PolicyProxy prints its own port on
// the plugin's stdout, receives ConfigureStack (stack identity and config), and only then may the
// pack start, because @pulumi/policy reads that identity from its environment at start-up. Then the
// proxy reads the pack's port from the pack's stdout and forwards every Analyze call to it. The pack
// runs with its own directory as working directory, as node policy packs always have.
func runPolicyPack(
	ctx context.Context, nodeBin string, args, env []string, packDir string,
	stdout, stderr io.Writer, closer io.Closer,
) error {
	proxy, packStdout, err := sdk.NewPolicyProxy(ctx, stdout)
	if err != nil {
		return fmt.Errorf("could not start policy pack proxy: %w", err)
	}
	stackCfg, err := proxy.AwaitConfiguration(ctx)
	if err != nil {
		return fmt.Errorf("could not get stack configuration for the policy pack: %w", err)
	}
	if stackCfg != nil {
		add := func(k, v string) {
			if v != "" {
				env = append(env, k+"="+v)
			}
		}
		add("PULUMI_NODEJS_ORGANIZATION", stackCfg.GetOrganization())
		add("PULUMI_NODEJS_PROJECT", stackCfg.GetProject())
		add("PULUMI_NODEJS_STACK", stackCfg.GetStack())
		add("PULUMI_NODEJS_DRY_RUN", strconv.FormatBool(stackCfg.GetDryRun()))
		if stackCfg.GetConfig() != nil {
			b, err := json.Marshal(stackCfg.GetConfig())
			if err != nil {
				return fmt.Errorf("could not marshal stack configuration for the policy pack: %w", err)
			}
			add("PULUMI_CONFIG", string(b))
		}
	}

	cmd := exec.CommandContext(ctx, nodeBin, args...)
	cmd.Dir = packDir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = packStdout, stderr
	if err := cmd.Start(); err != nil {
		return pluginExitError(err)
	}
	// Attach waits for the pack to exit (the engine kills it at the end of the update).
	if err := proxy.Attach(ctx, cmd); err != nil {
		return fmt.Errorf("could not attach policy pack proxy: %w", err)
	}
	return closer.Close()
}
