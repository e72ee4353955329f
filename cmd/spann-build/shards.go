package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
	"github.com/gospann/spann/internal/cmdutil"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/posting"
)

// shardSummary is --shards' summary: each shard's build figures.
type shardSummary struct {
	Shards  int            `json:"shards"`
	N       int            `json:"n"`
	Seconds float64        `json:"seconds"`
	Each    []*build.Stats `json:"each"`
}

// runSharded builds --shards S indexes into o.Out (layout in
// internal/indexfile/shards.go): the base is split by "mod" routing into
// temporary files beside the shards, each shard is built (and labelled)
// as spann-build builds one index, and shards.json is written last. With
// --resume a shard whose index is complete is kept.
func runSharded(ctx context.Context, c *cli.Context, o build.Options, labels *datasets.Labels, shards int) error {
	start := time.Now()
	if sh, err := indexfile.ReadShards(o.Out); (sh != nil || err != nil) && !o.Force && !o.Resume {
		return fmt.Errorf("%s is a sharded index already: give --force to replace it, or --resume to finish it", o.Out)
	}
	os.Remove(filepath.Join(o.Out, indexfile.ShardsName)) // (a replaced set is not one until rewritten)
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	split := filepath.Join(o.Out, ".split")
	if err := os.MkdirAll(split, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(split)
	typ := o.Type
	if typ == 0 {
		t, err := datasets.TypeFromPath(o.Base)
		if err != nil {
			return err
		}
		typ = t
	}
	bases := make([]string, shards)
	for s := range bases {
		bases[s] = filepath.Join(split, indexfile.ShardDir(s)+typ.Ext())
	}
	counts, err := datasets.SplitVectors(o.Base, typ, o.Crop, bases)
	if err != nil {
		return err
	}
	sum := &shardSummary{Shards: shards}
	set := &indexfile.Shards{Routing: indexfile.RoutingMod, Shards: shards}
	for s := range shards {
		so := o
		so.Base, so.Type, so.Crop, so.Out = bases[s], typ, 0, filepath.Join(o.Out, indexfile.ShardDir(s))
		if c.String("build-id") != "" { // distinct ids, still reproducible (else each drawn at random)
			so.BuildID = indexfile.ShardBuildID(so.BuildID, s)
		}
		st, err := buildShard(ctx, c, so, shardLabels(labels, s, shards), counts[s])
		if err != nil {
			return fmt.Errorf("shard %d of %d: %w", s, shards, err)
		}
		m, err := indexfile.ReadManifest(so.Out)
		if err != nil {
			return err
		}
		set.Dirs, set.BuildIDs = append(set.Dirs, indexfile.ShardDir(s)), append(set.BuildIDs, m.BuildID)
		set.N += int64(counts[s])
		sum.Each = append(sum.Each, st)
	}
	if err := indexfile.WriteShards(vfs.OS, o.Out, set); err != nil {
		return err
	}
	sum.N, sum.Seconds = int(set.N), time.Since(start).Seconds()
	if c.Bool("json") {
		return cmdutil.PrintJSON(os.Stdout, sum)
	}
	fmt.Printf("built %s: %d vectors in %d shards (vector i in shard i mod %d), %.1f s\n", o.Out, sum.N, shards, shards, sum.Seconds)
	for s, st := range sum.Each {
		fmt.Printf("  %s: %d vectors, %d heads, %.1f MiB, %.1f s\n", indexfile.ShardDir(s), st.N, st.Heads, float64(st.TotalBytes)/(1<<20), st.TotalSeconds)
	}
	return nil
}

// buildShard builds one shard of n vectors (under --resume keeping a
// complete one that holds them, with its labels) and attaches its labels.
// A kept shard's figures hold only its N.
func buildShard(ctx context.Context, c *cli.Context, o build.Options, labels *datasets.Labels, n int) (*build.Stats, error) {
	if o.Resume {
		if ix, err := spann.Open(o.Out, spann.Options{IO: "pread"}); err == nil {
			got, labelled, why := ix.N(), ix.Labels() > 0, otherBuild(o, ix.Manifest)
			ix.Close()
			switch {
			case got != n:
				fmt.Fprintf(os.Stderr, "spann-build: %s holds %d vectors, this split %d: building it again\n", o.Out, got, n)
			case why != "":
				fmt.Fprintf(os.Stderr, "spann-build: %s was built with %s: building it again\n", o.Out, why)
			case labels != nil && !labelled:
				return &build.Stats{N: got}, attachLabels(c, o, labels)
			default:
				return &build.Stats{N: got}, nil
			}
		}
	}
	o.Force = true // (a shard directory is ours: shards.json is not yet written)
	st, err := build.Run(ctx, o)
	if err != nil {
		return nil, err
	}
	if labels != nil {
		if err := attachLabels(c, o, labels); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// otherBuild says how the index m describes was built otherwise than o
// would build it ("" if not): another build id (when o names one) or
// other parameters.
func otherBuild(o build.Options, m *indexfile.Manifest) string {
	if !o.BuildID.IsZero() && o.BuildID.String() != m.BuildID {
		return "build id " + m.BuildID
	}
	if err := o.Fill(); err != nil {
		return err.Error()
	}
	p := m.Params
	want := indexfile.BuildParams{HeadRatio: o.HeadRatio, Replicas: o.Replicas, PostingLimit: o.PostingLimit,
		RNGFactor: o.RNGFactor, ReplicaEps: o.ReplicaEps, CandidateHeads: o.CandidateHeads, Codec: o.Codec.String(),
		Seed: o.Seed, GraphDegree: o.Graph.Degree, GraphBuildList: o.Graph.BuildList}
	got := indexfile.BuildParams{HeadRatio: p.HeadRatio, Replicas: p.Replicas, PostingLimit: p.PostingLimit,
		RNGFactor: p.RNGFactor, ReplicaEps: p.ReplicaEps, CandidateHeads: p.CandidateHeads, Codec: p.Codec,
		Seed: p.Seed, GraphDegree: p.GraphDegree, GraphBuildList: p.GraphBuildList}
	if got.Codec == posting.CodecHuff.String() && want.Codec == posting.CodecHuffShared.String() {
		got.Codec = want.Codec // (the build's fallback when one table does not compress the heads)
	}
	if got != want {
		return fmt.Sprintf("other parameters (%+v, this run %+v)", got, want)
	}
	return ""
}

// attachLabels attaches labels (--labels, or a shard's rows of it) to
// the built index o.Out.
func attachLabels(c *cli.Context, o build.Options, labels *datasets.Labels) error {
	lo := cmdutil.LabelLists(c, o.Threads)
	end := cmdutil.LabelProgress(o.Progress, &lo)
	err := spann.AttachLabels(o.Out, labels, lo)
	end()
	if err != nil {
		return fmt.Errorf("the index %s is built, but its labels are not: %w", o.Out, err)
	}
	return nil
}

// shardLabels returns the rows of labels that shard s of shards holds
// (nil for nil).
func shardLabels(labels *datasets.Labels, s, shards int) *datasets.Labels {
	if labels == nil {
		return nil
	}
	var rows [][]int32
	for i := s; i < labels.Rows(); i += shards {
		rows = append(rows, labels.Row(i))
	}
	l, _ := datasets.NewLabels(rows, labels.Vocab) // rows of a valid Labels: no error
	return l
}
