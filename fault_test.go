package spann

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/iouring"
	"github.com/gospann/spann/posting"
)

// faultyReader fails or shortens the reads its fail function picks.
type faultyReader struct {
	iouring.Reader
	reads *atomic.Int64 // reads completed by every worker's reader
	fail  func(n int64, r *iouring.Request)
}

func (f faultyReader) ReadEach(reqs []iouring.Request, done func(int)) error {
	err := f.Reader.ReadEach(reqs, func(i int) {
		f.fail(f.reads.Add(1), &reqs[i])
		done(i)
	})
	return err
}

func (f faultyReader) Read(reqs []iouring.Request) error {
	return f.ReadEach(reqs, func(int) {})
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Search through a reader that fails one read with EIO or returns it
// short: the failing query gets an error naming postings.bin and the
// failure, never a silently shorter answer; every other query's answer is
// the undamaged one; and Close leaves no descriptor or goroutine behind.
func TestSearchReadFaults(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 30, 8, posting.DefaultCodec)
	clean, err := Open(f.index, Options{IO: "pread"})
	if err != nil {
		t.Fatal(err)
	}
	p := SearchParams{NProbe: 16}
	want := make([][]Neighbor, f.q.N)
	for i := range want {
		if want[i], err = clean.Search(f.q.Row(i), 10, p); err != nil {
			t.Fatal(err)
		}
	}
	clean.Close()
	for _, c := range []struct {
		name string
		hurt func(r *iouring.Request)
		msg  string
		is   error
	}{
		{"EIO", func(r *iouring.Request) { r.N, r.Err = 0, syscall.EIO }, "input/output error", syscall.EIO},
		{"short", func(r *iouring.Request) { r.N = len(r.Buf) / 2 }, "short read", ErrCorrupt},
	} {
		fds, routines := openFDs(t), runtime.NumGoroutine()
		var reads atomic.Int64
		const failAt = 37
		ix, err := Open(f.index, Options{IO: "pread", WrapReader: func(r iouring.Reader) iouring.Reader {
			return faultyReader{Reader: r, reads: &reads, fail: func(n int64, r *iouring.Request) {
				if n == failAt {
					c.hurt(r)
				}
			}}
		}})
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for i := range want {
			got, err := ix.Search(f.q.Row(i), 10, p)
			if err != nil {
				failed++
				if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "postings.bin") {
					t.Errorf("%s: query %d: %v, want %q naming postings.bin", c.name, i, err, c.msg)
				}
				continue
			}
			if !slices.Equal(got, want[i]) {
				t.Errorf("%s: query %d answered %v, want %v", c.name, i, got, want[i])
			}
		}
		if failed != 1 {
			t.Errorf("%s: %d queries failed, want exactly the one whose read was hurt", c.name, failed)
		}
		if _, err := SearchVectors(ix, datasets.Rows[uint8](f.q.Data), 10, p, 2); err != nil {
			t.Errorf("%s: a batch after the fault: %v", c.name, err)
		}
		if err := ix.Close(); err != nil {
			t.Errorf("%s: close: %v", c.name, err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > routines && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := openFDs(t); n != fds {
			t.Errorf("%s: %d descriptors open after Close, %d before Open", c.name, n, fds)
		}
		if n := runtime.NumGoroutine(); n > routines {
			t.Errorf("%s: %d goroutines after Close, %d before Open", c.name, n, routines)
		}
	}
}
