package indexfile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/internal/offheap"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/posting"
)

// LabelsFile holds an index's vector labels for filtered search: per
// label, the bitmap of the vectors carrying it, and per vector its home
// posting (the posting holding it whose head is nearest to it), so that a
// filter matching few vectors reads only their homes. Like the tombstones
// it is not listed in the manifest, which describes the build; it carries
// the build id, and an index rebuilt under it refuses it.
//
// Mid-frequency labels also have label lists (issue 12): the label's
// carriers clustered by balanced k-means into small postings of their own,
// stored in a postings file of the index's format (labellists.G.bin, G
// the lists' generation, so that a re-attach never pairs a labels file
// with another attach's lists), each list with its head vector here. A
// filter on such a label reads the lists nearest the query, dense in
// matches, instead of homes holding one or two each.
//
// Layout (little-endian). Version 1 ends after the homes, with a 64-byte
// header (bytes 64..95 absent) and no lists; version 2 is:
//
//	0        8       magic "SPNLABEL"
//	8        4       format version (2)
//	12       4       R, bytes of a list head's row (0 when Q = 0; version 1: zero)
//	16       16      build id
//	32       8       N, vectors
//	40       8       V, labels (0..V-1)
//	48       8       H, postings (heads); every home is below it
//	56       8       B, bytes of the bitmap section
//	64       8       Q, label lists
//	72       8       G, the lists' generation: their postings are in labellists.G.bin
//	80       8       float64 min, the smallest share of the vectors a label with lists
//	                 has (the lists' options, for the checkpoints that rebuild them;
//	                 0 with max: no lists)
//	88       8       float64 max, the largest
//	96       8(V+1)  offsets: label x's bitmap is bytes offsets[x]..offsets[x+1]
//	                 of the bitmap section; offsets[0] = 0, offsets[V] = B
//	...      B       the bitmaps, one per label in label order, each a roaring
//	                 bitmap in its portable serialisation
//	                 (github.com/RoaringBitmap/roaring/v2, WriteTo), ids below N
//	...      4N      int32 homes: vector i's home posting h ≥ 0; or, for a
//	                 head vector stored in no posting, -2-h with h its own
//	                 head (so that a filter finds it among the heads in
//	                 memory); -1 for a vector in neither
//	...      4(V+1)  uint32 list starts: label x's lists are starts[x]..starts[x+1]-1;
//	                 starts[0] = 0, starts[V] = Q
//	...      16Q     per list its extent in the lists file: uint64 offset,
//	                 uint32 bytes, uint32 vectors (> 0), as in directory.bin
//	...      R·Q     per list its head vector's row
//	...      4       CRC-32C of everything before it
const (
	LabelsFile     = "labels.bin"
	labelsMagic    = "SPNLABEL"
	labelsHeaderV1 = 64
	labelsHeader   = 96
)

// ListsFile returns the name of the label lists' postings file of
// generation gen.
func ListsFile(gen uint64) string { return fmt.Sprintf("labellists.%d.bin", gen) }

// LabelLists are a labels file's label lists (see LabelsFile).
type LabelLists struct {
	Gen      uint64          // their postings are in ListsFile(Gen)
	Min, Max float64         // the shares of the vectors a label with lists has (0, 0: none)
	RowBytes int             // bytes of a head row
	Starts   []uint32        // by label, V+1: label x's lists are Starts[x]..Starts[x+1]-1
	Entries  []posting.Entry // by list: its extent in the lists file
	Heads    []byte          // by list: its head's row, RowBytes each
}

// Len returns the number of lists.
func (ll *LabelLists) Len() int { return len(ll.Entries) }

// Of returns label x's lists, first and one past the last.
func (ll *LabelLists) Of(x int) (lo, hi int) {
	if len(ll.Starts) == 0 {
		return 0, 0
	}
	return int(ll.Starts[x]), int(ll.Starts[x+1])
}

// Labels is an open labels file. Its bitmaps stay serialised until asked
// for (Bitmap): on realsift-1M, 50,000 labels' bitmaps materialised at
// Open cost 38 MiB of container structs on the Go heap, which unfiltered
// searches never touch.
type Labels struct {
	N, Postings int
	Homes       []int32 // by vector
	Lists       LabelLists
	offsets     []byte // V+1 little-endian uint64s
	section     []byte // the bitmaps
}

// Vocab returns the number of labels (0..Vocab()-1).
func (l *Labels) Vocab() int { return len(l.offsets)/8 - 1 }

