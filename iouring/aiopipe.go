//go:build linux

package iouring

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// aioPipe is the native Linux AIO Pipe: every started batch's requests
// share the reader's context, aio_data carries ref(slot, index). At most
// depth iocbs are in the context at once; cbs[:pend] hold iocbs prepared
// but not yet accepted by io_submit (it may take part of an array, or
// answer EAGAIN when the context is full), submitted first at the next Poll.
type aioPipe struct {
	pipeBatches
	a        *aioReader
	pend     int // prepared iocbs in a.cbs[:pend]
	inflight int // accepted by io_submit, not yet reaped
}

func (a *aioReader) pipe() *aioPipe {
	if a.p == nil {
		a.p = &aioPipe{a: a}
	}
	return a.p
}

func (p *aioPipe) Start(b *Batch) error {
	a := p.a
	if err := a.enter(); err != nil {
		return err
	}
	defer a.leave()
	if err := a.usable(); err != nil {
		return err
	}
	p.start(b)
	return nil
}

func (p *aioPipe) Poll(wait bool, done func(b *Batch, i int)) error {
	a := p.a
	if err := a.enter(); err != nil {
		return err
	}
	defer a.leave()
	if a.closed {
		return ErrClosed
	}
	if a.broken != nil {
		p.failAll(a.broken, done)
		return fmt.Errorf("iouring: aio context unusable after earlier failure: %w", a.broken)
	}
	finished := p.handBackReady(done)
	for p.inflight+p.pend < a.depth {
		r, req, ok := p.next()
		if !ok {
			break
		}
		a.prep(p.pend, r, req)
		p.pend++
	}
	p.compact()
	finished += p.submit(done)
	if p.inflight == 0 {
		return nil
	}
	// Wait for one completion only when asked to and nothing was handed
	// back yet; min_nr 0 collects what has completed without blocking.
	minNr := 0
	if wait && finished == 0 {
		minNr = 1
	}
	got, err := a.getEvents(minNr)
	if err != nil {
		// io_destroy waits for the reads still in flight, so no buffer is
		// written after the requests are handed back failed.
		if derr := a.destroy(); derr != nil {
			err = errors.Join(err, derr)
		}
		a.broken = err
		p.pend, p.inflight = 0, 0
		p.failAll(err, done)
		return err
	}
	p.inflight -= got
	for _, ev := range a.events[:got] {
		p.settle(ev.data, ev.res, done)
	}
	// The kernel wrote into the buffers through raw addresses; the
	// batches slice keeps every in-flight batch reachable.
	runtime.KeepAlive(p.batches)
	return nil
}

// submit hands the prepared iocbs to the kernel, as many as it takes, and
// returns how many requests it had to hand back failed. EAGAIN with reads of
// ours in flight leaves the rest for the next Poll (reaping frees slots);
// with none in flight the shortage is someone else's, so it yields and
// retries, and fails the prepared requests after submitSpins tries. Any
// other errno belongs to the first iocb, whose request alone fails.
func (p *aioPipe) submit(done func(b *Batch, i int)) int {
	a := p.a
	failed := 0
	for spins := 0; p.pend > 0; {
		n, errno := a.submit(p.pend)
		switch {
		case n > 0:
			p.inflight += n
			p.pend = copy(a.cbs, a.cbs[n:p.pend]) // keep the rest at the front
			spins = 0
		case errno == unix.EINTR:
		case errno == unix.EAGAIN:
			if p.inflight > 0 {
				return failed
			}
			if spins++; spins > submitSpins {
				for _, cb := range a.cbs[:p.pend] {
					failed++
					p.failOne(cb.data, fmt.Errorf("io_submit: %w", errno), done)
				}
				p.pend = 0
				return failed
			}
			runtime.Gosched()
		default:
			failed++
			p.failOne(a.cbs[0].data, fmt.Errorf("io_submit: %w", errno), done)
			p.pend = copy(a.cbs, a.cbs[1:p.pend])
		}
	}
	return failed
}

// failOne hands back the request r names with err.
func (p *aioPipe) failOne(r uint64, err error, done func(b *Batch, i int)) {
	slot, i := unref(r)
	b := p.batches[slot]
	b.Reqs[i].Err = fmt.Errorf("read offset %d len %d: %w", b.Reqs[i].Offset, len(b.Reqs[i].Buf), err)
	p.finish(b, i, done)
}
