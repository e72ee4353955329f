package spann

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/offheap"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/internal/wal"
	"github.com/gospann/spann/iouring"
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
	// WrapReader, if set, is applied to every worker's posting reader as
	// it is made: fault-injection tests wrap it to fail or shorten reads.
	// A wrapped reader is driven one batch at a time (no native pipe).
	WrapReader func(iouring.Reader) iouring.Reader
	// Writable opens the index for updates (Delete, Checkpoint): it takes
	// an exclusive lock on the directory, so a second writable Open fails;
	// read-only Opens see the updates acknowledged before they started.
	Writable bool

	fs      vfs.FS // what updates write through (tests inject faults); vfs.OS if nil
	noSplit bool   // checkpoints never split postings (tests compare)
	// noLabels skips labels.bin (AttachLabels replaces it, even one that
	// no longer opens).
	noLabels bool
}

// Index is an open index. Its methods are safe for concurrent use.
type Index struct {
	Manifest *indexfile.Manifest
	dir      string
	wrap     func(iouring.Reader) iouring.Reader // Options.WrapReader
	typ      datasets.ElemType
	metric   vec.Metric
	dim      int
	rowBytes int
	heads    *indexfile.Heads
	store    *posting.Store // postings.bin and its directory
	postings string
	io       string
	backend  string // chosen by the first worker
	note     string
	eng      engine

	pfile *iouring.File // postings.bin, open from Open to Close
	// mem holds heads, graph lists and directory entries outside the Go
	// heap; it is freed when the Index is closed and no search can still
	// touch it (Close, or the last straggler's return after Close).
	mem *offheap.Arena

	// Updates (mutable.go, insert.go, merge.go).
	fs      vfs.FS
	state   *indexfile.Manifest // the last committed manifest (Manifest is the one opened); umu
	noSplit bool                // Options.noSplit
	// scannedDead is how many ids were deleted when a checkpoint last
	// looked for postings that deletes left sparse (umu).
	scannedDead uint64
	id          indexfile.BuildID
	log         *wal.Log // wal.log, when writable
	lock        *os.File // update.lock, when writable
	// readLock is readers.lock, held shared by a read-only Index so
	// that no writer reuses the space of postings it may read.
	readLock *os.File
	dead     atomic.Pointer[roaring.Bitmap] // deleted ids; nil when none (never changed, only replaced)
	umu      sync.RWMutex                   // updates (shared) against a checkpoint's freeze and log truncation (exclusive)
	ckmu     sync.Mutex                     // one Checkpoint at a time; Close waits for it
	ckBroken error                          // a checkpoint that may have committed without this process knowing: later ones refuse (ckmu)
	dmu      sync.Mutex                     // serialises replacing dead and buf
	buf      atomic.Pointer[insertBuffer]   // vectors inserted since the build; nil when none
	ilab     insertedLabels                 // labels of vectors inserted since the labels file (labelins.go)
	idm      atomic.Pointer[idMap]          // external ids, once an insert gave some (ids.go); nil before
	total    atomic.Int64                   // ids handed out: the build's n plus those reserved by Inserts
	acked    atomic.Int64                   // ids that exist: the build's and every acknowledged insert's (N)
	// tornBytes is the torn tail of wal.log that Open discarded (cut off
	// when writable, skipped when not): the end of a batch a crash cut,
	// or a damaged last record, which cannot be told apart.
	tornBytes int64

	mu       sync.Mutex
	free     []worker
	busy     int // workers taken by searches in flight
	closed   bool
	drained  chan struct{} // closed when busy reaches 0 after Close
	closeErr error         // first error closing a worker returned after Close
}

// Info describes an open index.
type Info struct {
	Dir      string
	BuildID  string // the build's id, as in manifest.json
	Type     string
	Metric   string
	Dim      int
	N        int
	Heads    int
	Backend  string // posting-read backend in use ("" until the first search)
	Fallback string // why the backend is not the one asked for, if so
	// LogTornBytes is the torn tail of the write-ahead log that Open
	// discarded: updates a crash interrupted before they were
	// acknowledged (or a damaged last record). 0 normally.
	LogTornBytes int64
	// Labels is the label vocabulary's size (labels 0..Labels-1) if the
	// index has labels for filtered search (AttachLabels), else 0.
	Labels int
}

