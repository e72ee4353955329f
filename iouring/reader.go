//go:build linux

package iouring

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Backend names accepted by Open and by the SPANN_IO environment variable.
const (
	BackendAuto  = "auto"  // io_uring, else Linux AIO, else pread (first that sets up)
	BackendUring = "uring" // io_uring only; Open fails when it cannot be set up
	BackendAIO   = "aio"   // Linux native AIO only (io_setup/io_submit/io_getevents)
	BackendPread = "pread" // pread(2) from a small fixed pool of goroutines
	BackendMem   = "memory"
)

// EnvBackend is the environment variable that, when set to auto, uring, aio
// or pread, overrides the backend argument of every Open call in the process.
// It lets the whole engine's test suite be run against one backend, e.g.
//
//	SPANN_IO=pread go test ./...
const EnvBackend = "SPANN_IO"

// DefaultDepth is the io_uring submission-queue depth (and the AIO
// context's nr_events) Open uses when the caller passes depth <= 0. A search batch is a few dozen extents, so 64
// submits a whole batch in one round.
const DefaultDepth = 64

// FileAlignment is the offset, length and buffer-address alignment required
// by the file backends. O_DIRECT needs the device's logical block size (512
// or 4096 bytes); a page is a safe multiple of both and is what the postings
// layout uses anyway.
const FileAlignment = 4096

// Errors reported in Request.Err or returned by Read.
var (
	// ErrMisaligned: a request's offset, length or buffer address is not a
	// multiple of the reader's Alignment, or its offset is negative.
	ErrMisaligned = errors.New("iouring: misaligned request")
	// ErrClosed: Read was called after Close.
	ErrClosed = errors.New("iouring: reader closed")
	// ErrConcurrentUse: Read was entered while another Read on the same
	// Reader was still running (the Reader contract forbids this).
	ErrConcurrentUse = errors.New("iouring: concurrent Read on one Reader")
)

// Request is one extent to read: len(Buf) bytes at file offset Offset.
// Offset, len(Buf) and the address of Buf[0] must be multiples of the
// reader's Alignment(). Buf must not be moved by the Go runtime while a Read
// is running: use AlignedBuffer, or any heap slice (the GC does not move heap
// objects) that stays referenced.
//
// Read fills N and Err. N is the number of bytes read; N < len(Buf) with
// Err == nil means the extent ran past end of file (N is 0 when Offset is at
// or beyond it). Err is non-nil when the request was invalid or the read
// failed; it is wrapped with the offset and matches ErrMisaligned or the
// underlying errno via errors.Is.
type Request struct {
	Offset int64
	Buf    []byte
	N      int
	Err    error
}

// Reader reads batches of aligned extents from one file.
//
// Concurrency: a Reader is used by ONE goroutine at a time — give each search
// worker its own Reader (they may all read the same file). A Read that
// overlaps another on the same Reader fails with ErrConcurrentUse instead of
// corrupting the ring. Close must not race with Read.
type Reader interface {
	// Read submits every request of the batch, waits for all of them and
	// fills each request's N and Err. It returns nil when every request
	// succeeded (short reads at EOF included) and otherwise an error
	// summarising the failures; the per-request Err fields say which.
	// Valid requests are read even when others in the batch are invalid.
	// An empty batch returns nil at once.
	Read(reqs []Request) error
	// ReadEach is Read that also calls done(i) once for every request i of
	// the batch as soon as that request is finished (read, short at EOF, or
	// failed with Err set), on the calling goroutine. io_uring calls it in
	// completion order while other reads are still in flight, so a caller
	// can process one extent while waiting for the next; other backends may
	// call it after the whole batch. done must not call into the Reader. If
	// ReadEach fails before starting (closed, concurrent use) it calls done
	// for no request.
	ReadEach(reqs []Request, done func(i int)) error
	// Alignment is the required alignment of offsets, lengths and buffers.
	Alignment() int
	// Backend names the implementation: "uring", "aio", "pread" or "memory".
	Backend() string
	// Close releases the file, rings and goroutines. Calling it again
	// returns nil.
	Close() error
}

// fallbackNoter is implemented by readers that were opened with a degraded
// configuration (another backend than requested, or buffered instead of
// direct I/O).
type fallbackNoter interface{ fallbackNote() string }

// FallbackReason tells why the Reader returned by Open is not exactly what
// was asked for: io_uring (and maybe AIO) setup failed under "auto", naming
// each failure, or the filesystem
// rejected O_DIRECT (tmpfs) so reads go through the page cache. It returns ""
// when nothing was degraded.
func FallbackReason(r Reader) string {
	if f, ok := r.(fallbackNoter); ok {
		return f.fallbackNote()
	}
	return ""
}

