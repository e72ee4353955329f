package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/client"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/eval"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/internal/vfs"
	spannv1 "github.com/gospann/spann/server/gen/spannv1"
	"github.com/gospann/spann/server/gen/spannv1/spannv1connect"
)

// listen serves h on loopback and returns its URL and a function that
// stops it at once (a shard going down).
func listen(t *testing.T, h http.Handler) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), func() { srv.Close() }
}

// shardSet builds the fixture's base as 4 shards (mod routing) with their
// shards.json, and serves each: it returns their URLs, the shards file
// and each shard's stop function.
func shardSet(t *testing.T, f *fixture) ([]string, string, []func()) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sharded")
	bases := make([]string, 4)
	for s := range bases {
		bases[s] = filepath.Join(t.TempDir(), indexfile.ShardDir(s)+".u8bin")
	}
	if _, err := datasets.SplitVectors(f.base, 0, 0, bases); err != nil {
		t.Fatal(err)
	}
	set := &indexfile.Shards{Routing: indexfile.RoutingMod, Shards: 4, N: 3000}
	var urls []string
	var stops []func()
	for s, b := range bases {
		out := filepath.Join(dir, indexfile.ShardDir(s))
		if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: b, Out: out, Threads: 2, Seed: 1, MemoryBudget: 256 << 20}); err != nil {
			t.Fatal(err)
		}
		m, _ := indexfile.ReadManifest(out)
		set.Dirs, set.BuildIDs = append(set.Dirs, indexfile.ShardDir(s)), append(set.BuildIDs, m.BuildID)
		srv, err := New(Config{Indexes: []IndexSpec{{Name: "shard", Dir: out}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		url, stop := listen(t, srv.Handler())
		urls, stops = append(urls, url), append(stops, stop)
	}
	if err := indexfile.WriteShards(vfs.OS, dir, set); err != nil {
		t.Fatal(err)
	}
	return urls, filepath.Join(dir, indexfile.ShardsName), stops
}

// A router over 4 shard servers answers with base ids, about as well as
// one index of the whole base; a misordered shard list is refused; a bad
// request fails as the shards fail it; with a shard stopped, answers come
// flagged partial (missing that shard) within the shard deadline, never
// silently and never hanging.
func TestRouterOverShards(t *testing.T) {
	f := newFixture(t)
	urls, shardsFile, stops := shardSet(t, f)
	ctx := context.Background()
	if _, err := NewRouter(ctx, RouterConfig{Shards: []string{urls[1], urls[0], urls[2], urls[3]}, ShardsFile: shardsFile}); err == nil || !strings.Contains(err.Error(), "shard 0") {
		t.Errorf("misordered shards: %v", err)
	}
	r, err := NewRouter(ctx, RouterConfig{Shards: urls, ShardsFile: shardsFile, ShardTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := listen(t, r.Handler())
	c, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if in := c.Info(); in.N != 3000 || in.Shards != 4 || in.Dim != 16 {
		t.Fatalf("router Info: %v", in)
	}
	base, _ := datasets.LoadVectors(f.base, 0, 0)
	for _, id := range []int{0, 1, 2, 3, 1234, 2999} {
		got, _, err := c.Search(ctx, base.Row(id), 1, spann.SearchParams{NProbe: 16})
		if err != nil || len(got) != 1 || got[0].ID != int32(id) || got[0].Dist != 0 {
			t.Fatalf("base vector %d through the router: %v, %v", id, got, err)
		}
	}
	bv, _ := datasets.OpenVectors(f.base, 0)
	defer bv.Close()
	gt, err := eval.ExactKNN(bv, f.qs, eval.GTOptions{K: 10, Metric: vec.L2})
	if err != nil {
		t.Fatal(err)
	}
	p := spann.SearchParams{NProbe: 8}
	recall := func(res *spann.BatchResult) float64 {
		rec, err := eval.RecallAt(gt, &datasets.Results{N: f.qs.N, K: 10, IDs: res.IDs}, 10)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Mean
	}
	routed, err := c.SearchMany(ctx, f.qs.Data, 10, p, 4, 5)
	if err != nil {
		t.Fatal(err)
	}
	one, err := f.ix.SearchBatch(f.qs.Data, 10, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rr, r1 := recall(routed), recall(one); rr < r1-0.05 {
		t.Errorf("recall@10 through 4 shards %.3f, one index %.3f", rr, r1)
	}
	grpc := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC())
	if _, err := grpc.Search(ctx, connect.NewRequest(&spannv1.SearchRequest{Vector: &spannv1.Vector{Data: f.qs.Row(0)}, K: -1})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("k -1 through the router: %v", err)
	}
	if _, err := grpc.Insert(ctx, connect.NewRequest(&spannv1.InsertRequest{Vectors: []*spannv1.Vector{{Data: f.qs.Row(0)}}})); connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Errorf("insert through the router: %v", err)
	}

	stops[2]() // shard 2 goes down
	t0 := time.Now()
	got, _, err := c.Search(ctx, base.Row(2), 10, p)
	var pe *client.PartialError
	if !errors.Is(err, client.ErrPartial) || !errors.As(err, &pe) || len(pe.Missing) != 1 || pe.Missing[0] != 2 {
		t.Fatalf("search with shard 2 down: %v", err)
	}
	for _, n := range got {
		if n.ID%4 == 2 {
			t.Fatalf("shard 2 is down, yet %d came back", n.ID)
		}
	}
	if len(got) != 10 {
		t.Errorf("%d neighbours from the 3 live shards, want 10", len(got))
	}
	res, err := c.SearchMany(ctx, f.qs.Data, 10, p, 4, 5)
	if !errors.As(err, &pe) || pe.Queries != f.qs.N || res == nil {
		t.Fatalf("batch with shard 2 down: %v", err)
	}
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("partial answers took %v", took)
	}
	for _, s := range []int{0, 1, 3} {
		stops[s]()
	}
	if _, _, err := c.Search(ctx, base.Row(0), 10, p); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("every shard down: %v", err)
	}
}

