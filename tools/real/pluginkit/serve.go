// Package pluginkit is what this project's stand-in resource plugins (provider-random,
// provider-aws) share: serving the plugin protocol, the answers every provider gives the same
// way (handshake, plugin info), and reading one property as the engine sent it.
package pluginkit

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// Main serves prov as the plugin pulumi-resource-<name> and exits non-zero if that fails.
func Main(name string, prov plugin.Provider) {
	if err := Serve(name, prov); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Serve speaks the plugin protocol: listen on a free loopback port, print it as the first
// stdout line (the engine reads it), serve ResourceProvider until the engine goes away or the
// process is interrupted.
func Serve(name string, prov plugin.Provider) error {
	// The engine may pass logging and tracing flags before the engine address; accept and
	// ignore them (these plugins log nothing).
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
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

// Base answers what every stand-in answers the same way; providers embed it and implement
// the rest. Version is the upstream version the stand-in reports (the engine matches plugins
// by name and version, and the SDK asks for exactly that one).
type Base struct {
	plugin.UnimplementedProvider
	Version string
}

// Handshake accepts secrets and resource references, as upstream providers do.
func (b *Base) Handshake(context.Context, plugin.ProviderHandshakeRequest) (*plugin.ProviderHandshakeResponse, error) {
	return &plugin.ProviderHandshakeResponse{AcceptSecrets: true, AcceptResources: true}, nil
}

// GetPluginInfo reports Version.
func (b *Base) GetPluginInfo(context.Context) (plugin.PluginInfo, error) {
	v, err := semver.Parse(b.Version)
	if err != nil {
		return plugin.PluginInfo{}, fmt.Errorf("provider version %q: %w", b.Version, err)
	}
	return plugin.PluginInfo{Version: &v}, nil
}
