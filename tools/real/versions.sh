#!/bin/bash
#
# Pinned versions of the real Pulumi toolchain (issue 7). Sourced by build.sh; no side effects.
#
# The CLI is the real one, built from github.com/pulumi/pulumi/pkg/v3 at PULUMI_VERSION. The other
# tools are this project's own stand-ins (see tools/real/README.md); each reports the version below
# from GetPluginInfo because the engine matches plugins by name and version, and these are the
# versions the npm packages in package-lock.json ask for.

# shellcheck disable=SC2034  # used by the scripts that source this file

# The Pulumi CLI, and the sdk/v3 release it is built with. Not older than @pulumi/pulumi in the
# lockfile (3.248.0, the last release that supports Node 20).
readonly PULUMI_VERSION="3.248.0"
# Stand-in for the Node.js language host of the same release.
readonly PULUMI_LANGUAGE_NODEJS_VERSION="3.248.0"
# Stand-ins for the resource providers, at the versions @pulumi/command, @pulumi/random and
# @pulumi/aws ask for (node_modules/@pulumi/*/package.json).
readonly PULUMI_COMMAND_VERSION="1.2.1"
readonly PULUMI_RANDOM_VERSION="4.21.2"
readonly PULUMI_AWS_VERSION="7.48.0"
