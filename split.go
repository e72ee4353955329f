package spann

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/memindex"
)

// Splitting postings (SPFresh's LIRE, the split half). A checkpoint that
// finds a rewritten posting over the build's posting limit splits it in
// two: 2-means over its vectors, the part nearer the old head stays
// under it, the rest goes to a new head, the member nearest that part's
// centroid (heads are vectors of the base, stored in no posting). Vectors
// near the boundary go to both parts, as the RNG rule would replicate
// them. Then LIRE's reassignment: the vectors of the postings of the new
// head's nearest heads that are nearer the new head than their own join
// its posting (as replicas: they stay where they are, since what else
// holds them is not known without reading every posting). The new heads
// go into the head graph (memindex.Graph.Extend) and into heads-G.bin and
// graph-G.bin of the generation the checkpoint commits.

const (
	// splitNeighbours is how many of a new head's nearest heads lend it
	// the vectors nearer it than their own head.
	splitNeighbours = 8
	// splitMargin: a member goes to both parts when its distances to the
	// two heads differ by no more than this fraction of the smaller.
	splitMargin = 0.05
	// kmeansRounds bounds the 2-means iterations.
	kmeansRounds = 8
)

// splitResult is one posting split in two.
type splitResult struct {
	idsA, idsB   []uint32 // the postings of head a and of the new head b
	rowsA, rowsB []byte
	aID          uint32 // head a's base id and vector after the split: the
	aRow         []byte // member nearest the centre of its part (perhaps a's own)
	bID          uint32 // the new head's
	bRow         []byte
}

// postingReader returns a posting's live entries (scratch).
type postingReader func(h int32) ([]uint32, []byte, error)

// split divides the live entries (ids, rows) of the posting of head a,
// whose base id and vector are aID and aRow (a is -1 for a head this
// checkpoint made; aDead says whether aID is deleted), in two by
// 2-means; each part's head is its member nearest its centre, so head a
// may move to another vector, its old one then joining the members (it
// was in no posting, being a head). read gives the neighbours' postings.
// ok is false when the posting cannot be split (all one vector, or no
// member can be a head).
func (e *engineT[T]) split(a int32, aID uint32, aRow []byte, aDead bool, ids []uint32, rows []byte, read postingReader, taken *roaring.Bitmap) (res *splitResult, ok bool, err error) {
	set := e.current()
	dim := e.ix.dim
	if !aDead {
		ids = append([]uint32{aID}, ids...)
		rows = append(slices.Clone(aRow), rows...)
	}
	members := datasets.Rows[T](rows)
	row := func(i int) []T { return members[i*dim : (i+1)*dim] }
	side := e.twoMeans(datasets.Rows[T](aRow), members, len(ids))
	isHead := func(id uint32) bool { return set.isHead(id) || taken.Contains(id) }
	ha := e.centreMember(ids, members, side, false, aID, isHead)
	hb := e.centreMember(ids, members, side, true, aID, isHead)
	if ha < 0 || hb < 0 || slices.Equal(row(ha), row(hb)) {
		return nil, false, nil
	}
	res = &splitResult{aID: ids[ha], aRow: datasets.Bytes(slices.Clone(row(ha))), bID: ids[hb], bRow: datasets.Bytes(slices.Clone(row(hb)))}
	e.assignParts(res, ids, rows, row(ha), row(hb), ha, hb)
	if len(res.idsA) == 0 || len(res.idsB) == 0 {
		return nil, false, nil
	}
	inB := roaring.BitmapOf(res.idsB...)
	if err := e.reassignNear(res, inB, a, datasets.Rows[T](res.bRow), read); err != nil {
		return nil, false, err
	}
	return res, true, nil
}

// assignParts puts each member but the two heads (indices ha, hb) into
// the part of the nearer head, and into both when the distances differ
// by no more than splitMargin. When that leaves either head under a
// quarter of them, it cuts instead by how much nearer head b each member
// is: the half leaning most to it goes with it, those within the margin
// of the cut to both.
func (e *engineT[T]) assignParts(res *splitResult, ids []uint32, rows []byte, va, vb []T, ha, hb int) {
	dim, rb := e.ix.dim, e.ix.rowBytes
	members := datasets.Rows[T](rows)
	lean := make([]float32, len(ids)) // d(v, a) - d(v, b): > 0 nearer b
	scale := make([]float32, len(ids))
	nearA, nearB := 0, 0
	for i := range ids {
		v := members[i*dim : (i+1)*dim]
		da, db := e.sp.Dist(v, va), e.sp.Dist(v, vb)
		lean[i], scale[i] = da-db, float32(splitMargin)*min(abs32(da), abs32(db))
		if lean[i] >= -scale[i] {
			nearB++
		}
		if lean[i] <= scale[i] {
			nearA++
		}
	}
	cut := float32(0)
	if nearA < len(ids)/4 || nearB < len(ids)/4 {
		sorted := slices.Clone(lean)
		slices.Sort(sorted)
		cut = sorted[len(sorted)/2]
	}
	for i, id := range ids {
		if i == ha || i == hb {
			continue
		}
		if lean[i] <= cut+scale[i] {
			res.idsA = append(res.idsA, id)
			res.rowsA = append(res.rowsA, rows[i*rb:(i+1)*rb]...)
		}
		if lean[i] >= cut-scale[i] {
			res.idsB = append(res.idsB, id)
			res.rowsB = append(res.rowsB, rows[i*rb:(i+1)*rb]...)
		}
	}
}

