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

// Batch is a group of requests read together through a Pipe, typically one
// query's postings. The caller owns the Batch and its buffers; from Start
// until done has been called for its last request, the Pipe owns them and
// the caller must not touch Reqs or the buffers they point to, except the
// request i that a done(b, i) call has just handed back.
type Batch struct {
	Reqs []Request
	// Tag is the caller's: the Pipe never reads or changes it. A search
	// worker keeps the index of its query slot here.
	Tag int

	left     int     // requests whose done has not been called yet
	attempts []uint8 // read attempts per request (io_uring pipe)
	slot     int     // index in uringPipe.batches
}

// Pending is the number of requests of b not yet handed back by done; 0
// once the Pipe is finished with b (and before it was started).
func (b *Batch) Pending() int { return b.left }

// Pipe keeps several batches in flight on one Reader, so that a worker can
// do other work (search heads for the next query, scan the postings that
// have arrived) while reads are under way. Like a Reader it belongs to one
// goroutine at a time; Start and Poll fail with ErrConcurrentUse if they
// overlap a Read, ReadEach or another Pipe call on the same Reader.
type Pipe interface {
	// Start validates b's requests (resetting N and Err as Read does) and
	// queues them; they are submitted to the kernel no later than the next
	// Poll. It fails only when the Reader is closed, broken or in use, in
	// which case the Pipe has not taken b.
	Start(b *Batch) error
	// Poll submits every queued read that the ring has room for and then
	// calls done(b, i) for every request that has finished since the last
	// Poll (fully read, short at end of file, or with Err set — invalid
	// requests are handed back by the first Poll after their Start), in
	// completion order, on the calling goroutine. b.Pending() is already
	// decremented when done runs, so 0 means b is complete. If wait is set
	// and nothing has finished, Poll blocks until something does (it
	// returns at once when nothing is pending). It returns an error only
	// when the ring itself failed; every pending request has then been
	// handed back with Err set. done must not call into the Pipe.
	Poll(wait bool, done func(b *Batch, i int)) error
	// Pending is the number of started batches not yet complete.
	Pending() int
}

// NewPipe returns a Pipe over r. An io_uring or AIO Reader gets a native
// pipe that keeps every started batch in flight at once on its ring or
// context. The other backends (pread, memory) get a sequential pipe that
// reads each started batch, whole, inside the next Poll: results are the
// same, but a worker's head search no longer overlaps its reads. An
// io_uring or AIO Reader has one Pipe (its ring's or context's): asking
// again returns the same one.
func NewPipe(r Reader) Pipe {
	switch r := r.(type) {
	case *uringReader:
		return r.pipe()
	case *aioReader:
		return r.pipe()
	}
	return &seqPipe{r: r}
}

// seqPipe is the Pipe of backends without a native completion queue.
type seqPipe struct {
	r       Reader
	started []*Batch
	cur     *Batch                // the batch being read, for each
	done    func(b *Batch, i int) // the current Poll's callback
	eachCB  func(i int)           // p.each, bound once so Poll allocates nothing
}

func (p *seqPipe) Start(b *Batch) error {
	b.left = len(b.Reqs)
	p.started = append(p.started, b)
	return nil
}

func (p *seqPipe) Pending() int { return len(p.started) }

func (p *seqPipe) each(i int) {
	p.cur.left--
	p.done(p.cur, i)
}

func (p *seqPipe) Poll(_ bool, done func(b *Batch, i int)) error {
	if p.eachCB == nil {
		p.eachCB = p.each
	}
	p.done = done
	defer func() { p.cur, p.done = nil, nil }()
	for len(p.started) > 0 {
		p.cur = p.started[0]
		p.started = p.started[:copy(p.started, p.started[1:])]
		if err := p.r.ReadEach(p.cur.Reqs, p.eachCB); errors.Is(err, ErrClosed) || errors.Is(err, ErrConcurrentUse) {
			// ReadEach did not start: hand every request back failed.
			for i := range p.cur.Reqs {
				p.cur.Reqs[i].N, p.cur.Reqs[i].Err = 0, err
				p.each(i)
			}
		}
	}
	return nil
}

// pipeBatches is the bookkeeping of the native pipes (io_uring and AIO):
// the started batches by slot, the FIFO of requests waiting for room in the
// kernel (new ones and retries), and the requests that finished without
// I/O. A request travels as ref(slot, index), in user_data or aio_data.
type pipeBatches struct {
	batches []*Batch // by slot; nil = free
	free    []int    // free slots
	queue   []uint64 // refs waiting for room in the kernel
	qhead   int      // queue[qhead:] is waiting
	ready   []uint64 // finished without I/O (invalid or empty): for the next Poll
}

