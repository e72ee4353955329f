// Package spann is an SSD-resident approximate-nearest-neighbour index in the
// style of SPANN (Chen et al., NeurIPS 2021). Build writes an index directory
// (see internal/indexfile for its files); Open loads only the heads, their
// graph and the posting directory into memory; Search finds a query's nearest
// heads, prunes the far ones, reads the surviving posting lists with one
// batch of O_DIRECT reads (io_uring; Linux AIO where a seccomp profile blocks
// io_uring, as Docker's default does; pread as the last resort),
// verifies, decodes and scans them.
//
// Distances are squared L2, or the negated inner product for ip and cosine
// (smaller is closer); cosine indexes normalise vectors at ingest and
// queries at search.
//
// An Index is safe for concurrent use: each Search borrows a worker (ring,
// aligned buffers, decoder and scratch) from a pool and returns it.
package spann

import (
	"context"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
)

// BuildOptions configures Build; see spann-build --help for each field's meaning.
type BuildOptions = build.Options

// BuildStats summarises a finished build.
type BuildStats = build.Stats

// Build builds an index from o.Base into the directory o.Out. The directory
// appears only when the build is complete; on failure or cancellation
// nothing is left behind.
func Build(ctx context.Context, o BuildOptions) (*BuildStats, error) {
	return build.Run(ctx, o)
}

// BuildVectors builds an index of vectors held in memory (row-major, dim
// elements each; row i gets id i) into o.Out, as Build does from a file;
// o.Base must be empty. The vectors are read, not copied or modified.
func BuildVectors[T Element](ctx context.Context, vectors []T, dim int, o BuildOptions) (*BuildStats, error) {
	in, err := datasets.VectorsInMemory(elemType[T](), dim, datasets.Bytes(vectors))
	if err != nil {
		return nil, err
	}
	o.Input = in
	return build.Run(ctx, o)
}
