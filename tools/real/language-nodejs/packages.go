package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// packageJSON is the part of a package.json that says whether a package brings a Pulumi plugin.
type packageJSON struct {
	Name    string                  `json:"name"`
	Version string                  `json:"version"`
	Pulumi  plugin.PulumiPluginJSON `json:"pulumi"`
}

// findPackages walks dir and every directory below it (following symlinks once) and returns one
// PackageDependency per package.json inside a node_modules tree that declares
// `"pulumi": {"resource": true}`. Policy pack directories are skipped: their plugins are not the
// program's. It also returns where each @pulumi/pulumi copy was found, to warn about mixes.
func findPackages(dir string) ([]*pulumirpc.PackageDependency, map[string]semver.Version, error) {
	w := walker{visited: map[string]bool{}, sdkVersions: map[string]semver.Version{}}
	w.walk(dir, false)
	return w.packages, w.sdkVersions, errors.Join(w.errs...)
}

type walker struct {
	visited     map[string]bool
	packages    []*pulumirpc.PackageDependency
	sdkVersions map[string]semver.Version
	errs        []error
}

func isPolicyPackDir(dir string) bool {
	for _, name := range []string{"PulumiPolicy.yaml", "PulumiPolicy.yml"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

func (w *walker) walk(dir string, inNodeModules bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		w.errs = append(w.errs, err)
		return
	}
	if w.visited[abs] {
		return
	}
	w.visited[abs] = true
	entries, err := os.ReadDir(abs)
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("reading plugin dir %s: %w", abs, err))
		return
	}
	childInNodeModules := inNodeModules || filepath.Base(abs) == "node_modules"
	for _, e := range entries {
		p := filepath.Join(abs, e.Name())
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			resolved, err := filepath.EvalSymlinks(p)
			if err != nil {
				w.errs = append(w.errs, fmt.Errorf("resolving link in plugin dir %s: %w", p, err))
				continue
			}
			fi, err := os.Stat(resolved)
			if err != nil {
				w.errs = append(w.errs, err)
				continue
			}
			p, isDir = resolved, fi.IsDir()
		}
		switch {
		case isDir:
			if !isPolicyPackDir(p) {
				w.walk(p, childInNodeModules)
			}
		case inNodeModules && e.Name() == "package.json":
			w.readPackage(p)
		}
	}
}

func (w *walker) readPackage(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		w.errs = append(w.errs, err)
		return
	}
	var info packageJSON
	if err := json.Unmarshal(b, &info); err != nil {
		w.errs = append(w.errs, fmt.Errorf("unmarshaling package.json %s: %w", path, err))
		return
	}
	if info.Name == "@pulumi/pulumi" {
		v, err := semver.Parse(info.Version)
		if err != nil {
			w.errs = append(w.errs, fmt.Errorf("could not understand version %s in %s: %w", info.Version, path, err))
		} else {
			w.sdkVersions[path] = v
		}
	}
	if !info.Pulumi.Resource {
		return
	}
	name := info.Pulumi.Name
	if name == "" {
		if !strings.HasPrefix(info.Name, "@pulumi/") {
			w.errs = append(w.errs, fmt.Errorf("%s: third-party plugin package %q must name its plugin in "+
				"package.json under \"pulumi\": {\"name\": …}", path, info.Name))
			return
		}
		name = strings.TrimPrefix(info.Name, "@pulumi/")
	}
	version := info.Pulumi.Version
	if version == "" {
		version = info.Version
	}
	if version == "" {
		w.errs = append(w.errs, fmt.Errorf("%s: missing \"version\"", path))
		return
	}
	if !strings.HasPrefix(version, "v") {
		version = "v" + version
	}
	dep := &pulumirpc.PackageDependency{
		Name: name, Kind: "resource", Version: version, Server: info.Pulumi.Server,
	}
	if p := info.Pulumi.Parameterization; p != nil {
		dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	w.packages = append(w.packages, dep)
}

// warnIncompatibleSDKs tells the user when two copies of @pulumi/pulumi with different major
// versions are installed: their resources would not see each other.
func warnIncompatibleSDKs(versions map[string]semver.Version) {
	paths := make([]string, 0, len(versions))
	for p := range versions {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths[min(1, len(paths)):] {
		first := versions[paths[0]]
		if v := versions[p]; v.Major != first.Major {
			fmt.Fprintf(os.Stderr, "Found incompatible versions of @pulumi/pulumi. Differing major versions are "+
				"not supported.\n  Version %s referenced at %s\n  Version %s referenced at %s\n",
				first, paths[0], v, p)
			return
		}
	}
}
