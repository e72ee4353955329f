package posting

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"

	"github.com/gospann/spann/internal/vec"
	"github.com/klauspost/compress/zstd"
)

// Realistic postings for codec measurements, built from real SIFT vectors
// the way SPANN builds them: realVectors base vectors, realHeads of them
// drawn at random as heads, and every vector assigned to its realReplicas
// nearest heads (no RNG pruning), giving postings of about
// realVectors*realReplicas/realHeads = 58 vectors, close to SPTAG's 56 on
// SIFT. The nearest heads are searched among the heads of the vector's 3
// nearest coarse cells (100 random heads as coarse centroids), which keeps
// the build to seconds; the approximation only ever loosens clusters, so the
// compression measured is if anything pessimistic.
const (
	realVectors  = 200_000
	realHeads    = 24_000
	realReplicas = 7
	realCoarse   = 100
	realProbe    = 3
	realDim      = 128
)

var realSIFT = filepath.Join("..", "data", "realsift-1M", "base.u8bin")

type realPosting struct {
	ids  []uint32
	rows []byte
}

var (
	realOnce     sync.Once
	realPostings []realPosting
	realErr      error
)

func loadRealPostings(tb testing.TB) []realPosting {
	tb.Helper()
	realOnce.Do(func() { realPostings, realErr = buildRealPostings() })
	if realErr != nil {
		tb.Skipf("real SIFT postings unavailable: %v", realErr)
	}
	return realPostings
}

func readU8Bin(path string, n int) ([]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	total, dim := int(binary.LittleEndian.Uint32(hdr[:])), int(binary.LittleEndian.Uint32(hdr[4:]))
	n = min(n, total)
	data := make([]byte, n*dim)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return data, dim, nil
}

func buildRealPostings() ([]realPosting, error) {
	data, dim, err := readU8Bin(realSIFT, realVectors)
	if err != nil {
		return nil, err
	}
	if dim != realDim {
		return nil, fmt.Errorf("dim %d, want %d", dim, realDim)
	}
	n := len(data) / dim
	row := func(i int) []byte { return data[i*dim : (i+1)*dim] }
	rng := rand.New(rand.NewPCG(1, 2))
	heads := rng.Perm(n)[:realHeads]
	coarse := heads[:realCoarse]

	nearest := func(q []byte, cands []int, k int, out []int) []int {
		type hd struct {
			d uint32
			i int
		}
		best := make([]hd, 0, k+1)
		for _, c := range cands {
			d := vec.L2U8(q, row(c))
			if len(best) == k && d >= best[k-1].d {
				continue
			}
			pos := sort.Search(len(best), func(j int) bool { return best[j].d > d })
			best = append(best, hd{})
			copy(best[pos+1:], best[pos:])
			best[pos] = hd{d, c}
			if len(best) > k {
				best = best[:k]
			}
		}
		out = out[:0]
		for _, b := range best {
			out = append(out, b.i)
		}
		return out
	}

	cell := make([][]int, realCoarse) // heads (as base indices) per coarse cell
	coarseIdx := make(map[int]int, realCoarse)
	for ci, c := range coarse {
		coarseIdx[c] = ci
	}
	for _, h := range heads {
		c := nearest(row(h), coarse, 1, nil)[0]
		cell[coarseIdx[c]] = append(cell[coarseIdx[c]], h)
	}

	assign := make([][]int, n) // nearest heads of every vector
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cands, probe []int
			for i := w; i < n; i += workers {
				probe = nearest(row(i), coarse, realProbe, probe)
				cands = cands[:0]
				for _, c := range probe {
					cands = append(cands, cell[coarseIdx[c]]...)
				}
				assign[i] = nearest(row(i), cands, realReplicas, nil)
			}
		}()
	}
	wg.Wait()

	members := make(map[int][]uint32, realHeads)
	for i, hs := range assign {
		for _, h := range hs {
			members[h] = append(members[h], uint32(i))
		}
	}
	out := make([]realPosting, 0, realHeads)
	for _, h := range heads { // head order = random order, as in SPANN
		ids := members[h]
		if len(ids) == 0 {
			continue
		}
		rng.Shuffle(len(ids), func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
		rows := make([]byte, 0, len(ids)*dim)
		for _, id := range ids {
			rows = append(rows, row(int(id))...)
		}
		out = append(out, realPosting{ids, rows})
	}
	return out, nil
}

