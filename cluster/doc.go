// Package cluster selects SPANN's head vectors: the ~10-20% of the base rows
// that go into the in-memory index, each of which owns one posting list on
// disk holding the rows closest to it.
//
// # Why balance matters
//
// A query reads a fixed number of postings from the SSD. A posting's read
// cost is its length in pages, so postings must be of bounded, similar
// length: one huge posting makes every query that touches it slow, and a
// posting of one row wastes a head slot in memory and a random read. Postings
// hold the rows nearest each head, so the heads must be spread like the data
// itself: dense where the data are dense, and with no region left without a
// nearby head. SelectHeads aims for that.
//
// # Algorithm
//
// SelectHeads builds a hierarchical balanced k-means tree top-down, driven by
// a head budget (after SPTAG's BKTree, branching 32, which SPANN uses to pick
// heads):
//
//  1. The root is all n rows with budget Params.Heads.
//  2. A node whose budget is at least its size makes every row a head; a node
//     with budget 1 yields the real row nearest to its centroid (the mean of
//     its rows; nearest by the metric, in float32) — heads are always real
//     vectors.
//  3. Any other node is split into k = min(Branch, budget) clusters by
//     balanced k-means (below) and its budget is divided among the clusters in
//     proportion to their sizes by the largest-remainder method, so every
//     cluster gets the floor or the ceiling of budget·size/total. A cluster
//     whose share rounds to 0 (a handful of outliers) yields no head; its
//     rows will be served by a neighbouring head. Children are processed the
//     same way.
//
// Shares always add up to the parent's budget and never exceed a cluster's
// size, so exactly Params.Heads distinct rows are returned whenever n >
// Params.Heads (every row when n ≤ Params.Heads). Since budgets follow sizes
// at every level, head density follows data density even where a split came
// out unbalanced; the balance penalty makes the splits even so that the leaf
// clusters (one head each) are of similar size.
//
// # Balanced k-means
//
// Each split fits its centroids on at most Params.SampleSize rows of the node
// (a seeded random sample; smaller nodes use all their rows), then assigns
// every row of the node to the fitted centroids in one pass. Rows are
// converted to float32 (uint8/int8 through a per-goroutine buffer); centroids
// are float32 means (normalised for Cosine); distances use the metric in
// float32 arithmetic (vec.L2F32Batch, or the negated vec.DotF32Batch).
//
//   - Seeding is k-means++ (D² sampling under L2) from the seeded generator.
//   - Each Lloyd iteration assigns row x to argmin_k d(x, c_k) + o_k, with the
//     penalty o_k = λ·|C_k| (SPTAG's form). SPTAG takes |C_k| from the
//     previous iteration; with a penalty strong enough to matter, that makes
//     clusters swap rows back and forth (on SIFT, 40-80% of rows changed
//     cluster at every iteration). We smooth it instead:
//     o_k ← (o_k + λ·|C_k|)/2, which settles (3-7% of rows moving after a few
//     iterations) and lets the loop stop early when nothing moves.
//   - λ (when Params.Lambda is 0) is derived per split from the first,
//     unpenalised assignment, following SPTAG's RefineLambda: take the largest
//     cluster and the spread of its members' distances, max − mean. SPTAG
//     divides that spread by the sample size (and caps it further with
//     base²/(100·samples)); we divide it by the mean cluster size and scale it
//     by 0.3, i.e. a cluster one mean-size too large pays 0.3 spreads more.
//     It depends only on distance differences, so it is ≥ 0 for L2, IP and
//     Cosine alike.
//   - Centroid sums are kept incrementally (only rows that changed cluster
//     are moved), in float64, sequentially in row order. An empty cluster is
//     re-seeded at the row farthest from its centroid.
//
// # Threads and determinism
//
// Nodes of 8192 rows or more are split one at a time, with the assignment
// passes and the seeding distances spread over Params.Threads goroutines in
// fixed 512-row chunks; smaller nodes are split one per goroutine. Every
// per-row result goes to its own slot and every reduction runs sequentially
// in a fixed order, and each node's random generator is seeded from
// (Params.Seed, its position in the tree), so the heads depend on the seed
// but not on Params.Threads or on scheduling.
//
// Memory is O(n) 32-bit integers (a permutation, labels and a sort buffer)
// plus, per goroutine, centroids and a float32 copy of one fitting sample;
// no n×k matrix is ever built.
package cluster