func ref(slot, i int) uint64       { return uint64(slot)<<32 | uint64(uint32(i)) }
func unref(r uint64) (slot, i int) { return int(r >> 32), int(uint32(r)) }

// Pending is the number of started batches not yet complete.
func (p *pipeBatches) Pending() int { return len(p.batches) - len(p.free) }

// start validates b's requests, gives b a slot and queues its reads.
func (p *pipeBatches) start(b *Batch) {
	prepare(b.Reqs, FileAlignment)
	if cap(b.attempts) < len(b.Reqs) {
		b.attempts = make([]uint8, len(b.Reqs))
	}
	b.attempts = b.attempts[:len(b.Reqs)]
	clear(b.attempts)
	b.left = len(b.Reqs)
	if n := len(p.free); n > 0 {
		b.slot = p.free[n-1]
		p.free = p.free[:n-1]
		p.batches[b.slot] = b
	} else {
		b.slot = len(p.batches)
		p.batches = append(p.batches, b)
	}
	for i := range b.Reqs {
		if needsIO(&b.Reqs[i]) {
			p.queue = append(p.queue, ref(b.slot, i))
		} else {
			p.ready = append(p.ready, ref(b.slot, i))
		}
	}
	if b.left == 0 {
		p.release(b) // an empty batch is complete at once
	}
}

// release frees b's slot once its last request has been handed back.
func (p *pipeBatches) release(b *Batch) {
	p.batches[b.slot] = nil
	p.free = append(p.free, b.slot)
}

// finish hands request i of b back to the caller.
func (p *pipeBatches) finish(b *Batch, i int, done func(b *Batch, i int)) {
	b.attempts[i] = attemptsDone
	b.left--
	if b.left == 0 {
		p.release(b)
	}
	done(b, i)
}

// handBackReady hands back the requests that needed no I/O and returns how
// many there were.
func (p *pipeBatches) handBackReady(done func(b *Batch, i int)) int {
	n := len(p.ready)
	for _, r := range p.ready {
		slot, i := unref(r)
		p.finish(p.batches[slot], i, done)
	}
	p.ready = p.ready[:0]
	return n
}

// next pops the oldest waiting request.
func (p *pipeBatches) next() (uint64, *Request, bool) {
	if p.qhead == len(p.queue) {
		p.queue, p.qhead = p.queue[:0], 0
		return 0, nil, false
	}
	r := p.queue[p.qhead]
	p.qhead++
	slot, i := unref(r)
	return r, &p.batches[slot].Reqs[i], true
}

// compact drops the consumed head of the queue once it is half of it.
func (p *pipeBatches) compact() {
	if p.qhead == len(p.queue) {
		p.queue, p.qhead = p.queue[:0], 0
	} else if p.qhead > len(p.queue)/2 {
		p.queue = p.queue[:copy(p.queue, p.queue[p.qhead:])]
		p.qhead = 0
	}
}

// settle applies one completion (res bytes or a negative errno) to the
// request r names: a finished request is handed back, a short or
// retryable one is queued again for its remainder.
func (p *pipeBatches) settle(r uint64, res int64, done func(b *Batch, i int)) {
	slot, i := unref(r)
	if slot >= len(p.batches) || p.batches[slot] == nil || i >= len(p.batches[slot].Reqs) {
		return // cannot happen: only requests of live batches are submitted
	}
	b := p.batches[slot]
	n, errno := int(res), error(nil)
	if res < 0 {
		n, errno = 0, unix.Errno(-res)
	}
	if settle(&b.Reqs[i], n, errno, FileAlignment, int(b.attempts[i])) == again {
		b.attempts[i]++
		p.queue = append(p.queue, r)
		return
	}
	p.finish(b, i, done)
}

// failAll hands back every unfinished request with err: those waiting, and
// those the kernel had (the caller has made sure it no longer writes into
// them, or keeps the batches referenced until it cannot).
func (p *pipeBatches) failAll(err error, done func(b *Batch, i int)) {
	for _, b := range p.batches {
		if b == nil {
			continue
		}
		for i := range b.Reqs {
			if b.attempts[i] != attemptsDone {
				b.Reqs[i].Err = fmt.Errorf("read offset %d: %w", b.Reqs[i].Offset, err)
				p.finish(b, i, done)
			}
		}
	}
	p.queue, p.qhead, p.ready = p.queue[:0], 0, p.ready[:0]
}

// uringPipe is the native io_uring Pipe: every started batch's requests
// share the ring.
type uringPipe struct {
	pipeBatches
	u        *uringReader
	inflight int // SQEs submitted (or queued in the SQ) and not yet reaped
}

func (u *uringReader) pipe() *uringPipe {
	if u.p == nil {
		u.p = &uringPipe{u: u}
	}
	return u.p
}

