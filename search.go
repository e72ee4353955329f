package spann

import (
	"fmt"
	"math"
	"time"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/topk"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/iouring"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

// SearchParams are the per-query knobs.
type SearchParams struct {
	// NProbe is how many nearest heads the head graph returns; their
	// postings are the candidates to read. Default 64.
	NProbe int
	// Eps prunes heads: head i is kept only if d(q,c_i) ≤ d1 + Eps·|d1|,
	// d1 being the nearest head's distance. Distances are the kernels'
	// (squared for L2, so Eps bounds squared distances: Eps 0.21 keeps heads
	// up to 1.1× the nearest head's Euclidean distance). Negative disables
	// pruning. Default 0.6 is chosen by the zero value only through
	// DefaultSearchParams.
	Eps float64
	// HeadList is the head-graph search list (≥ NProbe); 0 = NProbe +
	// max(8, NProbe/2). On realsift-1M at NProbe 16, lists of 16/24/32/48
	// gave recall@10 0.910/0.916/0.916/0.918 for head searches of
	// 67/86/113/133 µs: past 1.5·NProbe the list costs more than it finds.
	HeadList int
	// MaxPostings caps how many postings are read after pruning (0 = no cap).
	MaxPostings int
}

// DefaultSearchParams returns the defaults: NProbe 64, pruning off.
func DefaultSearchParams() SearchParams {
	return SearchParams{NProbe: 64, Eps: -1}
}

// Neighbor is one result: a base row id and its distance to the query.
type Neighbor struct {
	ID   int32
	Dist float32
}

// SearchStats are the per-query figures; callers aggregate them.
type SearchStats struct {
	Heads    int           // heads returned by the head graph
	Postings int           // postings read
	Pages    int           // 4 KiB pages read
	Bytes    int           // bytes read
	Vectors  int           // vectors scanned from postings
	HeadTime time.Duration // head-graph search
	IOTime   time.Duration // reading postings
	ScanTime time.Duration // checking, decoding and scanning postings
}

// Add accumulates o into s.
func (s *SearchStats) Add(o SearchStats) {
	s.Heads += o.Heads
	s.Postings += o.Postings
	s.Pages += o.Pages
	s.Bytes += o.Bytes
	s.Vectors += o.Vectors
	s.HeadTime += o.HeadTime
	s.IOTime += o.IOTime
	s.ScanTime += o.ScanTime
}

// Search returns the (approximately) k nearest indexed vectors of query,
// given as the raw little-endian bytes of the index's element type (see
// datasets.Bytes), nearest first.
func (ix *Index) Search(query []byte, k int, p SearchParams) ([]Neighbor, error) {
	return ix.SearchInto(query, k, p, nil, nil)
}

// SearchInto is Search appending to dst[:0] and filling stats if not nil;
// with a dst of capacity k it does not allocate.
func (ix *Index) SearchInto(query []byte, k int, p SearchParams, dst []Neighbor, stats *SearchStats) ([]Neighbor, error) {
	if err := ix.checkQuery(query, k, &p); err != nil {
		return nil, err
	}
	w, err := ix.getWorker()
	if err != nil {
		return nil, err
	}
	defer ix.putWorker(w)
	dst, st, err := w.search(query, k, p, dst[:0])
	if stats != nil {
		*stats = st
	}
	return dst, err
}

func (ix *Index) checkQuery(query []byte, k int, p *SearchParams) error {
	if len(query) != ix.rowBytes {
		return fmt.Errorf("query of %d bytes: the index holds %d-dimensional %s vectors (%d bytes)", len(query), ix.dim, ix.typ, ix.rowBytes)
	}
	if k <= 0 {
		return fmt.Errorf("k=%d: must be positive", k)
	}
	if k > ix.Manifest.N {
		return fmt.Errorf("k=%d: larger than the %d indexed vectors", k, ix.Manifest.N)
	}
	if p.NProbe == 0 {
		p.NProbe = 64
	}
	if p.NProbe < 0 {
		return fmt.Errorf("nprobe=%d: must be positive", p.NProbe)
	}
	p.NProbe = min(p.NProbe, ix.heads.Len())
	if p.HeadList == 0 {
		p.HeadList = p.NProbe + max(8, p.NProbe/2)
	}
	p.HeadList = max(p.HeadList, p.NProbe)
	if math.IsNaN(p.Eps) {
		return fmt.Errorf("eps is NaN")
	}
	if ix.typ == datasets.Float32 {
		if err := datasets.CheckFinite(ix.typ, query, ix.dim, 0); err != nil {
			return fmt.Errorf("query: %w", err)
		}
	}
	return nil
}

type engine interface {
	newWorker() (worker, error)
}

type worker interface {
	search(query []byte, k int, p SearchParams, dst []Neighbor) ([]Neighbor, SearchStats, error)
	close() error
}

type engineT[T vec.Elem] struct {
	ix    *Index
	sp    vec.Space[T]
	graph *memindex.Graph[T]
	heads []T
}

// workerT is one search worker's private state; nothing in it is shared.
type workerT[T vec.Elem] struct {
	e      *engineT[T]
	hs     *memindex.Searcher[T]
	reader iouring.Reader
	buf    []byte // page-aligned read buffer (iouring.AlignedBuffer)
	reqs   []iouring.Request
	probe  []int32 // heads whose postings are read, in request order
	dec    *posting.Decoder
	heap   *topk.Heap
	dists  []float32
	qnorm  []T
	ids    []int32
	hdists []float32

	// Per-query state for scanPosting, set only during ReadEach.
	q       []T
	st      *SearchStats
	stats   SearchStats // the current query's figures
	scanErr error
	onDone  func(i int) // w.scanPosting, bound once
}

func (e *engineT[T]) newWorker() (worker, error) {
	ix := e.ix
	r, backend, err := iouring.Open(ix.postings, ix.io, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ix.postings, err)
	}
	dec, err := posting.NewDecoder(ix.rowBytes)
	if err != nil {
		r.Close()
		return nil, err
	}
	ix.mu.Lock()
	if ix.backend == "" {
		ix.backend, ix.note = backend, iouring.FallbackReason(r)
	}
	ix.mu.Unlock()
	w := &workerT[T]{e: e, hs: e.graph.NewSearcher(), reader: r, dec: dec, heap: topk.New(10)}
	w.onDone = w.scanPosting
	return w, nil
}

