// Package build runs the index build pipeline: heads by hierarchical
// balanced k-means (cluster), a graph over the heads (memindex), replica
// assignment of every base vector with the RNG rule, spilled to disk in
// head-range buckets, then postings (posting) and the manifest, written
// last. See docs/design.md for the why.
package build

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gospann/spann/cluster"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/progress"
	"github.com/gospann/spann/internal/sysmem"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

// Index file names inside the index directory (indexfile owns them).
const (
	HeadsFile     = indexfile.HeadsFile
	GraphFile     = indexfile.GraphFile
	DirectoryFile = indexfile.DirectoryFile
	PostingsFile  = indexfile.PostingsFile
)

// Options configures a build. Zero values take the documented defaults.
type Options struct {
	Base string // base vector file
	// Input, if set, is read instead of Base: vectors from memory
	// (datasets.VectorsInMemory) or an already open file. Run does not
	// close it.
	Input *datasets.VectorFile
	Type  datasets.ElemType // 0 = from the extension
	Out   string            // index directory to create
	Crop  int               // use only the first Crop rows (0 = all)

	Metric         vec.Metric
	HeadRatio      float64 // fraction of vectors that become heads; default 0.18
	Replicas       int     // max heads per vector; default 10
	PostingLimit   int     // max vectors per posting; default 96
	RNGFactor      float64 // RNG rule factor; default 1
	ReplicaEps     float64 // only heads within d1 + eps·|d1|; < 0 disables (default -1)
	CandidateHeads int     // candidate heads searched per vector; default 64
	Codec          posting.Codec
	Threads        int   // default runtime.NumCPU()
	MemoryBudget   int64 // bytes; default 1/4 of RAM
	TmpDir         string
	Seed           int64
	Force          bool
	// Resume continues the most advanced interrupted build of Out (one
	// killed by kill -9, a crash or the OOM killer: a build that fails with
	// an error removes its directory) from its last checkpoint, with the
	// same flags; it starts afresh when there is none. The index is byte
	// for byte the one an uninterrupted build makes.
	Resume bool
	// Progress receives a progress report of each phase (a bar when it is
	// a terminal, a line every few seconds otherwise); nil reports nothing.
	Progress io.Writer
	// BuildID identifies the build in every file it writes; zero (the
	// default) draws a random one. Give the same one to reproduce an index
	// byte for byte.
	BuildID    indexfile.BuildID
	explicitID bool // BuildID was given, not drawn

	Graph memindex.Params
	// AssignSearchList is the head-graph search list used to find each
	// vector's candidate heads; default 2·CandidateHeads.
	AssignSearchList int

	// afterPhase, if set, is called after each phase (tests use it to
	// interrupt a build midway).
	afterPhase func(phase string)
	// maxBucketBytes, if set, caps the spill bucket size (tests use it to
	// force many buckets).
	maxBucketBytes int64
	// fs is what the build writes through (nil: vfs.OS); tests inject
	// faults with a vfs.Injector.
	fs vfs.FS
}

// Stats is the build summary (printed by spann-build, stored in the manifest).
type Stats struct {
	N            int     `json:"n"`
	Dim          int     `json:"dim"`
	Type         string  `json:"type"`
	Metric       string  `json:"metric"`
	Heads        int     `json:"heads"`
	Postings     int     `json:"postings"`
	ReplicasMean float64 `json:"replicas_mean"`
	ReplicasMax  int     `json:"replicas_max"`
	PostingMin   int     `json:"posting_min"`
	PostingMean  float64 `json:"posting_mean"`
	PostingP99   int     `json:"posting_p99"`
	PostingMax   int     `json:"posting_max"`
	Dropped      int64   `json:"dropped_by_posting_limit"`
	// KeptPastLimit counts vectors a posting holds beyond the limit because
	// that head is their nearest; Unstored, vectors in no posting that are
	// not heads (always 0: the build fails otherwise).
	KeptPastLimit int64              `json:"kept_past_posting_limit"`
	Unstored      int64              `json:"vectors_stored_nowhere"`
	PagesMean     float64            `json:"pages_per_posting_mean"`
	FileBytes     map[string]int64   `json:"file_bytes"`
	TotalBytes    int64              `json:"total_bytes"`
	Seconds       map[string]float64 `json:"seconds"`
	TotalSeconds  float64            `json:"total_seconds"`
	PeakRSS       int64              `json:"peak_rss_bytes"`
	PhasePeakRSS  map[string]int64   `json:"phase_peak_rss_sampled_bytes"`
	MemoryBudget  int64              `json:"memory_budget_bytes"`
	SpillBuckets  int                `json:"spill_buckets"`
	Threads       int                `json:"threads"`
	Codec         string             `json:"codec"`
	// ResumedAfter says what an interrupted build had committed when this
	// run resumed it ("" for a build that ran in one go).
	ResumedAfter string `json:"resumed_after,omitempty"`
}

