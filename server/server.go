// Package server serves open indexes over the network (spann-serve): the
// API of proto/spann/v1/spann.proto as gRPC, gRPC-Web and Connect's JSON
// over HTTP, all from the same handlers (connect-go), with the standard
// gRPC health service, bearer-token auth and limits.
//
// Why connect-go: one set of handlers answers gRPC clients and plain HTTP
// clients posting JSON (curl), on one listener, where grpc-go would need
// a gateway or a second JSON mapping to maintain.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	spannv1 "github.com/gospann/spann/server/gen/spannv1"
	"github.com/gospann/spann/server/gen/spannv1/spannv1connect"
)

// Limits bound what one request may ask; zero fields take the defaults.
type Limits struct {
	MaxK          int // neighbours per query (default 1000)
	MaxBatch      int // queries per SearchBatch (default 1024)
	MaxConcurrent int // searches at once, beyond which requests are refused (default 64)
	MaxBytes      int // request message size (default 16 MiB)
}

func (l Limits) withDefaults() Limits {
	if l.MaxK <= 0 {
		l.MaxK = 1000
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = 1024
	}
	if l.MaxConcurrent <= 0 {
		l.MaxConcurrent = 64
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 16 << 20
	}
	return l
}

// Server serves a set of named indexes. Its methods are safe for
// concurrent use; the indexes stay the caller's to close.
type Server struct {
	indexes map[string]*spann.Index
	only    string // the name when there is one index: requests may name none
	token   []byte // required bearer token; nil: none
	limits  Limits
	slots   chan struct{} // one per search allowed at once
}

// New returns a server of indexes by name; token, if not empty, is the
// bearer token every request but health checks must carry.
func New(indexes map[string]*spann.Index, token string, limits Limits) (*Server, error) {
	if len(indexes) == 0 {
		return nil, errors.New("server: no index to serve")
	}
	s := &Server{indexes: indexes, limits: limits.withDefaults()}
	if token != "" {
		s.token = []byte(token)
	}
	if len(indexes) == 1 {
		for name := range indexes {
			s.only = name
		}
	}
	s.slots = make(chan struct{}, s.limits.MaxConcurrent)
	return s, nil
}

// Handler returns the HTTP handler of the API and the health service.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	path, h := spannv1connect.NewSpannServiceHandler(s,
		connect.WithInterceptors(connect.UnaryInterceptorFunc(s.authenticate)),
		connect.WithReadMaxBytes(s.limits.MaxBytes))
	mux.Handle(path, h)
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(spannv1connect.SpannServiceName)))
	return mux
}

// authenticate refuses a request without the token before any work.
func (s *Server) authenticate(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if s.token != nil {
			got, ok := strings.CutPrefix(req.Header().Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
				return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("missing or wrong bearer token"))
			}
		}
		return next(ctx, req)
	}
}

// index returns the named index.
func (s *Server) index(name string) (*spann.Index, string, error) {
	if name == "" {
		name = s.only
	}
	ix, ok := s.indexes[name]
	if !ok {
		return nil, "", connect.NewError(connect.CodeNotFound, fmt.Errorf("no index %q is served", name))
	}
	return ix, name, nil
}

// acquire takes a search slot, refusing at once when none is free.
func (s *Server) acquire(n int) (func(), error) {
	for i := 0; i < n; i++ {
		select {
		case s.slots <- struct{}{}:
		default:
			for ; i > 0; i-- {
				<-s.slots
			}
			return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("more than %d searches at once", s.limits.MaxConcurrent))
		}
	}
	return func() {
		for i := 0; i < n; i++ {
			<-s.slots
		}
	}, nil
}

// Search implements the Search method.
func (s *Server) Search(ctx context.Context, req *connect.Request[spannv1.SearchRequest]) (*connect.Response[spannv1.SearchResponse], error) {
	ix, _, err := s.index(req.Msg.Index)
	if err != nil {
		return nil, err
	}
	k, p, err := s.knobs(ix, req.Msg.K, req.Msg.Params)
	if err != nil {
		return nil, err
	}
	q, err := queryBytes(ix, req.Msg.Vector)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	release, err := s.acquire(1)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := ctx.Err(); err != nil {
		return nil, connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	got, err := ix.Search(q, k, p)
	if err != nil {
		return nil, searchError(err)
	}
	return connect.NewResponse(&spannv1.SearchResponse{Neighbors: neighbors(got)}), nil
}

// SearchBatch implements the SearchBatch method.
func (s *Server) SearchBatch(ctx context.Context, req *connect.Request[spannv1.SearchBatchRequest]) (*connect.Response[spannv1.SearchBatchResponse], error) {
	ix, _, err := s.index(req.Msg.Index)
	if err != nil {
		return nil, err
	}
	k, p, err := s.knobs(ix, req.Msg.K, req.Msg.Params)
	if err != nil {
		return nil, err
	}
	if n := len(req.Msg.Vectors); n == 0 || n > s.limits.MaxBatch {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%d vectors: a batch holds 1 to %d", n, s.limits.MaxBatch))
	}
	var qs []byte
	for i, v := range req.Msg.Vectors {
		q, err := queryBytes(ix, v)
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("vector %d: %w", i, err))
		}
		qs = append(qs, q...)
	}
	release, err := s.acquire(1)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := ctx.Err(); err != nil {
		return nil, connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	res, err := ix.SearchBatch(qs, k, p, 1)
	if err != nil {
		return nil, searchError(err)
	}
	out := &spannv1.SearchBatchResponse{}
	for q := range req.Msg.Vectors {
		r := &spannv1.SearchResponse{}
		for i := q * k; i < (q+1)*k; i++ {
			if res.IDs[i] >= 0 {
				r.Neighbors = append(r.Neighbors, &spannv1.Neighbor{Id: res.IDs[i], Distance: res.Dists[i]})
			}
		}
		out.Results = append(out.Results, r)
	}
	return connect.NewResponse(out), nil
}

