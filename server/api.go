package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	spannv1 "github.com/gospann/spann/server/gen/spannv1"
)

// api is the Server as the generated SpannServiceHandler (Reload is in
// reload.go).
type api struct{ s *Server }

// Search implements the Search method.
func (a api) Search(ctx context.Context, req *connect.Request[spannv1.SearchRequest]) (*connect.Response[spannv1.SearchResponse], error) {
	m := req.Msg
	ans, _, err := a.s.search(ctx, m.Index, m.K, m.Params, []*spannv1.Vector{m.Vector}, nil, nil)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&spannv1.SearchResponse{Neighbors: neighbors(ans[0].res), Stats: stats(&ans[0].st, ans[0].latency)}), nil
}

// SearchBatch implements the SearchBatch method: one search slot; the
// queries go to the same workers as single searches.
func (a api) SearchBatch(ctx context.Context, req *connect.Request[spannv1.SearchBatchRequest]) (*connect.Response[spannv1.SearchBatchResponse], error) {
	m := req.Msg
	ans, wall, err := a.s.search(ctx, m.Index, m.K, m.Params, m.Vectors, m.Filters, nil)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(batchResponse(ans, wall)), nil
}

// RangeMaxPostings caps the postings one range query reads (its
// MaxPostings): a huge radius would otherwise read the whole index.
const RangeMaxPostings = 4096

// SearchRange implements the SearchRange method: as SearchBatch, for
// every vector within the radius.
func (a api) SearchRange(ctx context.Context, req *connect.Request[spannv1.SearchRangeRequest]) (*connect.Response[spannv1.SearchBatchResponse], error) {
	m := req.Msg
	ans, wall, err := a.s.search(ctx, m.Index, 1, m.Params, m.Vectors, m.Filters, &m.Radius)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(batchResponse(ans, wall)), nil
}

// batchResponse packs a batch's answers, each with its figures, and their
// sum.
func batchResponse(ans []answer, wall time.Duration) *spannv1.SearchBatchResponse {
	out := &spannv1.SearchBatchResponse{Results: make([]*spannv1.SearchResponse, len(ans))}
	var sum spann.SearchStats
	for q := range ans {
		sum.Add(ans[q].st)
		out.Results[q] = &spannv1.SearchResponse{Neighbors: neighbors(ans[q].res), Stats: stats(&ans[q].st, ans[q].latency)}
	}
	out.Stats = stats(&sum, wall)
	return out
}

// search checks a search request against the limits, takes a search slot
// (refusing when none is free) and answers its queries on the named
// index's workers, recording their reads. filters, if given, are the
// queries' own filters, one per vector; radius, if not nil, makes them
// range queries.
func (s *Server) search(ctx context.Context, name string, k32 int32, params *spannv1.Params, vs []*spannv1.Vector, filters []*spannv1.Filter, radius *float32) ([]answer, time.Duration, error) {
	sv, h, err := s.use(name)
	if err != nil {
		return nil, 0, err
	}
	defer h.release()
	k, p, err := s.knobs(h.ix, k32, params)
	if err != nil {
		return nil, 0, err
	}
	rows, err := s.vectors(h.ix, vs)
	if err != nil {
		return nil, 0, err
	}
	perQuery, err := queryFilters(h.ix, p.Filter, filters, len(vs))
	if err != nil {
		return nil, 0, err
	}
	release, err := s.acquire()
	if err != nil {
		return nil, 0, err
	}
	defer release()
	if radius != nil {
		if err := h.ix.CheckRadius(*radius); err != nil {
			return nil, 0, connect.NewError(connect.CodeInvalidArgument, err)
		}
		if p.MaxPostings == 0 || p.MaxPostings > RangeMaxPostings {
			p.MaxPostings = RangeMaxPostings
		}
	}
	ans, wall, err := s.answer(ctx, sv, h, rows, perQuery, k, p, radius)
	if err != nil {
		return nil, 0, err
	}
	for q := range ans {
		s.m.query(sv.spec.Name, &ans[q].st)
	}
	return ans, wall, nil
}