func (o *Options) fill() error {
	if (o.Base == "" && o.Input == nil) || o.Out == "" {
		return errors.New("both a base file (or Input vectors) and an output directory are needed")
	}
	if o.Base != "" && o.Input != nil {
		return errors.New("give the base as a file or as Input vectors, not both")
	}
	if o.Input != nil {
		o.Base = o.Input.Path // what the manifest records
	}
	if o.Metric == 0 {
		o.Metric = vec.L2
	}
	o.explicitID = !o.BuildID.IsZero()
	if o.BuildID.IsZero() {
		id, err := indexfile.NewBuildID()
		if err != nil {
			return err
		}
		o.BuildID = id
	}
	if o.HeadRatio == 0 {
		o.HeadRatio = 0.18
	}
	if !(o.HeadRatio > 0 && o.HeadRatio < 1) {
		return fmt.Errorf("--head-ratio %g: must be in (0, 1)", o.HeadRatio)
	}
	if o.Replicas == 0 {
		o.Replicas = 10
	}
	if o.Replicas < 1 {
		return fmt.Errorf("--replicas %d: must be at least 1", o.Replicas)
	}
	if o.PostingLimit == 0 {
		o.PostingLimit = 96
	}
	if o.PostingLimit < 1 {
		return fmt.Errorf("--posting-limit %d: must be at least 1", o.PostingLimit)
	}
	if o.RNGFactor == 0 {
		o.RNGFactor = 1
	}
	if !(o.RNGFactor > 0) || math.IsInf(o.RNGFactor, 0) {
		return fmt.Errorf("--rng-factor %g: must be positive", o.RNGFactor)
	}
	if math.IsNaN(o.ReplicaEps) {
		return errors.New("--replica-eps must be a number")
	}
	if o.CandidateHeads == 0 {
		o.CandidateHeads = 64
	}
	if o.CandidateHeads < o.Replicas {
		return fmt.Errorf("--candidates %d: must be at least --replicas %d", o.CandidateHeads, o.Replicas)
	}
	if o.AssignSearchList == 0 {
		o.AssignSearchList = 2 * o.CandidateHeads
	}
	if o.AssignSearchList < o.CandidateHeads {
		o.AssignSearchList = o.CandidateHeads
	}
	if o.Threads < 0 {
		return fmt.Errorf("--threads %d: must be 0 (all cores) or positive", o.Threads)
	}
	if o.Threads == 0 {
		o.Threads = runtime.NumCPU()
	}
	if o.MemoryBudget == 0 {
		o.MemoryBudget = DefaultMemoryBudget()
	}
	if o.Crop < 0 {
		return fmt.Errorf("--crop %d: must not be negative", o.Crop)
	}
	if o.maxBucketBytes == 0 && testBucketBytes > 0 {
		o.maxBucketBytes = testBucketBytes
	}
	return nil
}

// DefaultMemoryBudget is a quarter of physical memory (1 GiB if unknown).
func DefaultMemoryBudget() int64 {
	if b := sysmem.Physical(); b > 0 {
		return b / 4
	}
	return 1 << 30
}

