//go:build linux

package iouring

import (
	"errors"
	"fmt"
	"runtime"
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

	// Per-batch scratch, grown to the largest batch seen and reused.
	attempts []uint8 // read attempts per request index, attemptsDone when finished
	retry    []int32 // request indices waiting to be resubmitted
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

func (a *aioReader) read(reqs []Request, onDone func(i int)) error {
	if err := a.enter(); err != nil {
		return err
	}
	defer a.leave()
	if a.closed {
		return ErrClosed
	}
	if a.broken != nil {
		return fmt.Errorf("iouring: aio context unusable after earlier failure: %w", a.broken)
	}
	todo := prepare(reqs, FileAlignment)
	notifyInvalid(reqs, onDone)
	if todo == 0 {
		return summarize(reqs)
	}
	if cap(a.attempts) < len(reqs) {
		a.attempts = make([]uint8, len(reqs))
	}
	a.attempts = a.attempts[:len(reqs)]
	clear(a.attempts)
	a.retry = a.retry[:0]

	next := 0     // next request index not yet prepared
	pend := 0     // prepared iocbs in cbs[:pend], not yet accepted by io_submit
	inflight := 0 // accepted by io_submit, not yet reaped
	spins := 0
	for {
		// Prepare: resubmissions first, then new requests, while the context
		// has room. Batches larger than depth proceed in rounds.
		for inflight+pend < a.depth {
			var i int
			if n := len(a.retry); n > 0 {
				i = int(a.retry[n-1])
				a.retry = a.retry[:n-1]
			} else {
				for next < len(reqs) && !needsIO(&reqs[next]) {
					next++
				}
				if next == len(reqs) {
					break
				}
				i = next
				next++
			}
			a.prep(pend, i, &reqs[i])
			pend++
		}
		if pend == 0 && inflight == 0 {
			break
		}

		if pend > 0 {
			n, errno := a.submit(pend)
			switch {
			case n > 0:
				inflight += n
				pend = copy(a.cbs, a.cbs[n:pend]) // keep the rest at the front
				spins = 0
			case errno == unix.EINTR:
				continue
			case errno == unix.EAGAIN:
				// The context (or the kernel) has no free request slot:
				// reap, then resubmit the rest. With nothing of ours in
				// flight, wait for others to release theirs.
				if inflight == 0 {
					if spins++; spins > submitSpins {
						a.failPending(reqs, pend, errno, onDone)
						a.failUnqueued(reqs, next, errno, onDone)
						return summarize(reqs)
					}
					runtime.Gosched()
					continue
				}
			default:
				// io_submit accepted none and reports the error of the
				// first iocb (EBADF, EINVAL, EFAULT...): that request
				// fails, the others are tried again.
				i := int(a.cbs[0].data)
				reqs[i].Err = fmt.Errorf("read offset %d len %d: io_submit: %w", reqs[i].Offset, len(reqs[i].Buf), errno)
				a.finish(i, onDone)
				pend = copy(a.cbs, a.cbs[1:pend])
				continue
			}
		}
		if inflight == 0 {
			continue
		}

		// Wait for everything in flight (Read), or for the first completion
		// so the caller can process it while the rest is still being read
		// (ReadEach), or for one slot when io_submit ran out of room.
		wait := inflight
		if onDone != nil || pend > 0 {
			wait = 1
		}
		got, err := a.getEvents(wait)
		if err != nil {
			a.fail(reqs, err, onDone)
			return summarize(reqs)
		}
		inflight -= got
		a.reap(reqs, got, onDone)
	}
	// The kernel wrote into the buffers through raw addresses; keep the
	// requests (and so the buffers) reachable until every event is reaped.
	runtime.KeepAlive(reqs)
	return summarize(reqs)
}

// prep fills iocb slot j with a read of the unread remainder of request i.
func (a *aioReader) prep(j, i int, r *Request) {
	a.cbs[j] = iocb{
		data:   uint64(i), // an index, never a Go pointer
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

// reap settles the first n events and queues resubmissions.
func (a *aioReader) reap(reqs []Request, n int, onDone func(i int)) {
	for _, ev := range a.events[:n] {
		if ev.data >= uint64(len(reqs)) {
			continue // cannot happen: only indices of this batch are submitted
		}
		i := int(ev.data)
		res, errno := int(ev.res), error(nil)
		if ev.res < 0 {
			res, errno = 0, unix.Errno(-ev.res)
		}
		if settle(&reqs[i], res, errno, FileAlignment, int(a.attempts[i])) == again {
			a.attempts[i]++
			a.retry = append(a.retry, int32(i))
		} else {
			a.finish(i, onDone)
		}
	}
}

func (a *aioReader) finish(i int, onDone func(i int)) {
	a.attempts[i] = attemptsDone
	if onDone != nil {
		onDone(i)
	}
}

// failPending fails the requests of the n prepared, unsubmitted iocbs.
func (a *aioReader) failPending(reqs []Request, n int, errno error, onDone func(i int)) {
	for _, cb := range a.cbs[:n] {
		i := int(cb.data)
		reqs[i].Err = fmt.Errorf("read offset %d: io_submit: %w", reqs[i].Offset, errno)
		a.finish(i, onDone)
	}
}

// failUnqueued fails the requests from index next on that were never
// prepared, and those waiting for resubmission.
func (a *aioReader) failUnqueued(reqs []Request, next int, errno error, onDone func(i int)) {
	for _, i := range a.retry {
		reqs[i].Err = fmt.Errorf("read offset %d: io_submit: %w", reqs[i].Offset, errno)
		a.finish(int(i), onDone)
	}
	a.retry = a.retry[:0]
	for i := next; i < len(reqs); i++ {
		if needsIO(&reqs[i]) {
			reqs[i].Err = fmt.Errorf("read offset %d: io_submit: %w", reqs[i].Offset, errno)
			a.finish(i, onDone)
		}
	}
}

// fail handles a fatal io_getevents error: the context is destroyed, which
// waits for the reads still in flight, so no buffer is written after Read
// returns; then every unfinished request fails and the reader is broken.
func (a *aioReader) fail(reqs []Request, err error, onDone func(i int)) {
	if derr := a.destroy(); derr != nil {
		err = errors.Join(err, derr)
	}
	a.broken = err
	for i := range reqs {
		if needsIO(&reqs[i]) && a.attempts[i] != attemptsDone {
			reqs[i].Err = fmt.Errorf("read offset %d: %w", reqs[i].Offset, err)
			a.finish(i, onDone)
		}
	}
	a.retry = a.retry[:0]
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
