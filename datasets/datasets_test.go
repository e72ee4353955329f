package datasets

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeRaw(t testing.TB, dir, name string, n, dim uint32, body []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], n)
	binary.LittleEndian.PutUint32(h[4:], dim)
	if err := os.WriteFile(p, append(h[:], body...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVectorRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range []ElemType{Float32, Uint8, Int8} {
		m, err := NewMixture(GenParams{N: 300, Dim: 17, Type: typ, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		rb := 17 * typ.Size()
		data := make([]byte, 300*rb)
		m.Fill(0, 300, data, 2)
		path := filepath.Join(dir, "v"+typ.Ext())
		if err := WriteVectors(path, &Matrix{Type: typ, N: 300, Dim: 17, Data: data}); err != nil {
			t.Fatal(err)
		}
		got, err := LoadVectors(path, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != typ || got.N != 300 || got.Dim != 17 || !bytes.Equal(got.Data, data) {
			t.Fatalf("%s: round trip differs", typ)
		}
		// Streaming in odd-sized blocks sees every row once, in order.
		v, err := OpenVectors(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		var streamed []byte
		next := 0
		if err := v.Stream(37, func(start int, rows []byte) error {
			if start != next {
				t.Fatalf("block starts at %d, want %d", start, next)
			}
			next += len(rows) / rb
			streamed = append(streamed, rows...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(streamed, data) {
			t.Fatalf("%s: stream differs", typ)
		}
		row, err := v.ReadRows(123, 2, nil)
		if err != nil || !bytes.Equal(row, data[123*rb:125*rb]) {
			t.Fatalf("ReadRows: %v", err)
		}
		if err := v.Crop(50); err != nil || v.N != 50 {
			t.Fatalf("crop: %v", err)
		}
		if _, err := v.ReadRows(49, 2, nil); err == nil {
			t.Fatal("read past crop succeeded")
		}
		if err := v.Crop(301); err == nil {
			t.Fatal("crop beyond n succeeded")
		}
		v.Close()
		cropped, err := LoadVectors(path, 0, 10)
		if err != nil || cropped.N != 10 || !bytes.Equal(cropped.Data, data[:10*rb]) {
			t.Fatalf("LoadVectors crop: %v", err)
		}
	}
}

func TestBadVectorFiles(t *testing.T) {
	dir := t.TempDir()
	nan := make([]byte, 2*3*4)
	binary.LittleEndian.PutUint32(nan[4*4:], math.Float32bits(float32(math.NaN())))
	inf := make([]byte, 2*3*4)
	binary.LittleEndian.PutUint32(inf[2*4:], math.Float32bits(float32(math.Inf(-1))))
	cases := []struct {
		name string
		path string
		want []string
	}{
		{"truncated", writeRaw(t, dir, "trunc.u8bin", 10, 4, make([]byte, 39)), []string{"trunc.u8bin", "truncated", "n=10", "dim=4", "48 bytes", "47 bytes"}},
		{"too long", writeRaw(t, dir, "long.fbin", 1, 2, make([]byte, 9)), []string{"long.fbin", "too long", "16 bytes", "17 bytes"}},
		{"n=0", writeRaw(t, dir, "empty.u8bin", 0, 4, nil), []string{"empty.u8bin", "n=0"}},
		{"dim=0", writeRaw(t, dir, "dim0.i8bin", 4, 0, nil), []string{"dim0.i8bin", "dim=0"}},
		{"huge dim", writeRaw(t, dir, "wide.u8bin", 1, 1<<20, nil), []string{"wide.u8bin", "dim=1048576"}},
		{"short header", filepath.Join(dir, "short.u8bin"), []string{"short.u8bin", "shorter than the 8-byte header"}},
		{"unknown extension", filepath.Join(dir, "x.bin"), []string{"x.bin", "extension"}},
		{"missing", filepath.Join(dir, "nope.fbin"), []string{"nope.fbin"}},
	}
	os.WriteFile(filepath.Join(dir, "short.u8bin"), []byte{1, 2, 3}, 0o644)
	for _, c := range cases {
		_, err := LoadVectors(c.path, 0, 0)
		if err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", c.name, err)
		}
	}
	for _, c := range []struct {
		name, file string
		body       []byte
		want       string
	}{
		{"nan", "nan.fbin", nan, "row 1, element 1: NaN"},
		{"inf", "inf.fbin", inf, "row 0, element 2: -Inf"},
	} {
		p := writeRaw(t, dir, c.file, 2, 3, c.body)
		_, err := LoadVectors(p, 0, 0)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s: got %v, want mention of %q", c.name, err, c.want)
		}
	}
	// An explicit type overrides the extension: 8 bytes of body is 2 float32 or 8 uint8.
	p := writeRaw(t, dir, "any.bin", 2, 1, make([]byte, 8))
	if v, err := OpenVectors(p, Float32); err != nil || v.N != 2 {
		t.Errorf("float32 override: %v", err)
	}
	if _, err := OpenVectors(filepath.Join(dir, "any.bin"), Uint8); err == nil {
		t.Error("wrong size accepted")
	}
}

func TestGroundTruthAndResults(t *testing.T) {
	dir := t.TempDir()
	g := &GroundTruth{NQ: 2, K: 3, IDs: []int32{1, 2, 3, 4, 5, 6}, Dists: []float32{0, 1, 2, 3, 4, 5}}
	p := filepath.Join(dir, "gt.bin")
	if err := WriteGroundTruth(p, g); err != nil {
		t.Fatal(err)
	}
	g2, err := ReadGroundTruth(p)
	if err != nil || g2.NQ != 2 || g2.K != 3 || g2.IDs[4] != 5 || g2.Dists[5] != 5 {
		t.Fatalf("gt round trip: %v %+v", err, g2)
	}
	r := &Results{N: 2, K: 2, IDs: []int32{9, 8, 7, -1}}
	rp := filepath.Join(dir, "r.ibin")
	if err := WriteResults(rp, r); err != nil {
		t.Fatal(err)
	}
	r2, err := ReadResults(rp)
	if err != nil || r2.Row(1)[1] != -1 || r2.Row(0)[0] != 9 {
		t.Fatalf("results round trip: %v", err)
	}
	raw, _ := os.ReadFile(p)
	os.WriteFile(p, raw[:len(raw)-1], 0o644)
	if _, err := ReadGroundTruth(p); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated gt: %v", err)
	}
	if _, err := ReadResults(filepath.Join(dir, "missing.ibin")); err == nil {
		t.Error("missing results file accepted")
	}
}

func TestWriterLeavesNothingOnAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.u8bin")
	w, err := CreateVectors(p, Uint8, 4)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte{1, 2, 3, 4})
	if err := w.Write([]byte{1, 2, 3}); err == nil {
		t.Error("partial row accepted")
	}
	w.Abort()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("abort left %d files", len(ents))
	}
}

func writeTexmex(t *testing.T, path string, dim int, elem int, rows int) {
	var b bytes.Buffer
	for i := 0; i < rows; i++ {
		d := dim
		binary.Write(&b, binary.LittleEndian, int32(d))
		for j := 0; j < d*elem; j++ {
			b.WriteByte(byte(i + j))
		}
	}
	os.WriteFile(path, b.Bytes(), 0o644)
}

func TestConvertTexmex(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "x.bvecs")
	writeTexmex(t, src, 5, 1, 4)
	dst := filepath.Join(dir, "x.u8bin")
	n, d, err := ConvertTexmex(src, dst, 3)
	if err != nil || n != 3 || d != 5 {
		t.Fatalf("convert: %v n=%d d=%d", err, n, d)
	}
	m, err := LoadVectors(dst, 0, 0)
	if err != nil || m.N != 3 || m.Row(2)[4] != 6 {
		t.Fatalf("converted file: %v", err)
	}
	isrc := filepath.Join(dir, "gt.ivecs")
	writeTexmex(t, isrc, 2, 4, 3)
	if _, _, err := ConvertTexmex(isrc, filepath.Join(dir, "gt.ibin"), 0); err != nil {
		t.Fatal(err)
	}
	r, err := ReadResults(filepath.Join(dir, "gt.ibin"))
	if err != nil || r.N != 3 || r.K != 2 {
		t.Fatalf("ivecs: %v", err)
	}
	// Every record must have the first record's dimension.
	bad := filepath.Join(dir, "bad.bvecs")
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, int32(2))
	b.Write([]byte{1, 2})
	binary.Write(&b, binary.LittleEndian, int32(3))
	b.Write([]byte{1, 2})
	os.WriteFile(bad, b.Bytes(), 0o644)
	if _, _, err := ConvertTexmex(bad, filepath.Join(dir, "bad.u8bin"), 0); err == nil || !strings.Contains(err.Error(), "record 1 has dimension 3") {
		t.Errorf("inconsistent dims: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.u8bin")); err == nil {
		t.Error("failed conversion left its output")
	}
	tr := filepath.Join(dir, "t.fvecs")
	writeTexmex(t, tr, 4, 4, 2)
	raw, _ := os.ReadFile(tr)
	os.WriteFile(tr, raw[:len(raw)-3], 0o644)
	if _, _, err := ConvertTexmex(tr, filepath.Join(dir, "t.fbin"), 0); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated fvecs: %v", err)
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	p := GenParams{N: 2000, Dim: 32, Type: Uint8, Seed: 42}
	m1, _ := NewMixture(p)
	m2, _ := NewMixture(p)
	a := make([]byte, 2000*32)
	b := make([]byte, 2000*32)
	m1.Fill(0, 2000, a, 1)
	m2.Fill(0, 2000, b, 3)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different thread count: different data")
	}
	part := make([]byte, 100*32)
	m1.Fill(1000, 100, part, 2)
	if !bytes.Equal(part, a[1000*32:1100*32]) {
		t.Fatal("rows depend on where generation starts")
	}
	q := p
	q.Stream = 1
	mq, _ := NewMixture(q)
	c := make([]byte, 2000*32)
	mq.Fill(0, 2000, c, 2)
	if bytes.Equal(a, c) {
		t.Fatal("query stream equals base stream")
	}
	// The data is not uniform noise: values spread, and some clip at 0.
	var zeros, distinct int
	seen := map[byte]bool{}
	for _, x := range a {
		if x == 0 {
			zeros++
		}
		if !seen[x] {
			seen[x] = true
			distinct++
		}
	}
	if distinct < 100 || zeros == 0 {
		t.Errorf("generated values look degenerate: %d distinct, %d zeros", distinct, zeros)
	}
	if _, err := NewMixture(GenParams{N: 0, Dim: 3, Type: Uint8}); err == nil {
		t.Error("n=0 accepted")
	}
	if _, err := NewMixture(GenParams{N: 3, Dim: 3, Type: Uint8, IntrinsicDim: 9}); err == nil {
		t.Error("intrinsic dim > dim accepted")
	}
}

func TestGenerateFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "g.fbin")
	calls := 0
	if err := Generate(p, GenParams{N: 500, Dim: 8, Type: Float32, Seed: 1}, 2, func(d, n int) { calls++ }); err != nil {
		t.Fatal(err)
	}
	m, err := LoadVectors(p, 0, 0)
	if err != nil || m.N != 500 || calls == 0 {
		t.Fatalf("generate: %v calls=%d", err, calls)
	}
}

func FuzzOpenVectors(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 2, 0, 0, 0, 1, 2, 3, 4}, uint8(1))
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0xc0, 0x7f}, uint8(0))
	f.Add([]byte{}, uint8(2))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, typ uint8) {
		et := []ElemType{Float32, Uint8, Int8}[int(typ)%3]
		p := filepath.Join(dir, "f"+et.Ext())
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := LoadVectors(p, 0, 0)
		if err != nil {
			return
		}
		if len(m.Data) != m.N*m.Dim*et.Size() || len(data) != 8+len(m.Data) {
			t.Fatalf("accepted a file of %d bytes as %d×%d %s", len(data), m.N, m.Dim, et)
		}
	})
}

func FuzzReadGroundTruth(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0x80, 0x3f})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "gt.bin")
		os.WriteFile(p, data, 0o644)
		g, err := ReadGroundTruth(p)
		if err == nil && (len(g.IDs) != g.NQ*g.K || len(g.Dists) != g.NQ*g.K) {
			t.Fatal("inconsistent ground truth accepted")
		}
		ReadResults(p)
	})
}

