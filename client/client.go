// Package client talks to spann-serve: search, batch search, updates,
// info and reload over gRPC (HTTP/2; unencrypted for http:// URLs, TLS
// for https://), with the same types as the in-process API.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	spann "github.com/gospann/spann"
	spannv1 "github.com/gospann/spann/server/gen/spannv1"
	"github.com/gospann/spann/server/gen/spannv1/spannv1connect"
)

// Options configure Dial.
type Options struct {
	Token string      // bearer token ("" = none)
	Index string      // served index to use ("" = the only one)
	TLS   *tls.Config // for https:// URLs (nil = the system's roots)
}

// Client is a connection to one index of a server. Safe for concurrent use.
type Client struct {
	rpc   spannv1connect.SpannServiceClient
	index string
	info  *spannv1.InfoResponse
}

// Dial connects to the server at url (http://host:port or https://...)
// and asks for the index's Info, so that a wrong address, token or index
// name fails here.
func Dial(ctx context.Context, url string, o Options) (*Client, error) {
	tr := &http.Transport{Protocols: new(http.Protocols), DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig: o.TLS, MaxIdleConnsPerHost: 64}
	switch {
	case strings.HasPrefix(url, "http://"):
		tr.Protocols.SetUnencryptedHTTP2(true)
	case strings.HasPrefix(url, "https://"):
		tr.Protocols.SetHTTP2(true)
	default:
		return nil, fmt.Errorf("server %q: want an http:// or https:// URL", url)
	}
	opts := []connect.ClientOption{connect.WithGRPC()}
	if o.Token != "" {
		opts = append(opts, connect.WithInterceptors(bearer(o.Token)))
	}
	c := &Client{rpc: spannv1connect.NewSpannServiceClient(&http.Client{Transport: tr}, strings.TrimRight(url, "/"), opts...), index: o.Index}
	if err := c.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("server %s: %w", url, err)
	}
	return c, nil
}

// bearer sets the Authorization header of every request.
func bearer(token string) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	})
}

// Refresh asks the server for the index's Info again (after a reload or
// updates, say).
func (c *Client) Refresh(ctx context.Context) error {
	res, err := c.rpc.Info(ctx, connect.NewRequest(&spannv1.InfoRequest{Index: c.index}))
	if err != nil {
		return err
	}
	c.info = res.Msg
	return nil
}

// Info describes the index as of Dial or the last Refresh.
func (c *Client) Info() *spannv1.InfoResponse { return c.info }

// Params converts search parameters to the API's.
func Params(p spann.SearchParams) *spannv1.Params {
	return &spannv1.Params{Nprobe: int32(p.NProbe), HeadList: int32(p.HeadList), Eps: p.Eps, MaxPostings: int32(p.MaxPostings),
		FirstRound: int32(p.FirstRound), KthSlack: p.KthSlack, Filter: p.Filter, RangeSlack: p.RangeSlack}
}

// Search returns the k nearest neighbours of query (a packed row of the
// index's element type) with what the server read for it; a router's
// partial answer comes with a *PartialError (errors.Is ErrPartial).
func (c *Client) Search(ctx context.Context, query []byte, k int, p spann.SearchParams) ([]spann.Neighbor, spann.SearchStats, error) {
	res, err := c.rpc.Search(ctx, connect.NewRequest(&spannv1.SearchRequest{Index: c.index, Vector: &spannv1.Vector{Data: query},
		K: int32(k), Params: Params(p)}))
	if err != nil {
		return nil, spann.SearchStats{}, err
	}
	out := make([]spann.Neighbor, len(res.Msg.Neighbors))
	for i, n := range res.Msg.Neighbors {
		out[i] = spann.Neighbor{ID: n.Id, Dist: n.Distance}
	}
	var partial error
	if res.Msg.Partial {
		partial = &PartialError{Queries: 1, Missing: res.Msg.MissingShards}
	}
	return out, statsOf(res.Msg.Stats), partial
}

// ErrPartial marks an answer a router (spann-serve --shards) gave without
// some of its shards: the results are there, from the other shards only.
// Test with errors.Is; errors.As gives the *PartialError.
var ErrPartial = errors.New("partial answer")

// PartialError is returned with the results of searches that a router
// answered without some shards.
type PartialError struct {
	Queries int     // queries answered partially
	Missing []int32 // shards that did not answer (of the first such query)
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("partial answer: %d queries answered without shards %v (down or past their deadline)", e.Queries, e.Missing)
}

func (e *PartialError) Unwrap() error { return ErrPartial }

// partials counts the partial answers of a fan-out, safely from its
// goroutines.
type partials struct {
	mu  sync.Mutex
	err *PartialError
}

func (p *partials) note(r *spannv1.SearchResponse) {
	if !r.Partial {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = &PartialError{Missing: r.MissingShards}
	}
	p.err.Queries++
}

