// Package server serves indexes over the network (spann-serve): the API of
// proto/spann/v1/spann.proto as gRPC, gRPC-Web and Connect's JSON over
// HTTP, all from the same handlers (connect-go), with the standard gRPC
// health service, Prometheus metrics, bearer-token auth, limits and hot
// reload.
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
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/server/gen/spannv1/spannv1connect"
)

// Limits bound what one request may ask; zero fields take the defaults.
type Limits struct {
	MaxK          int // neighbours per query (default 1000)
	MaxBatch      int // queries per SearchBatch, vectors per Insert (default 1024)
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

// IndexSpec is one index to serve.
type IndexSpec struct {
	Name     string // what requests call it
	Dir      string // its directory
	Writable bool   // open for updates: Insert and Delete are served, Reload is not
}

// Config is what New serves and how.
type Config struct {
	Indexes []IndexSpec
	Token   string // bearer token every request but health checks must carry ("" = none)
	Limits  Limits
	IO      string // posting-read backend (spann.Options.IO; "" = auto)
	// CheckpointEvery is how often a writable index's log is folded into
	// its files (0 = never; updates stay durable in the log regardless).
	CheckpointEvery time.Duration
	// Workers is how many search workers each index has (0 = GOMAXPROCS),
	// each keeping up to InFlight queries in flight (0 =
	// spann.DefaultInFlight); requests beyond wait for a free one, up to
	// Limits.MaxConcurrent in all.
	Workers, InFlight int
	// Logf reports what happens outside requests (reloads, checkpoints,
	// an old index failing to close); nil discards it.
	Logf func(format string, args ...any)
}

// Server serves a set of named indexes. Its methods are safe for
// concurrent use.
type Server struct {
	cfg     Config
	indexes map[string]*served
	only    string        // the name when there is one index: requests may name none
	token   []byte        // required bearer token; nil: none
	slots   chan struct{} // one per search allowed at once
	m       *metrics
	stop    chan struct{} // closed by Close: checkpoint loops end
	loops   sync.WaitGroup
}

// New opens the indexes of cfg and returns a server of them.
func New(cfg Config) (*Server, error) {
	if len(cfg.Indexes) == 0 {
		return nil, errors.New("server: no index to serve")
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = spann.DefaultInFlight
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	s := &Server{cfg: cfg, indexes: map[string]*served{}, slots: make(chan struct{}, cfg.Limits.MaxConcurrent),
		stop: make(chan struct{})}
	if cfg.Token != "" {
		s.token = []byte(cfg.Token)
	}
	s.m = newMetrics(s)
	for _, spec := range cfg.Indexes {
		if _, dup := s.indexes[spec.Name]; dup {
			s.Close()
			return nil, fmt.Errorf("server: two indexes named %q", spec.Name)
		}
		sv := &served{spec: spec}
		ix, err := s.open(spec)
		if err != nil {
			s.Close()
			return nil, err
		}
		sv.cur.Store(s.newHandle(ix))
		s.indexes[spec.Name] = sv
		if spec.Writable && cfg.CheckpointEvery > 0 {
			s.loops.Add(1)
			go s.checkpointLoop(sv)
		}
	}
	if len(s.indexes) == 1 {
		s.only = cfg.Indexes[0].Name
	}
	return s, nil
}

func (s *Server) open(spec IndexSpec) (*spann.Index, error) {
	return spann.Open(spec.Dir, spann.Options{IO: s.cfg.IO, Writable: spec.Writable})
}

// Close stops the checkpoint loops and closes every index once the
// requests using it have ended. Call it after the HTTP server drained.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
		close(s.stop)
	}
	s.loops.Wait()
	var errs []error
	for _, sv := range s.indexes {
		sv.reload.Lock()
		if h := sv.cur.Swap(nil); h != nil {
			errs = append(errs, h.release())
		}
		sv.reload.Unlock()
	}
	return errors.Join(errs...)
}

// Handler returns the HTTP handler of the API, the health service and
// /metrics (behind the token, when there is one).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	path, h := spannv1connect.NewSpannServiceHandler(api{s},
		connect.WithInterceptors(connect.UnaryInterceptorFunc(s.m.observe), connect.UnaryInterceptorFunc(s.authenticate)),
		connect.WithReadMaxBytes(s.cfg.Limits.MaxBytes),
		// Gzip only what is worth it: compressing every ~200-byte answer
		// cost 13 % of the server's CPU at 64 requests in flight.
		connect.WithCompressMinBytes(16<<10))
	mux.Handle(path, h)
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(spannv1connect.SpannServiceName)))
	mux.Handle("/metrics", s.requireToken(s.m.handler()))
	return mux
}

// authorized reports whether an Authorization header value carries the
// token, comparing in constant time.
func (s *Server) authorized(header string) bool {
	if s.token == nil {
		return true
	}
	got, ok := strings.CutPrefix(header, "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), s.token) == 1
}

// authenticate refuses a request without the token before any work.
func (s *Server) authenticate(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if !s.authorized(req.Header().Get("Authorization")) {
			return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("missing or wrong bearer token"))
		}
		return next(ctx, req)
	}
}

// requireToken is authenticate for plain HTTP handlers.
func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r.Header.Get("Authorization")) {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// lookup returns the named index.
func (s *Server) lookup(name string) (*served, error) {
	if name == "" {
		name = s.only
	}
	sv, ok := s.indexes[name]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no index %q is served", name))
	}
	return sv, nil
}

// acquire takes a search slot, refusing at once when none is free.
func (s *Server) acquire() (func(), error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
		s.m.refused.Inc()
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("more than %d searches at once", s.cfg.Limits.MaxConcurrent))
	}
}

// checkpointLoop folds a writable index's log every CheckpointEvery.
func (s *Server) checkpointLoop(sv *served) {
	defer s.loops.Done()
	t := time.NewTicker(s.cfg.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		h, err := sv.acquire()
		if err != nil {
			return
		}
		t0 := time.Now()
		err = h.ix.Checkpoint()
		s.m.checkpoint(sv.spec.Name, time.Since(t0), err)
		if err != nil {
			s.cfg.Logf("checkpoint of %s: %v", sv.spec.Name, err)
		}
		h.release()
	}
}