func (w *workerT[T]) close() error {
	w.dec.Close()
	err := w.reader.Close()
	if w.buf != nil {
		if ferr := iouring.FreeBuffer(w.buf); err == nil {
			err = ferr
		}
		w.buf = nil
	}
	return err
}

// ensureBuf grows the aligned read buffer to at least n bytes.
func (w *workerT[T]) ensureBuf(n int) error {
	if len(w.buf) >= n {
		return nil
	}
	if w.buf != nil {
		iouring.FreeBuffer(w.buf)
		w.buf = nil
	}
	size := max(n, 256<<10)
	b, err := iouring.AlignedBuffer(size)
	if err != nil {
		return err
	}
	w.buf = b
	return nil
}

func (w *workerT[T]) search(query []byte, k int, p SearchParams, dst []Neighbor) ([]Neighbor, SearchStats, error) {
	w.stats = SearchStats{}
	dst, err := w.run(query, k, &p, dst, &w.stats)
	return dst, w.stats, err
}

func (w *workerT[T]) run(query []byte, k int, p *SearchParams, dst []Neighbor, st *SearchStats) ([]Neighbor, error) {
	ix := w.e.ix
	q := datasets.Rows[T](query)
	if ix.metric == vec.Cosine {
		w.qnorm = append(w.qnorm[:0], q...)
		if f, ok := any(w.qnorm).([]float32); ok {
			vec.Normalize(f)
		}
		q = w.qnorm
	}
	t0 := time.Now()
	heads := w.hs.Search(q, p.NProbe, p.HeadList)
	st.Heads = len(heads)
	st.HeadTime = time.Since(t0)

	w.heap.Reset(k)
	// Heads are candidates themselves: they are stored in no posting.
	for _, h := range heads {
		w.heap.Push(int32(ix.heads.IDs[h.ID]), h.Dist)
	}
	// Query-aware pruning, then one batch of reads.
	w.probe, w.reqs = w.probe[:0], w.reqs[:0]
	total := 0
	if len(heads) > 0 {
		d1 := heads[0].Dist
		bound := d1 + float32(p.Eps)*abs32(d1)
		for _, h := range heads {
			if p.Eps >= 0 && h.Dist > bound {
				break
			}
			if p.MaxPostings > 0 && len(w.probe) >= p.MaxPostings {
				break
			}
			en := ix.entries[h.ID]
			if en.Count == 0 {
				continue
			}
			w.probe = append(w.probe, h.ID)
			total += en.ReadBytes()
		}
	}
	if err := w.ensureBuf(total); err != nil {
		return dst, err
	}
	off := 0
	for _, h := range w.probe {
		en := ix.entries[h]
		span := en.ReadBytes()
		w.reqs = append(w.reqs, iouring.Request{Offset: int64(en.ReadOffset()), Buf: w.buf[off : off+span]})
		off += span
	}
	// Each posting is checked, decoded and scanned as soon as its read
	// completes, while the others are still in flight.
	w.q, w.st, w.scanErr = q, st, nil
	t1 := time.Now()
	err := w.reader.ReadEach(w.reqs, w.onDone)
	elapsed := time.Since(t1)
	w.q, w.st = nil, nil
	if w.scanErr != nil {
		return dst, w.scanErr
	}
	if err != nil {
		return dst, fmt.Errorf("reading postings of %s: %w", ix.postings, err)
	}
	st.IOTime = elapsed - st.ScanTime
	st.Postings = len(w.probe)
	if cap(w.ids) < k {
		w.ids = make([]int32, k)
		w.hdists = make([]float32, k)
	}
	got := w.heap.Sorted(w.ids[:k], w.hdists[:k])
	for i := 0; i < got; i++ {
		dst = append(dst, Neighbor{ID: w.ids[i], Dist: w.hdists[i]})
	}
	return dst, nil
}