// A shard that hangs (it answers Info, then never a search) is left out
// after the shard deadline: the router answers partial in about that
// time, not when the shard gives up.
func TestRouterHungShard(t *testing.T) {
	f := newFixture(t)
	urls, _, _ := shardSet(t, f)
	// A stand-in for shard 3 that forwards Info to it and holds searches.
	release := make(chan struct{})
	defer close(release)
	target := urls[3]
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Info") {
			forward(t, w, r, target)
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	hung, _ := listen(t, proxy)
	r, err := NewRouter(context.Background(), RouterConfig{Shards: []string{urls[0], urls[1], urls[2], hung}, ShardTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := listen(t, r.Handler())
	c, err := client.Dial(context.Background(), url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, _, err = c.Search(context.Background(), f.qs.Row(0), 10, spann.SearchParams{NProbe: 8})
	var pe *client.PartialError
	if !errors.As(err, &pe) || len(pe.Missing) != 1 || pe.Missing[0] != 3 {
		t.Fatalf("search with shard 3 hung: %v", err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("the partial answer took %v with a 300 ms shard deadline", took)
	}
}

// forward sends r to the server at target and copies its answer to w.
func forward(t *testing.T, w http.ResponseWriter, r *http.Request, target string) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.Path, r.Body)
	if err != nil {
		t.Error(err)
		return
	}
	req.Header = r.Header.Clone()
	res, err := h2c().Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.WriteHeader(res.StatusCode)
	io.Copy(w, res.Body)
	for k, v := range res.Trailer {
		w.Header()[k] = v
	}
}

// TestRouterMerge: local ids become base ids local·S+s, merged by
// (distance, id) and cut at k; a base id past int32 is an error.
func TestRouterMerge(t *testing.T) {
	r := &Router{shards: make([]spannv1connect.SpannServiceClient, 3)}
	nb := func(id int32, d float32) *spannv1.Neighbor { return &spannv1.Neighbor{Id: id, Distance: d} }
	parts := []*spannv1.SearchResponse{
		{Neighbors: []*spannv1.Neighbor{nb(0, 1), nb(5, 4)}},
		nil, // a shard that did not answer
		{Neighbors: []*spannv1.Neighbor{nb(1, 1), nb(2, 2)}},
	}
	got, err := r.merge(parts, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id int32
		d  float32
	}{{0, 1}, {5, 1}, {8, 2}} // 0·3+0, 1·3+2, 2·3+2
	if len(got.Neighbors) != len(want) {
		t.Fatalf("merged %v, want %v", got.Neighbors, want)
	}
	for i, w := range want {
		if got.Neighbors[i].Id != w.id || got.Neighbors[i].Distance != w.d {
			t.Fatalf("merged %v, want %v", got.Neighbors, want)
		}
	}
	_, err = r.merge([]*spannv1.SearchResponse{nil, {Neighbors: []*spannv1.Neighbor{nb(1<<30, 1)}}, nil}, 3, false)
	if err == nil || !strings.Contains(err.Error(), "does not fit the API's int32 ids") {
		t.Fatalf("an id past int32: %v", err)
	}
}
