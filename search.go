package spann

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/topk"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/iouring"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

// SearchParams are the per-query knobs.
type SearchParams struct {
	// NProbe is how many nearest heads the head graph returns; their
	// postings are the candidates to read. 0 = 64.
	NProbe int
	// Eps > 0 prunes heads: head i is kept only if d(q,c_i) ≤ d1 + Eps·|d1|,
	// d1 being the nearest head's distance. Distances are the kernels'
	// (squared for L2, so Eps bounds squared distances: Eps 0.21 keeps heads
	// up to 1.1× the nearest head's Euclidean distance). 0 or negative: no
	// pruning (the default; a fixed NProbe did better on realsift).
	Eps float64
	// HeadList is the head-graph search list (≥ NProbe); 0 = NProbe +
	// max(8, NProbe/2). On realsift-1M at NProbe 16, lists of 16/24/32/48
	// gave recall@10 0.910/0.916/0.916/0.918 for head searches of
	// 67/86/113/133 µs: past 1.5·NProbe the list costs more than it finds.
	HeadList int
	// MaxPostings caps how many postings are read after pruning (0 = no cap).
	MaxPostings int
	// FirstRound > 0 turns on the two-round stopping rule: the postings of
	// the FirstRound nearest candidate heads are read first; then, with τ
	// the k-th distance found so far, the other candidates are read only if
	// their head distance is at most τ + KthSlack·|τ|. A query whose
	// nearest vectors are close to its first heads thus stops early, one
	// whose neighbourhood spreads reads more. 0 reads every candidate in
	// one round. On realsift-1M (docs/benchmarks.md) it reaches the recall
	// of a fixed NProbe with 5-14 % fewer pages.
	FirstRound int
	// KthSlack is the second round's bound (used when FirstRound > 0), on
	// the kernels' distances: 0.21 on squared L2 keeps heads up to 1.1× the
	// Euclidean k-th distance.
	KthSlack float64
	// InFlight is how many queries each SearchBatch worker keeps in flight
	// at once (0 = DefaultInFlight, doubled with FirstRound): while one query's postings are being
	// read, the worker searches the next one's heads and scans the postings
	// that have arrived. Search, which answers one query, ignores it.
	InFlight int
	// Filter, if not nil, is a conjunction of labels: only vectors
	// carrying every one of them are returned (the index needs labels,
	// AttachLabels). How the postings are chosen depends on how many
	// vectors match (filter.go, filterHeads).
	Filter []int32

	// RangeSlack sets which heads' postings a range search (SearchRange)
	// reads beyond the NProbe nearest: those within radius·(1+RangeSlack)
	// of the query (distances as the kernels', squared for L2). Above -1;
	// 0 = the radius itself.
	RangeSlack float64

	ranged bool    // a range search (range.go): every vector within radius
	radius float32 // (set by SearchRange and SearchRangeBatch)
}

// DefaultInFlight is SearchBatch's queries in flight per worker when
// SearchParams.InFlight is 0, and twice that with the two-round rule, whose
// queries wait for two rounds of reads each (docs/benchmarks.md: 8 keeps
// one thread's CPU busy at one round; each query in flight holds its read
// buffer, about 4 KiB per page read, so more only costs memory).
const DefaultInFlight = 8

// InFlightDepth is the number of queries per worker SearchBatch keeps in
// flight with p: InFlight, or its default when 0.
func (p SearchParams) InFlightDepth() int {
	switch {
	case p.InFlight > 0:
		return p.InFlight
	case p.FirstRound > 0:
		return 2 * DefaultInFlight
	}
	return DefaultInFlight
}

// DefaultSearchParams returns the defaults, which are also what the zero
// SearchParams means: NProbe 64, no pruning, one round, the default head
// list and queries in flight.
func DefaultSearchParams() SearchParams {
	return SearchParams{NProbe: 64}
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
	Rounds   int           // batches of reads (2 when the two-round rule read more)
	Pages    int           // 4 KiB pages read
	Bytes    int           // bytes read
	Vectors  int           // vectors scanned from postings
	HeadTime time.Duration // head-graph search
	IOTime   time.Duration // reading postings
	ScanTime time.Duration // checking, decoding and scanning postings
	// HomesPlan counts queries whose filter matched few enough vectors
	// for the homes plan (filter.go).
	HomesPlan int
	// ListsPlan counts those answered from label lists (filter.go).
	ListsPlan int
}

