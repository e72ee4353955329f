package memindex

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/gospann/spann/internal/offheap"
)

// adjacency holds a finished graph's out-neighbour lists compactly, for
// search. Each list is sorted by id and stored as unsigned varints: the
// first id, then the gaps between successive ids. Node i's bytes are
// data[start(i):start(i+1)], where start(i) = blocks[i/blockNodes] +
// rel[i] (a 64-bit base per block of nodes and a 32-bit offset inside
// it, so that the table costs about 4 bytes per node at any graph size).
//
// Why: the head graph and the head vectors are most of what a search
// process keeps in memory. On realsift-1M's 160,000 heads (ratio 0.16,
// mean degree 36) fixed 3-byte ids and int offsets took 17.3 + 1.9 MB;
// sorted varint gaps take about 2.1 bytes per id, and sorting also makes
// the gather of neighbour vectors walk memory in ascending order.
type adjacency struct {
	data   []byte
	blocks []uint64 // data offset of the first list of each block
	rel    []uint32 // len n+1: offset of each list (and of the end) inside its block
}

// blockNodes is the number of nodes sharing one 64-bit base offset. A
// block's lists span at most blockNodes·maxDegree·maxVarint bytes (5 MiB),
// which a uint32 holds.
const blockNodes = 256

// varintBound is the most bytes one stored value can take in a graph of n
// nodes: every id and every gap is below n.
func varintBound(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(max(n-1, 0)))
}

// adjacencyBuilder appends the lists of nodes 0, 1, … in order.
type adjacencyBuilder struct {
	a      adjacency
	n      int // nodes the adjacency will hold
	added  int
	sorted []int32
}

// newAdjacencyBuilder prepares for n nodes with edges out-edges in all.
// The data slice is allocated at its upper bound (edges·varintBound(n)) and
// never grown, so that building does not copy it: the unused tail is
// never written and costs address space, not resident memory. The three
// arrays come from arena (the Go heap when it is nil).
func newAdjacencyBuilder(n int, edges int, arena *offheap.Arena) (*adjacencyBuilder, error) {
	data, err := arena.Bytes(edges * varintBound(n))
	if err != nil {
		return nil, err
	}
	blocks, err := offheap.Slice[uint64](arena, n/blockNodes+1)
	if err != nil {
		return nil, err
	}
	rel, err := offheap.Slice[uint32](arena, n+1)
	if err != nil {
		return nil, err
	}
	return &adjacencyBuilder{n: n, a: adjacency{data: data[:0], blocks: blocks[:0], rel: rel[:0]}}, nil
}

// add appends the next node's list (any order; duplicates are kept).
func (b *adjacencyBuilder) add(list []int32) {
	b.mark()
	b.sorted = append(b.sorted[:0], list...)
	slices.Sort(b.sorted)
	prev := int32(0)
	for _, id := range b.sorted {
		b.a.data = binary.AppendUvarint(b.a.data, uint64(id-prev))
		prev = id
	}
	b.added++
}

// mark records where the next list (or, after the last, the end) starts.
func (b *adjacencyBuilder) mark() {
	if b.added%blockNodes == 0 {
		b.a.blocks = append(b.a.blocks, uint64(len(b.a.data)))
	}
	b.a.rel = append(b.a.rel, uint32(uint64(len(b.a.data))-b.a.blocks[b.added/blockNodes]))
}

// finish returns the adjacency once all n lists are added.
func (b *adjacencyBuilder) finish() (adjacency, error) {
	if b.added != b.n {
		return adjacency{}, fmt.Errorf("adjacency: %d of %d lists added", b.added, b.n)
	}
	b.mark()
	return b.a, nil
}

// start returns the data offset of node i's list (i ≤ n).
func (a *adjacency) start(i int32) uint64 {
	return a.blocks[i/blockNodes] + uint64(a.rel[i])
}

// appendList appends node i's out-neighbours, ascending, to dst.
func (a *adjacency) appendList(dst []int32, i int32) []int32 {
	p := a.data[a.start(i):a.start(i+1)]
	id := uint32(0)
	for j := 0; j < len(p); {
		// Most gaps fit in one or two bytes: decode those inline.
		v := uint32(p[j])
		j++
		if v >= 0x80 {
			v &= 0x7f
			for shift := 7; ; shift += 7 {
				c := uint32(p[j])
				j++
				v |= (c & 0x7f) << shift
				if c < 0x80 {
					break
				}
			}
		}
		id += v
		dst = append(dst, int32(id))
	}
	return dst
}

// count returns node i's out-degree.
func (a *adjacency) count(i int32) int {
	n := 0
	for _, c := range a.data[a.start(i):a.start(i+1)] {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// bytes returns the memory the lists and their offsets occupy.
func (a *adjacency) bytes() int {
	return len(a.data) + 8*len(a.blocks) + 4*len(a.rel)
}
