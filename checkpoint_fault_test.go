package spann

import (
	"bytes"
	"os"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/posting"
)

// A checkpoint whose every write in turn fails (ENOSPC, EIO, short
// write): the failure is an error naming the file, later checkpoints in
// the same process either succeed or refuse (after a failed commit), and
// reopening with a working disk finds every acknowledged update, exact
// search over the live set, and an index that passes Check.
func TestCheckpointWriteFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("128 checkpoints; runs in the full suite")
	}
	f := newFixture(t, datasets.Uint8, vec.L2, 1500, 20, 16, posting.DefaultCodec)
	pristine := f.index + "-pristine"
	copyDir(t, f.index, pristine)
	base, err := datasets.LoadVectors(f.base, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	extra := extraRows(t, 150, 16, 91)
	all := &datasets.Matrix{N: 1650, Dim: 16, Data: append(bytes.Clone(base.Data), extra.Data...)}
	dead := map[int32]bool{4: true, 1503: true}
	updates := func(fs vfs.FS) (*Index, error) {
		ix, err := Open(f.index, Options{Writable: true, fs: fs})
		if err != nil {
			return nil, err
		}
		if _, err := ix.Insert(extra.Data[:100*16]); err != nil {
			return ix, err
		}
		// An id of its own (its internal id too, so all's positions stay
		// the ids), for an id map in the checkpoint.
		if err := ix.InsertWithIDs([]int32{1600}, extra.Row(100), false); err != nil {
			return ix, err
		}
		if _, err := ix.Insert(extra.Data[101*16:]); err != nil {
			return ix, err
		}
		return ix, ix.Delete([]int32{4, 1503})
	}
	count := &vfs.Injector{FS: vfs.OS}
	ix, err := updates(count)
	if err != nil {
		t.Fatal(err)
	}
	before := count.Ops()
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	ops := count.Ops() - before
	ix.Close()
	t.Logf("a checkpoint makes %d writes", ops)
	for k := 1; k <= ops; k++ {
		for _, fault := range []vfs.Fault{vfs.ENOSPC, vfs.Short} {
			os.RemoveAll(f.index)
			copyDir(t, pristine, f.index)
			in := &vfs.Injector{FS: vfs.OS, Fail: before + k, Fault: fault}
			ix, err := updates(in)
			if err != nil {
				t.Fatalf("write %d: the updates before the checkpoint: %v", k, err)
			}
			err = ix.Checkpoint()
			if err != nil && !vfs.IsInjected(err) {
				t.Fatalf("write %d (%s): %v, not the injected fault", k, in.Hit(), err)
			}
			if err == nil && in.Hit() != "" {
				t.Fatalf("write %d: failed %s, yet the checkpoint succeeded", k, in.Hit())
			}
			if err2 := ix.Checkpoint(); err2 != nil && err == nil {
				t.Fatalf("write %d: a second checkpoint after a good one: %v", k, err2)
			}
			ix.Close()
			ix, err = Open(f.index, Options{Writable: true})
			if err != nil {
				t.Fatalf("write %d (%s): reopen: %v", k, in.Hit(), err)
			}
			checkLive(t, f, ix, all, dead)
			if err := ix.Checkpoint(); err != nil {
				t.Fatalf("write %d (%s): checkpoint after reopening: %v", k, in.Hit(), err)
			}
			checkLive(t, f, ix, all, dead)
			ix.Close()
			if _, err := Check(f.index); err != nil {
				t.Fatalf("write %d (%s): %v", k, in.Hit(), err)
			}
		}
	}
}