// Open loads the manifest, heads, head graph and posting directory of the
// index in dir, validating sizes and checksums; posting lists stay on disk.
//
// A read-only Open of an index that a writer is updating sees one
// consistent state: if a checkpoint committed a new generation while it
// was opening (so that the log it replayed may already have been emptied,
// or a file it named removed), it opens again.
func Open(dir string, opts Options) (*Index, error) {
	const attempts = 5
	for try := 1; ; try++ {
		ix, gen, err := openOnce(dir, opts)
		if opts.Writable || try == attempts || gen < 0 {
			return ix, err // a writer holds the lock: nothing moves under it
		}
		m, merr := indexfile.ReadManifest(dir)
		if merr == nil && m.Generation == gen {
			return ix, err
		}
		if ix != nil {
			ix.Close()
		}
	}
}

// openOnce opens dir once, returning the generation of the manifest it
// read (-1 if it read none).
func openOnce(dir string, opts Options) (*Index, int64, error) {
	var readLock *os.File
	if !opts.Writable {
		readLock = lockReaders(dir) // before the manifest: see mutable.go
	}
	m, err := indexfile.ReadManifest(dir)
	if err != nil {
		if readLock != nil {
			readLock.Close()
		}
		return nil, -1, err
	}
	ix, err := openManifest(dir, m, opts)
	if err != nil {
		if readLock != nil {
			readLock.Close()
		}
		return nil, m.Generation, err
	}
	ix.readLock = readLock
	return ix, m.Generation, nil
}

// openManifest opens the index that manifest m describes.
func openManifest(dir string, m *indexfile.Manifest, opts Options) (*Index, error) {
	typ, err := datasets.ParseType(m.Type)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", dir, ErrCorrupt, err)
	}
	metric, err := vec.ParseMetric(m.Metric)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", dir, ErrCorrupt, err)
	}
	ix := &Index{Manifest: m, dir: dir, typ: typ, metric: metric, dim: m.Dim, rowBytes: m.Dim * typ.Size(),
		postings: filepath.Join(dir, indexfile.PostingsFile), io: opts.IO, wrap: opts.WrapReader, fs: opts.fs, noSplit: opts.noSplit, state: m}
	if ix.fs == nil {
		ix.fs = vfs.OS
	}

	// Heads, graph lists and directory live off the Go heap until Close
	// (see internal/offheap for why).
	ix.mem = &offheap.Arena{}
	opened := false
	defer func() {
		if !opened {
			ix.mem.Free()
		}
	}()
	headBytes, err := readChecked(m, dir, m.Current(indexfile.HeadsFile), ix.mem)
	if err != nil {
		return nil, err
	}
	if ix.heads, err = indexfile.ParseHeads(headBytes); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, m.Current(indexfile.HeadsFile)), err)
	}
	if err := m.CheckID(dir, m.Current(indexfile.HeadsFile), ix.heads.BuildID); err != nil {
		return nil, err
	}
	if ix.heads.Type != typ || ix.heads.Dim != m.Dim || ix.heads.Len() != m.Heads {
		return nil, fmt.Errorf("%s: %w: heads file disagrees with the manifest", dir, ErrCorrupt)
	}
	// The directory and the graph are streamed through their checksums
	// rather than read whole: at Open, memory is the peak a small machine
	// must have.
	dirFile, err := m.OpenChecked(dir, m.Directory())
	if err != nil {
		return nil, err
	}
	pdir, err := posting.ReadDirectorySized(dirFile, dirFile.Size(), ix.mem)
	if err != nil {
		return nil, versionOrCorrupt(dirFile, err, posting.ErrVersion, filepath.Join(dir, m.Directory()))
	}
	if err := dirFile.Verify(); err != nil {
		return nil, err
	}
	if err := m.CheckID(dir, m.Directory(), pdir.BuildID); err != nil {
		return nil, err
	}
	if len(pdir.Entries) != m.Heads {
		return nil, fmt.Errorf("%s: %w: %d postings for %d heads", dir, ErrCorrupt, len(pdir.Entries), m.Heads)
	}
	// The postings file is opened once, here, and every worker reads it
	// through a duplicate of this descriptor: a rebuild that renames a new
	// index over dir never reaches an open Index. It is too large to
	// checksum at every open; its size and header page are checked here and
	// every posting's own CRC32C at every read. It may be longer than the
	// manifest says: postings a checkpoint was writing when it was
	// interrupted (a writable Open cuts them off), which no directory
	// names.
	pinfo, ok := m.File(indexfile.PostingsFile)
	if !ok {
		return nil, fmt.Errorf("%s: %w: manifest lists no %s", dir, ErrCorrupt, indexfile.PostingsFile)
	}
	if ix.pfile, err = iouring.OpenFile(ix.postings); err != nil {
		return nil, fmt.Errorf("index file missing or unreadable: %w", err)
	}
	defer func() {
		if !opened {
			ix.pfile.Close()
		}
	}()
	if size, err := ix.pfile.Size(); err != nil {
		return nil, err
	} else if size < pinfo.Bytes {
		return nil, fmt.Errorf("%s: %w: %s is %d bytes, the manifest says %d", dir, ErrCorrupt, ix.postings, size, pinfo.Bytes)
	}
	// The store checks the header page (magic, version, CRC, row size)
	// and that every posting's whole aligned read lies inside the file.
	if ix.store, err = posting.OpenStore(ix.pfile, pdir.Entries, ix.rowBytes); err != nil {
		return nil, postingError(err)
	}
	if err := m.CheckID(dir, indexfile.PostingsFile, ix.store.Header().BuildID); err != nil {
		return nil, err
	}
	graph, err := m.OpenChecked(dir, m.Current(indexfile.GraphFile))
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
		graph.Close() // (again, if newEngine did: harmless)
		return nil, err
	}
	if err := graph.Verify(); err != nil {
		return nil, err
	}
	if err := ix.openUpdates(opts.Writable); err != nil {
		return nil, err
	}
	if err := ix.loadLabels(opts.Writable, opts.noLabels); err != nil {
		ix.closeUpdates()
		return nil, err
	}
	// Open one worker now so that a backend problem surfaces at Open.
	w, err := ix.eng.newWorker()
	if err != nil {
		ix.closeUpdates()
		return nil, err
	}
	ix.free = append(ix.free, w)
	opened = true
	return ix, nil
}

