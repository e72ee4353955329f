package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	spannv1 "github.com/gospann/spann/server/gen/spannv1"
	"github.com/gospann/spann/server/gen/spannv1/spannv1connect"
)

// Filters over gRPC (one per request, one per batched vector) and JSON
// answer as in process; bad filters get INVALID_ARGUMENT, filters on an
// index without labels FAILED_PRECONDITION.
func TestFilteredSearchOverLoopback(t *testing.T) {
	f := newFixture(t)
	{
		url, _ := serve(t, f, Config{})
		grpc := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC())
		_, err := grpc.Search(context.Background(), connect.NewRequest(&spannv1.SearchRequest{
			Vector: &spannv1.Vector{Data: f.qs.Row(0)}, K: 5, Params: &spannv1.Params{Filter: []int32{1}}}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Errorf("filter on an index without labels: %v", err)
		}
	}
	rows := make([][]int32, 3000)
	for i := range rows {
		rows[i] = []int32{int32(i % 4), int32(4 + i%25)} // labels 0..3 and 4..28
	}
	labels, _ := datasets.NewLabels(rows, 29)
	if err := spann.AttachLabels(f.dir, labels, spann.LabelOptions{}); err != nil {
		t.Fatal(err)
	}
	ix, err := spann.Open(f.dir, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	url, _ := serve(t, f, Config{})
	grpc := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC())
	info, err := grpc.Info(context.Background(), connect.NewRequest(&spannv1.InfoRequest{}))
	if err != nil || info.Msg.Labels != 29 {
		t.Fatalf("Info: %v labels, %v", info.Msg.GetLabels(), err)
	}
	p := spann.SearchParams{NProbe: 16}
	same := func(what string, got []*spannv1.Neighbor, want []spann.Neighbor) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d neighbours, %d in process", what, len(got), len(want))
		}
		for i, n := range got {
			if n.Id != want[i].ID || n.Distance != want[i].Dist {
				t.Fatalf("%s rank %d: %v, in process %v", what, i, n, want[i])
			}
		}
	}
	filters := make([][]int32, f.qs.N)
	var vs []*spannv1.Vector
	var fs []*spannv1.Filter
	for q := 0; q < f.qs.N; q++ {
		filters[q] = []int32{int32(q % 4)}
		if q%2 == 1 {
			filters[q] = append(filters[q], int32(4+q%25))
		}
		fp := p
		fp.Filter = filters[q]
		want, err := ix.Search(f.qs.Row(q), 10, fp)
		if err != nil {
			t.Fatal(err)
		}
		res, err := grpc.Search(context.Background(), connect.NewRequest(&spannv1.SearchRequest{
			Vector: &spannv1.Vector{Data: f.qs.Row(q)}, K: 10, Params: &spannv1.Params{Nprobe: 16, Filter: filters[q]}}))
		if err != nil {
			t.Fatal(err)
		}
		same("gRPC", res.Msg.Neighbors, want)
		vs = append(vs, &spannv1.Vector{Data: f.qs.Row(q)})
		fs = append(fs, &spannv1.Filter{Labels: filters[q]})
	}
	batch, err := grpc.SearchBatch(context.Background(), connect.NewRequest(&spannv1.SearchBatchRequest{
		Vectors: vs, Filters: fs, K: 10, Params: &spannv1.Params{Nprobe: 16}}))
	if err != nil {
		t.Fatal(err)
	}
	inproc, err := ix.SearchBatchFiltered(context.Background(), f.qs.Data, filters, 10, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	for q, r := range batch.Msg.Results {
		want := make([]spann.Neighbor, 0, 10)
		for i := 0; i < 10 && inproc.IDs[q*10+i] >= 0; i++ {
			want = append(want, spann.Neighbor{ID: inproc.IDs[q*10+i], Dist: inproc.Dists[q*10+i]})
		}
		same("batch", r.Neighbors, want)
	}
	// An empty filter leaves its vector unfiltered.
	mixed, err := grpc.SearchBatch(context.Background(), connect.NewRequest(&spannv1.SearchBatchRequest{
		Vectors: vs[:2], Filters: []*spannv1.Filter{fs[0], {}}, K: 10, Params: &spannv1.Params{Nprobe: 16}}))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := ix.Search(f.qs.Row(1), 10, p)
	same("unfiltered in a filtered batch", mixed.Msg.Results[1].Neighbors, plain)
	// JSON, as curl would post it.
	body, _ := json.Marshal(map[string]any{"vector": map[string]any{"data": f.qs.Row(3)}, "k": 10,
		"params": map[string]any{"nprobe": 16, "filter": filters[3]}})
	resp, err := http.Post(url+"/spann.v1.SpannService/Search", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got spannv1.SearchResponse
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != 200 {
		t.Fatalf("JSON search: %d %v %s", resp.StatusCode, err, raw)
	}
	resp.Body.Close()
	var parsed struct {
		Neighbors []struct {
			ID       int32   `json:"id"`
			Distance float32 `json:"distance"`
		} `json:"neighbors"`
	}
	json.Unmarshal(raw, &parsed)
	for _, n := range parsed.Neighbors {
		got.Neighbors = append(got.Neighbors, &spannv1.Neighbor{Id: n.ID, Distance: n.Distance})
	}
	fp := p
	fp.Filter = filters[3]
	want, _ := ix.Search(f.qs.Row(3), 10, fp)
	same("JSON", got.Neighbors, want)
	for _, c := range []struct {
		what string
		req  *spannv1.SearchBatchRequest
	}{
		{"label out of range", &spannv1.SearchBatchRequest{Vectors: vs[:2], K: 5, Params: &spannv1.Params{Filter: []int32{29}}}},
		{"filters for some vectors", &spannv1.SearchBatchRequest{Vectors: vs[:3], Filters: fs[:2], K: 5}},
		{"too many labels", &spannv1.SearchBatchRequest{Vectors: vs[:1], Filters: []*spannv1.Filter{{Labels: make([]int32, MaxFilterLabels+1)}}, K: 5}},
	} {
		_, err := grpc.SearchBatch(context.Background(), connect.NewRequest(c.req))
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", c.what, err)
		}
	}
}

