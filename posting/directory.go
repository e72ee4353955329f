package posting

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"

	"github.com/gospann/spann/internal/offheap"
)

// Directory file layout (all integers little-endian):
//
//	off      size  field
//	0        8     magic "SPANNDIR"
//	8        4     format version, uint32 (3 or 4; readers accept 1 to 4)
//	12       4     zero
//	16       8     entry count N, uint64
//	24       16    version 3: the index's build id (absent before: H = 24)
//	H        16*N  entries, each: offset uint64, bytes uint32, count uint32
//	H+16N    4     CRC32C (Castagnoli) of bytes [0, H+16N)
//
// H, the header size, is 40 in version 3.
//
// Entries are in posting (head) order. ReadDirectory checks (checkEntries)
// that the first extent starts at or after PageSize, every later one at or
// after the previous one's end (Offset+Bytes), every size is at least an
// empty extent's, and every extent touches no more pages than its size
// needs (the Writer's packing rule, which bounds the bytes a query reads).
// A version 1 directory must also have page-aligned offsets. Version 4 has
// the same layout, but its extents may lie in any order (an updated index
// rewrites postings elsewhere in the file): they must not overlap.
const (
	dirMagic      = "SPANNDIR"
	dirHeaderSize = 24 // versions 1 and 2; version 3 adds the build id
	dirIDSize     = 16
	dirEntrySize  = 16
	// dirMaxEntries bounds N so that a corrupt count is caught before any
	// arithmetic on it can overflow.
	dirMaxEntries = 1 << 40
)

// Directory format versions. Part of the on-disk format: never change or
// reuse these values (doc.go keeps their history).
const (
	dirVersion1 = 1 // page-aligned extents (postings file version 1)
	dirVersion2 = 2 // packed extents (postings file version 2)
	dirVersion3 = 3 // version 2 and the build id
	dirVersion4 = 4 // version 3 with extents in any order
	dirVersion  = dirVersion4
)

// Directory is a decoded directory file.
type Directory struct {
	BuildID [16]byte // the build that wrote it (zero before version 3)
	Entries []Entry  // one per posting, in posting (head) order
}

// WriteDirectory writes entries as a directory file of build id to w:
// version 3 when the extents are in posting order (a built index), else
// version 4 (an updated one).
func WriteDirectory(w io.Writer, entries []Entry, id [16]byte) error {
	version := uint32(dirVersion3)
	for i := 1; i < len(entries); i++ {
		if entries[i].Offset < entries[i-1].Offset {
			version = dirVersion4
			break
		}
	}
	return writeDirectory(w, entries, version, id)
}

