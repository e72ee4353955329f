package spann

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

func TestCheck(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	r, err := Check(f.index)
	if err != nil {
		t.Fatalf("a sound index: %v (%+v)", err, r)
	}
	if !r.OK() || r.Files != 4 || r.Vectors != 3000 || r.Heads != 300 || r.Postings != 300 || r.Unreachable != 0 || r.HeadsInPostings != 0 {
		t.Fatalf("report %+v", r)
	}
	if r.Entries < int64(r.Vectors-r.Heads) || r.ReplicasMean < 1 || r.ReplicasMean > 4 {
		t.Fatalf("entries %d, replicas %.2f", r.Entries, r.ReplicasMean)
	}

	// A flipped byte inside a posting: the file checksum and that posting
	// are reported, and so are the vectors only it held.
	d := filepath.Join(t.TempDir(), "ix")
	os.Mkdir(d, 0o755)
	ents, _ := os.ReadDir(f.index)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(f.index, e.Name()))
		if e.Name() == indexfile.PostingsFile {
			b[posting.PageSize+30] ^= 0x08
		}
		os.WriteFile(filepath.Join(d, e.Name()), b, 0o644)
	}
	r, err = Check(d)
	if !errors.Is(err, ErrCheckFailed) || r == nil || r.OK() || r.Files != 3 || r.Postings != 299 {
		t.Fatalf("damaged posting: %v, %+v", err, r)
	}
	joined := strings.Join(r.Problems, "\n")
	for _, want := range []string{"postings.bin has SHA-256", "posting 0", "crc"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems %q do not mention %q", joined, want)
		}
	}

	// A posting limit far below the postings' sizes still loses no vector:
	// each vector's nearest head keeps it past the limit.
	lossy := filepath.Join(f.dir, "lossy")
	st, err := Build(context.Background(), BuildOptions{Base: f.base, Out: lossy, Metric: vec.L2, HeadRatio: 0.02,
		Replicas: 4, RNGFactor: 4, ReplicaEps: -1, PostingLimit: 3, Codec: posting.DefaultCodec, Threads: 2, Seed: 3, MemoryBudget: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if st.Dropped == 0 || st.KeptPastLimit == 0 || st.Unstored != 0 {
		t.Fatalf("tight limit: dropped %d, kept past the limit %d, stored nowhere %d", st.Dropped, st.KeptPastLimit, st.Unstored)
	}
	if r, err = Check(lossy); err != nil || r.Unreachable != 0 {
		t.Fatalf("tight limit: %v, %+v", err, r)
	}

	// The accounting itself: vectors 1 and 4 in no posting and not heads
	// (5 neither, but deleted).
	var acc CheckReport
	var probs []string
	acc.Entries = 3
	acc.account([]uint8{1, 0, 2, 0, 0, 0}, []uint32{3}, roaring.BitmapOf(5), func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) })
	if acc.Unreachable != 2 || !slices.Equal(acc.UnreachableIDs, []uint32{1, 4}) || acc.ReplicasMean != 1.5 ||
		len(probs) != 1 || !strings.Contains(probs[0], "2 vectors are neither heads nor in any posting") {
		t.Fatalf("accounting: %+v, problems %q", acc, probs)
	}
	if _, err := Check(filepath.Join(f.dir, "nothing")); err == nil || errors.Is(err, ErrCheckFailed) {
		t.Fatalf("missing index: %v", err)
	}
}
