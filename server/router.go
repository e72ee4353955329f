package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/gospann/spann/client"
	"github.com/gospann/spann/internal/indexfile"
	spannv1 "github.com/gospann/spann/server/gen/spannv1"
	"github.com/gospann/spann/server/gen/spannv1/spannv1connect"
)

// RouterConfig configures a Router.
type RouterConfig struct {
	// Shards are the shard servers' URLs in shard order: shard s serves
	// the index of base vectors s, s+S, s+2S, … (spann-build --shards), so
	// its vector j is base vector j·S + s.
	Shards []string
	// ShardsFile, if set, is the set's shards.json: each shard's build id
	// must be the one it lists in that place (a misordered URL list would
	// otherwise answer with wrong ids).
	ShardsFile string
	// ShardTimeout bounds each shard's part of a request (default 2 s): a
	// shard slower than that, or down, is left out and the answer flagged
	// partial.
	ShardTimeout time.Duration
	Token        string // bearer token the router requires ("" = none)
	ShardToken   string // bearer token sent to the shards ("" = none)
	MaxBytes     int    // largest request, bytes (default 16 MiB)
}

// DefaultShardTimeout is RouterConfig.ShardTimeout's default.
const DefaultShardTimeout = 2 * time.Second

// Router serves the search API over shard servers: each query goes to
// every shard, under a deadline of its own, and the answers are merged by
// distance, the shards' ids mapped back to base ids. A shard that fails
// or misses its deadline is left out and the answer flagged partial
// (SearchResponse.partial, missing_shards), never silently; when every
// shard fails the request fails. Updates and reloads go to the shards
// themselves (Unimplemented here). Safe for concurrent use.
type Router struct {
	spannv1connect.UnimplementedSpannServiceHandler
	cfg    RouterConfig
	shards []spannv1connect.SpannServiceClient
	info   *spannv1.InfoResponse
	auth   *Server // (only its token check)
}

// NewRouter dials every shard and checks that they form one set: the same
// element type, dimension, metric and labels (and the build ids of
// ShardsFile, in order).
func NewRouter(ctx context.Context, cfg RouterConfig) (*Router, error) {
	if len(cfg.Shards) == 0 {
		return nil, errors.New("router: no shards")
	}
	if cfg.ShardTimeout <= 0 {
		cfg.ShardTimeout = DefaultShardTimeout
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = Limits{}.withDefaults().MaxBytes
	}
	var want *indexfile.Shards
	if cfg.ShardsFile != "" {
		data, err := os.ReadFile(cfg.ShardsFile)
		if err != nil {
			return nil, err
		}
		if want, err = indexfile.ParseShards(data); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.ShardsFile, err)
		}
		if want.Shards != len(cfg.Shards) {
			return nil, fmt.Errorf("router: %d shard servers, %s lists %d shards", len(cfg.Shards), cfg.ShardsFile, want.Shards)
		}
	}
	r := &Router{cfg: cfg, auth: &Server{}}
	if cfg.Token != "" {
		r.auth.token = []byte(cfg.Token)
	}
	info := &spannv1.InfoResponse{Name: "router", Backend: "router", Shards: int32(len(cfg.Shards))}
	for s, url := range cfg.Shards {
		c, err := client.Dial(ctx, url, client.Options{Token: cfg.ShardToken})
		if err != nil {
			return nil, fmt.Errorf("router: shard %d: %w", s, err)
		}
		in := c.Info()
		if want != nil && in.BuildId != want.BuildIDs[s] {
			return nil, fmt.Errorf("router: shard %d (%s) is build %s, %s lists %s there", s, url, in.BuildId, cfg.ShardsFile, want.BuildIDs[s])
		}
		if s == 0 {
			info.Type, info.Metric, info.Dim, info.Labels = in.Type, in.Metric, in.Dim, in.Labels
		} else if in.Type != info.Type || in.Metric != info.Metric || in.Dim != info.Dim || in.Labels != info.Labels {
			return nil, fmt.Errorf("router: shard %d (%s) holds %d-dimensional %s %s vectors with %d labels, shard 0 %d-dimensional %s %s with %d",
				s, url, in.Dim, in.Type, in.Metric, in.Labels, info.Dim, info.Type, info.Metric, info.Labels)
		}
		info.N += in.N
		info.Heads += in.Heads
		info.Deleted += in.Deleted
		info.SizeBytes += in.SizeBytes
		r.shards = append(r.shards, c.RPC())
	}
	r.info = info
	return r, nil
}

