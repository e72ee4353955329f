// Package posting stores SPANN posting lists on disk and decodes them at
// search time.
//
// A postings file holds one extent per head, in head order. Extents are
// packed: small ones share 4 KiB pages, but none touches more pages than its
// size needs, so a search reads a posting with a single O_DIRECT read of
// Entry.ReadBytes() bytes at Entry.ReadOffset(), never more than
// ceil(Bytes/4096) pages. The per-head Entry values (offset, bytes, vector
// count) live in a separate directory file that the searcher keeps in
// memory (16 bytes per head). Writer produces the postings file and the
// entries; WriteDirectory and ReadDirectory store the entries; Decoder
// turns an extent back into ids and vectors; Describe prints an annotated
// dump of a file.
//
// # Postings file
//
// All integers are little-endian. The file is a sequence of 4096-byte
// pages; its length is always a multiple of 4096.
//
// Page 0 is the file header, written first and never rewritten (so the
// Writer needs only an io.Writer; counts and sizes live in the directory):
//
//	off  size  field
//	0    8     magic "SPANNPST"
//	8    4     format version, uint32 (3; see Versions)
//	12   1     codec id the writer used (every extent names its own too)
//	13   3     zero
//	16   4     rowBytes: bytes per vector, uint32 (> 0)
//	20   4     page size, uint32 (4096)
//	24   4     L: bytes of the shared Huffman table, uint32 (0 = none;
//	           at most 4064); versions 1 and 2 have zero from here
//	28   L     the shared Huffman table: huff0's serialisation (a header
//	           byte, then the symbol weights, FSE-compressed or as
//	           nibbles), the code of every huff-shared extent in the file
//	28+L …     zero up to the CRC
//	4092 4     CRC32C (Castagnoli) of bytes [0, 4092), uint32
//
// A file whose codec is huff-shared must carry a table; Open reads and
// checks page 0 (and that rowBytes matches the index) before any search.
//
// Then, from offset 4096, one extent per posting, placed by the
// minimal-span rule. Let off be the end of the previous extent (4096 for
// the first) and minPages = ceil(Bytes/4096), the fewest pages an extent of
// Bytes bytes can touch. If [off, off+Bytes) touches exactly minPages pages
// (off%4096 + Bytes <= minPages*4096), the extent starts at off; otherwise
// zero bytes pad the file to the next page boundary and the extent starts
// there. So a one-page extent shares a page with the previous one when it
// fits in the rest of that page, a longer one when its partial last page
// (Bytes%4096) does; an extent of exactly k*4096 bytes always starts on a
// boundary; and less than a page of padding precedes any extent. After the last extent, Writer.Finish pads the file with zeros
// to a page boundary, so the aligned read of the last posting never runs
// past end of file. Padding is never covered by a checksum and readers
// ignore it; it is always zero, which is how Describe tells it from an
// extent (whose first byte is 'S').
//
// A reader fetches posting e with one aligned read: start
// e.ReadOffset() = e.Offset &^ 4095, length e.ReadBytes() =
// e.Pages()*4096 where e.Pages() = (e.Offset%4096 + e.Bytes + 4095) / 4096
// (= minPages by the rule above); the extent is buf[e.Offset-e.ReadOffset():]
// of what was read. Extent layout, offsets relative to the extent's start:
//
//	off         size     field
//	0           4        magic "SPPL"
//	4           1        codec id (see below)
//	5           1        id encoding: 0 = sorted delta uvarint (the only one)
//	6           2        zero
//	8           4        count: vectors in the posting, uint32
//	12          4        rowsRaw: count*rowBytes, the decoded rows' size, uint32
//	16          4        idsLen: bytes of the ids section, uint32
//	20          4        rowsLen: bytes of the rows section, uint32
//	24          idsLen   ids section
//	24+idsLen   rowsLen  rows section, as stored by the codec
//	24+idsLen+rowsLen 4  CRC32C of bytes [0, 24+idsLen+rowsLen), uint32
//
// Entry.Bytes = 28 + idsLen + rowsLen. The CRC covers the header and the
// whole payload, and is verified before any other field is trusted.
//
// Ids section: the Writer sorts a posting by id (moving each vector with
// its id) and stores the first id as a uvarint and every later id as the
// uvarint gap to its predecessor; gaps are >= 1 (ids are distinct), and the
// section holds exactly count varints. Decode returns ids ascending. On SIFT
// postings drawn from 200k vectors this costs 2.0 bytes per id instead of 4.
//
// Rows section: the count vectors, row-major, rowBytes each, in id order,
// transformed and entropy-coded by the codec. Codec ids are part of the
// on-disk format; never change or reuse them:
//
//	0 none         rows verbatim (rowsLen = rowsRaw)
//	1 zstd         one zstd frame of the rows (no zstd checksum)
//	2 zstd-planes  rows transposed to byte planes (byte j of every row, for
//	               j = 0..rowBytes-1), then one zstd frame
//	3 huff         rows Huffman-coded with huff0 in blocks of up to 64 KiB;
//	               each block is a mode byte, then
//	                 0 stored: the block verbatim
//	                 1 rle:    one byte repeated over the block
//	                 2 huff1x: uvarint L, L bytes (huff0 table + 1 stream)
//	                 3 huff4x: uvarint L, L bytes (huff0 table + 4 streams)
//	               and the blocks use the whole section exactly
//	4 huff-shared  as huff, but the huff1x/huff4x bodies are the stream(s)
//	               alone, coded with the file header's shared table
//
// An empty posting (count 0) has empty ids and rows sections under every
// codec: a 28-byte extent. See docs/bench-posting.md for the measurements
// behind DefaultCodec.
//
// # Directory file
//
//	off      size  field
//	0        8     magic "SPANNDIR"
//	8        4     format version, uint32 (3; see Versions)
//	12       4     zero
//	16       8     entry count N, uint64
//	24       16    the index's build id (version 3; absent before, H = 24)
//	H        16*N  entries in posting order: offset uint64, bytes uint32,
//	               count uint32 (the fields of Entry); H = 40
//	H+16N    4     CRC32C of bytes [0, H+16N), uint32
//
// Nothing follows the checksum. Readers also check that the first extent
// starts at or after 4096, each later one at or after the end
// (Offset+Bytes) of the one before (version 4: that no two overlap),
// that Bytes >= 28, and that every extent
// touches no more than ceil(Bytes/4096) pages. The last check is a Writer
// property rather than something reads need (the aligned read is computed
// from Offset and Bytes either way); it is enforced because it is what
// bounds the pages a query reads, and a directory breaking it was not made
// by this package's Writer.
//
// # Versions
//
// Version numbers are part of the on-disk format; never change or reuse
// them. The postings file and the directory carried the same number up to
// version 2.
//
//	1  every extent starts on a page boundary and is padded to whole pages
//	   (on realsift-1M postings about 28% of the file was padding).
//	2  minimal-span packing, as described above; Finish pads the file.
//	3  postings file: page 0 holds the shared Huffman table's length and
//	   bytes; extents are laid out as in version 2.
//	   directory: the build id follows the entry count.
//	4  postings file: as 3, and bytes [4076, 4092) of page 0 hold the
//	   build id.
//	   directory: as 3, but the extents may lie in any order (an updated
//	   index rewrites postings at new places); they must not overlap.
//
// Readers accept all: a version 1 file obeys every version 2 rule (its
// extents happen to be aligned), a version 2 header is a version 3 header
// without a table, a version 3 header is a version 4 header with a zero
// build id, and a version 1 directory must in addition have page-aligned
// offsets. Writers write postings files of version 4, and directories of
// version 3 when the extents are in posting order, else of version 4.
// The build id ties the files of one index together: the
// reader reports it and the index refuses files whose id differs from its
// manifest's.
//
// # Concurrency
//
// Writer and Decoder are not safe for concurrent use (a search worker owns
// one Decoder); Table, Entry, the codec functions, ReadDirectory,
// WriteDirectory, ReadFileHeader and Describe are safe to call from many
// goroutines (all of an index's Decoders share its Table).
package posting
