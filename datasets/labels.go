package datasets

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
)

// Labels holds a set of integer labels for each row of a vector file (or,
// as a query filter, the labels every result must carry), in compressed
// sparse row form: row i's labels are Indices[Indptr[i]:Indptr[i+1]],
// ascending and without repeats, each in 0..Vocab-1.
type Labels struct {
	Vocab   int     // labels are 0..Vocab-1 (the .spmat's column count)
	Indptr  []int64 // Rows()+1 offsets into Indices, Indptr[0] = 0
	Indices []int32
}

// Rows returns the number of rows.
func (l *Labels) Rows() int { return len(l.Indptr) - 1 }

// Row returns row i's labels (ascending; the slice aliases l).
func (l *Labels) Row(i int) []int32 { return l.Indices[l.Indptr[i]:l.Indptr[i+1]] }

// NewLabels builds Labels from one label list per row; each list is sorted
// and its repeats dropped. vocab 0 means one more than the largest label.
func NewLabels(rows [][]int32, vocab int) (*Labels, error) {
	l := &Labels{Indptr: make([]int64, 1, len(rows)+1)}
	largest := int32(-1)
	for i, r := range rows {
		start := len(l.Indices)
		l.Indices = append(l.Indices, r...)
		row := l.Indices[start:]
		slices.Sort(row)
		row = slices.Compact(row)
		l.Indices = l.Indices[:start+len(row)]
		if len(row) > 0 {
			if row[0] < 0 {
				return nil, fmt.Errorf("labels: row %d has label %d: labels are not negative", i, row[0])
			}
			largest = max(largest, row[len(row)-1])
		}
		l.Indptr = append(l.Indptr, int64(len(l.Indices)))
	}
	l.Vocab = vocab
	if vocab == 0 {
		l.Vocab = int(largest) + 1
	} else if int(largest) >= vocab {
		return nil, fmt.Errorf("labels: label %d is out of range: the vocabulary has %d labels (0..%d)", largest, vocab, vocab-1)
	}
	return l, nil
}

// MaxLabels bounds a labels file's vocabulary (labels are 0..MaxLabels-1):
// per-label structures are sized by it, so a few bytes of hostile header
// must not ask for billions (YFCC-10M has about 200,000 labels).
const MaxLabels = 1 << 22

// spmatHeader is the size of a .spmat file's header: int64 nrow, ncol, nnz.
const spmatHeader = 24

