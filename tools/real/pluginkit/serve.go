// Package pluginkit is the plugin-protocol side of our one stand-in plugin, provider-aws (the
// command and random providers and the language host are upstream's, built from source): serving
// the protocol (ServeGRPC), the answers every provider gives the same way (handshake, plugin
// info) and reading one property as the engine sent it. Kept apart from the provider's Secrets
// Manager logic so that logic reads on its own.
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

// Serve speaks the resource plugin protocol: the engine's logging and tracing flags accepted and
// ignored, then ServeGRPC with the ResourceProvider server, until the engine goes away or the
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
	return ServeGRPC(ctx, cancel, flags.Arg(0), func(srv *grpc.Server) {
		pulumirpc.RegisterResourceProviderServer(srv, plugin.NewProviderServer(prov))
	})
}

// ServeGRPC is what every plugin does with the engine (resource providers and the language
// host): listen on a free loopback port, print it as the first stdout line (the engine reads it),
// serve what register installs until ctx ends, and call cancel when the engine at engine (if
// given) stops answering health checks, so an interrupted CLI leaves no orphan.
func ServeGRPC(ctx context.Context, cancel context.CancelFunc, engine string, register func(*grpc.Server)) error {
	if engine != "" {
		if err := rpcutil.Healthcheck(ctx, engine, 5*time.Minute, cancel); err != nil {
			return fmt.Errorf("could not start the health check of the engine at %s: %w", engine, err)
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
			register(srv)
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("could not start the gRPC server: %w", err)
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
