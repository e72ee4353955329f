// Package pipeline is spann-build as an Apache Beam pipeline: the same
// phases, from the core module's buildkit, spread over a runner's
// workers.
//
//	Impulse ─ heads ─────────────────────────────┐ (side input: the head set)
//	block starts ─ Reshuffle ─ assign ─ records ─┼─ GroupByKey(head range) ─ encode range ─┐
//	                              └─ counts ─────┼───────────────────────────────────────┐ │
//	Impulse ─────────────────────────────────────┴──────────────────────── commit ◄──────┴─┘
//
// heads (one worker) selects the heads and builds their graph into the
// staging directory; assign (a ParDo over blocks of base rows) loads them
// once per worker process and emits every vector's replica records keyed
// by head range, one element per (block, range); the GroupByKey is the
// shuffle; encode (one call per head range) sorts its records, applies the
// posting limit and writes the range's extents to a file of its own;
// commit (one worker) writes postings.bin from the ranges' extents in head
// order by the packing rule, then the directory and the manifest, and
// renames the staging directory to the index. The index equals
// spann-build's for the same base, options, memory budget, seed and build
// id: the heads, graph, postings and directory byte for byte.
//
// Every path (the base, the output) must be one every worker can open:
// on one machine any local path, on a cluster a shared filesystem.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/buildkit"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

// Config is what every step of the pipeline is given: the build's
// options as plain values (a runner serialises it to its workers) and the
// pipeline's own figures. New fills in the defaults.
type Config struct {
	Base, Out, Type             string
	Metric, Codec               string
	HeadRatio                   float64
	Replicas, PostingLimit      int
	RNGFactor                   float64
	ReplicaEps                  float64 // as spann-build's --replica-eps: negative = no bound; 0 is a bound of 0 (set -1 for spann-build's default)
	CandidateHeads              int
	GraphDegree, GraphBuildList int
	Threads                     int   // threads of the one-worker steps (heads, graph); 0 = all cores
	MemoryBudget                int64 // bytes; sizes the clustering sample as spann-build's does
	Seed                        int64
	BuildID                     string // 32 hex digits; New draws one if empty

	BlockRows int // base rows per assignment element
	Ranges    int // head ranges (keys of the shuffle)
	// Workers caps the heavy calls (assign, encode) running at once in one
	// worker process; 0 = no cap (the runner's own parallelism).
	Workers int
	// Shuffle is how the records reach their range: "runner" (the
	// default) through the runner's GroupByKey; "files" written by the
	// assign calls to files in the staging directory, only their names
	// going through the GroupByKey (for a runner that holds its shuffle
	// in memory, as Prism does).
	Shuffle string

	N, Heads int    // base vectors and heads (from the base and HeadRatio)
	Staging  string // the index being built, renamed to Out at the end
}

// New checks cfg against its base file and fills in the defaults: a
// build id, the memory budget, the block and range sizes.
func New(cfg Config) (Config, error) {
	if cfg.Base == "" || cfg.Out == "" {
		return cfg, errors.New("both --base and --out are needed")
	}
	if cfg.BuildID == "" {
		id, err := buildkit.NewBuildID()
		if err != nil {
			return cfg, err
		}
		cfg.BuildID = id.String()
	}
	if cfg.MemoryBudget == 0 {
		cfg.MemoryBudget = buildkit.DefaultMemoryBudget()
	}
	if _, err := os.Stat(cfg.Out); err == nil {
		return cfg, fmt.Errorf("%s already exists", cfg.Out)
	}
	base, err := cfg.openBase()
	if err != nil {
		return cfg, err
	}
	defer base.Close()
	o, err := cfg.options()
	if err != nil {
		return cfg, err
	}
	cfg.N, cfg.Heads = base.N, buildkit.HeadCount(&o, base.N)
	if cfg.BlockRows <= 0 {
		cfg.BlockRows = 16384
	}
	if cfg.Ranges <= 0 {
		// About 64 MiB of records per range.
		total := int64(base.N) * int64(o.Replicas) * int64(buildkit.RecordBytes(base.RowBytes()))
		cfg.Ranges = int((total + 64<<20 - 1) / (64 << 20))
	}
	cfg.Ranges = max(1, min(cfg.Ranges, cfg.Heads))
	cfg.Ranges = (cfg.Heads + cfg.perRange() - 1) / cfg.perRange() // no range past the last head
	switch cfg.Shuffle {
	case "":
		cfg.Shuffle = ShuffleRunner
	case ShuffleRunner, ShuffleFiles:
	default:
		return cfg, fmt.Errorf("--shuffle %q: want %s or %s", cfg.Shuffle, ShuffleRunner, ShuffleFiles)
	}
	if cfg.Workers < 0 {
		return cfg, fmt.Errorf("--workers %d: must not be negative", cfg.Workers)
	}
	out := filepath.Clean(cfg.Out)
	cfg.Staging = filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".beam-"+cfg.BuildID)
	return cfg, nil
}