// scanPosting is the ReadEach callback: it verifies, decodes and scans the
// posting of request i into the heap. The first error is kept in scanErr and
// later postings are skipped.
func (w *workerT[T]) scanPosting(i int) {
	if w.scanErr != nil {
		return
	}
	t0 := time.Now()
	ix, st := w.e.ix, w.st
	h := w.probe[i]
	en := ix.entries[h]
	r := &w.reqs[i]
	if r.Err != nil {
		w.scanErr = fmt.Errorf("posting %d of %s: %w", h, ix.postings, r.Err)
		return
	}
	if r.N < len(r.Buf) {
		w.scanErr = fmt.Errorf("%w: posting %d of %s: short read (%d of %d bytes)", ErrCorrupt, h, ix.postings, r.N, len(r.Buf))
		return
	}
	ids, rows, err := w.dec.Decode(r.Buf[en.Offset-en.ReadOffset():], en)
	if err != nil {
		w.scanErr = fmt.Errorf("%w: posting %d of %s: %w", ErrCorrupt, h, ix.postings, err)
		return
	}
	n := len(ids)
	if cap(w.dists) < n {
		w.dists = make([]float32, n)
	}
	d := w.dists[:n]
	w.e.sp.Batch(w.q, datasets.Rows[T](rows), d)
	worst := w.heap.Worst()
	for j, dist := range d {
		if dist <= worst {
			w.heap.PushUnique(int32(ids[j]), dist)
			worst = w.heap.Worst()
		}
	}
	st.Vectors += n
	st.Pages += len(r.Buf) / posting.PageSize
	st.Bytes += len(r.Buf)
	st.ScanTime += time.Since(t0)
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