// Run builds an index; Out appears only when the build is complete. On a
// failure it removes everything it wrote. When ctx is cancelled it keeps
// what its checkpoints committed, in its build directory beside Out, for
// Options.Resume (unless the base came from Input); a later build without
// Resume removes it.
func Run(ctx context.Context, o Options) (*Stats, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	if o.Resume {
		if st, done, err := committedBefore(o.Out); done || err != nil {
			return st, err
		}
	}
	if _, err := os.Stat(o.Out); err == nil {
		if !o.Force {
			return nil, fmt.Errorf("%s already exists (use --force to replace it)", o.Out)
		}
		if err := replaceable(o.Out); err != nil {
			return nil, err
		}
	}
	base := o.Input
	if base == nil {
		var err error
		if base, err = datasets.OpenVectors(o.Base, o.Type); err != nil {
			return nil, err
		}
		defer base.Close()
	} else if o.Type != 0 && o.Type != base.Type {
		return nil, fmt.Errorf("Input vectors are %s, Type says %s", base.Type, o.Type)
	}
	if o.Crop > 0 {
		if err := base.Crop(o.Crop); err != nil {
			return nil, err
		}
	}
	switch base.Type {
	case datasets.Float32:
		return run[float32](ctx, o, base)
	case datasets.Uint8:
		return run[uint8](ctx, o, base)
	default:
		return run[int8](ctx, o, base)
	}
}

type builder[T vec.Elem] struct {
	o      Options
	ctx    context.Context
	base   *datasets.VectorFile
	sp     vec.Space[T]
	dim    int
	tmp    string // the index being built; renamed to o.Out at the end
	stats  *Stats
	id     indexfile.BuildID
	heads  []T      // head vectors, row i = head i
	headID []uint32 // base row of head i, ascending
	graph  *memindex.Graph[T]
	ck     *checkpoint // what is committed; saved after every step
	fs     vfs.FS
}

