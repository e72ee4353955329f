package posting

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// clusteredRows returns count rows of rowBytes bytes scattered around a
// random centre, SIFT-like (small values, many near zero), so the
// compressing codecs have real structure to find.
func clusteredRows(rng *rand.Rand, count, rowBytes int) []byte {
	centre := make([]int, rowBytes)
	for j := range centre {
		centre[j] = rng.IntN(60)
	}
	rows := make([]byte, count*rowBytes)
	for i := range count {
		for j := range rowBytes {
			v := centre[j] + rng.IntN(21) - 10
			rows[i*rowBytes+j] = byte(max(0, min(255, v)))
		}
	}
	return rows
}

func randomRows(rng *rand.Rand, count, rowBytes int) []byte {
	rows := make([]byte, count*rowBytes)
	for i := range rows {
		rows[i] = byte(rng.Uint32())
	}
	return rows
}

// distinctIDs returns count distinct ids in random order.
func distinctIDs(rng *rand.Rand, count int) []uint32 {
	seen := make(map[uint32]bool, count)
	ids := make([]uint32, 0, count)
	for len(ids) < count {
		id := rng.Uint32()
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

type posting struct {
	ids  []uint32
	rows []byte
}

// sortedCopy is what Decode must return for p: ids ascending, rows moved
// with them.
func sortedCopy(p posting, rowBytes int) posting {
	idx := make([]int, len(p.ids))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(int64(p.ids[a]) - int64(p.ids[b])) })
	var s posting
	s.ids = []uint32{}
	s.rows = []byte{}
	for _, i := range idx {
		s.ids = append(s.ids, p.ids[i])
		s.rows = append(s.rows, p.rows[i*rowBytes:(i+1)*rowBytes]...)
	}
	return s
}