// Handler returns the HTTP handler of the API and the health service.
func (r *Router) Handler() http.Handler {
	mux := http.NewServeMux()
	path, h := spannv1connect.NewSpannServiceHandler(r,
		connect.WithInterceptors(connect.UnaryInterceptorFunc(r.auth.authenticate)),
		connect.WithReadMaxBytes(r.cfg.MaxBytes), connect.WithCompressMinBytes(16<<10))
	mux.Handle(path, h)
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(spannv1connect.SpannServiceName)))
	return mux
}

// Info implements the Info method: the set's shape, N and sizes summed.
func (r *Router) Info(context.Context, *connect.Request[spannv1.InfoRequest]) (*connect.Response[spannv1.InfoResponse], error) {
	return connect.NewResponse(r.info), nil
}

// Search implements the Search method.
func (r *Router) Search(ctx context.Context, req *connect.Request[spannv1.SearchRequest]) (*connect.Response[spannv1.SearchResponse], error) {
	req.Msg.Index = "" // each shard server serves one index
	parts, missing, err := fan(ctx, r, func(ctx context.Context, s int) (*spannv1.SearchResponse, error) {
		res, err := r.shards[s].Search(ctx, connect.NewRequest(req.Msg))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
	if err != nil {
		return nil, err
	}
	out, err := r.merge(parts, int(req.Msg.K), false)
	if err != nil {
		return nil, err
	}
	out.Partial, out.MissingShards = len(missing) > 0, missing
	return connect.NewResponse(out), nil
}

// SearchBatch implements the SearchBatch method: the whole batch to each
// shard, merged query by query.
func (r *Router) SearchBatch(ctx context.Context, req *connect.Request[spannv1.SearchBatchRequest]) (*connect.Response[spannv1.SearchBatchResponse], error) {
	req.Msg.Index = ""
	return r.batch(ctx, len(req.Msg.Vectors), int(req.Msg.K), false, func(ctx context.Context, s int) (*spannv1.SearchBatchResponse, error) {
		res, err := r.shards[s].SearchBatch(ctx, connect.NewRequest(req.Msg))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
}

// SearchRange implements the SearchRange method: every shard's vectors
// within the radius, merged by distance.
func (r *Router) SearchRange(ctx context.Context, req *connect.Request[spannv1.SearchRangeRequest]) (*connect.Response[spannv1.SearchBatchResponse], error) {
	req.Msg.Index = ""
	return r.batch(ctx, len(req.Msg.Vectors), 0, true, func(ctx context.Context, s int) (*spannv1.SearchBatchResponse, error) {
		res, err := r.shards[s].SearchRange(ctx, connect.NewRequest(req.Msg))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	})
}

// batch fans a batch request out and merges each of its nq queries.
func (r *Router) batch(ctx context.Context, nq, k int, all bool, call func(ctx context.Context, s int) (*spannv1.SearchBatchResponse, error)) (*connect.Response[spannv1.SearchBatchResponse], error) {
	parts, missing, err := fan(ctx, r, call)
	if err != nil {
		return nil, err
	}
	out := &spannv1.SearchBatchResponse{Results: make([]*spannv1.SearchResponse, nq), Stats: &spannv1.Stats{},
		Partial: len(missing) > 0, MissingShards: missing}
	perQuery := make([]*spannv1.SearchResponse, len(parts))
	for q := range nq {
		for s, p := range parts {
			perQuery[s] = nil
			if p != nil {
				if len(p.Results) != nq {
					return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("shard %d answered %d of %d queries", s, len(p.Results), nq))
				}
				perQuery[s] = p.Results[q]
			}
		}
		res, err := r.merge(perQuery, k, all)
		if err != nil {
			return nil, err
		}
		res.Partial, res.MissingShards = out.Partial, missing
		out.Results[q] = res
		addStats(out.Stats, res.Stats)
	}
	return connect.NewResponse(out), nil
}

// merge combines the shards' answers to one query (nil: the shard did not
// answer): their neighbours under base ids, nearest first (ties by id),
// the k nearest or all of them, and their figures summed. A base id past
// the API's int32 is an error, never a wrapped id.
func (r *Router) merge(parts []*spannv1.SearchResponse, k int, all bool) (*spannv1.SearchResponse, error) {
	out := &spannv1.SearchResponse{Stats: &spannv1.Stats{}}
	for s, p := range parts {
		if p == nil {
			continue
		}
		for _, n := range p.Neighbors {
			id := indexfile.GlobalID(int64(n.Id), s, len(r.shards))
			if n.Id < 0 {
				return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("shard %d answered an invalid id %d", s, n.Id))
			}
			if id > math.MaxInt32 {
				return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("shard %d answered local id %d: as a base id (local·%d+%d) it does not fit the API's int32 ids", s, n.Id, len(r.shards), s))
			}
			out.Neighbors = append(out.Neighbors, &spannv1.Neighbor{Id: int32(id), Distance: n.Distance})
		}
		addStats(out.Stats, p.Stats)
		out.Stats.SearchUs = max(out.Stats.SearchUs, p.GetStats().GetSearchUs()) // the shards run side by side
	}
	slices.SortFunc(out.Neighbors, func(a, b *spannv1.Neighbor) int {
		return cmp.Or(cmp.Compare(a.Distance, b.Distance), cmp.Compare(a.Id, b.Id))
	})
	if !all && len(out.Neighbors) > k {
		out.Neighbors = out.Neighbors[:k]
	}
	return out, nil
}

func addStats(sum, s *spannv1.Stats) {
	if s == nil {
		return
	}
	sum.Heads += s.Heads
	sum.Postings += s.Postings
	sum.Pages += s.Pages
	sum.Bytes += s.Bytes
	sum.Vectors += s.Vectors
}

// fan calls call for every shard at once, each under the shard deadline,
// and returns their answers (nil for a shard that did not answer) and the
// shards left out. An error the request itself caused (a bad argument, a
// missing label, a wrong token) is returned as the shards gave it; when
// every shard is left out the request fails as UNAVAILABLE, naming the
// first shard's error.
func fan[T any](ctx context.Context, r *Router, call func(ctx context.Context, s int) (T, error)) ([]T, []int32, error) {
	out := make([]T, len(r.shards))
	errs := make([]error, len(r.shards))
	var wg sync.WaitGroup
	for s := range r.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, r.cfg.ShardTimeout)
			defer cancel()
			out[s], errs[s] = call(sctx, s)
		}()
	}
	wg.Wait()
	var missing []int32
	for s, err := range errs {
		if err == nil {
			continue
		}
		switch connect.CodeOf(err) {
		case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeNotFound, connect.CodeUnauthenticated,
			connect.CodePermissionDenied, connect.CodeOutOfRange:
			return nil, nil, err // the request's fault, not the shard's (a busy shard's RESOURCE_EXHAUSTED is the shard's)
		}
		if ctx.Err() != nil {
			return nil, nil, connect.NewError(connect.CodeOf(ctx.Err()), ctx.Err())
		}
		missing = append(missing, int32(s))
	}
	if len(missing) == len(r.shards) {
		return nil, nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("no shard answered (shard 0: %v)", errs[0]))
	}
	return out, missing, nil
}