func run[T vec.Elem](ctx context.Context, o Options, base *datasets.VectorFile) (st *Stats, err error) {
	sp, err := vec.NewSpace[T](o.Metric)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// Keep the Go heap inside the budget: the collector works harder as
	// the heap approaches the limit instead of letting garbage double it.
	// The limit is set below the budget because RSS also holds what the Go
	// heap does not (binary, stacks, runtime metadata), and GOGC is halved
	// so that garbage between collections (clustering scratch, per-bucket
	// buffers) cannot double the heap while the live set is large.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(o.MemoryBudget * 85 / 100))
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	b := &builder[T]{o: o, ctx: ctx, base: base, sp: sp, dim: base.Dim, fs: o.fs}
	if b.fs == nil {
		b.fs = vfs.OS
	}
	parent := filepath.Dir(filepath.Clean(o.Out))
	if err := b.fs.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	dir, err := b.openBuildDir(parent, filepath.Base(o.Out))
	if err != nil {
		return nil, err
	}
	defer dir.close()
	defer func() {
		switch {
		case err == nil:
		case ctx.Err() != nil && errors.Is(err, ctx.Err()) && o.Input == nil:
			// Stopped (Ctrl-C, SIGTERM): what is committed stays for
			// --resume; the next build without it removes the directory.
			err = fmt.Errorf("%w: the build so far is kept in %s; rerun with --resume to continue it", err, dir.path)
		default:
			os.RemoveAll(dir.path)
		}
	}()
	b.tmp, b.id = dir.path, b.o.BuildID
	nHeads := max(1, int(math.Round(o.HeadRatio*float64(base.N))))
	if err := checkBudget(&b.o, b.base.RowBytes(), nHeads); err != nil {
		return nil, err
	}
	phases := []struct {
		name    string
		done    bool
		restore func() error
		fn      func() error
	}{
		{"select heads", b.ck.Heads != nil, b.restoreHeads, func() error { return b.selectHeads(nHeads) }},
		{"head graph", b.ck.Graph != nil, b.restoreGraph, b.buildGraph},
		{"assign and write postings", b.ck.Postings != nil && b.ck.Postings.Done, b.restorePostings, b.assignAndWrite},
	}
	rss := sysmem.StartSampler(20 * time.Millisecond)
	defer rss.Stop()
	for i, ph := range phases {
		t := time.Now()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if ph.done {
			rerr := ph.restore()
			if rerr == nil {
				continue
			}
			b.note("%s: %v; redoing it and what follows", ph.name, rerr)
			b.ck.undo(i)
		}
		rss.TakeMax()
		if err := ph.fn(); err != nil {
			return nil, fmt.Errorf("%s: %w", ph.name, err)
		}
		b.stats.Seconds[ph.name] = time.Since(t).Seconds()
		b.stats.PhasePeakRSS[ph.name] = rss.TakeMax()
		debug.FreeOSMemory()
		if o.afterPhase != nil {
			o.afterPhase(ph.name)
		}
		crashPoint("after " + ph.name)
		if err := b.ck.save(b.fs, b.tmp); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.stats.TotalSeconds += time.Since(start).Seconds()
	b.stats.PeakRSS = max(b.stats.PeakRSS, sysmem.PeakRSS())
	if !b.ck.Manifest {
		if err := b.writeManifest(); err != nil {
			return nil, err
		}
		b.ck.Manifest = true
		if err := b.ck.save(b.fs, b.tmp); err != nil {
			return nil, err
		}
	}
	crashPoint("manifest written")
	if err := commitDir(b.fs, b.tmp, o.Out, o.Force); err != nil {
		return nil, err
	}
	crashPoint("committed")
	// The scratch directory went to --out with the index: a kill before
	// this leaves it there, harmless, and --resume removes it.
	os.RemoveAll(scratch(o.Out))
	return b.stats, nil
}

// committedBefore reports whether out holds an index that a build killed
// just after renaming it to out committed (its scratch directory is still
// there, its checkpoint naming out's build id): then it only removes the
// scratch directory and returns that build's summary.
func committedBefore(out string) (*Stats, bool, error) {
	ck, err := loadCheckpoint(out)
	if err != nil {
		return nil, false, nil
	}
	m, err := indexfile.ReadManifest(out)
	if err != nil || m.BuildID != ck.BuildID || !ck.Manifest {
		return nil, false, nil
	}
	if err := os.RemoveAll(scratch(out)); err != nil {
		return nil, true, err
	}
	ck.Stats.ResumedAfter = "the commit (only the scratch directory was left to remove)"
	return ck.Stats, true, nil
}

// openBuildDir finds the interrupted build to resume (with --resume) or
// creates a fresh build directory with its first checkpoint; it sets
// b.o.BuildID, b.stats and b.ck.
func (b *builder[T]) openBuildDir(parent, name string) (*buildDir, error) {
	o := &b.o
	flags := o.flags(o.Base)
	if o.Resume {
		if o.Input != nil {
			return nil, errors.New("resume needs the base vectors as a file (Options.Base), not Options.Input")
		}
		dir, ck, err := findResumable(b.fs, parent, name)
		if err != nil {
			return nil, err
		}
		if dir != nil {
			if why, diff := differs(ck.Flags, flags); diff {
				dir.close()
				return nil, fmt.Errorf("--resume: the interrupted build in %s was started with other flags (%s): rerun it with the same flags, or without --resume to start afresh", dir.path, why)
			}
			id, err := indexfile.ParseBuildID(ck.BuildID)
			if err != nil {
				dir.close()
				return nil, fmt.Errorf("--resume: %s: %w", filepath.Join(scratch(dir.path), checkpointName), err)
			}
			if o.explicitID && id != o.BuildID {
				dir.close()
				return nil, fmt.Errorf("--resume: the interrupted build in %s has build id %s, not %s", dir.path, id, o.BuildID)
			}
			o.BuildID, b.ck, b.stats = id, ck, ck.Stats
			b.stats.Threads, b.stats.MemoryBudget, b.stats.ResumedAfter = o.Threads, o.MemoryBudget, ck.phaseDone()
			b.note("resuming the build in %s after: %s", dir.path, ck.phaseDone())
			removeStaleBuilds(parent, name) // the others; ours is locked
			return dir, nil
		}
		b.note("no interrupted build of %s to resume: starting afresh", o.Out)
	}
	removeStaleBuilds(parent, name)
	dir, err := newBuildDir(b.fs, parent, name)
	if err != nil {
		return nil, err
	}
	b.stats = &Stats{N: b.base.N, Dim: b.base.Dim, Type: b.base.Type.String(), Metric: o.Metric.String(),
		Seconds: map[string]float64{}, FileBytes: map[string]int64{}, PhasePeakRSS: map[string]int64{}, MemoryBudget: o.MemoryBudget,
		Threads: o.Threads, Codec: o.Codec.String()}
	b.ck = &checkpoint{Version: checkpointVersion, BuildID: o.BuildID.String(), Flags: flags, Stats: b.stats}
	if err := b.ck.save(b.fs, dir.path); err != nil {
		dir.close()
		os.RemoveAll(dir.path)
		return nil, err
	}
	crashPoint("started")
	return dir, nil
}

// note prints one line about the build's course to the progress output.
func (b *builder[T]) note(format string, a ...any) {
	if b.o.Progress != nil {
		fmt.Fprintf(b.o.Progress, format+"\n", a...)
	}
}

// removeStaleBuilds deletes the temporary directories of earlier builds of
// the same output that died (kill -9, power loss): those whose lock nobody
// holds. A build still running keeps its lock and its directory.
func removeStaleBuilds(parent, name string) {
	removeDeadDirs(filepath.Join(parent, "."+name+".building-*"), true)
}

// spillPrefix names the spill directories a build makes in --tmp-dir.
const spillPrefix = "spann-spill-"

// removeDeadDirs removes the directories matching pattern whose build lock
// (.build/lock) nobody holds. One without a lock file is removed only when it is clearly
// old (an hour), or, with parkedIndexes, when it holds a complete index (an
// old index swapped out by a --force build that died before deleting it).
func removeDeadDirs(pattern string, parkedIndexes bool) {
	matches, _ := filepath.Glob(pattern)
	for _, dir := range matches {
		f, err := os.Open(filepath.Join(scratch(dir), lockName))
		if err != nil {
			if os.IsNotExist(err) {
				parked := false
				if parkedIndexes {
					_, merr := indexfile.ReadManifest(dir)
					parked = merr == nil
				}
				if st, serr := os.Stat(dir); serr == nil && st.IsDir() && (parked || time.Since(st.ModTime()) > time.Hour) {
					os.RemoveAll(dir)
				}
			}
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(dir)
		}
		f.Close()
	}
}

// checkBudget fails at once when the heads and their graph alone do not fit.
func checkBudget(o *Options, rowBytes, nHeads int) error {
	need := residentBytes(o, rowBytes, nHeads)
	if need > o.MemoryBudget {
		return fmt.Errorf("memory budget %s is too small: %d heads and their graph need about %s (raise --memory-budget or lower --head-ratio)",
			fmtBytes(o.MemoryBudget), nHeads, fmtBytes(need))
	}
	return nil
}

// residentBytes estimates what stays in memory for the whole build: head
// vectors, graph adjacency, per-thread scratch and a fixed allowance for the
// runtime.
func residentBytes(o *Options, rowBytes, nHeads int) int64 {
	deg := o.Graph.Degree
	if deg == 0 {
		deg = 48 // memindex's default
	}
	return int64(nHeads)*(int64(rowBytes)+4+int64(deg)*4+8) + 32<<20
}

// selectHeads clusters a sample of the base (all of it when it fits in half
// the budget), keeps the real vectors nearest to the final centroids and
// writes heads.bin.
func (b *builder[T]) selectHeads(nHeads int) error {
	ids, heads, err := chooseHeads(b.ctx, &b.o, b.base, b.sp, nHeads)
	if err != nil {
		return err
	}
	b.headID, b.heads = ids, datasets.Rows[T](heads)
	b.stats.Heads = len(ids)
	size, err := indexfile.WriteHeads(b.fs, filepath.Join(b.tmp, HeadsFile), &indexfile.Heads{
		BuildID: b.id, Type: b.base.Type, Dim: b.dim, IDs: b.headID, Vectors: heads})
	if err != nil {
		return err
	}
	b.stats.FileBytes[HeadsFile] = size
	b.ck.Heads, err = sumFile(b.tmp, HeadsFile)
	return err
}

// chooseHeads picks nHeads heads of base: it clusters a sample (all of
// the base when it fits in half the memory budget) and keeps the real
// vectors nearest to the final centroids. It returns their base rows,
// ascending, and their vectors (for cosine, normalised). The result
// depends on the base, o's head parameters, seed and memory budget, not
// on the thread count.
func chooseHeads[T vec.Elem](ctx context.Context, o *Options, base *datasets.VectorFile, sp vec.Space[T], nHeads int) ([]uint32, []byte, error) {
	n, rb := base.N, base.RowBytes()
	// While clustering, memory holds the sample (plus the clustering's three
	// int32s per row), then also the copy of the heads; the graph does not
	// exist yet. Half of what is left goes to the sample: measured peaks of
	// this phase were sample + heads + 60 % of the sample (the 10M x 96
	// float32 run with 70 % peaked 1.4 % over a 1 GiB budget).
	avail := o.MemoryBudget - 64<<20 - int64(nHeads)*int64(rb)
	sampleRows := int(min(int64(n), max(0, avail)/2/int64(rb+16)))
	if sampleRows < nHeads {
		return nil, nil, fmt.Errorf("memory budget %s leaves room to cluster %d vectors, fewer than the %d heads wanted (raise --memory-budget or lower --head-ratio)",
			fmtBytes(o.MemoryBudget), sampleRows, nHeads)
	}
	ids := sampleIDs(n, sampleRows, o.Seed)
	sample := make([]byte, len(ids)*rb)
	bar := progress.New(o.Progress, "read sample", int64(n))
	next := 0
	err := base.Stream(max(1, (16<<20)/rb), func(start int, rows []byte) error {
		end := start + len(rows)/rb
		for next < len(ids) && int(ids[next]) < end {
			copy(sample[next*rb:(next+1)*rb], rows[(int(ids[next])-start)*rb:])
			next++
		}
		bar.Set(int64(end))
		return ctx.Err()
	})
	bar.Done()
	if err != nil {
		return nil, nil, err
	}
	data := datasets.Rows[T](sample)
	if o.Metric == vec.Cosine {
		vec.NormalizeRows(data, base.Dim)
	}
	cbar := progress.New(o.Progress, "select heads", int64(nHeads))
	idx, err := cluster.SelectHeads(sp, data, base.Dim, cluster.Params{
		Heads: nHeads, Seed: o.Seed, Threads: o.Threads, Progress: cbar.Func()})
	cbar.Done()
	if err != nil {
		return nil, nil, err
	}
	sort.Ints(idx)
	headID := make([]uint32, len(idx))
	heads := make([]byte, len(idx)*rb)
	for i, j := range idx {
		headID[i] = ids[j]
		copy(heads[i*rb:(i+1)*rb], sample[j*rb:(j+1)*rb])
	}
	return headID, heads, nil
}

// restoreHeads reloads the heads of an interrupted build from heads.bin.
func (b *builder[T]) restoreHeads() error {
	if err := checkFile(b.tmp, HeadsFile, b.ck.Heads); err != nil {
		return err
	}
	h, err := indexfile.ReadHeads(filepath.Join(b.tmp, HeadsFile))
	if err != nil {
		return err
	}
	if h.BuildID != b.id || h.Type != b.base.Type || h.Dim != b.dim {
		return fmt.Errorf("%s is not this build's", filepath.Join(b.tmp, HeadsFile))
	}
	b.headID, b.heads = h.IDs, datasets.Rows[T](h.Vectors)
	return nil
}

// restoreGraph reloads the head graph of an interrupted build.
func (b *builder[T]) restoreGraph() error {
	if err := checkFile(b.tmp, GraphFile, b.ck.Graph); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(b.tmp, GraphFile))
	if err != nil {
		return err
	}
	defer f.Close()
	g, err := memindex.Load(f, b.sp, b.heads, b.dim)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	if g.Tag != b.id {
		return fmt.Errorf("%s is not this build's", f.Name())
	}
	b.graph = g
	return nil
}

