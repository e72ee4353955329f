//go:build linux

package iouring

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// iocbCmdPread is IOCB_CMD_PREAD from include/uapi/linux/aio_abi.h.
const iocbCmdPread = 0

// iocb is struct iocb (64 bytes). On little-endian machines the kernel's
// PADDED(aio_key, aio_rw_flags) puts key first; on big-endian ones the two
// are swapped. Both stay zero here, so one declaration serves either order.
type iocb struct {
	data      uint64 // aio_data: the request's index in the batch, never a pointer
	key       uint32 // aio_key (rw_flags on big-endian)
	rwFlags   uint32 // aio_rw_flags (key on big-endian)
	opcode    uint16 // aio_lio_opcode
	reqPrio   int16  // aio_reqprio
	fd        uint32 // aio_fildes
	buf       uint64 // aio_buf: user-space address of the destination
	nbytes    uint64 // aio_nbytes
	offset    int64  // aio_offset
	reserved2 uint64 // aio_reserved2
	flags     uint32 // aio_flags (IOCB_FLAG_RESFD etc.; unused)
	resFd     uint32 // aio_resfd
}

// ioEvent is struct io_event (32 bytes).
type ioEvent struct {
	data uint64 // aio_data of the completed iocb
	obj  uint64 // user address of the iocb (unused; kept as an integer)
	res  int64  // bytes transferred, or a negative errno
	res2 int64  // secondary result (unused)
}

// Compile-time size checks, as for the io_uring structs.
var (
	_ [unsafe.Sizeof(iocb{}) - 64]byte
	_ [64 - unsafe.Sizeof(iocb{})]byte
	_ [unsafe.Sizeof(ioEvent{}) - 32]byte
	_ [32 - unsafe.Sizeof(ioEvent{})]byte
)

// aioReader reads batches through one Linux native AIO context
// (io_setup/io_submit/io_getevents, what SPTAG and fio's libaio engine use).
// It exists because container seccomp profiles that refuse io_uring (Docker's
// default among them) still allow AIO. See doc.go for the caveats.
type aioReader struct {
	busyGuard
	fd     int
	path   string
	note   string
	ctx    uint64 // aio_context_t; 0 once destroyed
	depth  int    // nr_events passed to io_setup: the most iocbs in flight
	closed bool
	broken error // set after a fatal io_getevents failure; Reads then fail

	// Fixed per-reader arrays, sized depth. The kernel copies an iocb during
	// io_submit, so slots can be reused as soon as it returns; ptrs[j] always
	// points at cbs[j] (io_submit takes an array of iocb pointers). The
	// first pend slots hold iocbs prepared but not yet accepted.
	cbs    []iocb
	ptrs   []*iocb
	events []ioEvent

	p *aioPipe // the reader's Pipe (NewPipe), also used by Read

	sync pipeRead // Read and ReadEach as one batch on the Pipe
}

// newAIO creates an AIO context for depth concurrent reads from fd. Errors
// wrap the errno (ENOSYS: kernel without CONFIG_AIO; EPERM: seccomp; EAGAIN:
// the system-wide fs.aio-max-nr limit is used up).
func newAIO(fd int, path string, depth int) (*aioReader, error) {
	if depth <= 0 {
		depth = DefaultDepth
	}
	var ctx uint64 // must be zero on entry
	if _, _, errno := unix.Syscall(unix.SYS_IO_SETUP, uintptr(depth), uintptr(unsafe.Pointer(&ctx)), 0); errno != 0 {
		return nil, fmt.Errorf("io_setup(nr_events=%d): %w", depth, errno)
	}
	a := &aioReader{
		fd: fd, path: path, ctx: ctx, depth: depth,
		cbs:    make([]iocb, depth),
		ptrs:   make([]*iocb, depth),
		events: make([]ioEvent, depth),
	}
	for j := range a.cbs {
		a.ptrs[j] = &a.cbs[j]
	}
	return a, nil
}