func (cfg *Config) openBase() (*datasets.VectorFile, error) {
	var typ datasets.ElemType
	if cfg.Type != "" {
		t, err := datasets.ParseType(cfg.Type)
		if err != nil {
			return nil, err
		}
		typ = t
	}
	return datasets.OpenVectors(cfg.Base, typ)
}

// options is cfg as the build's options, checked and filled.
func (cfg *Config) options() (buildkit.Options, error) {
	o := buildkit.Options{Base: cfg.Base, Out: cfg.Out, HeadRatio: cfg.HeadRatio, Replicas: cfg.Replicas,
		PostingLimit: cfg.PostingLimit, RNGFactor: cfg.RNGFactor, ReplicaEps: cfg.ReplicaEps,
		CandidateHeads: cfg.CandidateHeads, Threads: cfg.Threads, MemoryBudget: cfg.MemoryBudget, Seed: cfg.Seed,
		Graph: memindex.Params{Degree: cfg.GraphDegree, BuildList: cfg.GraphBuildList}}
	metric, codec := cfg.Metric, cfg.Codec
	if metric == "" {
		metric = "l2"
	}
	if codec == "" {
		codec = "default"
	}
	var err error
	if o.Metric, err = spann.ParseMetric(metric); err != nil {
		return o, err
	}
	if o.Codec, err = posting.ParseCodec(codec); err != nil {
		return o, err
	}
	if o.BuildID, err = buildkit.ParseBuildID(cfg.BuildID); err != nil {
		return o, fmt.Errorf("--build-id: %w", err)
	}
	return o, o.Fill()
}

// The ways records reach their range (Config.Shuffle).
const (
	ShuffleRunner = "runner"
	ShuffleFiles  = "files"
)

// perRange is how many heads each range key covers.
func (cfg *Config) perRange() int { return (cfg.Heads + cfg.Ranges - 1) / cfg.Ranges }

// Construct adds the build of cfg (New's) to the pipeline under s; the
// result holds one Committed once the index is in place.
func Construct(s beam.Scope, cfg Config) beam.PCollection {
	s = s.Scope("spann-build")
	heads := beam.ParDo(s, &headsFn{Cfg: cfg}, beam.Impulse(s))
	var starts []int
	for lo := 0; lo < cfg.N; lo += cfg.BlockRows {
		starts = append(starts, lo)
	}
	blocks := beam.Reshuffle(s, beam.CreateList(s, starts))
	records, counts := beam.ParDo2(s, &assignFn{Cfg: cfg}, blocks, beam.SideInput{Input: heads})
	// One empty element per range, so that a range no vector chose still
	// has its (empty) postings encoded.
	keys := make([]int, cfg.Ranges)
	for r := range keys {
		keys[r] = r
	}
	empty := beam.ParDo(s, emptyRecords, beam.CreateList(s, keys))
	grouped := beam.GroupByKey(s, beam.Flatten(s, records, empty))
	ranges := beam.ParDo(s, &encodeFn{Cfg: cfg}, grouped, beam.SideInput{Input: heads})
	return beam.ParDo(s, &commitFn{Cfg: cfg}, beam.Impulse(s),
		beam.SideInput{Input: ranges}, beam.SideInput{Input: counts}, beam.SideInput{Input: heads})
}