// Add accumulates o into s.
func (s *SearchStats) Add(o SearchStats) {
	s.Heads += o.Heads
	s.Postings += o.Postings
	s.Rounds += o.Rounds
	s.Pages += o.Pages
	s.Bytes += o.Bytes
	s.Vectors += o.Vectors
	s.HeadTime += o.HeadTime
	s.IOTime += o.IOTime
	s.ScanTime += o.ScanTime
	s.HomesPlan += o.HomesPlan
	s.ListsPlan += o.ListsPlan
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
	return ix.SearchContext(context.Background(), query, k, p, dst, stats)
}

// SearchContext is SearchInto stopped by ctx: a query whose context ends
// before it starts is not searched, and one whose context ends while its
// postings are read scans none of the postings that arrive afterwards and
// starts no second round; it returns ctx's error (errors.Is
// context.Canceled or context.DeadlineExceeded). Reads already submitted
// complete (the kernel owns their buffers until then), but are not scanned.
func (ix *Index) SearchContext(ctx context.Context, query []byte, k int, p SearchParams, dst []Neighbor, stats *SearchStats) ([]Neighbor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ix.checkQuery(query, k, &p); err != nil {
		return nil, err
	}
	w, err := ix.getWorker()
	if err != nil {
		return nil, err
	}
	defer ix.putWorker(w)
	dst, st, err := w.search(ctx, query, k, p, dst[:0])
	if stats != nil {
		*stats = st
	}
	return dst, err
}

func (ix *Index) checkQuery(query []byte, k int, p *SearchParams) error {
	if len(query) != ix.rowBytes {
		return fmt.Errorf("query of %d bytes: the index holds %d-dimensional %s vectors (%d bytes)", len(query), ix.dim, ix.typ, ix.rowBytes)
	}
	if err := ix.checkParams(k, p); err != nil {
		return err
	}
	if ix.typ == datasets.Float32 {
		if err := datasets.CheckFinite(ix.typ, query, ix.dim, 0); err != nil {
			return fmt.Errorf("query: %w", err)
		}
	}
	return nil
}

// checkParams validates k and p and fills p's defaults.
func (ix *Index) checkParams(k int, p *SearchParams) error {
	if k <= 0 {
		return fmt.Errorf("k=%d: must be positive", k)
	}
	if n := ix.N(); k > n {
		return fmt.Errorf("k=%d: larger than the %d indexed vectors", k, n)
	}
	if p.NProbe == 0 {
		p.NProbe = 64
	}
	if p.NProbe < 0 {
		return fmt.Errorf("nprobe=%d: must be positive", p.NProbe)
	}
	if p.HeadList < 0 || p.MaxPostings < 0 {
		return fmt.Errorf("head-list=%d, max-postings=%d: must not be negative (0 = the default)", p.HeadList, p.MaxPostings)
	}
	p.NProbe = min(p.NProbe, len(ix.eng.headIDs()))
	if p.HeadList == 0 {
		p.HeadList = p.NProbe + max(8, p.NProbe/2)
	}
	p.HeadList = max(p.HeadList, p.NProbe)
	if p.InFlight < 0 {
		return fmt.Errorf("in-flight=%d: must be positive (0 = default %d)", p.InFlight, DefaultInFlight)
	}
	p.InFlight = p.InFlightDepth()
	if err := ix.checkFilter(p); err != nil {
		return err
	}
	if math.IsNaN(p.Eps) {
		return fmt.Errorf("eps is NaN")
	}
	if p.FirstRound < 0 {
		return fmt.Errorf("first-round=%d: must be positive (0 = one round)", p.FirstRound)
	}
	if math.IsNaN(p.RangeSlack) || math.IsInf(p.RangeSlack, 0) || p.RangeSlack <= -1 {
		return fmt.Errorf("range-slack=%v: must be a finite number above -1", p.RangeSlack)
	}
	if math.IsNaN(p.KthSlack) || math.IsInf(p.KthSlack, 0) || p.KthSlack < 0 {
		return fmt.Errorf("kth-slack=%v: must be a finite number >= 0", p.KthSlack)
	}
	return nil
}