// Bitmap returns label x's bitmap of carriers, a read-only view of the
// file's bytes (roaring's FromBuffer: do not modify it; Clone to). x must
// be in 0..Vocab()-1. Open checked every bitmap, so it cannot fail.
func (l *Labels) Bitmap(x int) *roaring.Bitmap {
	lo, hi := binary.LittleEndian.Uint64(l.offsets[8*x:]), binary.LittleEndian.Uint64(l.offsets[8*x+8:])
	bm := roaring.New()
	if _, err := bm.FromBuffer(l.section[lo:hi:hi]); err != nil {
		panic(fmt.Sprintf("indexfile: label %d's bitmap, checked at open, fails: %v", x, err))
	}
	return bm
}

// WriteLabels replaces dir's labels file name (LabelsFile, or of a later
// generation: FileName(LabelsFile, g)) atomically: bitmaps[x] is label
// x's carriers, homes[i] vector i's home posting (-1: none), for an index
// of len(homes) vectors and postings postings; lists, if not nil, are the
// label lists (whose postings file must already be written).
func WriteLabels(fs vfs.FS, dir, name string, id BuildID, bitmaps []*roaring.Bitmap, homes []int32, postings int, lists *LabelLists) error {
	if lists == nil {
		lists = &LabelLists{}
	}
	q := lists.Len()
	if q > 0 && (len(lists.Starts) != len(bitmaps)+1 || len(lists.Heads) != q*lists.RowBytes || lists.RowBytes <= 0) {
		return fmt.Errorf("indexfile: %d label lists with %d starts for %d labels and %d bytes of %d-byte heads", q, len(lists.Starts), len(bitmaps), len(lists.Heads), lists.RowBytes)
	}
	var body bytes.Buffer
	offsets := make([]uint64, 1, len(bitmaps)+1)
	for _, bm := range bitmaps {
		if _, err := bm.WriteTo(&body); err != nil {
			return err
		}
		offsets = append(offsets, uint64(body.Len()))
	}
	out := make([]byte, labelsHeader, labelsHeader+8*len(offsets)+body.Len()+4*len(homes)+4*len(offsets)+16*q+len(lists.Heads)+4)
	copy(out, labelsMagic)
	binary.LittleEndian.PutUint32(out[8:], 2)
	if q > 0 {
		binary.LittleEndian.PutUint32(out[12:], uint32(lists.RowBytes))
	}
	copy(out[16:], id[:])
	binary.LittleEndian.PutUint64(out[32:], uint64(len(homes)))
	binary.LittleEndian.PutUint64(out[40:], uint64(len(bitmaps)))
	binary.LittleEndian.PutUint64(out[48:], uint64(postings))
	binary.LittleEndian.PutUint64(out[56:], uint64(body.Len()))
	binary.LittleEndian.PutUint64(out[64:], uint64(q))
	binary.LittleEndian.PutUint64(out[72:], lists.Gen)
	binary.LittleEndian.PutUint64(out[80:], math.Float64bits(lists.Min))
	binary.LittleEndian.PutUint64(out[88:], math.Float64bits(lists.Max))
	for _, off := range offsets {
		out = binary.LittleEndian.AppendUint64(out, off)
	}
	out = append(out, body.Bytes()...)
	for _, h := range homes {
		out = binary.LittleEndian.AppendUint32(out, uint32(h))
	}
	for x := range offsets {
		start := uint32(0)
		if q > 0 {
			start = lists.Starts[x]
		}
		out = binary.LittleEndian.AppendUint32(out, start)
	}
	for _, e := range lists.Entries {
		out = binary.LittleEndian.AppendUint64(out, e.Offset)
		out = binary.LittleEndian.AppendUint32(out, e.Bytes)
		out = binary.LittleEndian.AppendUint32(out, e.Count)
	}
	out = append(out, lists.Heads...)
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, name), out)
}