// Open opens path for direct reads with the named backend ("auto", "uring",
// "aio" or "pread"; "" means auto) and returns the Reader and the backend
// actually chosen. depth is the io_uring queue depth or the AIO context's
// nr_events (DefaultDepth when <= 0); batches larger than it are read in
// rounds. SPANN_IO, when set, overrides backend.
//
// Under "auto", any io_uring setup failure (ENOSYS on old kernels, EPERM from
// a seccomp profile such as Docker's default or from sysctl
// kernel.io_uring_disabled, ENOMEM from RLIMIT_MEMLOCK on kernels before
// 5.12) falls back to Linux AIO, and an AIO setup failure (ENOSYS without
// CONFIG_AIO, EAGAIN when fs.aio-max-nr is used up) falls back to pread;
// FallbackReason names each failure.
func Open(path, backend string, depth int) (Reader, string, error) {
	f, err := OpenFile(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	return f.NewReader(backend, depth)
}

// File is a file opened once for direct reads (O_DIRECT where the
// filesystem allows it). Every Reader made from it reads that same file,
// through its own duplicate descriptor, even after the path has been
// renamed over or removed: an open index keeps reading the postings it
// opened while a rebuild replaces them on disk.
type File struct {
	fd     int
	direct bool
	path   string
}

// OpenFile opens path for direct reads.
func OpenFile(path string) (*File, error) {
	fd, direct, err := openDirect(path)
	if err != nil {
		return nil, err
	}
	return &File{fd: fd, direct: direct, path: path}, nil
}

// Path is the path the file was opened at.
func (f *File) Path() string { return f.path }

// ReadAt reads len(b) bytes at off with pread(2); under O_DIRECT, b, off and
// len(b) must be multiples of FileAlignment (use AlignedBuffer).
func (f *File) ReadAt(b []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(f.fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("iouring: read %s at %d: %w", f.path, off, err)
		}
		return n, nil
	}
}

// Size is the file's length in bytes (fstat of the open file, not of
// whatever the path names now).
func (f *File) Size() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return 0, fmt.Errorf("iouring: stat %s: %w", f.path, err)
	}
	return st.Size, nil
}

// Close closes the file's own descriptor; Readers made from it keep theirs.
func (f *File) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := closeFd(f.fd)
	f.fd = -1
	if err != nil {
		return fmt.Errorf("iouring: close %s: %w", f.path, err)
	}
	return nil
}