// encodedPostings writes ps with codec (and zstd level, 0 = default) to
// memory and returns the file and its entries.
func encodedPostings(tb testing.TB, ps []realPosting, rowBytes int, c Codec, lvl zstd.EncoderLevel) ([]byte, []Entry) {
	tb.Helper()
	var buf bytes.Buffer
	var sample []byte
	for i := 0; i < len(ps) && len(sample) < 200_000; i += 10 {
		sample = append(sample, ps[i].rows...)
	}
	w, err := NewWriter(&buf, rowBytes, c, testTable(tb, c, sample), testID)
	if err != nil {
		tb.Fatal(err)
	}
	w.setZstdLevel(lvl)
	entries := make([]Entry, 0, len(ps))
	for _, p := range ps {
		e, err := w.Add(p.ids, p.rows)
		if err != nil {
			tb.Fatal(err)
		}
		entries = append(entries, e)
	}
	if err := w.Finish(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), entries
}

// BenchmarkRealPostings measures every codec on realistic SIFT postings:
// bytes per vector (whole extent: header, ids, rows, CRC), postings-file
// bytes per vector (packed, and what the page-aligned version 1 layout
// would take), mean pages per posting, the page histogram, and single-threaded decode speed (ns per
// posting; b.SetBytes counts decoded vector bytes, so MB/s is decode
// throughput).
//
//	go test ./posting -run '^$' -bench RealPostings -benchtime 3x -count 3
func BenchmarkRealPostings(b *testing.B) {
	ps := loadRealPostings(b)
	type variant struct {
		name string
		c    Codec
		lvl  zstd.EncoderLevel
	}
	var vs []variant
	for _, c := range Codecs() {
		vs = append(vs, variant{c.String(), c, 0})
	}
	for _, c := range []Codec{CodecZstd, CodecZstdPlanes} {
		vs = append(vs,
			variant{c.String() + "-fastest", c, zstd.SpeedFastest},
			variant{c.String() + "-best", c, zstd.SpeedBestCompression})
	}
	for _, v := range vs {
		var file []byte
		var entries []Entry
		b.Run(v.name, func(b *testing.B) {
			if file == nil { // encode once per variant, only if it is selected
				file, entries = encodedPostings(b, ps, realDim, v.c, v.lvl)
			}
			var vecs, used, pages, idBytes uint64
			alignedFile := uint64(PageSize) // file size under version 1 (every extent page-aligned)
			var hist [4]int
			for _, e := range entries {
				vecs += uint64(e.Count)
				used += uint64(e.Bytes)
				pages += uint64(e.Pages())
				alignedFile += uint64(minPages(e.Bytes)) * PageSize
				hist[min(int(e.Pages()), 3)]++
				idBytes += uint64(binary.LittleEndian.Uint32(file[e.Offset+16:]))
			}
			d, err := newFileDecoder(file, realDim)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			b.SetBytes(int64(vecs) * realDim)
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ResetTimer()
			cpu0 := threadCPU()
			for range b.N {
				for _, e := range entries {
					read := file[e.ReadOffset() : e.ReadOffset()+uint64(e.ReadBytes())]
					if _, _, err := d.Decode(read[e.Offset-e.ReadOffset():], e); err != nil {
						b.Fatal(err)
					}
				}
			}
			cpu := threadCPU() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(entries)), "ns/posting")
			b.ReportMetric(float64(cpu)/float64(b.N)/float64(len(entries)), "cpu-ns/posting")
			b.ReportMetric(float64(used)/float64(vecs), "B/vec")
			b.ReportMetric(float64(len(file))/float64(vecs), "fileB/vec")
			b.ReportMetric(float64(alignedFile)/float64(vecs), "alignedFileB/vec")
			b.ReportMetric(float64(idBytes)/float64(vecs), "idB/vec")
			b.ReportMetric(float64(pages)/float64(len(entries)), "pages/posting")
			b.ReportMetric(float64(hist[1])/float64(len(entries)), "frac1page")
			b.ReportMetric(float64(hist[3])/float64(len(entries)), "frac3+pages")
		})
	}
	b.Logf("%d postings, %.1f vectors/posting", len(ps), float64(realVectors*realReplicas)/float64(len(ps)))
}