// Committed is a finished index.
type Committed struct {
	Out, BuildID string
	N            int
}

// HeadsDone is what the heads step made, every later step's side input.
type HeadsDone struct {
	Heads   int
	Seconds float64
}

// AssignDone counts what one assign call found.
type AssignDone struct {
	Rows, Replicas int64
	ReplicaMax     int
	Seconds        float64
}

// RangeDone is one encoded head range: its extents, in head order, are in
// Path, Sizes[i] bytes holding Counts[i] vectors each.
type RangeDone struct {
	Range, Lo, Hi               int
	Path                        string
	Sizes, Counts               []int32
	Dropped, PastLimit, Nearest int64
	Seconds                     float64
}

func init() {
	register.DoFn3x1[context.Context, []byte, func(HeadsDone), error](&headsFn{})
	register.DoFn5x1[context.Context, int, HeadsDone, func(int, []byte), func(AssignDone), error](&assignFn{})
	register.DoFn5x1[context.Context, int, func(*[]byte) bool, HeadsDone, func(RangeDone), error](&encodeFn{})
	register.DoFn6x1[context.Context, []byte, func(*RangeDone) bool, func(*AssignDone) bool, HeadsDone, func(Committed), error](&commitFn{})
	register.Emitter1[Committed]()
	register.Function2x0(emptyRecords)
	register.Emitter1[HeadsDone]()
	register.Emitter1[AssignDone]()
	register.Emitter1[RangeDone]()
	register.Emitter2[int, []byte]()
	register.Iter1[[]byte]()
	register.Iter1[RangeDone]()
	register.Iter1[AssignDone]()
	beam.RegisterType(reflect.TypeOf((*Config)(nil)).Elem())
}

func emptyRecords(r int, emit func(int, []byte)) { emit(r, nil) }

// headsFn selects the heads and builds their graph into the staging
// directory (one worker).
type headsFn struct{ Cfg Config }

func (f *headsFn) ProcessElement(ctx context.Context, _ []byte, emit func(HeadsDone)) error {
	t := time.Now()
	cfg := f.Cfg
	o, err := cfg.options()
	if err != nil {
		return err
	}
	base, err := cfg.openBase()
	if err != nil {
		return err
	}
	defer base.Close()
	for _, sub := range []string{rangesDir, shuffleDir} {
		if err := os.MkdirAll(filepath.Join(cfg.Staging, sub), 0o755); err != nil {
			return err
		}
	}
	heads, err := buildkit.SelectHeads(ctx, &o, base)
	if err != nil {
		return fmt.Errorf("select heads: %w", err)
	}
	if len(heads.IDs) != cfg.Heads {
		return fmt.Errorf("select heads: %d heads, want %d", len(heads.IDs), cfg.Heads)
	}
	if err := buildkit.WriteHeads(cfg.Staging, &o, heads); err != nil {
		return err
	}
	log.Infof(ctx, "spann: %d heads selected in %.1f s", cfg.Heads, time.Since(t).Seconds())
	if err := buildkit.BuildGraph(&o, heads, cfg.Staging); err != nil {
		return fmt.Errorf("head graph: %w", err)
	}
	log.Infof(ctx, "spann: heads and head graph in %.1f s", time.Since(t).Seconds())
	emit(HeadsDone{Heads: len(heads.IDs), Seconds: time.Since(t).Seconds()})
	return nil
}

// worker is what one worker process loads once and shares between its
// calls: the model, the heads' table, the open base, and the cap on
// heavy calls at once.
type worker struct {
	once  sync.Once
	err   error
	o     buildkit.Options
	model *buildkit.Model
	table *posting.Table
	base  *datasets.VectorFile
	slots chan struct{}
}

var (
	workersMu sync.Mutex
	workers   = map[string]*worker{}
)

