package indexfile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/internal/offheap"
	"github.com/gospann/spann/internal/vfs"
)

// LabelsFile holds an index's vector labels for filtered search: per
// label, the bitmap of the vectors carrying it, and per vector its home
// posting (the posting holding it whose head is nearest to it), so that a
// filter matching few vectors reads only their homes. Like the tombstones
// it is not listed in the manifest, which describes the build; it carries
// the build id, and an index rebuilt under it refuses it.
//
// Layout (little-endian):
//
//	0        8       magic "SPNLABEL"
//	8        4       format version (1)
//	12       4       zero
//	16       16      build id
//	32       8       N, vectors
//	40       8       V, labels (0..V-1)
//	48       8       H, postings (heads); every home is below it
//	56       8       B, bytes of the bitmap section
//	64       8(V+1)  offsets: label x's bitmap is bytes offsets[x]..offsets[x+1]
//	                 of the bitmap section; offsets[0] = 0, offsets[V] = B
//	...      B       the bitmaps, one per label in label order, each a roaring
//	                 bitmap in its portable serialisation
//	                 (github.com/RoaringBitmap/roaring/v2, WriteTo), ids below N
//	...      4N      int32 homes: vector i's home posting h ≥ 0; or, for a
//	                 head vector stored in no posting, -2-h with h its own
//	                 head (so that a filter finds it among the heads in
//	                 memory); -1 for a vector in neither
//	...      4       CRC-32C of everything before it
const (
	LabelsFile   = "labels.bin"
	labelsMagic  = "SPNLABEL"
	labelsHeader = 64
)

// Labels is an open labels file. Its bitmaps stay serialised until asked
// for (Bitmap): on realsift-1M, 50,000 labels' bitmaps materialised at
// Open cost 38 MiB of container structs on the Go heap, which unfiltered
// searches never touch.
type Labels struct {
	N, Postings int
	Homes       []int32 // by vector
	offsets     []byte  // V+1 little-endian uint64s
	section     []byte  // the bitmaps
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

// WriteLabels replaces dir's labels file atomically: bitmaps[x] is label
// x's carriers, homes[i] vector i's home posting (-1: none), for an index
// of len(homes) vectors and postings postings.
func WriteLabels(fs vfs.FS, dir string, id BuildID, bitmaps []*roaring.Bitmap, homes []int32, postings int) error {
	l := &Labels{N: len(homes), Postings: postings, Homes: homes}
	var body bytes.Buffer
	offsets := make([]uint64, 1, len(bitmaps)+1)
	for _, bm := range bitmaps {
		if _, err := bm.WriteTo(&body); err != nil {
			return err
		}
		offsets = append(offsets, uint64(body.Len()))
	}
	out := make([]byte, labelsHeader, labelsHeader+8*len(offsets)+body.Len()+4*l.N+4)
	copy(out, labelsMagic)
	binary.LittleEndian.PutUint32(out[8:], 1)
	copy(out[16:], id[:])
	binary.LittleEndian.PutUint64(out[32:], uint64(l.N))
	binary.LittleEndian.PutUint64(out[40:], uint64(len(bitmaps)))
	binary.LittleEndian.PutUint64(out[48:], uint64(l.Postings))
	binary.LittleEndian.PutUint64(out[56:], uint64(body.Len()))
	for _, off := range offsets {
		out = binary.LittleEndian.AppendUint64(out, off)
	}
	out = append(out, body.Bytes()...)
	for _, h := range l.Homes {
		out = binary.LittleEndian.AppendUint32(out, uint32(h))
	}
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, LabelsFile), out)
}

