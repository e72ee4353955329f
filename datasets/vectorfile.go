package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// VectorFile is an open .fbin/.u8bin/.i8bin file. Rows are read on demand;
// nothing is cached. ReadRows may be called concurrently.
type VectorFile struct {
	Path string
	Type ElemType
	// N is the number of rows in use (the header's count, or less after Crop).
	N int
	// Dim is the number of elements per row.
	Dim int
	// HeaderN is the row count the file's header declares.
	HeaderN int

	r       io.ReaderAt // the file, or the rows in memory
	c       io.Closer   // nil for rows in memory
	dataOff int64       // offset of row 0 in r: 8 (the header) in a file, 0 in memory
}

// VectorsInMemory presents rows held in memory (n×dim elements of type t,
// row-major little-endian, no header) as a VectorFile, so that what reads
// vector files (a build, ground truth) can read them. data is referenced,
// not copied, and must not change while in use; Path is "(memory)".
func VectorsInMemory(t ElemType, dim int, data []byte) (*VectorFile, error) {
	if t != Float32 && t != Uint8 && t != Int8 {
		return nil, fmt.Errorf("vectors in memory: unknown element type %d", t)
	}
	if dim <= 0 || dim > MaxDim {
		return nil, fmt.Errorf("vectors in memory: dimension %d out of range [1, %d]", dim, MaxDim)
	}
	rb := dim * t.Size()
	if len(data) == 0 || len(data)%rb != 0 {
		return nil, fmt.Errorf("vectors in memory: %d bytes is not a positive whole number of %d-byte rows", len(data), rb)
	}
	n := len(data) / rb
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("vectors in memory: %d rows, more than the %d int32 ids can name", n, math.MaxInt32)
	}
	return &VectorFile{Path: "(memory)", Type: t, N: n, Dim: dim, HeaderN: n, r: bytes.NewReader(data)}, nil
}

// OpenVectors opens a vector file and validates its header against its size.
// A zero t takes the type from the extension.
func OpenVectors(path string, t ElemType) (*VectorFile, error) {
	if t == 0 {
		var err error
		if t, err = TypeFromPath(path); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a directory, not a vector file", path)
	}
	n, dim, err := readHeader(f, path, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	want := 8 + int64(n)*int64(dim)*int64(t.Size())
	if st.Size() != want {
		f.Close()
		what := "truncated"
		if st.Size() > want {
			what = "too long"
		}
		return nil, fmt.Errorf("%s: %s: header says n=%d dim=%d %s, so the file should be %d bytes, but it is %d bytes",
			path, what, n, dim, t, want, st.Size())
	}
	return &VectorFile{Path: path, Type: t, N: int(n), Dim: int(dim), HeaderN: int(n), r: f, c: f, dataOff: 8}, nil
}

// readHeader reads and range-checks the 8-byte (n, dim) header shared by
// vector, ground-truth and result files.
func readHeader(r io.ReaderAt, path string, size int64) (n, dim uint32, err error) {
	if size < 8 {
		return 0, 0, fmt.Errorf("%s: truncated: %d bytes, shorter than the 8-byte header", path, size)
	}
	var h [8]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return 0, 0, fmt.Errorf("%s: reading header: %w", path, err)
	}
	n = binary.LittleEndian.Uint32(h[0:])
	dim = binary.LittleEndian.Uint32(h[4:])
	if n == 0 {
		return 0, 0, fmt.Errorf("%s: header says n=0: the file holds no vectors", path)
	}
	if n > math.MaxInt32 {
		return 0, 0, fmt.Errorf("%s: header says n=%d, more than the %d rows int32 ids can name", path, n, math.MaxInt32)
	}
	if dim == 0 {
		return 0, 0, fmt.Errorf("%s: header says dim=0", path)
	}
	if dim > MaxDim {
		return 0, 0, fmt.Errorf("%s: header says dim=%d, above the supported maximum %d", path, dim, MaxDim)
	}
	return n, dim, nil
}

// RowBytes returns the bytes per row.
func (v *VectorFile) RowBytes() int { return v.Dim * v.Type.Size() }

// Crop restricts the file to its first n rows, as big-ann-benchmarks makes its
// 10M/100M subsets of the 1B files.
func (v *VectorFile) Crop(n int) error {
	if n <= 0 {
		return fmt.Errorf("%s: crop to %d rows: must be positive", v.Path, n)
	}
	if n > v.HeaderN {
		return fmt.Errorf("%s: crop to %d rows: the file has only %d", v.Path, n, v.HeaderN)
	}
	v.N = n
	return nil
}