func (a *aioReader) Alignment() int       { return FileAlignment }
func (a *aioReader) Backend() string      { return BackendAIO }
func (a *aioReader) fallbackNote() string { return a.note }

func (a *aioReader) Read(reqs []Request) error { return a.read(reqs, nil) }

// ReadEach is Read, calling done(i) as soon as request i has finished, in
// completion order, on the calling goroutine; the remaining reads stay in
// flight meanwhile (io_getevents is asked for at least one event).
func (a *aioReader) ReadEach(reqs []Request, done func(i int)) error {
	return a.read(reqs, done)
}

// submitSpins bounds how often io_submit is retried after EAGAIN while none
// of our reads is in flight (so there is nothing to reap that would free a
// slot): the shortage is then someone else's, and we yield meanwhile.
const submitSpins = 1000

// read is Read and ReadEach: the batch goes through the reader's own Pipe,
// so there is one submission and completion path.
func (a *aioReader) read(reqs []Request, onDone func(i int)) error {
	return a.sync.read(a.pipe(), reqs, onDone)
}

// usable reports why the context cannot take new work, if it cannot.
func (a *aioReader) usable() error {
	if a.closed {
		return ErrClosed
	}
	if a.broken != nil {
		return fmt.Errorf("iouring: aio context unusable after earlier failure: %w", a.broken)
	}
	return nil
}

// prep fills iocb slot j with a read of the unread remainder of r, tagged
// with data (a Pipe ref, never a Go pointer).
func (a *aioReader) prep(j int, data uint64, r *Request) {
	a.cbs[j] = iocb{
		data:   data,
		opcode: iocbCmdPread,
		fd:     uint32(a.fd),
		buf:    uint64(uintptr(unsafe.Pointer(&r.Buf[r.N]))),
		nbytes: uint64(min(len(r.Buf)-r.N, maxChunk)),
		offset: r.Offset + int64(r.N),
	}
}

// submit hands cbs[:n] to the kernel with one io_submit and returns how many
// it accepted. A partial count (fewer than n) is not an error: the caller
// keeps the rest and submits it again.
func (a *aioReader) submit(n int) (int, unix.Errno) {
	r1, _, errno := unix.Syscall(unix.SYS_IO_SUBMIT, uintptr(a.ctx), uintptr(n), uintptr(unsafe.Pointer(&a.ptrs[0])))
	if errno != 0 {
		return 0, errno
	}
	return int(r1), 0
}

// getEvents waits until at least minNr completions are available and copies
// up to len(events) of them into a.events. EINTR (Go's async-preemption
// SIGURG, or any other signal) is retried: io_getevents consumes no event
// when it returns an error.
func (a *aioReader) getEvents(minNr int) (int, error) {
	for {
		r1, _, errno := unix.Syscall6(unix.SYS_IO_GETEVENTS, uintptr(a.ctx), uintptr(minNr),
			uintptr(len(a.events)), uintptr(unsafe.Pointer(&a.events[0])), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, fmt.Errorf("io_getevents(min_nr=%d): %w", minNr, errno)
		}
		return int(r1), nil
	}
}

// destroy releases the AIO context. io_destroy cancels what it can and
// waits for the remaining in-flight reads.
func (a *aioReader) destroy() error {
	if a.ctx == 0 {
		return nil
	}
	_, _, errno := unix.Syscall(unix.SYS_IO_DESTROY, uintptr(a.ctx), 0, 0)
	a.ctx = 0
	if errno != 0 {
		return fmt.Errorf("io_destroy: %w", errno)
	}
	return nil
}

func (a *aioReader) Close() error {
	if err := a.enter(); err != nil {
		return err
	}
	defer a.leave()
	if a.closed {
		return nil
	}
	a.closed = true
	err := a.destroy()
	if cerr := closeFd(a.fd); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("iouring: close %s: %w", a.path, err)
	}
	return nil
}
