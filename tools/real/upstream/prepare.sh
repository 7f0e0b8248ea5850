#!/bin/bash
#
# The upstream Pulumi plugins built from their release sources (issue 17), and the only steps
# applied to those sources before `go build`: the ones ../shared/vendor/README.md lists. Sourced
# by build.sh; no side effects. Nothing in upstream code is edited: each step changes go.mod/go.sum
# to modules the Go proxy serves, or copies a file the way upstream's own Makefile does.
#
# Each plugin: name|vendor folder|module dir inside it|package to build|version ldflag|version.
# The vendor folders live in PMS_VENDOR_DIR (default ../shared/vendor next to the repository).

# shellcheck disable=SC2034  # used by build.sh
readonly UPSTREAM_PLUGINS=(
  "pulumi-resource-command|pulumi-command-v${PULUMI_COMMAND_VERSION}|provider|./cmd/pulumi-resource-command|github.com/pulumi/pulumi-command/provider/pkg/version.Version=${PULUMI_COMMAND_VERSION}|${PULUMI_COMMAND_VERSION}"
  "pulumi-resource-random|pulumi-random-v${PULUMI_RANDOM_VERSION}|provider|./cmd/pulumi-resource-random|github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version=${PULUMI_RANDOM_VERSION}|${PULUMI_RANDOM_VERSION}"
  "pulumi-language-nodejs|pulumi-language-nodejs-v${PULUMI_LANGUAGE_NODEJS_VERSION}|sdk/nodejs/cmd/pulumi-language-nodejs|.|github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_LANGUAGE_NODEJS_VERSION}|${PULUMI_LANGUAGE_NODEJS_VERSION}"
)

#######################################
# pulumi-command 1.2.1 builds as released.
#######################################
prepare_pulumi-resource-command() {
  :
}

#######################################
# pulumi-random 4.19.1 pins pulumi-terraform-bridge v3.119.0, which the Go proxy does not serve;
# v3.120.0 is served and builds. schema-embed.json is what upstream's Makefile copies from
# schema.json before building.
#######################################
prepare_pulumi-resource-random() {
  go get github.com/pulumi/pulumi-terraform-bridge/v3@v3.120.0
  go mod tidy
  cp cmd/pulumi-resource-random/schema.json cmd/pulumi-resource-random/schema-embed.json
}

#######################################
# In the pulumi monorepo the language host replaces pkg/v3 and sdk/v3 with local folders; take the
# released modules of the same version instead.
#######################################
prepare_pulumi-language-nodejs() {
  go mod edit \
    -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
    -require "github.com/pulumi/pulumi/pkg/v3@v${PULUMI_LANGUAGE_NODEJS_VERSION}" \
    -require "github.com/pulumi/pulumi/sdk/v3@v${PULUMI_LANGUAGE_NODEJS_VERSION}"
  go mod tidy
}
