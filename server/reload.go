package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"

	spann "github.com/gospann/spann"
	spannv1 "github.com/gospann/spann/server/gen/spannv1"
)

// served is one named index: the open Index behind an atomic pointer, so
// that a reload swaps in a new one while requests hold the old.
type served struct {
	spec   IndexSpec
	cur    atomic.Pointer[handle] // nil once the server closed
	reload sync.Mutex             // one reload (or Close) at a time
}

// handle is one open Index with a count of its users: one for being
// current, one per request using it. The last to let go closes it, so a
// request that took the old index before a swap finishes on it.
//
// Searches go to a few workers (spann.ServeQueries, one per core by
// default) through queries: each keeps several queries in flight, as
// SearchBatch does, whatever the number of requests.
type handle struct {
	ix      *spann.Index
	refs    atomic.Int64
	logf    func(string, ...any)
	queries chan *spann.StreamQuery // buffered: see newHandle
	serving sync.WaitGroup
}

func (s *Server) newHandle(ix *spann.Index) *handle {
	// The buffer lets a request queue its queries at once, so that a
	// worker freeing a slot finds the next query waiting: unbuffered, a
	// worker's non-blocking receive found a sender ready only if its
	// goroutine had run since its last send, and the workers ran with few
	// queries in flight (1.2 of the 2 cores busy at 32-query batches).
	h := &handle{ix: ix, logf: s.cfg.Logf, queries: make(chan *spann.StreamQuery, 2*s.cfg.Workers*s.cfg.InFlight)}
	h.refs.Store(1)
	for i := 0; i < s.cfg.Workers; i++ {
		h.serving.Add(1)
		go func() {
			defer h.serving.Done()
			ix.ServeQueries(h.queries, s.cfg.InFlight)
		}()
	}
	return h
}

// acquire returns the current index, counted as used until release.
func (sv *served) acquire() (*handle, error) {
	for {
		h := sv.cur.Load()
		if h == nil {
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("index %s: the server is shutting down", sv.spec.Name))
		}
		// Count a user only while the count is above zero: at zero the
		// handle was retired (and is closing), and the pointer already
		// names its successor, so load again.
		if n := h.refs.Load(); n > 0 && h.refs.CompareAndSwap(n, n+1) {
			return h, nil
		}
	}
}

// release ends one use; the last closes the index and returns its error.
func (h *handle) release() error {
	if h.refs.Add(-1) != 0 {
		return nil
	}
	close(h.queries) // nobody holds the handle: nobody sends
	h.serving.Wait()
	err := h.ix.Close()
	if err != nil {
		h.logf("closing the previous index in %s: %v", h.ix.Info().Dir, err)
	}
	return err
}

// Reload reopens the named read-only index from its directory and swaps
// it in; searches in flight finish on the old one, which closes after the
// last of them. If the new one fails to open, the old one keeps serving
// and the error says why. It returns the build ids of the new and the old
// index.
func (s *Server) Reload(name string) (now, before string, err error) {
	sv, err := s.lookup(name)
	if err != nil {
		return "", "", err
	}
	sv.reload.Lock()
	defer sv.reload.Unlock()
	if sv.spec.Writable {
		return "", "", connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("index %s is served for writing: it changes in place and is not reloaded", sv.spec.Name))
	}
	old := sv.cur.Load()
	if old == nil {
		return "", "", connect.NewError(connect.CodeUnavailable, errors.New("the server is shutting down"))
	}
	ix, err := s.open(sv.spec)
	if err != nil {
		s.m.reloads.WithLabelValues(sv.spec.Name, "error").Inc()
		return "", "", connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("reload of %s failed, the previous index keeps serving: %w", sv.spec.Name, err))
	}
	sv.cur.Store(s.newHandle(ix))
	old.release()
	s.m.reloads.WithLabelValues(sv.spec.Name, "ok").Inc()
	return ix.Info().BuildID, old.ix.Info().BuildID, nil
}

// ReloadAll reloads every read-only index (what SIGHUP does), returning
// the failures joined; those indexes keep their previous version.
func (s *Server) ReloadAll() error {
	var errs []error
	for name, sv := range s.indexes {
		if sv.spec.Writable {
			continue
		}
		now, before, err := s.Reload(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.cfg.Logf("reloaded %s: build %s (was %s)", name, now, before)
	}
	return errors.Join(errs...)
}

// Reload implements the Reload method (behind the token, like the rest).
func (a api) Reload(ctx context.Context, req *connect.Request[spannv1.ReloadRequest]) (*connect.Response[spannv1.ReloadResponse], error) {
	s := a.s
	sv, err := s.lookup(req.Msg.Index)
	if err != nil {
		return nil, err
	}
	now, before, err := s.Reload(sv.spec.Name)
	if err != nil {
		return nil, err
	}
	s.cfg.Logf("reloaded %s on request: build %s (was %s)", sv.spec.Name, now, before)
	return connect.NewResponse(&spannv1.ReloadResponse{BuildId: now, PreviousBuildId: before}), nil
}
