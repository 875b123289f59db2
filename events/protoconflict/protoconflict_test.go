package protoconflict_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const env = "GOLANG_PROTOBUF_REGISTRATION_CONFLICT"

// buildProgram builds the main package in dir (relative to this package)
// into the test's temporary directory. Packages under testdata are left out
// of "go build ./..." but build fine by path.
func buildProgram(t *testing.T, dir string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary that links protoactor-go and the EventStoreDB client; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./"+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", dir, err, out)
	}
	return bin
}

// goTool is the go command: go test puts the running toolchain's bin
// directory first in the PATH of test binaries.
func goTool() string { return "go" }

// run runs bin with the conflict variable set to value, or unset when value
// is empty, and returns its exit code and output.
func run(t *testing.T, bin, value string) (int, string) {
	t.Helper()
	environ := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, env+"=") })
	if value != "" {
		environ = append(environ, env+"="+value)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		t.Fatalf("run %s: %v", bin, err)
	}
	return 0, out.String()
}

// A binary that links protoactor-go's cluster and EventStore-Client-Go/v4
// (both register "gossip.proto") and imports protoconflict starts; with the
// conflict policy explicitly set to panic, which protoconflict leaves
// alone, the same binary panics at init: the conflict is real and the
// import is what avoids it.
func TestBinaryLinkingBothStarts(t *testing.T) {
	bin := buildProgram(t, "testdata/bothproto")

	code, out := run(t, bin, "")
	if code != 0 {
		t.Fatalf("bothproto exited %d:\n%s", code, out)
	}
	const want = "bothproto: protoactor cluster and EventStoreDB client initialised"
	if !strings.Contains(out, want) {
		t.Fatalf("bothproto printed %q, want a line %q", out, want)
	}

	code, out = run(t, bin, "panic")
	if code == 0 || !strings.Contains(out, `file "gossip.proto" is already registered`) {
		t.Fatalf("bothproto with %s=panic exited %d, want a panic about gossip.proto:\n%s", env, code, out)
	}
}

// Linking the EventStoreDB adapter is enough: it imports protoconflict, so
// a binary that has the adapter and protoactor-go but does not import
// protoconflict itself starts too.
func TestAdapterBringsTheShim(t *testing.T) {
	bin := buildProgram(t, "testdata/adapter")
	code, out := run(t, bin, "")
	if code != 0 {
		t.Fatalf("adapter program exited %d:\n%s", code, out)
	}
	if !strings.Contains(out, "adapter: protoactor cluster and the EventStoreDB store initialised") {
		t.Fatalf("adapter program printed %q", out)
	}

	// And the adapter's import is direct, not an accident of its
	// dependencies.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	listed, err := exec.CommandContext(ctx, goTool(), "list", "-f", `{{join .Imports "\n"}}`, "github.com/callguard/callguard/events/esdb").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !slices.Contains(strings.Fields(string(listed)), "github.com/callguard/callguard/events/protoconflict") {
		t.Fatalf("events/esdb does not import events/protoconflict; its imports:\n%s", listed)
	}
}