type engine interface {
	newWorker() (worker, error)
	assign(raw []byte) ([][]int32, []byte, error)     // an insert's heads (insert.go)
	headIDs() []uint32                                // the current heads' base ids (heads.go)
	labels() *labelState                              // the current labels, nil if none (heads.go)
	headsOf(set any) ([]uint32, func(h int32) []byte) // a head set's base ids and rows (nil: the current)
	withLabels(set any, lab *labelState) any          // a head set to publish with new labels
	// Splitting postings (split.go).
	split(a int32, aID uint32, aRow []byte, aDead bool, ids []uint32, rows []byte, read postingReader, taken *roaring.Bitmap) (*splitResult, bool, error)
	head(h int32) (uint32, []byte)
	rowDist(a, b []byte) float32 // distance between two packed rows
	nearestHead(row []byte, skip func(int32) bool) int32
	removedHead(h int32) bool
	entryHead() int32
	extendHeads(out *rewrite) (any, error)
	writeHeadFiles(set any, gen int64) ([]indexfile.FileInfo, error)
}

type worker interface {
	search(ctx context.Context, query []byte, k int, p SearchParams, dst []Neighbor) ([]Neighbor, SearchStats, error)
	searchMany(next func() (qi int, query []byte, ok bool), k int, p SearchParams, filters [][]int32, depth int,
		emit func(qi int, res []Neighbor, st *SearchStats, latency time.Duration)) error
	serveStream(queries <-chan *StreamQuery, depth int) error // stream.go
	close() error
	// releaseViews releases the directory versions its queries still
	// hold (one that failed half-way): called when a search returns it.
	releaseViews()
	// dropStaleLists closes its label lists reader if they were replaced.
	dropStaleLists()
}

type engineT[T vec.Elem] struct {
	ix *Index
	sp vec.Space[T]
}

// ringDepth is the io_uring (or AIO) queue depth of a search worker: enough
// for several queries' postings in flight at once.
const ringDepth = 256

// workerT is one search worker's private state; nothing in it is shared.
// A worker keeps up to len(slots) queries in flight on its own ring.
type workerT[T vec.Elem] struct {
	e      *engineT[T]
	hs     *memindex.Searcher[T] // a searcher of hsSet's graph
	hsSet  *headSet[T]
	reader iouring.Reader
	pipe   iouring.Pipe
	dec    *posting.Decoder
	pool   *pagePool // read buffers of the slots' rounds
	dists  []float32
	ids    []int32
	hdists []float32
	out    []Neighbor // searchMany's answer scratch
	slots  []*querySlot[T]
	onDone func(b *iouring.Batch, i int) // w.scanPosting, bound once
	// The filtered homes plan's scratch (filter.go).
	homeMark   []uint64 // a bit per posting, all clear between queries
	homeList   []int32
	homeHeap   *topk.Heap
	homeIDs    []int32
	homeDists  []float32
	homeNbrs   []memindex.Neighbor
	homeRows   []T // a chunk of home heads' rows, scored together
	homeScores []float32
	rangeIDs   []int32 // finishRange's scratch
	// The label lists' reader, decoder and requests (filter.go), opened
	// at the worker's first lists plan.
	lreader iouring.Reader
	ldec    *posting.Decoder
	lstate  *labelState // whose lists lreader reads
	lreqs   []iouring.Request
	idBuf   [256]uint32
}

// querySlot is one query in flight on a worker: the postings it reads, the
// buffer they are read into, and the heap its answer grows in.
type querySlot[T vec.Elem] struct {
	batch   iouring.Batch       // batch.Tag is the slot's index in workerT.slots
	span    span                // the current round's read buffer, from the worker's pagePool
	view    *posting.View       // the directory version the query plans and decodes its reads with
	probe   []int32             // heads whose postings the current round reads, in request order
	cands   []memindex.Neighbor // candidate heads not read in round 1 (two-round rule)
	slack   float64             // the second round's KthSlack; round2 is pending while cands is non-empty
	heap    *topk.Heap
	dead    *roaring.Bitmap // ids deleted when the query began (nil: none)
	allow   *roaring.Bitmap // a filtered query's matching ids (nil: unfiltered)
	ranged  bool            // a range query: answers gather in found, within radius
	radius  float32
	found   []Neighbor
	lists   []int32     // a filtered query's label lists to read (filter.go)
	lab     *labelState // the labels of its view's head set (nil: none)
	q       []T         // the query (normalised copy for cosine)
	qnorm   []T
	qi      int       // the caller's query index (searchMany)
	start   time.Time // when the worker took the query
	ioStart time.Time // when its reads were started
	stats   SearchStats
	err     error           // first error met while scanning
	ctx     context.Context // Search's context: once done, postings are no longer scanned
	busy    bool
}

