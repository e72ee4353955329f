package posting

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// PageSize is the I/O unit of the postings file: a posting is read with one
// O_DIRECT read of whole, aligned PageSize pages, and the Writer places
// every extent so that this read is as short as the extent's size allows.
const PageSize = 4096

// Postings-file format versions. Part of the on-disk format: never change
// or reuse these values (doc.go keeps their history).
const (
	// fileVersion1: every extent starts on a page boundary and is padded to
	// whole pages.
	fileVersion1 = 1
	// fileVersion2: minimal-span packing; an extent starts wherever the
	// previous one ended unless that would make it span more pages than
	// its size needs. A version 1 file is a valid version 2 file.
	fileVersion2 = 2
	// fileVersion3: as version 2, and page 0 holds the length of a shared
	// Huffman table (0 = none) and the table (codec huff-shared).
	fileVersion3 = 3
	// fileVersion4: as version 3, and the 16 bytes before the header CRC
	// hold the index's build id.
	fileVersion4 = 4
	// fileVersion is what the Writer writes.
	fileVersion = fileVersion4
)

// Postings-file header (page 0). See doc.go for the prose layout.
const (
	fileMagic       = "SPANNPST"
	fileHdrCRCOff   = PageSize - 4
	fileHdrMagicLen = 8
	fileHdrTableLen = 24                 // version 3: uint32 length of the shared table
	fileHdrTableOff = 28                 // version 3: the shared table
	fileHdrIDOff    = fileHdrCRCOff - 16 // version 4: the build id
)

// Extent header. See doc.go for the prose layout.
const (
	extentMagic = "SPPL"
	// ExtentHeaderSize is the size of the fixed header at the start of
	// every extent.
	ExtentHeaderSize = 24
	// extentOverhead is header plus the trailing CRC32C.
	extentOverhead = ExtentHeaderSize + 4
	// idEncDeltaVarint: ids sorted ascending, stored as uvarint(first) then
	// uvarint(gap) with every gap >= 1. Part of the on-disk format.
	idEncDeltaVarint = 0
)

// MaxRowsBytes bounds the uncompressed vector bytes of one posting (1 GiB),
// so that every size field fits a uint32 with room to spare and a decoder's
// scratch stays bounded.
const MaxRowsBytes = 1 << 30

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Entry locates one posting in the postings file. It is what the in-memory
// directory holds per head, so it is kept to 16 bytes (Go lays it out with
// no padding): at 10^8 heads the directory costs 1.6 GB. The pages a read
// covers are derived from Offset and Bytes rather than stored.
//
// A posting is fetched with one aligned read of ReadBytes() bytes at
// ReadOffset(); its extent is buf[e.Offset-e.ReadOffset():] of that read
// (Decode looks only at the first e.Bytes of it).
type Entry struct {
	Offset uint64 // byte offset of the extent, >= PageSize; page-aligned only in version 1 files
	Bytes  uint32 // bytes of the extent (header + payload + CRC)
	Count  uint32 // number of vectors in the posting
}

// Pages returns how many PageSize pages the extent's bytes
// [Offset, Offset+Bytes) touch: the page count of its aligned read. The
// Writer keeps it equal to minPages(Bytes), the fewest possible.
func (e Entry) Pages() uint32 {
	return uint32((e.Offset%PageSize + uint64(e.Bytes) + PageSize - 1) / PageSize)
}

// ReadOffset returns the start of the page holding the extent's first byte,
// where the aligned read of the posting starts.
func (e Entry) ReadOffset() uint64 { return e.Offset &^ (PageSize - 1) }

// ReadBytes returns Pages()*PageSize, the length of the aligned read at
// ReadOffset.
func (e Entry) ReadBytes() int { return int(e.Pages()) * PageSize }

// minPages is the fewest pages an extent of n bytes can touch: the count it
// touches when it starts on a page boundary.
func minPages(n uint32) uint32 { return uint32((uint64(n) + PageSize - 1) / PageSize) }

// FileHeader is the decoded page 0 of a postings file.
type FileHeader struct {
	Version  uint32
	Codec    Codec // codec the writer used; every extent also names its own
	RowBytes uint32
	Table    *Table   // the shared Huffman table (version 3, codec huff-shared), else nil
	BuildID  [16]byte // the build that wrote the file (zero before version 4)
}

