//go:build linux

package iouring

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// defaultPreadWorkers is how many preads of one batch are in flight at once
// (the calling goroutine plus defaultPreadWorkers-1 helpers). Measured on the
// 2-core development VM with O_DIRECT 4-16 KiB reads in batches of 16-64
// (docs/bench-io.md): sequential preads were 2.5-3x slower than 8 concurrent
// ones, 4 and 16 were within noise of 8. Each helper blocked in pread holds
// an OS thread, so more only adds threads.
const defaultPreadWorkers = 8

// preadReader is the portable backend: every request is a pread(2) on the
// O_DIRECT file, spread over a fixed pool of helper goroutines that live as
// long as the Reader, so a batch allocates nothing.
type preadReader struct {
	busyGuard
	fd      int
	path    string
	note    string
	workers int
	closed  bool

	// Per-batch state, published to helpers by the send on start and read
	// back by the caller after wg.Wait.
	reqs  []Request
	next  atomic.Int64
	start chan struct{}
	wg    sync.WaitGroup
}

// newPread wraps an open fd; workers is the number of concurrent preads per
// batch (1 = sequential in the calling goroutine).
func newPread(fd int, path string, workers int) *preadReader {
	if workers < 1 {
		workers = 1
	}
	p := &preadReader{fd: fd, path: path, workers: workers}
	if workers > 1 {
		p.start = make(chan struct{}, workers-1)
		for i := 0; i < workers-1; i++ {
			go p.helper()
		}
	}
	return p
}

func (p *preadReader) helper() {
	for range p.start {
		p.work()
		p.wg.Done()
	}
}

func (p *preadReader) Alignment() int       { return FileAlignment }
func (p *preadReader) Backend() string      { return BackendPread }
func (p *preadReader) fallbackNote() string { return p.note }

// ReadEach reads the whole batch, then calls done for each request.
func (p *preadReader) ReadEach(reqs []Request, done func(i int)) error {
	err := p.Read(reqs)
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrConcurrentUse) {
		return err
	}
	return eachAfter(reqs, err, done)
}

func (p *preadReader) Read(reqs []Request) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.leave()
	if p.closed {
		return ErrClosed
	}
	todo := prepare(reqs, FileAlignment)
	if todo == 0 {
		return summarize(reqs)
	}
	p.reqs = reqs
	p.next.Store(0)
	helpers := min(p.workers-1, todo-1)
	p.wg.Add(helpers)
	for i := 0; i < helpers; i++ {
		p.start <- struct{}{}
	}
	p.work()
	p.wg.Wait()
	p.reqs = nil
	return summarize(reqs)
}

// work claims requests one at a time until the batch is exhausted.
func (p *preadReader) work() {
	for {
		i := int(p.next.Add(1) - 1)
		if i >= len(p.reqs) {
			return
		}
		if r := &p.reqs[i]; needsIO(r) {
			p.readOne(r)
		}
	}
}

func (p *preadReader) readOne(r *Request) {
	for attempt := 0; ; attempt++ {
		n, err := unix.Pread(p.fd, r.Buf[r.N:], r.Offset+int64(r.N))
		if err != nil {
			n = 0
		}
		if settle(r, n, err, FileAlignment, attempt) == done {
			return
		}
	}
}

func (p *preadReader) Close() error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.leave()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.start != nil {
		close(p.start)
	}
	if err := closeFd(p.fd); err != nil {
		return fmt.Errorf("iouring: close %s: %w", p.path, err)
	}
	return nil
}
