package spann

import (
	"errors"
	"fmt"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
)

// Element is an element type an index can hold: float32, uint8 or int8.
type Element interface{ float32 | uint8 | int8 }

// Metric is an index's distance (BuildOptions.Metric).
type Metric = vec.Metric

// The metrics. Distances are squared L2, or the negated inner product for
// IP and Cosine (which normalises vectors to unit length first); smaller is
// closer.
const (
	L2     = vec.L2
	IP     = vec.IP
	Cosine = vec.Cosine
)

// ParseMetric parses "l2", "ip" or "cosine".
func ParseMetric(s string) (Metric, error) { return vec.ParseMetric(s) }

// ErrVersion marks an index written in a format this program does not
// read (a newer one, or one from before build ids: rebuild it).
var ErrVersion = indexfile.ErrVersion

// ErrType marks a query whose element type is not the index's.
var ErrType = errors.New("spann: query element type differs from the index's")

// elemType is T's element type in the file formats.
func elemType[T Element]() datasets.ElemType {
	var zero T
	switch any(zero).(type) {
	case float32:
		return datasets.Float32
	case uint8:
		return datasets.Uint8
	default:
		return datasets.Int8
	}
}

// checkElem reports a query of element type T on an index of another.
func (ix *Index) checkElem(t datasets.ElemType) error {
	if t != ix.typ {
		return fmt.Errorf("%w: %s query on a %s index (%s)", ErrType, t, ix.typ, ix.dir)
	}
	return nil
}

// SearchVector is Index.Search with a typed query: it returns the
// (approximately) k nearest indexed vectors of q, nearest first, and
// ErrType when T is not the index's element type (the raw-bytes form
// cannot tell an int8 query from a uint8 one of the same dimension).
func SearchVector[T Element](ix *Index, q []T, k int, p SearchParams) ([]Neighbor, error) {
	if err := ix.checkElem(elemType[T]()); err != nil {
		return nil, err
	}
	return ix.Search(datasets.Bytes(q), k, p)
}

// SearchVectors is Index.SearchBatch with typed queries: qs holds the
// queries row-major, Dim() elements each.
func SearchVectors[T Element](ix *Index, qs []T, k int, p SearchParams, threads int) (*BatchResult, error) {
	if err := ix.checkElem(elemType[T]()); err != nil {
		return nil, err
	}
	if len(qs)%ix.dim != 0 {
		return nil, fmt.Errorf("queries: %d elements is not a whole number of %d-element vectors", len(qs), ix.dim)
	}
	return ix.SearchBatch(datasets.Bytes(qs), k, p, threads)
}