// readChecked reads the whole of an index file into arena memory and
// checks its size and SHA-256 against the manifest.
func readChecked(m *indexfile.Manifest, dir, name string, arena *offheap.Arena) ([]byte, error) {
	f, err := m.OpenChecked(dir, name)
	if err != nil {
		return nil, err
	}
	data, err := arena.Bytes(int(f.Size()))
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := io.ReadFull(f, data); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return data, f.Verify()
}

// versionOrCorrupt classifies a failure to parse an index file streamed
// through f. A header naming a newer format (errVersion) is ErrVersion if
// the whole file is intact — its SHA-256 is the manifest's — and damage
// (ErrCorrupt) otherwise: the version field of a damaged file looks the
// same. Every other failure is ErrCorrupt. f is closed.
func versionOrCorrupt(f *indexfile.CheckedReader, err, errVersion error, path string) error {
	if errors.Is(err, errVersion) {
		if verr := f.Verify(); verr != nil {
			return verr
		}
		return fmt.Errorf("%w: %s: %w", ErrVersion, path, err)
	}
	f.Close()
	// Each package reports damage with its own error; for an index file it
	// is this package's ErrCorrupt.
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
}

// postingError classifies a posting package failure for errors.Is: a
// newer format is ErrVersion, damage is ErrCorrupt.
func postingError(err error) error {
	switch {
	case errors.Is(err, posting.ErrVersion):
		return fmt.Errorf("%w: %w", ErrVersion, err)
	case errors.Is(err, posting.ErrCorrupt):
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

func newEngine[T vec.Elem](ix *Index, graph *indexfile.CheckedReader) (engine, error) {
	sp, err := vec.NewSpace[T](ix.metric)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", ix.dir, ErrCorrupt, err)
	}
	heads := datasets.Rows[T](ix.heads.Vectors)
	g, err := memindex.LoadIn(graph, sp, heads, ix.dim, ix.mem)
	if err != nil {
		return nil, versionOrCorrupt(graph, err, memindex.ErrVersion, filepath.Join(ix.dir, ix.Manifest.Current(indexfile.GraphFile)))
	}
	if err := ix.Manifest.CheckID(ix.dir, ix.Manifest.Current(indexfile.GraphFile), g.Tag); err != nil {
		return nil, err
	}
	e := &engineT[T]{ix: ix, sp: sp}
	set := &headSet[T]{vecs: heads, ids: ix.heads.IDs, graph: g}
	set.index()
	e.adoptions(set)
	if err := ix.store.Publish(nil, -1, set); err != nil {
		return nil, err
	}
	return e, nil
}

// Info returns the index's shape and I/O backend.
func (ix *Index) Info() Info {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return Info{Dir: ix.dir, BuildID: ix.Manifest.BuildID, Type: ix.typ.String(), Metric: ix.metric.String(), Dim: ix.dim, N: ix.N(),
		Heads: len(ix.eng.headIDs()), Backend: ix.backend, Fallback: ix.note, LogTornBytes: ix.tornBytes, Labels: ix.Labels()}
}

// Type returns the element type queries must have.
func (ix *Index) Type() datasets.ElemType { return ix.typ }

// Dim returns the vector dimension.
func (ix *Index) Dim() int { return ix.dim }

// N returns the number of indexed vectors.
func (ix *Index) N() int { return int(ix.acked.Load()) }

// ErrClosed is returned by searches on an Index after Close (errors.Is).
var ErrClosed = errors.New("spann: index is closed")

// closeWait bounds how long Close waits for searches in flight.
const closeWait = 10 * time.Second

// getWorker takes a free worker, or makes one, and counts it busy until
// putWorker.
func (ix *Index) getWorker() (worker, error) {
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil, ErrClosed
	}
	ix.busy++
	if n := len(ix.free); n > 0 {
		w := ix.free[n-1]
		ix.free = ix.free[:n-1]
		ix.mu.Unlock()
		return w, nil
	}
	ix.mu.Unlock()
	w, err := ix.eng.newWorker()
	if err != nil {
		ix.mu.Lock()
		closed := ix.closed
		ix.release()
		ix.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		return nil, err
	}
	return w, nil
}