// ReadGroundTruthCols keeps the first cols neighbours of every row, across
// several read blocks, and equals ReadGroundTruth's rows cropped.
func TestReadGroundTruthCols(t *testing.T) {
	const nq, k = 3000, 100 // 2,621 rows per 1 MiB block: two blocks
	g := &GroundTruth{NQ: nq, K: k, IDs: make([]int32, nq*k), Dists: make([]float32, nq*k)}
	for i := range g.IDs {
		g.IDs[i] = int32(i * 7 % 100003)
		g.Dists[i] = float32(i%k) + float32(i/k)/1e4
	}
	p := filepath.Join(t.TempDir(), "gt.bin")
	if err := WriteGroundTruth(p, g); err != nil {
		t.Fatal(err)
	}
	for _, cols := range []int{1, 10, 99, 100, 0, 500} {
		c, err := ReadGroundTruthCols(p, cols)
		if err != nil {
			t.Fatal(err)
		}
		want := cols
		if cols <= 0 || cols > k {
			want = k
		}
		if c.NQ != nq || c.K != want {
			t.Fatalf("cols %d: shape %d×%d, want %d×%d", cols, c.NQ, c.K, nq, want)
		}
		for q := 0; q < nq; q++ {
			ids, dists := c.Row(q)
			fullIDs, fullDists := g.Row(q)
			for j := range want {
				if ids[j] != fullIDs[j] || dists[j] != fullDists[j] {
					t.Fatalf("cols %d: query %d rank %d: (%d, %g), want (%d, %g)", cols, q, j, ids[j], dists[j], fullIDs[j], fullDists[j])
				}
			}
		}
	}
	os.Truncate(p, 8+nq*k*8-4)
	if _, err := ReadGroundTruthCols(p, 10); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated file: %v", err)
	}
}
