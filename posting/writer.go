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
	off      uint64 // bytes written so far: the end of the last extent
	n        int    // postings written
	err      error
	finished bool
	enc      *Encoder
	zeros    [PageSize]byte
}

// Encoder turns postings into extents (the bytes Writer writes) without
// placing them: an updated index writes them wherever it has room, with
// Place deciding where in that room each may start. Not safe for
// concurrent use.
type Encoder struct {
	rowBytes int
	codec    Codec
	enc      rowEncoder
	perm     []int32
	ids      []uint32
	rows     []byte
	buf      []byte
}

// NewEncoder returns an Encoder of rowBytes-byte vectors with codec;
// CodecHuffShared needs the file's table (trained, or parsed from its
// header), the other codecs nil.
func NewEncoder(rowBytes int, codec Codec, table *Table) (*Encoder, error) {
	if rowBytes <= 0 || rowBytes > MaxRowsBytes {
		return nil, fmt.Errorf("posting writer: rowBytes %d out of range", rowBytes)
	}
	if !codec.valid() {
		return nil, fmt.Errorf("posting writer: unknown codec %d", codec)
	}
	if (codec == CodecHuffShared) != (table != nil) {
		return nil, fmt.Errorf("posting writer: codec %s takes a shared table exactly when it is %s", codec, CodecHuffShared)
	}
	e := &Encoder{rowBytes: rowBytes, codec: codec}
	e.enc.table = table
	return e, nil
}

// Place returns where an extent of n bytes may start at or after off: off
// itself if the extent would touch no more pages there than its size
// needs, else the next page boundary (the Writer's packing rule).
func Place(off uint64, n uint32) uint64 {
	if (Entry{Offset: off, Bytes: n}).Pages() > minPages(n) {
		return (off + PageSize - 1) &^ (PageSize - 1)
	}
	return off
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
	enc, err := NewEncoder(rowBytes, codec, table)
	if err != nil {
		return nil, err
	}
	return &Writer{w: w, enc: enc}, nil
}

// setZstdLevel selects the zstd level for the zstd codecs (measurements
// only; must be called before the first Add).
func (pw *Writer) setZstdLevel(l zstd.EncoderLevel) { pw.enc.enc.zstdLevel = l }

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
	b, err := pw.enc.Encode(ids, rows)
	if err != nil {
		return Entry{}, err
	}
	return pw.place(b, len(ids))
}

// AddExtent writes one posting already encoded (an Encoder's Encode of
// count vectors, with this file's codec and table), placed by the same
// packing rule as Add: a build that encodes postings in parallel and
// writes them here in head order makes the file Add would. The extent is
// not checked beyond its length; it is not retained.
func (pw *Writer) AddExtent(extent []byte, count int) (Entry, error) {
	if pw.err != nil {
		return Entry{}, pw.err
	}
	if pw.finished {
		return Entry{}, errors.New("posting writer: AddExtent after Finish")
	}
	if len(extent) < ExtentHeaderSize+4 || len(extent) > 1<<31 || count < 0 {
		return Entry{}, fmt.Errorf("posting %d: an extent of %d bytes for %d vectors is not one", pw.n, len(extent), count)
	}
	e, err := pw.place(extent, count)
	if err != nil {
		pw.err = fmt.Errorf("posting %d: %w", pw.n, err)
		return Entry{}, pw.err
	}
	pw.n++
	return e, nil
}

// place writes extent b of count vectors at the next place the packing
// rule allows.
func (pw *Writer) place(b []byte, count int) (Entry, error) {
	e := Entry{Offset: Place(pw.off, uint32(len(b))), Bytes: uint32(len(b)), Count: uint32(count)}
	if e.Offset != pw.off {
		// Packed here the extent would straddle one page boundary more
		// than it must, costing every query that probes it an extra page.
		if err := pw.padToPage(); err != nil {
			return Entry{}, err
		}
	}
	if _, err := pw.w.Write(b); err != nil {
		return Entry{}, writeError{err}
	}
	pw.off += uint64(len(b))
	return e, nil
}

// Encode returns the extent of one posting (ids[i] the id of the vector
// in rows[i*rowBytes:(i+1)*rowBytes], stored sorted by id; duplicate ids
// are an error). The bytes are the Encoder's scratch, valid until its
// next call; the inputs are not modified or retained.
func (pe *Encoder) Encode(ids []uint32, rows []byte) ([]byte, error) {
	count := len(ids)
	if uint64(len(rows)) != uint64(count)*uint64(pe.rowBytes) {
		return nil, fmt.Errorf("%d row bytes for %d ids of %d bytes", len(rows), count, pe.rowBytes)
	}
	if len(rows) > MaxRowsBytes {
		return nil, fmt.Errorf("%d row bytes exceed the limit of %d", len(rows), MaxRowsBytes)
	}
	sortedIDs, sortedRows, err := pe.sortByID(ids, rows)
	if err != nil {
		return nil, err
	}

	b := pe.buf[:0]
	b = append(b, extentMagic...)
	b = append(b, byte(pe.codec), idEncDeltaVarint, 0, 0)
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
	b, err = pe.enc.encode(b, pe.codec, sortedRows, count, pe.rowBytes)
	if err != nil {
		return nil, err
	}
	rowsLen := len(b) - ExtentHeaderSize - idsLen
	binary.LittleEndian.PutUint32(b[16:], uint32(idsLen))
	binary.LittleEndian.PutUint32(b[20:], uint32(rowsLen))
	b = binary.LittleEndian.AppendUint32(b, crc32c(b))
	if len(b) > 1<<31 {
		return nil, fmt.Errorf("extent of %d bytes is too large", len(b))
	}
	pe.buf = b
	return b, nil
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
func (pe *Encoder) sortByID(ids []uint32, rows []byte) ([]uint32, []byte, error) {
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
	pe.perm = pe.perm[:0]
	for i := range ids {
		pe.perm = append(pe.perm, int32(i))
	}
	slices.SortFunc(pe.perm, func(a, b int32) int {
		switch {
		case ids[a] < ids[b]:
			return -1
		case ids[a] > ids[b]:
			return 1
		}
		return 0
	})
	pe.ids = pe.ids[:0]
	pe.rows = pe.rows[:0]
	rb := pe.rowBytes
	for k, p := range pe.perm {
		if k > 0 && ids[p] == pe.ids[k-1] {
			return nil, nil, fmt.Errorf("duplicate id %d", ids[p])
		}
		pe.ids = append(pe.ids, ids[p])
		pe.rows = append(pe.rows, rows[int(p)*rb:(int(p)+1)*rb]...)
	}
	return pe.ids, pe.rows, nil
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
