//go:build linux

package iouring

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const page = FileAlignment

// testDir returns a directory on a filesystem that accepts O_DIRECT:
// t.TempDir() normally; if that is tmpfs (O_DIRECT → EINVAL), a temporary
// directory inside the package directory, removed at cleanup. If neither
// supports O_DIRECT the file backends fall back to buffered reads and the
// test logs it.
func testDir(t testing.TB) string {
	dir := t.TempDir()
	if directOK(t, dir) {
		return dir
	}
	local, err := os.MkdirTemp(".", "iotest-")
	if err != nil {
		t.Fatalf("temp dir in package: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(local) })
	if !directOK(t, local) {
		t.Logf("O_DIRECT unsupported in %s and %s: file backends run buffered", dir, local)
	}
	return local
}

func directOK(t testing.TB, dir string) bool {
	p := filepath.Join(dir, "probe")
	if err := os.WriteFile(p, make([]byte, page), 0o600); err != nil {
		t.Fatalf("write probe: %v", err)
	}
	defer os.Remove(p)
	fd, direct, err := openDirect(p)
	if err != nil {
		t.Fatalf("open probe: %v", err)
	}
	unix.Close(fd)
	return direct
}

// testFile writes size random bytes to a new file and returns its path and
// contents.
func testFile(t testing.TB, size int, seed uint64) (string, []byte) {
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, 99))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	path := filepath.Join(testDir(t), fmt.Sprintf("postings-%d", seed))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write test file: %v", err)
	}
	return path, data
}

// backendCase constructs one kind of Reader over a file (path) whose
// contents are data.
type backendCase struct {
	name string
	open func(path string, data []byte) (Reader, error)
}

func fileBackend(mk func(fd int, path string) (Reader, error)) func(string, []byte) (Reader, error) {
	return func(path string, _ []byte) (Reader, error) {
		fd, _, err := openDirect(path)
		if err != nil {
			return nil, err
		}
		r, err := mk(fd, path)
		if err != nil {
			unix.Close(fd)
			return nil, err
		}
		return r, nil
	}
}

func uringBackend(depth int, fixed bool) func(string, []byte) (Reader, error) {
	return fileBackend(func(fd int, path string) (Reader, error) {
		u, err := newUring(fd, path, depth, fixed)
		if err != nil {
			return nil, err
		}
		return u, nil
	})
}

func aioBackend(depth int) func(string, []byte) (Reader, error) {
	return fileBackend(func(fd int, path string) (Reader, error) {
		a, err := newAIO(fd, path, depth)
		if err != nil {
			return nil, err
		}
		return a, nil
	})
}

func backends() []backendCase {
	return []backendCase{
		{"memory", func(_ string, data []byte) (Reader, error) { return NewMemory(data, page) }},
		{"pread-seq", fileBackend(func(fd int, path string) (Reader, error) { return newPread(fd, path, 1), nil })},
		{"pread-pool", fileBackend(func(fd int, path string) (Reader, error) { return newPread(fd, path, 4), nil })},
		{"uring", uringBackend(64, true)},
		{"uring-nofixed", uringBackend(64, false)},
		{"uring-depth4", uringBackend(4, true)},
		{"aio", aioBackend(64)},
		{"aio-depth4", aioBackend(4)},
		{"auto", func(path string, _ []byte) (Reader, error) {
			r, _, err := Open(path, BackendAuto, 8)
			return r, err
		}},
	}
}

// uringSkip skips the current test only when io_uring or AIO setup itself
// is refused by the kernel (ENOSYS: not built in / too old; EPERM: seccomp or
// kernel.io_uring_disabled). Any other setup failure is a test failure.
func uringSkip(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("backend unavailable on this machine: %v", err)
	}
	t.Fatalf("open: %v", err)
}

