// Package buildkit is spann-build's pipeline cut into its phases, for a
// build that runs them on a distributed engine (the Apache Beam pipeline
// in the repository's beam/ module) instead of in one process: select the
// heads (one worker), build their graph (one worker), assign every vector
// to its replica heads (any number of workers, each with the heads and
// graph loaded as a Model), encode the postings of each head range (any
// number of workers, each with every record of its heads), then write
// postings.bin in head order from the extents, the directory and the
// manifest last (one worker).
//
// Each phase is the code spann-build runs, so an index assembled from
// them has spann-build's heads.bin, graph.bin, postings.bin and
// directory.bin byte for byte, given the same base, options, seed,
// memory budget (it sizes the clustering sample) and build id; only the
// manifest's timings differ. The options are spann.BuildOptions; call
// Fill on them once and give every phase the same.
package buildkit

import (
	"context"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/posting"
)

// Options are a build's parameters (spann.BuildOptions); Fill checks them
// and sets the defaults.
type Options = build.Options

// Stats is a build's summary, written into the manifest.
type Stats = build.Stats

// Heads is the head set: base rows ascending, and their vectors.
type Heads = build.Heads

// Model is the heads and their graph, loaded to assign vectors.
type Model = build.Model

// Assigner assigns vectors to their replica heads (one per worker).
type Assigner = build.Assigner

// AssignStats counts what an Assigner found.
type AssignStats = build.AssignStats

// RangeStats counts what the posting limit did to one head range.
type RangeStats = build.RangeStats

// Postings assembles postings.bin and directory.bin.
type Postings = build.Postings

// Index file names.
const (
	HeadsFile     = build.HeadsFile
	GraphFile     = build.GraphFile
	DirectoryFile = build.DirectoryFile
	PostingsFile  = build.PostingsFile
)

// HeadCount is the number of heads of a build of n vectors.
func HeadCount(o *Options, n int) int { return build.HeadCount(o, n) }

// SelectHeads picks the heads of base (the first phase, one worker).
func SelectHeads(ctx context.Context, o *Options, base *datasets.VectorFile) (*Heads, error) {
	return build.SelectHeads(ctx, o, base)
}

// WriteHeads writes h to dir/heads.bin.
func WriteHeads(dir string, o *Options, h *Heads) error { return build.WriteHeads(dir, o, h) }

// ReadHeads reads dir/heads.bin, which must be o.BuildID's.
func ReadHeads(dir string, o *Options) (*Heads, error) { return build.ReadHeads(dir, o) }

// BuildGraph builds the head graph and writes dir/graph.bin (one worker).
func BuildGraph(o *Options, h *Heads, dir string) error { return build.BuildGraph(o, h, dir) }

// LoadModel loads dir/heads.bin and dir/graph.bin to assign vectors.
func LoadModel(dir string, o *Options) (*Model, error) { return build.LoadModel(dir, o) }

// RecordBytes is the size of one assignment record of rowBytes-byte rows.
func RecordBytes(rowBytes int) int { return build.RecordBytes(rowBytes) }

// SharedTable trains the postings file's shared Huffman table from the
// heads (nil for a codec without one; it may switch o.Codec, as
// spann-build does, when the heads do not compress with one table).
func SharedTable(o *Options, h *Heads) (*posting.Table, error) { return build.SharedTable(o, h) }

// EncodeRange encodes the postings of heads [lo, hi) from all their
// records, in any order, and calls emit for each head in order.
func EncodeRange(o *Options, rowBytes int, table *posting.Table, lo, hi int, records []byte,
	emit func(head int, extent []byte, count int) error) (RangeStats, error) {
	return build.EncodeRange(o, rowBytes, table, lo, hi, records, emit)
}

// CreatePostings starts dir/postings.bin for heads postings; its Add takes
// the extents in head order and Finish writes directory.bin.
func CreatePostings(dir string, o *Options, rowBytes, heads int, table *posting.Table) (*Postings, error) {
	return build.CreatePostings(dir, o, rowBytes, heads, table)
}

// CheckStored fails unless every vector but the heads kept its nearest
// head's record (nearest summed over the ranges).
func CheckStored(n, heads int, nearest int64) error { return build.CheckStored(n, heads, nearest) }

// NewStats starts the summary of a build of base.
func NewStats(o *Options, base *datasets.VectorFile) *Stats { return build.NewStats(o, base) }

// WriteManifest writes dir/manifest.json, last.
func WriteManifest(dir string, o *Options, base *datasets.VectorFile, heads int, st *Stats) error {
	return build.WriteManifest(dir, o, base, heads, st)
}

// BuildID identifies a build in every file it writes.
type BuildID = indexfile.BuildID

// NewBuildID draws a random build id.
func NewBuildID() (BuildID, error) { return indexfile.NewBuildID() }

// ParseBuildID parses a build id of 32 hex digits.
func ParseBuildID(s string) (BuildID, error) { return indexfile.ParseBuildID(s) }

// DefaultMemoryBudget is spann-build's default budget, a quarter of RAM.
// The budget sizes the clustering sample, so a pipeline must give its
// workers the launcher's figure for their heads to be spann-build's.
func DefaultMemoryBudget() int64 { return build.DefaultMemoryBudget() }

// ShardDir is the directory of shard s inside a sharded index.
func ShardDir(s int) string { return indexfile.ShardDir(s) }

// ShardBuildID is the build id spann-build --shards --build-id ID gives
// shard s: a pipeline deriving its shards' ids with it makes spann-build's
// shards byte for byte.
func ShardBuildID(id BuildID, s int) BuildID { return indexfile.ShardBuildID(id, s) }

// WriteShards writes dir/shards.json, last, for a base split by mod
// routing (vector i in shard i mod S as its vector i div S) into the
// shards dir/shard-NNN, whose build ids are buildIDs, n vectors in all.
func WriteShards(dir string, buildIDs []string, n int64) error {
	sh := &indexfile.Shards{Routing: indexfile.RoutingMod, Shards: len(buildIDs), N: n, BuildIDs: buildIDs}
	for s := range buildIDs {
		sh.Dirs = append(sh.Dirs, indexfile.ShardDir(s))
	}
	return indexfile.WriteShards(vfs.OS, dir, sh)
}
