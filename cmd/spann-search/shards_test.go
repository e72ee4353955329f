package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vfs"
)

// check on a sharded index checks every shard against shards.json: a
// listed build id that is not the shard's, or a wrong count, fails.
func TestCheckShards(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.u8bin")
	if err := datasets.Generate(base, datasets.GenParams{N: 1200, Dim: 8, Type: datasets.Uint8, Seed: 5}, 2, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "sharded")
	bases := []string{filepath.Join(dir, "s0.u8bin"), filepath.Join(dir, "s1.u8bin")}
	if _, err := datasets.SplitVectors(base, 0, 0, bases); err != nil {
		t.Fatal(err)
	}
	set := &indexfile.Shards{Routing: indexfile.RoutingMod, Shards: 2, N: 1200}
	for s, b := range bases {
		d := filepath.Join(out, indexfile.ShardDir(s))
		if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: b, Out: d, Threads: 2, Seed: 1, MemoryBudget: 256 << 20}); err != nil {
			t.Fatal(err)
		}
		m, _ := indexfile.ReadManifest(d)
		set.Dirs, set.BuildIDs = append(set.Dirs, indexfile.ShardDir(s)), append(set.BuildIDs, m.BuildID)
	}
	if err := indexfile.WriteShards(vfs.OS, out, set); err != nil {
		t.Fatal(err)
	}
	if err := run("check", "--index", out, "--json"); err != nil {
		t.Fatal(err)
	}
	set.N = 1201
	indexfile.WriteShards(vfs.OS, out, set)
	if err := run("check", "--index", out); err == nil || !strings.Contains(err.Error(), "the shards hold 1200 vectors, shards.json says 1201") {
		t.Errorf("wrong n: %v", err)
	}
	set.N, set.BuildIDs[1] = 1200, set.BuildIDs[0]
	indexfile.WriteShards(vfs.OS, out, set)
	if err := run("check", "--index", out); err == nil || !strings.Contains(err.Error(), "shard 1 is build") {
		t.Errorf("wrong build id: %v", err)
	}
}
