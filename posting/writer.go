package posting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// Writer streams postings, in head order, into a postings file. It writes
// the one-page file header when created, then one extent per Add, packed:
// an extent starts where the previous one ended unless that would make it
// touch more pages than its size needs (minPages), in which case zero
// padding first takes the file to the next page boundary. Finish pads the
// file to a whole number of pages, so the aligned read of the last posting
// is never short. Nothing is back-patched, so any io.Writer works (the
// caller owns and closes the file, and may wrap it in a bufio.Writer).
// Per-posting facts (offset, size, count) live only in the Entry values Add
// returns, which the caller keeps and stores with WriteDirectory.
//
// A Writer is not safe for concurrent use. After an error every later call
// returns that error.
type Writer struct {
	w        io.Writer
	rowBytes int
	codec    Codec
	off      uint64 // bytes written so far: the end of the last extent
	n        int    // postings written
	err      error
	finished bool

	enc   rowEncoder
	perm  []int32
	ids   []uint32
	rows  []byte
	buf   []byte
	zeros [PageSize]byte
}

// NewWriter writes the file header to w and returns a Writer for postings
// of rowBytes-byte vectors stored with codec. CodecHuffShared needs table,
// the file's shared code (TrainTable), which goes into the header; the
// other codecs take nil. id, the index's build id, goes into the header too.
func NewWriter(w io.Writer, rowBytes int, codec Codec, table *Table, id [16]byte) (*Writer, error) {
	pw, err := newWriter(w, rowBytes, codec, table)
	if err != nil {
		return nil, err
	}
	hdr := encodeFileHeader(FileHeader{Version: fileVersion, Codec: codec, RowBytes: uint32(rowBytes), Table: table, BuildID: id})
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("posting writer: file header: %w", err)
	}
	pw.off = PageSize
	return pw, nil
}

// ResumeWriter continues a postings file whose writing was interrupted (a
// resumed build): w appends at off, the end of the file's first n postings
// (the Offset+Bytes of the n-th Entry that Add returned), the file having
// been cut back to exactly that. The header is not written again; rowBytes,
// codec and table must be the ones it was written with. The postings that
// follow are byte for byte those an uninterrupted Writer would write.
func ResumeWriter(w io.Writer, rowBytes int, codec Codec, table *Table, off uint64, n int) (*Writer, error) {
	if off < PageSize || n < 0 {
		return nil, fmt.Errorf("posting writer: resume at byte %d after %d postings: not past the header", off, n)
	}
	pw, err := newWriter(w, rowBytes, codec, table)
	if err != nil {
		return nil, err
	}
	pw.off, pw.n = off, n
	return pw, nil
}

func newWriter(w io.Writer, rowBytes int, codec Codec, table *Table) (*Writer, error) {
	if rowBytes <= 0 || rowBytes > MaxRowsBytes {
		return nil, fmt.Errorf("posting writer: rowBytes %d out of range", rowBytes)
	}
	if !codec.valid() {
		return nil, fmt.Errorf("posting writer: unknown codec %d", codec)
	}
	if (codec == CodecHuffShared) != (table != nil) {
		return nil, fmt.Errorf("posting writer: codec %s takes a shared table exactly when it is %s", codec, CodecHuffShared)
	}
	pw := &Writer{w: w, rowBytes: rowBytes, codec: codec}
	pw.enc.table = table
	return pw, nil
}

// setZstdLevel selects the zstd level for the zstd codecs (measurements
// only; must be called before the first Add).
func (pw *Writer) setZstdLevel(l zstd.EncoderLevel) { pw.enc.zstdLevel = l }

// Add writes one posting: ids[i] is the id of the vector in
// rows[i*rowBytes:(i+1)*rowBytes]. The posting is stored sorted by id (the
// rows move with their ids), so Decode returns it in ascending id order.
// Duplicate ids are an error. The inputs are not modified or retained.
func (pw *Writer) Add(ids []uint32, rows []byte) (Entry, error) {
	if pw.err != nil {
		return Entry{}, pw.err
	}
	if pw.finished {
		return Entry{}, errors.New("posting writer: Add after Finish")
	}
	e, err := pw.add(ids, rows)
	if err != nil {
		// Bad input leaves the file untouched; only write errors are sticky.
		var we writeError
		if errors.As(err, &we) {
			pw.err = err
		}
		return Entry{}, fmt.Errorf("posting %d: %w", pw.n, err)
	}
	pw.n++
	return e, nil
}

type writeError struct{ err error }

