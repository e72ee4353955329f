package posting

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
	w, err := NewWriter(&buf, rowBytes, c)
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
	next := uint64(PageSize)
	for i, e := range entries {
		if e.Offset != next || e.Offset%PageSize != 0 {
			t.Fatalf("entry %d: offset %d, want %d (page-aligned, contiguous)", i, e.Offset, next)
		}
		if want := uint32((e.Bytes + PageSize - 1) / PageSize); e.Pages() != want || e.ReadBytes() != int(want)*PageSize {
			t.Fatalf("entry %d: %d bytes, %d pages", i, e.Bytes, e.Pages())
		}
		if e.Count != uint32(len(ps[i].ids)) {
			t.Fatalf("entry %d: count %d, want %d", i, e.Count, len(ps[i].ids))
		}
		next += uint64(e.ReadBytes())
	}
	if uint64(len(file)) != next || w.Offset() != next {
		t.Fatalf("file is %d bytes (writer offset %d), want %d", len(file), w.Offset(), next)
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

func extentOf(file []byte, e Entry) []byte { return file[e.Offset : e.Offset+uint64(e.ReadBytes())] }

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
			d, err := NewDecoder(rowBytes)
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

// TestPageBoundary checks the exact-fit case: with codec none, 36 rows of
// 112 bytes and one-byte id gaps make an extent of exactly 4096 bytes.
func TestPageBoundary(t *testing.T) {
	const rowBytes = 112
	mk := func(n int) posting {
		ids := make([]uint32, n)
		for i := range ids {
			ids[i] = uint32(i)
		}
		return posting{ids, bytes.Repeat([]byte{1}, n*rowBytes)}
	}
	file, entries := writeFile(t, []posting{mk(36), mk(37), mk(0)}, rowBytes, CodecNone)
	if entries[0].Bytes != PageSize || entries[0].Pages() != 1 {
		t.Fatalf("exact fit: %d bytes, %d pages", entries[0].Bytes, entries[0].Pages())
	}
	if entries[1].Bytes != PageSize+rowBytes+1 || entries[1].Pages() != 2 {
		t.Fatalf("spill: %d bytes, %d pages", entries[1].Bytes, entries[1].Pages())
	}
	if entries[2].Bytes != extentOverhead || entries[2].Pages() != 1 {
		t.Fatalf("empty: %d bytes, %d pages", entries[2].Bytes, entries[2].Pages())
	}
	if entries[1].Offset != 2*PageSize || entries[2].Offset != 4*PageSize {
		t.Fatalf("offsets %d %d", entries[1].Offset, entries[2].Offset)
	}
	d, _ := NewDecoder(rowBytes)
	for _, e := range entries {
		// Decode works on exactly e.Bytes as well as on the whole pages.
		if _, _, err := d.Decode(file[e.Offset:e.Offset+uint64(e.Bytes)], e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriterRejectsBadInput(t *testing.T) {
	if _, err := NewWriter(&bytes.Buffer{}, 0, CodecNone); err == nil {
		t.Fatal("rowBytes 0 accepted")
	}
	if _, err := NewWriter(&bytes.Buffer{}, 4, Codec(200)); err == nil {
		t.Fatal("unknown codec accepted")
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, 4, CodecHuff)
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
	w, err := NewWriter(&failWriter{n: 1}, 4, CodecNone)
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
			d, _ := NewDecoder(16)
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
					d8, _ := NewDecoder(8)
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
		d, _ := NewDecoder(128)
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
		if err := WriteDirectory(&buf, es); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != dirHeaderSize+dirEntrySize*len(es)+4 {
			t.Fatalf("directory of %d entries is %d bytes", len(es), buf.Len())
		}
		got, err := ReadDirectory(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, es) {
			t.Fatalf("got %v, want %v", got, es)
		}
		raw := buf.Bytes()
		for pos := range raw {
			c := bytes.Clone(raw)
			c[pos] ^= 0x04
			if _, err := ReadDirectory(bytes.NewReader(c)); !errors.Is(err, ErrCorrupt) {
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
		"unaligned": {{Offset: PageSize + 1, Bytes: 100}},
		"header":    {{Offset: 0, Bytes: 100}},
		"overlap":   {{Offset: PageSize, Bytes: PageSize + 1}, {Offset: 2 * PageSize, Bytes: 100}},
		"tiny":      {{Offset: PageSize, Bytes: 3}},
	} {
		if err := WriteDirectory(&bytes.Buffer{}, bad); err == nil {
			t.Errorf("%s: WriteDirectory accepted %v", name, bad)
		}
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

// tinyFile is the golden file: 3 postings of dim-4 uint8 vectors with codec
// none plus one zstd posting (written by a second writer and spliced in, as
// extents are self-describing).
func tinyFile(t testing.TB) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, 4, CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	adds := []posting{
		{[]uint32{300, 5, 17}, []byte{30, 31, 32, 33, 5, 6, 7, 8, 17, 0, 255, 1}},
		{[]uint32{42}, []byte{1, 2, 3, 4}},
		{[]uint32{}, []byte{}},
	}
	for _, p := range adds {
		if _, err := w.Add(p.ids, p.rows); err != nil {
			t.Fatal(err)
		}
	}
	var zbuf bytes.Buffer
	zw, err := NewWriter(&zbuf, 4, CodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Add([]uint32{1000, 1001, 1003}, bytes.Repeat([]byte{7, 7, 7, 9}, 3)); err != nil {
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
}

func FuzzDecode(f *testing.F) {
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
		defer d.Close()
		ids, rows, err := d.Decode(ext, e)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
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
	if err := WriteDirectory(&buf, entries); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("SPANNDIR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ReadDirectory(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := WriteDirectory(&out, es); err != nil {
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
			d, _ := NewDecoder(128)
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