func (e *engineT[T]) newWorker() (worker, error) {
	ix := e.ix
	r, backend, err := ix.store.NewReader(ix.io, ringDepth)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ix.postings, err)
	}
	if ix.wrap != nil {
		r = ix.wrap(r)
	}
	dec, err := ix.store.NewDecoder()
	if err != nil {
		r.Close()
		return nil, err
	}
	ix.mu.Lock()
	if ix.backend == "" {
		ix.backend, ix.note = backend, iouring.FallbackReason(r)
	}
	ix.mu.Unlock()
	w := &workerT[T]{e: e, reader: r, pipe: iouring.NewPipe(r), dec: dec, pool: &pagePool{}}
	w.onDone = w.scanPosting
	w.ensureSlots(1)
	return w, nil
}

func (w *workerT[T]) close() error {
	w.dec.Close()
	err := w.reader.Close()
	if lerr := w.closeLists(); err == nil {
		err = lerr
	}
	for _, s := range w.slots {
		if s.span.a == nil { // arena pages go with their arena
			w.pool.put(s.span)
		}
		s.span = span{}
	}
	if perr := w.pool.close(); err == nil {
		err = perr
	}
	return err
}

// ensureSlots grows the worker to n query slots.
func (w *workerT[T]) ensureSlots(n int) {
	for len(w.slots) < n {
		s := &querySlot[T]{heap: topk.New(10)}
		s.batch.Tag = len(w.slots)
		w.slots = append(w.slots, s)
	}
}

// releaseSpan ends the slot's hold on its read buffer once none of its
// reads is in flight (a read the kernel still owns keeps its pages). Arena
// pages have gone back read by read (scanPosting); a buffer of its own
// goes back here.
func (w *workerT[T]) releaseSpan(s *querySlot[T]) {
	if s.batch.Pending() == 0 {
		if s.span.a == nil {
			w.pool.put(s.span)
		}
		s.span = span{}
	}
}

// search answers one query on slot 0. Once ctx is done, scan sets the
// slot's error, so the rest of the postings are not scanned and no second
// round starts.
func (w *workerT[T]) search(ctx context.Context, query []byte, k int, p SearchParams, dst []Neighbor) ([]Neighbor, SearchStats, error) {
	s := w.slots[0]
	if ctx.Done() != nil { // context.Background's is nil: nothing to check
		s.ctx = ctx
		defer func() { s.ctx = nil }()
	}
	if err := w.begin(s, query, k, &p); err != nil {
		return dst, s.stats, err
	}
	for {
		for s.batch.Pending() > 0 {
			if err := w.pipe.Poll(true, w.onDone); err != nil && s.batch.Pending() > 0 {
				return dst, s.stats, fmt.Errorf("reading postings of %s: %w", w.e.ix.postings, err)
			}
		}
		more, err := w.secondRound(s)
		if err != nil {
			return dst, s.stats, err
		}
		if !more {
			break
		}
	}
	dst, err := w.finish(s, dst)
	return dst, s.stats, err
}