func (p *uringPipe) Start(b *Batch) error {
	u := p.u
	if err := u.enter(); err != nil {
		return err
	}
	defer u.leave()
	if err := u.usable(); err != nil {
		return err
	}
	p.start(b)
	return nil
}

func (p *uringPipe) Poll(wait bool, done func(b *Batch, i int)) error {
	u := p.u
	if err := u.enter(); err != nil {
		return err
	}
	defer u.leave()
	if u.closed {
		return ErrClosed
	}
	if u.broken != nil {
		p.failAll(u.broken, done)
		return fmt.Errorf("iouring: ring unusable after earlier failure: %w", u.broken)
	}
	finished := p.handBackReady(done)
	queued := p.fillSQ()
	minComplete := 0
	if wait && finished == 0 && u.cqReady() == 0 && p.inflight > 0 {
		minComplete = 1
	}
	if queued > 0 || minComplete > 0 {
		if err := u.submitAndWait(p.inflight, minComplete); err != nil {
			u.broken = err
			// The kernel may still hold submitted reads: the batches stay
			// registered (and reachable) until Close unmaps the ring.
			p.failAll(err, done)
			return err
		}
	}
	p.reap(done)
	// The kernel writes into the buffers through raw addresses; the
	// batches slice keeps every in-flight batch (and so its buffers)
	// reachable until its last CQE is reaped.
	runtime.KeepAlive(p.batches)
	return nil
}

// fillSQ moves waiting requests into free SQ slots, keeping at most
// sqEntries reads in flight (the CQ, twice as large, can then never
// overflow). It returns how many it queued.
func (p *uringPipe) fillSQ() int {
	n := 0
	for p.inflight < int(p.u.sqEntries) {
		r, req, ok := p.next()
		if !ok {
			break
		}
		p.u.queueSQE(r, req)
		p.inflight++
		n++
	}
	p.compact()
	return n
}

// reap consumes every available CQE.
func (p *uringPipe) reap(done func(b *Batch, i int)) {
	u := p.u
	head := atomic.LoadUint32(u.cqHead)
	tail := atomic.LoadUint32(u.cqTail) // acquire: CQE contents up to tail are visible
	for ; head != tail; head++ {
		c := u.cqes[head&u.cqMask]
		p.inflight--
		p.settle(c.userData, int64(c.res), done)
	}
	// Release: we are done reading these CQE slots before the kernel may
	// reuse them.
	atomic.StoreUint32(u.cqHead, head)
}

// pipeRead runs a Reader's Read and ReadEach as one batch on its native
// Pipe, reusing one Batch so that they allocate nothing.
type pipeRead struct {
	b    Batch
	done func(i int)       // the ReadEach callback, nil for Read
	cb   func(*Batch, int) // s.handBack, bound once
}

func (s *pipeRead) read(p Pipe, reqs []Request, onDone func(i int)) error {
	if p.Pending() > 0 {
		return ErrConcurrentUse // a Pipe has batches in flight on this reader
	}
	s.b.Reqs, s.done = reqs, onDone
	if s.cb == nil {
		s.cb = s.handBack
	}
	defer func() { s.b.Reqs, s.done = nil, nil }()
	if err := p.Start(&s.b); err != nil {
		return err
	}
	for s.b.Pending() > 0 {
		if err := p.Poll(true, s.cb); err != nil {
			break // every pending request was handed back with Err set
		}
	}
	return summarize(reqs)
}

func (s *pipeRead) handBack(_ *Batch, i int) {
	if s.done != nil {
		s.done(i)
	}
}

// usable reports why the ring cannot take new work, if it cannot.
func (u *uringReader) usable() error {
	if u.closed {
		return ErrClosed
	}
	if u.broken != nil {
		return fmt.Errorf("iouring: ring unusable after earlier failure: %w", u.broken)
	}
	return nil
}

// queueSQE writes the SQE for the unread remainder of r, tagged with
// userData. It is published to the kernel by submitAndWait's tail store.
func (u *uringReader) queueSQE(userData uint64, r *Request) {
	slot := u.tail & u.sqMask
	n := min(len(r.Buf)-r.N, maxChunk)
	s := &u.sqes[slot]
	*s = sqe{
		opcode:   opRead,
		fd:       int32(u.fd),
		off:      uint64(r.Offset) + uint64(r.N),
		addr:     uint64(uintptr(unsafe.Pointer(&r.Buf[r.N]))),
		len:      uint32(n),
		userData: userData, // a (slot, index) pair, never a Go pointer
	}
	if u.fixed {
		s.flags = sqeFixedFile
		s.fd = 0
	}
	u.sqArray[slot] = slot
	u.tail++
}
