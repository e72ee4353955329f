// Package memindex is the in-memory graph index over SPANN's head vectors.
// The build asks it for each base vector's nearest heads (e.g. 64), and every
// search asks it for a query's nearest 8..128 heads.
//
// # Algorithm
//
// The graph is Vamana (DiskANN, Subramanya et al. NeurIPS 2019): one layer,
// every node keeps at most Degree out-edges chosen by RobustPrune, and every
// search starts at the medoid (the vector closest to the mean). It was
// chosen over HNSW and SPTAG's RNG/BKT because it needs no hierarchy or
// tree, has one entry point and one adjacency array (simple to save and to
// search without allocation), and reaches the target recall with a single
// greedy search per insertion. Build (see Build) inserts nodes in batches
// whose searches run in parallel against the graph as it stood before the
// batch, which makes the graph independent of the thread count. After the
// passes a repair step links every node that pruning left unreachable from
// the entry point (in SPANN such a head would never be probed).
//
// Search (Searcher.Search) is greedy best-first search with a sorted list
// of budget (L) candidates; its cost is about L·Degree/2 distance
// computations on realsift, and it allocates nothing once warm.
//
// # Default parameters
//
// Measured on 120,000 uniformly sampled realsift-1M vectors (a stand-in for
// the heads), Threads=2, 1,000 queries and 1,000 non-head base rows; see
// docs/bench-memindex.md for the full tables and command lines. Recall is
// judged per distance computation, because wall and CPU times on the shared
// 2-core machine varied by 2× between identical runs.
//
//   - Degree 48 (SPTAG uses 32): at search L=64, recall@64 on base rows was
//     0.981 with 1,619 distances per search, where Degree 32 needed L=96
//     and 1,703 distances for 0.981 (queries: 0.987 at L=64 vs 0.989 at
//     L=96). So with 48 a budget equal to m=64 already meets 0.98, m=16 at
//     L=64 rises from 0.985 to 0.995, and build CPU was unchanged (32.4 vs
//     33.6 s, fewer prunes). The cost is 8 MB more adjacency per 120k heads.
//   - BuildList 64: L=100 cost 57% more build CPU (52.7 vs 33.6 s) and
//     moved recall@64 at search L=96 by 0.0006 on base rows — not worth it.
//   - Alpha 1.2 (on squared L2): 1.4 adds long edges but lowered recall@64
//     at L=96 from 0.981 to 0.972 for about the same distance count.
//   - Passes 2 (first pass alpha 1, second Alpha, as DiskANN): one pass costs
//     31% less build CPU (23 vs 34 s) for 0.0016 less recall@64 at L=96.
//     Both stay well under the 60 s target on two idle cores; callers that
//     care more about build time can set Passes: 1.
//
// With these defaults, recall@64 ≥ 0.98 needs a search budget of about 64
// (≈1,400-1,600 distances per search). The Alpha, BuildList and Passes
// comparisons above were made at Degree 32.
//
// # On-disk format (version 2)
//
// Written by Graph.WriteTo, read by Load. The vectors are not stored; the
// caller supplies them to Load. All integers are little-endian.
//
//	offset  size  field
//	0       8     magic "SPMEMGR\x00"
//	8       4     format version, uint32 = 2 (Load also reads 1)
//	12      1     element type: 1 float32, 2 uint8, 3 int8
//	13      1     metric (vec.Metric: 1 L2, 2 IP, 3 Cosine)
//	14      2     reserved, zero
//	16      8     n, number of nodes, uint64 (must equal the vector count)
//	24      4     dim, uint32 (must equal the vectors' dimension)
//	28      4     degree, uint32, the maximum out-degree, in [1, 4096]
//	32      4     entry point, uint32, < n
//	36      16    tag: the caller's opaque bytes (Graph.Tag; the index's
//	              build id). Version 1 has no tag: every later offset is 16
//	              smaller and Load reports a zero tag.
//	52      4·n   counts: out-degree of node 0..n-1, uint32 each, ≤ degree
//	52+4n   4·E   neighbour ids, int32 each, node 0's list, then node 1's, …
//	              (CSR without offsets: E = sum of counts; every id < n)
//	end-4   4     CRC32C (Castagnoli) of every preceding byte, uint32
//
// Load checks each field as it reads it (so corrupt sizes never drive an
// allocation: n must match the supplied vectors) and then the checksum; any
// failure, including truncation (io.ErrUnexpectedEOF), is an error. Load
// reads through a buffer, so r may be advanced past the graph's last byte.
package memindex
