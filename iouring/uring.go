//go:build linux

package iouring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI constants from include/uapi/linux/io_uring.h (x/sys/unix has the
// syscall numbers but not these).
const (
	offSQRing = 0          // IORING_OFF_SQ_RING: mmap offset of the SQ ring
	offCQRing = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs   = 0x10000000 // IORING_OFF_SQES: the SQE array

	setupClamp     = 1 << 4 // IORING_SETUP_CLAMP: clamp depth to the kernel max
	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP: SQ and CQ rings share one mapping
	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS: wait for min_complete CQEs
	sqeFixedFile   = 1 << 0 // IOSQE_FIXED_FILE: sqe.fd indexes the registered files
	opRead         = 22     // IORING_OP_READ (Linux 5.6)
	registerFiles  = 2      // IORING_REGISTER_FILES
	registerProbe  = 8      // IORING_REGISTER_PROBE (Linux 5.6)
	probeSupported = 1 << 0 // IO_URING_OP_SUPPORTED
	probeOps       = 256    // op slots in our probe buffer

	// maxChunk caps one SQE's length; longer extents are read in several
	// attempts through the short-read path (the kernel caps a read at
	// MAX_RW_COUNT, just under 2 GiB, anyway).
	maxChunk = 1 << 30
)

// sqRingOffsets is struct io_sqring_offsets (40 bytes).
type sqRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqRingOffsets is struct io_cqring_offsets (40 bytes).
type cqRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// setupParams is struct io_uring_params (120 bytes).
type setupParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqRingOffsets
	cqOff                                                                  cqRingOffsets
}

// sqe is struct io_uring_sqe in its 64-byte form.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	pad         uint64
}

// cqe is struct io_uring_cqe (16 bytes, no IORING_SETUP_CQE32).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Compile-time size checks: each line fails to build if a struct is not
// exactly its kernel size.
var (
	_ [unsafe.Sizeof(setupParams{}) - 120]byte
	_ [120 - unsafe.Sizeof(setupParams{})]byte
	_ [unsafe.Sizeof(sqe{}) - 64]byte
	_ [64 - unsafe.Sizeof(sqe{})]byte
	_ [unsafe.Sizeof(cqe{}) - 16]byte
	_ [16 - unsafe.Sizeof(cqe{})]byte
)

// uringReader reads batches through one io_uring instance. See doc.go for
// the ring layout and memory-ordering rules it follows.
type uringReader struct {
	busyGuard
	fd     int // the O_DIRECT file
	ringFd int
	path   string
	note   string
	fixed  bool // fd is registered as fixed file 0
	closed bool
	broken error // set when io_uring_enter failed fatally; Reads then fail

	ringMem []byte // SQ ring, and the CQ ring too with IORING_FEAT_SINGLE_MMAP
	cqMem   []byte // separate CQ ring mapping on old kernels, else nil
	sqeMem  []byte

	// Pointers into the shared mappings. Head/tail words written by the
	// kernel are read with atomic loads, words the kernel reads are written
	// with atomic stores (see doc.go).
	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqArray        []uint32
	sqes           []sqe
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe

	tail uint32 // our SQ tail, published to *sqTail before each enter

	p *uringPipe // the reader's Pipe (NewPipe), also used by Read

	sync pipeRead // Read and ReadEach as one batch on the Pipe
}

// newUring sets up a ring of at least depth entries reading from fd. With
// registerFile the fd is registered (IORING_REGISTER_FILES); if that fails
// the ring still works with the plain fd. Errors wrap the errno, so callers
// can test errors.Is(err, unix.ENOSYS) / unix.EPERM.
func newUring(fd int, path string, depth int, registerFile bool) (*uringReader, error) {
	var p setupParams
	p.flags = setupClamp
	r1, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(depth), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup(entries=%d): %w", depth, errno)
	}
	u := &uringReader{fd: fd, ringFd: int(r1), path: path}
	if err := u.mapRings(&p); err != nil {
		u.release()
		return nil, err
	}
	if err := u.probeRead(); err != nil {
		u.release()
		return nil, err
	}
	if registerFile {
		fds := [1]int32{int32(fd)}
		if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(u.ringFd), registerFiles,
			uintptr(unsafe.Pointer(&fds[0])), 1, 0, 0); errno == 0 {
			u.fixed = true
		}
	}
	return u, nil
}

