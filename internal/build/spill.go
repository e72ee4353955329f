package build

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/gospann/spann/internal/vfs"
)

// spill holds the (head, vector) assignments of the whole base on disk, split
// into buckets by head range so that one bucket at a time fits the memory
// budget when postings are written. It is a build-time scratch format, never
// read by search; it lives in --tmp-dir and is removed when the build ends.
//
// Record layout (little-endian), recordBytes = 12 + rowBytes:
//
//	0   uint32  head id in bits 0-30; bit 31 set when this head is the
//	            vector's nearest (its first replica), which the posting
//	            limit never drops
//	4   uint32  vector id (base row)
//	8   float32 distance from the vector to the head
//	12  rowBytes the vector's raw elements
//
// Records of one bucket are in the order they were added; loadBucket sorts
// them. Each bucket keeps the CRC-32C of what was added to it, which a
// checkpoint records so that a resumed build can verify the bucket's
// committed prefix (reopenSpill).
type spill struct {
	dir            string
	rowBytes       int
	headsPerBucket int
	fs             vfs.FS
	files          []vfs.File
	writers        []*bufio.Writer
	counts         []int64
	crcs           []uint32
	rec            []byte
	order          []int32  // sort index, reused by every loadBucket
	lock           vfs.File // a --tmp-dir spill's own directory lock (nil in the build directory)
}

// spillBufSize is the write buffer of each bucket file.
const spillBufSize = 64 << 10

func newSpill(fs vfs.FS, dir string, buckets, heads, rowBytes int) (*spill, error) {
	s := &spill{fs: fs, dir: dir, rowBytes: rowBytes, headsPerBucket: (heads + buckets - 1) / buckets,
		counts: make([]int64, buckets), crcs: make([]uint32, buckets), rec: make([]byte, 12+rowBytes)}
	for b := 0; b < buckets; b++ {
		f, err := fs.Create(s.bucketPath(b))
		if err != nil {
			s.remove()
			return nil, fmt.Errorf("spill: %w", err)
		}
		s.files = append(s.files, f)
		s.writers = append(s.writers, bufio.NewWriterSize(f, spillBufSize))
	}
	return s, nil
}

func (s *spill) bucketPath(b int) string {
	return filepath.Join(s.dir, fmt.Sprintf("assign-%05d.spill", b))
}

// reopenSpill opens the spill of an interrupted build: each bucket file is
// checked against the length and CRC-32C its last checkpoint recorded and
// cut back to that length (records added after the checkpoint are gone).
func reopenSpill(fs vfs.FS, dir string, buckets, heads, rowBytes int, lengths []int64, crcs []uint32) (*spill, error) {
	if buckets < 1 || len(lengths) != buckets || len(crcs) != buckets {
		return nil, fmt.Errorf("spill: checkpoint of %d buckets lists %d lengths", buckets, len(lengths))
	}
	s := &spill{fs: fs, dir: dir, rowBytes: rowBytes, headsPerBucket: (heads + buckets - 1) / buckets,
		counts: make([]int64, buckets), crcs: make([]uint32, buckets), rec: make([]byte, 12+rowBytes)}
	for b := 0; b < buckets; b++ {
		f, err := fs.OpenFile(s.bucketPath(b), os.O_RDWR, 0)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("spill: %w", err)
		}
		s.files = append(s.files, f)
		s.writers = append(s.writers, bufio.NewWriterSize(f, spillBufSize))
		if lengths[b]%int64(s.recordBytes()) != 0 {
			s.close()
			return nil, fmt.Errorf("spill bucket %d: checkpoint length %d is not whole records", b, lengths[b])
		}
		crc, err := prefixCRC(f, lengths[b])
		if err == nil && crc != crcs[b] {
			err = fmt.Errorf("%s: CRC-32C %08x of its first %d bytes, the checkpoint recorded %08x", f.Name(), crc, lengths[b], crcs[b])
		}
		if err == nil {
			err = f.Truncate(lengths[b])
		}
		if err == nil {
			_, err = f.Seek(lengths[b], io.SeekStart)
		}
		if err != nil {
			s.close()
			return nil, fmt.Errorf("spill: %w", err)
		}
		s.counts[b], s.crcs[b] = lengths[b]/int64(s.recordBytes()), crcs[b]
	}
	return s, nil
}

func (s *spill) recordBytes() int { return 12 + s.rowBytes }

func (s *spill) bucketOf(head int32) int { return int(head) / s.headsPerBucket }

// nearestBit marks a vector's nearest head in a record's head field.
const nearestBit = 1 << 31