// sampleIDs returns k distinct row ids out of n, ascending, seeded.
func sampleIDs(n, k int, seed int64) []uint32 {
	ids := make([]uint32, 0, k)
	if k >= n {
		for i := 0; i < n; i++ {
			ids = append(ids, uint32(i))
		}
		return ids
	}
	// Selection sampling (Knuth's algorithm S): one pass, sorted output.
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5a4d))
	need := k
	for i := 0; i < n && need > 0; i++ {
		if rng.IntN(n-i) < need {
			ids = append(ids, uint32(i))
			need--
		}
	}
	return ids
}

func (b *builder[T]) buildGraph() error {
	g, err := headGraph(&b.o, b.sp, b.heads, b.dim)
	if err != nil {
		return err
	}
	b.graph = g
	g.Tag = b.id
	if err := writeFile(b.fs, filepath.Join(b.tmp, GraphFile), func(w io.Writer) error {
		_, err := g.WriteTo(w)
		return err
	}); err != nil {
		return err
	}
	b.ck.Graph, err = sumFile(b.tmp, GraphFile)
	return err
}

// headGraph builds the graph over the heads with o's graph parameters and
// seed; the graph does not depend on o.Threads.
func headGraph[T vec.Elem](o *Options, sp vec.Space[T], heads []T, dim int) (*memindex.Graph[T], error) {
	p := o.Graph
	p.Threads = o.Threads
	p.Seed = o.Seed
	bar := progress.New(o.Progress, "head graph", 1)
	p.Progress = func(done, total int) {
		bar.SetTotal(int64(total))
		bar.Set(int64(done))
	}
	g, err := memindex.Build(sp, heads, dim, p)
	bar.Done()
	return g, err
}

