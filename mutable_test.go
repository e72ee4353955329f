package spann

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// liveTopK is the exact answer over the vectors not in dead: the k
// smallest squared L2 distances from query q.
func liveTopK(base *datasets.Matrix, q []byte, dead map[int32]bool, k int) []float32 {
	var ds []float32
	for i := 0; i < base.N; i++ {
		if dead[int32(i)] {
			continue
		}
		var d float32
		for j, x := range base.Row(i) {
			e := float32(x) - float32(q[j])
			d += e * e
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[:k]
}

// checkLive fails unless exhaustive search over ix returns, for every
// query, no deleted id and exactly the live set's k nearest distances.
func checkLive(t *testing.T, f *fixture, ix *Index, base *datasets.Matrix, dead map[int32]bool) {
	t.Helper()
	all := len(ix.eng.headIDs())
	res, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: all, HeadList: all, Eps: -1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for q := 0; q < f.q.N; q++ {
		want := liveTopK(base, f.q.Row(q), dead, 10)
		for r := 0; r < 10; r++ {
			if id := res.IDs[q*10+r]; dead[id] {
				t.Fatalf("query %d rank %d: deleted id %d returned", q, r, id)
			}
			if res.Dists[q*10+r] != want[r] {
				t.Fatalf("query %d rank %d: distance %g, the live set's is %g", q, r, res.Dists[q*10+r], want[r])
			}
		}
	}
}

// Deleted ids are never returned and exhaustive search stays exact over
// the live vectors; deletes survive reopening, from the log and after a
// checkpoint from tombstones.bin; bad updates are refused.
func TestDelete(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 40, 16, posting.DefaultCodec)
	base, err := datasets.LoadVectors(f.base, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	// Delete every query's current top 3 (heads among them) and a random
	// tenth of the rest.
	dead := map[int32]bool{}
	var ids []int32
	res, _ := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 16, Eps: -1}, 1)
	for q := 0; q < f.q.N; q++ {
		ids = append(ids, res.IDs[q*10:q*10+3]...)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for i := 0; i < 300; i++ {
		ids = append(ids, int32(rng.IntN(3000)))
	}
	for _, id := range ids {
		dead[id] = true
	}
	if err := ix.Delete(ids[:50]); err != nil {
		t.Fatal(err)
	}
	if err := ix.Delete(ids[50:]); err != nil {
		t.Fatal(err)
	}
	if err := ix.Delete(ids[:10]); err != nil { // again: nothing changes
		t.Fatal(err)
	}
	if ix.Deleted() != len(dead) {
		t.Fatalf("Deleted() = %d, want %d", ix.Deleted(), len(dead))
	}
	checkLive(t, f, ix, base, dead)
	if err := ix.Delete([]int32{5, 3000}); err == nil || !strings.Contains(err.Error(), "delete 3000: no such id") || ix.Deleted() != len(dead) {
		t.Fatalf("delete of id 3000: %v, %d deleted", err, ix.Deleted())
	}
	if _, err := Open(f.index, Options{Writable: true}); err == nil || !strings.Contains(err.Error(), "open for writing by another process") {
		t.Fatalf("second writable open: %v", err)
	}
	// A read-only open sees the logged deletes and cannot delete.
	ro, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ro.Deleted() != len(dead) {
		t.Fatalf("read-only open sees %d deletes, want %d", ro.Deleted(), len(dead))
	}
	if err := ro.Delete([]int32{1}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only delete: %v", err)
	}
	ro.Close()
	ix.Close()
	if err := ix.Delete([]int32{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("delete after Close: %v", err)
	}

	// Reopened: replayed from the log. Checkpointed: from tombstones.bin,
	// the log emptied.
	ix, err = Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	checkLive(t, f, ix, base, dead)
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(f.index, walFile)); st.Size() != 36 {
		t.Errorf("wal.log is %d bytes after the checkpoint, want its header only", st.Size())
	}
	if err := ix.Delete([]int32{7}); err != nil {
		t.Fatal(err)
	}
	dead[7] = true
	ix.Close()
	ix, err = Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkLive(t, f, ix, base, dead)
	ix.Close()
	if r, err := Check(f.index); err != nil || r.Deleted != len(dead) || r.Unreachable != 0 || r.LogTornBytes != 0 {
		t.Fatalf("check after deletes: %v, %+v", err, r)
	}
	// A torn tail (what a power cut leaves) is skipped by a reader, cut by
	// a writer, and reported by both.
	lf, _ := os.OpenFile(filepath.Join(f.index, walFile), os.O_WRONLY|os.O_APPEND, 0)
	lf.Write(make([]byte, 10))
	lf.Close()
	for _, w := range []bool{false, true} {
		ix, err := Open(f.index, Options{Writable: w})
		if err != nil || ix.Info().LogTornBytes != 10 || ix.Deleted() != len(dead) {
			t.Fatalf("writable %v, torn tail of 10 bytes: %v, reported %d, %d deleted", w, err, ix.Info().LogTornBytes, ix.Deleted())
		}
		ix.Close()
	}
	if ix, _ := Open(f.index, Options{}); ix.Info().LogTornBytes != 0 {
		t.Fatalf("the writer did not cut the torn tail")
	} else {
		ix.Close()
	}

	// A damaged log record (not its tail) or tombstones file refuses Open.
	path := filepath.Join(f.index, indexfile.TombstonesFile)
	raw, _ := os.ReadFile(path)
	raw[45] ^= 1
	os.WriteFile(path, raw, 0o644)
	if _, err := Open(f.index, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "tombstones.bin") {
		t.Fatalf("damaged tombstones.bin: %v", err)
	}
	raw[45] ^= 1
	os.WriteFile(path, raw, 0o644)
	// A damaged record with intact ones after it: Open refuses, naming the
	// log, and a writable Open leaves the log as it was (nothing cut).
	ix, err = Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int32{1001, 1002, 1003} {
		if err := ix.Delete([]int32{id}); err != nil {
			t.Fatal(err)
		}
	}
	ix.Close()
	logPath := filepath.Join(f.index, walFile)
	logged, _ := os.ReadFile(logPath)
	damaged := bytes.Clone(logged)
	damaged[len(damaged)-2*21+17] ^= 0x10 // the middle one of the last three records (17-byte header, one 4-byte id)
	os.WriteFile(logPath, damaged, 0o644)
	for _, w := range []bool{false, true} {
		_, err := Open(f.index, Options{Writable: w})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), walFile) {
			t.Fatalf("writable %v, damaged log record: %v", w, err)
		}
	}
	if now, _ := os.ReadFile(logPath); !bytes.Equal(now, damaged) {
		t.Fatal("a writable Open changed the damaged log")
	}
}

