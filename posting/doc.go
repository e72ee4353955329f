// Package posting stores SPANN posting lists on disk and decodes them at
// search time.
//
// A postings file holds one extent per head, in head order. Each extent is
// page-aligned and padded to whole 4 KiB pages, so a search reads a posting
// with a single O_DIRECT read of Entry.ReadBytes() bytes at Entry.Offset.
// The per-head Entry values (offset, used bytes, vector count) live in a
// separate directory file that the searcher keeps in memory (16 bytes per
// head). Writer produces the postings file and the entries; WriteDirectory
// and ReadDirectory store the entries; Decoder turns an extent back into ids
// and vectors; Describe prints an annotated dump of a file.
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
//	8    4     format version, uint32 (1)
//	12   1     codec id the writer used (every extent names its own too)
//	13   3     zero
//	16   4     rowBytes: bytes per vector, uint32 (> 0)
//	20   4     page size, uint32 (4096)
//	24   4068  zero
//	4092 4     CRC32C (Castagnoli) of bytes [0, 4092), uint32
//
// Then, from offset 4096, one extent per posting. An extent starts at a
// page boundary (so offset 0 is never a posting), occupies
// ceil(Bytes/4096) pages, and its unused tail is zero padding that no
// checksum covers and readers ignore. Extent layout, offsets relative to
// the extent's start:
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
//
// An empty posting (count 0) has empty ids and rows sections under every
// codec: a 28-byte extent. See docs/bench-posting.md for the measurements
// behind DefaultCodec.
//
// # Directory file
//
//	off      size  field
//	0        8     magic "SPANNDIR"
//	8        4     format version, uint32 (1)
//	12       4     zero
//	16       8     entry count N, uint64
//	24       16*N  entries in posting order: offset uint64, bytes uint32,
//	               count uint32 (the fields of Entry)
//	24+16N   4     CRC32C of bytes [0, 24+16N), uint32
//
// Nothing follows the checksum. Readers also check that offsets are
// page-aligned, start at or after 4096 and do not overlap.
//
// # Concurrency
//
// Writer and Decoder are not safe for concurrent use (a search worker owns
// one Decoder); Entry, the codec functions, ReadDirectory, WriteDirectory,
// ReadFileHeader and Describe are safe to call from many goroutines.
package posting