// workerFor returns this process's worker state for cfg's build, loading
// it on first use.
func workerFor(cfg Config) (*worker, error) {
	key := fmt.Sprint(cfg) // (a rerun with other options is another build)
	workersMu.Lock()
	w := workers[key]
	if w == nil {
		w = &worker{}
		workers[key] = w
	}
	workersMu.Unlock()
	w.once.Do(func() { w.err = w.load(cfg) })
	if w.err != nil {
		// Not kept: a retried call loads again.
		workersMu.Lock()
		if workers[key] == w {
			delete(workers, key)
		}
		workersMu.Unlock()
	}
	return w, w.err
}

func (w *worker) load(cfg Config) error {
	o, err := cfg.options()
	if err != nil {
		return err
	}
	w.o = o
	if w.model, err = buildkit.LoadModel(cfg.Staging, &w.o); err != nil {
		return err
	}
	if w.table, err = buildkit.SharedTable(&w.o, w.model.Heads); err != nil {
		return err
	}
	if w.base, err = cfg.openBase(); err != nil {
		return err
	}
	if w.base.N != cfg.N {
		w.base.Close()
		return fmt.Errorf("%s: %d vectors, the pipeline was made for %d", cfg.Base, w.base.N, cfg.N)
	}
	n := cfg.Workers
	if n == 0 {
		n = 1 << 16
	}
	w.slots = make(chan struct{}, n)
	return nil
}

// forget drops a finished build's worker state.
func forget(cfg Config) {
	key := fmt.Sprint(cfg)
	workersMu.Lock()
	if w := workers[key]; w != nil && w.base != nil {
		w.base.Close()
	}
	delete(workers, key)
	workersMu.Unlock()
}

