package spann

import (
	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

// headSet is one version of the heads an index routes by: their vectors,
// their base ids and the graph over them. Each is attached to the posting
// directory version it goes with (posting.View.Aux), so that a query's
// heads and postings are always of one version, and a checkpoint that
// splits postings publishes both at once. Never changed once published.
type headSet[T vec.Elem] struct {
	vecs  []T      // row h is head h's vector
	ids   []uint32 // head h's base id
	graph *memindex.Graph[T]
	idset *roaring.Bitmap // ids, for isHead (index)
	gone  []int32         // heads removed (ids[h] == indexfile.RemovedHead), ascending
	// adopt lists, per live head, the removed heads whose vectors are
	// nearest it: a query that probes the head scans their insert buffer
	// lists too, which an insert assigned under the head set before may
	// have filled (the next checkpoint moves them; adoptions).
	adopt map[int32][]int32
	// labels are the index's labels for this version (nil: none).
	labels *labelState
}

// index fills idset and gone.
func (h *headSet[T]) index() {
	h.idset, h.gone = roaring.New(), nil
	for i, id := range h.ids {
		if id == indexfile.RemovedHead {
			h.gone = append(h.gone, int32(i))
		} else {
			h.idset.Add(id)
		}
	}
}

// removed reports whether head i was removed.
func (h *headSet[T]) removed(i int32) bool { return h.ids[i] == indexfile.RemovedHead }

// isHead reports whether base id is a head's.
func (h *headSet[T]) isHead(id uint32) bool { return h.idset.Contains(id) }

func (h *headSet[T]) len() int { return len(h.ids) }

// row returns head h's vector.
func (h *headSet[T]) row(i int32, dim int) []T { return h.vecs[int(i)*dim : int(i+1)*dim] }

// setOf returns the head set attached to v.
func setOf[T vec.Elem](v *posting.View) *headSet[T] { return v.Aux().(*headSet[T]) }

// current returns the head set of the current directory version.
func (e *engineT[T]) current() *headSet[T] { return setOf[T](e.ix.store.Snapshot()) }

func (e *engineT[T]) headIDs() []uint32 { return e.current().ids }

// headsOf returns the base ids of the heads of set (nil: the current
// set) and a function giving their rows (raw bytes).
func (e *engineT[T]) headsOf(set any) ([]uint32, func(h int32) []byte) {
	s := e.current()
	if set != nil {
		s = set.(*headSet[T])
	}
	return s.ids, func(h int32) []byte { return datasets.Bytes(s.row(h, e.ix.dim)) }
}

// labels returns the current labels (nil: none).
func (e *engineT[T]) labels() *labelState { return e.current().labels }

// withLabels returns a copy of the head set set (nil: the current one)
// with labels lab, to publish with a directory.
func (e *engineT[T]) withLabels(set any, lab *labelState) any {
	s := e.current()
	if set != nil {
		s = set.(*headSet[T])
	}
	c := *s
	c.labels = lab
	return &c
}

// adoptions fills set.adopt: each removed head goes to the live head
// nearest its vector (the removed one is out of the graph).
func (e *engineT[T]) adoptions(set *headSet[T]) {
	set.adopt = map[int32][]int32{}
	if len(set.gone) == 0 {
		return
	}
	s := set.graph.NewSearcher()
	for _, r := range set.gone {
		if nb := s.Search(set.row(r, e.ix.dim), 1, 16); len(nb) > 0 {
			set.adopt[nb[0].ID] = append(set.adopt[nb[0].ID], r)
		}
	}
}