// Info implements the Info method.
func (s *Server) Info(ctx context.Context, req *connect.Request[spannv1.InfoRequest]) (*connect.Response[spannv1.InfoResponse], error) {
	ix, name, err := s.index(req.Msg.Index)
	if err != nil {
		return nil, err
	}
	in := ix.Info()
	return connect.NewResponse(&spannv1.InfoResponse{Name: name, BuildId: in.BuildID, Type: in.Type, Metric: in.Metric,
		Dim: int32(in.Dim), N: int64(in.N), Heads: int32(in.Heads), Backend: in.Backend}), nil
}

// knobs checks k and the search parameters against the limits.
func (s *Server) knobs(ix *spann.Index, k int32, p *spannv1.Params) (int, spann.SearchParams, error) {
	if k <= 0 || int(k) > s.limits.MaxK {
		return 0, spann.SearchParams{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("k=%d: must be 1 to %d", k, s.limits.MaxK))
	}
	var sp spann.SearchParams
	if p != nil {
		sp = spann.SearchParams{NProbe: int(p.Nprobe), HeadList: int(p.HeadList), Eps: p.Eps, MaxPostings: int(p.MaxPostings)}
	}
	if math.IsNaN(sp.Eps) || math.IsInf(sp.Eps, 0) {
		return 0, sp, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("eps %v", sp.Eps))
	}
	return int(k), sp, nil
}

// queryBytes returns a request vector as the index's packed rows.
func queryBytes(ix *spann.Index, v *spannv1.Vector) ([]byte, error) {
	rowBytes := ix.Dim() * ix.Type().Size()
	switch {
	case v == nil || (len(v.Data) == 0 && len(v.Values) == 0):
		return nil, errors.New("no vector: give data or values")
	case len(v.Data) > 0 && len(v.Values) > 0:
		return nil, errors.New("give data or values, not both")
	case len(v.Data) > 0:
		if len(v.Data) != rowBytes {
			return nil, fmt.Errorf("%d bytes of data: the index holds %d-dimensional %s vectors (%d bytes)", len(v.Data), ix.Dim(), ix.Type(), rowBytes)
		}
		if ix.Type() == datasets.Float32 {
			if err := datasets.CheckFinite(datasets.Float32, v.Data, ix.Dim(), 0); err != nil {
				return nil, err
			}
		}
		return v.Data, nil
	}
	if len(v.Values) != ix.Dim() {
		return nil, fmt.Errorf("%d values: the index holds %d-dimensional vectors", len(v.Values), ix.Dim())
	}
	return packValues(ix.Type(), v.Values)
}

// packValues converts numbers to packed rows of typ, refusing ones the
// type cannot hold.
func packValues(typ datasets.ElemType, vals []float32) ([]byte, error) {
	out := make([]byte, 0, len(vals)*typ.Size())
	for i, x := range vals {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("value %d is %v", i, x)
		}
		switch typ {
		case datasets.Float32:
			out = append(out, datasets.Bytes([]float32{x})...)
		case datasets.Uint8:
			if x != float32(math.Trunc(float64(x))) || x < 0 || x > 255 {
				return nil, fmt.Errorf("value %d is %v: a uint8 index takes integers 0 to 255", i, x)
			}
			out = append(out, byte(x))
		default:
			if x != float32(math.Trunc(float64(x))) || x < -128 || x > 127 {
				return nil, fmt.Errorf("value %d is %v: an int8 index takes integers -128 to 127", i, x)
			}
			out = append(out, byte(int8(x)))
		}
	}
	return out, nil
}

func neighbors(got []spann.Neighbor) []*spannv1.Neighbor {
	out := make([]*spannv1.Neighbor, len(got))
	for i, n := range got {
		out[i] = &spannv1.Neighbor{Id: n.ID, Distance: n.Dist}
	}
	return out
}

// searchError maps a search failure to a status code.
func searchError(err error) error {
	switch {
	case errors.Is(err, spann.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, spann.ErrCorrupt):
		return connect.NewError(connect.CodeDataLoss, err)
	case strings.HasPrefix(err.Error(), "k=") || strings.HasPrefix(err.Error(), "nprobe") || strings.Contains(err.Error(), "must be"):
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}
