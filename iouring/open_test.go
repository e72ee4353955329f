//go:build linux

package iouring

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestOpenBackends(t *testing.T) {
	t.Setenv(EnvBackend, "") // tests below choose explicitly
	path, data := testFile(t, 16*page+10, 4)

	// "uring" must work unless setup is refused by the kernel.
	u, chosen, err := Open(path, BackendUring, 0)
	uringOK := err == nil
	if err != nil {
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			t.Fatalf("Open uring: %v", err)
		}
		t.Logf("io_uring unavailable: %v", err)
	} else {
		if chosen != BackendUring || u.Backend() != BackendUring {
			t.Fatalf("Open uring chose %q / %q", chosen, u.Backend())
		}
		u.Close()
	}

	// "aio" likewise.
	a, chosen, err := Open(path, BackendAIO, 0)
	aioOK := err == nil
	if err != nil {
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			t.Fatalf("Open aio: %v", err)
		}
		t.Logf("aio unavailable: %v", err)
	} else {
		if chosen != BackendAIO || a.Backend() != BackendAIO {
			t.Fatalf("Open aio chose %q / %q", chosen, a.Backend())
		}
		if err := randomBatches(a, data, 7, 3, 16); err != nil {
			t.Fatal(err)
		}
		a.Close()
	}

	// "auto" (and "") always works: uring, else aio, else pread.
	for _, name := range []string{BackendAuto, "", " AUTO "} {
		r, chosen, err := Open(path, name, 16)
		if err != nil {
			t.Fatalf("Open %q: %v", name, err)
		}
		want := BackendPread
		switch {
		case uringOK:
			want = BackendUring
		case aioOK:
			want = BackendAIO
		}
		if chosen != want || r.Backend() != want {
			t.Fatalf("Open %q chose %q / %q, want %q", name, chosen, r.Backend(), want)
		}
		if !uringOK && FallbackReason(r) == "" {
			t.Fatalf("auto fell back without a reason")
		}
		if err := randomBatches(r, data, 5, 3, 16); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}

	p, chosen, err := Open(path, BackendPread, 0)
	if err != nil || chosen != BackendPread {
		t.Fatalf("Open pread: %v %q", err, chosen)
	}
	p.Close()

	if _, _, err := Open(path, "spdk", 0); err == nil {
		t.Fatal("unknown backend accepted")
	}
	if _, _, err := Open(filepath.Join(t.TempDir(), "missing"), BackendAuto, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
}

// TestAutoFallbackChain simulates kernels that refuse io_uring, and then AIO
// too, and checks that auto walks uring → aio → pread and names every
// failure in FallbackReason.
func TestAutoFallbackChain(t *testing.T) {
	t.Setenv(EnvBackend, "")
	path, data := testFile(t, 8*page+100, 8)
	t.Cleanup(func() { setupUring, setupAIO = newUring, newAIO })
	setupUring = func(int, string, int, bool) (*uringReader, error) {
		return nil, fmt.Errorf("io_uring_setup(entries=64): %w", unix.EPERM)
	}

	// The real AIO constructor, behind a refused io_uring.
	if err := probeAIO(path); err == nil {
		r, chosen, err := Open(path, BackendAuto, 0)
		if err != nil {
			t.Fatal(err)
		}
		reason := FallbackReason(r)
		if chosen != BackendAIO || r.Backend() != BackendAIO || !strings.Contains(reason, "io_uring unavailable") ||
			!strings.Contains(reason, "using aio") {
			t.Fatalf("auto without io_uring: chose %q, reason %q", chosen, reason)
		}
		if err := randomBatches(r, data, 9, 3, 16); err != nil {
			t.Fatal(err)
		}
		r.Close()
	} else {
		t.Logf("aio unavailable here (%v): only the pread step is checked", err)
	}

	// io_uring forced on but refused: an error, not a fallback.
	if _, _, err := Open(path, BackendUring, 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("Open uring with io_uring refused: %v, want EPERM", err)
	}

	setupAIO = func(int, string, int) (*aioReader, error) {
		return nil, fmt.Errorf("io_setup(nr_events=64): %w", unix.ENOSYS)
	}
	r, chosen, err := Open(path, BackendAuto, 0)
	if err != nil {
		t.Fatal(err)
	}
	reason := FallbackReason(r)
	if chosen != BackendPread || !strings.Contains(reason, "io_uring unavailable") ||
		!strings.Contains(reason, "aio unavailable") || !strings.Contains(reason, "using pread") {
		t.Fatalf("auto without io_uring and aio: chose %q, reason %q", chosen, reason)
	}
	if err := randomBatches(r, data, 10, 3, 16); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, _, err := Open(path, BackendAIO, 0); !errors.Is(err, unix.ENOSYS) {
		t.Fatalf("Open aio with aio refused: %v, want ENOSYS", err)
	}
}

