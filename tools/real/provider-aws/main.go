// pulumi-resource-aws: a STAND-IN for the pulumi-aws 7.48.0 plugin, written by this project
// (pms-secrets), not built from pulumi-aws's source.
//
// Why a stand-in: pulumi-aws's provider go.mod replaces the Terraform AWS provider with a local,
// patched checkout (../upstream, a git submodule), so it cannot be built from Go modules. This
// plugin implements only the two resources the program uses,
// aws:secretsmanager/secret:Secret and aws:secretsmanager/secretVersion:SecretVersion, with
// pulumi-aws 7.x's property names, secret-ness and replace/update semantics (those of
// terraform-provider-aws's aws_secretsmanager_secret and _secret_version), and calls the REAL
// Secrets Manager API through aws-sdk-go-v2. In tests that API is moto's (AWS_ENDPOINT_URL).
// See README.md for exactly which parts are real and which are ours.
//
// It reports version 7.48.0 because the engine matches plugins by name and version and
// @pulumi/aws 7.48.0 asks for exactly that.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

func main() {
	if err := serve(newProvider()); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-%s: %v\n", providerName, err)
		os.Exit(1)
	}
}

// serve speaks the plugin protocol: listen on a free loopback port, print it as the first
// stdout line (the engine reads it), serve ResourceProvider until the engine goes away.
func serve(prov plugin.Provider) error {
	// The engine may pass logging and tracing flags before the engine address; accept and
	// ignore them (this plugin logs nothing).
	flags := flag.NewFlagSet(providerName, flag.ContinueOnError)
	flags.Bool("logtostderr", false, "ignored")
	flags.Bool("logflow", false, "ignored")
	flags.Int("v", 0, "ignored")
	flags.String("tracing", "", "ignored")
	if err := flags.Parse(os.Args[1:]); err != nil {
		return err
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if engine := flags.Arg(0); engine != "" {
		// Stop when the engine stops answering health checks, as upstream plugins do.
		if err := rpcutil.Healthcheck(ctx, engine, 5*time.Minute, cancel); err != nil {
			return fmt.Errorf("could not start the engine health check: %w", err)
		}
	}

	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterResourceProviderServer(srv, plugin.NewProviderServer(prov))
			return nil
		},
	})
	if err != nil {
		return err
	}
	fmt.Printf("%d\n", handle.Port)
	return <-handle.Done
}