// searchMany answers every query next yields, keeping up to depth of them
// in flight: while one query's postings are being read the worker searches
// the heads of the next and scans whatever reads have completed. emit gets
// each answer (valid only during the call) with its figures and latency,
// measured from when the worker took the query to its answer. It stops
// taking queries at the first error, lets the reads in flight finish, and
// returns that error. filters, if not nil, gives query qi its own
// p.Filter, filters[qi] (checked by the caller).
func (w *workerT[T]) searchMany(next func() (qi int, query []byte, ok bool), k int, p SearchParams, filters [][]int32, depth int,
	emit func(qi int, res []Neighbor, st *SearchStats, latency time.Duration)) error {
	w.ensureSlots(depth)
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	failQuery := func(qi int, err error) { fail(fmt.Errorf("query %d: %w", qi, err)) }
	active, more := 0, true
	for {
		for more && firstErr == nil && active < depth {
			qi, query, ok := next()
			if !ok {
				more = false
				break
			}
			s := w.freeSlot(depth)
			s.qi, s.start = qi, time.Now()
			if filters != nil {
				p.Filter = filters[qi]
			}
			if err := w.begin(s, query, k, &p); err != nil {
				fail(fmt.Errorf("query %d: %w", qi, err))
				break
			}
			s.busy = true
			active++
			// Submit at once, so the reads fly during the next head search.
			if err := w.pipe.Poll(false, w.onDone); err != nil {
				fail(fmt.Errorf("reading postings of %s: %w", w.e.ix.postings, err))
			}
			active -= w.retire(emit, failQuery)
		}
		if active == 0 {
			return firstErr
		}
		if err := w.pipe.Poll(true, w.onDone); err != nil {
			fail(fmt.Errorf("reading postings of %s: %w", w.e.ix.postings, err))
			if w.pipe.Pending() > 0 {
				return firstErr // the ring is gone and cannot be drained
			}
		}
		active -= w.retire(emit, failQuery)
	}
}

// releaseView releases the slot's directory version, if it holds one.
func (s *querySlot[T]) releaseView() {
	if s.view != nil {
		s.view.Release()
		s.view = nil
	}
}

func (w *workerT[T]) releaseViews() {
	for _, s := range w.slots {
		s.releaseView()
	}
}

// dropStaleLists closes the worker's lists reader if a checkpoint has
// replaced those lists: an idle worker must not keep the old file
// (removed, its space not freed while open) and its label state alive.
func (w *workerT[T]) dropStaleLists() {
	if w.lstate != nil && w.lstate != w.e.labels() {
		w.closeLists()
	}
}

// freeSlot returns a slot that has no query in flight.
func (w *workerT[T]) freeSlot(depth int) *querySlot[T] {
	for _, s := range w.slots[:depth] {
		if !s.busy {
			return s
		}
	}
	panic("spann: no free query slot") // searchMany keeps active < depth
}

// retire answers every busy slot whose reads have all been scanned and
// returns how many it freed.
func (w *workerT[T]) retire(emit func(int, []Neighbor, *SearchStats, time.Duration), fail func(qi int, err error)) int {
	n := 0
	for _, s := range w.slots {
		if !s.busy || s.batch.Pending() > 0 {
			continue
		}
		if more, err := w.secondRound(s); err != nil {
			s.err = err
		} else if more {
			continue // its second round is in flight
		}
		s.busy = false
		n++
		out, err := w.finish(s, w.out[:0])
		w.out = out
		if err != nil {
			fail(s.qi, err)
			continue
		}
		emit(s.qi, out, &s.stats, time.Since(s.start))
	}
	return n
}

