package build

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/progress"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/memindex"
)

// assignment is one (head, vector) pair found by a worker.
type assignment struct {
	head    int32
	row     int32 // row within the block
	dist    float32
	nearest bool // head is the row's nearest (first) replica
}

// assignAndWrite streams the base, finds every vector's replica heads and
// spills the assignments by head range, then writes the postings bucket by
// bucket. A resumed build continues from its checkpoint: the rows not yet
// assigned, then the buckets not yet written.
func (b *builder[T]) assignAndWrite() error {
	sp, err := b.openSpill()
	if err != nil {
		return err
	}
	defer sp.remove()
	b.stats.SpillBuckets = len(sp.files)
	if !b.ck.Assign.Done {
		if err := b.assign(sp); err != nil {
			return err
		}
	}
	a := b.ck.Assign
	if stored := b.base.N - len(b.headID); stored > 0 {
		b.stats.ReplicasMean = float64(a.ReplicaSum) / float64(stored)
	}
	b.stats.ReplicasMax = a.ReplicaMax
	return b.writePostings(sp)
}

// spillBuckets is how many head-range buckets the spill needs for each to
// fit the memory budget when its postings are written.
func (b *builder[T]) spillBuckets() int {
	o := b.o
	n, rb := b.base.N, b.base.RowBytes()
	nh := len(b.headID)
	recBytes := int64(12 + rb)
	// What this phase holds besides the heads and the graph: the stream's
	// two read blocks, the workers' assignment lists, one spill write
	// buffer per bucket while assigning, then one bucket (its records and a
	// 4-byte sort index each) and the posting writer while writing. 15 % of
	// the budget is left to the Go heap's own slack.
	const streamBlock = 8 << 20
	fixed := residentBytes(&o, rb, nh) + 2*streamBlock + int64(o.Threads)*int64(streamBlock/rb+1)*int64(o.Replicas)*16
	avail := o.MemoryBudget*85/100 - fixed
	total := int64(n) * int64(o.Replicas) * recBytes
	bucketBytes := max(int64(8<<20), avail*recBytes/(recBytes+4))
	buckets := int(min(int64(nh), max(1, (total+bucketBytes-1)/bucketBytes)))
	if buckets > 1 {
		// Leave room for the write buffers of that many buckets too.
		bucketBytes = max(int64(8<<20), (avail-int64(buckets)*spillBufSize)*recBytes/(recBytes+4))
		buckets = int(min(int64(nh), max(1, (total+bucketBytes-1)/bucketBytes)))
	}
	if o.maxBucketBytes > 0 {
		buckets = int(min(int64(nh), max(1, (total+o.maxBucketBytes-1)/o.maxBucketBytes)))
	}
	return buckets
}

// openSpill reopens the spill of a resumed build, cut back to its last
// checkpoint, or creates an empty one. The spill lives in the build's
// scratch directory, or with --tmp-dir in a directory of its own there,
// locked like a build directory so that other builds' cleanup spares it.
func (b *builder[T]) openSpill() (*spill, error) {
	nh, rb := len(b.headID), b.base.RowBytes()
	if a := b.ck.Assign; a != nil {
		sp, err := b.reopenSpill(a)
		if err == nil {
			return sp, nil
		}
		b.note("assignment spill: %v; assigning again", err)
		b.ck.undo(2)
	}
	dir, lock := scratch(b.tmp), vfs.File(nil)
	if b.o.TmpDir != "" {
		// Those of builds that died are removed here (their lock is free).
		removeDeadDirs(filepath.Join(b.o.TmpDir, spillPrefix+"*"), false)
		d, err := b.fs.MkdirTemp(b.o.TmpDir, spillPrefix)
		if err != nil {
			return nil, fmt.Errorf("--tmp-dir: %w", err)
		}
		if lock, err = lockDir(b.fs, d); err != nil {
			os.RemoveAll(d)
			return nil, fmt.Errorf("--tmp-dir: %w", err)
		}
		if dir, err = filepath.Abs(d); err != nil {
			return nil, err
		}
	}
	buckets := b.spillBuckets()
	sp, err := newSpill(b.fs, dir, buckets, nh, rb)
	if err != nil {
		if lock != nil {
			lock.Close()
			os.RemoveAll(dir)
		}
		return nil, err
	}
	sp.lock = lock
	b.ck.Assign = &assignState{SpillDir: dir, Buckets: buckets, Lengths: make([]int64, buckets), CRCs: make([]uint32, buckets)}
	return sp, nil
}

