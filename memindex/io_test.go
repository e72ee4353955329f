package memindex

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/gospann/spann/internal/vec"
)

func smallGraph(t testing.TB) (*Graph[uint8], vec.Space[uint8], []uint8, int) {
	const n, dim = 300, 8
	sp := mustSpace[uint8](t, vec.L2)
	data := clustered[uint8](21, n, dim, 6, 0, 255, 30)
	return mustBuild(t, sp, data, dim, Params{Degree: 8, Threads: 2}), sp, data, dim
}

func TestSaveLoadRoundTrip(t *testing.T) {
	const n, dim = 3000, 16
	sp := mustSpace[uint8](t, vec.L2)
	data := clustered[uint8](8, n+100, dim, 20, 0, 255, 30)
	base, queries := data[:n*dim], data[n*dim:]
	g := mustBuild(t, sp, base, dim, Params{Degree: 20, Threads: 2})
	var buf bytes.Buffer
	written, err := g.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if written != int64(buf.Len()) {
		t.Errorf("WriteTo reported %d bytes, wrote %d", written, buf.Len())
	}
	h, err := Load(bytes.NewReader(buf.Bytes()), sp, base, dim)
	if err != nil {
		t.Fatal(err)
	}
	if h.entry != g.entry || h.degree != g.degree || !bytes.Equal(h.lists.data, g.lists.data) || !slices.Equal(h.lists.rel, g.lists.rel) {
		t.Fatal("loaded graph header or counts differ")
	}
	for i := 0; i < n; i++ {
		if !slices.Equal(g.Neighbors(int32(i)), h.Neighbors(int32(i))) {
			t.Fatalf("node %d: neighbours differ", i)
		}
	}
	sg, sh := g.NewSearcher(), h.NewSearcher()
	for i := 0; i < 100; i++ {
		q := queries[i*dim : (i+1)*dim]
		if !slices.Equal(sg.Search(q, 10, 40), sh.Search(q, 10, 40)) {
			t.Fatalf("query %d: results differ after load", i)
		}
	}
	// Writing the loaded graph reproduces the bytes exactly.
	var again bytes.Buffer
	if _, err := h.WriteTo(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("re-written graph differs from the original bytes")
	}
}

func TestLoadRejectsCorruption(t *testing.T) {
	g, sp, data, dim := smallGraph(t)
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	// Every single-byte change is caught (by a field check or the CRC).
	for i := range good {
		bad := slices.Clone(good)
		bad[i] ^= 0x5a
		if _, err := Load(bytes.NewReader(bad), sp, data, dim); err == nil {
			t.Fatalf("corrupt byte %d of %d accepted", i, len(good))
		}
	}
	// Every truncation is caught, and reported as such.
	for k := 0; k < len(good); k++ {
		_, err := Load(bytes.NewReader(good[:k]), sp, data, dim)
		if err == nil {
			t.Fatalf("truncation to %d of %d bytes accepted", k, len(good))
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncation to %d bytes: error %v is not ErrUnexpectedEOF", k, err)
		}
	}
	// Wrong element type or metric is rejected even with a valid checksum.
	if _, err := Load(bytes.NewReader(good), mustSpace[uint8](t, vec.IP), data, dim); err == nil {
		t.Error("metric mismatch accepted")
	}
	i8 := make([]int8, len(data))
	if _, err := Load(bytes.NewReader(good), mustSpace[int8](t, vec.L2), i8, dim); err == nil {
		t.Error("element type mismatch accepted")
	}
}

// TestLoadValidatesIDs rewrites a neighbour id out of range and fixes the
// checksum, so that only the id check can catch it.
func TestLoadValidatesIDs(t *testing.T) {
	g, sp, data, dim := smallGraph(t)
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	firstID := headerSize + tagSize + 4*g.n
	binary.LittleEndian.PutUint32(b[firstID:], uint32(g.n))
	resum(b)
	if _, err := Load(bytes.NewReader(b), sp, data, dim); err == nil {
		t.Error("neighbour id ≥ n accepted")
	}
	binary.LittleEndian.PutUint32(b[headerSize+tagSize:], uint32(g.degree+1)) // count > degree
	resum(b)
	if _, err := Load(bytes.NewReader(b), sp, data, dim); err == nil {
		t.Error("neighbour count > degree accepted")
	}
}

// The tag round-trips; a version 1 file (no tag) still loads, with a zero
// tag and the same lists.
func TestTagAndVersion1(t *testing.T) {
	g, sp, data, dim := smallGraph(t)
	g.Tag = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	h, err := Load(bytes.NewReader(buf.Bytes()), sp, data, dim)
	if err != nil || h.Tag != g.Tag {
		t.Fatalf("tag %x, want %x (%v)", h.Tag, g.Tag, err)
	}
	b := buf.Bytes()
	v1 := append(bytes.Clone(b[:headerSize]), b[headerSize+tagSize:]...)
	binary.LittleEndian.PutUint32(v1[8:], fileVersion1)
	resum(v1)
	h1, err := Load(bytes.NewReader(v1), sp, data, dim)
	if err != nil || h1.Tag != ([16]byte{}) {
		t.Fatalf("version 1: tag %x, %v", h1.Tag, err)
	}
	for i := 0; i < g.n; i++ {
		if !slices.Equal(g.Neighbors(int32(i)), h1.Neighbors(int32(i))) {
			t.Fatalf("version 1 node %d: neighbours differ", i)
		}
	}
	binary.LittleEndian.PutUint32(v1[8:], 3)
	resum(v1)
	if _, err := Load(bytes.NewReader(v1), sp, data, dim); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "format version 3") {
		t.Errorf("version 3: %v, want ErrVersion", err)
	}
	binary.LittleEndian.PutUint32(v1[8:], 0)
	resum(v1)
	if _, err := Load(bytes.NewReader(v1), sp, data, dim); err == nil || errors.Is(err, ErrVersion) {
		t.Errorf("version 0: %v, want an error that is not ErrVersion", err)
	}
}

func resum(b []byte) {
	body := b[:len(b)-4]
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(body, castagnoli))
}

func FuzzLoad(f *testing.F) {
	g, sp, data, dim := smallGraph(f)
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:headerSize])
	f.Add([]byte(fileMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Load(bytes.NewReader(b), sp, data, dim)
		if err != nil {
			return
		}
		// Anything accepted must be searchable without panicking.
		s := h.NewSearcher()
		s.Search(data[:dim], 5, 16)
		h.Reachable()
	})
}
