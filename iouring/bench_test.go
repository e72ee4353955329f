//go:build linux

package iouring

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// benchFileSize is large enough that random 4 KiB reads rarely repeat, and
// O_DIRECT keeps the page cache out of the measurement.
const benchFileSize = 256 << 20

// The benchmark file is written once per test binary (so -count 5 does not
// rewrite 256 MiB five times, and later runs do not compete with write-back
// of the first) and removed by TestMain.
var (
	benchOnce sync.Once
	benchDir  string
	benchPath string
	benchErr  error
	// benchSeed gives every sub-benchmark run its own offsets, so no variant
	// profits from blocks an earlier one pulled into the host's cache.
	benchSeed atomic.Uint64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchFile(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "iouring-bench-")
		if benchErr == nil {
			benchPath = filepath.Join(benchDir, "postings.bench")
			benchErr = writeBenchFile(benchPath)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchPath
}

func writeBenchFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	x := uint64(0x9E3779B97F4A7C15)
	for off := 0; off < benchFileSize; off += len(chunk) {
		for i := 0; i+8 <= len(chunk); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			for k := 0; k < 8; k++ {
				chunk[i+k] = byte(x >> (8 * k))
			}
		}
		if _, err := f.Write(chunk); err != nil {
			return err
		}
	}
	// Flush dirty pages now, so O_DIRECT reads do not write them back
	// during the measurement.
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// BenchmarkRead measures one batch of random page-aligned reads per op.
// backend=uring, backend=aio and backend=pread are what Open picks (in that
// order of preference); the other names
// measure design choices: uring without a registered file, and pread with 1
// (sequential), 2, 4 or 16 concurrent preads instead of defaultPreadWorkers.
func BenchmarkRead(b *testing.B) {
	path := benchFile(b)
	type variant struct {
		name string
		open func(fd int) (Reader, error)
	}
	variants := []variant{
		{"uring-nofixed", func(fd int) (Reader, error) { return newUring(fd, path, DefaultDepth, false) }},
		{"uring", func(fd int) (Reader, error) { return newUring(fd, path, DefaultDepth, true) }},
		{"aio", func(fd int) (Reader, error) { return newAIO(fd, path, DefaultDepth) }},
		{"pread", func(fd int) (Reader, error) { return newPread(fd, path, defaultPreadWorkers), nil }},
		{"pread-seq", func(fd int) (Reader, error) { return newPread(fd, path, 1), nil }},
		{"pread-w2", func(fd int) (Reader, error) { return newPread(fd, path, 2), nil }},
		{"pread-w4", func(fd int) (Reader, error) { return newPread(fd, path, 4), nil }},
		{"pread-w16", func(fd int) (Reader, error) { return newPread(fd, path, 16), nil }},
	}
	// Variants of one shape run back to back, so drift in the (shared,
	// virtual) disk's speed hits them alike.
	for _, batch := range []int{16, 64} {
		for _, size := range []int{4096, 16384} {
			for _, v := range variants {
				name := fmt.Sprintf("backend=%s/batch=%d/size=%d", v.name, batch, size)
				b.Run(name, func(b *testing.B) {
					fd, direct, err := openDirect(path)
					if err != nil {
						b.Fatal(err)
					}
					if !direct {
						b.Logf("O_DIRECT unsupported here: reads hit the page cache")
					}
					r, err := v.open(fd)
					if err != nil {
						closeFd(fd)
						b.Skipf("backend unavailable: %v", err)
					}
					defer r.Close()
					buf, err := AlignedBuffer(batch * size)
					if err != nil {
						b.Fatal(err)
					}
					defer FreeBuffer(buf)
					reqs := make([]Request, batch)
					pages := uint64((benchFileSize - size) / page)
					x := 0x2545F4914F6CDD1D + benchSeed.Add(1)*0x9E3779B97F4A7C15
					b.SetBytes(int64(batch * size))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						for j := range reqs {
							x ^= x << 13
							x ^= x >> 7
							x ^= x << 17
							reqs[j] = Request{Offset: int64(x%pages) * page, Buf: buf[j*size : (j+1)*size]}
						}
						if err := r.Read(reqs); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N)*float64(batch)/b.Elapsed().Seconds(), "reads/s")
				})
			}
		}
	}
}