// Deletes run while searches and checkpoints do (-race); afterwards no
// search returns a deleted id.
func TestDeleteConcurrent(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 40, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 16, Eps: -1}, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var dwg sync.WaitGroup
	for g := 0; g < 3; g++ {
		dwg.Add(1)
		go func(g int) {
			defer dwg.Done()
			for i := 0; i < 100; i++ {
				if err := ix.Delete([]int32{int32(g*1000 + i)}); err != nil {
					t.Error(err)
					return
				}
				if i%30 == 0 {
					if err := ix.Checkpoint(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(g)
	}
	dwg.Wait()
	close(stop)
	wg.Wait()
	if ix.Deleted() != 300 {
		t.Fatalf("%d deleted, want 300", ix.Deleted())
	}
	res, err := ix.SearchBatch(f.q.Data, 100, SearchParams{NProbe: 64, Eps: -1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range res.IDs {
		if id%1000 < 100 && id >= 0 {
			t.Fatalf("deleted id %d returned", id)
		}
	}
}

// A writer killed with SIGKILL while deleting (inside the log's group
// commit and inside checkpoints) loses no acknowledged delete.
func TestKilledDeleter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs writers in child processes")
	}
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	for _, point := range []string{"wal: written#4", "wal: synced#9", "wal: batch#15", "checkpoint: tombstones written#2", "checkpoint: log reset#1", "wal: written#40"} {
		out := killedChild(t, point, "SPANN_DELETE_CHILD="+f.index)
		ix, err := Open(f.index, Options{Writable: true})
		if err != nil {
			t.Fatalf("%s: reopen: %v", point, err)
		}
		acked := 0
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			id, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "deleted "))
			if err != nil {
				continue // the test framework's own output
			}
			if !ix.dead.Load().Contains(uint32(id)) {
				t.Fatalf("%s: acknowledged delete of %d lost", point, id)
			}
			acked++
		}
		t.Logf("%s: %d acknowledged deletes, %d deleted after reopening, %d torn bytes", point, acked, ix.Deleted(), ix.Info().LogTornBytes)
		ix.Close()
	}
}

// TestMain lets the test binary be the child processes that the kill
// tests run (deleteChild, insertChild) when their variable is set.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("SPANN_DELETE_CHILD") != "":
		deleteChild(os.Getenv("SPANN_DELETE_CHILD"))
	case os.Getenv("SPANN_INSERT_CHILD") != "":
		insertChild(os.Getenv("SPANN_INSERT_CHILD"), os.Getenv("SPANN_INSERT_ROWS"))
	case os.Getenv("SPANN_UPSERT_CHILD") != "":
		upsertChild(os.Getenv("SPANN_UPSERT_CHILD"), os.Getenv("SPANN_INSERT_ROWS"))
	case os.Getenv("SPANN_UPDATE_CHILD") != "":
		mixedChild(os.Getenv("SPANN_UPDATE_CHILD"), os.Getenv("SPANN_INSERT_ROWS"))
	default:
		os.Exit(m.Run())
	}
	os.Exit(0)
}

// killedChild runs this test binary as a child process with env (which
// selects the child in TestMain) and SPANN_TEST_CRASH_AT=point, and
// returns its output once it has died of SIGKILL there.
func killedChild(t *testing.T, point string, env ...string) []byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), "SPANN_TEST_CRASH_AT="+point)
	out, _ := cmd.Output()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s: the child was not killed there: %v\n%s", point, cmd.ProcessState, out)
	}
	return out
}

// updateChild opens the index in dir for writing and runs update(i) for
// i = 0, 1, … n-1 from 2 goroutines, printing the line each returns once
// it is acknowledged, then checkpointing after every ckEvery-th, until the
// crash point kills the process. Any error exits 1.
func updateChild(dir string, n, ckEvery int, update func(ix *Index, i int) (string, error)) {
	ix, err := Open(dir, Options{Writable: true})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 2 {
				line, err := update(ix, i)
				if err != nil {
					fmt.Println(err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Println(line) // acknowledged
				mu.Unlock()
				if i%ckEvery == 0 {
					if err := ix.Checkpoint(); err != nil {
						fmt.Println(err)
						os.Exit(1)
					}
				}
			}
		}(g)
	}
	wg.Wait()
}

// deleteChild is TestKilledDeleter's child: it deletes ids 0, 1, 2, … one
// at a time.
func deleteChild(dir string) {
	updateChild(dir, 3000, 50, func(ix *Index, i int) (string, error) {
		return fmt.Sprintf("deleted %d", i), ix.Delete([]int32{int32(i)})
	})
}
