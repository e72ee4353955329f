package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
)

// TestMain lets the test binary act as spann-build itself, so that a test
// can run a real build in a child process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("SPANN_BUILD_CHILD") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(args ...string) error {
	return newApp().Run(append([]string{"spann-build"}, args...))
}

func genBase(t *testing.T, n, dim int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "base.u8bin")
	if err := datasets.Generate(p, datasets.GenParams{N: n, Dim: dim, Type: datasets.Uint8, Seed: 2}, 2, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadFlags(t *testing.T) {
	base := genBase(t, 500, 8)
	out := filepath.Join(t.TempDir(), "idx")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--head-ratio", "1.5"}, "--head-ratio"},
		{[]string{"--head-ratio", "0"}, "--head-ratio"},
		{[]string{"--replicas", "0"}, "--replicas"},
		{[]string{"--posting-limit", "0"}, "--posting-limit"},
		{[]string{"--codec", "lz4"}, "lz4"},
		{[]string{"--metric", "manhattan"}, "manhattan"},
		{[]string{"--memory-budget", "1MiB"}, "too small"},
		{[]string{"--memory-budget", "lots"}, "--memory-budget"},
		{[]string{"--threads", "-1"}, "--threads"},
		{[]string{"--metric", "cosine"}, "cosine"},
		{[]string{"--crop", "501"}, "only 500"},
		{[]string{"--type", "float32"}, "truncated"},
	} {
		err := run(append([]string{"--base", base, "--out", out, "--quiet"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want mention of %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a rejected build left its output")
	}
}

// TestKilledBuildLeavesNothingOpenable kills a real build process with
// SIGKILL at several points and checks that nothing at --out opens, then
// that a rerun succeeds.
func TestKilledBuildLeavesNothingOpenable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real builds in child processes")
	}
	base := genBase(t, 30000, 32)
	dir := t.TempDir()
	out := filepath.Join(dir, "idx")
	args := []string{"--base", base, "--out", out, "--threads", "2", "--quiet"}
	for _, after := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, 800 * time.Millisecond} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "SPANN_BUILD_CHILD=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if _, serr := os.Stat(out); serr == nil {
			if err == nil {
				// The build finished before the kill: fine, but then it
				// must be complete.
				if _, merr := indexfile.ReadManifest(out); merr != nil {
					t.Fatalf("finished build does not open: %v", merr)
				}
				os.RemoveAll(out)
				continue
			}
			t.Fatalf("killed after %v: %s exists", after, out)
		}
		if _, merr := indexfile.ReadManifest(out); merr == nil {
			t.Fatalf("killed after %v: index opens", after)
		}
		t.Logf("killed after %v: nothing at %s", after, out)
	}
	if err := run(args...); err != nil {
		t.Fatalf("rerun after kills: %v", err)
	}
	// The rerun cleaned up the killed builds' temporary directories.
	if left, _ := filepath.Glob(filepath.Join(dir, ".idx.building-*")); len(left) != 0 {
		t.Fatalf("killed builds left %v", left)
	}
	if _, err := indexfile.ReadManifest(out); err != nil {
		t.Fatal(err)
	}
	// Existing output is refused without --force.
	if err := run(args...); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("existing output: %v", err)
	}
}