// twoMeans bisects the n members by balanced 2-means (as the build's
// balanced k-means does for heads): from two far-apart members (the one
// farthest from the old head, and the one farthest from that), each round
// puts the half that leans most to the second centre on its side, then
// moves the centres to the halves' means. It returns each member's side.
// Plain Lloyd iterations from these starts left an outlier alone on one
// side whenever the old head sat in the middle of a dense posting.
func (e *engineT[T]) twoMeans(va []T, members []T, n int) []bool {
	dim := e.ix.dim
	row := func(i int) []T { return members[i*dim : (i+1)*dim] }
	farthest := func(from []T) int {
		far, farD := 0, float32(-1)
		for i := 0; i < n; i++ {
			if d := e.sp.Dist(row(i), from); d > farD {
				far, farD = i, d
			}
		}
		return far
	}
	p := farthest(va)
	q := farthest(row(p))
	c := [2][]float32{toFloat(row(q)), toFloat(row(p))}
	side := make([]bool, n)
	lean := make([]float32, n)
	sorted := make([]float32, n)
	sums := [2][]float64{make([]float64, dim), make([]float64, dim)}
	for round := 0; round < kmeansRounds; round++ {
		for i := 0; i < n; i++ {
			lean[i] = l2f(c[0], row(i)) - l2f(c[1], row(i)) // > 0: nearer c[1]
		}
		copy(sorted, lean)
		slices.Sort(sorted)
		cut := sorted[n/2]
		changed := false
		counts := [2]int{}
		clear(sums[0])
		clear(sums[1])
		for i := 0; i < n; i++ {
			s := lean[i] >= cut
			changed = changed || s != side[i]
			side[i] = s
			k := 0
			if s {
				k = 1
			}
			counts[k]++
			for j, x := range row(i) {
				sums[k][j] += float64(x)
			}
		}
		if counts[0] == 0 || counts[1] == 0 || (!changed && round > 0) {
			break
		}
		for k := range c {
			for j := range c[k] {
				c[k][j] = float32(sums[k][j] / float64(counts[k]))
			}
		}
	}
	return side
}