// NewReader returns a Reader of the file with the named backend and depth,
// as Open does, on a duplicate of the file's descriptor.
func (f *File) NewReader(backend string, depth int) (Reader, string, error) {
	if env := os.Getenv(EnvBackend); env != "" {
		backend = env
	}
	backend = strings.ToLower(strings.TrimSpace(backend))
	if backend == "" {
		backend = BackendAuto
	}
	if depth <= 0 {
		depth = DefaultDepth
	}
	switch backend {
	case BackendAuto, BackendUring, BackendAIO, BackendPread:
	default:
		return nil, "", fmt.Errorf("iouring: open %s: unknown backend %q (want auto, uring, aio or pread; check %s)", f.path, backend, EnvBackend)
	}
	if f.fd < 0 {
		return nil, "", fmt.Errorf("iouring: %s: %w", f.path, ErrClosed)
	}
	fd, err := unix.FcntlInt(uintptr(f.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("iouring: open %s: dup: %w", f.path, err)
	}
	return openOn(fd, f.direct, f.path, backend, depth)
}

// openOn makes the Reader for fd, which it then owns (closing it on
// failure), trying the backends as Open documents.
func openOn(fd int, direct bool, path, backend string, depth int) (Reader, string, error) {
	var note string
	if !direct {
		note = "O_DIRECT not supported by the filesystem; reads go through the page cache"
	}

	var failures string // setup failures under auto, for FallbackReason
	if backend == BackendAuto || backend == BackendUring {
		u, err := setupUring(fd, path, depth, true)
		if err == nil {
			u.note = note
			return u, BackendUring, nil
		}
		if backend == BackendUring {
			closeFd(fd)
			return nil, "", fmt.Errorf("iouring: open %s: %w", path, err)
		}
		failures = fmt.Sprintf("io_uring unavailable (%v)", err)
	}
	if backend == BackendAuto || backend == BackendAIO {
		a, err := setupAIO(fd, path, depth)
		if err == nil {
			if failures != "" {
				note = joinNotes(failures+"; using aio", note)
			}
			a.note = note
			return a, BackendAIO, nil
		}
		if backend == BackendAIO {
			closeFd(fd)
			return nil, "", fmt.Errorf("iouring: open %s: %w", path, err)
		}
		failures = joinNotes(failures, fmt.Sprintf("aio unavailable (%v)", err))
	}
	if failures != "" {
		note = joinNotes(failures+"; using pread", note)
	}
	p := newPread(fd, path, defaultPreadWorkers)
	p.note = note
	return p, BackendPread, nil
}

// setupUring and setupAIO are the constructors Open tries; tests replace
// them to simulate a kernel that refuses io_uring or AIO.
var (
	setupUring = newUring
	setupAIO   = newAIO
)

func joinNotes(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// checkRequest validates one request against the alignment.
func checkRequest(r *Request, align int) error {
	a := int64(align)
	if r.Offset < 0 || r.Offset%a != 0 || len(r.Buf)%align != 0 {
		return fmt.Errorf("read offset %d len %d: %w (alignment %d)", r.Offset, len(r.Buf), ErrMisaligned, align)
	}
	if len(r.Buf) > 0 && uintptr(unsafe.Pointer(&r.Buf[0]))%uintptr(align) != 0 {
		return fmt.Errorf("read offset %d: buffer address %p: %w (alignment %d)", r.Offset, &r.Buf[0], ErrMisaligned, align)
	}
	return nil
}

// prepare resets N and Err of every request and marks invalid ones. It
// returns the number of requests that need I/O (valid and non-empty).
func prepare(reqs []Request, align int) int {
	todo := 0
	for i := range reqs {
		r := &reqs[i]
		r.N, r.Err = 0, checkRequest(r, align)
		if r.Err == nil && len(r.Buf) > 0 {
			todo++
		}
	}
	return todo
}

// notifyInvalid calls done for every request prepare rejected.
func notifyInvalid(reqs []Request, done func(i int)) {
	if done == nil {
		return
	}
	for i := range reqs {
		if reqs[i].Err != nil || len(reqs[i].Buf) == 0 {
			done(i)
		}
	}
}

// eachAfter implements ReadEach for backends that finish a whole batch at
// once: after Read it calls done for every request, in index order.
func eachAfter(reqs []Request, err error, done func(i int)) error {
	for i := range reqs {
		done(i)
	}
	return err
}

// needsIO reports whether prepare left request r to be read.
func needsIO(r *Request) bool { return r.Err == nil && len(r.Buf) > 0 }

// summarize turns the per-request errors of a finished batch into Read's
// return value.
func summarize(reqs []Request) error {
	failed := 0
	var first error
	for i := range reqs {
		if reqs[i].Err != nil {
			if first == nil {
				first = reqs[i].Err
			}
			failed++
		}
	}
	if failed == 0 {
		return nil
	}
	return fmt.Errorf("iouring: %d of %d requests failed, first: %w", failed, len(reqs), first)
}

// outcome is what to do with a request after one read attempt.
type outcome uint8

const (
	done  outcome = iota // finished: full, short at EOF, or failed (Err set)
	again                // read the remainder (Offset+N, Buf[N:]) again
)

// maxRetries bounds how often one request is resubmitted after EAGAIN,
// EINTR or an aligned short read, so a misbehaving device cannot spin a
// search worker forever.
const maxRetries = 64

// settle applies the result of one read attempt of r (res bytes, or a
// negative errno as io_uring reports it) and says whether to read again.
//
// Short reads: with O_DIRECT the kernel only returns a count that is not a
// multiple of the alignment when the read hit end of file, so an unaligned
// short count ends the request. An aligned short count may be a genuine
// partial transfer, so the remainder is resubmitted; a 0 result then means
// EOF. attempt is the number of attempts already made for this request.
func settle(r *Request, res int, errno error, align int, attempt int) outcome {
	if errno != nil {
		if isRetryable(errno) && attempt < maxRetries {
			return again
		}
		r.Err = fmt.Errorf("read offset %d len %d at byte %d: %w", r.Offset, len(r.Buf), r.N, errno)
		return done
	}
	if res == 0 {
		return done // end of file
	}
	r.N += res
	if r.N >= len(r.Buf) || res%align != 0 {
		return done
	}
	if attempt >= maxRetries {
		r.Err = fmt.Errorf("read offset %d len %d: still short at %d bytes after %d attempts", r.Offset, len(r.Buf), r.N, attempt)
		return done
	}
	return again
}

// busyGuard detects overlapping Read calls on one Reader.
type busyGuard struct{ busy atomic.Bool }

func (g *busyGuard) enter() error {
	if !g.busy.CompareAndSwap(false, true) {
		return ErrConcurrentUse
	}
	return nil
}

func (g *busyGuard) leave() { g.busy.Store(false) }
