package build

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

// The build's phases as functions of their inputs, for a build that runs
// them elsewhere than Run (the Beam pipeline, through package buildkit).
// Each makes what the same phase of Run makes, from the same code, so an
// index assembled from them has Run's heads.bin, graph.bin, postings.bin
// and directory.bin byte for byte (given the same build id).

// Fill checks o and fills in the defaults, as Run does first.
func (o *Options) Fill() error { return o.fill() }

// HeadCount is the number of heads a build of n vectors selects.
func HeadCount(o *Options, n int) int {
	return max(1, int(math.Round(o.HeadRatio*float64(n))))
}

// Heads is the head set: the heads' base rows, ascending, and their
// vectors (row i is head i's; for cosine, normalised).
type Heads struct {
	Type    datasets.ElemType
	Dim     int
	IDs     []uint32
	Vectors []byte
}

// SelectHeads picks the heads of base as Run does (o filled by Fill).
func SelectHeads(ctx context.Context, o *Options, base *datasets.VectorFile) (*Heads, error) {
	h := &Heads{Type: base.Type, Dim: base.Dim}
	nHeads := HeadCount(o, base.N)
	var err error
	switch base.Type {
	case datasets.Float32:
		err = selectTyped[float32](ctx, o, base, nHeads, h)
	case datasets.Uint8:
		err = selectTyped[uint8](ctx, o, base, nHeads, h)
	default:
		err = selectTyped[int8](ctx, o, base, nHeads, h)
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}

func selectTyped[T vec.Elem](ctx context.Context, o *Options, base *datasets.VectorFile, nHeads int, h *Heads) error {
	sp, err := vec.NewSpace[T](o.Metric)
	if err != nil {
		return err
	}
	if err := checkBudget(o, base.RowBytes(), nHeads); err != nil {
		return err
	}
	h.IDs, h.Vectors, err = chooseHeads(ctx, o, base, sp, nHeads)
	return err
}

// WriteHeads writes h to dir/heads.bin under o.BuildID.
func WriteHeads(dir string, o *Options, h *Heads) error {
	_, err := indexfile.WriteHeads(vfs.OS, filepath.Join(dir, HeadsFile), &indexfile.Heads{
		BuildID: o.BuildID, Type: h.Type, Dim: h.Dim, IDs: h.IDs, Vectors: h.Vectors})
	return err
}

// ReadHeads reads dir/heads.bin, which must be o.BuildID's.
func ReadHeads(dir string, o *Options) (*Heads, error) {
	path := filepath.Join(dir, HeadsFile)
	h, err := indexfile.ReadHeads(path)
	if err != nil {
		return nil, err
	}
	if h.BuildID != o.BuildID {
		return nil, fmt.Errorf("%s is build %s's, not %s's", path, h.BuildID, o.BuildID)
	}
	return &Heads{Type: h.Type, Dim: h.Dim, IDs: h.IDs, Vectors: h.Vectors}, nil
}

// BuildGraph builds the head graph as Run does and writes dir/graph.bin.
func BuildGraph(o *Options, h *Heads, dir string) error {
	switch h.Type {
	case datasets.Float32:
		return graphTyped[float32](o, h, dir)
	case datasets.Uint8:
		return graphTyped[uint8](o, h, dir)
	default:
		return graphTyped[int8](o, h, dir)
	}
}

func graphTyped[T vec.Elem](o *Options, h *Heads, dir string) error {
	sp, err := vec.NewSpace[T](o.Metric)
	if err != nil {
		return err
	}
	g, err := headGraph(o, sp, datasets.Rows[T](h.Vectors), h.Dim)
	if err != nil {
		return err
	}
	g.Tag = o.BuildID
	return writeFile(vfs.OS, filepath.Join(dir, GraphFile), func(w io.Writer) error {
		_, err := g.WriteTo(w)
		return err
	})
}

// Model is the heads and their graph, loaded to assign vectors; one Model
// serves any number of Assigners at once.
type Model struct {
	o           Options
	Heads       *Heads
	newAssigner func() assignFunc
}

// LoadModel reads dir/heads.bin and dir/graph.bin, both o.BuildID's.
func LoadModel(dir string, o *Options) (*Model, error) {
	h, err := ReadHeads(dir, o)
	if err != nil {
		return nil, err
	}
	m := &Model{o: *o, Heads: h}
	switch h.Type {
	case datasets.Float32:
		err = loadTyped[float32](m, dir)
	case datasets.Uint8:
		err = loadTyped[uint8](m, dir)
	default:
		err = loadTyped[int8](m, dir)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func loadTyped[T vec.Elem](m *Model, dir string) error {
	sp, err := vec.NewSpace[T](m.o.Metric)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, GraphFile)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	heads := datasets.Rows[T](m.Heads.Vectors)
	g, err := memindex.Load(bufio.NewReaderSize(f, 1<<20), sp, heads, m.Heads.Dim)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if g.Tag != m.o.BuildID {
		return fmt.Errorf("%s is build %s's, not %s's", path, indexfile.BuildID(g.Tag), m.o.BuildID)
	}
	dim, ids := m.Heads.Dim, m.Heads.IDs
	m.newAssigner = func() assignFunc {
		a := newAssigner(&m.o, sp, g, heads, dim)
		var norm []T
		return func(start int, raw []byte, out []assignment) ([]assignment, []byte) {
			rows := datasets.Rows[T](raw)
			if m.o.Metric == vec.Cosine {
				norm = append(norm[:0], rows...)
				vec.NormalizeRows(norm, dim)
				rows = norm
			}
			cnt := len(rows) / dim
			return a.assignRows(rows, start, 0, cnt, headsIn(ids, start, start+cnt), out), datasets.Bytes(rows)
		}
	}
	return nil
}

// headsIn returns the heads among base rows [lo, hi) (ids ascending).
func headsIn(ids []uint32, lo, hi int) []uint32 {
	i := sort.Search(len(ids), func(k int) bool { return int(ids[k]) >= lo })
	j := sort.Search(len(ids), func(k int) bool { return int(ids[k]) >= hi })
	return ids[i:j]
}

// RecordBytes is the size of one assignment record of rowBytes-byte
// vectors; records have the spill's layout (spill.go).
func RecordBytes(rowBytes int) int { return 12 + rowBytes }

// AssignStats counts what an assignment found.
type AssignStats struct {
	Rows       int64 // vectors assigned (heads are not)
	Replicas   int64 // records emitted
	ReplicaMax int   // most records of one vector
}

// assignFunc assigns base rows start, … held in raw and returns their
// assignments and the rows as stored (for cosine, normalised).
type assignFunc func(start int, raw []byte, out []assignment) ([]assignment, []byte)

// Assigner assigns vectors to their replica heads; not safe for
// concurrent use (one per worker).
type Assigner struct {
	assign assignFunc
	out    []assignment
	rec    []byte
}

// NewAssigner returns an Assigner over m.
func (m *Model) NewAssigner() *Assigner { return &Assigner{assign: m.newAssigner()} }

// Assign finds the replica heads of the base rows start, start+1, … held
// in raw (as the base file stores them), skipping heads, and calls emit
// with each (head, record) in row order, each row's nearest head first;
// a record holds the vector as the index stores it (for cosine,
// normalised). rec is valid during the call only.
func (a *Assigner) Assign(start int, raw []byte, rowBytes int, emit func(head int32, rec []byte) error) (AssignStats, error) {
	var stored []byte
	a.out, stored = a.assign(start, raw, a.out[:0])
	if len(a.rec) != RecordBytes(rowBytes) {
		a.rec = make([]byte, RecordBytes(rowBytes))
	}
	var st AssignStats
	run := 0
	for i, x := range a.out {
		row := stored[int(x.row)*rowBytes : int(x.row+1)*rowBytes]
		putRecord(a.rec, x.head, uint32(start)+uint32(x.row), x.dist, row, x.nearest)
		if err := emit(x.head, a.rec); err != nil {
			return st, err
		}
		run++
		if i+1 == len(a.out) || a.out[i+1].row != x.row {
			st.Rows++
			st.ReplicaMax = max(st.ReplicaMax, run)
			run = 0
		}
	}
	st.Replicas = int64(len(a.out))
	return st, nil
}

// putRecord lays out one assignment record in rec (spill.go's layout).
func putRecord(rec []byte, head int32, id uint32, dist float32, row []byte, nearest bool) {
	field := uint32(head)
	if nearest {
		field |= nearestBit
	}
	binary.LittleEndian.PutUint32(rec[0:], field)
	binary.LittleEndian.PutUint32(rec[4:], id)
	binary.LittleEndian.PutUint32(rec[8:], math.Float32bits(dist))
	copy(rec[12:], row)
}

// SharedTable trains the postings file's shared table from h as Run does
// (nil for a codec without one); when h does not compress with one table
// it switches o.Codec to per-posting tables, as Run does.
func SharedTable(o *Options, h *Heads) (*posting.Table, error) {
	t, _, err := sharedTable(o, h.Vectors, h.Dim*h.Type.Size())
	return t, err
}

// RangeStats counts what the posting limit did in one head range.
type RangeStats struct {
	Dropped   int64 // records the limit dropped
	PastLimit int64 // records kept past the limit (their nearest head)
	Nearest   int64 // records of a vector's nearest head: one per vector
}

// EncodeRange encodes the postings of heads [lo, hi) from records, every
// assignment record of those heads (RecordBytes each, in any order; it is
// sorted in place of an index), and calls emit for each head in order with
// its extent (valid during the call) and vector count. table is
// SharedTable's.
func EncodeRange(o *Options, rowBytes int, table *posting.Table, lo, hi int, records []byte, emit func(head int, extent []byte, count int) error) (RangeStats, error) {
	var st RangeStats
	rb := RecordBytes(rowBytes)
	if len(records)%rb != 0 {
		return st, fmt.Errorf("head range [%d, %d): %d bytes of records is not whole %d-byte records", lo, hi, len(records), rb)
	}
	enc, err := posting.NewEncoder(rowBytes, o.Codec, table)
	if err != nil {
		return st, err
	}
	bk := sortRecords(records, rowBytes, make([]int32, len(records)/rb))
	if bk.len() > 0 && (int(bk.head(0)) < lo || int(bk.head(bk.len()-1)) >= hi) {
		return st, fmt.Errorf("head range [%d, %d): records of heads %d to %d", lo, hi, bk.head(0), bk.head(bk.len()-1))
	}
	var ids []uint32
	var rows []byte
	i := 0
	for h := lo; h < hi; h++ {
		var p postingOf
		ids, rows, i, p = bk.posting(i, int32(h), o.PostingLimit, ids[:0], rows[:0])
		st.Dropped += p.dropped
		st.PastLimit += p.pastLimit
		st.Nearest += p.nearest
		extent, err := enc.Encode(ids, rows)
		if err != nil {
			return st, fmt.Errorf("head %d: %w", h, err)
		}
		if err := emit(h, extent, len(ids)); err != nil {
			return st, err
		}
	}
	return st, nil
}

// Postings assembles postings.bin and directory.bin from extents given in
// head order (EncodeRange's), placed as Run places them.
type Postings struct {
	dir     string
	o       *Options
	f       *os.File
	bw      *bufio.Writer
	pw      *posting.Writer
	entries []posting.Entry
	sizes   []int
}

// CreatePostings starts dir/postings.bin for heads postings of
// rowBytes-byte vectors with o.Codec and table.
func CreatePostings(dir string, o *Options, rowBytes, heads int, table *posting.Table) (*Postings, error) {
	f, err := os.Create(filepath.Join(dir, PostingsFile))
	if err != nil {
		return nil, err
	}
	p := &Postings{dir: dir, o: o, f: f, bw: bufio.NewWriterSize(f, 4<<20),
		entries: make([]posting.Entry, 0, heads), sizes: make([]int, 0, heads)}
	if p.pw, err = posting.NewWriter(p.bw, rowBytes, o.Codec, table, o.BuildID); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

// Add writes the next head's extent of count vectors.
func (p *Postings) Add(extent []byte, count int) error {
	if len(p.entries) == cap(p.entries) {
		return fmt.Errorf("%s: more postings than the %d heads", p.f.Name(), cap(p.entries))
	}
	e, err := p.pw.AddExtent(extent, count)
	if err != nil {
		return fmt.Errorf("%s: %w", p.f.Name(), err)
	}
	p.entries = append(p.entries, e)
	p.sizes = append(p.sizes, count)
	return nil
}

// Finish ends postings.bin, writes directory.bin and records the
// postings' figures in st. Every head must have had its posting.
func (p *Postings) Finish(st *Stats) error {
	defer p.f.Close()
	if len(p.entries) != cap(p.entries) {
		return fmt.Errorf("%s: %d postings for %d heads", p.f.Name(), len(p.entries), cap(p.entries))
	}
	err := p.pw.Finish()
	if err == nil {
		err = p.bw.Flush()
	}
	if err == nil {
		err = p.f.Sync()
	}
	if err == nil {
		err = p.f.Close()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p.f.Name(), err)
	}
	st.Postings = len(p.entries)
	postingStats(st, p.entries, p.sizes)
	return writeFile(vfs.OS, filepath.Join(p.dir, DirectoryFile), func(w io.Writer) error {
		return posting.WriteDirectory(w, p.entries, p.o.BuildID)
	})
}

// NewStats returns the summary of a build of base with o, to fill in.
func NewStats(o *Options, base *datasets.VectorFile) *Stats {
	return &Stats{N: base.N, Dim: base.Dim, Type: base.Type.String(), Metric: o.Metric.String(),
		Seconds: map[string]float64{}, FileBytes: map[string]int64{}, PhasePeakRSS: map[string]int64{}, MemoryBudget: o.MemoryBudget,
		Threads: o.Threads, Codec: o.Codec.String()}
}

// CheckStored fails unless every one of n vectors but the heads has its
// nearest head's record in some posting (nearest, summed over the ranges'
// RangeStats).
func CheckStored(n, heads int, nearest int64) error {
	if want := int64(n - heads); nearest != want {
		return fmt.Errorf("%d vectors have their nearest head's record, want %d (every vector but the heads): assignments were lost or repeated", nearest, want)
	}
	return nil
}

// WriteManifest writes dir/manifest.json, last, for the index whose four
// files are in dir, built from base with o and summarised by st.
func WriteManifest(dir string, o *Options, base *datasets.VectorFile, heads int, st *Stats) error {
	sums := map[string]*fileSum{}
	for _, name := range []string{HeadsFile, GraphFile, DirectoryFile, PostingsFile} {
		s, err := sumFile(dir, name)
		if err != nil {
			return err
		}
		sums[name] = s
	}
	return writeManifest(vfs.OS, dir, o, base, heads, st, sums)
}
