package datasets

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// streamSink keeps the checksums alive so the compiler cannot drop the reads.
var streamSink uint64

// BenchmarkStream compares the two ways of reading a vector file front to
// back: Stream (pread into a reused block, next block read ahead) and a
// read-only mmap of the whole file. Both touch every byte (a checksum) so
// that the mmap variant really faults its pages in. The file is written
// once (256 MiB); the page cache is warm for both after the first pass, so
// this measures the copy and fault overheads, not the disk.
func BenchmarkStream(b *testing.B) {
	const n, dim = 2 << 20, 128 // 256 MiB of uint8
	p := filepath.Join(b.TempDir(), "s.u8bin")
	if err := Generate(p, GenParams{N: n, Dim: dim, Type: Uint8, Seed: 1, Clusters: 4}, 0, nil); err != nil {
		b.Fatal(err)
	}
	sum := func(rows []byte) (s uint64) {
		for i := 0; i < len(rows); i += 64 {
			s += uint64(rows[i])
		}
		return s
	}
	b.Run("pread-stream", func(b *testing.B) {
		b.SetBytes(n * dim)
		for i := 0; i < b.N; i++ {
			v, err := OpenVectors(p, 0)
			if err != nil {
				b.Fatal(err)
			}
			var s uint64
			if err := v.Stream((8<<20)/dim, func(_ int, rows []byte) error { s += sum(rows); return nil }); err != nil {
				b.Fatal(err)
			}
			v.Close()
			streamSink += s
		}
	})
	b.Run("mmap", func(b *testing.B) {
		b.SetBytes(n * dim)
		for i := 0; i < b.N; i++ {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			m, err := unix.Mmap(int(f.Fd()), 0, 8+n*dim, unix.PROT_READ, unix.MAP_SHARED)
			if err != nil {
				b.Fatal(err)
			}
			unix.Madvise(m, unix.MADV_SEQUENTIAL)
			streamSink += sum(m[8:])
			unix.Munmap(m)
			f.Close()
		}
	})
}
