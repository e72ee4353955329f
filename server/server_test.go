package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	spannv1 "github.com/gospann/spann/server/gen/spannv1"
	"github.com/gospann/spann/server/gen/spannv1/spannv1connect"
)

// serve builds a small index, serves it on loopback (HTTP/1.1 and
// unencrypted HTTP/2, for gRPC) and returns its URL, the index and the
// queries.
func serve(t *testing.T, token string, limits Limits) (string, *spann.Index, *datasets.Matrix) {
	t.Helper()
	dir := t.TempDir()
	base, qpath := filepath.Join(dir, "base.u8bin"), filepath.Join(dir, "query.u8bin")
	p := datasets.GenParams{N: 3000, Dim: 16, Type: datasets.Uint8, Seed: 4}
	if err := datasets.Generate(base, p, 2, nil); err != nil {
		t.Fatal(err)
	}
	p.N, p.Stream = 20, 1
	if err := datasets.Generate(qpath, p, 1, nil); err != nil {
		t.Fatal(err)
	}
	qs, err := datasets.LoadVectors(qpath, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "idx")
	if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: base, Out: index, Threads: 2, Seed: 1, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	ix, err := spann.Open(index, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	s, err := New(map[string]*spann.Index{"sift": ix}, token, limits)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(), Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), ix, qs
}

