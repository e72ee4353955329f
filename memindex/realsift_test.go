//go:build linux

package memindex

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospann/spann/internal/vec"
	"golang.org/x/sys/unix"
)

// TestRealsiftHeads measures the graph on a stand-in for SPANN's heads: a
// seeded uniform sample of realsift-1M's base vectors. It is slow (a
// minute or more), so it only runs when MEMINDEX_REALSIFT=1:
//
//	MEMINDEX_REALSIFT=1 go test -run RealsiftHeads -v -timeout 1h ./memindex
//
// Optional overrides: MEMINDEX_HEADS (default 120000), MEMINDEX_DEGREE,
// MEMINDEX_L, MEMINDEX_ALPHA, MEMINDEX_PASSES, MEMINDEX_THREADS (default 2),
// MEMINDEX_BUDGETS (comma-separated search list sizes).
func TestRealsiftHeads(t *testing.T) {
	if os.Getenv("MEMINDEX_REALSIFT") != "1" {
		t.Skip("set MEMINDEX_REALSIFT=1 to run the realsift measurement")
	}
	const dir = "../data/realsift-1M/"
	if _, err := os.Stat(dir + "base.u8bin"); err != nil {
		t.Skipf("realsift-1M not present: %v", err)
	}
	heads := envInt(t, "MEMINDEX_HEADS", 120000)
	p := Params{
		Degree:    envInt(t, "MEMINDEX_DEGREE", 0),
		BuildList: envInt(t, "MEMINDEX_L", 0),
		Passes:    envInt(t, "MEMINDEX_PASSES", 0),
		Threads:   envInt(t, "MEMINDEX_THREADS", 2),
		Seed:      1,
	}
	if s := os.Getenv("MEMINDEX_ALPHA"); s != "" {
		a, err := strconv.ParseFloat(s, 32)
		if err != nil {
			t.Fatal(err)
		}
		p.Alpha = float32(a)
	}
	budgets := []int{16, 24, 32, 48, 64, 80, 96, 128, 160}
	if s := os.Getenv("MEMINDEX_BUDGETS"); s != "" {
		budgets = budgets[:0]
		for _, f := range strings.Split(s, ",") {
			b, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			budgets = append(budgets, b)
		}
	}

	ms := []int{16, 32, 64}
	if s := os.Getenv("MEMINDEX_MS"); s != "" {
		ms = ms[:0]
		for _, f := range strings.Split(s, ",") {
			m, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
	}
	const dim = 128
	f, err := os.Open(dir + "base.u8bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, fdim := readU8binHeader(t, f)
	if fdim != dim {
		t.Fatalf("dim %d", fdim)
	}
	rng := rand.New(rand.NewPCG(42, 42))
	perm := rng.Perm(total)
	headIDs := slices.Clone(perm[:heads])
	slices.Sort(headIDs)
	baseQueryIDs := perm[heads : heads+1000] // non-head base rows
	vectors := readRows(t, f, headIDs, dim)
	baseQueries := readRows(t, f, baseQueryIDs, dim)
	qf, err := os.Open(dir + "query.u8bin")
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	readU8binHeader(t, qf)
	queries := readRows(t, qf, seq(1000), dim)

	sp := mustSpace[uint8](t, vec.L2)
	cpu0 := cpuTime(unix.RUSAGE_SELF)
	start := time.Now()
	g, err := Build(sp, vectors, dim, p)
	if err != nil {
		t.Fatal(err)
	}
	buildTime := time.Since(start)
	buildCPU := cpuTime(unix.RUSAGE_SELF) - cpu0
	pd, _ := p.withDefaults()
	t.Logf("build: %d heads, Degree=%d BuildList=%d Alpha=%.2f Passes=%d Threads=%d: wall %.1f s, process CPU %.1f s, reachable %d, mean degree %.1f",
		heads, pd.Degree, pd.BuildList, pd.Alpha, pd.Passes, pd.Threads, buildTime.Seconds(), buildCPU.Seconds(), g.Reachable(), meanDegree(g))

	for _, set := range []struct {
		name string
		qs   []uint8
	}{{"query.u8bin", queries}, {"base rows", baseQueries}} {
		gt := groundTruth(t, sp, vectors, set.qs, dim, 64)
		t.Logf("%s: | m | budget L | recall@m | distances/query | µs/query (thread CPU) | µs/query (wall) |", set.name)
		for _, m := range ms {
			for _, L := range budgets {
				if L < m {
					continue
				}
				r, cpu, wall, dists := measure(g, set.qs, gt, dim, m, L)
				t.Logf("%s: | %d | %d | %.4f | %.0f | %.1f | %.1f |", set.name, m, L, r, dists, cpu, wall)
			}
		}
	}
}

// measure returns recall@m and the median per-query thread CPU time and wall
// time (µs) over three timed runs. Thread CPU time is what one core spends
// and is robust to other processes sharing the machine.
func measure(g *Graph[uint8], qs []uint8, gt [][]Neighbor, dim, m, L int) (recall, cpuUS, wallUS, dists float64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := g.NewSearcher()
	nq := len(qs) / dim
	for i := 0; i < 50; i++ { // warm up
		s.Search(qs[i*dim:(i+1)*dim], m, L)
	}
	// Time the searches alone, median of three runs, then score.
	times := make([]time.Duration, 3)
	cpus := make([]time.Duration, 3)
	for rep := range times {
		c0 := cpuTime(unix.RUSAGE_THREAD)
		start := time.Now()
		for i := 0; i < nq; i++ {
			s.Search(qs[i*dim:(i+1)*dim], m, L)
		}
		times[rep] = time.Since(start)
		cpus[rep] = cpuTime(unix.RUSAGE_THREAD) - c0
	}
	slices.Sort(times)
	slices.Sort(cpus)
	hits := 0
	d0 := s.distCount
	for i := 0; i < nq; i++ {
		hits += overlap(s.Search(qs[i*dim:(i+1)*dim], m, L), gt[i][:m])
	}
	return float64(hits) / float64(nq*m), float64(cpus[1].Microseconds()) / float64(nq), float64(times[1].Microseconds()) / float64(nq), float64(s.distCount-d0) / float64(nq)
}

// cpuTime returns user+system CPU time of the process or calling thread.
func cpuTime(who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func groundTruth(t *testing.T, sp vec.Space[uint8], vectors, qs []uint8, dim, m int) [][]Neighbor {
	nq := len(qs) / dim
	gt := make([][]Neighbor, nq)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < nq; i += workers {
				r, err := BruteForce(sp, vectors, dim, qs[i*dim:(i+1)*dim], m, nil)
				if err != nil {
					panic(err)
				}
				gt[i] = r
			}
		}()
	}
	wg.Wait()
	return gt
}

func meanDegree[T vec.Elem](g *Graph[T]) float64 {
	sum := 0
	for i := 0; i < g.n; i++ {
		sum += g.count(int32(i))
	}
	return float64(sum) / float64(g.n)
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func readU8binHeader(t *testing.T, f *os.File) (n, dim int) {
	var hdr [8]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		t.Fatal(err)
	}
	return int(binary.LittleEndian.Uint32(hdr[:])), int(binary.LittleEndian.Uint32(hdr[4:]))
}

func readRows(t *testing.T, f *os.File, ids []int, dim int) []uint8 {
	out := make([]uint8, len(ids)*dim)
	for i, id := range ids {
		if _, err := f.ReadAt(out[i*dim:(i+1)*dim], 8+int64(id)*int64(dim)); err != nil {
			t.Fatal(fmt.Errorf("row %d: %w", id, err))
		}
	}
	return out
}