// ReadLabels reads dir's labels file name: nil if there is none, an error
// wrapping ErrCorrupt if it is damaged, of another build, or of another
// shape than the index (n vectors, postings heads). The file's bytes and
// the homes live in arena (nil: the Go heap), and the bitmaps are views
// of those bytes (roaring's FromBuffer), so arena must outlive them.
//
// Why off the heap: on realsift-1M the file is 28 MB, and read onto the
// heap (and copied into bitmaps) it raised a search's peak RSS from 61
// to 153 MiB.
func ReadLabels(dir, name string, id BuildID, n, postings int, arena *offheap.Arena) (*Labels, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := arena.Bytes(int(st.Size()))
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l, err := parseLabels(data, id, n, postings, arena)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

func parseLabels(data []byte, id BuildID, n, postings int, arena *offheap.Arena) (*Labels, error) {
	if len(data) < labelsHeaderV1+12 || string(data[:8]) != labelsMagic {
		return nil, fmt.Errorf("not a labels file: %w", ErrCorrupt)
	}
	if got, want := binary.LittleEndian.Uint32(data[len(data)-4:]), crc32.Checksum(data[:len(data)-4], castagnoli); got != want {
		return nil, fmt.Errorf("CRC-32C %08x, computed %08x: %w", got, want, ErrCorrupt)
	}
	version := binary.LittleEndian.Uint32(data[8:])
	header := labelsHeader
	switch version {
	case 1:
		header = labelsHeaderV1
	case 2:
		if len(data) < labelsHeader+16 {
			return nil, fmt.Errorf("%d bytes, too short for a version 2 labels file: %w", len(data), ErrCorrupt)
		}
	default:
		return nil, fmt.Errorf("%w: labels format %d, this program reads 1 and 2", ErrVersion, version)
	}
	if !bytes.Equal(data[16:32], id[:]) {
		return nil, fmt.Errorf("labels of build %x, the index is build %s: %w", data[16:32], id, ErrCorrupt)
	}
	fileN, vocab := binary.LittleEndian.Uint64(data[32:]), binary.LittleEndian.Uint64(data[40:])
	fileH, b := binary.LittleEndian.Uint64(data[48:]), binary.LittleEndian.Uint64(data[56:])
	if fileN != uint64(n) || fileH != uint64(postings) {
		return nil, fmt.Errorf("labels for %d vectors and %d postings, the index has %d and %d: %w", fileN, fileH, n, postings, ErrCorrupt)
	}
	var q, rowBytes, listBytes uint64
	if version == 2 {
		q, rowBytes = binary.LittleEndian.Uint64(data[64:]), uint64(binary.LittleEndian.Uint32(data[12:]))
		if (q == 0) != (rowBytes == 0) || q > uint64(len(data)) || rowBytes > uint64(len(data)) {
			return nil, fmt.Errorf("%d label lists of %d-byte heads: %w", q, rowBytes, ErrCorrupt)
		}
		listBytes = 4 + (16+rowBytes)*q // the starts' 4·V counted below
	}
	body := uint64(len(data) - header - 4)
	perLabel := uint64(8)
	if version == 2 {
		perLabel = 12
	}
	if vocab > body/perLabel || b > body || listBytes > body || perLabel*vocab+8+b+4*fileN+listBytes != body {
		return nil, fmt.Errorf("%d labels, %d bytes of bitmaps, %d vectors and %d lists do not fill %d bytes: %w", vocab, b, fileN, q, len(data), ErrCorrupt)
	}
	offsets := data[header : header+8*int(vocab+1)]
	bitmaps := data[header+8*int(vocab+1) : header+8*int(vocab+1)+int(b)]
	homes, err := offheap.Slice[int32](arena, n)
	if err != nil {
		return nil, err
	}
	l := &Labels{N: n, Postings: postings, Homes: homes, offsets: offsets, section: bitmaps}
	if err := checkBitmaps(offsets, bitmaps, int(vocab), n); err != nil {
		return nil, err
	}
	packed := data[header+8*int(vocab+1)+int(b):]
	for i := range l.Homes {
		h := int32(binary.LittleEndian.Uint32(packed[4*i:]))
		if int(h) < -1-postings || int(h) >= postings {
			return nil, fmt.Errorf("vector %d: home posting %d, the index has %d: %w", i, h, postings, ErrCorrupt)
		}
		l.Homes[i] = h
	}
	if q > 0 {
		if err := parseLists(&l.Lists, packed[4*n:len(packed)-4], int(vocab), int(q), int(rowBytes), arena); err != nil {
			return nil, err
		}
		l.Lists.Gen = binary.LittleEndian.Uint64(data[72:])
	}
	if version == 2 {
		l.Lists.Min, l.Lists.Max = math.Float64frombits(binary.LittleEndian.Uint64(data[80:])), math.Float64frombits(binary.LittleEndian.Uint64(data[88:]))
		if !(l.Lists.Min >= 0 && l.Lists.Min <= l.Lists.Max && l.Lists.Max <= 1) {
			return nil, fmt.Errorf("label lists for shares %v..%v: %w", l.Lists.Min, l.Lists.Max, ErrCorrupt)
		}
	}
	return l, nil
}

// checkBitmaps checks every label's bitmap in the bitmap section.
func checkBitmaps(offsets, bitmaps []byte, vocab, n int) error {
	b := uint64(len(bitmaps))
	prev := uint64(0)
	for x := 0; x < vocab; x++ {
		lo, hi := binary.LittleEndian.Uint64(offsets[8*x:]), binary.LittleEndian.Uint64(offsets[8*x+8:])
		if lo != prev || hi < lo || hi > b {
			return fmt.Errorf("label %d: bitmap at bytes %d..%d of %d: %w", x, lo, hi, b, ErrCorrupt)
		}
		prev = hi
		bm := roaring.New()
		if _, err := bm.FromBuffer(bitmaps[lo:hi:hi]); err != nil {
			return fmt.Errorf("label %d: %v: %w", x, err, ErrCorrupt)
		}
		// FromBuffer trusts the bytes: keys out of order or containers
		// that lie about their cardinality would give wrong memberships
		// (or ids past n) later. (The CRC only stops accidents.)
		if err := bm.Validate(); err != nil {
			return fmt.Errorf("label %d: %v: %w", x, err, ErrCorrupt)
		}
		if bm.GetSerializedSizeInBytes() != hi-lo {
			return fmt.Errorf("label %d: bitmap of %d bytes in a slot of %d: %w", x, bm.GetSerializedSizeInBytes(), hi-lo, ErrCorrupt)
		}
		if !bm.IsEmpty() && bm.Maximum() >= uint32(n) {
			return fmt.Errorf("label %d: vector %d, not below n = %d: %w", x, bm.Maximum(), n, ErrCorrupt)
		}
	}
	if prev != b {
		return fmt.Errorf("bitmaps end at byte %d of %d: %w", prev, b, ErrCorrupt)
	}
	return nil
}

// parseLists reads the list section (starts, extents, heads) into ll. The
// extents are checked against the lists file when it is opened
// (posting.OpenStore).
func parseLists(ll *LabelLists, sec []byte, vocab, q, rowBytes int, arena *offheap.Arena) error {
	starts, err := offheap.Slice[uint32](arena, vocab+1)
	if err != nil {
		return err
	}
	prev := uint32(0)
	for x := range starts {
		starts[x] = binary.LittleEndian.Uint32(sec[4*x:])
		if starts[x] < prev || int(starts[x]) > q || (x == 0 && starts[x] != 0) {
			return fmt.Errorf("label %d: lists from %d after %d, of %d: %w", x, starts[x], prev, q, ErrCorrupt)
		}
		prev = starts[x]
	}
	if int(prev) != q {
		return fmt.Errorf("label lists end at %d of %d: %w", prev, q, ErrCorrupt)
	}
	sec = sec[4*(vocab+1):]
	entries, err := offheap.Slice[posting.Entry](arena, q)
	if err != nil {
		return err
	}
	for i := range entries {
		e := sec[16*i:]
		entries[i] = posting.Entry{Offset: binary.LittleEndian.Uint64(e), Bytes: binary.LittleEndian.Uint32(e[8:]), Count: binary.LittleEndian.Uint32(e[12:])}
		if entries[i].Count == 0 {
			return fmt.Errorf("label list %d is empty: %w", i, ErrCorrupt)
		}
	}
	*ll = LabelLists{RowBytes: rowBytes, Starts: starts, Entries: entries, Heads: sec[16*q : 16*q+rowBytes*q]}
	return nil
}

// ListsGen returns the generation of the label lists that the labels file
// at path names, and false if it names none; an error when the file
// cannot be read, so that a cleaner keeps what it cannot tell about.
func ListsGen(path string) (uint64, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var h [labelsHeader]byte
	n, err := io.ReadFull(f, h[:])
	switch {
	case err != nil && n >= labelsHeaderV1 && string(h[:8]) == labelsMagic && binary.LittleEndian.Uint32(h[8:]) == 1:
		return 0, false, nil // a short version 1 file: no lists
	case err != nil:
		return 0, false, fmt.Errorf("%s: %w", path, err)
	case string(h[:8]) != labelsMagic || binary.LittleEndian.Uint32(h[8:]) != 2 || binary.LittleEndian.Uint64(h[64:]) == 0:
		return 0, false, nil
	}
	return binary.LittleEndian.Uint64(h[72:]), true, nil
}
