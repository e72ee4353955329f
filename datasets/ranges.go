package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

// RangeResults holds, for each of NQ queries, every base vector found
// within a radius: query q's ids and distances are
// IDs[Offsets[q]:Offsets[q+1]], Dists likewise, by ascending distance.
type RangeResults struct {
	Offsets []int // NQ+1, Offsets[0] = 0
	IDs     []int32
	Dists   []float32
}

// NQ returns the number of queries.
func (r *RangeResults) NQ() int { return len(r.Offsets) - 1 }

// Row returns query q's ids and distances.
func (r *RangeResults) Row(q int) ([]int32, []float32) {
	return r.IDs[r.Offsets[q]:r.Offsets[q+1]], r.Dists[r.Offsets[q]:r.Offsets[q+1]]
}

// ErrRangeFile is wrapped by every error about a malformed range file.
var ErrRangeFile = errors.New("malformed range results")

// WriteRangeResults writes r atomically in big-ann-benchmarks' range
// format (little-endian):
//
//	0      4        int32 nq
//	4      4        int32 total, the results of all queries
//	8      4·nq     int32 counts: query q's number of results
//	...    4·total  int32 ids, query by query
//	...    4·total  float32 distances, matching ids
func WriteRangeResults(path string, r *RangeResults) error {
	if r.NQ() < 0 || len(r.IDs) > math.MaxInt32 || len(r.IDs) != len(r.Dists) || r.Offsets[r.NQ()] != len(r.IDs) {
		return fmt.Errorf("writing %s: inconsistent range results", path)
	}
	f, err := createAtomic(path)
	if err != nil {
		return err
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(r.NQ()))
	binary.LittleEndian.PutUint32(h[4:], uint32(len(r.IDs)))
	f.w.Write(h[:])
	counts := make([]int32, r.NQ())
	for q := range counts {
		counts[q] = int32(r.Offsets[q+1] - r.Offsets[q])
	}
	f.w.Write(Bytes(counts))
	f.w.Write(Bytes(r.IDs))
	f.w.Write(Bytes(r.Dists))
	return f.commit(nil)
}

// ReadRangeResults reads a range results file, checking its size against
// its header and counts, and every distance.
func ReadRangeResults(path string) (*RangeResults, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := parseRangeResults(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func parseRangeResults(data []byte) (*RangeResults, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the 8-byte header", ErrRangeFile, len(data))
	}
	nq, total := int64(int32(binary.LittleEndian.Uint32(data))), int64(int32(binary.LittleEndian.Uint32(data[4:])))
	if nq < 0 || total < 0 || 8+4*nq+8*total != int64(len(data)) {
		return nil, fmt.Errorf("%w: header says %d queries and %d results, which take %d bytes; the file has %d",
			ErrRangeFile, nq, total, 8+4*nq+8*total, len(data))
	}
	r := &RangeResults{Offsets: make([]int, nq+1), IDs: make([]int32, total), Dists: make([]float32, total)}
	body := data[8:]
	for q := int64(0); q < nq; q++ {
		c := int64(int32(binary.LittleEndian.Uint32(body[4*q:])))
		if c < 0 || int64(r.Offsets[q])+c > total {
			return nil, fmt.Errorf("%w: query %d: %d results, beyond the %d in all", ErrRangeFile, q, c, total)
		}
		r.Offsets[q+1] = r.Offsets[q] + int(c)
	}
	if int64(r.Offsets[nq]) != total {
		return nil, fmt.Errorf("%w: counts add up to %d, the header says %d", ErrRangeFile, r.Offsets[nq], total)
	}
	ids, dists := body[4*nq:], body[4*nq+4*total:]
	for i := range r.IDs {
		r.IDs[i] = int32(binary.LittleEndian.Uint32(ids[4*i:]))
		r.Dists[i] = math.Float32frombits(binary.LittleEndian.Uint32(dists[4*i:]))
		if r.IDs[i] < 0 {
			return nil, fmt.Errorf("%w: result %d: id %d", ErrRangeFile, i, r.IDs[i])
		}
		if d := r.Dists[i]; d-d != 0 {
			return nil, fmt.Errorf("%w: result %d: distance %v is not finite", ErrRangeFile, i, d)
		}
	}
	return r, nil
}
