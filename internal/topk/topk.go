// Package topk keeps the k smallest (distance, id) pairs seen, in a bounded
// max-heap ordered by (distance, id): among equal distances the lower id is
// kept, which is how ground-truth files break ties. A Heap is used by one
// goroutine at a time and allocates only when created.
package topk

import "math"

// Heap holds at most K pairs.
type Heap struct {
	k     int
	ids   []int32
	dists []float32
}

// New returns an empty heap for the k smallest pairs.
func New(k int) *Heap {
	return &Heap{k: k, ids: make([]int32, 0, k), dists: make([]float32, 0, k)}
}

// Reset empties the heap and sets a new k, keeping the buffers (they grow if
// k is larger than any before).
func (h *Heap) Reset(k int) {
	h.k = k
	if cap(h.ids) < k {
		h.ids = make([]int32, 0, k)
		h.dists = make([]float32, 0, k)
	}
	h.ids, h.dists = h.ids[:0], h.dists[:0]
}

// Len returns the number of pairs held.
func (h *Heap) Len() int { return len(h.ids) }

// K returns the capacity.
func (h *Heap) K() int { return h.k }

// Worst returns the largest distance held once the heap is full, +Inf before:
// a candidate with a distance not below it cannot enter (except a tie with a
// lower id, which Push handles).
func (h *Heap) Worst() float32 {
	if len(h.ids) < h.k {
		return float32(math.Inf(1))
	}
	return h.dists[0]
}

// above reports whether pair i orders after pair j (max-heap on (dist, id)).
func (h *Heap) above(i, j int) bool {
	if h.dists[i] != h.dists[j] {
		return h.dists[i] > h.dists[j]
	}
	return h.ids[i] > h.ids[j]
}

// Push offers a pair; it enters if the heap is not full or it orders before
// the current worst by (distance, id). It does not check for duplicate ids.
func (h *Heap) Push(id int32, dist float32) {
	if h.k <= 0 {
		return
	}
	if len(h.ids) < h.k {
		h.ids = append(h.ids, id)
		h.dists = append(h.dists, dist)
		h.up(len(h.ids) - 1)
		return
	}
	if dist > h.dists[0] || (dist == h.dists[0] && id >= h.ids[0]) {
		return
	}
	h.ids[0], h.dists[0] = id, dist
	h.down(0)
}

func (h *Heap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.above(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *Heap) down(i int) {
	n := len(h.ids)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h.above(r, l) {
			c = r
		}
		if !h.above(c, i) {
			return
		}
		h.swap(i, c)
		i = c
	}
}

func (h *Heap) swap(i, j int) {
	h.ids[i], h.ids[j] = h.ids[j], h.ids[i]
	h.dists[i], h.dists[j] = h.dists[j], h.dists[i]
}

// Sorted writes the pairs in ascending (distance, id) order into ids and
// dists (which must hold Len() entries; extra entries are set to id -1 and
// distance +Inf) and leaves the heap empty. It does not allocate.
func (h *Heap) Sorted(ids []int32, dists []float32) int {
	n := len(h.ids)
	for i := n - 1; i >= 0; i-- {
		ids[i], dists[i] = h.ids[0], h.dists[0]
		last := len(h.ids) - 1
		h.swap(0, last)
		h.ids, h.dists = h.ids[:last], h.dists[:last]
		h.down(0)
	}
	for i := n; i < len(ids); i++ {
		ids[i] = -1
		if i < len(dists) {
			dists[i] = float32(math.Inf(1))
		}
	}
	return n
}

// Contains reports whether id is held (a linear scan: heaps are small, and
// search calls it only for candidates good enough to enter).
func (h *Heap) Contains(id int32) bool {
	for _, x := range h.ids {
		if x == id {
			return true
		}
	}
	return false
}

// PushUnique pushes the pair unless it would not enter or its id is
// already held. Replicated vectors reach a search through several postings
// with the same distance; this keeps one copy.
func (h *Heap) PushUnique(id int32, dist float32) {
	if len(h.ids) == h.k && (dist > h.dists[0] || (dist == h.dists[0] && id >= h.ids[0])) {
		return
	}
	if h.Contains(id) {
		return
	}
	h.Push(id, dist)
}
