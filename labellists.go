package spann

import (
	"bufio"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/cluster"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/iouring"
	"github.com/gospann/spann/posting"
)

// The label lists' defaults (LabelOptions): a label whose carriers are
// between 0.05 % and 3 % of the index gets lists. Below, a filter's homes
// are few enough for the homes plan to read most of them; above 3 %, a
// one-label filter walks the heads anyway. Measured on realsift-1M
// (docs/benchmarks.md): one-label filters at 1 % read 28 pages for
// recall@10 0.936 (the homes plan: 79 for 0.903), at 0.1 % 18 pages for
// 0.987 (homes: 53 for 0.930). Lists up to 10 % (+150 MB) did no better
// for two-label filters, whose rarer label is often in 3–8 %.
const (
	DefaultListsMin = 0.0005
	DefaultListsMax = 0.03
)

// LabelOptions configures AttachLabels. The zero value is the defaults.
type LabelOptions struct {
	// ListsMin and ListsMax are the shares of the index between which a
	// label's carriers get label lists (0: DefaultListsMin and
	// DefaultListsMax). NoLists builds none.
	ListsMin, ListsMax float64
	NoLists            bool
	// Threads clusters that many labels at once (0: GOMAXPROCS).
	Threads int
	// Progress, if set, is called with postings read and their total;
	// ListsProgress with labels clustered and their total.
	Progress, ListsProgress func(done, total int)
}

func (o *LabelOptions) defaults() error {
	if o.ListsMin == 0 {
		o.ListsMin = DefaultListsMin
	}
	if o.ListsMax == 0 {
		o.ListsMax = DefaultListsMax
	}
	if !(o.ListsMin > 0 && o.ListsMin <= o.ListsMax && o.ListsMax <= 1) {
		return fmt.Errorf("label lists for shares %v..%v: want 0 < min <= max <= 1", o.ListsMin, o.ListsMax)
	}
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	return nil
}

// listTarget is the bytes a label list aims at: three quarters of a page,
// so that a list is one page read (the Writer moves an extent that would
// straddle a page boundary to the next page) with room for the balanced
// k-means' uneven sizes. On realsift-1M (96 bytes an entry) that is 32
// vectors a list; 16 gave recall@10 0.875 at 24 pages a 1 % query, 32
// gave 0.930 at 28, 64 0.930 at 32.
const listTarget = posting.PageSize * 3 / 4

// listLeaf returns the vectors a label list should hold for the index's
// entry size: listTarget's worth, between 8 and 64.
func (ix *Index) listLeaf() int {
	view := ix.store.Snapshot()
	var bytes, count uint64
	for h := range int32(view.Len()) {
		e := view.Entry(h)
		bytes, count = bytes+uint64(e.Bytes), count+uint64(e.Count)
	}
	if count == 0 {
		return 32
	}
	return min(64, max(8, int(float64(listTarget)*float64(count)/float64(bytes))))
}

// labelList is one list of a label: its head (a position in ids) and its
// members (positions too).
type labelList struct {
	head    int
	members []int32
}

// buildLabelLists clusters the stored carriers of every label in o's
// share range into lists and writes their postings to a new lists file of
// dir. rows holds every vector's row (vector i at i·rowBytes), homes
// every vector's home (-1: stored nowhere, a deleted vector dropped by a
// checkpoint, which no list holds).
func (ix *Index) buildLabelLists(dir string, bitmaps []*roaring.Bitmap, homes []int32, rows []byte, o *LabelOptions) (*indexfile.LabelLists, error) {
	n := float64(len(homes))
	var chosen []int
	for x, bm := range bitmaps {
		if c := float64(bm.GetCardinality()); c > 0 && c >= o.ListsMin*n && c <= o.ListsMax*n {
			chosen = append(chosen, x)
		}
	}
	if len(chosen) == 0 {
		return &indexfile.LabelLists{Min: o.ListsMin, Max: o.ListsMax}, nil
	}
	leaf := ix.listLeaf()
	lists := make([][]labelList, len(bitmaps))
	var (
		mu    sync.Mutex
		first error
		done  int
		next  = make(chan int)
		wg    sync.WaitGroup
	)
	for range min(o.Threads, max(1, len(chosen))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range next {
				var l []labelList
				var err error
				if ids := carriers(bitmaps[x], homes); len(ids) > 0 { // (none: all deleted and dropped; no lists)
					l, err = clusterLabel(ix.typ, ix.metric, rows, ix.rowBytes, ix.dim, ids, leaf)
				}
				mu.Lock()
				lists[x], done = l, done+1
				if err != nil && first == nil {
					first = fmt.Errorf("label %d: %w", x, err)
				}
				if o.ListsProgress != nil {
					o.ListsProgress(done, len(chosen))
				}
				mu.Unlock()
			}
		}()
	}
	for _, x := range chosen {
		next <- x
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	ll, err := ix.writeLabelLists(dir, bitmaps, homes, lists, rows)
	if err != nil {
		return nil, err
	}
	ll.Min, ll.Max = o.ListsMin, o.ListsMax
	return ll, nil
}