// writeDirectory writes a directory of the given version; tests use it to
// make older files (which have no id).
func writeDirectory(w io.Writer, entries []Entry, version uint32, id [16]byte) error {
	if err := checkEntries(entries, version); err != nil {
		return fmt.Errorf("write directory: %w", err)
	}
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var hdr [dirHeaderSize]byte
	copy(hdr[:], dirMagic)
	binary.LittleEndian.PutUint32(hdr[8:], version)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(entries)))
	if _, err := bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("write directory: %w", err)
	}
	if version >= dirVersion3 {
		if _, err := bw.Write(id[:]); err != nil {
			return fmt.Errorf("write directory: %w", err)
		}
	}
	var rec [dirEntrySize]byte
	for _, e := range entries {
		putEntry(rec[:], e)
		if _, err := bw.Write(rec[:]); err != nil {
			return fmt.Errorf("write directory: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write directory: %w", err)
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := w.Write(sum[:]); err != nil {
		return fmt.Errorf("write directory: %w", err)
	}
	return nil
}

func putEntry(b []byte, e Entry) {
	binary.LittleEndian.PutUint64(b[0:], e.Offset)
	binary.LittleEndian.PutUint32(b[8:], e.Bytes)
	binary.LittleEndian.PutUint32(b[12:], e.Count)
}

// ReadDirectory reads a directory file written by WriteDirectory. Corrupt or
// truncated input gives an error wrapping ErrCorrupt; memory is only
// allocated for entries actually present in r, whatever the header claims.
// When r reports its remaining length (a bytes.Reader does), the entries
// are allocated once at their exact count, as by ReadDirectorySized.
func ReadDirectory(r io.Reader) (Directory, error) {
	size := int64(-1)
	if lr, ok := r.(interface{ Len() int }); ok {
		size = int64(lr.Len())
	}
	return ReadDirectorySized(r, size, nil)
}

// ReadDirectorySized is ReadDirectory for a directory file of size bytes
// (negative if unknown). With the size known the entries are allocated
// once, at their exact count: growing the slice instead would leave
// garbage several times its size, which counts in an opening search
// process's peak memory. The entries live in arena (outside the Go heap,
// freed with it) unless it is nil.
func ReadDirectorySized(r io.Reader, size int64, arena *offheap.Arena) (Directory, error) {
	d, err := readDirectory(r, size, arena)
	if err != nil {
		return Directory{}, err
	}
	return d, nil
}

func readDirectory(r io.Reader, size int64, arena *offheap.Arena) (Directory, error) {
	var d Directory
	room := uint64(1 << 16)
	if size >= 0 {
		room = uint64(max(size-dirHeaderSize, 0)) / dirEntrySize
	}
	crc := crc32.New(castagnoli)
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [dirHeaderSize]byte
	if err := readFull(br, crc, hdr[:]); err != nil {
		return d, fmt.Errorf("directory header: %w", err)
	}
	if string(hdr[:8]) != dirMagic {
		return d, fmt.Errorf("directory: bad magic %q: %w", hdr[:8], ErrCorrupt)
	}
	version := binary.LittleEndian.Uint32(hdr[8:])
	if version < dirVersion1 {
		return d, fmt.Errorf("directory: version %d: %w", version, ErrCorrupt)
	}
	if version > dirVersion {
		// A newer format, or a damaged version field: only the caller's
		// checksum of the whole file can tell which.
		return d, fmt.Errorf("directory: format version %d, this program reads 1 to %d: %w", version, dirVersion, ErrVersion)
	}
	if binary.LittleEndian.Uint32(hdr[12:]) != 0 {
		return d, fmt.Errorf("directory: nonzero reserved field: %w", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint64(hdr[16:])
	if n > dirMaxEntries {
		return d, fmt.Errorf("directory: %d entries: %w", n, ErrCorrupt)
	}
	if version >= dirVersion3 {
		if err := readFull(br, crc, d.BuildID[:]); err != nil {
			return d, fmt.Errorf("directory header: %w", err)
		}
	}
	entries, err := offheap.Slice[Entry](arena, int(min(n, room)))
	if err != nil {
		return d, err
	}
	entries = entries[:0] // a lying count outgrows it onto the heap, then fails
	var rec [dirEntrySize]byte
	for i := uint64(0); i < n; i++ {
		if err := readFull(br, crc, rec[:]); err != nil {
			return d, fmt.Errorf("directory entry %d of %d: %w", i, n, err)
		}
		entries = append(entries, Entry{
			Offset: binary.LittleEndian.Uint64(rec[0:]),
			Bytes:  binary.LittleEndian.Uint32(rec[8:]),
			Count:  binary.LittleEndian.Uint32(rec[12:]),
		})
	}
	var sum [4]byte
	if err := readFull(br, nil, sum[:]); err != nil {
		return d, fmt.Errorf("directory checksum: %w", err)
	}
	if got, want := binary.LittleEndian.Uint32(sum[:]), crc.Sum32(); got != want {
		return d, fmt.Errorf("directory: crc %08x, computed %08x: %w", got, want, ErrCorrupt)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return d, fmt.Errorf("directory: trailing bytes after checksum: %w", ErrCorrupt)
	}
	if err := checkEntries(entries, version); err != nil {
		return d, fmt.Errorf("directory: %w: %w", err, ErrCorrupt)
	}
	d.Entries = entries
	return d, nil
}

// readFull fills b from r, feeding it to h when h is non-nil; a short read
// is reported as corruption (truncation).
func readFull(r io.Reader, h hash.Hash32, b []byte) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("truncated: %w", ErrCorrupt)
		}
		return err
	}
	if h != nil {
		h.Write(b)
	}
	return nil
}

// checkEntries verifies that entries describe non-overlapping extents
// after the header page, each touching only the pages its size needs;
// before version 4 they must also be in file order, and version 1 also
// requires page-aligned offsets.
func checkEntries(entries []Entry, version uint32) error {
	if version < dirVersion1 || version > dirVersion {
		return fmt.Errorf("unsupported version %d", version)
	}
	for i, e := range entries {
		if version == dirVersion1 && e.Offset%PageSize != 0 {
			return fmt.Errorf("entry %d: offset %d not page-aligned (version 1)", i, e.Offset)
		}
		if e.Bytes < extentOverhead {
			return fmt.Errorf("entry %d: %d bytes, below an empty extent's %d", i, e.Bytes, extentOverhead)
		}
		if e.Offset > 1<<62 {
			return fmt.Errorf("entry %d: offset %d out of range", i, e.Offset)
		}
		if e.Pages() != minPages(e.Bytes) {
			return fmt.Errorf("entry %d: %d bytes at offset %d span %d pages, more than the %d needed", i, e.Bytes, e.Offset, e.Pages(), minPages(e.Bytes))
		}
	}
	if version == dirVersion4 {
		return checkDisjoint(entries)
	}
	next := uint64(PageSize)
	for i, e := range entries {
		if e.Offset < next {
			return fmt.Errorf("entry %d: offset %d overlaps the previous extent or the header (next free %d)", i, e.Offset, next)
		}
		next = e.Offset + uint64(e.Bytes)
	}
	return nil
}

// checkDisjoint checks that extents in any order overlap neither each
// other nor the header page.
func checkDisjoint(entries []Entry) error {
	order := make([]int32, len(entries))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(entries[a].Offset, entries[b].Offset) })
	next, prev := uint64(PageSize), int32(-1)
	for _, i := range order {
		e := entries[i]
		if e.Offset < next {
			if prev < 0 {
				return fmt.Errorf("entry %d: offset %d overlaps the header page", i, e.Offset)
			}
			return fmt.Errorf("entry %d: extent at %d overlaps entry %d's, which ends at %d", i, e.Offset, prev, next)
		}
		next, prev = e.Offset+uint64(e.Bytes), i
	}
	return nil
}
