package datasets

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// GroundTruth holds the k nearest neighbours of each of NQ queries: IDs and
// Dists are row-major NQ×K, each row sorted by ascending distance.
type GroundTruth struct {
	NQ, K int
	IDs   []int32
	Dists []float32
}

// Row returns query q's ids and distances.
func (g *GroundTruth) Row(q int) ([]int32, []float32) {
	return g.IDs[q*g.K : (q+1)*g.K], g.Dists[q*g.K : (q+1)*g.K]
}

// ReadGroundTruth reads a big-ann-benchmarks ground-truth file.
func ReadGroundTruth(path string) (*GroundTruth, error) { return ReadGroundTruthCols(path, 0) }

// ReadGroundTruthCols reads the first cols neighbours of every query of a
// ground-truth file (all of them when cols <= 0 or cols >= the file's k),
// streaming it in blocks, so memory holds only what is kept: an evaluation
// of recall@10 against a 100-column file keeps a tenth of it.
func ReadGroundTruthCols(path string, cols int) (*GroundTruth, error) {
	f, nq, k, err := openSized(path, 8)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if cols <= 0 || cols > k {
		cols = k
	}
	g := &GroundTruth{NQ: nq, K: cols, IDs: make([]int32, nq*cols), Dists: make([]float32, nq*cols)}
	// The file is two nq×k matrices, ids then distances; each is read in
	// blocks of whole rows and cropped to cols.
	rowsPerBlock := max(1, (64<<10)/(4*k)) // small: it is garbage once read
	block := make([]byte, rowsPerBlock*4*k)
	for m, dst := range [][]byte{Bytes(g.IDs), Bytes(g.Dists)} {
		base := 8 + int64(m)*int64(nq)*int64(k)*4
		for q := 0; q < nq; q += rowsPerBlock {
			n := min(rowsPerBlock, nq-q)
			b := block[:n*4*k]
			if _, err := f.ReadAt(b, base+int64(q)*int64(k)*4); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			for r := range n {
				copy(dst[(q+r)*4*cols:(q+r+1)*4*cols], b[r*4*k:r*4*k+4*cols])
			}
		}
	}
	for i, d := range g.Dists {
		// A row may end in padding (id -1 at +Inf: a filtered ground truth
		// where fewer than k vectors match), and only in padding.
		pad := g.IDs[i] == -1 && math.IsInf(float64(d), 1)
		if d-d != 0 && !pad {
			return nil, fmt.Errorf("%s: query %d, rank %d: distance %v is not finite", path, i/cols, i%cols, d)
		}
		if !pad && i%cols > 0 && g.IDs[i-1] == -1 && math.IsInf(float64(g.Dists[i-1]), 1) {
			return nil, fmt.Errorf("%s: query %d, rank %d: id %d after padding (id -1)", path, i/cols, i%cols, g.IDs[i])
		}
	}
	return g, nil
}

// WriteGroundTruth writes g to path atomically.
func WriteGroundTruth(path string, g *GroundTruth) error {
	f, err := createAtomic(path)
	if err != nil {
		return err
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(g.NQ))
	binary.LittleEndian.PutUint32(h[4:], uint32(g.K))
	f.w.Write(h[:])
	f.w.Write(Bytes(g.IDs))
	f.w.Write(Bytes(g.Dists))
	return f.commit(nil)
}

// Results holds the ids a search returned: N rows of K ids (-1 pads a row
// when fewer than K were found).
type Results struct {
	N, K int
	IDs  []int32
}

// Row returns query q's ids.
func (r *Results) Row(q int) []int32 { return r.IDs[q*r.K : (q+1)*r.K] }

// ReadResults reads an .ibin result file.
func ReadResults(path string) (*Results, error) {
	data, n, k, err := readSmallFile(path, 4)
	if err != nil {
		return nil, err
	}
	return &Results{N: n, K: k, IDs: Rows[int32](data[8:])}, nil
}

// WriteResults writes r to path atomically as .ibin.
func WriteResults(path string, r *Results) error {
	f, err := createAtomic(path)
	if err != nil {
		return err
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(r.N))
	binary.LittleEndian.PutUint32(h[4:], uint32(r.K))
	f.w.Write(h[:])
	f.w.Write(Bytes(r.IDs))
	return f.commit(nil)
}

// readSmallFile reads a whole (n, k)-headed file whose body is n*k cells of
// cellBytes each, validating the size. The returned buffer is 8-byte aligned.
func readSmallFile(path string, cellBytes int) ([]byte, int, int, error) {
	f, n, k, err := openSized(path, cellBytes)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	buf := make([]byte, 8+int64(n)*int64(k)*int64(cellBytes))
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return buf, n, k, nil
}

// openSized opens an (n, k)-headed file whose body is n*k cells of
// cellBytes each and checks its size against the header.
func openSized(path string, cellBytes int) (*os.File, int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	n, k, err := readHeader(f, path, st.Size())
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	want := 8 + int64(n)*int64(k)*int64(cellBytes)
	if st.Size() != want {
		f.Close()
		what := "truncated"
		if st.Size() > want {
			what = "too long"
		}
		return nil, 0, 0, fmt.Errorf("%s: %s: header says n=%d k=%d, so the file should be %d bytes, but it is %d bytes",
			path, what, n, k, want, st.Size())
	}
	return f, int(n), int(k), nil
}