// acquire returns this process's worker state for cfg's build once one
// of its slots is free; release gives the slot back.
func acquire(ctx context.Context, cfg Config) (*worker, error) {
	w, err := workerFor(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case w.slots <- struct{}{}:
		return w, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (w *worker) release() { <-w.slots }

// assignFn assigns one block of base rows and emits its records, one
// element per head range they fall in.
type assignFn struct{ Cfg Config }

func (f *assignFn) ProcessElement(ctx context.Context, start int, _ HeadsDone, emit func(int, []byte), count func(AssignDone)) error {
	w, err := acquire(ctx, f.Cfg)
	if err != nil {
		return err
	}
	defer w.release()
	t := time.Now() // (the call's work, not its wait for a slot)
	end := min(f.Cfg.N, start+f.Cfg.BlockRows)
	rb := w.base.RowBytes()
	per := f.Cfg.perRange()
	bufs := map[int][]byte{}
	a := w.model.NewAssigner()
	var done AssignDone
	err = w.base.StreamRange(start, end, end-start, func(lo int, raw []byte) error {
		st, err := a.Assign(lo, raw, rb, func(head int32, rec []byte) error {
			r := int(head) / per
			bufs[r] = append(bufs[r], rec...)
			return nil
		})
		done.Rows += st.Rows
		done.Replicas += st.Replicas
		done.ReplicaMax = max(done.ReplicaMax, st.ReplicaMax)
		return err
	})
	if err != nil {
		return fmt.Errorf("assign rows %d to %d: %w", start, end, err)
	}
	keys := make([]int, 0, len(bufs))
	for r := range bufs {
		keys = append(keys, r)
	}
	sort.Ints(keys)
	for _, r := range keys {
		if f.Cfg.Shuffle != ShuffleFiles {
			emit(r, bufs[r])
			continue
		}
		path := filepath.Join(f.Cfg.Staging, shuffleDir, fmt.Sprintf("range-%06d-block-%010d.records", r, start))
		if err := writeFile(path, bufs[r]); err != nil {
			return err
		}
		emit(r, []byte(path))
	}
	done.Seconds = time.Since(t).Seconds()
	count(done)
	log.Infof(ctx, "spann: rows %d to %d assigned in %.1f s", start, end, done.Seconds)
	return nil
}

// Inside the staging directory, rangesDir holds the encoded ranges and
// shuffleDir the records of a files shuffle.
const (
	rangesDir  = "ranges"
	shuffleDir = "shuffle"
)

// writeFile writes data to path aside and renames it, so that a retried
// call never leaves half a file under the name a later step reads.
func writeFile(path string, data []byte) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, time.Now().UnixNano())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// encodeFn encodes the postings of one head range from all its records
// and writes their extents to the range's file.
type encodeFn struct{ Cfg Config }

func (f *encodeFn) ProcessElement(ctx context.Context, r int, batches func(*[]byte) bool, _ HeadsDone, emit func(RangeDone)) error {
	w, err := acquire(ctx, f.Cfg)
	if err != nil {
		return err
	}
	defer w.release()
	t := time.Now() // (the call's work, not its wait for a slot)
	var records, batch []byte
	for batches(&batch) {
		if f.Cfg.Shuffle != ShuffleFiles || len(batch) == 0 {
			records = append(records, batch...)
			continue
		}
		data, err := os.ReadFile(string(batch))
		if err != nil {
			return err
		}
		records = append(records, data...)
	}
	per := f.Cfg.perRange()
	done := RangeDone{Range: r, Lo: r * per, Hi: min(f.Cfg.Heads, (r+1)*per)}
	done.Path = filepath.Join(f.Cfg.Staging, rangesDir, fmt.Sprintf("range-%06d.extents", r))
	var extents []byte
	st, err := buildkit.EncodeRange(&w.o, w.base.RowBytes(), w.table, done.Lo, done.Hi, records, func(head int, extent []byte, n int) error {
		extents = append(extents, extent...)
		done.Sizes = append(done.Sizes, int32(len(extent)))
		done.Counts = append(done.Counts, int32(n))
		return nil
	})
	if err != nil {
		return err
	}
	if err := writeFile(done.Path, extents); err != nil {
		return err
	}
	done.Dropped, done.PastLimit, done.Nearest = st.Dropped, st.PastLimit, st.Nearest
	done.Seconds = time.Since(t).Seconds()
	emit(done)
	log.Infof(ctx, "spann: head range %d (heads %d to %d) encoded in %.1f s", r, done.Lo, done.Hi, done.Seconds)
	return nil
}

// commitFn writes postings.bin from the ranges, the directory and the
// manifest, and renames the staging directory to the index (one worker).
type commitFn struct{ Cfg Config }

func (f *commitFn) ProcessElement(ctx context.Context, _ []byte, rangesIn func(*RangeDone) bool, countsIn func(*AssignDone) bool, hd HeadsDone, emit func(Committed)) error {
	t := time.Now()
	cfg := f.Cfg
	defer forget(cfg)
	if committed(cfg) {
		// A retried call after the rename: the index is in place.
		emit(Committed{Out: cfg.Out, BuildID: cfg.BuildID, N: cfg.N})
		return nil
	}
	o, err := cfg.options()
	if err != nil {
		return err
	}
	heads, err := buildkit.ReadHeads(cfg.Staging, &o)
	if err != nil {
		return err
	}
	table, err := buildkit.SharedTable(&o, heads)
	if err != nil {
		return err
	}
	base, err := cfg.openBase()
	if err != nil {
		return err
	}
	defer base.Close()
	ranges, err := collectRanges(cfg, rangesIn)
	if err != nil {
		return err
	}
	st := buildkit.NewStats(&o, base)
	st.Heads = cfg.Heads
	var assigned AssignDone
	var c AssignDone
	for countsIn(&c) {
		assigned.Rows += c.Rows
		assigned.Replicas += c.Replicas
		assigned.ReplicaMax = max(assigned.ReplicaMax, c.ReplicaMax)
		assigned.Seconds += c.Seconds
	}
	if want := int64(cfg.N - cfg.Heads); assigned.Rows != want {
		return fmt.Errorf("%d vectors assigned, want %d", assigned.Rows, want)
	}
	st.ReplicasMean = float64(assigned.Replicas) / float64(max(1, assigned.Rows))
	st.ReplicasMax = assigned.ReplicaMax
	if err := writePostings(cfg, &o, base.RowBytes(), table, ranges, st); err != nil {
		return err
	}
	var encodeSeconds float64
	for _, rd := range ranges {
		encodeSeconds += rd.Seconds
	}
	st.Seconds["select heads and head graph"] = hd.Seconds
	st.Seconds["assign (summed over calls)"] = assigned.Seconds
	st.Seconds["encode ranges (summed over calls)"] = encodeSeconds
	st.Seconds["write postings, directory, manifest"] = time.Since(t).Seconds()
	if err := buildkit.WriteManifest(cfg.Staging, &o, base, cfg.Heads, st); err != nil {
		return err
	}
	for _, sub := range []string{rangesDir, shuffleDir} {
		if err := os.RemoveAll(filepath.Join(cfg.Staging, sub)); err != nil {
			return err
		}
	}
	if err := os.Rename(cfg.Staging, cfg.Out); err != nil {
		return fmt.Errorf("rename the finished index to %s: %w", cfg.Out, err)
	}
	log.Infof(ctx, "spann: index written to %s", cfg.Out)
	if err := syncDir(filepath.Dir(filepath.Clean(cfg.Out))); err != nil {
		return err
	}
	emit(Committed{Out: cfg.Out, BuildID: cfg.BuildID, N: cfg.N})
	return nil
}

// committed reports whether cfg.Out already holds this build's index (a
// commit that renamed it and then failed or died).
func committed(cfg Config) bool {
	data, err := os.ReadFile(filepath.Join(cfg.Out, "manifest.json"))
	if err != nil {
		return false
	}
	var m struct {
		BuildID string `json:"build_id"`
	}
	return json.Unmarshal(data, &m) == nil && m.BuildID == cfg.BuildID
}

// collectRanges returns the encoded ranges in order, checking that every
// range is there once.
func collectRanges(cfg Config, in func(*RangeDone) bool) ([]RangeDone, error) {
	ranges := make([]RangeDone, cfg.Ranges)
	seen := make([]bool, cfg.Ranges)
	var rd RangeDone
	for in(&rd) {
		if rd.Range < 0 || rd.Range >= cfg.Ranges {
			return nil, fmt.Errorf("encoded range %d of %d", rd.Range, cfg.Ranges)
		}
		if seen[rd.Range] {
			// (Not expected: a runner commits one attempt's output. Were
			// it to happen, the files are the same: either will do.)
			continue
		}
		seen[rd.Range], ranges[rd.Range] = true, rd
		rd = RangeDone{}
	}
	for r, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("head range %d was never encoded", r)
		}
	}
	return ranges, nil
}

