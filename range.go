package spann

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/memindex"
)

// SearchRange returns every indexed vector within radius of query
// (distance ≤ radius in the metric's own terms: squared for L2), nearest
// first. It reads the postings of the p.NProbe nearest heads and of every
// head within radius·(1+p.RangeSlack) of the query (the head search
// widening until it finds none more), at most p.MaxPostings heads if set
// (counting heads whose postings are empty); Eps and FirstRound do not
// apply. p.Filter applies as in Search.
func (ix *Index) SearchRange(ctx context.Context, query []byte, radius float32, p SearchParams) ([]Neighbor, SearchStats, error) {
	res, err := ix.SearchRangeBatch(ctx, query, radius, p, 1)
	if err != nil {
		return nil, SearchStats{}, err
	}
	return res.Row(0), res.Stats, nil
}

// CheckRadius reports whether radius is one SearchRange takes on this
// index: finite, and not negative under L2 (see vec.CheckRadius).
func (ix *Index) CheckRadius(radius float32) error {
	return vec.CheckRadius(ix.metric, float64(radius))
}

// RangeBatchResult holds SearchRangeBatch's answers: query q's are
// Neighbors[Offsets[q]:Offsets[q+1]], nearest first.
type RangeBatchResult struct {
	Offsets   []int
	Neighbors []Neighbor
	Latency   []time.Duration
	Query     []SearchStats
	Stats     SearchStats // summed over queries
	Wall      time.Duration
}

// Row returns query q's answer.
func (r *RangeBatchResult) Row(q int) []Neighbor { return r.Neighbors[r.Offsets[q]:r.Offsets[q+1]] }

// SearchRangeBatch is SearchRange for every query of queries (packed
// rows), with threads workers (0 = GOMAXPROCS) each keeping p.InFlight
// queries in flight.
func (ix *Index) SearchRangeBatch(ctx context.Context, queries []byte, radius float32, p SearchParams, threads int) (*RangeBatchResult, error) {
	if err := ix.CheckRadius(radius); err != nil {
		return nil, err
	}
	if len(queries)%ix.rowBytes != 0 || len(queries) == 0 {
		return nil, fmt.Errorf("queries: %d bytes is not a positive whole number of %d-byte vectors", len(queries), ix.rowBytes)
	}
	if err := ix.checkParams(1, &p); err != nil {
		return nil, err
	}
	if ix.typ == datasets.Float32 {
		if err := datasets.CheckFinite(ix.typ, queries, ix.dim, 0); err != nil {
			return nil, fmt.Errorf("queries: %w", err)
		}
	}
	p.ranged, p.radius = true, radius
	nq := len(queries) / ix.rowBytes
	rows := make([][]Neighbor, nq)
	res := &RangeBatchResult{Offsets: make([]int, nq+1), Latency: make([]time.Duration, nq), Query: make([]SearchStats, nq)}
	emit := func(q int, out []Neighbor, st *SearchStats, lat time.Duration) {
		rows[q], res.Latency[q], res.Query[q] = slices.Clone(out), lat, *st
	}
	var err error
	if res.Wall, err = ix.onWorkers(ctx, queries, threads, 1, p, nil, emit); err != nil {
		return nil, err
	}
	for q, r := range rows {
		res.Neighbors = append(res.Neighbors, r...)
		res.Offsets[q+1] = len(res.Neighbors)
		res.Stats.Add(res.Query[q])
	}
	return res, nil
}

// rangeHeads chooses a range query's postings (see SearchRange): the head
// search widens, doubling its list, while its farthest head is still
// within the bound; the NProbe nearest heads and every head within the
// bound are read. Head vectors within the radius are answers themselves.
func (w *workerT[T]) rangeHeads(s *querySlot[T], set *headSet[T], p *SearchParams) []memindex.Neighbor {
	bound := p.radius + float32(p.RangeSlack)*abs32(p.radius) // (radius·(1+slack) for l2)
	limit := len(set.ids)
	if p.MaxPostings > 0 {
		limit = min(limit, p.MaxPostings)
	}
	nprobe := p.NProbe
	var heads []memindex.Neighbor
	for {
		heads = w.hs.Search(s.q, nprobe, max(p.HeadList, nprobe+max(8, nprobe/2)))
		if len(heads) < nprobe || heads[len(heads)-1].Dist > bound || nprobe >= limit {
			break
		}
		nprobe = min(2*nprobe, limit)
	}
	n := 0
	for n < len(heads) && n < limit && (n < p.NProbe || heads[n].Dist <= bound) {
		n++
	}
	heads = heads[:n]
	for _, h := range heads {
		if h.Dist > p.radius {
			continue
		}
		if id := set.ids[h.ID]; (s.dead == nil || !s.dead.Contains(id)) && (s.allow == nil || s.allow.Contains(id)) {
			s.found = append(s.found, Neighbor{ID: int32(id), Dist: h.Dist})
		}
	}
	return heads
}

// finishRange appends the slot's range answer to dst: every vector found
// within the radius once (replicas are found several times), by
// (distance, id).
func (w *workerT[T]) finishRange(s *querySlot[T], dst []Neighbor) []Neighbor {
	// Deduplicate by id first (keeping the least distance, should two
	// replicas' distances differ in the last bit), then order.
	slices.SortFunc(s.found, func(a, b Neighbor) int {
		if a.ID != b.ID {
			return int(a.ID - b.ID)
		}
		return cmpDist(a.Dist, b.Dist)
	})
	start := len(dst)
	for i, n := range s.found {
		if i == 0 || n.ID != s.found[i-1].ID {
			dst = append(dst, n)
		}
	}
	slices.SortFunc(dst[start:], func(a, b Neighbor) int {
		if c := cmpDist(a.Dist, b.Dist); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	// Its own scratch: growing w.ids here would leave w.hdists behind,
	// which finish sizes together with it.
	ids := w.rangeIDs[:0]
	for _, n := range dst[start:] {
		ids = append(ids, n.ID)
	}
	w.e.ix.externals(ids) // the ids users gave (ids.go)
	for i := range ids {
		dst[start+i].ID = ids[i]
	}
	w.rangeIDs = ids
	s.found = s.found[:0]
	return dst
}

func cmpDist(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
