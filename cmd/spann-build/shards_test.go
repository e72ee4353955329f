package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
)

// --shards 3 builds three complete indexes, base vector i in shard i mod
// 3 as its vector i div 3, each with its rows of --labels, and
// shards.json last; a second build needs --force, --resume keeps the
// complete shards, and --shards 0 is refused.
func TestShardedBuild(t *testing.T) {
	base := genBase(t, 3001, 8)
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels.txt")
	var text strings.Builder
	for i := range 3001 {
		text.WriteString([]string{"0\n", "1\n", "0 1\n"}[i%3])
	}
	os.WriteFile(labels, []byte(text.String()), 0o644)
	out := filepath.Join(dir, "sharded")
	if err := run("--base", base, "--out", out, "--shards", "3", "--labels", labels, "--quiet", "--threads", "2"); err != nil {
		t.Fatal(err)
	}
	sh, err := indexfile.ReadShards(out)
	if err != nil || sh == nil || sh.Shards != 3 || sh.N != 3001 {
		t.Fatalf("shards.json: %+v, %v", sh, err)
	}
	if _, err := os.Stat(filepath.Join(out, ".split")); !os.IsNotExist(err) {
		t.Errorf("the split base files are left: %v", err)
	}
	m, _ := datasets.LoadVectors(base, 0, 0)
	for s := range 3 {
		ix, err := spann.Open(filepath.Join(out, sh.Dirs[s]), spann.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if want := (3001 - s + 2) / 3; ix.N() != want || ix.Manifest.BuildID != sh.BuildIDs[s] {
			t.Fatalf("shard %d: %d vectors (want %d), build %s (shards.json: %s)", s, ix.N(), want, ix.Manifest.BuildID, sh.BuildIDs[s])
		}
		for _, local := range []int64{0, 17, int64(ix.N() - 1)} {
			id := indexfile.GlobalID(local, s, 3)
			got, err := ix.Search(m.Row(int(id)), 1, spann.SearchParams{NProbe: 32})
			if err != nil || len(got) != 1 || int64(got[0].ID) != local || got[0].Dist != 0 {
				t.Fatalf("shard %d: base vector %d found as %v (%v), want local %d", s, id, got, err, local)
			}
		}
		// Shard s holds labels of rows s, s+3, …: all carry label s%3's set.
		n0, _ := ix.MatchCount([]int32{0})
		n1, _ := ix.MatchCount([]int32{1})
		if want0, want1 := map[int]int{0: ix.N(), 1: 0, 2: ix.N()}[s], map[int]int{0: 0, 1: ix.N(), 2: ix.N()}[s]; n0 != want0 || n1 != want1 {
			t.Errorf("shard %d: labels 0 and 1 on %d and %d of %d vectors", s, n0, n1, ix.N())
		}
		ix.Close()
	}
	if err := run("--base", base, "--out", out, "--shards", "3", "--quiet"); err == nil || !strings.Contains(err.Error(), "is a sharded index already") {
		t.Errorf("a second sharded build without --force: %v", err)
	}
	if err := run("--base", base, "--out", out, "--shards", "3", "--quiet", "--resume"); err != nil {
		t.Errorf("--resume of a complete set: %v", err)
	}
	// --resume with other parameters builds every shard again.
	if err := run("--base", base, "--out", out, "--shards", "3", "--quiet", "--resume", "--replicas", "4"); err != nil {
		t.Fatal(err)
	}
	for s := range 3 {
		m, err := indexfile.ReadManifest(filepath.Join(out, indexfile.ShardDir(s)))
		if err != nil || m.Params.Replicas != 4 {
			t.Fatalf("shard %d after --resume --replicas 4: %+v, %v", s, m, err)
		}
	}
	// --resume over shards built without labels attaches them; over a
	// shard of other vectors (another base) builds it again.
	plain := filepath.Join(dir, "plain")
	if err := run("--base", base, "--out", plain, "--shards", "3", "--quiet"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(plain, indexfile.ShardsName))
	os.RemoveAll(filepath.Join(plain, "shard-001"))
	if err := run("--base", genBase(t, 2000, 8), "--out", filepath.Join(plain, "shard-001"), "--quiet"); err != nil {
		t.Fatal(err)
	}
	if err := run("--base", base, "--out", plain, "--shards", "3", "--labels", labels, "--quiet", "--resume"); err != nil {
		t.Fatalf("--resume with labels: %v", err)
	}
	for s := range 3 {
		ix, err := spann.Open(filepath.Join(plain, indexfile.ShardDir(s)), spann.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if want := (3001 - s + 2) / 3; ix.N() != want || ix.Labels() != 2 {
			t.Errorf("resumed shard %d: %d vectors (want %d), %d labels (want 2)", s, ix.N(), want, ix.Labels())
		}
		ix.Close()
	}
	if err := run("--base", base, "--out", out, "--shards", "0", "--quiet"); err == nil || !strings.Contains(err.Error(), "--shards 0") {
		t.Errorf("--shards 0: %v", err)
	}
}