// h2c is an HTTP client speaking unencrypted HTTP/2 (gRPC without TLS).
func h2c() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// Search through gRPC and through JSON over HTTP gives what the index
// gives in process; SearchBatch and Info too; health is served.
func TestSearchOverLoopback(t *testing.T) {
	url, ix, qs := serve(t, "", Limits{})
	p := spann.SearchParams{NProbe: 16}
	grpc := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC())
	for q := 0; q < qs.N; q++ {
		want, err := ix.Search(qs.Row(q), 10, p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := grpc.Search(context.Background(), connect.NewRequest(&spannv1.SearchRequest{
			Vector: &spannv1.Vector{Data: qs.Row(q)}, K: 10, Params: &spannv1.Params{Nprobe: 16}}))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Msg.Neighbors) != len(want) {
			t.Fatalf("query %d: %d neighbours over gRPC, %d in process", q, len(res.Msg.Neighbors), len(want))
		}
		for i, n := range res.Msg.Neighbors {
			if n.Id != want[i].ID || n.Distance != want[i].Dist {
				t.Fatalf("query %d rank %d: %v over gRPC, %v in process", q, i, n, want[i])
			}
		}
	}
	// JSON, as curl would post it, with the vector as numbers.
	vals := make([]float32, 16)
	for i, b := range qs.Row(0) {
		vals[i] = float32(b)
	}
	body, _ := json.Marshal(map[string]any{"index": "sift", "vector": map[string]any{"values": vals}, "k": 10, "params": map[string]any{"nprobe": 16}})
	resp, err := http.Post(url+"/spann.v1.SpannService/Search", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Neighbors []struct {
			ID       int32   `json:"id"`
			Distance float32 `json:"distance"`
		} `json:"neighbors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("JSON search: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	want, _ := ix.Search(qs.Row(0), 10, p)
	for i, n := range got.Neighbors {
		if n.ID != want[i].ID || n.Distance != want[i].Dist {
			t.Fatalf("JSON rank %d: %v, in process %v", i, n, want[i])
		}
	}
	// A batch, and Info.
	var vs []*spannv1.Vector
	for q := 0; q < 5; q++ {
		vs = append(vs, &spannv1.Vector{Data: qs.Row(q)})
	}
	batch, err := grpc.SearchBatch(context.Background(), connect.NewRequest(&spannv1.SearchBatchRequest{Vectors: vs, K: 10, Params: &spannv1.Params{Nprobe: 16}}))
	if err != nil || len(batch.Msg.Results) != 5 {
		t.Fatalf("batch: %v", err)
	}
	for q, r := range batch.Msg.Results {
		want, _ := ix.Search(qs.Row(q), 10, p)
		if r.Neighbors[0].Id != want[0].ID {
			t.Fatalf("batch query %d: %v, in process %v", q, r.Neighbors[0], want[0])
		}
	}
	info, err := grpc.Info(context.Background(), connect.NewRequest(&spannv1.InfoRequest{}))
	if err != nil || info.Msg.N != 3000 || info.Msg.Dim != 16 || info.Msg.Name != "sift" || info.Msg.BuildId != ix.Info().BuildID {
		t.Fatalf("info: %v %v", info, err)
	}
	health := grpchealth.NewClient(h2c(), url, connect.WithGRPC())
	if h, err := health.Check(context.Background(), &grpchealth.CheckRequest{Service: spannv1connect.SpannServiceName}); err != nil || h.Status != grpchealth.StatusServing {
		t.Fatalf("health: %v %v", h, err)
	}
}

// Bad requests get an error with the right code and do no search; a
// missing token is UNAUTHENTICATED (401 over HTTP) while health stays
// open; past the concurrency limit a request is refused at once.
func TestRefusals(t *testing.T) {
	url, _, qs := serve(t, "s3cret", Limits{MaxK: 50, MaxBatch: 3, MaxConcurrent: 1})
	authed := func(token string) connect.Option {
		return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		}))
	}
	c := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC(), authed("s3cret"))
	wrong := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC(), authed("guess"))
	if _, err := wrong.Info(context.Background(), connect.NewRequest(&spannv1.InfoRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	resp, err := http.Post(url+"/spann.v1.SpannService/Info", "application/json", strings.NewReader("{}"))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("JSON without a token: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	health := grpchealth.NewClient(h2c(), url, connect.WithGRPC())
	if _, err := health.Check(context.Background(), &grpchealth.CheckRequest{}); err != nil {
		t.Fatalf("health behind the token: %v", err)
	}
	for _, c2 := range []struct {
		req  *spannv1.SearchRequest
		code connect.Code
		want string
	}{
		{&spannv1.SearchRequest{Vector: &spannv1.Vector{Data: qs.Row(0)}, K: 51}, connect.CodeInvalidArgument, "k=51"},
		{&spannv1.SearchRequest{Vector: &spannv1.Vector{Data: qs.Row(0)[:15]}, K: 5}, connect.CodeInvalidArgument, "15 bytes"},
		{&spannv1.SearchRequest{Vector: &spannv1.Vector{Values: make([]float32, 3)}, K: 5}, connect.CodeInvalidArgument, "3 values"},
		{&spannv1.SearchRequest{Vector: &spannv1.Vector{Values: append(make([]float32, 15), 300)}, K: 5}, connect.CodeInvalidArgument, "0 to 255"},
		{&spannv1.SearchRequest{K: 5}, connect.CodeInvalidArgument, "no vector"},
		{&spannv1.SearchRequest{Index: "other", Vector: &spannv1.Vector{Data: qs.Row(0)}, K: 5}, connect.CodeNotFound, "no index"},
	} {
		_, err := c.Search(context.Background(), connect.NewRequest(c2.req))
		if connect.CodeOf(err) != c2.code || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("%v: %v, want %v mentioning %q", c2.req, err, c2.code, c2.want)
		}
	}
	four := make([]*spannv1.Vector, 4)
	for i := range four {
		four[i] = &spannv1.Vector{Data: qs.Row(i)}
	}
	if _, err := c.SearchBatch(context.Background(), connect.NewRequest(&spannv1.SearchBatchRequest{Vectors: four, K: 5})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("a batch over the limit: %v", err)
	}
	// The one search slot taken: the next request is refused, not queued.
	s := &Server{limits: Limits{MaxConcurrent: 1}.withDefaults()}
	s.slots = make(chan struct{}, 1)
	release, err := s.acquire(1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.acquire(1); connect.CodeOf(err) != connect.CodeResourceExhausted || time.Since(start) > time.Second {
		t.Fatalf("over the limit: %v after %v", err, time.Since(start))
	}
	release()
	if _, err := s.acquire(1); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}
