package buildkit_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/buildkit"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/testutil"
)

// kitBuild builds the index of o.Base into o.Out the way a distributed
// pipeline does: the phases one by one, the base assigned in blocks, the
// records of each head range shuffled (a shuffle keeps no order) and
// encoded on their own, the extents written in head order.
func kitBuild(t *testing.T, o buildkit.Options, blockRows, ranges int) {
	t.Helper()
	ctx := context.Background()
	if err := o.Fill(); err != nil {
		t.Fatal(err)
	}
	base, err := datasets.OpenVectors(o.Base, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		t.Fatal(err)
	}
	heads, err := buildkit.SelectHeads(ctx, &o, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := buildkit.WriteHeads(o.Out, &o, heads); err != nil {
		t.Fatal(err)
	}
	if err := buildkit.BuildGraph(&o, heads, o.Out); err != nil {
		t.Fatal(err)
	}
	model, err := buildkit.LoadModel(o.Out, &o)
	if err != nil {
		t.Fatal(err)
	}
	nh, rb := len(heads.IDs), base.RowBytes()
	per := (nh + ranges - 1) / ranges
	records := make([][]byte, ranges)
	st := buildkit.NewStats(&o, base)
	var assigned buildkit.AssignStats
	a := model.NewAssigner()
	err = base.Stream(blockRows, func(start int, raw []byte) error {
		s, err := a.Assign(start, raw, rb, func(head int32, rec []byte) error {
			r := int(head) / per
			records[r] = append(records[r], rec...)
			return nil
		})
		assigned.Rows += s.Rows
		assigned.Replicas += s.Replicas
		assigned.ReplicaMax = max(assigned.ReplicaMax, s.ReplicaMax)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if assigned.Rows != int64(base.N-nh) {
		t.Fatalf("%d vectors assigned, want %d", assigned.Rows, base.N-nh)
	}
	table, err := buildkit.SharedTable(&o, heads)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := buildkit.CreatePostings(o.Out, &o, rb, nh, table)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var nearest int64
	for r := range ranges {
		recs := records[r]
		n := len(recs) / buildkit.RecordBytes(rb)
		rng.Shuffle(n, func(i, j int) {
			w := buildkit.RecordBytes(rb)
			x, y := recs[i*w:(i+1)*w], recs[j*w:(j+1)*w]
			tmp := append([]byte(nil), x...)
			copy(x, y)
			copy(y, tmp)
		})
		rs, err := buildkit.EncodeRange(&o, rb, table, r*per, min(nh, (r+1)*per), recs, func(head int, extent []byte, count int) error {
			return pf.Add(extent, count)
		})
		if err != nil {
			t.Fatal(err)
		}
		nearest += rs.Nearest
		st.Dropped += rs.Dropped
		st.KeptPastLimit += rs.PastLimit
	}
	if err := buildkit.CheckStored(base.N, nh, nearest); err != nil {
		t.Fatal(err)
	}
	if err := pf.Finish(st); err != nil {
		t.Fatal(err)
	}
	st.Heads = nh
	if err := buildkit.WriteManifest(o.Out, &o, base, nh, st); err != nil {
		t.Fatal(err)
	}
}

func TestKitEqualsBuild(t *testing.T) {
	for _, c := range []struct {
		name   string
		typ    datasets.ElemType
		metric spann.Metric
	}{{"u8-l2", datasets.Uint8, spann.L2}, {"f32-cosine", datasets.Float32, spann.Cosine}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			basePath := filepath.Join(dir, "base"+c.typ.Ext())
			if err := datasets.Generate(basePath, datasets.GenParams{N: 5000, Dim: 24, Type: c.typ, Seed: 5, Clusters: 10}, 2, nil); err != nil {
				t.Fatal(err)
			}
			id := indexfile.BuildID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
			opts := func(out string, threads int) spann.BuildOptions {
				return spann.BuildOptions{Base: basePath, Out: filepath.Join(dir, out), Metric: c.metric, HeadRatio: 0.12,
					PostingLimit: 30, Threads: threads, Seed: 4, MemoryBudget: 256 << 20, BuildID: id}
			}
			if _, err := spann.Build(context.Background(), opts("built", 2)); err != nil {
				t.Fatal(err)
			}
			kitBuild(t, opts("kit", 1), 700, 7)
			if err := testutil.SameIndex(filepath.Join(dir, "built"), filepath.Join(dir, "kit")); err != nil {
				t.Fatal(err)
			}
			if _, err := spann.Check(filepath.Join(dir, "kit")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
