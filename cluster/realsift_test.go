package cluster

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gospann/spann/internal/vec"
)

// loadU8bin reads a .u8bin file (uint32 n, uint32 dim, n·dim bytes).
func loadU8bin(t testing.TB, path string) ([]uint8, int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	if len(raw) < 8 {
		t.Fatalf("%s: truncated header", path)
	}
	n := int(binary.LittleEndian.Uint32(raw[0:]))
	dim := int(binary.LittleEndian.Uint32(raw[4:]))
	if len(raw) != 8+n*dim {
		t.Fatalf("%s: %d bytes, header says %d×%d", path, len(raw), n, dim)
	}
	return raw[8:], dim
}

// TestRealSIFT measures SelectHeads on the real SIFT sets. It is a
// measurement, not a unit test: it runs only when SPANN_CLUSTER_REAL is set
// (to "100k", "1M" or "all") and the data files exist. Optional:
// SPANN_CLUSTER_THREADS (default 2), SPANN_CLUSTER_SAMPLE and
// SPANN_CLUSTER_ITERS (Params.SampleSize and Iterations, default when unset),
// SPANN_CLUSTER_NEAREST=1 to also compute the exact nearest-head distribution
// (brute force: about 15 s on 100k, hours on 1M), SPANN_CLUSTER_RANDOM=1 to
// compute those figures for uniformly random heads instead (a baseline).
//
//	SPANN_CLUSTER_REAL=all go test ./cluster -run TestRealSIFT -v -count=1 -timeout 1h
func TestRealSIFT(t *testing.T) {
	which := os.Getenv("SPANN_CLUSTER_REAL")
	if which == "" {
		t.Skip("set SPANN_CLUSTER_REAL=100k|1M|all to measure on realsift")
	}
	threads := 2
	if s := os.Getenv("SPANN_CLUSTER_THREADS"); s != "" {
		var err error
		if threads, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	nearest := os.Getenv("SPANN_CLUSTER_NEAREST") == "1"
	envInt := func(name string) int {
		v, err := strconv.Atoi(os.Getenv(name))
		if err != nil && os.Getenv(name) != "" {
			t.Fatalf("%s: %v", name, err)
		}
		return v
	}
	sample, iters := envInt("SPANN_CLUSTER_SAMPLE"), envInt("SPANN_CLUSTER_ITERS")
	random := os.Getenv("SPANN_CLUSTER_RANDOM") == "1"
	sets := []struct {
		name  string
		heads int
	}{{"100k", 12000}, {"1M", 120000}}
	for _, set := range sets {
		if which != "all" && which != set.name {
			continue
		}
		path := filepath.Join("..", "data", "realsift-"+set.name, "base.u8bin")
		if _, err := os.Stat(path); err != nil {
			t.Logf("skipping %s: %v", set.name, err)
			continue
		}
		data, dim := loadU8bin(t, path)
		sp := mustSpace[uint8](t, vec.L2)
		runtime.GC()
		cpu0 := cpuTime(t)
		start := time.Now()
		heads, leaves, err := selectHeads(sp, data, dim, Params{Heads: set.heads, Threads: threads, Seed: 1, SampleSize: sample, Iterations: iters})
		if err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		cpu := cpuTime(t) - cpu0
		if random {
			// Baseline for the nearest-head figures: uniformly random heads.
			heads = rand.New(rand.NewPCG(1, 2)).Perm(len(data) / dim)[:set.heads]
			slices.Sort(heads)
			t.Logf("  (nearest-head figures below are for %d uniformly random heads)", set.heads)
		}
		ls := statsOf(leaves)
		h := fnv.New64a()
		for _, v := range heads {
			binary.Write(h, binary.LittleEndian, int64(v))
		}
		t.Logf("realsift-%s: %d heads in %.2fs wall, %.2fs CPU (threads=%d, GOMAXPROCS=%d), heads FNV-64a %016x",
			set.name, len(heads), el.Seconds(), cpu.Seconds(), threads, runtime.GOMAXPROCS(0), h.Sum64())
		t.Logf("  leaf sizes: min %d p50 %d mean %.2f p99 %d max %d", ls.min, ls.p50, ls.mean, ls.p99, ls.max)
		if nearest {
			start = time.Now()
			sizes, meanDist := nearestHeads(sp, data, dim, heads, threads)
			ns := statsOf(sizes)
			t.Logf("  nearest-head sizes (all rows): min %d p50 %d mean %.2f p99 %d max %d; mean distance to nearest head %.0f (%.1fs brute force)",
				ns.min, ns.p50, ns.mean, ns.p99, ns.max, meanDist, time.Since(start).Seconds())
		}
		fmt.Println()
	}
}

// cpuTime returns the user+system CPU time this process has used so far.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
