package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/buildkit"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/posting"
)

func TestMain(m *testing.M) {
	beam.Init()
	os.Exit(m.Run())
}

// run builds cfg's index on Prism.
func run(t *testing.T, cfg Config) error {
	t.Helper()
	cfg, err := New(cfg)
	if err != nil {
		return err
	}
	p, s := beam.NewPipelineWithRoot()
	Construct(s, cfg)
	_, err = prism.Execute(context.Background(), p)
	return err
}

// sameFiles fails unless dirs a and b hold the same four index files.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	for _, name := range []string{buildkit.HeadsFile, buildkit.GraphFile, buildkit.DirectoryFile, buildkit.PostingsFile} {
		x, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between spann-build's index and the pipeline's", name)
		}
	}
}

// TestPipelineEqualsBuild: on Prism, with the base in many blocks and
// the heads in many ranges, the pipeline writes spann-build's index byte
// for byte, and it opens, checks and answers queries.
func TestPipelineEqualsBuild(t *testing.T) {
	for _, c := range []struct {
		name, metric, codec, shuffle string
		typ                          datasets.ElemType
	}{
		{"u8-l2-huff-shared", "l2", "huff-shared", ShuffleRunner, datasets.Uint8},
		{"u8-l2-files-shuffle", "l2", "huff-shared", ShuffleFiles, datasets.Uint8},
		{"f32-cosine-zstd", "cosine", "zstd", "", datasets.Float32},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			base := filepath.Join(dir, "base"+c.typ.Ext())
			if err := datasets.Generate(base, datasets.GenParams{N: 6000, Dim: 24, Type: c.typ, Seed: 8, Clusters: 12}, 2, nil); err != nil {
				t.Fatal(err)
			}
			const id = "0123456789abcdef0123456789abcdef"
			bid, _ := buildkit.ParseBuildID(id)
			metric, _ := spann.ParseMetric(c.metric)
			o := spann.BuildOptions{Base: base, Out: filepath.Join(dir, "built"), Metric: metric, HeadRatio: 0.1,
				PostingLimit: 40, Threads: 2, Seed: 3, MemoryBudget: 256 << 20, BuildID: bid}
			var err error
			if o.Codec, err = posting.ParseCodec(c.codec); err != nil {
				t.Fatal(err)
			}
			if _, err := spann.Build(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "beam")
			cfg := Config{Base: base, Out: out, Metric: c.metric, Codec: c.codec, HeadRatio: 0.1, PostingLimit: 40,
				Threads: 1, Seed: 3, MemoryBudget: 256 << 20, BuildID: id, BlockRows: 500, Ranges: 9, Workers: 2, Shuffle: c.shuffle}
			if err := run(t, cfg); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, o.Out, out)
			if _, err := spann.Check(out); err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
}

// TestNewRanges: no head range starts past the last head, whatever
// --ranges asks.
func TestNewRanges(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.u8bin")
	if err := datasets.Generate(base, datasets.GenParams{N: 6000, Dim: 8, Type: datasets.Uint8, Seed: 1}, 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, asked := range []int{0, 1, 9, 35, 599, 600, 10000} {
		cfg, err := New(Config{Base: base, Out: filepath.Join(dir, "x"), HeadRatio: 0.1, Ranges: asked})
		if err != nil {
			t.Fatal(err)
		}
		if last := (cfg.Ranges - 1) * cfg.perRange(); cfg.Heads != 600 || cfg.Ranges < 1 || last >= cfg.Heads || cfg.Ranges*cfg.perRange() < cfg.Heads {
			t.Errorf("--ranges %d: %d ranges of %d over %d heads", asked, cfg.Ranges, cfg.perRange(), cfg.Heads)
		}
	}
}

func TestNewRejects(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.u8bin")
	if err := datasets.Generate(base, datasets.GenParams{N: 500, Dim: 8, Type: datasets.Uint8, Seed: 1}, 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Base: base}, "both --base and --out"},
		{Config{Base: filepath.Join(dir, "none.u8bin"), Out: filepath.Join(dir, "x")}, "none.u8bin"},
		{Config{Base: base, Out: dir}, "already exists"},
		{Config{Base: base, Out: filepath.Join(dir, "x"), Metric: "manhattan"}, "manhattan"},
		{Config{Base: base, Out: filepath.Join(dir, "x"), BuildID: "xyz"}, "--build-id"},
		{Config{Base: base, Out: filepath.Join(dir, "x"), HeadRatio: 2}, "--head-ratio"},
		{Config{Base: base, Out: filepath.Join(dir, "x"), Workers: -1}, "--workers"},
		{Config{Base: base, Out: filepath.Join(dir, "x"), Shuffle: "disk"}, "--shuffle"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.cfg, err, c.want)
		}
	}
}