// answer is where a worker leaves a query's answer (StreamQuery.Done).
type answer struct {
	res     []spann.Neighbor
	st      spann.SearchStats
	latency time.Duration
	err     error
}

// answer sends the n queries of rows to the index's search workers (query
// i with filter filters[i]) and waits for their answers (and how long they
// took in all). If ctx ends before every query was taken, it waits for
// those taken (which stop early) and returns ctx's error.
func (s *Server) answer(ctx context.Context, sv *served, h *handle, rows []byte, filters [][]int32, k int, p spann.SearchParams, radius *float32) ([]answer, time.Duration, error) {
	n := len(filters)
	rowBytes := len(rows) / n
	ans := make([]answer, n)
	space := make([]spann.Neighbor, n*k)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range ans {
		a := &ans[i]
		a.res = space[i*k : i*k : (i+1)*k]
		wg.Add(1)
		qp := p
		qp.Filter = filters[i]
		sq := &spann.StreamQuery{Ctx: ctx, Query: rows[i*rowBytes : (i+1)*rowBytes], K: k, Params: qp, Range: radius != nil,
			Done: func(res []spann.Neighbor, st *spann.SearchStats, latency time.Duration, err error) {
				s.m.waited(ctx, latency)
				a.res, a.latency, a.err = append(a.res, res...), latency, err
				if st != nil {
					a.st = *st
				}
				wg.Done()
			}}
		if radius != nil {
			sq.Radius = *radius
		}
		select {
		case h.queries <- sq:
		case <-ctx.Done():
			wg.Done() // not sent
			wg.Wait()
			return nil, 0, s.searchError(sv.spec.Name, ctx.Err())
		}
	}
	wg.Wait()
	for i := range ans {
		if err := ans[i].err; err != nil {
			if n > 1 {
				err = fmt.Errorf("query %d: %w", i, err)
			}
			return nil, 0, s.searchError(sv.spec.Name, err)
		}
	}
	return ans, time.Since(t0), nil
}

// Info implements the Info method.
func (a api) Info(ctx context.Context, req *connect.Request[spannv1.InfoRequest]) (*connect.Response[spannv1.InfoResponse], error) {
	sv, h, err := a.s.use(req.Msg.Index)
	if err != nil {
		return nil, err
	}
	defer h.release()
	in := h.ix.Info()
	return connect.NewResponse(&spannv1.InfoResponse{Name: sv.spec.Name, BuildId: in.BuildID, Type: in.Type, Metric: in.Metric,
		Dim: int32(in.Dim), N: int64(in.N), Heads: int32(in.Heads), Backend: in.Backend, Writable: sv.spec.Writable,
		Deleted: int64(h.ix.Deleted()), SizeBytes: dirBytes(in.Dir), Dir: in.Dir, Labels: int32(in.Labels)}), nil
}

// Insert implements the Insert method.
func (a api) Insert(ctx context.Context, req *connect.Request[spannv1.InsertRequest]) (*connect.Response[spannv1.InsertResponse], error) {
	s := a.s
	sv, h, err := s.useWritable(req.Msg.Index)
	if err != nil {
		return nil, err
	}
	defer h.release()
	rows, err := s.vectors(h.ix, req.Msg.Vectors)
	if err != nil {
		return nil, err
	}
	var labels [][]int32 // nil: none
	if len(req.Msg.Labels) > 0 {
		if len(req.Msg.Labels) != len(req.Msg.Vectors) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("labels for %d vectors, %d given: give one per vector, or none", len(req.Msg.Vectors), len(req.Msg.Labels)))
		}
		if h.ix.Labels() == 0 {
			return nil, connect.NewError(connect.CodeFailedPrecondition, spann.ErrNoLabels)
		}
		labels = make([][]int32, len(req.Msg.Labels))
		for i, l := range req.Msg.Labels {
			labels[i] = l.GetLabels()
			for _, x := range labels[i] {
				if x < 0 || int(x) >= h.ix.Labels() {
					return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("vector %d has label %d, but the index's labels are 0..%d", i, x, h.ix.Labels()-1))
				}
			}
			if labels[i] == nil {
				labels[i] = []int32{}
			}
		}
	}
	var first int32
	switch {
	case len(req.Msg.Ids) > 0:
		if len(req.Msg.Ids) != len(req.Msg.Vectors) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%d ids for %d vectors: give one per vector, or none", len(req.Msg.Ids), len(req.Msg.Vectors)))
		}
		if labels != nil {
			err = h.ix.InsertWithIDsLabeled(req.Msg.Ids, rows, labels, req.Msg.Upsert)
		} else {
			err = h.ix.InsertWithIDs(req.Msg.Ids, rows, req.Msg.Upsert)
		}
	case req.Msg.Upsert:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("upsert needs ids"))
	case labels != nil:
		first, err = h.ix.InsertLabeled(rows, labels)
	default:
		first, err = h.ix.Insert(rows)
	}
	if err != nil {
		return nil, updateError(err)
	}
	s.m.inserted.WithLabelValues(sv.spec.Name).Add(float64(len(req.Msg.Vectors)))
	return connect.NewResponse(&spannv1.InsertResponse{First: first}), nil
}