// carriers returns the ids of bm that are stored (homes[id] != -1).
func carriers(bm *roaring.Bitmap, homes []int32) []uint32 {
	ids := bm.ToArray()
	return slices.DeleteFunc(ids, func(id uint32) bool { return int(id) >= len(homes) || homes[id] == -1 })
}

// writeLabelLists writes the lists' postings, label by label, to a new
// lists file (named by a fresh generation) and returns their directory.
func (ix *Index) writeLabelLists(dir string, bitmaps []*roaring.Bitmap, homes []int32, lists [][]labelList, rows []byte) (*indexfile.LabelLists, error) {
	ll := &indexfile.LabelLists{Gen: uint64(time.Now().UnixNano()), RowBytes: ix.rowBytes, Starts: make([]uint32, 1, len(bitmaps)+1)}
	path := filepath.Join(dir, indexfile.ListsFile(ll.Gen))
	f, err := ix.fs.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	hdr := ix.store.Header()
	pw, err := posting.NewWriter(bw, ix.rowBytes, hdr.Codec, hdr.Table, ix.id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var ids []uint32
	var buf []byte
	for x := range bitmaps {
		carriers := carriers(bitmaps[x], homes) // positions in lists are indices into this
		for _, l := range lists[x] {
			ids, buf = ids[:0], buf[:0]
			for _, m := range l.members {
				id := carriers[m]
				ids = append(ids, id)
				buf = append(buf, rows[int(id)*ix.rowBytes:(int(id)+1)*ix.rowBytes]...)
			}
			e, err := pw.Add(ids, buf)
			if err != nil {
				return nil, fmt.Errorf("%s: label %d: %w", path, x, err)
			}
			ll.Entries = append(ll.Entries, e)
			head := carriers[l.head]
			ll.Heads = append(ll.Heads, rows[int(head)*ix.rowBytes:(int(head)+1)*ix.rowBytes]...)
		}
		ll.Starts = append(ll.Starts, uint32(len(ll.Entries)))
	}
	if err := pw.Finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ll, nil
}

// clusterLabel splits one label's carriers (ids, ascending) into lists of
// about leaf vectors: heads by the build's balanced k-means over the
// carriers' rows, every carrier in the list of its nearest head.
func clusterLabel(typ datasets.ElemType, m vec.Metric, rows []byte, rowBytes, dim int, ids []uint32, leaf int) ([]labelList, error) {
	switch typ {
	case datasets.Float32:
		return clusterLabelT[float32](m, rows, rowBytes, dim, ids, leaf)
	case datasets.Uint8:
		return clusterLabelT[uint8](m, rows, rowBytes, dim, ids, leaf)
	default:
		return clusterLabelT[int8](m, rows, rowBytes, dim, ids, leaf)
	}
}

func clusterLabelT[T vec.Elem](m vec.Metric, rows []byte, rowBytes, dim int, ids []uint32, leaf int) ([]labelList, error) {
	sp, err := vec.NewSpace[T](m)
	if err != nil {
		return nil, err
	}
	data := make([]byte, 0, len(ids)*rowBytes)
	for _, id := range ids {
		data = append(data, rows[int(id)*rowBytes:(int(id)+1)*rowBytes]...)
	}
	typed := datasets.Rows[T](data)
	heads, err := cluster.SelectHeads(sp, typed, dim, cluster.Params{Heads: (len(ids) + leaf - 1) / leaf, Seed: 1})
	if err != nil {
		return nil, err
	}
	headRows := make([]T, 0, len(heads)*dim)
	for _, h := range heads {
		headRows = append(headRows, typed[h*dim:(h+1)*dim]...)
	}
	lists := make([]labelList, len(heads))
	for i, h := range heads {
		lists[i].head = h
	}
	d := make([]float32, len(heads))
	for i := range ids {
		sp.Batch(typed[i*dim:(i+1)*dim], headRows, d)
		j := vec.ArgMin(d)
		lists[j].members = append(lists[j].members, int32(i))
	}
	// A head whose carriers all went nearer another's keeps an empty list:
	// dropped, as a posting of nothing.
	return slices.DeleteFunc(lists, func(l labelList) bool { return len(l.members) == 0 }), nil
}

// openLists opens the lists file labels.bin names, if any: its header
// (build id, row size) and every list's extent are checked here, each
// list's CRC at every read.
func (ix *Index) openLists(lab *labelState) error {
	ll := &lab.Lists
	if ll.Len() == 0 {
		return nil
	}
	if ll.RowBytes != ix.rowBytes {
		return fmt.Errorf("%s: label list heads of %d bytes, the index's rows are %d: %w", filepath.Join(ix.dir, indexfile.LabelsFile), ll.RowBytes, ix.rowBytes, ErrCorrupt)
	}
	path := filepath.Join(ix.dir, indexfile.ListsFile(ll.Gen))
	f, err := iouring.OpenFile(path)
	if err != nil {
		return fmt.Errorf("%s names label lists in %s: %w", indexfile.LabelsFile, path, err)
	}
	st, err := posting.OpenStore(f, ll.Entries, ix.rowBytes)
	if err == nil && st.Header().BuildID != ix.id {
		err = fmt.Errorf("%s: label lists of build %x, the index is build %s: %w", path, st.Header().BuildID, ix.id, ErrCorrupt)
	}
	if err != nil {
		f.Close()
		return postingError(err)
	}
	lab.lists, lab.lfile = st, f
	return nil
}

// checkLists reads every label list (Check): each must decode, hold only
// carriers of its label, and together a label's lists must hold each of
// its live (not deleted) carriers exactly once.
func (ix *Index) checkLists(r *CheckReport, problem func(string, ...any)) error {
	lab := ix.eng.labels()
	if lab == nil || lab.lists == nil {
		return nil
	}
	ll := &lab.Lists
	label := 0 // the label of list i: lists are in label order
	listed := roaring.New()
	dead := ix.dead.Load() // deleted vectors may be in lists or not
	flush := func() {      // label's lists are all read
		lo, hi := ll.Of(label)
		want := lab.Bitmap(label)
		if dead != nil {
			want = roaring.AndNot(want, dead)
			listed.AndNot(dead)
		}
		if hi > lo && !listed.Equals(want) {
			problem("%s: label %d's lists hold %d of its %d live carriers", lab.lists.Path(), label, listed.GetCardinality(), want.GetCardinality())
		}
		listed.Clear()
	}
	err := eachExtent(lab.lists, func(i int32, ids []uint32, _ []byte, err error) error {
		for _, hi := ll.Of(label); int(i) >= hi; _, hi = ll.Of(label) {
			flush()
			label++
		}
		if err != nil {
			problem("%s: label list %d: %v", lab.lists.Path(), i, err)
			return nil
		}
		r.LabelLists++
		r.ListEntries += int64(len(ids))
		carriers := lab.Bitmap(label)
		for _, id := range ids {
			if !carriers.Contains(id) || listed.Contains(id) {
				problem("%s: label list %d (label %d) holds vector %d, which does not carry the label or is in another of its lists", lab.lists.Path(), i, label, id)
				continue
			}
			listed.Add(id)
		}
		return nil
	})
	flush()
	return err
}
