package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/testutil"
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

// crashPoints are the build's SPANN_TEST_CRASH_AT hooks (internal/build's
// crash.go) that every build passes.
var crashPoints = []string{"after select heads", "assign: half", "postings: half",
	"after assign and write postings", "manifest written"}

// buildKilledAt runs spann-build args in a child process that SIGKILLs
// itself at point, and checks that it did die there.
func buildKilledAt(t *testing.T, point string, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SPANN_BUILD_CHILD=1", "SPANN_TEST_CRASH_AT="+point)
	err := cmd.Run()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("build to be killed at %q: %v (it never reached the point?)", point, err)
	}
}

// TestKilledBuildLeavesNothingOpenable kills a real build process with
// SIGKILL at each hook point (not after guessed delays) and checks that
// nothing at --out opens, then that a rerun succeeds and removes what the
// killed builds left.
func TestKilledBuildLeavesNothingOpenable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real builds in child processes")
	}
	base := genBase(t, 30000, 32)
	dir := t.TempDir()
	out := filepath.Join(dir, "idx")
	args := []string{"--base", base, "--out", out, "--threads", "2", "--quiet"}
	for _, point := range crashPoints {
		buildKilledAt(t, point, args...)
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("killed at %q: %s exists", point, out)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".idx.building-*")); len(left) == 0 {
			t.Fatalf("killed at %q: no temporary directory left (was it killed inside the build?)", point)
		}
	}
	if err := run(args...); err != nil {
		t.Fatalf("rerun after kills: %v", err)
	}
	// The rerun cleaned up the killed builds' temporary directories.
	if left, _ := filepath.Glob(filepath.Join(dir, ".idx.building-*")); len(left) != 0 {
		t.Fatalf("killed builds left %v", left)
	}
	m, err := indexfile.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	// Existing output is refused without --force.
	if err := run(args...); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("existing output: %v", err)
	}

	// --force killed at every point: --out always holds a complete index,
	// the old one up to the exchange and the new one from it on.
	force := append(args, "--force", "--seed", "7")
	for _, point := range append(crashPoints, "exchanged") {
		buildKilledAt(t, point, force...)
		now, err := indexfile.ReadManifest(out)
		if err != nil {
			t.Fatalf("--force killed at %q: %s does not open: %v", point, out, err)
		}
		ix, err := spann.Open(out, spann.Options{})
		if err != nil {
			t.Fatalf("--force killed at %q: %v", point, err)
		}
		ix.Close()
		if replaced := now.BuildID != m.BuildID; replaced != (point == "exchanged") {
			t.Fatalf("--force killed at %q: build %s at --out, the old one is %s", point, now.BuildID, m.BuildID)
		}
		m = now
	}
	if err := run(force...); err != nil {
		t.Fatalf("--force rerun after kills: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".idx.building-*")); len(left) != 0 {
		t.Fatalf("killed --force builds left %v", left)
	}
}

// resumePoints are where TestKilledBuildResumes kills a build: every phase,
// both sides of checkpoint commits (the numbered passes count the
// checkpoints of a 20,000-row base in 16 blocks and 16 spill buckets: 1 at
// the start, 2 heads, 3 graph, 4–19 assignment, 20–34 postings buckets, 35
// postings done, 36 the phase's end, 37 the manifest), and the commit.
var resumePoints = []string{
	"started", "after select heads", "checkpoint: saving#2", "checkpoint: saved#2",
	"after head graph", "checkpoint: saved#3", "assign: block#1", "checkpoint: saving#5",
	"assign: half", "spill: synced#8", "assign: block#9", "checkpoint: saved#12", "assign: block#16",
	"checkpoint: saving#19", "postings: bucket#1", "checkpoint: saving#21", "postings: half",
	"postings: bucket#12", "postings: synced#6", "checkpoint: saved#30", "checkpoint: saving#35", "after assign and write postings",
	"checkpoint: saving#37", "manifest written", "committed",
}

// childBuild runs spann-build args in a child process with a small spill
// bucket cap; crashAt, if set, is where the child SIGKILLs itself. It
// reports whether the child was killed there, and fails the test if it
// neither was nor succeeded.
func childBuild(t *testing.T, crashAt string, args ...string) (killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SPANN_BUILD_CHILD=1", "SPANN_TEST_BUCKET_BYTES=200000", "SPANN_TEST_CRASH_AT="+crashAt)
	outErr, err := cmd.CombinedOutput()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && crashAt != "" {
		return true
	}
	if err != nil {
		t.Fatalf("spann-build %v (crash at %q): %v\n%s", args, crashAt, err, outErr)
	}
	return false
}

// TestKilledBuildResumes kills real builds with SIGKILL at hook points in
// every phase, resumes each with --resume (some killed again further on),
// and checks that the index is byte for byte the uninterrupted one.
func TestKilledBuildResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real builds in child processes")
	}
	base := genBase(t, 20000, 8)
	dir := t.TempDir()
	id, _ := indexfile.NewBuildID()
	args := func(out string, extra ...string) []string {
		return append([]string{"--base", base, "--out", out, "--threads", "2", "--quiet", "--build-id", id.String()}, extra...)
	}
	ref := filepath.Join(dir, "ref")
	childBuild(t, "", args(ref)...)
	out := filepath.Join(dir, "idx")
	tmpDir := t.TempDir()
	for i, point := range resumePoints {
		extra := []string{}
		if i%4 == 3 {
			extra = []string{"--tmp-dir", tmpDir} // the spill in a locked directory of its own
		}
		os.RemoveAll(out)
		if !childBuild(t, point, args(out, extra...)...) {
			t.Fatalf("the build was not killed at %q", point)
		}
		if point != "committed" {
			if _, err := os.Stat(out); err == nil {
				t.Fatalf("killed at %q: %s exists", point, out)
			}
		}
		resume := args(out, append(extra, "--resume")...)
		if i%2 == 1 && i+3 < len(resumePoints) {
			// Killed again while resuming, further on (a numbered point
			// counts from the resumed process's start, so it may come
			// later than in a whole build, or not at all).
			if childBuild(t, resumePoints[i+3], resume...) {
				childBuild(t, "", resume...)
			}
		} else {
			childBuild(t, "", resume...)
		}
		sameIndex(t, ref, out, point)
		if left, _ := filepath.Glob(filepath.Join(dir, ".idx.building-*")); len(left) != 0 {
			t.Fatalf("killed at %q, resumed: left %v", point, left)
		}
		if left, _ := os.ReadDir(tmpDir); len(left) != 0 {
			t.Fatalf("killed at %q, resumed: --tmp-dir holds %d entries", point, len(left))
		}
	}
}

// sameIndex fails unless b holds the index of a.
func sameIndex(t *testing.T, a, b, point string) {
	t.Helper()
	if err := testutil.SameIndex(a, b); err != nil {
		t.Fatalf("killed at %q, resumed: %v", point, err)
	}
}
