package memindex

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/gospann/spann/internal/offheap"
	"github.com/gospann/spann/internal/vec"
)

// File layout: see doc.go ("On-disk format").
const (
	fileMagic    = "SPMEMGR\x00"
	fileVersion1 = 1 // no tag
	fileVersion2 = 2 // a 16-byte tag after the version 1 header
	fileVersion  = fileVersion2
	headerSize   = 36 // version 1 header; version 2 adds tagSize
	tagSize      = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrVersion is wrapped by Load's error for a graph whose header names a
// format version newer than this program reads.
var ErrVersion = errors.New("memindex: unsupported format version")

// elemKind is the element-type code stored in the header.
func elemKind[T vec.Elem]() uint8 {
	var zero T
	switch any(zero).(type) {
	case float32:
		return 1
	case uint8:
		return 2
	default: // int8
		return 3
	}
}

// WriteTo writes the graph (not the vectors) to w in the format described
// in doc.go. It implements io.WriterTo.
func (g *Graph[T]) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<16)
	crc := crc32.New(castagnoli)
	out := io.MultiWriter(bw, crc)

	var hdr [headerSize]byte
	copy(hdr[0:8], fileMagic)
	binary.LittleEndian.PutUint32(hdr[8:], fileVersion)
	hdr[12] = elemKind[T]()
	hdr[13] = uint8(g.sp.Metric)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(g.n))
	binary.LittleEndian.PutUint32(hdr[24:], uint32(g.dim))
	binary.LittleEndian.PutUint32(hdr[28:], uint32(g.degree))
	binary.LittleEndian.PutUint32(hdr[32:], uint32(g.entry))
	if _, err := out.Write(hdr[:]); err != nil {
		return cw.n, fmt.Errorf("memindex write header: %w", err)
	}
	if _, err := out.Write(g.Tag[:]); err != nil {
		return cw.n, fmt.Errorf("memindex write header: %w", err)
	}
	counts := g.counts
	if counts == nil {
		counts = make([]int32, g.n)
		for i := range counts {
			counts[i] = int32(g.count(int32(i)))
		}
	}
	if err := writeInt32s(out, counts); err != nil {
		return cw.n, fmt.Errorf("memindex write counts: %w", err)
	}
	var nbs []int32
	for i := 0; i < g.n; i++ {
		nbs = g.appendNbrs(nbs[:0], int32(i))
		if err := writeInt32s(out, nbs); err != nil {
			return cw.n, fmt.Errorf("memindex write neighbours of %d: %w", i, err)
		}
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := bw.Write(sum[:]); err != nil {
		return cw.n, fmt.Errorf("memindex write checksum: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("memindex write: %w", err)
	}
	return cw.n, nil
}

// Load reads a graph written by WriteTo and attaches it to vectors, which
// must be the vectors it was built over (same count, dimension, element
// type and metric; only the shape is checkable). Corrupt or truncated input
// yields an error. Load buffers its reads, so r may be left positioned past
// the graph's last byte.
func Load[T vec.Elem](r io.Reader, sp vec.Space[T], vectors []T, dim int) (*Graph[T], error) {
	return LoadIn(r, sp, vectors, dim, nil)
}

// LoadIn is Load with the graph's lists allocated in arena (outside the Go
// heap, freed with the arena; nil means the heap). The graph must not be
// used once the arena is freed.
func LoadIn[T vec.Elem](r io.Reader, sp vec.Space[T], vectors []T, dim int, arena *offheap.Arena) (*Graph[T], error) {
	n, err := checkVectors(vectors, dim)
	if err != nil {
		return nil, fmt.Errorf("memindex load: %w", err)
	}
	if sp.Dist == nil || sp.Batch == nil {
		return nil, fmt.Errorf("memindex load: space has no distance functions")
	}
	crc := crc32.New(castagnoli)
	cr := &crcReader{r: bufio.NewReaderSize(r, 1<<16), crc: crc}

	var hdr [headerSize]byte
	if err := cr.readFull(hdr[:]); err != nil {
		return nil, fmt.Errorf("memindex load header: %w", err)
	}
	if string(hdr[0:8]) != fileMagic {
		return nil, fmt.Errorf("memindex load: bad magic %q", hdr[0:8])
	}
	version := binary.LittleEndian.Uint32(hdr[8:])
	if version > fileVersion2 {
		// A newer format, or a damaged version field: only a checksum of
		// the whole file (the index manifest's) can tell which.
		return nil, fmt.Errorf("memindex load: format version %d, this program reads %d and %d: %w", version, fileVersion1, fileVersion2, ErrVersion)
	}
	if version != fileVersion1 && version != fileVersion2 {
		return nil, fmt.Errorf("memindex load: unsupported format version %d (want %d or %d)", version, fileVersion1, fileVersion2)
	}
	if k := hdr[12]; k != elemKind[T]() {
		return nil, fmt.Errorf("memindex load: element kind %d, want %d", k, elemKind[T]())
	}
	if m := vec.Metric(hdr[13]); m != sp.Metric {
		return nil, fmt.Errorf("memindex load: graph built for metric %s, space is %s", m, sp.Metric)
	}
	if hdr[14] != 0 || hdr[15] != 0 {
		return nil, fmt.Errorf("memindex load: reserved header bytes are not zero")
	}
	if fn := binary.LittleEndian.Uint64(hdr[16:]); fn != uint64(n) {
		return nil, fmt.Errorf("memindex load: graph has %d nodes, vectors have %d", fn, n)
	}
	if fd := binary.LittleEndian.Uint32(hdr[24:]); fd != uint32(dim) {
		return nil, fmt.Errorf("memindex load: graph dimension %d, vectors have %d", fd, dim)
	}
	degree := binary.LittleEndian.Uint32(hdr[28:])
	if degree < 1 || degree > maxDegree {
		return nil, fmt.Errorf("memindex load: degree %d out of range [1, %d]", degree, maxDegree)
	}
	entry := binary.LittleEndian.Uint32(hdr[32:])
	if entry >= uint32(n) {
		return nil, fmt.Errorf("memindex load: entry point %d not below n = %d", entry, n)
	}
	g := &Graph[T]{sp: sp, vectors: vectors, dim: dim, n: n, degree: int(degree), entry: int32(entry)}
	if version == fileVersion2 {
		if err := cr.readFull(g.Tag[:]); err != nil {
			return nil, fmt.Errorf("memindex load header: %w", err)
		}
	}
	counts := make([]int32, n)
	if err := cr.readInt32s(counts); err != nil {
		return nil, fmt.Errorf("memindex load counts: %w", err)
	}
	edges := 0
	for i, c := range counts {
		if c < 0 || int(c) > g.degree {
			return nil, fmt.Errorf("memindex load: node %d has %d neighbours, degree is %d", i, c, g.degree)
		}
		edges += int(c)
	}
	b, err := newAdjacencyBuilder(n, edges, arena)
	if err != nil {
		return nil, fmt.Errorf("memindex load: %w", err)
	}
	nbs := make([]int32, g.degree)
	for i := 0; i < n; i++ {
		nbs := nbs[:counts[i]]
		if err := cr.readInt32s(nbs); err != nil {
			return nil, fmt.Errorf("memindex load neighbours of %d: %w", i, err)
		}
		for _, nb := range nbs {
			if nb < 0 || int(nb) >= n {
				return nil, fmt.Errorf("memindex load: node %d has neighbour %d, not in [0, %d)", i, nb, n)
			}
		}
		b.add(nbs)
	}
	lists, err := b.finish()
	if err != nil {
		return nil, fmt.Errorf("memindex load: %w", err)
	}
	g.lists = &lists
	want := crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(cr.r, sum[:]); err != nil {
		return nil, fmt.Errorf("memindex load checksum: %w", noEOF(err))
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("memindex load: checksum mismatch (stored %08x, computed %08x)", got, want)
	}
	return g, nil
}

func writeInt32s(w io.Writer, xs []int32) error {
	var buf [4096]byte
	for len(xs) > 0 {
		k := min(len(xs), len(buf)/4)
		for i, x := range xs[:k] {
			binary.LittleEndian.PutUint32(buf[4*i:], uint32(x))
		}
		if _, err := w.Write(buf[:4*k]); err != nil {
			return err
		}
		xs = xs[k:]
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n += int64(k)
	return k, err
}

// crcReader reads from r and feeds every byte read into crc.
type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	buf [4096]byte
}

func (c *crcReader) readFull(p []byte) error {
	if _, err := io.ReadFull(c.r, p); err != nil {
		return noEOF(err)
	}
	c.crc.Write(p)
	return nil
}

func (c *crcReader) readInt32s(xs []int32) error {
	for len(xs) > 0 {
		k := min(len(xs), len(c.buf)/4)
		if err := c.readFull(c.buf[:4*k]); err != nil {
			return err
		}
		for i := range xs[:k] {
			xs[i] = int32(binary.LittleEndian.Uint32(c.buf[4*i:]))
		}
		xs = xs[k:]
	}
	return nil
}

// noEOF turns a clean EOF into ErrUnexpectedEOF: a graph that ends early is
// truncated, never complete.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