// mapRings maps the SQ ring, CQ ring and SQE array and resolves the
// pointers into them from the offsets the kernel returned in p.
func (u *uringReader) mapRings(p *setupParams) error {
	const prot = unix.PROT_READ | unix.PROT_WRITE
	const flags = unix.MAP_SHARED | unix.MAP_POPULATE
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(cqe{}))
	single := p.features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if u.ringMem, err = unix.Mmap(u.ringFd, offSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("io_uring: mmap SQ ring (%d bytes): %w", sqSize, err)
	}
	cqMem := u.ringMem
	if !single {
		if u.cqMem, err = unix.Mmap(u.ringFd, offCQRing, cqSize, prot, flags); err != nil {
			return fmt.Errorf("io_uring: mmap CQ ring (%d bytes): %w", cqSize, err)
		}
		cqMem = u.cqMem
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if u.sqeMem, err = unix.Mmap(u.ringFd, offSQEs, sqeSize, prot, flags); err != nil {
		return fmt.Errorf("io_uring: mmap SQE array (%d bytes): %w", sqeSize, err)
	}

	word := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	u.sqHead = word(u.ringMem, p.sqOff.head)
	u.sqTail = word(u.ringMem, p.sqOff.tail)
	u.sqMask = *word(u.ringMem, p.sqOff.ringMask)
	u.sqEntries = *word(u.ringMem, p.sqOff.ringEntries)
	u.sqArray = unsafe.Slice(word(u.ringMem, p.sqOff.array), p.sqEntries)
	u.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&u.sqeMem[0])), p.sqEntries)
	u.cqHead = word(cqMem, p.cqOff.head)
	u.cqTail = word(cqMem, p.cqOff.tail)
	u.cqMask = *word(cqMem, p.cqOff.ringMask)
	u.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&cqMem[p.cqOff.cqes])), p.cqEntries)
	u.tail = atomic.LoadUint32(u.sqTail)
	if u.sqEntries != p.sqEntries || u.sqEntries == 0 || u.sqMask != u.sqEntries-1 {
		return fmt.Errorf("io_uring: inconsistent SQ ring (entries %d, mask %d)", u.sqEntries, u.sqMask)
	}
	return nil
}

// probeRead checks that the kernel supports IORING_OP_READ. Kernels before
// 5.6 have neither the op nor the probe; both cases are reported as ENOSYS so
// "auto" falls back to pread.
func (u *uringReader) probeRead() error {
	var probe [16 + probeOps*8]byte // struct io_uring_probe + ops[probeOps]
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(u.ringFd), registerProbe,
		uintptr(unsafe.Pointer(&probe[0])), probeOps, 0, 0)
	if errno != 0 {
		return fmt.Errorf("io_uring: probe (kernel older than 5.6?): %v: %w", errno, unix.ENOSYS)
	}
	lastOp := probe[0]
	flags := uint16(probe[16+opRead*8+2]) | uint16(probe[16+opRead*8+3])<<8
	if lastOp < opRead || flags&probeSupported == 0 {
		return fmt.Errorf("io_uring: IORING_OP_READ not supported: %w", unix.ENOSYS)
	}
	return nil
}

func (u *uringReader) Alignment() int       { return FileAlignment }
func (u *uringReader) Backend() string      { return BackendUring }
func (u *uringReader) fallbackNote() string { return u.note }

func (u *uringReader) Read(reqs []Request) error { return u.read(reqs, nil) }

// ReadEach is Read, calling done(i) as soon as request i has finished
// (completely, short at EOF, or with Err set), in completion order, on the
// calling goroutine; the remaining reads stay in flight meanwhile.
func (u *uringReader) ReadEach(reqs []Request, done func(i int)) error {
	return u.read(reqs, done)
}

// read is Read and ReadEach: the batch goes through the reader's own Pipe,
// so there is one submission and completion path.
func (u *uringReader) read(reqs []Request, onDone func(i int)) error {
	return u.sync.read(u.pipe(), reqs, onDone)
}

// attemptsDone marks a request in Batch.attempts whose final result is in.
const attemptsDone = 0xff

// submitAndWait publishes the queued SQEs and enters the kernel once to
// submit them all and wait until inflight completions are in the CQ ring.
// EINTR (Go's async-preemption SIGURG, or any other signal) and transient
// EAGAIN/EBUSY are retried; anything else is fatal for the ring.
func (u *uringReader) submitAndWait(inflight, wait int) error {
	// Release: the SQE and array stores above become visible to the kernel
	// before it can observe the new tail.
	atomic.StoreUint32(u.sqTail, u.tail)
	for spins := 0; ; spins++ {
		toSubmit := u.tail - atomic.LoadUint32(u.sqHead)
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(u.ringFd), uintptr(toSubmit),
			uintptr(wait), enterGetEvents, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue // unconsumed SQEs are recounted from the SQ head
		case unix.EAGAIN, unix.EBUSY:
			if u.cqReady() > 0 {
				return nil // reap first; the caller comes back for the rest
			}
			if spins < 1000 {
				runtime.Gosched()
				continue
			}
		}
		return fmt.Errorf("io_uring_enter(submit=%d, wait=%d of %d): %w", toSubmit, wait, inflight, errno)
	}
}

// cqReady is the number of CQEs waiting to be reaped.
func (u *uringReader) cqReady() uint32 {
	return atomic.LoadUint32(u.cqTail) - atomic.LoadUint32(u.cqHead)
}

func (u *uringReader) Close() error {
	if err := u.enter(); err != nil {
		return err
	}
	defer u.leave()
	if u.closed {
		return nil
	}
	u.closed = true
	err := u.release()
	if cerr := closeFd(u.fd); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("iouring: close %s: %w", u.path, err)
	}
	return nil
}

// release unmaps the rings and closes the ring fd (not the file fd).
func (u *uringReader) release() error {
	var errs []error
	for _, m := range []*[]byte{&u.sqeMem, &u.cqMem, &u.ringMem} {
		if *m != nil {
			errs = append(errs, unix.Munmap(*m))
			*m = nil
		}
	}
	u.sqHead, u.sqTail, u.cqHead, u.cqTail = nil, nil, nil, nil
	u.sqArray, u.sqes, u.cqes = nil, nil, nil
	if u.ringFd >= 0 {
		errs = append(errs, closeFd(u.ringFd))
		u.ringFd = -1
	}
	return errors.Join(errs...)
}