// centreMember returns the member on the given side nearest that side's
// mean that is not a head (but self, head a's own id, may be), or -1.
func (e *engineT[T]) centreMember(ids []uint32, members []T, side []bool, which bool, self uint32, isHead func(uint32) bool) int {
	dim := e.ix.dim
	mean := make([]float64, dim)
	count := 0
	for i, s := range side {
		if s == which {
			for j, x := range members[i*dim : (i+1)*dim] {
				mean[j] += float64(x)
			}
			count++
		}
	}
	if count == 0 {
		return -1
	}
	cf := make([]float32, dim)
	for j := range cf {
		cf[j] = float32(mean[j] / float64(count))
	}
	best, bestD := -1, float32(0)
	for i, s := range side {
		if s != which || (ids[i] != self && isHead(ids[i])) || (which && ids[i] == self) {
			continue
		}
		if d := l2f(cf, members[i*dim:(i+1)*dim]); best < 0 || d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

// reassignNear adds to the new head's posting the vectors of its nearest
// heads' postings (other than a's) that are nearer it than their own head.
func (e *engineT[T]) reassignNear(res *splitResult, inB *roaring.Bitmap, a int32, vb []T, read postingReader) error {
	set := e.current()
	dim, rb := e.ix.dim, e.ix.rowBytes
	for _, nb := range set.graph.NewSearcher().Search(vb, splitNeighbours+1, 2*splitNeighbours) {
		if nb.ID == a {
			continue
		}
		ids, rows, err := read(nb.ID)
		if err != nil {
			return err
		}
		vc := set.row(nb.ID, dim)
		members := datasets.Rows[T](rows)
		for i, id := range ids {
			v := members[i*dim : (i+1)*dim]
			if id != res.bID && id != res.aID && !inB.Contains(id) && e.sp.Dist(v, vb) < e.sp.Dist(v, vc) {
				res.idsB = append(res.idsB, id)
				res.rowsB = append(res.rowsB, rows[i*rb:(i+1)*rb]...)
				inB.Add(id)
			}
		}
	}
	return nil
}

// extendHeads returns the current head set with the moves of split
// postings' heads applied and their new heads appended (ids and raw
// rows), the graph extended over them.
func (e *engineT[T]) extendHeads(out *rewrite) (any, error) {
	set := e.current()
	dim := e.ix.dim
	next := &headSet[T]{
		vecs: append(slices.Clone(set.vecs), datasets.Rows[T](out.newRows)...),
		ids:  append(slices.Clone(set.ids), out.newIDs...),
	}
	var moved []int32
	for h, m := range out.moved {
		next.ids[h] = m.id
		copy(next.vecs[int(h)*dim:int(h+1)*dim], datasets.Rows[T](m.row))
		moved = append(moved, h)
	}
	slices.Sort(moved)
	for _, h := range out.removed {
		next.ids[h] = indexfile.RemovedHead
	}
	gone := append(slices.Clone(set.gone), out.removed...)
	slices.Sort(gone)
	p := e.ix.Manifest.Params
	// One thread: the checkpoint's own, at its lower priority (Checkpoint).
	g, err := set.graph.Extend(next.vecs, moved, gone, memindex.Params{BuildList: p.GraphBuildList, Alpha: float32(p.GraphAlpha), Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("spann: checkpoint: add %d heads to the graph: %w", len(out.newIDs), err)
	}
	next.graph = g
	next.index()
	e.adoptions(next)
	return next, nil
}

// writeHeadFiles writes the heads and graph files of head set set (as
// extendHeads returned it) for generation gen, and returns their
// manifest entries.
func (e *engineT[T]) writeHeadFiles(set any, gen int64) ([]indexfile.FileInfo, error) {
	hs := set.(*headSet[T])
	ix := e.ix
	heads := indexfile.FileName(indexfile.HeadsFile, gen)
	if _, err := indexfile.WriteHeads(ix.fs, filepath.Join(ix.dir, heads), &indexfile.Heads{
		BuildID: ix.id, Type: ix.typ, Dim: ix.dim, IDs: hs.ids, Vectors: datasets.Bytes(hs.vecs)}); err != nil {
		return nil, fmt.Errorf("spann: checkpoint: %w", err)
	}
	graph := indexfile.FileName(indexfile.GraphFile, gen)
	if err := writeGraph(ix, hs.graph, filepath.Join(ix.dir, graph)); err != nil {
		return nil, fmt.Errorf("spann: checkpoint: %w", err)
	}
	var infos []indexfile.FileInfo
	for _, name := range []string{heads, graph} {
		info, err := indexfile.Describe(ix.dir, name)
		if err != nil {
			return nil, fmt.Errorf("spann: checkpoint: %w", err)
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// writeGraph writes g, tagged with the index's build id, to path, synced.
func writeGraph[T vec.Elem](ix *Index, g *memindex.Graph[T], path string) error {
	f, err := ix.fs.Create(path)
	if err != nil {
		return err
	}
	if _, err := g.WriteTo(f); err != nil { // (its Tag is the build id: Extend keeps it)
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// toFloat returns v as float32s.
func toFloat[T vec.Elem](v []T) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// l2f is the squared L2 distance between a float centroid and a row.
func l2f[T vec.Elem](c []float32, v []T) float32 {
	var s float32
	for i, x := range v {
		d := c[i] - float32(x)
		s += d * d
	}
	return s
}

// head returns head h's base id and vector (raw bytes).
func (e *engineT[T]) head(h int32) (uint32, []byte) {
	set := e.current()
	return set.ids[h], datasets.Bytes(set.row(h, e.ix.dim))
}

func (e *engineT[T]) rowDist(a, b []byte) float32 {
	return e.sp.Dist(datasets.Rows[T](a), datasets.Rows[T](b))
}

// nearestHead returns the head nearest row that skip does not exclude
// (by the head graph, or by brute force if its candidates are all
// excluded).
func (e *engineT[T]) nearestHead(row []byte, skip func(int32) bool) int32 {
	set := e.current()
	q := datasets.Rows[T](row)
	for _, nb := range set.graph.NewSearcher().Search(q, 16, 32) {
		if !skip(nb.ID) {
			return nb.ID
		}
	}
	best, bestD := int32(-1), float32(0)
	for h := int32(0); int(h) < set.len(); h++ {
		if d := e.sp.Dist(q, set.row(h, e.ix.dim)); !skip(h) && !set.removed(h) && (best < 0 || d < bestD) {
			best, bestD = h, d
		}
	}
	return best
}

// removedHead reports whether head h was removed; entryHead returns the
// graph's entry point (never removed).
func (e *engineT[T]) removedHead(h int32) bool { return e.current().removed(h) }
func (e *engineT[T]) entryHead() int32         { return e.current().graph.Entry() }