// ReadLabels reads a labels file: big-ann-benchmarks' sparse-matrix format
// if the name ends in .spmat, otherwise the text format (one line per row,
// its labels as decimal integers separated by spaces or tabs; an empty
// line is a row without labels). Rows are sorted and their repeats
// dropped; anything malformed is an error naming the file and the place.
//
// The .spmat layout (little-endian; the format of YFCC-10M's metadata and
// query filters):
//
//	0          8          int64 nrow
//	8          8          int64 ncol (the vocabulary: labels are 0..ncol-1)
//	16         8          int64 nnz (labels in all)
//	24         8(nrow+1)  int64 indptr: row i's labels are indices[indptr[i]:indptr[i+1]]
//	...        4·nnz      int32 indices
//	...        4·nnz      float32 data (the values; ignored on read, 1 when written)
//
// The file must be exactly that long.
func ReadLabels(path string) (*Labels, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var l *Labels
	if strings.EqualFold(filepath.Ext(path), ".spmat") {
		st, serr := f.Stat()
		if serr != nil {
			return nil, serr
		}
		l, err = readSpmat(bufio.NewReaderSize(f, 1<<20), st.Size())
	} else {
		l, err = readLabelsText(bufio.NewReaderSize(f, 1<<20))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// ErrLabels is wrapped by every error about a malformed labels file.
var ErrLabels = errors.New("malformed labels")

func readSpmat(r io.Reader, size int64) (*Labels, error) {
	var hdr [spmatHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte .spmat header", ErrLabels, size, spmatHeader)
	}
	nrow := int64(binary.LittleEndian.Uint64(hdr[0:]))
	ncol := int64(binary.LittleEndian.Uint64(hdr[8:]))
	nnz := int64(binary.LittleEndian.Uint64(hdr[16:]))
	if nrow < 0 || ncol < 0 || ncol > MaxLabels || nnz < 0 || nrow > size/8 || nnz > size/8 {
		return nil, fmt.Errorf("%w: header says %d rows, %d columns, %d entries in a file of %d bytes", ErrLabels, nrow, ncol, nnz, size)
	}
	if want := spmatHeader + 8*(nrow+1) + 8*nnz; want != size {
		return nil, fmt.Errorf("%w: %d rows and %d entries take %d bytes, the file has %d", ErrLabels, nrow, nnz, want, size)
	}
	l := &Labels{Vocab: int(ncol), Indptr: make([]int64, nrow+1), Indices: make([]int32, nnz)}
	if err := binary.Read(r, binary.LittleEndian, l.Indptr); err != nil {
		return nil, fmt.Errorf("%w: reading indptr: %v", ErrLabels, err)
	}
	if err := binary.Read(r, binary.LittleEndian, l.Indices); err != nil {
		return nil, fmt.Errorf("%w: reading indices: %v", ErrLabels, err)
	}
	if l.Indptr[0] != 0 || l.Indptr[nrow] != nnz {
		return nil, fmt.Errorf("%w: indptr runs from %d to %d, want 0 to nnz %d", ErrLabels, l.Indptr[0], l.Indptr[nrow], nnz)
	}
	for i := int64(0); i < nrow; i++ {
		if l.Indptr[i+1] < l.Indptr[i] {
			return nil, fmt.Errorf("%w: indptr decreases at row %d (%d after %d)", ErrLabels, i, l.Indptr[i+1], l.Indptr[i])
		}
	}
	for i, x := range l.Indices {
		if x < 0 || int64(x) >= ncol {
			row, _ := slices.BinarySearch(l.Indptr, int64(i)+1)
			return nil, fmt.Errorf("%w: row %d has label %d, out of range 0..%d", ErrLabels, row-1, x, ncol-1)
		}
	}
	l.normalise()
	return l, nil
}

// normalise sorts each row and drops repeats, compacting Indices.
func (l *Labels) normalise() {
	out := int64(0)
	for i := 0; i < l.Rows(); i++ {
		row := l.Indices[l.Indptr[i]:l.Indptr[i+1]]
		slices.Sort(row)
		row = slices.Compact(row)
		l.Indptr[i] = out
		out += int64(copy(l.Indices[out:], row))
	}
	l.Indptr[l.Rows()] = out
	l.Indices = l.Indices[:out]
}

func readLabelsText(r *bufio.Reader) (*Labels, error) {
	l := &Labels{Indptr: []int64{0}}
	largest := int64(-1)
	for line := 1; ; line++ {
		text, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrLabels, line, r.Size())
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		if len(text) == 0 && err == io.EOF {
			break
		}
		for _, field := range bytes.Fields(text) {
			x, perr := strconv.ParseInt(string(field), 10, 32)
			if perr != nil || x < 0 || x >= MaxLabels {
				return nil, fmt.Errorf("%w: line %d: %q is not a label (an integer 0..%d)", ErrLabels, line, field, MaxLabels-1)
			}
			largest = max(largest, x)
			l.Indices = append(l.Indices, int32(x))
		}
		l.Indptr = append(l.Indptr, int64(len(l.Indices)))
		if err == io.EOF {
			break
		}
	}
	l.Vocab = int(largest + 1)
	l.normalise()
	return l, nil
}

// WriteLabels writes l as .spmat if path ends in .spmat, else as text.
func WriteLabels(path string, l *Labels) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if strings.EqualFold(filepath.Ext(path), ".spmat") {
		err = writeSpmat(w, l)
	} else {
		err = writeLabelsText(w, l)
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func writeSpmat(w io.Writer, l *Labels) error {
	hdr := []int64{int64(l.Rows()), int64(l.Vocab), int64(len(l.Indices))}
	if err := binary.Write(w, binary.LittleEndian, hdr); err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, l.Indptr); err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, l.Indices); err != nil {
		return err
	}
	ones := make([]float32, min(len(l.Indices), 1<<16))
	for i := range ones {
		ones[i] = 1
	}
	for left := len(l.Indices); left > 0; left -= len(ones) {
		if err := binary.Write(w, binary.LittleEndian, ones[:min(left, len(ones))]); err != nil {
			return err
		}
	}
	return nil
}

func writeLabelsText(w *bufio.Writer, l *Labels) error {
	var buf []byte
	for i := 0; i < l.Rows(); i++ {
		buf = buf[:0]
		for j, x := range l.Row(i) {
			if j > 0 {
				buf = append(buf, ' ')
			}
			buf = strconv.AppendInt(buf, int64(x), 10)
		}
		buf = append(buf, '\n')
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// Bitmaps returns, for each label, the bitmap of the rows carrying it.
func (l *Labels) Bitmaps() []*roaring.Bitmap {
	bms := make([]*roaring.Bitmap, l.Vocab)
	for x := range bms {
		bms[x] = roaring.New()
	}
	for i := 0; i < l.Rows(); i++ { // rows in increasing order: roaring appends
		for _, x := range l.Row(i) {
			bms[x].Add(uint32(i))
		}
	}
	for _, bm := range bms {
		bm.RunOptimize()
	}
	return bms
}

// Matching returns the rows carrying every label of filter (the AND of
// their bitmaps, from Bitmaps). A filter with no label, or naming a label
// outside bitmaps, is an error: big-ann-benchmarks' filters are non-empty
// conjunctions, and an empty one would silently match everything.
func Matching(bitmaps []*roaring.Bitmap, filter []int32) (*roaring.Bitmap, error) {
	if len(filter) == 0 {
		return nil, errors.New("the filter names no label")
	}
	sets := make([]*roaring.Bitmap, len(filter))
	for i, x := range filter {
		if x < 0 || int(x) >= len(bitmaps) {
			return nil, fmt.Errorf("the filter names label %d, but the labels are 0..%d", x, len(bitmaps)-1)
		}
		sets[i] = bitmaps[x]
	}
	if len(sets) == 1 {
		return sets[0].Clone(), nil
	}
	return roaring.FastAnd(sets...), nil
}
