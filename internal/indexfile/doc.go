// Package indexfile reads and writes the small files of an index directory:
// the manifest and the heads file. (The postings and posting directory files
// are package posting's, the head graph is package memindex's.)
//
// # Index directory
//
//	manifest.json   written last; an index without it does not open
//	heads.bin       the head vectors and their base ids (this package)
//	graph.bin       the graph over the heads (memindex)
//	directory.bin   offset, bytes, pages and count of every posting (posting)
//	postings.bin    the posting lists, each 4 KiB-aligned (posting)
//
// The build writes everything into a temporary directory beside the target
// and renames it into place only once the manifest is written and synced, so
// a build killed at any point leaves nothing at the target that Open accepts.
//
// # manifest.json
//
// A JSON object (see Manifest) with "magic": "spann-index", the format's
// major and minor version, the data's element type, dimension, metric and
// row count, every build parameter, build statistics, and for every other
// file its size and CRC32C (Castagnoli). Its own integrity is protected by the
// "checksum" field: the CRC32C, as 8 lowercase hex digits, of the file's
// bytes with the checksum value replaced by eight zeros ("00000000"). Readers
// refuse a newer major version and accept a newer minor one.
//
// # heads.bin
//
// All integers little-endian.
//
//	offset        size            field
//	0             8               magic "SPNHEADS"
//	8             2               major version (1)
//	10            2               minor version (0)
//	12            1               element type: 1 float32, 2 uint8, 3 int8
//	13            3               zero
//	16            4               uint32 dim
//	20            4               uint32 number of heads h
//	24            8               zero
//	32            4*h             uint32 base row id of each head, ascending
//	32+4h         h*dim*elem      the head vectors, row-major, in id order
//	end-4         4               CRC32C of every preceding byte
//
// Head i of the graph and of the posting directory is row i of this file.
package indexfile
