// pulumi-resource-random: a STAND-IN for the pulumi-random 4.21.2 plugin, written by this
// project (pms-secrets), not built from pulumi-random's source.
//
// Why a stand-in: pulumi-random's provider module (github.com/pulumi/pulumi-random/provider/v4)
// is refused by the Go module proxy this project builds from, and its go.mod replaces a shim
// module with a local directory that is not published. So this plugin implements the one
// resource the program uses, random:index/randomPassword:RandomPassword, with the behaviour
// of terraform-provider-random's random_password as pulumi-random 4.21.2 exposes it: the same
// property names, defaults, validation messages, state shape (id "none", every input echoed,
// result and bcryptHash secret), every input change a replacement, crypto/rand. See README.md.
//
// It reports version 4.21.2 because the engine matches plugins by name and version and
// @pulumi/random 4.21.2 asks for exactly that.
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