// encodeFileHeader lays out page 0:
//
//	off  size field
//	0    8    magic "SPANNPST"
//	8    4    format version, uint32 LE (4; readers accept 1 to 4)
//	12   1    codec id of the writer
//	13   3    zero
//	16   4    rowBytes, uint32 LE
//	20   4    page size, uint32 LE (4096)
//	24   4    version ≥ 3: L, bytes of the shared Huffman table (0 = none)
//	28   L    version ≥ 3: the shared table (huff0's serialisation)
//	28+L …    zero (versions 1 and 2: zero from 24)
//	4076 16   version 4: the index's build id (earlier versions: zero or
//	          table bytes)
//	4092 4    CRC32C (Castagnoli) of bytes [0, 4092), uint32 LE
func encodeFileHeader(h FileHeader) []byte {
	p := make([]byte, PageSize)
	copy(p, fileMagic)
	binary.LittleEndian.PutUint32(p[8:], h.Version)
	p[12] = byte(h.Codec)
	binary.LittleEndian.PutUint32(p[16:], h.RowBytes)
	binary.LittleEndian.PutUint32(p[20:], PageSize)
	if h.Table != nil {
		binary.LittleEndian.PutUint32(p[fileHdrTableLen:], uint32(len(h.Table.raw)))
		copy(p[fileHdrTableOff:fileHdrCRCOff], h.Table.raw)
	}
	if h.Version >= fileVersion4 {
		copy(p[fileHdrIDOff:fileHdrCRCOff], h.BuildID[:])
	}
	binary.LittleEndian.PutUint32(p[fileHdrCRCOff:], crc32c(p[:fileHdrCRCOff]))
	return p
}

// ReadFileHeader parses and checks page 0 of a postings file. page must hold
// at least PageSize bytes.
func ReadFileHeader(page []byte) (FileHeader, error) {
	if len(page) < PageSize {
		return FileHeader{}, fmt.Errorf("file header: %d bytes, want %d: %w", len(page), PageSize, ErrCorrupt)
	}
	p := page[:PageSize]
	if string(p[:fileHdrMagicLen]) != fileMagic {
		return FileHeader{}, fmt.Errorf("file header: bad magic %q: %w", p[:fileHdrMagicLen], ErrCorrupt)
	}
	if got, want := binary.LittleEndian.Uint32(p[fileHdrCRCOff:]), crc32c(p[:fileHdrCRCOff]); got != want {
		return FileHeader{}, fmt.Errorf("file header: crc %08x, computed %08x: %w", got, want, ErrCorrupt)
	}
	h := FileHeader{
		Version:  binary.LittleEndian.Uint32(p[8:]),
		Codec:    Codec(p[12]),
		RowBytes: binary.LittleEndian.Uint32(p[16:]),
	}
	if h.Version > fileVersion4 {
		return h, fmt.Errorf("file header: format version %d, this program reads 1 to %d: %w", h.Version, fileVersion4, ErrVersion)
	}
	if h.Version < fileVersion1 {
		return h, fmt.Errorf("file header: version %d: %w", h.Version, ErrCorrupt)
	}
	if ps := binary.LittleEndian.Uint32(p[20:]); ps != PageSize {
		return h, fmt.Errorf("file header: page size %d, want %d: %w", ps, PageSize, ErrCorrupt)
	}
	if !h.Codec.valid() {
		return h, fmt.Errorf("file header: unknown codec %d: %w", h.Codec, ErrCorrupt)
	}
	if h.RowBytes == 0 || h.RowBytes > MaxRowsBytes {
		return h, fmt.Errorf("file header: rowBytes %d out of range: %w", h.RowBytes, ErrCorrupt)
	}
	zeroFrom, zeroTo := 24, fileHdrCRCOff
	if h.Version >= fileVersion4 {
		copy(h.BuildID[:], p[fileHdrIDOff:fileHdrCRCOff])
		zeroTo = fileHdrIDOff
	}
	if h.Version >= fileVersion3 {
		n := binary.LittleEndian.Uint32(p[fileHdrTableLen:])
		if room := uint32(zeroTo - fileHdrTableOff); n > room {
			return h, fmt.Errorf("file header: shared table of %d bytes exceeds %d: %w", n, room, ErrCorrupt)
		}
		if n > 0 {
			t, err := ParseTable(p[fileHdrTableOff : fileHdrTableOff+n])
			if err != nil {
				return h, fmt.Errorf("file header: %w", err)
			}
			h.Table = t
		}
		zeroFrom = fileHdrTableOff + int(n)
	}
	if h.Codec == CodecHuffShared && h.Table == nil {
		return h, fmt.Errorf("file header: codec %s without a shared table: %w", h.Codec, ErrCorrupt)
	}
	for i := 13; i < zeroTo; i++ {
		if (i < 16 || i >= zeroFrom) && p[i] != 0 {
			return h, fmt.Errorf("file header: nonzero reserved byte at %d: %w", i, ErrCorrupt)
		}
	}
	return h, nil
}