// writeFile writes ps with codec and returns the file and entries, checking
// the layout invariants every file must satisfy.
func writeFile(t testing.TB, ps []posting, rowBytes int, c Codec) ([]byte, []Entry) {
	t.Helper()
	var buf bytes.Buffer
	var sample []byte
	for _, p := range ps {
		sample = append(sample, p.rows...)
	}
	w, err := NewWriter(&buf, rowBytes, c, testTable(t, c, sample), testID)
	if err != nil {
		t.Fatal(err)
	}
	var entries []Entry
	for i, p := range ps {
		e, err := w.Add(p.ids, p.rows)
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		entries = append(entries, e)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	checkLayout(t, file, entries)
	for i, e := range entries {
		if e.Count != uint32(len(ps[i].ids)) {
			t.Fatalf("entry %d: count %d, want %d", i, e.Count, len(ps[i].ids))
		}
	}
	if w.Offset() != uint64(len(file)) {
		t.Fatalf("file is %d bytes, writer offset %d", len(file), w.Offset())
	}
	h, err := ReadFileHeader(file)
	if err != nil {
		t.Fatal(err)
	}
	if h.Codec != c || h.RowBytes != uint32(rowBytes) || h.Version != fileVersion {
		t.Fatalf("file header %+v", h)
	}
	return file, entries
}

// checkLayout checks the packing rule on a finished file: each extent
// starts exactly where the previous one ended, unless it would then touch
// more than its minimum pages, in which case it starts at the next page
// boundary; every gap is zero padding; the file ends at the first page
// boundary at or after the last extent; and the directory checks agree.
func checkLayout(t testing.TB, file []byte, entries []Entry) {
	t.Helper()
	end := uint64(PageSize) // end of the previous extent
	for i, e := range entries {
		want := end
		if (end%PageSize+uint64(e.Bytes)+PageSize-1)/PageSize > uint64(minPages(e.Bytes)) {
			want = (end + PageSize - 1) &^ (PageSize - 1)
		}
		if e.Offset != want {
			t.Fatalf("entry %d (%d bytes): offset %d, want %d (previous extent ends at %d)", i, e.Bytes, e.Offset, want, end)
		}
		if wantPages := (uint64(e.Bytes) + PageSize - 1) / PageSize; uint64(e.Pages()) != wantPages || e.ReadBytes() != int(wantPages)*PageSize {
			t.Fatalf("entry %d: %d bytes at %d: %d pages, want %d", i, e.Bytes, e.Offset, e.Pages(), wantPages)
		}
		if e.ReadOffset()%PageSize != 0 || e.ReadOffset() > e.Offset || e.Offset-e.ReadOffset() >= PageSize ||
			e.ReadOffset()+uint64(e.ReadBytes()) < e.Offset+uint64(e.Bytes) {
			t.Fatalf("entry %d: aligned read [%d,+%d) does not cover extent [%d,+%d)", i, e.ReadOffset(), e.ReadBytes(), e.Offset, e.Bytes)
		}
		if !allZero(file[end:e.Offset]) {
			t.Fatalf("entry %d: nonzero padding in [%d,%d)", i, end, e.Offset)
		}
		end = e.Offset + uint64(e.Bytes)
	}
	fileEnd := (end + PageSize - 1) &^ (PageSize - 1)
	if uint64(len(file)) != fileEnd {
		t.Fatalf("file is %d bytes, want %d (last extent ends at %d)", len(file), fileEnd, end)
	}
	if !allZero(file[end:]) {
		t.Fatalf("nonzero padding after the last extent")
	}
	for i, e := range entries {
		if e.ReadOffset()+uint64(e.ReadBytes()) > uint64(len(file)) {
			t.Fatalf("entry %d: aligned read ends past the file", i)
		}
	}
	if err := checkEntries(entries, dirVersion); err != nil {
		t.Fatalf("writer output fails the directory checks: %v", err)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// extentOf returns posting e's extent the way a searcher gets it: one
// aligned read of ReadBytes() at ReadOffset(), from the extent's start on.
func extentOf(file []byte, e Entry) []byte {
	read := file[e.ReadOffset() : e.ReadOffset()+uint64(e.ReadBytes())]
	return read[e.Offset-e.ReadOffset():]
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const rowBytes = 128
	var ps []posting
	for _, count := range []int{0, 1, 2, 3, 56, 57, 300, 600} {
		ps = append(ps, posting{distinctIDs(rng, count), clusteredRows(rng, count, rowBytes)})
		ps = append(ps, posting{distinctIDs(rng, count), randomRows(rng, count, rowBytes)})
	}
	// Constant rows (RLE in huff), ascending ids, the extreme ids.
	ps = append(ps, posting{[]uint32{0, 1, 2, 0xFFFFFFFF}, bytes.Repeat([]byte{9}, 4*rowBytes)})
	ps = append(ps, posting{[]uint32{0xFFFFFFFF}, make([]byte, rowBytes)})
	for _, c := range Codecs() {
		t.Run(c.String(), func(t *testing.T) {
			file, entries := writeFile(t, ps, rowBytes, c)
			d, err := newFileDecoder(file, rowBytes)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			for i, e := range entries {
				ids, rows, err := d.Decode(extentOf(file, e), e)
				if err != nil {
					t.Fatalf("posting %d: %v", i, err)
				}
				want := sortedCopy(ps[i], rowBytes)
				if !slices.Equal(ids, want.ids) || !bytes.Equal(rows, want.rows) {
					t.Fatalf("posting %d (count %d): decoded data differs", i, len(ps[i].ids))
				}
			}
		})
	}
}

// sizedPosting returns a posting whose codec-none extent with rowBytes 1
// is exactly size bytes (size 28 or >= 30): n consecutive ids cost one
// byte each, plus one more when the first id is >= 128, and n row bytes.
func sizedPosting(t testing.TB, size int) posting {
	t.Helper()
	extra := size - extentOverhead
	if extra < 0 || extra == 1 {
		t.Fatalf("no posting has a %d-byte extent", size)
	}
	first := uint32(0)
	if extra%2 == 1 {
		first = 200
	}
	n := extra / 2
	p := posting{ids: make([]uint32, n), rows: make([]byte, n)}
	for i := range n {
		p.ids[i] = first + uint32(i)
		p.rows[i] = byte(i * 7)
	}
	return p
}

func sizedPostings(t testing.TB, sizes []int) []posting {
	ps := make([]posting, len(sizes))
	for i, size := range sizes {
		ps[i] = sizedPosting(t, size)
	}
	return ps
}

// decodeAll decodes every posting through its aligned read and compares it
// with what was added.
func decodeAll(t testing.TB, file []byte, entries []Entry, ps []posting, rowBytes int) {
	t.Helper()
	d, err := newFileDecoder(file, rowBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i, e := range entries {
		ids, rows, err := d.Decode(extentOf(file, e), e)
		if err != nil {
			t.Fatalf("posting %d: %v", i, err)
		}
		want := sortedCopy(ps[i], rowBytes)
		if !slices.Equal(ids, want.ids) || !bytes.Equal(rows, want.rows) {
			t.Fatalf("posting %d: decoded data differs", i)
		}
		// Decode also works on exactly e.Bytes.
		if _, _, err := d.Decode(file[e.Offset:e.Offset+uint64(e.Bytes)], e); err != nil {
			t.Fatalf("posting %d: %v", i, err)
		}
	}
}

// TestPacking checks the placement rule on hand-picked sizes.
func TestPacking(t *testing.T) {
	empties := make([]int, 147)
	emptyOffsets := make([]uint64, 147)
	for i := range empties {
		empties[i] = extentOverhead
		emptyOffsets[i] = PageSize + uint64(i)*extentOverhead
	}
	emptyOffsets[146] = 2 * PageSize // 146*28 = 4088: the 147th would straddle
	for _, tc := range []struct {
		name    string
		sizes   []int
		offsets []uint64
		fileLen int
	}{
		{"small ones share a page", []int{100, 200, 30}, []uint64{4096, 4196, 4396}, 2 * PageSize},
		{"exactly fills the rest of a page", []int{100, 3996, 50}, []uint64{4096, 4196, 8192}, 3 * PageSize},
		{"one byte too many is pushed", []int{100, 3997, 50}, []uint64{4096, 8192, 12189}, 3 * PageSize},
		{"a page-sized extent mid-page is pushed", []int{100, 4096, 30}, []uint64{4096, 8192, 12288}, 4 * PageSize},
		{"page-sized extents back to back", []int{4096, 4096}, []uint64{4096, 8192}, 3 * PageSize},
		{"a two-page extent may start mid-page", []int{100, 4096 + 3996, 30}, []uint64{4096, 4196, 12288}, 4 * PageSize},
		{"a two-page extent that would take three is pushed", []int{100, 4096 + 3997}, []uint64{4096, 8192}, 4 * PageSize},
		{"empty postings packed", empties, emptyOffsets, 3 * PageSize},
		{"no postings", nil, nil, PageSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := sizedPostings(t, tc.sizes)
			file, entries := writeFile(t, ps, 1, CodecNone)
			for i, e := range entries {
				if int(e.Bytes) != tc.sizes[i] || e.Offset != tc.offsets[i] {
					t.Fatalf("posting %d: %d bytes at %d, want %d at %d", i, e.Bytes, e.Offset, tc.sizes[i], tc.offsets[i])
				}
			}
			if len(file) != tc.fileLen {
				t.Fatalf("file is %d bytes, want %d", len(file), tc.fileLen)
			}
			decodeAll(t, file, entries, ps, 1)
			var out bytes.Buffer
			if err := Describe(&out, file); err != nil {
				t.Fatalf("describe: %v\n%s", err, out.String())
			}
			if got := bytes.Count(out.Bytes(), []byte("\nposting ")); got != len(entries) {
				t.Fatalf("describe walked %d postings, want %d:\n%s", got, len(entries), out.String())
			}
		})
	}
}

// TestPackingProperty writes random mixes of small, page-sized and
// multi-page extents and checks the packing invariants on each.
func TestPackingProperty(t *testing.T) {
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 99))
		sizes := make([]int, 300)
		for i := range sizes {
			switch rng.IntN(4) {
			case 0:
				sizes[i] = extentOverhead + 2*rng.IntN(200) // small, often empty
			case 1:
				sizes[i] = PageSize*(1+rng.IntN(3)) - 3 + rng.IntN(7) // around a page multiple
			default:
				sizes[i] = 30 + rng.IntN(3*PageSize)
			}
		}
		ps := sizedPostings(t, sizes)
		file, entries := writeFile(t, ps, 1, CodecNone) // checkLayout checks the rule exactly
		var alignedLen uint64 = PageSize
		end := uint64(PageSize)
		for i, e := range entries {
			if e.Pages() != uint32((e.Bytes+PageSize-1)/PageSize) {
				t.Fatalf("seed %d posting %d: %d bytes span %d pages", seed, i, e.Bytes, e.Pages())
			}
			if e.Offset < end {
				t.Fatalf("seed %d posting %d: offset %d overlaps the previous extent ending at %d", seed, i, e.Offset, end)
			}
			end = e.Offset + uint64(e.Bytes)
			alignedLen += uint64(e.ReadBytes())
		}
		if len(file)%PageSize != 0 {
			t.Fatalf("seed %d: file length %d", seed, len(file))
		}
		if uint64(len(file)) >= alignedLen {
			t.Fatalf("seed %d: packed file %d bytes, page-aligned layout would be %d", seed, len(file), alignedLen)
		}
		decodeAll(t, file, entries, ps, 1)
		var buf bytes.Buffer
		if err := WriteDirectory(&buf, entries, testID); err != nil {
			t.Fatal(err)
		}
		got, err := ReadDirectory(&buf)
		if err != nil || !slices.Equal(got.Entries, entries) || got.BuildID != testID {
			t.Fatalf("seed %d: directory round trip: %v", seed, err)
		}
	}
}