// Delete implements the Delete method.
func (a api) Delete(ctx context.Context, req *connect.Request[spannv1.DeleteRequest]) (*connect.Response[spannv1.DeleteResponse], error) {
	s := a.s
	sv, h, err := s.useWritable(req.Msg.Index)
	if err != nil {
		return nil, err
	}
	defer h.release()
	if n := len(req.Msg.Ids); n == 0 || n > s.cfg.Limits.MaxBatch*64 {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%d ids: a delete takes 1 to %d", n, s.cfg.Limits.MaxBatch*64))
	}
	if err := h.ix.Delete(req.Msg.Ids); err != nil {
		return nil, updateError(err)
	}
	s.m.deleted.WithLabelValues(sv.spec.Name).Add(float64(len(req.Msg.Ids)))
	return connect.NewResponse(&spannv1.DeleteResponse{}), nil
}

// use returns the named index, counted as used until the handle's release.
func (s *Server) use(name string) (*served, *handle, error) {
	sv, err := s.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	h, err := sv.acquire()
	if err != nil {
		return nil, nil, err
	}
	return sv, h, nil
}

// useWritable is use for an update: a read-only index refuses it.
func (s *Server) useWritable(name string) (*served, *handle, error) {
	sv, err := s.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	if !sv.spec.Writable {
		return nil, nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("index %s is served read-only (spann-serve --writable serves updates)", sv.spec.Name))
	}
	h, err := sv.acquire()
	if err != nil {
		return nil, nil, err
	}
	return sv, h, nil
}

// knobs checks k and the search parameters against the limits.
func (s *Server) knobs(ix *spann.Index, k int32, p *spannv1.Params) (int, spann.SearchParams, error) {
	if k <= 0 || int(k) > s.cfg.Limits.MaxK {
		return 0, spann.SearchParams{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("k=%d: must be 1 to %d", k, s.cfg.Limits.MaxK))
	}
	if int(k) > ix.N() {
		return 0, spann.SearchParams{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("k=%d: larger than the %d indexed vectors", k, ix.N()))
	}
	var sp spann.SearchParams
	if p != nil {
		sp = spann.SearchParams{NProbe: int(p.Nprobe), HeadList: int(p.HeadList), Eps: p.Eps, MaxPostings: int(p.MaxPostings),
			FirstRound: int(p.FirstRound), KthSlack: p.KthSlack}
		if len(p.Filter) > 0 {
			sp.Filter = p.Filter
		}
		sp.RangeSlack = p.RangeSlack
	}
	switch {
	case sp.NProbe < 0 || sp.HeadList < 0 || sp.MaxPostings < 0 || sp.FirstRound < 0:
		return 0, sp, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("nprobe %d, head_list %d, max_postings %d, first_round %d: none may be negative (0 = the default)",
			sp.NProbe, sp.HeadList, sp.MaxPostings, sp.FirstRound))
	case math.IsNaN(sp.Eps) || math.IsInf(sp.Eps, 0):
		return 0, sp, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("eps %v: must be a finite number", sp.Eps))
	case math.IsNaN(sp.RangeSlack) || math.IsInf(sp.RangeSlack, 0) || sp.RangeSlack <= -1:
		return 0, sp, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("range_slack %v: must be a finite number above -1", sp.RangeSlack))
	case math.IsNaN(sp.KthSlack) || math.IsInf(sp.KthSlack, 0) || sp.KthSlack < 0:
		return 0, sp, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("kth_slack %v: must be a finite number >= 0", sp.KthSlack))
	}
	return int(k), sp, nil
}