// probeAIO reports whether an AIO context can be set up for path.
func probeAIO(path string) error {
	fd, _, err := openDirect(path)
	if err != nil {
		return err
	}
	a, err := newAIO(fd, path, 4)
	if err != nil {
		closeFd(fd)
		return err
	}
	return a.Close()
}

func TestOpenEnvOverride(t *testing.T) {
	path, _ := testFile(t, page, 5)
	t.Setenv(EnvBackend, "pread")
	r, chosen, err := Open(path, BackendUring, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if chosen != BackendPread {
		t.Fatalf("SPANN_IO=pread: chose %q", chosen)
	}
	t.Setenv(EnvBackend, "aio")
	r, chosen, err = Open(path, BackendUring, 0)
	switch {
	case err == nil:
		r.Close()
		if chosen != BackendAIO {
			t.Fatalf("SPANN_IO=aio: chose %q", chosen)
		}
	case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
		t.Logf("aio unavailable: %v", err)
	default:
		t.Fatalf("SPANN_IO=aio: %v", err)
	}
	t.Setenv(EnvBackend, "bogus")
	if _, _, err := Open(path, BackendPread, 0); err == nil {
		t.Fatal("SPANN_IO=bogus accepted")
	}
}

// TestBufferedFallback opens a file on a filesystem without O_DIRECT when
// one is available (/dev/shm is tmpfs on most Linux systems).
func TestBufferedFallback(t *testing.T) {
	t.Setenv(EnvBackend, "")
	dir, err := os.MkdirTemp("/dev/shm", "iouring-test-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "f")
	data := make([]byte, 3*page+5)
	for i := range data {
		data[i] = byte(i * 31)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, direct, err := openDirect(path)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if direct {
		t.Skip("/dev/shm accepts O_DIRECT here; nothing to fall back from")
	}
	r, _, err := Open(path, BackendAuto, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if FallbackReason(r) == "" {
		t.Fatal("buffered fallback not reported")
	}
	if err := randomBatches(r, data, 6, 5, 8); err != nil {
		t.Fatal(err)
	}
}

func TestSettle(t *testing.T) {
	const a = page
	cases := []struct {
		name      string
		n0        int // N before the attempt
		res       int
		errno     error
		attempt   int
		want      outcome
		wantN     int
		wantErr   bool
		wantErrno error // when non-nil, Err must wrap it
	}{
		{"full", 0, 2 * a, nil, 0, done, 2 * a, false, nil},
		{"eof unaligned", 0, 100, nil, 0, done, 100, false, nil},
		{"eof zero", a, 0, nil, 1, done, a, false, nil},
		{"short aligned", 0, a, nil, 0, again, a, false, nil},
		{"short aligned too often", 0, a, nil, maxRetries, done, a, true, nil},
		{"eagain", 0, 0, unix.EAGAIN, 0, again, 0, false, nil},
		{"eintr", 0, 0, unix.EINTR, 3, again, 0, false, nil},
		{"eagain forever", 0, 0, unix.EAGAIN, maxRetries, done, 0, true, unix.EAGAIN},
		{"eio", 0, 0, unix.EIO, 0, done, 0, true, unix.EIO},
		{"remainder completes", a, a, nil, 1, done, 2 * a, false, nil},
	}
	for _, c := range cases {
		r := Request{Offset: 8 * a, Buf: make([]byte, 2*a), N: c.n0}
		got := settle(&r, c.res, c.errno, a, c.attempt)
		if got != c.want || r.N != c.wantN {
			t.Errorf("%s: outcome %d N %d, want %d N %d", c.name, got, r.N, c.want, c.wantN)
		}
		if (r.Err != nil) != c.wantErr {
			t.Errorf("%s: Err %v, want error %v", c.name, r.Err, c.wantErr)
		}
		if c.wantErrno != nil && !errors.Is(r.Err, c.wantErrno) {
			t.Errorf("%s: Err %v does not wrap %v", c.name, r.Err, c.wantErrno)
		}
	}
}

func TestAlignedBuffer(t *testing.T) {
	for _, size := range []int{1, page - 1, page, 3*page + 7, 1 << 20} {
		b, err := AlignedBuffer(size)
		if err != nil {
			t.Fatalf("AlignedBuffer(%d): %v", size, err)
		}
		if len(b) != size || cap(b)%os.Getpagesize() != 0 {
			t.Fatalf("AlignedBuffer(%d): len %d cap %d", size, len(b), cap(b))
		}
		if uintptr(unsafe.Pointer(&b[0]))%uintptr(os.Getpagesize()) != 0 {
			t.Fatalf("AlignedBuffer(%d) not page-aligned: %p", size, &b[0])
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("AlignedBuffer(%d) not zeroed at %d", size, i)
			}
			b[i] = 1
		}
		if size > page {
			if err := FreeBuffer(b[page:]); err == nil {
				t.Fatal("FreeBuffer accepted an interior slice")
			}
		}
		if err := FreeBuffer(b[:1]); err != nil {
			t.Fatalf("FreeBuffer: %v", err)
		}
		if err := FreeBuffer(b); err == nil {
			t.Fatal("double FreeBuffer accepted")
		}
	}
	for _, size := range []int{0, -1} {
		if _, err := AlignedBuffer(size); err == nil {
			t.Errorf("AlignedBuffer(%d): no error", size)
		}
	}
	if err := FreeBuffer(make([]byte, page)); err == nil {
		t.Error("FreeBuffer accepted a heap slice")
	}
	if err := FreeBuffer(nil); err == nil {
		t.Error("FreeBuffer accepted nil")
	}
}

// Readers made from a File read the file that was opened, even after its
// path is renamed over, and outlive the File's own descriptor.
func TestFileSurvivesReplace(t *testing.T) {
	path, data := testFile(t, 8*page, 31)
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r1, _, err := f.NewReader(BackendAuto, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	// Replace the file at the path, as a rebuild's rename does.
	other, _ := testFile(t, 8*page, 32)
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	r2, _, err := f.NewReader(BackendAuto, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	buf, err := AlignedBuffer(2 * page)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffer(buf)
	if n, err := f.ReadAt(buf[:page], page); err != nil || n != page || !bytes.Equal(buf[:page], data[page:2*page]) {
		t.Fatalf("File.ReadAt after the replace: n=%d %v, or other bytes", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for i, r := range []Reader{r1, r2} {
		reqs := []Request{{Offset: 3 * page, Buf: buf[:page]}, {Offset: 5 * page, Buf: buf[page:]}}
		if err := r.Read(reqs); err != nil {
			t.Fatal(err)
		}
		if err := checkBatch(data, reqs); err != nil {
			t.Fatalf("reader %d reads the replacement, not the opened file: %v", i+1, err)
		}
	}
	if _, _, err := f.NewReader(BackendAuto, 8); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewReader after Close: %v, want ErrClosed", err)
	}
}