// A file written in two parts, the second by ResumeWriter after the first
// part was cut at an entry's end, is byte for byte the file written in one
// go, for every codec and every cut.
func TestResumeWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const rowBytes = 32
	var ps []posting
	for _, count := range []int{5, 0, 80, 1, 300, 17, 150} {
		ps = append(ps, posting{distinctIDs(rng, count), clusteredRows(rng, count, rowBytes)})
	}
	for _, c := range Codecs() {
		file, entries := writeFile(t, ps, rowBytes, c)
		var sample []byte
		for _, p := range ps {
			sample = append(sample, p.rows...)
		}
		table := testTable(t, c, sample)
		for cut := 1; cut <= len(ps); cut++ {
			end := entries[cut-1].Offset + uint64(entries[cut-1].Bytes)
			buf := bytes.NewBuffer(bytes.Clone(file[:end]))
			w, err := ResumeWriter(buf, rowBytes, c, table, end, cut)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range ps[cut:] {
				e, err := w.Add(p.ids, p.rows)
				if err != nil || e != entries[cut+i] {
					t.Fatalf("%s, resumed after %d: posting %d at %+v (%v), want %+v", c, cut, cut+i, e, err, entries[cut+i])
				}
			}
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), file) {
				t.Fatalf("%s, resumed after %d postings: file differs", c, cut)
			}
		}
	}
	if _, err := ResumeWriter(&bytes.Buffer{}, rowBytes, CodecNone, nil, 100, 0); err == nil {
		t.Error("resume inside the header accepted")
	}
}

// TestAddExtent: extents encoded apart (as a parallel build does) and
// written with AddExtent make the file Add makes.
func TestAddExtent(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const rowBytes = 32
	var ps []posting
	for _, count := range []int{5, 0, 80, 1, 300, 17, 150, 2} {
		ps = append(ps, posting{distinctIDs(rng, count), clusteredRows(rng, count, rowBytes)})
	}
	var sample []byte
	for _, p := range ps {
		sample = append(sample, p.rows...)
	}
	for _, c := range Codecs() {
		file, entries := writeFile(t, ps, rowBytes, c)
		table := testTable(t, c, sample)
		enc, err := NewEncoder(rowBytes, c, table)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, rowBytes, c, table, testID)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range ps {
			extent, err := enc.Encode(p.ids, p.rows)
			if err != nil {
				t.Fatal(err)
			}
			if e, err := w.AddExtent(extent, len(p.ids)); err != nil || e != entries[i] {
				t.Fatalf("%s: posting %d at %+v (%v), want %+v", c, i, e, err, entries[i])
			}
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), file) {
			t.Fatalf("%s: file differs from Add's", c)
		}
		if _, err := w.AddExtent(make([]byte, 100), 1); err == nil || !strings.Contains(err.Error(), "after Finish") {
			t.Fatalf("AddExtent after Finish: %v", err)
		}
	}
	w, _ := NewWriter(&bytes.Buffer{}, rowBytes, CodecNone, nil, [16]byte{})
	if _, err := w.AddExtent(make([]byte, 10), 1); err == nil || !strings.Contains(err.Error(), "is not one") {
		t.Fatalf("a 10-byte extent: %v", err)
	}
}

