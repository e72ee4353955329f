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

// fixture is a small index on disk, its queries and an in-process
// instance of it to compare with.
type fixture struct {
	dir, base string
	ix        *spann.Index
	qs        *datasets.Matrix
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: filepath.Join(dir, "idx"), base: filepath.Join(dir, "base.u8bin")}
	qpath := filepath.Join(dir, "query.u8bin")
	p := datasets.GenParams{N: 3000, Dim: 16, Type: datasets.Uint8, Seed: 4}
	if err := datasets.Generate(f.base, p, 2, nil); err != nil {
		t.Fatal(err)
	}
	p.N, p.Stream = 20, 1
	if err := datasets.Generate(qpath, p, 1, nil); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.qs, err = datasets.LoadVectors(qpath, 0, 0); err != nil {
		t.Fatal(err)
	}
	f.build(t, 1, false)
	if f.ix, err = spann.Open(f.dir, spann.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ix.Close() })
	return f
}

// build (re)builds the index with seed.
func (f *fixture) build(t *testing.T, seed int64, force bool) {
	t.Helper()
	if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: f.base, Out: f.dir, Threads: 2, Seed: seed,
		MemoryBudget: 256 << 20, Force: force}); err != nil {
		t.Fatal(err)
	}
}

// serve serves cfg (its index, if none is given, the fixture's as "sift")
// on loopback over HTTP/1.1 and unencrypted HTTP/2 (for gRPC) and returns
// its URL and the server.
func serve(t *testing.T, f *fixture, cfg Config) (string, *Server) {
	t.Helper()
	if len(cfg.Indexes) == 0 {
		cfg.Indexes = []IndexSpec{{Name: "sift", Dir: f.dir}}
	}
	s, err := New(cfg)
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
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Errorf("closing the server: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), s
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
	f := newFixture(t)
	url, _ := serve(t, f, Config{})
	ix, qs := f.ix, f.qs
	p := spann.SearchParams{NProbe: 16}
	grpc := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC())
	for q := 0; q < qs.N; q++ {
		var st spann.SearchStats
		want, err := ix.SearchInto(qs.Row(q), 10, p, nil, &st)
		if err != nil {
			t.Fatal(err)
		}
		res, err := grpc.Search(context.Background(), connect.NewRequest(&spannv1.SearchRequest{
			Vector: &spannv1.Vector{Data: qs.Row(q)}, K: 10, Params: &spannv1.Params{Nprobe: 16}}))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Msg.Stats; got.Postings != int32(st.Postings) || got.Pages != int32(st.Pages) || got.Bytes != int64(st.Bytes) || got.Vectors != int64(st.Vectors) {
			t.Fatalf("query %d: stats %v over gRPC, %+v in process", q, got, st)
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
	f := newFixture(t)
	url, _ := serve(t, f, Config{Token: "s3cret", Limits: Limits{MaxK: 50, MaxBatch: 3, MaxConcurrent: 1}})
	qs := f.qs
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
	s, err := New(Config{Indexes: []IndexSpec{{Name: "sift", Dir: f.dir}}, Limits: Limits{MaxConcurrent: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release, err := s.acquire()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.acquire(); connect.CodeOf(err) != connect.CodeResourceExhausted || time.Since(start) > time.Second {
		t.Fatalf("over the limit: %v after %v", err, time.Since(start))
	}
	release()
	if r, err := s.acquire(); err != nil {
		t.Fatalf("after a release: %v", err)
	} else {
		r()
	}
}

// A request past --max-bytes, and a body that is not a message, are
// refused with an error, not read whole or answered.
func TestHostileBodies(t *testing.T) {
	f := newFixture(t)
	url, _ := serve(t, f, Config{Limits: Limits{MaxBytes: 1024}})
	big := `{"vector": {"values": [` + strings.Repeat("1,", 2000) + `1]}, "k": 5}`
	for _, c := range []struct {
		body, ctype, want string
	}{
		{big, "application/json", "resource_exhausted"},
		{"\x0a\xff\xff\xff", "application/proto", "invalid_argument"},
		{`{"vector": {"values": [1, 2`, "application/json", "invalid_argument"},
	} {
		resp, err := http.Post(url+"/spann.v1.SpannService/Search", c.ctype, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Code string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode == 200 || e.Code != c.want {
			t.Errorf("%.40q: %s, code %q, want %q", c.body, resp.Status, e.Code, c.want)
		}
	}
}