// add appends one assignment; nearest says head is the vector's nearest.
func (s *spill) add(head int32, id uint32, dist float32, row []byte, nearest bool) error {
	b := s.bucketOf(head)
	putRecord(s.rec, head, id, dist, row, nearest)
	if _, err := s.writers[b].Write(s.rec); err != nil {
		return fmt.Errorf("spill %s: %w", s.files[b].Name(), err)
	}
	s.counts[b]++
	s.crcs[b] = crc32.Update(s.crcs[b], castagnoli, s.rec)
	return nil
}

// sync flushes and fsyncs every bucket, so that what was added so far
// survives a crash, and returns each bucket's length and CRC-32C for a
// checkpoint. The buckets are then ready to read.
func (s *spill) sync() (lengths []int64, crcs []uint32, err error) {
	for b, w := range s.writers {
		if err := w.Flush(); err != nil {
			return nil, nil, fmt.Errorf("spill %s: %w", s.files[b].Name(), err)
		}
		if err := s.files[b].Sync(); err != nil {
			return nil, nil, fmt.Errorf("spill %s: %w", s.files[b].Name(), err)
		}
		lengths = append(lengths, s.counts[b]*int64(s.recordBytes()))
	}
	crashPoint("spill: synced")
	return lengths, slices.Clone(s.crcs), nil
}

// bucket is one bucket's records in memory, in file order; order lists the
// record indices sorted by (head, distance, id), and the accessors take a
// position in that order.
type bucket struct {
	data     []byte // records
	rowBytes int
	order    []int32
}

func (b *bucket) len() int { return len(b.order) }
func (b *bucket) rec(i int) []byte {
	rb := 12 + b.rowBytes
	j := int(b.order[i])
	return b.data[j*rb : (j+1)*rb]
}
func (b *bucket) raw(j int32) []byte {
	rb := 12 + b.rowBytes
	return b.data[int(j)*rb : int(j+1)*rb]
}
func (b *bucket) head(i int) int32 {
	return int32(binary.LittleEndian.Uint32(b.rec(i)) &^ nearestBit)
}
func (b *bucket) nearest(i int) bool { return binary.LittleEndian.Uint32(b.rec(i))&nearestBit != 0 }
func (b *bucket) id(i int) uint32    { return binary.LittleEndian.Uint32(b.rec(i)[4:]) }
func (b *bucket) dist(i int) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(b.rec(i)[8:]))
}
func (b *bucket) row(i int) []byte { return b.rec(i)[12:] }

// loadBucket reads bucket b into buf (reused) and sorts it. Sorting moves a
// 4-byte index per record, not the records, so a bucket costs its size plus
// 4 bytes per record in memory.
func (s *spill) loadBucket(b int, buf []byte) (*bucket, []byte, error) {
	size := s.counts[b] * int64(s.recordBytes())
	if int64(cap(buf)) < size {
		// Allocate once for the largest bucket, so that buckets of growing
		// size do not leave a trail of smaller buffers for the collector.
		var largest int64
		for _, c := range s.counts {
			largest = max(largest, c)
		}
		buf = make([]byte, largest*int64(s.recordBytes()))
	}
	buf = buf[:size]
	if _, err := s.files[b].ReadAt(buf, 0); err != nil && !(err == io.EOF && size == 0) {
		return nil, buf, fmt.Errorf("spill %s: %w", s.files[b].Name(), err)
	}
	rb := s.recordBytes()
	n := len(buf) / rb
	if cap(s.order) < n {
		s.order = make([]int32, n, cap(buf)/rb)
	}
	return sortRecords(buf, s.rowBytes, s.order[:n]), buf, nil
}

// sortRecords returns the records in data (whole records of rowBytes-byte
// vectors) as a bucket in (head, distance, id) order, order (one int32 per
// record) its sort index.
func sortRecords(data []byte, rowBytes int, order []int32) *bucket {
	bk := &bucket{data: data, rowBytes: rowBytes, order: order}
	for i := range bk.order {
		bk.order[i] = int32(i)
	}
	key := func(j int32) (uint32, float32, uint32) {
		r := bk.raw(j)
		return binary.LittleEndian.Uint32(r) &^ nearestBit, math.Float32frombits(binary.LittleEndian.Uint32(r[8:])), binary.LittleEndian.Uint32(r[4:])
	}
	slices.SortFunc(bk.order, func(x, y int32) int {
		hx, dx, ix := key(x)
		hy, dy, iy := key(y)
		switch {
		case hx != hy:
			return cmpU32(hx, hy)
		case dx < dy:
			return -1
		case dx > dy:
			return 1
		}
		return cmpU32(ix, iy)
	})
	return bk
}

func cmpU32(a, b uint32) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

func (s *spill) close() {
	for _, f := range s.files {
		f.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
}

// remove closes and deletes every bucket file, and a --tmp-dir spill's
// directory.
func (s *spill) remove() {
	for _, f := range s.files {
		f.Close()
		os.Remove(f.Name())
	}
	if s.lock != nil {
		os.RemoveAll(s.dir)
		s.lock.Close()
	}
}
