package spann

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// StreamQuery is one query answered by ServeQueries.
type StreamQuery struct {
	Ctx    context.Context // once done, the query stops as in SearchContext (nil: never)
	Query  []byte          // a packed row of the index's element type
	K      int
	Params SearchParams
	// Range makes it a range query (as SearchRange) for every vector
	// within Radius; K is then unused.
	Range  bool
	Radius float32
	// Done gets the answer (valid only during the call: copy what you
	// keep), its figures and the time from the worker taking the query to
	// its answer — or the query's error. It runs on the serving goroutine,
	// between other queries' steps: keep it short.
	Done func(res []Neighbor, st *SearchStats, latency time.Duration, err error)
}

// ServeQueries answers the queries received from queries on one search
// worker until queries is closed and those in flight are answered; every
// query received gets exactly one Done call. Like SearchBatch's workers it
// keeps up to inFlight queries in flight (0 = DefaultInFlight): while one
// query's postings are read it searches the heads of the next and scans
// the postings that have arrived.
//
// Why: a server answering each request with Search on its own goroutine
// runs as many workers as requests in flight, each with its own visited
// array and buffers; at 64 requests in flight on realsift-1M they no
// longer fit in the caches, and the server spent twice SearchBatch's CPU
// per query (docs/benchmarks.md). A few ServeQueries loops, one per core,
// keep the in-process pipeline behind any number of requests.
//
// If the worker's reads fail beyond recovery, the queries in flight get
// that error and ServeQueries goes on with a fresh worker; if none can be
// made (the Index is closed), every later query gets that error.
func (ix *Index) ServeQueries(queries <-chan *StreamQuery, inFlight int) {
	if inFlight <= 0 {
		inFlight = DefaultInFlight
	}
	for {
		w, err := ix.getWorker()
		if err != nil {
			for q := range queries {
				q.Done(nil, nil, 0, err)
			}
			return
		}
		err = w.serveStream(queries, inFlight)
		ix.putWorker(w)
		if err == nil {
			return // queries closed
		}
	}
}

// serveStream is ServeQueries on one worker: it returns nil when queries
// is closed and every query taken is answered, or the pipe's error after
// failing the queries in flight with it.
func (w *workerT[T]) serveStream(queries <-chan *StreamQuery, depth int) error {
	w.ensureSlots(depth)
	pending := make([]*StreamQuery, len(w.slots)) // by slot index
	answer := func(slot int, res []Neighbor, st *SearchStats, lat time.Duration, err error) {
		q := pending[slot]
		pending[slot] = nil
		w.slots[slot].ctx = nil // the slot may next serve a batch, which has no context
		q.Done(res, st, lat, err)
	}
	emit := func(slot int, res []Neighbor, st *SearchStats, lat time.Duration) { answer(slot, res, st, lat, nil) }
	fail := func(slot int, err error) { answer(slot, nil, nil, 0, err) }
	active, open := 0, true
	for {
		for open && active < depth {
			var q *StreamQuery
			if active == 0 { // nothing in flight: wait for a query
				q, open = <-queries
			} else {
				select {
				case q, open = <-queries:
				default:
				}
			}
			if q == nil {
				break
			}
			s := w.freeSlot(depth)
			if err := w.startQuery(s, q); err != nil {
				q.Done(nil, nil, 0, err)
				continue
			}
			pending[s.batch.Tag] = q
			s.qi, s.busy = s.batch.Tag, true
			active++
			// Submit at once, so the reads fly during the next head search.
			if err := w.pipe.Poll(false, w.onDone); err != nil {
				return w.failInFlight(fmt.Errorf("reading postings of %s: %w", w.e.ix.postings, err), fail)
			}
			active -= w.retire(emit, fail)
		}
		if active == 0 {
			if !open {
				return nil
			}
			continue
		}
		if err := w.pipe.Poll(true, w.onDone); err != nil && w.pipe.Pending() > 0 {
			return w.failInFlight(fmt.Errorf("reading postings of %s: %w", w.e.ix.postings, err), fail)
		}
		if n := w.retire(emit, fail); n > 0 {
			active -= n
			// Let the goroutines waiting for these answers (and those
			// bringing new queries) run now rather than at the next
			// preemption, up to 10 ms away: under load the workers keep
			// every P busy. On realsift-1M at 64 requests in flight this
			// raised the server's QPS by 40 % (docs/benchmarks.md).
			runtime.Gosched()
		}
	}
}

// startQuery checks q and begins it on slot s.
func (w *workerT[T]) startQuery(s *querySlot[T], q *StreamQuery) error {
	if q.Ctx != nil {
		if err := q.Ctx.Err(); err != nil {
			return err
		}
		if q.Ctx.Done() != nil {
			s.ctx = q.Ctx
		}
	}
	p, k := q.Params, q.K
	if q.Range {
		if err := w.e.ix.CheckRadius(q.Radius); err != nil {
			s.ctx = nil
			return err
		}
		p.ranged, p.radius, k = true, q.Radius, 1
	}
	if err := w.e.ix.checkQuery(q.Query, k, &p); err != nil {
		s.ctx = nil
		return err
	}
	s.start = time.Now()
	if err := w.begin(s, q.Query, k, &p); err != nil {
		s.ctx = nil
		s.releaseView() // the slot may stay idle a long time: let checkpoints reuse space
		return err
	}
	return nil
}

// failInFlight answers every busy slot with err (its reads cannot be
// drained: the worker is discarded) and returns err.
func (w *workerT[T]) failInFlight(err error, fail func(int, error)) error {
	for _, s := range w.slots {
		if s.busy {
			s.busy = false
			fail(s.qi, err)
		}
	}
	return err
}
