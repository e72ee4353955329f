// Package datasets reads and writes the vector files of big-ann-benchmarks
// and TEXMEX, and generates seeded synthetic data sets.
//
// # Vector files (.fbin, .u8bin, .i8bin)
//
// All integers are little-endian.
//
//	offset  size          field
//	0       4             uint32 n, number of vectors (rows)
//	4       4             uint32 dim, elements per vector
//	8       n*dim*elem    row-major elements: vector i occupies bytes
//	                      8 + i*dim*elem .. 8 + (i+1)*dim*elem - 1
//
// elem is 4 for .fbin (float32), 1 for .u8bin (uint8) and 1 for .i8bin (int8).
// The element type comes from the extension and can be overridden (a file
// called .bin says nothing). The file size must equal 8 + n*dim*elem exactly;
// anything else is reported as truncated or oversized. These files carry no
// magic or checksum: the format is fixed by big-ann-benchmarks, so validation
// is by size, header ranges and (for float32) finiteness of every value.
//
// # Ground-truth files
//
//	offset           size      field
//	0                4         uint32 nq, number of queries
//	4                4         uint32 k, neighbours per query
//	8                4*nq*k    int32 ids, row q = the k nearest base rows of query q
//	8 + 4*nq*k       4*nq*k    float32 distances matching the ids (squared L2,
//	                           or the metric's distance)
//
// # Result files (.ibin)
//
//	offset  size      field
//	0       4         uint32 n (queries)
//	4       4         uint32 k
//	8       4*n*k     int32 ids, row-major
//
// # TEXMEX files (.fvecs, .bvecs, .ivecs)
//
// Each vector is stored as int32 d followed by d elements (float32, uint8 or
// int32). ConvertTexmex turns them into the formats above.
//
// # Large files
//
// VectorFile never loads a whole file: rows are read by pread, by index
// (ReadRows) or streamed in blocks (Stream) with a fixed amount of memory, so a
// base larger than RAM works. Stream reads ahead one block in a goroutine;
// BenchmarkStream compares it with an mmap scan (see docs/benchmarks.md).
//
// All types here are safe for concurrent reads (ReadRows uses pread) but a
// Writer must be used by one goroutine.
package datasets