func TestWriterRejectsBadInput(t *testing.T) {
	if _, err := NewWriter(&bytes.Buffer{}, 0, CodecNone, nil, testID); err == nil {
		t.Fatal("rowBytes 0 accepted")
	}
	if _, err := NewWriter(&bytes.Buffer{}, 4, Codec(200), nil, testID); err == nil {
		t.Fatal("unknown codec accepted")
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, 4, CodecHuff, nil, testID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add([]uint32{1, 2}, make([]byte, 7)); err == nil {
		t.Fatal("short rows accepted")
	}
	if _, err := w.Add([]uint32{5, 3, 5}, make([]byte, 12)); err == nil {
		t.Fatal("duplicate ids accepted")
	}
	// Bad input leaves the writer usable and the file untouched.
	if buf.Len() != PageSize {
		t.Fatalf("file grew to %d bytes on rejected input", buf.Len())
	}
	e, err := w.Add([]uint32{3, 1}, []byte{3, 3, 3, 3, 1, 1, 1, 1})
	if err != nil || e.Offset != PageSize {
		t.Fatalf("add after rejected input: %+v %v", e, err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add([]uint32{1}, make([]byte, 4)); err == nil {
		t.Fatal("Add after Finish accepted")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterStickyWriteError(t *testing.T) {
	w, err := NewWriter(&failWriter{n: 1}, 4, CodecNone, nil, testID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add([]uint32{1}, make([]byte, 4)); err == nil {
		t.Fatal("write error not reported")
	}
	if _, err := w.Add([]uint32{2}, make([]byte, 4)); err == nil {
		t.Fatal("write error not sticky")
	}
	if err := w.Finish(); err == nil {
		t.Fatal("Finish hid the write error")
	}
}

func TestFinishPads(t *testing.T) {
	// Header and one extent succeed; the final padding fails.
	w, err := NewWriter(&failWriter{n: 2}, 4, CodecNone, nil, testID)
	if err != nil {
		t.Fatal(err)
	}
	e, err := w.Add([]uint32{1}, make([]byte, 4))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != PageSize+uint64(e.Bytes) {
		t.Fatalf("offset %d after one extent of %d bytes", w.Offset(), e.Bytes)
	}
	if err := w.Finish(); err == nil {
		t.Fatal("Finish hid the padding write error")
	}
	if err := w.Finish(); err == nil {
		t.Fatal("Finish error not sticky")
	}
	// Finish twice pads once.
	var buf bytes.Buffer
	w, _ = NewWriter(&buf, 4, CodecNone, nil, testID)
	if _, err := w.Add([]uint32{1}, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != 2*PageSize || w.Offset() != 2*PageSize {
			t.Fatalf("file %d bytes, offset %d after Finish", buf.Len(), w.Offset())
		}
	}
}

// smallFile is a few postings under every codec, used by the corruption
// tests.
func smallFile(t testing.TB, c Codec) ([]byte, []Entry) {
	rng := rand.New(rand.NewPCG(3, 4))
	ps := []posting{
		{distinctIDs(rng, 5), clusteredRows(rng, 5, 16)},
		{[]uint32{7}, clusteredRows(rng, 1, 16)},
		{nil, nil},
		{distinctIDs(rng, 40), clusteredRows(rng, 40, 16)},
	}
	return writeFile(t, ps, 16, c)
}

func TestCorruptionDetected(t *testing.T) {
	for _, c := range Codecs() {
		t.Run(c.String(), func(t *testing.T) {
			file, entries := smallFile(t, c)
			d, _ := newFileDecoder(file, 16)
			defer d.Close()
			for i, e := range entries {
				ext := bytes.Clone(extentOf(file, e))
				for pos := range int(e.Bytes) {
					for _, flip := range []byte{0x01, 0x80, 0xFF} {
						ext[pos] ^= flip
						if _, _, err := d.Decode(ext, e); !errors.Is(err, ErrCorrupt) {
							t.Fatalf("posting %d: byte %d ^ %#x: err %v, want ErrCorrupt", i, pos, flip, err)
						}
						ext[pos] ^= flip
					}
				}
				// Padding is outside the checksum and ignored.
				if int(e.Bytes) < len(ext) {
					ext[len(ext)-1] ^= 0xFF
					if _, _, err := d.Decode(ext, e); err != nil {
						t.Fatalf("posting %d: padding byte changed decoding: %v", i, err)
					}
				}
				for _, n := range []int{0, 1, ExtentHeaderSize, int(e.Bytes) - 1} {
					if _, _, err := d.Decode(ext[:n], e); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("posting %d truncated to %d: err %v", i, n, err)
					}
				}
				bad := e
				bad.Count++
				if _, _, err := d.Decode(ext, bad); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("posting %d: wrong count: err %v", i, err)
				}
				bad = e
				bad.Bytes--
				if _, _, err := d.Decode(ext, bad); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("posting %d: wrong size: err %v", i, err)
				}
				if e.Count > 0 {
					d8, _ := newFileDecoder(file, 8)
					if _, _, err := d8.Decode(ext, e); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("posting %d: wrong rowBytes: err %v", i, err)
					}
				}
			}
		})
	}
}

func TestFileHeaderCorruption(t *testing.T) {
	file, _ := smallFile(t, CodecZstd)
	for pos := range PageSize {
		p := bytes.Clone(file[:PageSize])
		p[pos] ^= 0x10
		if _, err := ReadFileHeader(p); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("header byte %d flipped: err %v", pos, err)
		}
	}
	if _, err := ReadFileHeader(file[:PageSize-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short header: %v", err)
	}
}

func TestDecodeAllocatesNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	ps := []posting{{distinctIDs(rng, 56), clusteredRows(rng, 56, 128)}, {distinctIDs(rng, 70), randomRows(rng, 70, 128)}}
	for _, c := range Codecs() {
		file, entries := writeFile(t, ps, 128, c)
		d, _ := newFileDecoder(file, 128)
		allocs := testing.AllocsPerRun(50, func() {
			for _, e := range entries {
				if _, _, err := d.Decode(extentOf(file, e), e); err != nil {
					t.Fatal(err)
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocs per decode round after warm-up, want 0", c, allocs)
		}
		d.Close()
	}
}

func TestDirectoryRoundTrip(t *testing.T) {
	_, entries := smallFile(t, CodecHuff)
	for _, es := range [][]Entry{nil, entries} {
		var buf bytes.Buffer
		if err := WriteDirectory(&buf, es, testID); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != dirHeaderSize+dirIDSize+dirEntrySize*len(es)+4 {
			t.Fatalf("directory of %d entries is %d bytes", len(es), buf.Len())
		}
		got, err := ReadDirectory(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Entries, es) || got.BuildID != testID {
			t.Fatalf("got %v, want %v with id %x", got, es, testID)
		}
		raw := buf.Bytes()
		for pos := range raw {
			c := bytes.Clone(raw)
			c[pos] ^= 0x04
			// A flipped version field naming a newer version is ErrVersion:
			// the directory alone cannot tell damage from a newer format
			// (the index's manifest checksum does, in spann.Open).
			_, err := ReadDirectory(bytes.NewReader(c))
			if !errors.Is(err, ErrCorrupt) && !(pos >= 8 && pos < 12 && errors.Is(err, ErrVersion)) {
				t.Fatalf("byte %d flipped: err %v", pos, err)
			}
		}
		for n := range len(raw) {
			if _, err := ReadDirectory(bytes.NewReader(raw[:n])); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated to %d: err %v", n, err)
			}
		}
		if _, err := ReadDirectory(bytes.NewReader(append(bytes.Clone(raw), 0))); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("trailing byte: err %v", err)
		}
	}
	for name, bad := range map[string][]Entry{
		"header":       {{Offset: 0, Bytes: 100}},
		"in header":    {{Offset: PageSize - 1, Bytes: 100}},
		"overlap":      {{Offset: PageSize, Bytes: 200}, {Offset: PageSize + 199, Bytes: 100}},
		"overlap mid":  {{Offset: PageSize + 50, Bytes: 200}, {Offset: PageSize + 249, Bytes: 100}},
		"overlap back": {{Offset: 3 * PageSize, Bytes: 200}, {Offset: 3*PageSize - 10, Bytes: 100}},
		"back in hdr":  {{Offset: 3 * PageSize, Bytes: 200}, {Offset: 100, Bytes: 100}},
		"tiny":         {{Offset: PageSize, Bytes: 3}},
		"extra page":   {{Offset: PageSize + 4000, Bytes: 200}},
		"page mid-way": {{Offset: PageSize + 1, Bytes: PageSize}},
		"huge offset":  {{Offset: 1<<62 + PageSize, Bytes: 100}},
	} {
		if err := WriteDirectory(&bytes.Buffer{}, bad, testID); err == nil {
			t.Errorf("%s: WriteDirectory accepted %v", name, bad)
		}
	}
	// Packed entries: unaligned, sharing pages, touching exactly their
	// minimum pages.
	packed := []Entry{{Offset: PageSize + 1, Bytes: 100}, {Offset: PageSize + 101, Bytes: 28}, {Offset: PageSize + 129, Bytes: 2*PageSize - 129}}
	if err := WriteDirectory(&bytes.Buffer{}, packed, testID); err != nil {
		t.Errorf("packed entries rejected: %v", err)
	}
	testUnorderedDirectory(t)
}

// testUnorderedDirectory checks version 4: extents out of posting order
// (an updated index's) are written as version 4 and read back, while the
// same entries under version 3 are rejected.
func testUnorderedDirectory(t *testing.T) {
	moved := []Entry{{Offset: 5 * PageSize, Bytes: 300, Count: 2}, {Offset: PageSize, Bytes: 100, Count: 1}, {Offset: PageSize + 100, Bytes: 28}}
	var buf bytes.Buffer
	if err := WriteDirectory(&buf, moved, testID); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	if v := binary.LittleEndian.Uint32(raw[8:]); v != dirVersion4 {
		t.Fatalf("unordered entries written as version %d, want 4", v)
	}
	got, err := ReadDirectory(bytes.NewReader(raw))
	if err != nil || !slices.Equal(got.Entries, moved) {
		t.Fatalf("version 4 directory: %v, %v", got, err)
	}
	binary.LittleEndian.PutUint32(raw[8:], dirVersion3)
	putCRC(raw[len(raw)-4:], crc32c(raw[:len(raw)-4]))
	if _, err := ReadDirectory(bytes.NewReader(raw)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("unordered version 3 directory: %v, want ErrCorrupt", err)
	}
	// In posting order the writer keeps version 3, readable by older code.
	buf.Reset()
	if err := WriteDirectory(&buf, moved[1:], testID); err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(buf.Bytes()[8:]); v != dirVersion3 {
		t.Fatalf("ordered entries written as version %d, want 3", v)
	}
}

// TestVersion1 checks that version 1 directories and file headers (the
// page-aligned layout) are still read, and that a version 1 directory must
// be page-aligned.
func TestVersion1(t *testing.T) {
	aligned := []Entry{{Offset: PageSize, Bytes: 100, Count: 3}, {Offset: 2 * PageSize, Bytes: PageSize + 1, Count: 9}, {Offset: 4 * PageSize, Bytes: 28}}
	var buf bytes.Buffer
	if err := writeDirectory(&buf, aligned, dirVersion1, testID); err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(buf.Bytes()[8:]); v != 1 {
		t.Fatalf("wrote version %d", v)
	}
	got, err := ReadDirectory(bytes.NewReader(buf.Bytes()))
	if err != nil || !slices.Equal(got.Entries, aligned) || got.BuildID != ([16]byte{}) {
		t.Fatalf("version 1 directory: %v, %v", got, err)
	}
	unaligned := []Entry{{Offset: PageSize + 8, Bytes: 100}}
	if err := writeDirectory(&bytes.Buffer{}, unaligned, dirVersion1, testID); err == nil {
		t.Fatal("unaligned version 1 directory written")
	}
	if err := writeDirectory(&bytes.Buffer{}, unaligned, 5, testID); err == nil {
		t.Fatal("version 5 directory written")
	}
	// Same bytes with the version patched to 1 (and the CRC fixed up):
	// rejected by the reader too.
	buf.Reset()
	if err := WriteDirectory(&buf, unaligned, testID); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	binary.LittleEndian.PutUint32(raw[8:], dirVersion1)
	putCRC(raw[len(raw)-4:], crc32c(raw[:len(raw)-4]))
	if _, err := ReadDirectory(bytes.NewReader(raw)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unaligned version 1 directory read: %v", err)
	}

	for v, ok := range map[uint32]bool{0: false, 1: true, 2: true, 3: true, 4: true, 5: false} {
		h, err := ReadFileHeader(encodeFileHeader(FileHeader{Version: v, Codec: CodecHuff, RowBytes: 128}))
		if ok && (err != nil || h.Version != v) {
			t.Errorf("file version %d: %+v %v", v, h, err)
		}
		if want := map[bool]error{true: ErrVersion, false: ErrCorrupt}[v > fileVersion4]; !ok && !errors.Is(err, want) {
			t.Errorf("file version %d: %v, want %v", v, err, want)
		}
	}
}

// The build id round-trips through the version 4 file header; a table
// long enough to reach the id's bytes is refused.
func TestFileHeaderBuildID(t *testing.T) {
	h, err := ReadFileHeader(encodeFileHeader(FileHeader{Version: fileVersion4, Codec: CodecHuff, RowBytes: 128, BuildID: testID}))
	if err != nil || h.BuildID != testID {
		t.Fatalf("build id %x, want %x (%v)", h.BuildID, testID, err)
	}
	p := encodeFileHeader(FileHeader{Version: fileVersion4, Codec: CodecHuff, RowBytes: 128, BuildID: testID})
	binary.LittleEndian.PutUint32(p[fileHdrTableLen:], MaxTableBytes+1)
	putCRC(p[fileHdrCRCOff:], crc32c(p[:fileHdrCRCOff]))
	if _, err := ReadFileHeader(p); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("table over the id: %v", err)
	}
}

func TestEntrySize(t *testing.T) {
	if got := entrySize(); got != 16 {
		t.Fatalf("Entry is %d bytes, want 16", got)
	}
}

func TestParseCodec(t *testing.T) {
	for _, c := range Codecs() {
		got, err := ParseCodec(c.String())
		if err != nil || got != c {
			t.Fatalf("ParseCodec(%q) = %v, %v", c.String(), got, err)
		}
	}
	if c, err := ParseCodec("default"); err != nil || c != DefaultCodec {
		t.Fatalf("default: %v %v", c, err)
	}
	if _, err := ParseCodec("lz4"); err == nil {
		t.Fatal("unknown codec parsed")
	}
}

// tinyFile is the golden file: four codec-none postings of dim-4 uint8
// vectors, then one zstd posting (written by a second writer and spliced
// in, as extents are self-describing). Postings 0-2 are small and share the
// first page; posting 3 (4028 bytes, one page) would straddle into a second
// page after them, so it is pushed to the next page boundary.
func tinyFile(t testing.TB) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, 4, CodecNone, nil, testID)
	if err != nil {
		t.Fatal(err)
	}
	big := posting{make([]uint32, 800), make([]byte, 800*4)}
	for i := range big.ids {
		big.ids[i] = uint32(i)
		copy(big.rows[i*4:], []byte{byte(i), byte(i >> 8), 1, 2})
	}
	adds := []posting{
		{[]uint32{300, 5, 17}, []byte{30, 31, 32, 33, 5, 6, 7, 8, 17, 0, 255, 1}},
		{[]uint32{42}, []byte{1, 2, 3, 4}},
		{[]uint32{}, []byte{}},
		big,
	}
	for _, p := range adds {
		if _, err := w.Add(p.ids, p.rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	var zbuf bytes.Buffer
	zw, err := NewWriter(&zbuf, 4, CodecZstd, nil, testID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Add([]uint32{1000, 1001, 1003}, bytes.Repeat([]byte{7, 7, 7, 9}, 3)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Finish(); err != nil {
		t.Fatal(err)
	}
	buf.Write(zbuf.Bytes()[PageSize:])
	return buf.Bytes()
}

func TestDescribeGolden(t *testing.T) {
	var out bytes.Buffer
	if err := Describe(&out, tinyFile(t)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	golden := filepath.Join("testdata", "tiny.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./posting -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("Describe output differs from %s (run with -update if intended):\n%s", golden, out.String())
	}
}

func TestDescribeReportsCorruption(t *testing.T) {
	f := tinyFile(t)
	f[PageSize+ExtentHeaderSize] ^= 1 // first id byte of posting 0
	var out bytes.Buffer
	if err := Describe(&out, f); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v", err)
	}
	if err := Describe(&out, f[:100]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short file: err %v", err)
	}
	good := tinyFile(t)
	// Posting 1 starts right after posting 0 (44 bytes at 4096); posting 2
	// ends at 4201, then padding runs to 8192.
	for name, f := range map[string][]byte{
		"nonzero padding":     func() []byte { f := bytes.Clone(good); f[8000] = 1; return f }(),
		"zero page start":     func() []byte { f := bytes.Clone(good); f[2*PageSize] = 0; return f }(),
		"not whole pages":     good[:len(good)-1],
		"extent past the end": good[:2*PageSize+100],
	} {
		out.Reset()
		if err := Describe(&out, f); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v\n%s", name, err, out.String())
		}
	}
}

func FuzzDecode(f *testing.F) {
	shared, _ := smallFile(f, CodecHuffShared)
	h, err := ReadFileHeader(shared)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range Codecs() {
		file, entries := smallFile(f, c)
		for _, e := range entries {
			f.Add(bytes.Clone(file[e.Offset:e.Offset+uint64(e.Bytes)]), e.Count, false)
		}
	}
	f.Fuzz(func(t *testing.T, ext []byte, count uint32, fixCRC bool) {
		// With fixCRC the fuzzer's bytes get a valid checksum, so the
		// parsing behind the CRC check is exercised too.
		if fixCRC && len(ext) >= extentOverhead {
			ext = bytes.Clone(ext)
			body := ext[:len(ext)-4]
			putCRC(ext[len(body):], crc32c(body))
		}
		e := Entry{Offset: PageSize, Bytes: uint32(len(ext)), Count: count}
		d, _ := NewDecoder(16)
		d.SetTable(h.Table) // huff-shared extents decode with the seed file's table
		defer d.Close()
		ids, rows, err := d.Decode(ext, e)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrVersion: %v", err)
			}
			return
		}
		if len(ids) != int(count) || len(rows) != int(count)*16 {
			t.Fatalf("decoded %d ids, %d row bytes for count %d", len(ids), len(rows), count)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("ids not strictly ascending: %v", ids)
			}
		}
	})
}