// ReadLabels reads dir's labels file: nil if there is none, an error
// wrapping ErrCorrupt if it is damaged, of another build, or of another
// shape than the index (n vectors, postings heads). The file's bytes and
// the homes live in arena (nil: the Go heap), and the bitmaps are views
// of those bytes (roaring's FromBuffer), so arena must outlive them.
//
// Why off the heap: on realsift-1M the file is 28 MB, and read onto the
// heap (and copied into bitmaps) it raised a search's peak RSS from 61
// to 153 MiB.
func ReadLabels(dir string, id BuildID, n, postings int, arena *offheap.Arena) (*Labels, error) {
	path := filepath.Join(dir, LabelsFile)
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
	if len(data) < labelsHeader+12 || string(data[:8]) != labelsMagic {
		return nil, fmt.Errorf("not a labels file: %w", ErrCorrupt)
	}
	if got, want := binary.LittleEndian.Uint32(data[len(data)-4:]), crc32.Checksum(data[:len(data)-4], castagnoli); got != want {
		return nil, fmt.Errorf("CRC-32C %08x, computed %08x: %w", got, want, ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != 1 {
		return nil, fmt.Errorf("%w: labels format %d, this program reads 1", ErrVersion, v)
	}
	if !bytes.Equal(data[16:32], id[:]) {
		return nil, fmt.Errorf("labels of build %x, the index is build %s: %w", data[16:32], id, ErrCorrupt)
	}
	fileN, vocab := binary.LittleEndian.Uint64(data[32:]), binary.LittleEndian.Uint64(data[40:])
	fileH, b := binary.LittleEndian.Uint64(data[48:]), binary.LittleEndian.Uint64(data[56:])
	if fileN != uint64(n) || fileH != uint64(postings) {
		return nil, fmt.Errorf("labels for %d vectors and %d postings, the index has %d and %d: %w", fileN, fileH, n, postings, ErrCorrupt)
	}
	body := uint64(len(data) - labelsHeader - 4)
	if vocab > body/8 || b > body || 8*(vocab+1)+b+4*fileN != body {
		return nil, fmt.Errorf("%d labels, %d bytes of bitmaps and %d vectors do not fill %d bytes: %w", vocab, b, fileN, len(data), ErrCorrupt)
	}
	offsets := data[labelsHeader : labelsHeader+8*(vocab+1)]
	bitmaps := data[labelsHeader+8*(vocab+1) : labelsHeader+8*(vocab+1)+b]
	homes, err := offheap.Slice[int32](arena, n)
	if err != nil {
		return nil, err
	}
	l := &Labels{N: n, Postings: postings, Homes: homes, offsets: offsets, section: bitmaps}
	prev := uint64(0)
	for x := 0; x < int(vocab); x++ {
		lo, hi := binary.LittleEndian.Uint64(offsets[8*x:]), binary.LittleEndian.Uint64(offsets[8*x+8:])
		if lo != prev || hi < lo || hi > b {
			return nil, fmt.Errorf("label %d: bitmap at bytes %d..%d of %d: %w", x, lo, hi, b, ErrCorrupt)
		}
		prev = hi
		bm := roaring.New()
		if _, err := bm.FromBuffer(bitmaps[lo:hi:hi]); err != nil {
			return nil, fmt.Errorf("label %d: %v: %w", x, err, ErrCorrupt)
		}
		// FromBuffer trusts the bytes: keys out of order or containers
		// that lie about their cardinality would give wrong memberships
		// (or ids past n) later. (The CRC only stops accidents.)
		if err := bm.Validate(); err != nil {
			return nil, fmt.Errorf("label %d: %v: %w", x, err, ErrCorrupt)
		}
		if bm.GetSerializedSizeInBytes() != hi-lo {
			return nil, fmt.Errorf("label %d: bitmap of %d bytes in a slot of %d: %w", x, bm.GetSerializedSizeInBytes(), hi-lo, ErrCorrupt)
		}
		if !bm.IsEmpty() && bm.Maximum() >= uint32(n) {
			return nil, fmt.Errorf("label %d: vector %d, not below n = %d: %w", x, bm.Maximum(), n, ErrCorrupt)
		}
	}
	if prev != b {
		return nil, fmt.Errorf("bitmaps end at byte %d of %d: %w", prev, b, ErrCorrupt)
	}
	packed := data[labelsHeader+8*(vocab+1)+b:]
	for i := range l.Homes {
		h := int32(binary.LittleEndian.Uint32(packed[4*i:]))
		if int(h) < -1-postings || int(h) >= postings {
			return nil, fmt.Errorf("vector %d: home posting %d, the index has %d: %w", i, h, postings, ErrCorrupt)
		}
		l.Homes[i] = h
	}
	return l, nil
}
