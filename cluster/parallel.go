package cluster

import (
	"sync"
	"sync/atomic"
)

// chunkRows is the unit of work handed to a goroutine by parallelFor. It is a
// constant, not derived from the thread count, so that how rows are grouped
// never depends on Threads (every per-row result is written to its own slot
// and reductions run sequentially, so results are thread-count independent).
const chunkRows = 512

// parallelFor calls fn(t, lo, hi) for consecutive ranges [lo, hi) of at most
// chunkRows rows covering [0, n), using up to threads goroutines; t is the
// index (< threads) of the goroutine running the call, so fn may use
// per-goroutine scratch indexed by t. It returns when every call has returned.
func parallelFor(threads, n int, fn func(t, lo, hi int)) {
	chunks := (n + chunkRows - 1) / chunkRows
	if threads > chunks {
		threads = chunks
	}
	if threads <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for t := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				lo := c * chunkRows
				fn(t, lo, min(lo+chunkRows, n))
			}
		}()
	}
	wg.Wait()
}
