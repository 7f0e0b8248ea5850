package remote

import (
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/middleware/schema"
)

// PluginName and PluginVersion are what the engine matches: @pulumi/command
// 1.2.1 registers its resources with version "1.2.1", and the engine only
// accepts an ambient plugin whose GetPluginInfo reports that version.
const (
	PluginName    = "command"
	PluginVersion = "1.2.1"
)

// NewProvider returns the stand-in provider: command:remote:Command only.
// local:Command, remote:CopyToRemote, remote:CopyFile and local:run are not
// implemented; the engine reports an unknown resource type if a program
// uses them.
func NewProvider() p.Provider {
	return infer.Provider(infer.Options{
		Metadata: schema.Metadata{
			DisplayName: "Command (pms-secrets stand-in)",
			Description: "Stand-in written by the pms-secrets project for pulumi-command v1.2.1; " +
				"implements only command:remote:Command.",
			License: "Apache-2.0",
		},
		Resources: []infer.InferredResource{
			infer.Resource(&Command{}),
		},
	})
}