// Close closes the file.
func (v *VectorFile) Close() error {
	if v.c == nil {
		return nil
	}
	return v.c.Close()
}

// ReadRows reads count rows starting at row start into dst (grown if too
// small) and returns the filled prefix. Float rows are checked for NaN/Inf.
func (v *VectorFile) ReadRows(start, count int, dst []byte) ([]byte, error) {
	if start < 0 || count < 0 || start+count > v.N {
		return nil, fmt.Errorf("%s: rows %d..%d out of range (n=%d)", v.Path, start, start+count, v.N)
	}
	nb := count * v.RowBytes()
	if cap(dst) < nb {
		dst = make([]byte, nb)
	}
	dst = dst[:nb]
	off := v.dataOff + int64(start)*int64(v.RowBytes())
	if _, err := v.r.ReadAt(dst, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: truncated while reading rows %d..%d (was the file changed?)", v.Path, start, start+count)
		}
		return nil, fmt.Errorf("%s: reading rows %d..%d: %w", v.Path, start, start+count, err)
	}
	if err := CheckFinite(v.Type, dst, v.Dim, start); err != nil {
		return nil, fmt.Errorf("%s: %w", v.Path, err)
	}
	return dst, nil
}

// CheckFinite returns an error naming the first row (numbered from firstRow)
// holding a NaN or an infinity; it does nothing for integer types.
func CheckFinite(t ElemType, rows []byte, dim, firstRow int) error {
	if t != Float32 {
		return nil
	}
	vals := Rows[float32](rows)
	for i, x := range vals {
		// x-x is NaN exactly when x is NaN or ±Inf.
		if x-x != 0 {
			return fmt.Errorf("row %d, element %d: %v is not a finite number", firstRow+i/dim, i%dim, x)
		}
	}
	return nil
}

// Stream reads rows [0, N) in order, in blocks of at most blockRows rows, and
// calls fn for each block with the index of its first row. The slice passed to
// fn is reused after fn returns. The next block is read while fn runs, so
// memory use is two blocks. Stream stops at the first error.
func (v *VectorFile) Stream(blockRows int, fn func(start int, rows []byte) error) error {
	return v.StreamRange(0, v.N, blockRows, fn)
}

// StreamRange is Stream over rows [from, to).
func (v *VectorFile) StreamRange(from, to, blockRows int, fn func(start int, rows []byte) error) error {
	if blockRows <= 0 {
		return fmt.Errorf("stream %s: block of %d rows", v.Path, blockRows)
	}
	if from < 0 || to > v.N || from > to {
		return fmt.Errorf("%s: rows %d..%d out of range (n=%d)", v.Path, from, to, v.N)
	}
	type block struct {
		start int
		buf   []byte
		err   error
	}
	free := make(chan []byte, 2)
	free <- make([]byte, 0, blockRows*v.RowBytes())
	free <- make([]byte, 0, blockRows*v.RowBytes())
	full := make(chan block, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(full)
		for s := from; s < to; s += blockRows {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			cnt := min(blockRows, to-s)
			buf, err := v.ReadRows(s, cnt, buf)
			select {
			case full <- block{s, buf, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for b := range full {
		if b.err != nil {
			return b.err
		}
		if err := fn(b.start, b.buf); err != nil {
			return err
		}
		free <- b.buf
	}
	return nil
}

// Matrix is a set of vectors held in memory: N rows of Dim elements of Type,
// stored as raw little-endian bytes (use Rows[T] for a typed view).
type Matrix struct {
	Type ElemType
	N    int
	Dim  int
	Data []byte
}

// Row returns row i's bytes.
func (m *Matrix) Row(i int) []byte {
	rb := m.Dim * m.Type.Size()
	return m.Data[i*rb : (i+1)*rb]
}

// LoadVectors reads a whole vector file (its first crop rows when crop > 0)
// into memory; meant for query files and small bases.
func LoadVectors(path string, t ElemType, crop int) (*Matrix, error) {
	v, err := OpenVectors(path, t)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	if crop > 0 {
		if err := v.Crop(crop); err != nil {
			return nil, err
		}
	}
	data, err := v.ReadRows(0, v.N, alignedBytes(v.N*v.RowBytes()))
	if err != nil {
		return nil, err
	}
	return &Matrix{Type: v.Type, N: v.N, Dim: v.Dim, Data: data}, nil
}

// alignedBytes returns a zeroed byte slice whose start is 8-byte aligned (Go's
// allocator guarantees that for sizes >= 8), suitable for Rows[float32].
func alignedBytes(n int) []byte {
	if n < 8 {
		return make([]byte, n, 8)
	}
	return make([]byte, n)
}
