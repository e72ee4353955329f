package build

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vfs"
)

// Every one of a small build's writes (creates, writes, syncs, renames,
// directory syncs; spill, postings, checkpoints and manifest alike) is
// made to fail in turn with ENOSPC, EIO or a short write: the build always
// returns an error naming the file, leaves nothing at --out, nothing in
// the build's directory or --tmp-dir, and no descriptor or goroutine.
// (With -short, every seventh write.)
func TestBuildWriteFaults(t *testing.T) {
	dir := t.TempDir()
	base := genBase(t, dir, 2000, 8)
	spillTo := t.TempDir()
	out := filepath.Join(dir, "idx")
	opts := func(fs vfs.FS) Options {
		return Options{Base: base, Out: out, Threads: 2, Seed: 1, MemoryBudget: 256 << 20,
			maxBucketBytes: 64 << 10, TmpDir: spillTo, fs: fs}
	}
	count := &vfs.Injector{FS: vfs.OS}
	if _, err := Run(context.Background(), opts(count)); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(out)
	ops := count.Ops()
	t.Logf("%d write operations", ops)
	if ops < 50 {
		t.Fatalf("only %d write operations counted", ops)
	}
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	step := 1
	if testing.Short() {
		step = 7 // a spread of them, every fault kind among them
	}
	for k := 1; k <= ops; k += step {
		in := &vfs.Injector{FS: vfs.OS, Fail: k, Fault: vfs.Fault(k % 3)}
		_, err := Run(context.Background(), opts(in))
		hit := in.Hit()
		if hit == "" {
			t.Fatalf("write %d of %d never came", k, ops)
		}
		if err == nil {
			t.Fatalf("%s: the build succeeded", hit)
		}
		name := strings.Fields(hit)[1]
		if !vfs.IsInjected(err) || !strings.Contains(err.Error(), filepath.Base(name)) {
			t.Fatalf("%s: error %q does not name %s or hide the fault", hit, err, filepath.Base(name))
		}
		if _, err := indexfile.ReadManifest(out); err == nil {
			t.Fatalf("%s: an index is at --out", hit)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%s: %s exists", hit, out)
		}
		assertNoLeftovers(t, dir)
		if ents, _ := os.ReadDir(spillTo); len(ents) != 0 {
			t.Fatalf("%s: --tmp-dir holds %d entries", hit, len(ents))
		}
	}
	if n := openFDs(t); n > fds {
		t.Errorf("%d descriptors open after the failed builds, %d before", n, fds)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines after the failed builds, %d before", n, goroutines)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
