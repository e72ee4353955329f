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
	"github.com/gospann/spann/internal/build"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vfs"
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

var (
	// HeadCount is the number of heads of a build of n vectors.
	HeadCount = build.HeadCount
	// SelectHeads picks the heads of the base (the first phase).
	SelectHeads = build.SelectHeads
	// WriteHeads writes heads.bin; ReadHeads reads it back.
	WriteHeads = build.WriteHeads
	ReadHeads  = build.ReadHeads
	// BuildGraph builds the head graph and writes graph.bin.
	BuildGraph = build.BuildGraph
	// LoadModel loads heads.bin and graph.bin for assignment.
	LoadModel = build.LoadModel
	// RecordBytes is the size of one assignment record.
	RecordBytes = build.RecordBytes
	// SharedTable trains the postings file's shared Huffman table.
	SharedTable = build.SharedTable
	// EncodeRange encodes the postings of one head range from its records.
	EncodeRange = build.EncodeRange
	// CreatePostings starts postings.bin; its Add takes the extents in
	// head order and Finish writes directory.bin.
	CreatePostings = build.CreatePostings
	// CheckStored checks that every vector kept its nearest head's record.
	CheckStored = build.CheckStored
	// NewStats starts a build's summary.
	NewStats = build.NewStats
	// WriteManifest writes manifest.json, last.
	WriteManifest = build.WriteManifest
)

// BuildID identifies a build in every file it writes.
type BuildID = indexfile.BuildID

var (
	// NewBuildID draws a random build id; ParseBuildID parses 32 hex digits.
	NewBuildID   = indexfile.NewBuildID
	ParseBuildID = indexfile.ParseBuildID
	// DefaultMemoryBudget is spann-build's default budget, a quarter of
	// RAM: it sizes the clustering sample, so a pipeline must give its
	// workers the launcher's figure for their heads to be spann-build's.
	DefaultMemoryBudget = build.DefaultMemoryBudget
)

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