// TestShardedPipeline: --shards 3 through the pipeline makes, shard by
// shard, the index spann-build makes of that shard's vectors (i mod 3)
// with spann-build --shards' build ids, and shards.json last, the split
// base removed.
func TestShardedPipeline(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.u8bin")
	if err := datasets.Generate(base, datasets.GenParams{N: 4500, Dim: 16, Type: datasets.Uint8, Seed: 2, Clusters: 6}, 2, nil); err != nil {
		t.Fatal(err)
	}
	const id = "00112233445566778899aabbccddeeff"
	out := filepath.Join(dir, "sharded")
	sh, err := NewSharded(Config{Base: base, Out: out, HeadRatio: 0.1, Threads: 1, Seed: 6, MemoryBudget: 256 << 20,
		BuildID: id, BlockRows: 400, Ranges: 5, Shuffle: ShuffleFiles}, 3)
	if err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	sh.Construct(s)
	if _, err := prism.Execute(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	split := make([]string, 3)
	for i := range split {
		split[i] = filepath.Join(dir, fmt.Sprintf("part%d.u8bin", i))
	}
	counts, err := datasets.SplitVectors(base, datasets.Uint8, 0, split)
	if err != nil {
		t.Fatal(err)
	}
	setID, _ := buildkit.ParseBuildID(id)
	var ids []string
	for i := range split {
		o := spann.BuildOptions{Base: split[i], Out: filepath.Join(dir, fmt.Sprintf("built%d", i)), HeadRatio: 0.1,
			Threads: 2, Seed: 6, MemoryBudget: 256 << 20, BuildID: buildkit.ShardBuildID(setID, i), Codec: posting.DefaultCodec}
		if _, err := spann.Build(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, o.Out, filepath.Join(out, buildkit.ShardDir(i)))
		ids = append(ids, o.BuildID.String())
	}
	data, err := os.ReadFile(filepath.Join(out, "shards.json"))
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Routing  string   `json:"routing"`
		N        int      `json:"n"`
		Dirs     []string `json:"dirs"`
		BuildIDs []string `json:"build_ids"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	if set.Routing != "mod" || set.N != counts[0]+counts[1]+counts[2] || set.N != 4500 ||
		!slices.Equal(set.BuildIDs, ids) || !slices.Equal(set.Dirs, []string{"shard-000", "shard-001", "shard-002"}) {
		t.Fatalf("shards.json: %+v, want mod routing of 4500 vectors, build ids %v", set, ids)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 4 {
		t.Fatalf("%s holds %d entries, want 3 shards and shards.json", out, len(ents))
	}
}

// TestCollectRanges: commit takes each range once (a retried call's
// duplicate is dropped) and refuses a set with a range missing or out of
// bounds.
func TestCollectRanges(t *testing.T) {
	cfg := Config{Ranges: 3}
	iter := func(rs ...RangeDone) func(*RangeDone) bool {
		return func(out *RangeDone) bool {
			if len(rs) == 0 {
				return false
			}
			*out, rs = rs[0], rs[1:]
			return true
		}
	}
	got, err := collectRanges(cfg, iter(RangeDone{Range: 2, Path: "c"}, RangeDone{Range: 0, Path: "a"},
		RangeDone{Range: 1, Path: "b"}, RangeDone{Range: 0, Path: "a2"}))
	if err != nil || len(got) != 3 || got[0].Path != "a" || got[1].Path != "b" || got[2].Path != "c" {
		t.Fatalf("collectRanges: %+v, %v", got, err)
	}
	if _, err := collectRanges(cfg, iter(RangeDone{Range: 0}, RangeDone{Range: 2})); err == nil || !strings.Contains(err.Error(), "head range 1 was never encoded") {
		t.Errorf("a missing range: %v", err)
	}
	if _, err := collectRanges(cfg, iter(RangeDone{Range: 3})); err == nil || !strings.Contains(err.Error(), "encoded range 3 of 3") {
		t.Errorf("a range out of bounds: %v", err)
	}
}

// TestCommitted: a commit retried after its rename finds the index in
// place (its manifest's build id) and does nothing more.
func TestCommitted(t *testing.T) {
	out := filepath.Join(t.TempDir(), "idx")
	cfg := Config{Out: out, BuildID: "0123456789abcdef0123456789abcdef"}
	if committed(cfg) {
		t.Fatal("committed with no index")
	}
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "manifest.json"), []byte(`{"build_id": "ffff456789abcdef0123456789abcdef"}`), 0o644)
	if committed(cfg) {
		t.Fatal("another build's index taken as this one's")
	}
	os.WriteFile(filepath.Join(out, "manifest.json"), []byte(`{"build_id": "0123456789abcdef0123456789abcdef"}`), 0o644)
	if !committed(cfg) {
		t.Fatal("this build's index not recognised")
	}
}