func mustOpen(t *testing.T, bc backendCase, path string, data []byte) Reader {
	t.Helper()
	r, err := bc.open(path, data)
	if err != nil {
		uringSkip(t, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// expectN is how many bytes a read of n bytes at off returns from a file of
// size bytes.
func expectN(off int64, n, size int) int {
	if off >= int64(size) {
		return 0
	}
	return min(n, size-int(off))
}

// checkBatch verifies N, Err and contents of every request of a finished
// batch against data.
func checkBatch(data []byte, reqs []Request) error {
	for i, r := range reqs {
		if r.Err != nil {
			return fmt.Errorf("req %d (off %d len %d): %v", i, r.Offset, len(r.Buf), r.Err)
		}
		want := expectN(r.Offset, len(r.Buf), len(data))
		if r.N != want {
			return fmt.Errorf("req %d (off %d len %d): N=%d, want %d", i, r.Offset, len(r.Buf), r.N, want)
		}
		if want > 0 && !bytes.Equal(r.Buf[:r.N], data[r.Offset:r.Offset+int64(r.N)]) {
			return fmt.Errorf("req %d (off %d len %d): bytes differ from file", i, r.Offset, len(r.Buf))
		}
	}
	return nil
}

// randomBatches reads rounds random batches of aligned extents (1..4 pages,
// some past EOF, overlapping allowed) and checks them.
func randomBatches(r Reader, data []byte, seed uint64, rounds, maxBatch int) error {
	const maxPages = 4
	arena, err := AlignedBuffer(maxBatch * maxPages * page)
	if err != nil {
		return err
	}
	defer FreeBuffer(arena)
	rng := rand.New(rand.NewPCG(seed, 7))
	filePages := (len(data) + page - 1) / page
	reqs := make([]Request, maxBatch)
	for round := 0; round < rounds; round++ {
		n := 1 + rng.IntN(maxBatch)
		for i := 0; i < n; i++ {
			pages := 1 + rng.IntN(maxPages)
			buf := arena[i*maxPages*page : (i*maxPages+pages)*page]
			for j := range buf {
				buf[j] = 0xA5
			}
			reqs[i] = Request{Offset: int64(rng.IntN(filePages+1)) * page, Buf: buf, N: -1, Err: errors.New("stale")}
		}
		if err := r.Read(reqs[:n]); err != nil {
			return fmt.Errorf("round %d: Read: %w", round, err)
		}
		if err := checkBatch(data, reqs[:n]); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
	}
	return nil
}

// readEachBatches is randomBatches through ReadEach: every request must be
// reported exactly once, and complete (or failed) when it is; one request
// per batch is misaligned and must be reported with ErrMisaligned.
func readEachBatches(r Reader, data []byte, seed uint64, rounds, maxBatch int) error {
	const maxPages = 3
	arena, err := AlignedBuffer(maxBatch * maxPages * page)
	if err != nil {
		return err
	}
	defer FreeBuffer(arena)
	rng := rand.New(rand.NewPCG(seed, 9))
	filePages := (len(data) + page - 1) / page
	reqs := make([]Request, maxBatch)
	seen := make([]int, maxBatch)
	for round := 0; round < rounds; round++ {
		n := 2 + rng.IntN(maxBatch-1)
		bad := rng.IntN(n)
		for i := 0; i < n; i++ {
			pages := 1 + rng.IntN(maxPages)
			buf := arena[i*maxPages*page : (i*maxPages+pages)*page]
			off := int64(rng.IntN(filePages+1)) * page
			if i == bad {
				off += 512
			}
			reqs[i] = Request{Offset: off, Buf: buf}
			seen[i] = 0
		}
		var cbErr error
		err := r.ReadEach(reqs[:n], func(i int) {
			seen[i]++
			if i == bad {
				if !errors.Is(reqs[i].Err, ErrMisaligned) && cbErr == nil {
					cbErr = fmt.Errorf("misaligned req %d reported with Err=%v", i, reqs[i].Err)
				}
				return
			}
			if e := checkBatch(data, reqs[i:i+1]); e != nil && cbErr == nil {
				cbErr = fmt.Errorf("req %d incomplete when reported: %w", i, e)
			}
		})
		if !errors.Is(err, ErrMisaligned) {
			return fmt.Errorf("round %d: ReadEach error %v, want ErrMisaligned", round, err)
		}
		if cbErr != nil {
			return fmt.Errorf("round %d: %w", round, cbErr)
		}
		for i := 0; i < n; i++ {
			if seen[i] != 1 {
				return fmt.Errorf("round %d: req %d reported %d times", round, i, seen[i])
			}
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	const size = 1<<20 + 1234 // last page partial: short reads at EOF
	path, data := testFile(t, size, 1)
	alignedPath, alignedData := testFile(t, 64*page, 2) // EOF on a page boundary

	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			r := mustOpen(t, bc, path, data)
			if r.Alignment() != page {
				t.Fatalf("Alignment() = %d, want %d", r.Alignment(), page)
			}
			t.Logf("backend %s %s", r.Backend(), FallbackReason(r))

			t.Run("RandomBatches", func(t *testing.T) {
				if err := randomBatches(r, data, 11, 40, 48); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("LargerThanDepth", func(t *testing.T) {
				// 300 one-page reads: rounds for every ring depth used here.
				if err := randomBatches(r, data, 12, 3, 300); err != nil {
					t.Fatal(err)
				}
				buf, err := AlignedBuffer(300 * page)
				if err != nil {
					t.Fatal(err)
				}
				defer FreeBuffer(buf)
				reqs := make([]Request, 300)
				for i := range reqs {
					reqs[i] = Request{Offset: int64((i * 37) % 257 * page), Buf: buf[i*page : (i+1)*page]}
				}
				if err := r.Read(reqs); err != nil {
					t.Fatal(err)
				}
				if err := checkBatch(data, reqs); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("EOF", func(t *testing.T) {
				buf, err := AlignedBuffer(3 * 4 * page)
				if err != nil {
					t.Fatal(err)
				}
				defer FreeBuffer(buf)
				last := int64(size / page * page)
				reqs := []Request{
					{Offset: last, Buf: buf[:2*page]},                    // partial last page
					{Offset: last - page, Buf: buf[4*page : 8*page]},     // full page + partial
					{Offset: last + page, Buf: buf[8*page : 9*page]},     // wholly past EOF
					{Offset: 1 << 40, Buf: buf[9*page : 10*page]},        // far past EOF
					{Offset: 0, Buf: buf[10*page : 10*page : 12*page]},   // empty buffer
					{Offset: page, Buf: nil},                             // nil buffer
					{Offset: last - 2*page, Buf: buf[11*page : 12*page]}, // normal
				}
				if err := r.Read(reqs); err != nil {
					t.Fatal(err)
				}
				if err := checkBatch(data, reqs); err != nil {
					t.Fatal(err)
				}
				if reqs[0].N != 1234 || reqs[1].N != page+1234 || reqs[2].N != 0 {
					t.Fatalf("EOF counts %d %d %d, want 1234 %d 0", reqs[0].N, reqs[1].N, reqs[2].N, page+1234)
				}
			})

			t.Run("EOFOnPageBoundary", func(t *testing.T) {
				ar := mustOpen(t, bc, alignedPath, alignedData)
				buf, err := AlignedBuffer(4 * page)
				if err != nil {
					t.Fatal(err)
				}
				defer FreeBuffer(buf)
				// The first attempt returns one full page (aligned short
				// read), the resubmitted remainder returns 0.
				reqs := []Request{{Offset: 63 * page, Buf: buf}}
				if err := ar.Read(reqs); err != nil {
					t.Fatal(err)
				}
				if reqs[0].N != page {
					t.Fatalf("N=%d, want %d", reqs[0].N, page)
				}
				if err := checkBatch(alignedData, reqs); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("Misaligned", func(t *testing.T) {
				buf, err := AlignedBuffer(8 * page)
				if err != nil {
					t.Fatal(err)
				}
				defer FreeBuffer(buf)
				heap := make([]byte, page)
				reqs := []Request{
					{Offset: 0, Buf: buf[:page]},                      // valid
					{Offset: 100, Buf: buf[page : 2*page]},            // offset
					{Offset: page, Buf: buf[2*page : 2*page+100]},     // length
					{Offset: page, Buf: buf[3*page+512 : 4*page+512]}, // address
					{Offset: -page, Buf: buf[5*page : 6*page]},        // negative
					{Offset: 2 * page, Buf: buf[6*page : 7*page]},     // valid
				}
				err = r.Read(reqs)
				if !errors.Is(err, ErrMisaligned) {
					t.Fatalf("Read error %v, want ErrMisaligned", err)
				}
				for i := 1; i <= 4; i++ {
					if !errors.Is(reqs[i].Err, ErrMisaligned) || reqs[i].N != 0 {
						t.Errorf("req %d: Err=%v N=%d, want ErrMisaligned and 0", i, reqs[i].Err, reqs[i].N)
					}
				}
				valid := []Request{reqs[0], reqs[5]}
				if err := checkBatch(data, valid); err != nil {
					t.Fatalf("valid requests in a bad batch: %v", err)
				}
				// A heap buffer is fine only if it happens to be aligned;
				// either way Read must not panic.
				_ = r.Read([]Request{{Offset: 0, Buf: heap}})
				// The reader is still usable.
				if err := randomBatches(r, data, 13, 2, 8); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("ReadEach", func(t *testing.T) {
				if err := readEachBatches(r, data, 14, 30, 48); err != nil {
					t.Fatal(err)
				}
				// Larger than any ring depth, with a misaligned request in it.
				if err := readEachBatches(r, data, 15, 2, 300); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("Empty", func(t *testing.T) {
				if err := r.Read(nil); err != nil {
					t.Fatal(err)
				}
				if err := r.Read([]Request{}); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("Concurrent", func(t *testing.T) {
				var wg sync.WaitGroup
				errs := make([]error, 4)
				for g := range errs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rd, err := bc.open(path, data)
						if err != nil {
							errs[g] = err
							return
						}
						defer rd.Close()
						errs[g] = randomBatches(rd, data, uint64(100+g), 10, 32)
					}()
				}
				wg.Wait()
				for g, err := range errs {
					if err != nil {
						t.Errorf("goroutine %d: %v", g, err)
					}
				}
			})

			t.Run("CloseTwice", func(t *testing.T) {
				cr, err := bc.open(path, data)
				if err != nil {
					t.Fatal(err)
				}
				if err := cr.Close(); err != nil {
					t.Fatalf("first Close: %v", err)
				}
				if err := cr.Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
				buf, err := AlignedBuffer(page)
				if err != nil {
					t.Fatal(err)
				}
				defer FreeBuffer(buf)
				if err := cr.Read([]Request{{Buf: buf}}); !errors.Is(err, ErrClosed) {
					t.Fatalf("Read after Close: %v, want ErrClosed", err)
				}
			})
		})
	}
}

// TestReadAllocs checks that a steady-state batch allocates nothing.
func TestReadAllocs(t *testing.T) {
	path, data := testFile(t, 256*page, 3)
	buf, err := AlignedBuffer(32 * 2 * page)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffer(buf)
	reqs := make([]Request, 32)
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			r := mustOpen(t, bc, path, data)
			allocs := testing.AllocsPerRun(20, func() {
				for i := range reqs {
					reqs[i] = Request{Offset: int64(i*7%250) * page, Buf: buf[i*2*page : (i+1)*2*page]}
				}
				if err := r.Read(reqs); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per batch, want 0", allocs)
			}
			if err := checkBatch(data, reqs); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConcurrentUseDetected(t *testing.T) {
	m, err := NewMemory(make([]byte, page), page)
	if err != nil {
		t.Fatal(err)
	}
	m.busy.Store(true) // as if another goroutine were inside Read
	if err := m.Read(nil); !errors.Is(err, ErrConcurrentUse) {
		t.Fatalf("Read during Read: %v, want ErrConcurrentUse", err)
	}
	m.busy.Store(false)
	if err := m.Read(nil); err != nil {
		t.Fatal(err)
	}
}

func TestNewMemoryAlignment(t *testing.T) {
	for _, a := range []int{0, -4096, 3, 4095} {
		if _, err := NewMemory(nil, a); err == nil {
			t.Errorf("NewMemory alignment %d: no error", a)
		}
	}
	m, err := NewMemory([]byte("abc"), 1)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []Request{{Offset: 1, Buf: make([]byte, 4)}}
	if err := m.Read(reqs); err != nil || reqs[0].N != 2 || string(reqs[0].Buf[:2]) != "bc" {
		t.Fatalf("Read: %v N=%d %q", err, reqs[0].N, reqs[0].Buf)
	}
}
