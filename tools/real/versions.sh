#!/bin/bash
#
# Pinned versions of the real Pulumi toolchain. Sourced by build.sh; no side effects.
#
# The CLI is built from github.com/pulumi/pulumi/pkg/v3 at PULUMI_VERSION. The command and random
# providers and the Node.js language host are the upstream plugins, built from their release
# sources in ../shared/vendor (upstream/prepare.sh). The aws provider is our stand-in
# (provider-aws/), reporting the version @pulumi/aws asks for. Each version is the one the npm
# package in package-lock.json asks for, so the engine finds exactly that plugin (test:
# test/host/toolchain.test.ts).

# shellcheck disable=SC2034  # used by the scripts that source this file

# The Pulumi CLI, and the sdk/v3 release it is built with. Not older than @pulumi/pulumi in the
# lockfile (3.248.0, the last release that supports Node 20).
readonly PULUMI_VERSION="3.248.0"
# The upstream Node.js language host of the same release.
readonly PULUMI_LANGUAGE_NODEJS_VERSION="3.248.0"
# The upstream resource providers, at the versions @pulumi/command and @pulumi/random are pinned to.
readonly PULUMI_COMMAND_VERSION="1.2.1"
readonly PULUMI_RANDOM_VERSION="4.19.1"
# Our stand-in for pulumi-aws, at the version @pulumi/aws asks for.
readonly PULUMI_AWS_VERSION="7.48.0"
