package spann

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

// ErrCorrupt marks an index file that fails validation; errors.Is detects it
// through every wrapping.
var ErrCorrupt = indexfile.ErrCorrupt

// Options configures Open.
type Options struct {
	// IO is the posting-read backend: "auto" (io_uring, else Linux AIO,
	// else pread), "uring", "aio" or "pread". The SPANN_IO environment
	// variable overrides it.
	IO string
}

// Index is an open index. Its methods are safe for concurrent use.
type Index struct {
	Manifest *indexfile.Manifest
	dir      string
	typ      datasets.ElemType
	metric   vec.Metric
	dim      int
	rowBytes int
	heads    *indexfile.Heads
	entries  []posting.Entry
	postings string
	table    *posting.Table // the postings file's shared Huffman table, if any
	io       string
	backend  string // chosen by the first worker
	note     string
	eng      engine

	mu      sync.Mutex
	free    []worker
	all     []worker
	closed  bool
	maxRead int // bytes of the largest posting read
}

// Info describes an open index.
type Info struct {
	Dir      string
	Type     string
	Metric   string
	Dim      int
	N        int
	Heads    int
	Backend  string // posting-read backend in use ("" until the first search)
	Fallback string // why the backend is not the one asked for, if so
}

// Open loads the manifest, heads, head graph and posting directory of the
// index in dir, validating sizes and checksums; posting lists stay on disk.
func Open(dir string, opts Options) (*Index, error) {
	m, err := indexfile.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	typ, err := datasets.ParseType(m.Type)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", dir, ErrCorrupt, err)
	}
	metric, err := vec.ParseMetric(m.Metric)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", dir, ErrCorrupt, err)
	}
	ix := &Index{Manifest: m, dir: dir, typ: typ, metric: metric, dim: m.Dim, rowBytes: m.Dim * typ.Size(),
		postings: filepath.Join(dir, build.PostingsFile), io: opts.IO}

	load := func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("index file missing or unreadable: %w", err)
		}
		if err := m.CheckBytes(name, data); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		return data, nil
	}
	headBytes, err := load(build.HeadsFile)
	if err != nil {
		return nil, err
	}
	if ix.heads, err = indexfile.ParseHeads(headBytes); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, build.HeadsFile), err)
	}
	if ix.heads.Type != typ || ix.heads.Dim != m.Dim || ix.heads.Len() != m.Heads {
		return nil, fmt.Errorf("%s: %w: heads file disagrees with the manifest", dir, ErrCorrupt)
	}
	dirBytes, err := load(build.DirectoryFile)
	if err != nil {
		return nil, err
	}
	if ix.entries, err = posting.ReadDirectory(bytes.NewReader(dirBytes)); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, build.DirectoryFile), err)
	}
	if len(ix.entries) != m.Heads {
		return nil, fmt.Errorf("%s: %w: %d postings for %d heads", dir, ErrCorrupt, len(ix.entries), m.Heads)
	}
	// The postings file is too large to checksum at every open; its size is
	// checked here and every posting's own CRC32C at every read.
	if err := m.CheckFile(dir, build.PostingsFile, false); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	pinfo, _ := m.File(build.PostingsFile)
	if ix.table, err = readPostingsHeader(ix.postings, ix.rowBytes); err != nil {
		return nil, err
	}
	for i, e := range ix.entries {
		// The whole aligned read must lie inside the file (the writer pads
		// it to a page), not just the extent: O_DIRECT reads whole pages.
		if e.ReadOffset()+uint64(e.ReadBytes()) > uint64(pinfo.Bytes) {
			return nil, fmt.Errorf("%s: %w: posting %d's pages end past the postings file", dir, ErrCorrupt, i)
		}
		ix.maxRead = max(ix.maxRead, e.ReadBytes())
	}
	// The graph is streamed through its checksum rather than read whole:
	// at Open, memory is the peak a small machine must have.
	graph, err := m.OpenChecked(dir, build.GraphFile)
	if err != nil {
		return nil, err
	}
	switch typ {
	case datasets.Float32:
		ix.eng, err = newEngine[float32](ix, graph)
	case datasets.Uint8:
		ix.eng, err = newEngine[uint8](ix, graph)
	default:
		ix.eng, err = newEngine[int8](ix, graph)
	}
	if err != nil {
		graph.Close()
		return nil, err
	}
	if err := graph.Verify(); err != nil {
		return nil, err
	}
	// Open one worker now so that a backend problem surfaces at Open.
	w, err := ix.eng.newWorker()
	if err != nil {
		return nil, err
	}
	ix.all = append(ix.all, w)
	ix.free = append(ix.free, w)
	return ix, nil
}

// readPostingsHeader checks page 0 of the postings file (magic, version,
// CRC, row size) and returns its shared Huffman table, if it has one.
func readPostingsHeader(path string, rowBytes int) (*posting.Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("index file missing or unreadable: %w", err)
	}
	defer f.Close()
	page := make([]byte, posting.PageSize)
	if _, err := io.ReadFull(f, page); err != nil {
		return nil, fmt.Errorf("%s: %w: header page: %v", path, ErrCorrupt, err)
	}
	h, err := posting.ReadFileHeader(page)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	if int(h.RowBytes) != rowBytes {
		return nil, fmt.Errorf("%s: %w: postings of %d-byte vectors, the manifest says %d", path, ErrCorrupt, h.RowBytes, rowBytes)
	}
	return h.Table, nil
}

func newEngine[T vec.Elem](ix *Index, graph io.Reader) (engine, error) {
	sp, err := vec.NewSpace[T](ix.metric)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", ix.dir, ErrCorrupt, err)
	}
	heads := datasets.Rows[T](ix.heads.Vectors)
	g, err := memindex.Load(graph, sp, heads, ix.dim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(ix.dir, build.GraphFile), err)
	}
	return &engineT[T]{ix: ix, sp: sp, graph: g, heads: heads}, nil
}

// Info returns the index's shape and I/O backend.
func (ix *Index) Info() Info {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return Info{Dir: ix.dir, Type: ix.typ.String(), Metric: ix.metric.String(), Dim: ix.dim, N: ix.Manifest.N,
		Heads: ix.heads.Len(), Backend: ix.backend, Fallback: ix.note}
}

// Type returns the element type queries must have.
func (ix *Index) Type() datasets.ElemType { return ix.typ }

// Dim returns the vector dimension.
func (ix *Index) Dim() int { return ix.dim }

// N returns the number of indexed vectors.
func (ix *Index) N() int { return ix.Manifest.N }

var errClosed = errors.New("spann: index is closed")

func (ix *Index) getWorker() (worker, error) {
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil, errClosed
	}
	if n := len(ix.free); n > 0 {
		w := ix.free[n-1]
		ix.free = ix.free[:n-1]
		ix.mu.Unlock()
		return w, nil
	}
	ix.mu.Unlock()
	w, err := ix.eng.newWorker()
	if err != nil {
		return nil, err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		w.close()
		return nil, errClosed
	}
	ix.all = append(ix.all, w)
	return w, nil
}

func (ix *Index) putWorker(w worker) {
	ix.mu.Lock()
	ix.free = append(ix.free, w)
	ix.mu.Unlock()
}

// Close releases every worker's ring, file and buffers. Searches must have
// returned; later calls fail.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	var first error
	for _, w := range ix.all {
		if err := w.close(); err != nil && first == nil {
			first = err
		}
	}
	ix.all, ix.free = nil, nil
	return first
}