// reopenSpill opens the spill an interrupted build committed.
func (b *builder[T]) reopenSpill(a *assignState) (*spill, error) {
	var lock vfs.File
	if a.SpillDir != scratch(b.tmp) {
		if _, err := os.Stat(a.SpillDir); err != nil {
			return nil, err
		}
		l, err := lockDir(b.fs, a.SpillDir)
		if err != nil {
			return nil, err
		}
		lock = l
		removeDeadDirs(filepath.Join(b.o.TmpDir, spillPrefix+"*"), false) // ours is locked
	}
	sp, err := reopenSpill(b.fs, a.SpillDir, a.Buckets, len(b.headID), b.base.RowBytes(), a.Lengths, a.CRCs)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	sp.lock = lock
	return sp, nil
}

// assign streams the rows not yet assigned and spills their replicas,
// committing a checkpoint about every 1/32 of the base.
func (b *builder[T]) assign(sp *spill) error {
	o := b.o
	n, rb := b.base.N, b.base.RowBytes()
	nh := len(b.headID)
	a := b.ck.Assign
	threads := o.Threads
	assigners := make([]*assigner[T], threads)
	outs := make([][]assignment, threads)
	for t := range assigners {
		assigners[t] = newAssigner(&b.o, b.sp, b.graph, b.heads, b.dim)
	}
	bar := progress.New(b.o.Progress, "assign replicas", int64(n))
	bar.Set(int64(a.Rows))
	// Heads before the first row to assign are behind us.
	nextHead := sort.Search(nh, func(i int) bool { return int(b.headID[i]) >= a.Rows })
	var normBuf []T
	// Blocks of at most 8 MiB and 1/16 of the base: the checkpoints fall
	// between blocks, and where they fall does not change the spill (rows
	// are spilled in row order whatever the block and thread split).
	blockRows := max(1024, min((8<<20)/rb, (n+15)/16))
	stride := max(blockRows, n/32)
	nextCheckpoint := a.Rows + stride
	err := b.base.StreamRange(a.Rows, n, blockRows, func(start int, raw []byte) error {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		cnt := len(raw) / rb
		if start <= n/2 && n/2 < start+cnt {
			crashPoint("assign: half")
		}
		rows := datasets.Rows[T](raw)
		if o.Metric == vec.Cosine {
			normBuf = append(normBuf[:0], rows...)
			vec.NormalizeRows(normBuf, b.dim)
			rows = normBuf
		}
		// Heads inside this block: heads are stored in heads.bin and found
		// through the head graph, so they get no posting entry.
		firstHead := nextHead
		for nextHead < nh && int(b.headID[nextHead]) < start+cnt {
			nextHead++
		}
		blockHeads := b.headID[firstHead:nextHead]
		var wg sync.WaitGroup
		per := (cnt + threads - 1) / threads
		for t := 0; t < threads; t++ {
			lo, hi := t*per, min(cnt, (t+1)*per)
			outs[t] = outs[t][:0]
			if lo >= hi {
				continue
			}
			wg.Add(1)
			go func(t, lo, hi int) {
				defer wg.Done()
				outs[t] = assigners[t].assignRows(rows, start, lo, hi, blockHeads, outs[t])
			}(t, lo, hi)
		}
		wg.Wait()
		// Spill in worker order, so the spill (and the index) do not depend
		// on goroutine scheduling.
		for t := 0; t < threads; t++ {
			if err := b.spillRows(sp, outs[t], start, datasets.Bytes(rows)); err != nil {
				return err
			}
		}
		bar.Set(int64(start + cnt))
		if end := start + cnt; end >= nextCheckpoint && end < n {
			crashPoint("assign: block")
			nextCheckpoint = end + stride
			return b.commitAssign(sp, end, false)
		}
		return nil
	})
	bar.Done()
	if err != nil {
		return err
	}
	crashPoint("assign: block")
	return b.commitAssign(sp, n, true)
}

