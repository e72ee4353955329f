//go:build linux

package iouring

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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

	// "auto" (and "") always works, with uring when it can be set up.
	for _, name := range []string{BackendAuto, "", " AUTO "} {
		r, chosen, err := Open(path, name, 16)
		if err != nil {
			t.Fatalf("Open %q: %v", name, err)
		}
		want := BackendPread
		if uringOK {
			want = BackendUring
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