// SearchRange over gRPC answers as SearchRangeBatch does in process; a bad
// radius is INVALID_ARGUMENT.
func TestSearchRangeOverLoopback(t *testing.T) {
	f := newFixture(t)
	url, _ := serve(t, f, Config{})
	grpc := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC())
	p := spann.SearchParams{NProbe: 8, RangeSlack: 0.3}
	near, err := f.ix.Search(f.qs.Row(0), 30, p)
	if err != nil {
		t.Fatal(err)
	}
	radius := near[29].Dist
	want, err := f.ix.SearchRangeBatch(context.Background(), f.qs.Data, radius, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	var vs []*spannv1.Vector
	for q := 0; q < f.qs.N; q++ {
		vs = append(vs, &spannv1.Vector{Data: f.qs.Row(q)})
	}
	res, err := grpc.SearchRange(context.Background(), connect.NewRequest(&spannv1.SearchRangeRequest{
		Vectors: vs, Radius: radius, Params: &spannv1.Params{Nprobe: 8, RangeSlack: 0.3}}))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for q, r := range res.Msg.Results {
		w := want.Row(q)
		total += len(w)
		if len(r.Neighbors) != len(w) {
			t.Fatalf("query %d: %d results over gRPC, %d in process", q, len(r.Neighbors), len(w))
		}
		for i, n := range r.Neighbors {
			if n.Id != w[i].ID || n.Distance != w[i].Dist {
				t.Fatalf("query %d result %d: %v, in process %v", q, i, n, w[i])
			}
		}
	}
	if total < f.qs.N {
		t.Errorf("only %d results in all: the radius finds too little to test", total)
	}
	for _, bad := range []*spannv1.SearchRangeRequest{
		{Vectors: vs[:1], Radius: -1},
		{Vectors: vs[:1], Radius: 5, Params: &spannv1.Params{RangeSlack: -1}},
	} {
		_, err := grpc.SearchRange(context.Background(), connect.NewRequest(bad))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("radius %v slack %v: %v, want invalid_argument", bad.Radius, bad.Params.GetRangeSlack(), err)
		}
	}
}

// Insert takes labels, one set per vector: filtered searches return the
// new vectors at once; labels out of range or of the wrong count are
// INVALID_ARGUMENT.
func TestLabelledInsertOverLoopback(t *testing.T) {
	f := newFixture(t)
	f.ix.Close()
	rows := make([][]int32, 3000)
	for i := range rows {
		rows[i] = []int32{int32(i % 4)}
	}
	labels, _ := datasets.NewLabels(rows, 6) // labels 4 and 5: no vector yet
	if err := spann.AttachLabels(f.dir, labels, spann.LabelOptions{}); err != nil {
		t.Fatal(err)
	}
	url, _ := serve(t, f, Config{Indexes: []IndexSpec{{Name: "w", Dir: f.dir, Writable: true}}})
	grpc := spannv1connect.NewSpannServiceClient(h2c(), url, connect.WithGRPC())
	ctx := context.Background()
	vecs := []*spannv1.Vector{{Data: f.qs.Row(0)}, {Data: f.qs.Row(1)}, {Data: f.qs.Row(2)}}
	for _, c := range []struct {
		labels []*spannv1.Filter
		want   string
	}{
		{[]*spannv1.Filter{{Labels: []int32{5}}}, "labels for 3 vectors, 1 given"},
		{[]*spannv1.Filter{{Labels: []int32{5}}, {Labels: []int32{6}}, {}}, "vector 1 has label 6, but the index's labels are 0..5"},
	} {
		_, err := grpc.Insert(ctx, connect.NewRequest(&spannv1.InsertRequest{Index: "w", Vectors: vecs, Labels: c.labels}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), c.want) {
			t.Errorf("labels %v: %v, want %q", c.labels, err, c.want)
		}
	}
	res, err := grpc.Insert(ctx, connect.NewRequest(&spannv1.InsertRequest{Index: "w", Vectors: vecs,
		Labels: []*spannv1.Filter{{Labels: []int32{5}}, {Labels: []int32{4, 5}}, {}}}))
	if err != nil || res.Msg.First != 3000 {
		t.Fatalf("labelled insert: %v, %v", res, err)
	}
	got, err := grpc.Search(ctx, connect.NewRequest(&spannv1.SearchRequest{Index: "w",
		Vector: &spannv1.Vector{Data: f.qs.Row(0)}, K: 10, Params: &spannv1.Params{Filter: []int32{5}}}))
	if err != nil {
		t.Fatal(err)
	}
	if ids := got.Msg.Neighbors; len(ids) != 2 || ids[0].Id != 3000 || ids[1].Id != 3001 {
		t.Errorf("filter on label 5 after the insert: %v, want 3000 then 3001", ids)
	}
}
