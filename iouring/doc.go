// Package iouring reads batches of page-aligned extents (SPANN postings) from
// one file opened with O_DIRECT, through io_uring when the kernel allows it,
// else through Linux native AIO, else through pread(2). It is Linux-only.
//
// # Use
//
//	r, backend, err := iouring.Open("postings.bin", "auto", 64)
//	buf, err := iouring.AlignedBuffer(n * 4096) // GC-stable, page-aligned
//	reqs := []iouring.Request{{Offset: off, Buf: buf[:4096]}, ...}
//	err = r.Read(reqs) // one submission, one wait; fills reqs[i].N / .Err
//
// A Reader belongs to one goroutine at a time (one per search worker); an
// overlapping Read returns ErrConcurrentUse. Offsets, lengths and buffer
// addresses must be multiples of Alignment() (4096), otherwise the request
// fails with ErrMisaligned (never a panic) while the rest of the batch is
// still read. A short read at end of file is not an error: N says how much
// was read. Steady-state Reads allocate nothing.
//
// Backends: "uring" (this package's own io_uring code on golang.org/x/sys/unix,
// no third-party module), "aio" (Linux native AIO — io_setup, io_submit,
// io_getevents, io_destroy — as SPTAG uses, again with raw syscalls),
// "pread" (a fixed pool of goroutines issuing pread(2), so a batch still has
// several reads in flight) and "auto" (the first of io_uring → aio → pread
// that can be set up; FallbackReason names each failure, e.g. "io_uring
// unavailable (...); using aio"). NewMemory gives an in-memory Reader with
// the same rules, for tests. The environment variable
// SPANN_IO=uring|aio|pread|auto overrides the backend of every Open in the
// process, so the engine's whole test suite can be run on one backend:
// SPANN_IO=aio go test ./...
//
// If the filesystem rejects O_DIRECT (older tmpfs), Open opens the file
// buffered instead and FallbackReason reports it; results are identical,
// only the page cache is involved.
//
// # Ring layout
//
// io_uring_setup(2) (syscall 425) is called with IORING_SETUP_CLAMP and the
// requested depth; the kernel rounds the submission queue (SQ) up to a power
// of two and makes the completion queue (CQ) twice as large. Three regions
// of the ring fd are mapped MAP_SHARED|MAP_POPULATE, at the offsets the
// kernel defines:
//
//   - IORING_OFF_SQ_RING (0): the SQ ring header — head, tail, ring_mask,
//     ring_entries, flags, dropped — followed by the SQ index array
//     (ring_entries × u32). With IORING_FEAT_SINGLE_MMAP (Linux 5.4+) the CQ
//     ring lives in the same mapping, which is then sized to the larger of
//     the two; older kernels get a second mapping.
//   - IORING_OFF_CQ_RING (0x8000000): the CQ ring header — head, tail,
//     ring_mask, ring_entries, overflow — followed by the CQEs (16 bytes each:
//     user_data u64, res s32, flags u32).
//   - IORING_OFF_SQES (0x10000000): the SQE array (64 bytes each).
//
// The positions of head, tail, mask and the arrays inside the mappings are
// taken from the io_sqring_offsets / io_cqring_offsets the kernel returns in
// io_uring_params, never hard-coded. Struct sizes (params 120, SQE 64, CQE
// 16 bytes) are checked at compile time.
//
// For each request the reader fills the SQE in slot tail&mask with
// IORING_OP_READ (opcode 22, Linux 5.6; checked once with
// IORING_REGISTER_PROBE), the file, the offset, the buffer address and
// length, and user_data = the request's index in the batch; it sets
// array[slot] = slot. After the whole batch (or as much as fits the ring) is
// queued, one io_uring_enter(2) (426) submits everything with
// IORING_ENTER_GETEVENTS and min_complete = the number in flight. CQEs are
// then reaped up to the CQ tail. A negative res of -EAGAIN or -EINTR, and a
// short read whose length is a multiple of the alignment, are resubmitted
// for the remainder (a short, unaligned count can only be end of file under
// O_DIRECT, so it ends the request); after 64 attempts the request fails.
// Batches larger than the ring run in rounds. The file is registered with
// IORING_REGISTER_FILES (427) and SQEs use IOSQE_FIXED_FILE, which saves the
// per-request fd lookup; when registration fails the plain fd is used. On
// the development machine the difference was within noise
// (docs/bench-io.md).
//
// # Pipe: several batches in flight
//
// NewPipe(r) gives a Reader a Pipe: Start(b) queues a Batch (one query's
// postings), Poll(wait, done) submits whatever the ring has room for and
// hands back every finished request as done(b, i), so a search worker can
// keep several queries' reads in flight and do CPU work (the next query's
// head search, scanning what has arrived) in between. On io_uring the Pipe
// is native: the batches share the reader's ring, user_data is
// (batch slot << 32 | request index), at most ring-depth reads are in the
// kernel at once (the CQ, twice the SQ, cannot overflow) and the rest wait
// in a FIFO that retries also go through; Poll enters the kernel once, to
// submit and (with wait, when nothing is ready) wait for one completion,
// and does not enter at all when completions are already in the CQ ring.
// Linux AIO has a native Pipe too: aio_data carries the same (slot, index)
// pair, at most depth iocbs are in the context, iocbs that io_submit did not
// take (a partial count, or EAGAIN while reads of ours are in flight) stay
// prepared for the next Poll, and Poll reaps with io_getevents(min_nr = 1
// when it must wait, else 0, which returns at once). On both, the reader's
// own Read and ReadEach are one-batch uses of the same Pipe, so there is a
// single submission and completion path; a Read while the Pipe has batches
// in flight fails with ErrConcurrentUse. pread and memory readers get a
// sequential Pipe that reads each started batch whole inside the next Poll:
// same results, no overlap.
//
// # Linux native AIO
//
// io_setup(2) creates a context for depth (nr_events) concurrent requests.
// A batch is turned into struct iocb entries (64 bytes: aio_data,
// aio_lio_opcode = IOCB_CMD_PREAD (0), aio_fildes, aio_buf, aio_nbytes,
// aio_offset, the rest zero) and submitted with ONE io_submit(2) taking an
// array of iocb pointers; batches larger than depth run in rounds.
// aio_data holds the request's index in the batch, never a Go pointer, and
// comes back in struct io_event (32 bytes: data, obj, res, res2; sizes
// checked at compile time). The kernel copies each iocb during io_submit,
// so the iocb, pointer and event arrays are allocated once per Reader and
// reused. io_getevents(2) reaps with min_nr = 1 (0 when the caller does not
// wait), so each completion is handed to the caller while the other reads
// continue. The same rules as io_uring then apply per
// event (shared settle helper): a negative res of -EAGAIN/-EINTR or an
// aligned short read is resubmitted for the remainder, an unaligned short
// read is end of file, at most 64 attempts.
//
// Failure handling: io_submit may accept only part of the array (it returns
// the count) or answer EAGAIN when the context has no free slot; the rest
// stays queued and is resubmitted after reaping. When it accepts nothing and
// returns another errno, that errno belongs to the first iocb, whose
// request alone fails. EINTR from io_submit or io_getevents is retried
// (io_getevents consumes no event when it fails). Any other io_getevents
// error destroys the context — io_destroy waits for the reads still in
// flight, so no buffer is written after Read returns — and fails the
// remaining requests; later Reads report it. Close calls io_destroy and
// closes the file; a second Close is a no-op.
//
// Caveats:
//
//   - AIO is only asynchronous with O_DIRECT. On a buffered file (the tmpfs
//     fallback above) io_submit performs each read synchronously before it
//     returns; results are still correct, just without overlap.
//   - fs.aio-max-nr (/proc/sys/fs/aio-max-nr, default 65536) caps the sum of
//     the nr_events requested by all live contexts on the host
//     (/proc/sys/fs/aio-nr; each aio Reader adds its depth). With one Reader
//     per search worker at depth 64 that is ample, but a thousand Readers,
//     or other AIO users on the host (databases), can exhaust it: io_setup
//     then fails with EAGAIN and "auto" falls back to pread (FallbackReason
//     says so); raise the sysctl or lower the depth.
//   - AIO needs no mapped rings or RLIMIT_MEMLOCK, and Docker's default
//     seccomp profile allows it, which is why it sits between io_uring and
//     pread in the fallback chain.
//
// # Memory ordering
//
// The rings are shared with the kernel, which runs concurrently on another
// CPU. The rules (those of liburing's io_uring_smp_load_acquire /
// store_release) are:
//
//   - SQ tail: we own it. All SQE and index-array stores happen with plain
//     writes first, then the new tail is published with atomic.StoreUint32
//     (a release: the kernel that sees the tail sees the entries).
//   - SQ head: the kernel owns it; read it with atomic.LoadUint32 to learn
//     how many SQEs it has consumed (used when io_uring_enter is retried).
//   - CQ tail: the kernel owns it; read it with atomic.LoadUint32 (an
//     acquire: CQEs up to that tail are fully written) before reading CQEs.
//   - CQ head: we own it; after copying the CQEs out, publish the new head
//     with atomic.StoreUint32 so the kernel may reuse those slots.
//
// Go's sync/atomic operations are sequentially consistent, which is stronger
// than the acquire/release the protocol needs.
//
// # Go pitfalls
//
//   - EINTR: Go's runtime sends SIGURG to preempt goroutines, so a blocking
//     io_uring_enter (and a pread) regularly returns EINTR. It is retried;
//     the SQEs still to submit are recounted from the kernel's SQ head, so
//     nothing is submitted twice or lost.
//   - user_data never holds a Go pointer: the GC cannot see pointers hidden
//     in kernel memory, and checkptr/-race would rightly complain. It holds
//     the batch's slot and the request's index in it; the Pipe keeps every
//     batch in flight referenced, so its buffers stay alive.
//   - Buffers must not move or be freed while the kernel writes into them.
//     Go's GC does not move heap objects, and Read keeps the batch reachable
//     until every completion is reaped, so heap buffers work; but goroutine
//     stacks do move, so a buffer must never live on a stack. AlignedBuffer
//     maps anonymous memory outside the Go heap — page-aligned (as O_DIRECT
//     needs) and never moved or collected — and FreeBuffer unmaps it.
//     (github.com/ncw/directio.AlignedBlock is avoided: it calls log.Fatal
//     when alignment fails.)
//   - RLIMIT_MEMLOCK: registered buffers (IORING_REGISTER_BUFFERS) are
//     pinned and charged to RLIMIT_MEMLOCK, whose default is small in
//     containers; kernels before 5.12 also charge the rings themselves. This
//     package does not register buffers, and "auto" falls back to pread if
//     ring setup fails with ENOMEM.
//   - The submitting thread: Go moves goroutines between OS threads, so
//     IORING_SETUP_SINGLE_ISSUER / DEFER_TASKRUN (which tie the ring to one
//     task) are not used; nor is SQPOLL (a kernel thread per ring, and
//     privileges on old kernels).
//   - Containers: Docker's default seccomp profile (and gVisor, many CI
//     sandboxes) block io_uring_setup with EPERM or ENOSYS, and sysctl
//     kernel.io_uring_disabled=1|2 does the same on the host. "auto" then
//     falls back to aio (allowed by Docker's default profile), else pread;
//     the conformance tests of the "uring" and "aio" backends skip only when
//     setup fails with ENOSYS or EPERM, and log why.
package iouring
