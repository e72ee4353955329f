package build

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/testutil"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/posting"
)

func genBase(t *testing.T, dir string, n, dim int) string {
	t.Helper()
	p := filepath.Join(dir, "base.u8bin")
	if err := datasets.Generate(p, datasets.GenParams{N: n, Dim: dim, Type: datasets.Uint8, Seed: 9, Clusters: 8}, 2, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// readPostings decodes every posting of an index through its directory.
func readPostings(t *testing.T, dir string, rowBytes int) (map[uint32][]int, [][]uint32) {
	t.Helper()
	df, err := os.Open(filepath.Join(dir, DirectoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	pdir, err := posting.ReadDirectory(df)
	if err != nil {
		t.Fatal(err)
	}
	entries := pdir.Entries
	data, err := os.ReadFile(filepath.Join(dir, PostingsFile))
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := posting.ReadFileHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := posting.NewDecoder(rowBytes)
	dec.SetTable(hdr.Table)
	where := map[uint32][]int{}
	lists := make([][]uint32, len(entries))
	for h, e := range entries {
		ids, _, err := dec.Decode(data[e.Offset:e.Offset+uint64(e.Bytes)], e)
		if err != nil {
			t.Fatalf("posting %d: %v", h, err)
		}
		lists[h] = append([]uint32(nil), ids...)
		for _, id := range ids {
			where[id] = append(where[id], h)
		}
	}
	return where, lists
}

func TestBuildSmall(t *testing.T) {
	dir := t.TempDir()
	base := genBase(t, dir, 4000, 16)
	out := filepath.Join(dir, "idx")
	id := indexfile.BuildID{7, 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	st, err := Run(context.Background(), Options{Base: base, Out: out, HeadRatio: 0.1, Replicas: 4, PostingLimit: 40,
		Codec: posting.DefaultCodec, Threads: 2, Seed: 1, MemoryBudget: 256 << 20, BuildID: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.Heads != 400 || st.N != 4000 || st.PostingMax > 40 || st.ReplicasMax > 4 || st.ReplicasMean < 1 {
		t.Fatalf("stats: %+v", st)
	}
	m, err := indexfile.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if err := m.CheckFile(out, f.Name, true); err != nil {
			t.Fatal(err)
		}
	}
	heads, err := indexfile.ReadHeads(filepath.Join(out, HeadsFile))
	if err != nil || heads.Len() != 400 {
		t.Fatalf("heads: %v", err)
	}
	isHead := map[uint32]bool{}
	for _, id := range heads.IDs {
		isHead[id] = true
	}
	where, lists := readPostings(t, out, 16)
	// Every vector that is not a head is stored at least once (nothing was
	// dropped by the posting limit here, or the count says so), and no head
	// is stored in a posting.
	missing := 0
	for id := uint32(0); id < 4000; id++ {
		if isHead[id] {
			if len(where[id]) != 0 {
				t.Fatalf("head %d stored in postings %v", id, where[id])
			}
			continue
		}
		if len(where[id]) == 0 {
			missing++
		}
		if len(where[id]) > 4 {
			t.Fatalf("vector %d in %d postings", id, len(where[id]))
		}
	}
	if st.Dropped == 0 && missing != 0 {
		t.Fatalf("%d vectors in no posting, none dropped", missing)
	}
	if int64(missing) > st.Dropped {
		t.Fatalf("%d vectors missing but only %d assignments dropped", missing, st.Dropped)
	}
	for h, l := range lists {
		if len(l) > 40 {
			t.Fatalf("posting %d has %d entries", h, len(l))
		}
	}
	// The stored vector bytes are the base rows.
	bm, _ := datasets.LoadVectors(base, 0, 0)
	data, _ := os.ReadFile(filepath.Join(out, PostingsFile))
	df, _ := os.Open(filepath.Join(out, DirectoryFile))
	pdir, _ := posting.ReadDirectory(df)
	entries := pdir.Entries
	df.Close()
	hdr, err := posting.ReadFileHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := posting.NewDecoder(16)
	dec.SetTable(hdr.Table)
	ids, rows, err := dec.Decode(data[entries[5].Offset:], entries[5])
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if !bytes.Equal(rows[i*16:(i+1)*16], bm.Row(int(id))) {
			t.Fatalf("posting 5 row %d is not base row %d", i, id)
		}
	}
	// Same seed and build id, same index bytes in every file (neither the
	// thread count nor scheduling leaks in), also when the assignments
	// spill to --tmp-dir in several buckets.
	out2 := filepath.Join(dir, "idx2")
	spillTo := t.TempDir()
	o2 := Options{Base: base, Out: out2, HeadRatio: 0.1, Replicas: 4, PostingLimit: 40,
		Codec: posting.DefaultCodec, Threads: 1, Seed: 1, MemoryBudget: 256 << 20, TmpDir: spillTo, maxBucketBytes: 20 << 10, BuildID: id}
	st2, err := Run(context.Background(), o2)
	if err != nil {
		t.Fatal(err)
	}
	if st2.SpillBuckets < 10 {
		t.Fatalf("%d spill buckets, want many", st2.SpillBuckets)
	}
	if ents, _ := os.ReadDir(spillTo); len(ents) != 0 {
		t.Fatalf("--tmp-dir left %d entries", len(ents))
	}
	assertSameIndex(t, out, out2) // threads 2 and 1, one spill bucket and many
	if m, err := indexfile.ReadManifest(out); err != nil || m.BuildID != id.String() {
		t.Errorf("manifest: %v, build id %s, want %s", err, m.BuildID, id)
	}
	// An existing output is refused without Force and replaced with it.
	if _, err := Run(context.Background(), Options{Base: base, Out: out, Seed: 1}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("existing output: %v", err)
	}
	if _, err := Run(context.Background(), Options{Base: base, Out: out, HeadRatio: 0.2, Seed: 1, Force: true, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	m3, err := indexfile.ReadManifest(out)
	if err != nil || m3.Heads != 800 {
		t.Fatalf("forced rebuild: %v", err)
	}
	assertNoLeftovers(t, dir)
}

func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".building-") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

// A cancelled build leaves nothing at Out and nothing openable, keeps what
// it committed for Resume, and the resumed index is byte for byte the one
// an uninterrupted build makes; a build without Resume removes the kept
// directory.
func TestBuildCancelledResumes(t *testing.T) {
	dir := t.TempDir()
	base := genBase(t, dir, 3000, 8)
	id, _ := indexfile.NewBuildID()
	opts := func(out string) Options {
		return Options{Base: base, Out: out, Threads: 2, Seed: 1, MemoryBudget: 256 << 20, maxBucketBytes: 64 << 10, BuildID: id}
	}
	ref := filepath.Join(dir, "ref")
	if _, err := Run(context.Background(), opts(ref)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "idx")
	for _, phase := range []string{"select heads", "head graph"} {
		ctx, cancel := context.WithCancel(context.Background())
		o := opts(out)
		o.afterPhase = func(p string) {
			if p == phase {
				cancel()
			}
		}
		_, err := Run(ctx, o)
		cancel()
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "--resume") {
			t.Fatalf("build cancelled after %s: %v", phase, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("cancelled build left %s", out)
		}
		o = opts(out)
		o.Resume = true
		st, err := Run(context.Background(), o)
		if err != nil {
			t.Fatalf("resume after %s: %v", phase, err)
		}
		if want := map[string]string{"select heads": "heads", "head graph": "heads and head graph"}[phase]; st.ResumedAfter != want {
			t.Errorf("resumed after %q, want %q", st.ResumedAfter, want)
		}
		assertSameIndex(t, ref, out)
		assertNoLeftovers(t, dir)
		os.RemoveAll(out)
	}
	// Cancelled again, then built afresh without Resume: the kept
	// directory goes.
	ctx, cancel := context.WithCancel(context.Background())
	o := opts(out)
	o.afterPhase = func(string) { cancel() }
	if _, err := Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled build: %v", err)
	}
	if _, err := Run(context.Background(), opts(out)); err != nil {
		t.Fatal(err)
	}
	assertSameIndex(t, ref, out)
	assertNoLeftovers(t, dir)
}

// Resume refuses other flags, redoes a phase whose file no longer matches
// its checkpoint, and starts afresh when there is nothing to resume.
func TestResumeChecks(t *testing.T) {
	dir := t.TempDir()
	base := genBase(t, dir, 3000, 8)
	id, _ := indexfile.NewBuildID()
	opts := func(out string) Options {
		return Options{Base: base, Out: out, Threads: 2, Seed: 1, MemoryBudget: 256 << 20, BuildID: id}
	}
	ref := filepath.Join(dir, "ref")
	if _, err := Run(context.Background(), opts(ref)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "idx")
	ctx, cancel := context.WithCancel(context.Background())
	o := opts(out)
	o.afterPhase = func(p string) {
		if p == "head graph" {
			cancel()
		}
	}
	if _, err := Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled build: %v", err)
	}
	o = opts(out)
	o.Resume, o.HeadRatio = true, 0.2
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "head-ratio was") {
		t.Fatalf("resume with another --head-ratio: %v", err)
	}
	// Damage the graph the checkpoint vouches for: it is rebuilt.
	dirs, _ := filepath.Glob(filepath.Join(dir, ".idx.building-*"))
	if len(dirs) != 1 {
		t.Fatalf("%d build directories kept, want 1", len(dirs))
	}
	g := filepath.Join(dirs[0], GraphFile)
	raw, err := os.ReadFile(g)
	if err != nil {
		t.Fatal(err)
	}
	raw[100] ^= 1
	os.WriteFile(g, raw, 0o644)
	var log strings.Builder
	o = opts(out)
	o.Resume, o.Progress = true, &log
	st, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if st.ResumedAfter != "heads and head graph" || !strings.Contains(log.String(), "head graph: ") || !strings.Contains(log.String(), "redoing it") {
		t.Errorf("resumed after %q; log:\n%s", st.ResumedAfter, log.String())
	}
	assertSameIndex(t, ref, out)
	// Nothing to resume: a fresh build, said so.
	os.RemoveAll(out)
	log.Reset()
	o = opts(out)
	o.Resume, o.Progress = true, &log
	if st, err = Run(context.Background(), o); err != nil || st.ResumedAfter != "" || !strings.Contains(log.String(), "starting afresh") {
		t.Fatalf("resume with nothing to resume: %v, resumed after %q", err, st.ResumedAfter)
	}
	assertSameIndex(t, ref, out)
	assertNoLeftovers(t, dir)
}

// assertSameIndex fails unless b holds the same index as a.
func assertSameIndex(t *testing.T, a, b string) {
	t.Helper()
	if err := testutil.SameIndex(a, b); err != nil {
		t.Error(err)
	}
}

func TestBuildBadParameters(t *testing.T) {
	dir := t.TempDir()
	base := genBase(t, dir, 100, 4)
	out := filepath.Join(dir, "idx")
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{HeadRatio: 1.5}, "--head-ratio"},
		{Options{HeadRatio: -0.1}, "--head-ratio"},
		{Options{Replicas: -1}, "--replicas"},
		{Options{PostingLimit: -3}, "--posting-limit"},
		{Options{RNGFactor: -1}, "--rng-factor"},
		{Options{Threads: -2}, "--threads"},
		{Options{MemoryBudget: 1000}, "memory budget"},
		{Options{Metric: vec.Cosine}, "cosine"},
		{Options{Crop: 101}, "only 100"},
	} {
		c.o.Base, c.o.Out = base, out
		_, err := Run(context.Background(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want mention of %q", c.o, err, c.want)
		}
	}
	if _, err := Run(context.Background(), Options{Base: filepath.Join(dir, "nope.u8bin"), Out: out}); err == nil {
		t.Error("missing base accepted")
	}
}

// --force replaces only a spann index or an empty directory; anything else
// is refused with nothing touched. A parked old index left by a replace
// that died is removed by the next build.
func TestForceReplacesOnlyIndexes(t *testing.T) {
	dir := t.TempDir()
	base := genBase(t, dir, 2000, 8)
	opts := func(out string) Options {
		return Options{Base: base, Out: out, Threads: 2, Seed: 1, MemoryBudget: 256 << 20, Force: true}
	}
	// A user's directory with a file in it.
	user := filepath.Join(dir, "photos")
	os.Mkdir(user, 0o755)
	os.WriteFile(filepath.Join(user, "holiday.jpg"), []byte("precious"), 0o644)
	if _, err := Run(context.Background(), opts(user)); err == nil || !strings.Contains(err.Error(), "not a spann index") {
		t.Fatalf("force over a user directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(user, "holiday.jpg")); err != nil || string(b) != "precious" {
		t.Fatalf("the user's file was touched: %v", err)
	}
	// A plain file.
	file := filepath.Join(dir, "notes.txt")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := Run(context.Background(), opts(file)); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Fatalf("force over a file: %v", err)
	}
	// An empty directory, then the index built there, are replaced.
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	for i := 0; i < 2; i++ {
		if _, err := Run(context.Background(), opts(empty)); err != nil {
			t.Fatalf("force over %s (round %d): %v", empty, i, err)
		}
		if _, err := indexfile.ReadManifest(empty); err != nil {
			t.Fatal(err)
		}
	}
	assertNoLeftovers(t, dir)
	// An old index parked by a replace that was killed before deleting it
	// (a build directory holding a complete index, its lock free) goes at
	// the next build of the same output, as does the ".old" form.
	for _, name := range []string{".empty.building-123", ".empty.building-456.old"} {
		parked := filepath.Join(dir, name)
		if err := os.CopyFS(parked, os.DirFS(empty)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Run(context.Background(), opts(empty)); err != nil {
		t.Fatal(err)
	}
	assertNoLeftovers(t, dir)
}

// Spill directories in --tmp-dir left by builds that died (their lock free)
// are removed by the next build; one whose lock is held (a build still
// running) is left alone.
func TestDeadSpillDirsRemoved(t *testing.T) {
	dir := t.TempDir()
	base := genBase(t, dir, 2000, 8)
	tmp := t.TempDir()
	dead := filepath.Join(tmp, spillPrefix+"dead")
	live := filepath.Join(tmp, spillPrefix+"live")
	for _, d := range []string{dead, live} {
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "assign-00000.spill"), make([]byte, 4096), 0o644)
	}
	deadLock, err := lockDir(vfs.OS, dead)
	if err != nil {
		t.Fatal(err)
	}
	deadLock.Close() // the build died: its lock is released
	liveLock, err := lockDir(vfs.OS, live)
	if err != nil {
		t.Fatal(err)
	}
	defer liveLock.Close()
	if _, err := Run(context.Background(), Options{Base: base, Out: filepath.Join(dir, "idx"), Threads: 2, Seed: 1,
		MemoryBudget: 256 << 20, TmpDir: tmp}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("dead spill directory still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(live, "assign-00000.spill")); err != nil {
		t.Errorf("a running build's spill directory was touched: %v", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
		t.Errorf("--tmp-dir holds %d entries after the build, want only the live one", len(ents))
	}
}
