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

import "pms-secrets/tools/real/pluginkit"

func main() { pluginkit.Main(providerName, newProvider()) }