// result returns the error to give with complete results: the partial
// answers', or nil.
func (p *partials) result() error {
	if p.err == nil {
		return nil
	}
	return p.err
}

func statsOf(s *spannv1.Stats) spann.SearchStats {
	if s == nil {
		return spann.SearchStats{}
	}
	return spann.SearchStats{Heads: int(s.Heads), Postings: int(s.Postings), Pages: int(s.Pages), Bytes: int(s.Bytes), Vectors: int(s.Vectors), Rounds: 1}
}

// SearchMany searches every query of queries (rows of the index's
// element type) with concurrency requests in flight, as a load generator
// would: one query per Search request, or with batch > 1 that many per
// SearchBatch request. The result is laid out as spann.SearchBatch's,
// with each query's latency as the client saw it (its request's) and the
// server's read figures. It stops at the first failed request and
// returns its error. A router's partial answers (some shards down) come
// with the whole result and a *PartialError (errors.Is ErrPartial).
func (c *Client) SearchMany(ctx context.Context, queries []byte, k int, p spann.SearchParams, concurrency, batch int) (*spann.BatchResult, error) {
	return c.SearchManyFiltered(ctx, queries, nil, k, p, concurrency, batch)
}

// SearchManyFiltered is SearchMany with a filter per query (nil: none):
// query i returns only vectors carrying every label of filters[i].
func (c *Client) SearchManyFiltered(ctx context.Context, queries []byte, filters [][]int32, k int, p spann.SearchParams, concurrency, batch int) (*spann.BatchResult, error) {
	rowBytes, nq, err := c.rows(queries)
	if err != nil {
		return nil, err
	}
	if filters != nil && len(filters) != nq {
		return nil, fmt.Errorf("%d filters for %d queries", len(filters), nq)
	}
	res := &spann.BatchResult{K: k, IDs: make([]int32, nq*k), Dists: make([]float32, nq*k), Latency: make([]time.Duration, nq),
		Query: make([]spann.SearchStats, nq)}
	var partial partials
	res.Wall, err = fanOut(ctx, nq, concurrency, batch, func(ctx context.Context, from, to int) error {
		t0 := time.Now()
		results, err := c.searchRange(ctx, queries, filters, rowBytes, from, to, k, p)
		if err != nil {
			return err
		}
		lat := time.Since(t0)
		for q := from; q < to; q++ {
			r := results[q-from]
			partial.note(r)
			res.Latency[q], res.Query[q] = lat, statsOf(r.Stats)
			ids, dists := res.IDs[q*k:(q+1)*k], res.Dists[q*k:(q+1)*k]
			for i := range ids {
				if i < len(r.Neighbors) {
					ids[i], dists[i] = r.Neighbors[i].Id, r.Neighbors[i].Distance
				} else {
					ids[i], dists[i] = -1, float32(math.Inf(1))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for q := range res.Query {
		res.Stats.Add(res.Query[q])
	}
	return res, partial.result()
}

// rows checks queries against the served index's row size and returns
// it and the number of queries.
func (c *Client) rows(queries []byte) (rowBytes, nq int, err error) {
	rowBytes = int(c.info.Dim) * elemSize(c.info.Type)
	if rowBytes == 0 || len(queries)%rowBytes != 0 || len(queries) == 0 {
		return 0, 0, fmt.Errorf("queries: %d bytes is not a positive whole number of %d-byte vectors", len(queries), rowBytes)
	}
	return rowBytes, len(queries) / rowBytes, nil
}

// fanOut sends the nq queries as requests of up to batch queries, with
// concurrency of them in flight: request(ctx, from, to) answers queries
// from to to-1. The first failure cancels the rest and is returned,
// naming its queries. It returns the wall time.
func fanOut(ctx context.Context, nq, concurrency, batch int, request func(ctx context.Context, from, to int) error) (time.Duration, error) {
	batch = max(1, batch)
	concurrency = max(1, min(concurrency, (nq+batch-1)/batch))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				from := int(next.Add(int64(batch)) - int64(batch))
				if from >= nq {
					return
				}
				to := min(nq, from+batch)
				if err := request(ctx, from, to); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("queries %d to %d: %w", from, to-1, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		return wall, firstErr
	}
	return wall, ctx.Err()
}

// searchRange answers queries from to to-1: one Search, or a SearchBatch
// (with each query's filter, if filters is not nil).
func (c *Client) searchRange(ctx context.Context, queries []byte, filters [][]int32, rowBytes, from, to, k int, sp spann.SearchParams) ([]*spannv1.SearchResponse, error) {
	if to-from == 1 {
		if filters != nil {
			sp.Filter = filters[from]
		}
		r, err := c.rpc.Search(ctx, connect.NewRequest(&spannv1.SearchRequest{Index: c.index,
			Vector: &spannv1.Vector{Data: queries[from*rowBytes : to*rowBytes]}, K: int32(k), Params: Params(sp)}))
		if err != nil {
			return nil, err
		}
		return []*spannv1.SearchResponse{r.Msg}, nil
	}
	req := &spannv1.SearchBatchRequest{Index: c.index, K: int32(k), Params: Params(sp), Vectors: make([]*spannv1.Vector, 0, to-from)}
	for q := from; q < to; q++ {
		req.Vectors = append(req.Vectors, &spannv1.Vector{Data: queries[q*rowBytes : (q+1)*rowBytes]})
		if filters != nil {
			req.Filters = append(req.Filters, &spannv1.Filter{Labels: filters[q]})
		}
	}
	r, err := c.rpc.SearchBatch(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	if len(r.Msg.Results) != to-from {
		return nil, fmt.Errorf("%d answers to %d queries", len(r.Msg.Results), to-from)
	}
	return r.Msg.Results, nil
}

func elemSize(typ string) int {
	switch typ {
	case "float32":
		return 4
	case "uint8", "int8":
		return 1
	}
	return 0
}

// Insert adds rows (packed, of the index's element type) under new ids
// and returns the first; with ids (one per row) it inserts under those,
// replacing present ones if upsert is set, and returns 0.
func (c *Client) Insert(ctx context.Context, rows []byte, ids []int32, upsert bool) (int32, error) {
	rowBytes := int(c.info.Dim) * elemSize(c.info.Type)
	if rowBytes == 0 || len(rows)%rowBytes != 0 || len(rows) == 0 {
		return 0, fmt.Errorf("insert: %d bytes is not a positive whole number of %d-byte vectors", len(rows), rowBytes)
	}
	req := &spannv1.InsertRequest{Index: c.index, Ids: ids, Upsert: upsert}
	for off := 0; off < len(rows); off += rowBytes {
		req.Vectors = append(req.Vectors, &spannv1.Vector{Data: rows[off : off+rowBytes]})
	}
	res, err := c.rpc.Insert(ctx, connect.NewRequest(req))
	if err != nil {
		return 0, err
	}
	return res.Msg.First, nil
}

// Delete removes ids.
func (c *Client) Delete(ctx context.Context, ids []int32) error {
	if len(ids) == 0 {
		return errors.New("delete: no ids")
	}
	_, err := c.rpc.Delete(ctx, connect.NewRequest(&spannv1.DeleteRequest{Index: c.index, Ids: ids}))
	return err
}

// Reload asks the server to reopen the index from its directory and
// returns the build id now served.
func (c *Client) Reload(ctx context.Context) (string, error) {
	res, err := c.rpc.Reload(ctx, connect.NewRequest(&spannv1.ReloadRequest{Index: c.index}))
	if err != nil {
		return "", err
	}
	return res.Msg.BuildId, c.Refresh(ctx)
}

// SearchRangeMany finds every indexed vector within radius of each query
// (spann.Index.SearchRangeBatch's answer, through SearchRange requests of
// up to batch queries each, concurrency in flight), with each query's
// latency as the client saw it.
func (c *Client) SearchRangeMany(ctx context.Context, queries []byte, radius float32, p spann.SearchParams, concurrency, batch int) (*spann.RangeBatchResult, error) {
	rowBytes, nq, err := c.rows(queries)
	if err != nil {
		return nil, err
	}
	rows := make([][]spann.Neighbor, nq)
	res := &spann.RangeBatchResult{Offsets: make([]int, nq+1), Latency: make([]time.Duration, nq), Query: make([]spann.SearchStats, nq)}
	params := Params(p)
	var partial partials
	res.Wall, err = fanOut(ctx, nq, concurrency, batch, func(ctx context.Context, from, to int) error {
		req := &spannv1.SearchRangeRequest{Index: c.index, Radius: radius, Params: params}
		for q := from; q < to; q++ {
			req.Vectors = append(req.Vectors, &spannv1.Vector{Data: queries[q*rowBytes : (q+1)*rowBytes]})
		}
		t0 := time.Now()
		r, err := c.rpc.SearchRange(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		if len(r.Msg.Results) != to-from {
			return fmt.Errorf("%d answers to %d queries", len(r.Msg.Results), to-from)
		}
		lat := time.Since(t0)
		for q := from; q < to; q++ {
			a := r.Msg.Results[q-from]
			partial.note(a)
			res.Latency[q], res.Query[q] = lat, statsOf(a.Stats)
			for _, n := range a.Neighbors {
				rows[q] = append(rows[q], spann.Neighbor{ID: n.Id, Dist: n.Distance})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for q, r := range rows {
		res.Neighbors = append(res.Neighbors, r...)
		res.Offsets[q+1] = len(res.Neighbors)
		res.Stats.Add(res.Query[q])
	}
	return res, partial.result()
}

// RPC returns the client's connection, for code that forwards requests
// as they are (a router).
func (c *Client) RPC() spannv1connect.SpannServiceClient { return c.rpc }
