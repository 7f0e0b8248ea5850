//go:build tools

// Package tools pins the real Pulumi CLI as a dependency of this wrapper module.
//
// Why a wrapper: upstream pkg/go.mod has `replace github.com/pulumi/pulumi/sdk/v3 => ../sdk`, and
// `go install pkg@version` refuses modules with replace directives. This module requires pkg/v3 and
// sdk/v3 at the same release and repeats upstream's one non-local replace (atotto/clipboard), so
// `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` from here builds the released CLI unchanged.
// The `tools` build tag keeps this file out of every build; it only anchors the requirements.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
	_ "github.com/pulumi/pulumi/sdk/v3"
)