// putWorker returns a worker to the pool, or closes it if the Index was
// closed meanwhile.
func (ix *Index) putWorker(w worker) {
	w.releaseViews()
	w.dropStaleLists()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		if err := w.close(); err != nil && ix.closeErr == nil {
			ix.closeErr = err
		}
	} else {
		ix.free = append(ix.free, w)
	}
	ix.release()
}

// enter counts a caller that reads the index's memory without a worker
// (an insert's head search, MatchCount) as busy, so that Close frees
// nothing under it; leave ends it. ErrClosed once closed.
func (ix *Index) enter() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	ix.busy++
	return nil
}

func (ix *Index) leave() {
	ix.mu.Lock()
	ix.release()
	ix.mu.Unlock()
}

// release ends one busy worker's count (ix.mu held), waking Close when the
// last search of a closed Index returns.
func (ix *Index) release() {
	ix.busy--
	if ix.busy == 0 && ix.drained != nil {
		close(ix.drained)
		ix.drained = nil
	}
	if ix.busy == 0 && ix.closed && ix.ckmu.TryLock() {
		// (A checkpoint holding ckmu frees it when it ends.)
		ix.freeMemory()
		ix.ckmu.Unlock()
	}
}

// freeMemory unmaps heads, graph and directory (ix.mu held; the Index is
// closed and no search is running, so nothing can read them again).
func (ix *Index) freeMemory() {
	if err := ix.mem.Free(); err != nil && ix.closeErr == nil {
		ix.closeErr = err
	}
}

// Close releases every worker's ring, descriptor and buffers and the
// postings file. It may be called while searches run: new searches fail
// with ErrClosed at once, and Close waits for those in flight to return
// (each closes its worker as it does), for at most ten seconds; past that it
// returns an error and the stragglers release their workers when they end.
// Calling Close again returns nil.
func (ix *Index) Close() error {
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil
	}
	ix.closed = true
	var first error
	for _, w := range ix.free {
		if err := w.close(); err != nil && first == nil {
			first = err
		}
	}
	ix.free = nil
	var drained chan struct{}
	if ix.busy > 0 {
		drained = make(chan struct{})
		ix.drained = drained
	}
	busy := ix.busy
	ix.mu.Unlock()
	if drained != nil {
		select {
		case <-drained:
		case <-time.After(closeWait):
			return fmt.Errorf("spann: close %s: %d searches still running after %v; their workers are released when they return", ix.dir, busy, closeWait)
		}
	}
	ix.ckmu.Lock() // a checkpoint still running finishes first
	if err := ix.pfile.Close(); err != nil && first == nil {
		first = err
	}
	if lab := ix.eng.labels(); lab != nil && lab.lfile != nil {
		if err := lab.lfile.Close(); err != nil && first == nil {
			first = err
		}
	}
	if err := ix.closeUpdates(); err != nil && first == nil {
		first = err
	}
	ix.ckmu.Unlock()
	ix.mu.Lock()
	if ix.busy == 0 {
		ix.freeMemory()
	}
	if ix.closeErr != nil && first == nil {
		first = ix.closeErr
	}
	ix.mu.Unlock()
	return first
}