// writePostings writes postings.bin and directory.bin from the ranges'
// extents in head order.
func writePostings(cfg Config, o *buildkit.Options, rowBytes int, table *posting.Table, ranges []RangeDone, st *buildkit.Stats) error {
	pf, err := buildkit.CreatePostings(cfg.Staging, o, rowBytes, cfg.Heads, table)
	if err != nil {
		return err
	}
	var nearest int64
	for _, rd := range ranges {
		data, err := os.ReadFile(rd.Path)
		if err != nil {
			return err
		}
		if len(rd.Sizes) != rd.Hi-rd.Lo || len(rd.Counts) != len(rd.Sizes) {
			return fmt.Errorf("%s: %d extents for heads %d to %d", rd.Path, len(rd.Sizes), rd.Lo, rd.Hi)
		}
		off := 0
		for i, size := range rd.Sizes {
			if off+int(size) > len(data) {
				return fmt.Errorf("%s: %d bytes, its extents need more", rd.Path, len(data))
			}
			if err := pf.Add(data[off:off+int(size)], int(rd.Counts[i])); err != nil {
				return err
			}
			off += int(size)
		}
		if off != len(data) {
			return fmt.Errorf("%s: %d bytes, its extents %d", rd.Path, len(data), off)
		}
		nearest += rd.Nearest
		st.Dropped += rd.Dropped
		st.KeptPastLimit += rd.PastLimit
	}
	if err := buildkit.CheckStored(cfg.N, cfg.Heads, nearest); err != nil {
		return err
	}
	return pf.Finish(st)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