// assigner finds the replica heads of vectors: one per worker (its
// searcher is its own), over one graph.
type assigner[T vec.Elem] struct {
	o        *Options
	dim      int
	s        *memindex.Searcher[T]
	headDist func(x, y int32) float32 // made once: a method value per row would allocate
	chosen   []int32
}

func newAssigner[T vec.Elem](o *Options, sp vec.Space[T], g *memindex.Graph[T], heads []T, dim int) *assigner[T] {
	return &assigner[T]{o: o, dim: dim, s: g.NewSearcher(), headDist: func(x, y int32) float32 {
		return sp.Dist(heads[int(x)*dim:int(x+1)*dim], heads[int(y)*dim:int(y+1)*dim])
	}}
}

// assignRows finds the replica heads of rows [lo, hi) of a block that
// starts at base row start, skipping the block's heads (blockHeads, the
// base rows of the heads in the block, ascending), and appends them to
// out in row order, each row's nearest head first.
func (a *assigner[T]) assignRows(rows []T, start, lo, hi int, blockHeads []uint32, out []assignment) []assignment {
	o := a.o
	hp := sort.Search(len(blockHeads), func(i int) bool { return int(blockHeads[i]) >= start+lo })
	for r := lo; r < hi; r++ {
		if hp < len(blockHeads) && int(blockHeads[hp]) == start+r {
			hp++
			continue
		}
		v := rows[r*a.dim : (r+1)*a.dim]
		cands := a.s.Search(v, o.CandidateHeads, o.AssignSearchList)
		a.chosen = ChooseReplicas(cands, o.Replicas, float32(o.RNGFactor), float32(o.ReplicaEps), a.headDist, a.chosen[:0])
		for k, h := range a.chosen {
			// chosen[0] is the nearest candidate: the RNG rule never skips
			// the first.
			out = append(out, assignment{head: h, row: int32(r), dist: distOf(cands, h), nearest: k == 0})
		}
	}
	return out
}

// spillRows spills one worker's assignments and counts replicas per row.
// rowBytes holds the block's rows as stored (for cosine, normalised: what
// search scores against).
func (b *builder[T]) spillRows(sp *spill, out []assignment, start int, rowBytes []byte) error {
	rb := b.base.RowBytes()
	a := b.ck.Assign
	count := func(c int) {
		a.ReplicaSum += int64(c)
		a.ReplicaMax = max(a.ReplicaMax, c)
	}
	last := int32(-1)
	cntRow := 0
	for _, x := range out {
		if x.row != last {
			if last >= 0 {
				count(cntRow)
			}
			last, cntRow = x.row, 0
		}
		cntRow++
		if err := sp.add(x.head, uint32(start)+uint32(x.row), x.dist, rowBytes[int(x.row)*rb:int(x.row+1)*rb], x.nearest); err != nil {
			return err
		}
	}
	if last >= 0 {
		count(cntRow)
	}
	return nil
}

// commitAssign makes the spill durable up to base row rows and commits a
// checkpoint saying so.
func (b *builder[T]) commitAssign(sp *spill, rows int, done bool) error {
	lengths, crcs, err := sp.sync()
	if err != nil {
		return err
	}
	a := b.ck.Assign
	a.Rows, a.Done, a.Lengths, a.CRCs = rows, done, lengths, crcs
	return b.ck.save(b.fs, b.tmp)
}

func distOf(cands []memindex.Neighbor, h int32) float32 {
	for _, c := range cands {
		if c.ID == h {
			return c.Dist
		}
	}
	return float32(math.Inf(1))
}
