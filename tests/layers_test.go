package tests

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/callguard/callguard"

// layers says which of the module's top-level folders the non-test code of
// each may import. Imports run one way: cmd composes everything; sip (the
// edge that asks the grains) stands on actors; actors and projections stand
// side by side on events and never import each other (decisions never read a
// read model, read models fold events, not grain state); events and sounds
// know nobody above them.
var layers = map[string][]string{
	"events":      {"events"},
	"sounds":      {},
	"actors":      {"events", "actors"},
	"projections": {"events", "projections"},
	"sip":         {"events", "sounds", "actors", "sip"},
	"cmd":         {"events", "sounds", "actors", "projections", "sip", "cmd"},
	"tests":       {"events", "sounds", "actors", "projections", "sip", "cmd", "tests"},
}

// TestImportsRunOneWay fails when a package imports one of a layer above
// it or beside it, when the events package itself imports anything of the
// module, or when production code outside cmd imports a test kit (a
// package whose name ends in "test"). Imports from _test.go files do not
// count: a test may reach across layers to set its scene.
func TestImportsRunOneWay(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	imports, err := moduleImports(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 20 {
		t.Fatalf("found only %d packages under %s: is this the module root?", len(imports), root)
	}
	for _, v := range violations(imports) {
		t.Error(v)
	}
}

// TestLayerRuleCatchesUpwardImports shows the rule failing on the imports
// the layering forbids, so that a change that weakens violations is seen.
func TestLayerRuleCatchesUpwardImports(t *testing.T) {
	bad := map[string][]string{
		"projections/lists": {"actors/policy"},
		"actors/caller":     {"projections/metrics"},
		"sip/guard":         {"projections/metrics"},
		"events/schema":     {"actors/policy"},
		"events":            {"events/schema"},
		"actors/node":       {"sip/guard"},
		"sip/media":         {"cmd/callguard/adminapi"},
		"actors/call":       {"sip/siptest"},
	}
	for pkg, deps := range bad {
		if v := violations(map[string][]string{pkg: deps}); len(v) != 1 {
			t.Errorf("%s importing %v: %d violations, want 1", pkg, deps, len(v))
		}
	}
	good := map[string][]string{
		"sip/guard":             {"actors/call", "events/schema", "sounds"},
		"projections/lists":     {"events/schema", "projections/runner"},
		"cmd/callguard":         {"sip/siptest", "projections/readside", "actors/caller"},
		"actors/policy/simtest": {"actors/policy"},
		"sip/siptest":           {"sip/media", "sounds"},
	}
	for pkg, deps := range good {
		if v := violations(map[string][]string{pkg: deps}); len(v) != 0 {
			t.Errorf("%s importing %v: %v, want none", pkg, deps, v)
		}
	}
}

// violations lists the forbidden imports among imports (package → the
// module packages it imports, both relative to the module root).
func violations(imports map[string][]string) []string {
	var out []string
	for pkg, deps := range imports {
		top, _, _ := strings.Cut(pkg, "/")
		allowed, known := layers[top]
		if !known {
			out = append(out, "package "+pkg+" is outside the design card's top-level folders")
			continue
		}
		for _, dep := range deps {
			dtop, _, _ := strings.Cut(dep, "/")
			switch {
			case pkg == "events":
				out = append(out, pkg+" imports "+dep+": the events package must know nobody above it")
			case !slices.Contains(allowed, dtop):
				out = append(out, pkg+" imports "+dep+": "+top+" may import only "+strings.Join(allowed, ", "))
			case isTestKit(dep) && !isTestKit(pkg) && top != "cmd" && top != "tests":
				out = append(out, pkg+" imports the test kit "+dep+" outside a _test.go file")
			}
		}
	}
	slices.Sort(out)
	return out
}

func isTestKit(pkg string) bool { return strings.HasSuffix(path.Base(pkg), "test") }

// moduleImports reads the imports of every non-test Go file under root.
func moduleImports(root string) (map[string][]string, error) {
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, p, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		for _, spec := range f.Imports {
			ip, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			dep, ok := strings.CutPrefix(ip, module+"/")
			if !ok {
				continue
			}
			if !slices.Contains(out[pkg], dep) {
				out[pkg] = append(out[pkg], dep)
			}
		}
		if _, seen := out[pkg]; !seen {
			out[pkg] = nil
		}
		return nil
	})
	return out, err
}