// MaxFilterLabels bounds the labels of one query's filter: each costs a
// bitmap AND.
const MaxFilterLabels = 64

// queryFilters returns each of n queries' filter: filters[i] if the
// request gives them (one per vector), else the request's common filter
// (nil: unfiltered), every one checked against the index's labels.
func queryFilters(ix *spann.Index, common []int32, filters []*spannv1.Filter, n int) ([][]int32, error) {
	out := make([][]int32, n)
	if len(filters) > 0 {
		if len(filters) != n {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%d filters for %d vectors: give one per vector, or none", len(filters), n))
		}
		for i, f := range filters {
			if len(f.GetLabels()) > 0 { // an empty one: that vector is unfiltered
				out[i] = f.GetLabels()
			}
		}
	} else if common != nil {
		for i := range out {
			out[i] = common
		}
	} else {
		return out, nil
	}
	for i, f := range out {
		if f == nil {
			continue
		}
		err := ix.CheckFilter(f)
		if err == nil && len(f) > MaxFilterLabels {
			err = fmt.Errorf("the filter names %d labels, more than %d", len(f), MaxFilterLabels)
		}
		if err != nil {
			if n > 1 {
				err = fmt.Errorf("vector %d: %w", i, err)
			}
			code := connect.CodeInvalidArgument
			if errors.Is(err, spann.ErrNoLabels) {
				code = connect.CodeFailedPrecondition
			}
			return nil, connect.NewError(code, err)
		}
	}
	return out, nil
}

// vectors returns a request's vectors as packed rows, 1 to MaxBatch of them.
func (s *Server) vectors(ix *spann.Index, vs []*spannv1.Vector) ([]byte, error) {
	if n := len(vs); n == 0 || n > s.cfg.Limits.MaxBatch {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%d vectors: a request holds 1 to %d", n, s.cfg.Limits.MaxBatch))
	}
	out := make([]byte, 0, len(vs)*ix.Dim()*ix.Type().Size())
	for i, v := range vs {
		row, err := vectorBytes(ix, v)
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("vector %d: %w", i, err))
		}
		out = append(out, row...)
	}
	return out, nil
}

// vectorBytes returns a request vector as the index's packed row.
func vectorBytes(ix *spann.Index, v *spannv1.Vector) ([]byte, error) {
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

func stats(st *spann.SearchStats, took time.Duration) *spannv1.Stats {
	return &spannv1.Stats{Heads: int32(st.Heads), Postings: int32(st.Postings), Pages: int32(st.Pages), Bytes: int64(st.Bytes),
		Vectors: int64(st.Vectors), SearchUs: took.Microseconds()}
}

// searchError maps a search failure to a status code, counting failed
// posting reads.
func (s *Server) searchError(index string, err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, spann.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, spann.ErrCorrupt):
		s.m.readErrors.WithLabelValues(index, "checksum").Inc()
		return connect.NewError(connect.CodeDataLoss, err)
	case strings.Contains(err.Error(), "reading postings"), strings.Contains(err.Error(), "reading label lists"):
		s.m.readErrors.WithLabelValues(index, "io").Inc()
		return connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// updateError maps an update failure to a status code.
func updateError(err error) error {
	switch {
	case errors.Is(err, spann.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, spann.ErrReadOnly):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, spann.ErrLogWrite):
		return connect.NewError(connect.CodeUnavailable, err) // not applied: retry
	}
	return connect.NewError(connect.CodeInvalidArgument, err) // a refused id or vector
}

// dirBytes is the size of the regular files in dir.
func dirBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}
