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
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
)

// BuildOptions configures Build; see spann-build --help for each field's meaning.
type BuildOptions = build.Options

// BuildStats summarises a finished build.
type BuildStats = build.Stats

// Build builds an index from o.Base into the directory o.Out. The directory
// appears only when the build is complete; on failure nothing is left
// behind, and on cancellation only what o.Resume needs, in a hidden
// directory beside o.Out (see BuildOptions.Resume).
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

// BuildSeq builds an index of the vectors that vectors yields, each a row
// of dim elements (the i-th yielded gets id i), into o.Out, as Build does
// from a file; o.Base and o.Input must be empty. A build reads its base
// twice (a sample, then every row), so the rows are first streamed to a
// temporary vector file in o.TmpDir (the system's temporary directory if
// empty), which is removed when the build ends: memory holds one row at a
// time, the disk one copy of the base. A row of another length, an empty
// sequence or cancellation stops it with an error.
func BuildSeq[T Element](ctx context.Context, vectors iter.Seq[[]T], dim int, o BuildOptions) (*BuildStats, error) {
	if o.Base != "" || o.Input != nil {
		return nil, errors.New("spann: BuildSeq takes its vectors from the sequence: Base and Input must be empty")
	}
	tmp, err := os.MkdirTemp(o.TmpDir, "spann-seq-")
	if err != nil {
		return nil, fmt.Errorf("spann: spool the vectors: %w", err)
	}
	defer os.RemoveAll(tmp)
	t := elemType[T]()
	path := filepath.Join(tmp, "base"+t.Ext())
	w, err := datasets.CreateVectors(path, t, dim)
	if err != nil {
		return nil, err
	}
	n := 0
	for v := range vectors {
		if len(v) != dim {
			w.Abort()
			return nil, fmt.Errorf("spann: BuildSeq: row %d has %d elements, want %d", n, len(v), dim)
		}
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				w.Abort()
				return nil, err
			}
		}
		if err := w.Write(datasets.Bytes(v)); err != nil {
			w.Abort()
			return nil, err
		}
		n++
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("spann: BuildSeq: %w", err)
	}
	in, err := datasets.OpenVectors(path, t)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	in.Path = "(sequence)" // what the manifest records as the base
	o.Input = in
	return build.Run(ctx, o)
}