func FuzzReadDirectory(f *testing.F) {
	_, entries := smallFile(f, CodecNone)
	var buf bytes.Buffer
	if err := WriteDirectory(&buf, entries, testID); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	buf.Reset()
	aligned := []Entry{{Offset: PageSize, Bytes: 100, Count: 3}, {Offset: 2 * PageSize, Bytes: 28}}
	if err := writeDirectory(&buf, aligned, dirVersion1, testID); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("SPANNDIR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ReadDirectory(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrVersion: %v", err)
			}
			return
		}
		// Accepted input re-encodes to itself under its own version.
		var out bytes.Buffer
		if err := writeDirectory(&out, d.Entries, binary.LittleEndian.Uint32(b[8:]), d.BuildID); err != nil {
			t.Fatalf("accepted directory does not re-encode: %v", err)
		}
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatal("accepted directory re-encodes differently")
		}
	})
}

// BenchmarkDecode decodes one SIFT-like posting of 56 vectors of 128 bytes
// per codec (SetBytes counts decoded vector bytes).
//
//	go test ./posting -run '^$' -bench 'Decode$'
func BenchmarkDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	p := posting{distinctIDs(rng, 56), clusteredRows(rng, 56, 128)}
	for _, c := range Codecs() {
		b.Run(c.String(), func(b *testing.B) {
			file, entries := writeFile(b, []posting{p}, 128, c)
			e := entries[0]
			ext := extentOf(file, e)
			d, _ := newFileDecoder(file, 128)
			defer d.Close()
			if _, _, err := d.Decode(ext, e); err != nil { // warm-up grows scratch
				b.Fatal(err)
			}
			b.SetBytes(int64(len(p.rows)))
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ResetTimer()
			cpu0 := threadCPU()
			for range b.N {
				if _, _, err := d.Decode(ext, e); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(e.Bytes)/56, "B/vec")
		})
	}
}

