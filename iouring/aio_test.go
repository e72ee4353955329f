//go:build linux

package iouring

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestAIOSubmitErrors gives the AIO reader a write-only fd, so io_submit
// rejects every iocb (EBADF, reported for the first iocb of each call):
// each request must fail with that errno, be reported once by ReadEach, and
// the reader must stay usable.
func TestAIOSubmitErrors(t *testing.T) {
	path, _ := testFile(t, 8*page, 20)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAIO(fd, path, 4)
	if err != nil {
		closeFd(fd)
		uringSkip(t, err)
	}
	defer a.Close()
	buf, err := AlignedBuffer(6 * page)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffer(buf)
	reqs := make([]Request, 6) // more than depth 4: two rounds
	for i := range reqs {
		reqs[i] = Request{Offset: int64(i) * page, Buf: buf[i*page : (i+1)*page]}
	}
	seen := make([]int, len(reqs))
	err = a.ReadEach(reqs, func(i int) { seen[i]++ })
	if !errors.Is(err, unix.EBADF) {
		t.Fatalf("ReadEach on a write-only fd: %v, want EBADF", err)
	}
	for i, r := range reqs {
		if !errors.Is(r.Err, unix.EBADF) || r.N != 0 || seen[i] != 1 {
			t.Errorf("req %d: Err=%v N=%d reported %d times, want EBADF, 0, once", i, r.Err, r.N, seen[i])
		}
	}
	if err := a.Read(reqs); !errors.Is(err, unix.EBADF) {
		t.Fatalf("second Read: %v, want EBADF again", err)
	}
}

// TestAIOStructLayout checks field offsets of iocb and io_event against
// include/uapi/linux/aio_abi.h (the sizes are checked at compile time).
func TestAIOStructLayout(t *testing.T) {
	var cb iocb
	var ev ioEvent
	offsets := []struct {
		name      string
		got, want uintptr
	}{
		{"aio_lio_opcode", unsafe.Offsetof(cb.opcode), 16},
		{"aio_fildes", unsafe.Offsetof(cb.fd), 20},
		{"aio_buf", unsafe.Offsetof(cb.buf), 24},
		{"aio_nbytes", unsafe.Offsetof(cb.nbytes), 32},
		{"aio_offset", unsafe.Offsetof(cb.offset), 40},
		{"aio_flags", unsafe.Offsetof(cb.flags), 56},
		{"io_event.res", unsafe.Offsetof(ev.res), 16},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("%s at offset %d, want %d", o.name, o.got, o.want)
		}
	}
}

// TestAIOPartialSubmit makes the reader believe its context holds far more
// requests than the kernel gave it, so io_submit accepts only part of a
// round and then answers EAGAIN: the reader must reap and resubmit the rest
// (Read and ReadEach), losing and duplicating nothing.
func TestAIOPartialSubmit(t *testing.T) {
	const n = 600
	path, data := testFile(t, 1<<20, 21)
	fd, _, err := openDirect(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAIO(fd, path, 4)
	if err != nil {
		closeFd(fd)
		uringSkip(t, err)
	}
	defer a.Close()
	a.depth = n
	a.cbs = make([]iocb, n)
	a.ptrs = make([]*iocb, n)
	a.events = make([]ioEvent, n)
	for j := range a.cbs {
		a.ptrs[j] = &a.cbs[j]
	}
	buf, err := AlignedBuffer(n * page)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffer(buf)
	reqs := make([]Request, n)
	fill := func() {
		for i := range reqs {
			reqs[i] = Request{Offset: int64(i*13%256) * page, Buf: buf[i*page : (i+1)*page]}
		}
	}

	// Precondition: the kernel really does accept only part of n iocbs.
	fill()
	for i := range reqs {
		a.prep(i, uint64(i), &reqs[i])
	}
	accepted, errno := a.submit(n)
	if errno != 0 || accepted <= 0 || accepted >= n {
		t.Fatalf("io_submit of %d on a small context: accepted %d, errno %v; want a partial count", n, accepted, errno)
	}
	t.Logf("io_submit accepted %d of %d", accepted, n)
	for left := accepted; left > 0; {
		got, err := a.getEvents(left)
		if err != nil {
			t.Fatal(err)
		}
		left -= got
	}

	fill()
	if err := a.Read(reqs); err != nil {
		t.Fatal(err)
	}
	if err := checkBatch(data, reqs); err != nil {
		t.Fatal(err)
	}
	fill()
	seen := make([]int, n)
	if err := a.ReadEach(reqs, func(i int) { seen[i]++ }); err != nil {
		t.Fatal(err)
	}
	for i, s := range seen {
		if s != 1 {
			t.Fatalf("req %d reported %d times", i, s)
		}
	}
	if err := checkBatch(data, reqs); err != nil {
		t.Fatal(err)
	}
}
