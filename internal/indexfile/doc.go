// Package indexfile reads and writes the small files of an index directory:
// the manifest and the heads file. (The postings and posting directory files
// are package posting's, the head graph is package memindex's.)
//
// # Index directory
//
//	manifest.json   written last; an index without it does not open
//	heads.bin       the head vectors and their base ids (this package)
//	graph.bin       the graph over the heads (memindex)
//	directory.bin   offset, bytes and count of every posting (posting)
//	postings.bin    the posting lists, packed into 4 KiB pages (posting)
//
// and, once the index has been updated (package spann):
//
//	wal.log           the write-ahead log of updates since the last checkpoint
//	tombstones.bin    the deleted ids as of the last checkpoint (tombstones.go)
//	directory-G.bin   generation G's directory (G ≥ 1, six or more digits)
//	heads-G.bin, graph-G.bin   the heads and graph of the generation G
//	                  that last split postings (FileName; Manifest.Current)
//	update.lock, readers.lock   empty files for flock
//
// The build writes everything into a temporary directory beside the target
// and renames it into place only once the manifest is written and synced, so
// a build killed at any point leaves nothing at the target that Open accepts.
//
// # manifest.json
//
// A JSON object (see Manifest) with "magic": "spann-index", the format's
// major (2) and minor (1) version, the build id ("build_id", 32 lowercase
// hex digits, random per build and never zero), the data's element type,
// dimension, metric and row count, every build parameter, build
// statistics, and for every other file its size and SHA-256 ("sha256", 64
// lowercase hex digits; with "hashed_bytes" N, the SHA-256 of its first N
// bytes only). An updated index's manifest also has "generation" G, the
// count of checkpoints that rewrote postings: its directory is
// DirectoryName(G), n counts every id the files hold (built and
// inserted), and postings.bin, rewritten in place, has only its header
// page hashed (its postings carry their own CRC32C) and may be longer
// than "bytes" by postings an interrupted checkpoint wrote. Minor 1 added
// these fields. Its own integrity is protected by the "checksum"
// field: the CRC32C, as 8 lowercase hex digits, of the file's bytes with the
// checksum value replaced by eight zeros ("00000000"). Readers refuse any
// other major version (ErrVersion: major 1 had no build id) and accept a
// newer minor one.
//
// # Build identity
//
// Every file of an index carries the build id in its header: heads.bin at
// bytes 32-48, graph.bin at 36-52 (memindex's tag), directory.bin at 24-40,
// postings.bin at 4076-4092 of page 0. Open compares each with the
// manifest's and refuses, naming the file, any file of another build. The
// manifest's whole-file SHA-256 replaced major 1's CRC32C: for a file that
// ends in its own CRC32C, the CRC32C of the whole file is the same constant
// for every content, so it tied nothing together.
//
// # heads.bin
//
// All integers little-endian.
//
//	offset        size            field
//	0             8               magic "SPNHEADS"
//	8             2               major version (2; major 1 is read too)
//	10            2               minor version (0: ids ascending; 1: any order)
//	12            1               element type: 1 float32, 2 uint8, 3 int8
//	13            3               zero
//	16            4               uint32 dim
//	20            4               uint32 number of heads h
//	24            8               zero
//	32            16              build id (major 1: absent, H = 32)
//	H = 48        4*h             uint32 base row id of each head, unique;
//	                              ascending in minor 0 (a build); minor 1
//	                              appends the heads of split postings, and
//	                              marks removed heads 0xFFFFFFFF (repeatable)
//	H+4h          h*dim*elem      the head vectors, row-major, in id order
//	end-4         4               CRC32C of every preceding byte
//
// Head i of the graph and of the posting directory is row i of this file.
package indexfile