// testTable trains a shared table from sample for CodecHuffShared (from a
// skewed stand-in when sample does not compress), and is nil otherwise.
func testTable(t testing.TB, c Codec, sample []byte) *Table {
	t.Helper()
	if c != CodecHuffShared {
		return nil
	}
	tb, err := TrainTable(sample)
	if errors.Is(err, ErrNoTable) {
		skewed := make([]byte, 4096)
		for i := range skewed {
			skewed[i] = byte(i % 7 * (i % 3))
		}
		tb, err = TrainTable(skewed)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// newFileDecoder is a Decoder with the shared table of file's header.
func newFileDecoder(file []byte, rowBytes int) (*Decoder, error) {
	h, err := ReadFileHeader(file)
	if err != nil {
		return nil, err
	}
	d, err := NewDecoder(rowBytes)
	if err != nil {
		return nil, err
	}
	d.SetTable(h.Table)
	return d, nil
}

func TestSharedTable(t *testing.T) {
	if _, err := TrainTable(nil); err == nil || !strings.Contains(err.Error(), "empty training sample") {
		t.Errorf("empty sample: %v", err)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	if _, err := TrainTable(randomRows(rng, 500, 128)); !errors.Is(err, ErrNoTable) {
		t.Errorf("random sample: %v, want ErrNoTable", err)
	}
	sample := clusteredRows(rng, 500, 128)
	tb, err := TrainTable(sample)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseTable(tb.Bytes())
	if err != nil || !bytes.Equal(back.Bytes(), tb.Bytes()) {
		t.Fatalf("ParseTable(Bytes()): %v", err)
	}
	for _, raw := range [][]byte{nil, {0xff}, bytes.Repeat([]byte{0xff}, MaxTableBytes+1), append(bytes.Clone(tb.Bytes()), 0)} {
		if _, err := ParseTable(raw); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ParseTable(%d bytes): %v, want ErrCorrupt", len(raw), err)
		}
	}
	// The writer needs a trained table exactly for huff-shared.
	for _, c := range []struct {
		codec Codec
		table *Table
		want  string
	}{
		{CodecHuffShared, nil, "takes a shared table"},
		{CodecHuff, tb, "takes a shared table"},
	} {
		if _, err := NewWriter(&bytes.Buffer{}, 128, c.codec, c.table, testID); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewWriter(%s, table %v): %v, want %q", c.codec, c.table != nil, err, c.want)
		}
	}
	// A table parsed back from a file header encodes exactly as the
	// trained one (an updated index writes postings with it).
	var viaTrained, viaParsed bytes.Buffer
	for _, c := range []struct {
		table *Table
		out   *bytes.Buffer
	}{{tb, &viaTrained}, {back, &viaParsed}} {
		w, err := NewWriter(c.out, 128, CodecHuffShared, c.table, testID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Add(distinctIDs(rand.New(rand.NewPCG(1, 1)), 40), clusteredRows(rand.New(rand.NewPCG(2, 2)), 40, 128)); err != nil {
			t.Fatal(err)
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(viaTrained.Bytes(), viaParsed.Bytes()) {
		t.Fatal("a parsed table encodes differently from the trained one")
	}
	// Postings coded with it: the table is in the header, not in the extents,
	// and a decoder without it reports corruption instead of guessing.
	ps := []posting{{distinctIDs(rng, 60), clusteredRows(rng, 60, 128)}, {distinctIDs(rng, 9), clusteredRows(rng, 9, 128)}}
	file, entries := writeFile(t, ps, 128, CodecHuffShared)
	h, err := ReadFileHeader(file)
	if err != nil || h.Table == nil || h.Version != fileVersion4 || h.Codec != CodecHuffShared || h.BuildID != testID {
		t.Fatalf("header %+v, %v", h, err)
	}
	decodeAll(t, file, entries, ps, 128)
	d, _ := NewDecoder(128)
	if _, _, err := d.Decode(extentOf(file, entries[0]), entries[0]); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no shared table") {
		t.Errorf("decode without the table: %v", err)
	}
	// Header damage: a table length past the page, a shared codec with no
	// table, a flipped table byte (CRC recomputed) are all rejected.
	for name, damage := range map[string]func(p []byte){
		"length": func(p []byte) { binary.LittleEndian.PutUint32(p[fileHdrTableLen:], MaxTableBytes+1) },
		"no table": func(p []byte) {
			binary.LittleEndian.PutUint32(p[fileHdrTableLen:], 0)
			clear(p[fileHdrTableOff:fileHdrCRCOff])
		},
		"table":    func(p []byte) { p[fileHdrTableOff] ^= 0x80 },
		"trailing": func(p []byte) { p[fileHdrTableOff+len(tb.Bytes())+3] = 1 },
	} {
		p := bytes.Clone(file[:PageSize])
		damage(p)
		putCRC(p[fileHdrCRCOff:], crc32c(p[:fileHdrCRCOff]))
		if _, err := ReadFileHeader(p); !errors.Is(err, ErrCorrupt) {
			t.Errorf("header damage %q: %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzReadFileHeader mutates the first fuzzHdrBytes bytes of page 0 (the
// fields and the shared table); the rest of the page is zero, which keeps
// inputs small enough for the fuzzer to minimise.
func FuzzReadFileHeader(f *testing.F) {
	const fuzzHdrBytes = 512
	for _, c := range []Codec{CodecNone, CodecHuffShared} {
		file, _ := smallFile(f, c)
		f.Add(bytes.Clone(file[:fuzzHdrBytes]), true)
	}
	f.Add(encodeFileHeader(FileHeader{Version: fileVersion2, Codec: CodecHuff, RowBytes: 128})[:fuzzHdrBytes], true)
	f.Fuzz(func(t *testing.T, head []byte, fixCRC bool) {
		page := make([]byte, PageSize)
		copy(page[:fileHdrCRCOff], head)
		if fixCRC {
			putCRC(page[fileHdrCRCOff:], crc32c(page[:fileHdrCRCOff]))
		}
		h, err := ReadFileHeader(page)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrVersion: %v", err)
			}
			return
		}
		// An accepted header re-encodes to the same page.
		if h.Version == fileVersion3 && !bytes.Equal(encodeFileHeader(h), page) {
			t.Fatalf("accepted header %+v does not re-encode to itself", h)
		}
	})
}