// begin searches the query's heads, seeds its heap with them (heads are
// stored in no posting), chooses the postings to read and starts their
// reads on the worker's pipe.
func (w *workerT[T]) begin(s *querySlot[T], query []byte, k int, p *SearchParams) error {
	ix := w.e.ix
	q := datasets.Rows[T](query)
	if ix.metric == vec.Cosine {
		s.qnorm = append(s.qnorm[:0], q...)
		if f, ok := any(s.qnorm).([]float32); ok {
			vec.Normalize(f)
		}
		q = s.qnorm
	}
	// The insert buffers before the directory: a checkpoint publishes the
	// directory holding the vectors it folded before it drops their
	// frozen buffer, so a query sees them in one or the other (or both:
	// the heap keeps one copy), never in neither.
	buf := ix.buf.Load()
	var frozen *insertBuffer // what a checkpoint is folding in (see merge.go)
	if buf != nil {
		frozen = buf.prev.Load()
	}
	// One directory version for the whole query: its reads are planned
	// and decoded with the same entries even if postings move meanwhile,
	// and acquired until finish (or the worker's return), so that no
	// checkpoint reuses the space of postings it names meanwhile.
	// The inserted vectors' labels before the directory too: a checkpoint
	// drops them once it has published the labels file holding them.
	var inserted *insertedMatch
	if p.Filter != nil {
		inserted = ix.ilab.matching(p.Filter)
	}
	s.releaseView()
	s.q, s.err, s.stats, s.view, s.dead = q, nil, SearchStats{}, ix.store.Acquire(), ix.dead.Load()
	set := setOf[T](s.view)
	if set != w.hsSet { // a checkpoint split postings: new heads
		w.hs, w.hsSet = set.graph.NewSearcher(), set
	}
	t0 := time.Now()
	s.heap.Reset(k)
	var heads []memindex.Neighbor
	s.allow, s.ranged, s.radius, s.found, s.lists = nil, p.ranged, p.radius, s.found[:0], s.lists[:0]
	s.lab = set.labels
	if p.Filter != nil {
		s.allow = matching(s.lab, p.Filter)
		if inserted != nil {
			s.allow = roaring.Or(s.allow, inserted.ids)
		}
	}
	switch {
	case p.ranged:
		heads = w.rangeHeads(s, set, p)
	case p.Filter != nil:
		heads = w.filterHeads(s, set, p)
	default:
		heads = w.hs.Search(q, p.NProbe, p.HeadList)
		for _, h := range heads {
			if id := set.ids[h.ID]; s.dead == nil || !s.dead.Contains(id) {
				s.heap.Push(int32(id), h.Dist)
			}
		}
	}
	if inserted != nil {
		w.scoreInserted(s, inserted)
	}
	s.stats.Heads = len(heads)
	s.stats.HeadTime = time.Since(t0)
	if len(s.lists) > 0 {
		if err := w.readLists(s); err != nil {
			return err
		}
	}
	if buf != nil {
		w.scanBuffered(s, set, buf, frozen, heads) // vectors inserted since the last checkpoint
	}
	// Query-aware pruning: Eps against the nearest head, MaxPostings.
	if len(heads) > 0 && !p.ranged {
		bound := heads[0].Dist + float32(p.Eps)*abs32(heads[0].Dist)
		n, postings := 0, 0
		for ; n < len(heads); n++ {
			if p.Eps > 0 && heads[n].Dist > bound {
				break
			}
			if s.view.Entry(heads[n].ID).Count > 0 {
				if p.MaxPostings > 0 && postings == p.MaxPostings {
					break
				}
				postings++
			}
		}
		heads = heads[:n]
	}
	s.cands, s.slack = s.cands[:0], p.KthSlack
	if p.FirstRound > 0 && len(heads) > p.FirstRound && !p.ranged {
		s.cands = append(s.cands, heads[p.FirstRound:]...)
		heads = heads[:p.FirstRound]
	}
	s.probe = s.probe[:0]
	for _, h := range heads {
		s.probe = append(s.probe, h.ID)
	}
	return w.startRound(s)
}

// secondRound starts the slot's second round, once its first is scanned:
// the remaining candidates whose head distance is within the slack of the
// k-th distance found so far (all of them while fewer than k results are
// known). It reports whether reads were started.
func (w *workerT[T]) secondRound(s *querySlot[T]) (bool, error) {
	if len(s.cands) == 0 || s.err != nil {
		return false, nil
	}
	tau := s.heap.Worst()
	bound := tau + float32(s.slack)*abs32(tau)
	s.probe = s.probe[:0]
	for _, h := range s.cands {
		if h.Dist <= bound {
			s.probe = append(s.probe, h.ID)
		}
	}
	s.cands = s.cands[:0]
	if len(s.probe) == 0 {
		return false, nil
	}
	return true, w.startRound(s)
}

