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

import "pms-secrets/tools/real/pluginkit"

func main() { pluginkit.Main(providerName, newProvider()) }