func (e writeError) Error() string { return "write: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

func (pw *Writer) add(ids []uint32, rows []byte) (Entry, error) {
	count := len(ids)
	if uint64(len(rows)) != uint64(count)*uint64(pw.rowBytes) {
		return Entry{}, fmt.Errorf("%d row bytes for %d ids of %d bytes", len(rows), count, pw.rowBytes)
	}
	if len(rows) > MaxRowsBytes {
		return Entry{}, fmt.Errorf("%d row bytes exceed the limit of %d", len(rows), MaxRowsBytes)
	}
	sortedIDs, sortedRows, err := pw.sortByID(ids, rows)
	if err != nil {
		return Entry{}, err
	}

	b := pw.buf[:0]
	b = append(b, extentMagic...)
	b = append(b, byte(pw.codec), idEncDeltaVarint, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(count))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rows)))
	b = append(b, make([]byte, 8)...) // idsLen, rowsLen: patched below
	prev := uint32(0)
	for i, id := range sortedIDs {
		if i == 0 {
			b = binary.AppendUvarint(b, uint64(id))
		} else {
			b = binary.AppendUvarint(b, uint64(id-prev))
		}
		prev = id
	}
	idsLen := len(b) - ExtentHeaderSize
	b, err = pw.enc.encode(b, pw.codec, sortedRows, count, pw.rowBytes)
	if err != nil {
		return Entry{}, err
	}
	rowsLen := len(b) - ExtentHeaderSize - idsLen
	binary.LittleEndian.PutUint32(b[16:], uint32(idsLen))
	binary.LittleEndian.PutUint32(b[20:], uint32(rowsLen))
	b = binary.LittleEndian.AppendUint32(b, crc32c(b))
	if len(b) > 1<<31 {
		return Entry{}, fmt.Errorf("extent of %d bytes is too large", len(b))
	}
	pw.buf = b

	e := Entry{Offset: pw.off, Bytes: uint32(len(b)), Count: uint32(count)}
	if e.Pages() > minPages(e.Bytes) {
		// Packed here the extent would straddle one page boundary more
		// than it must, costing every query that probes it an extra page.
		if err := pw.padToPage(); err != nil {
			return Entry{}, err
		}
		e.Offset = pw.off
	}
	if _, err := pw.w.Write(b); err != nil {
		return Entry{}, writeError{err}
	}
	pw.off += uint64(len(b))
	return e, nil
}

// padToPage writes zeros up to the next page boundary (nothing if the file
// already ends on one).
func (pw *Writer) padToPage() error {
	pad := (PageSize - pw.off%PageSize) % PageSize
	if pad == 0 {
		return nil
	}
	if _, err := pw.w.Write(pw.zeros[:pad]); err != nil {
		return writeError{err}
	}
	pw.off += pad
	return nil
}

// sortByID returns ids ascending with rows permuted to match, in the
// Writer's scratch (or the inputs themselves when already sorted).
func (pw *Writer) sortByID(ids []uint32, rows []byte) ([]uint32, []byte, error) {
	sorted := true
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			sorted = false
			break
		}
	}
	if sorted {
		return ids, rows, nil
	}
	pw.perm = pw.perm[:0]
	for i := range ids {
		pw.perm = append(pw.perm, int32(i))
	}
	slices.SortFunc(pw.perm, func(a, b int32) int {
		switch {
		case ids[a] < ids[b]:
			return -1
		case ids[a] > ids[b]:
			return 1
		}
		return 0
	})
	pw.ids = pw.ids[:0]
	pw.rows = pw.rows[:0]
	rb := pw.rowBytes
	for k, p := range pw.perm {
		if k > 0 && ids[p] == pw.ids[k-1] {
			return nil, nil, fmt.Errorf("duplicate id %d", ids[p])
		}
		pw.ids = append(pw.ids, ids[p])
		pw.rows = append(pw.rows, rows[int(p)*rb:(int(p)+1)*rb]...)
	}
	return pw.ids, pw.rows, nil
}

// Offset returns the number of bytes written so far: where the next extent
// starts if it fits the rest of the current page (or the next boundary
// otherwise). After Finish it is the file's length.
func (pw *Writer) Offset() uint64 { return pw.off }

// Finish ends the file: it pads it with zeros to a whole number of pages
// (so an O_DIRECT read of the last posting's pages is not cut short at end
// of file), reports any earlier write error and rejects further Adds.
// Calling it again does nothing more.
func (pw *Writer) Finish() error {
	if pw.err != nil || pw.finished {
		return pw.err
	}
	pw.finished = true
	if err := pw.padToPage(); err != nil {
		pw.err = fmt.Errorf("posting writer: finish: %w", err)
	}
	return pw.err
}