// startRound reads the postings of the slot's probe list: empty ones are
// skipped, the others get one aligned read each in one batch on the pipe.
func (w *workerT[T]) startRound(s *querySlot[T]) error {
	ix := w.e.ix
	probe, total := s.view.Plan(s.probe)
	s.probe = probe
	w.releaseSpan(s) // the previous round's reads are all scanned
	if s.span.buf != nil {
		return fmt.Errorf("spann: read buffer of a slot still in flight") // cannot happen: rounds start when the last one is done
	}
	if total > 0 {
		sp, err := w.pool.get(total)
		if err != nil {
			return err
		}
		s.span = sp
	}
	s.batch.Reqs = s.view.Requests(s.probe, s.span.buf, s.batch.Reqs[:0])
	s.stats.Postings += len(s.probe)
	if s.stats.Rounds == 0 {
		s.ioStart = time.Now()
	}
	if len(s.probe) > 0 {
		s.stats.Rounds++
	}
	// Each posting is checked, decoded and scanned by scanPosting as soon
	// as its read completes, while the others are still in flight.
	if err := w.pipe.Start(&s.batch); err != nil {
		return fmt.Errorf("reading postings of %s: %w", ix.postings, err)
	}
	return nil
}

// finish appends the slot's answer, nearest first, to dst.
func (w *workerT[T]) finish(s *querySlot[T], dst []Neighbor) ([]Neighbor, error) {
	w.releaseSpan(s)
	s.releaseView()
	if s.err != nil {
		return dst, s.err
	}
	s.stats.IOTime = time.Since(s.ioStart) - s.stats.ScanTime
	if s.ranged {
		return w.finishRange(s, dst), nil
	}
	k := s.heap.K()
	if cap(w.ids) < k {
		w.ids = make([]int32, k)
		w.hdists = make([]float32, k)
	}
	got := s.heap.Sorted(w.ids[:k], w.hdists[:k])
	w.e.ix.externals(w.ids[:got]) // the ids users gave (ids.go)
	for i := 0; i < got; i++ {
		dst = append(dst, Neighbor{ID: w.ids[i], Dist: w.hdists[i]})
	}
	return dst, nil
}

// scanPosting is the Pipe callback for request i of a slot's batch: it
// scans the posting and gives its pages back to the pool.
//
// Why page by page: with 16 queries in flight per worker at recall 0.95
// (33 pages each), holding a round's pages until its last read was
// scanned kept about 2 MiB per worker in use; a posting's pages are free
// for the next round as soon as it is scanned.
func (w *workerT[T]) scanPosting(b *iouring.Batch, i int) {
	s := w.slots[b.Tag]
	w.scan(s, b, i)
	w.pool.putPart(s.span, b.Reqs[i].Buf)
}

// scan verifies, decodes and scans the posting of request i into the
// slot's heap. The first error is kept in the slot and its later postings
// are skipped.
func (w *workerT[T]) scan(s *querySlot[T], b *iouring.Batch, i int) {
	if s.err == nil && s.ctx != nil {
		s.err = s.ctx.Err()
	}
	if s.err != nil {
		return
	}
	t0 := time.Now()
	r := &b.Reqs[i]
	ids, rows, err := w.e.ix.store.Decode(w.dec, s.view, s.probe[i], r)
	if err != nil {
		s.err = postingError(err)
		return
	}
	w.score(s, ids, rows, len(r.Buf), t0)
}

// score scans one decoded posting, read in readBytes bytes from t0 on,
// into the slot's heap (or its range answers).
func (w *workerT[T]) score(s *querySlot[T], ids []uint32, rows []byte, readBytes int, t0 time.Time) {
	st := &s.stats
	n := len(ids)
	if cap(w.dists) < n {
		w.dists = make([]float32, n)
	}
	d := w.dists[:n]
	w.e.sp.Batch(s.q, datasets.Rows[T](rows), d)
	if s.ranged {
		for j, dist := range d {
			if dist <= s.radius && (s.dead == nil || !s.dead.Contains(ids[j])) && (s.allow == nil || s.allow.Contains(ids[j])) {
				s.found = append(s.found, Neighbor{ID: int32(ids[j]), Dist: dist})
			}
		}
		d = d[:0] // (the k-NN loop below has nothing left to do)
	}
	worst := s.heap.Worst()
	for j, dist := range d {
		if dist <= worst && (s.dead == nil || !s.dead.Contains(ids[j])) && (s.allow == nil || s.allow.Contains(ids[j])) {
			s.heap.PushUnique(int32(ids[j]), dist)
			worst = s.heap.Worst()
		}
	}
	st.Vectors += n
	st.Pages += readBytes / posting.PageSize
	st.Bytes += readBytes
	st.ScanTime += time.Since(t0)
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