// writeFile creates path, lets write fill it through a buffer, and flushes,
// syncs and closes it, reporting the first error with the file's name.
func writeFile(fs vfs.FS, path string, write func(w io.Writer) error) error {
	f, err := fs.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// tableSampleRows is how many head vectors train the shared Huffman table:
// about 256 KiB of 128-byte rows, the most one huff0 block takes.
const tableSampleRows = 2000

// sharedTable trains the postings file's shared Huffman table on head
// vectors spread evenly over the heads (real vectors, in memory already)
// when the codec is huff-shared. If they do not compress, the build falls
// back to per-posting tables (huff) and says so in its summary.
func (b *builder[T]) sharedTable() (*posting.Table, error) {
	t, fallback, err := sharedTable(&b.o, datasets.Bytes(b.heads), b.base.RowBytes())
	if fallback {
		b.stats.Codec = fmt.Sprintf("%s (the vectors do not compress with one table, so each posting has its own)", b.o.Codec)
	}
	return t, err
}

// sharedTable trains the table of o.Codec from heads (rowBytes each), or
// returns nil for a codec without one. When the heads do not compress
// with one table it switches o.Codec to per-posting tables (huff) and
// reports fallback.
func sharedTable(o *Options, heads []byte, rowBytes int) (t *posting.Table, fallback bool, err error) {
	if o.Codec != posting.CodecHuffShared {
		return nil, false, nil
	}
	nh := len(heads) / rowBytes
	step := max(1, nh/tableSampleRows)
	sample := make([]byte, 0, min(nh, tableSampleRows)*rowBytes)
	for i := 0; i < nh && len(sample) < tableSampleRows*rowBytes; i += step {
		sample = append(sample, heads[i*rowBytes:(i+1)*rowBytes]...)
	}
	t, err = posting.TrainTable(sample)
	if errors.Is(err, posting.ErrNoTable) {
		o.Codec = posting.CodecHuff
		return nil, true, nil
	}
	return t, false, err
}

// postingStats records the postings' sizes and pages in st.
func postingStats(st *Stats, entries []posting.Entry, sizes []int) {
	s := slices.Clone(sizes)
	slices.Sort(s)
	var sum, pages int64
	for i, c := range sizes {
		sum += int64(c)
		pages += int64(entries[i].Pages())
	}
	st.PostingMin, st.PostingMax = s[0], s[len(s)-1]
	st.PostingP99 = s[min(len(s)-1, len(s)*99/100)]
	st.PostingMean = float64(sum) / float64(len(s))
	st.PagesMean = float64(pages) / float64(len(s))
}

func (b *builder[T]) writeManifest() error {
	// The sizes and SHA-256s are the checkpoint's, taken as each file was
	// finished: hashing the postings again would cost seconds.
	sums := map[string]*fileSum{HeadsFile: b.ck.Heads, GraphFile: b.ck.Graph,
		DirectoryFile: b.ck.Postings.DirectoryFile, PostingsFile: b.ck.Postings.PostingsFile}
	return writeManifest(b.fs, b.tmp, &b.o, b.base, len(b.headID), b.stats, sums)
}

// writeManifest writes dir's manifest for the index of base built with o:
// heads heads, summary st (its file sizes filled in here), the four
// files' sizes and SHA-256s sums.
func writeManifest(fs vfs.FS, dir string, o *Options, base *datasets.VectorFile, heads int, st *Stats, sums map[string]*fileSum) error {
	m := &indexfile.Manifest{
		BuildID: o.BuildID.String(), Base: o.Base, Type: base.Type.String(), Dim: base.Dim, Metric: o.Metric.String(), N: base.N,
		Heads: heads,
		Params: indexfile.BuildParams{HeadRatio: o.HeadRatio, Replicas: o.Replicas, PostingLimit: o.PostingLimit,
			RNGFactor: o.RNGFactor, ReplicaEps: o.ReplicaEps, CandidateHeads: o.CandidateHeads, Codec: o.Codec.String(),
			Seed: o.Seed, Crop: o.Crop, Threads: o.Threads, MemoryBudget: o.MemoryBudget,
			GraphDegree: o.Graph.Degree, GraphBuildList: o.Graph.BuildList, GraphAlpha: float64(o.Graph.Alpha)},
	}
	for _, name := range []string{HeadsFile, GraphFile, DirectoryFile, PostingsFile} {
		info := indexfile.FileInfo{Name: name, Bytes: sums[name].Bytes, SHA256: sums[name].SHA256}
		m.Files = append(m.Files, info)
		st.FileBytes[name] = info.Bytes
		st.TotalBytes += info.Bytes
	}
	m.Stats = map[string]any{"stats": st}
	return indexfile.WriteManifest(fs, dir, m)
}

// replaceable checks that --force may replace out: it must be a spann
// index (a valid manifest) or an empty directory, never anything else a
// user may have put there.
func replaceable(out string) error {
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("refusing to replace %s: it is a file, not an index directory", out)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	if _, err := indexfile.ReadManifest(out); err != nil {
		return fmt.Errorf("refusing to replace %s: it is not a spann index (%v) and not empty", out, err)
	}
	return nil
}

// commitDir moves the finished build into place. With force, an existing
// index is swapped out atomically (renameat2 RENAME_EXCHANGE), so that at
// every instant either the complete old index or the complete new one is
// at out; the old one, now at tmp, is deleted once the swap is durable (a
// kill before that leaves it in a build directory that the next build's
// cleanup removes). Filesystems without the exchange get two renames, old
// aside first. If the rename cannot be made durable (the parent's fsync
// fails) it is undone and the build fails: a build that reports an error
// leaves no new index at out.
func commitDir(fs vfs.FS, tmp, out string, force bool) error {
	parent := filepath.Dir(filepath.Clean(out))
	if _, err := os.Stat(out); err != nil {
		if err := fs.Rename(tmp, out); err != nil {
			return fmt.Errorf("rename the finished index to %s: %w", out, err)
		}
		if err := fs.SyncDir(parent); err != nil {
			fs.Rename(out, tmp)
			return fmt.Errorf("commit %s: %w", out, err)
		}
		return nil
	}
	if !force {
		return fmt.Errorf("%s already exists (use --force to replace it)", out)
	}
	if err := replaceable(out); err != nil {
		return err
	}
	err := fs.Exchange(tmp, out)
	if err == nil {
		crashPoint("exchanged")
		if err := fs.SyncDir(parent); err != nil {
			fs.Exchange(tmp, out) // the old index back at out
			return fmt.Errorf("commit %s: %w", out, err)
		}
		fs.RemoveAll(tmp) // the old index
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("swap the finished index with %s: %w", out, err)
	}
	old := tmp + ".old"
	if err := fs.Rename(out, old); err != nil {
		return fmt.Errorf("move the old %s aside: %w", out, err)
	}
	if err := fs.Rename(tmp, out); err != nil {
		fs.Rename(old, out)
		return fmt.Errorf("rename the finished index to %s: %w", out, err)
	}
	if err := fs.SyncDir(parent); err != nil {
		fs.Rename(out, tmp)
		fs.Rename(old, out)
		return fmt.Errorf("commit %s: %w", out, err)
	}
	fs.RemoveAll(old)
	return nil
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
