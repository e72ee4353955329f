package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vfs"
	"golang.org/x/sys/unix"
)

// A build directory (".OUT.building-XXXX", next to --out) holds the index
// files as they are finished and, in its scratch subdirectory ".build",
// what only the build needs:
//
//	.build/lock             flock'd by the running build; free once it dies
//	.build/checkpoint.json  what is committed so far (below)
//	.build/postings.state   directory entries and per-posting counts of the
//	                        postings written so far, and the stored-vector
//	                        bitmap (see writeState)
//	.build/assign-*.spill   assignment spill buckets (unless --tmp-dir)
//
// checkpoint.json is replaced atomically (write, fsync, rename, fsync the
// directory) each time a step commits, so after a kill -9 it describes a
// state that the files on disk contain in full: a file it names has the
// size and checksum it records, and the spill and postings files have at
// least the recorded bytes (anything after them, written after the last
// commit, is cut off when the build resumes). The steps, in order:
//
//	started    the build id and the flags that decide the index
//	heads      heads.bin written (size, SHA-256)
//	graph      graph.bin written (size, SHA-256)
//	assign     base rows [0, Rows) assigned: every bucket's length and
//	           CRC-32C; Done when all rows are
//	postings   spill buckets [0, Buckets) written as postings: postings.bin's
//	           length and CRC-32C, and postings.state's SHA-256
//	manifest   manifest.json written; what is left is the rename to --out
//
// It is JSON because it is small, written a few dozen times per build and
// read by people debugging a build; it is a build-time file, never part of
// an index (".build" is removed when the index is committed).
type checkpoint struct {
	Version int    `json:"version"`
	BuildID string `json:"build_id"`
	// Flags are the options and base-file identity that decide the index's
	// bytes; a resume must present the same ones.
	Flags    map[string]string `json:"flags"`
	Stats    *Stats            `json:"stats"` // summary so far
	Heads    *fileSum          `json:"heads,omitempty"`
	Graph    *fileSum          `json:"graph,omitempty"`
	Assign   *assignState      `json:"assign,omitempty"`
	Postings *postingsState    `json:"postings,omitempty"`
	Manifest bool              `json:"manifest,omitempty"`
}

const checkpointVersion = 1

// Scratch names inside the build directory.
const (
	scratchDir     = ".build"
	checkpointName = "checkpoint.json"
	stateName      = "postings.state"
	lockName       = "lock"
)

type fileSum struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

type assignState struct {
	SpillDir   string   `json:"spill_dir"` // absolute
	Buckets    int      `json:"buckets"`
	Rows       int      `json:"rows"`
	Done       bool     `json:"done"`
	Lengths    []int64  `json:"lengths"`
	CRCs       []uint32 `json:"crc32c"`
	ReplicaSum int64    `json:"replica_sum"`
	ReplicaMax int      `json:"replica_max"`
}

type postingsState struct {
	Buckets   int    `json:"buckets"`  // spill buckets written
	Postings  int    `json:"postings"` // heads whose posting is written
	Offset    uint64 `json:"offset"`   // postings.bin bytes that hold them
	CRC       uint32 `json:"crc32c"`   // of those bytes
	StateSHA  string `json:"state_sha256"`
	Dropped   int64  `json:"dropped"`
	PastLimit int64  `json:"past_limit"`
	Done      bool   `json:"done"` // postings.bin finished, directory.bin written
	// When Done: the two finished files.
	PostingsFile  *fileSum `json:"postings_file,omitempty"`
	DirectoryFile *fileSum `json:"directory_file,omitempty"`
}

// flags returns the options and base identity that decide the index. The
// thread count and memory budget are not among them: the index does not
// depend on them (the determinism test checks threads), and a build killed
// for want of memory may resume with more.
// A base in memory (no path) is recorded by its shape only; it cannot be
// resumed.
func (o *Options) flags(base string) map[string]string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	m := map[string]string{
		"type":               o.Type.String(),
		"crop":               strconv.Itoa(o.Crop),
		"metric":             o.Metric.String(),
		"head-ratio":         f(o.HeadRatio),
		"replicas":           strconv.Itoa(o.Replicas),
		"posting-limit":      strconv.Itoa(o.PostingLimit),
		"rng-factor":         f(o.RNGFactor),
		"replica-eps":        f(o.ReplicaEps),
		"candidates":         strconv.Itoa(o.CandidateHeads),
		"codec":              o.Codec.String(),
		"seed":               strconv.FormatInt(o.Seed, 10),
		"graph-degree":       strconv.Itoa(o.Graph.Degree),
		"graph-build-list":   strconv.Itoa(o.Graph.BuildList),
		"graph-alpha":        f(float64(o.Graph.Alpha)),
		"assign-search-list": strconv.Itoa(o.AssignSearchList),
		"max-bucket-bytes":   strconv.FormatInt(o.maxBucketBytes, 10),
	}
	if base == "" {
		return m
	}
	m["base"] = base
	if abs, err := filepath.Abs(base); err == nil {
		m["base"] = abs
	}
	if st, err := os.Stat(base); err == nil {
		m["base bytes"] = strconv.FormatInt(st.Size(), 10)
		m["base modified"] = st.ModTime().UTC().Format("2006-01-02T15:04:05.000000000Z")
	}
	return m
}

// undo forgets phase i (0 heads, 1 graph, 2 assignment and postings) and
// every later one, whose outputs a redone phase would change.
func (ck *checkpoint) undo(i int) {
	if i <= 0 {
		ck.Heads = nil
	}
	if i <= 1 {
		ck.Graph = nil
	}
	ck.Assign, ck.Postings, ck.Manifest = nil, nil, false
}

// differs names the first flag (sorted) whose value is not the same.
func differs(was, now map[string]string) (string, bool) {
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	for k := range was {
		if _, ok := now[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if was[k] != now[k] {
			return fmt.Sprintf("%s was %q, now %q", k, was[k], now[k]), true
		}
	}
	return "", false
}

func scratch(dir string) string { return filepath.Join(dir, scratchDir) }

// save commits ck to dir's scratch directory atomically.
func (ck *checkpoint) save(fs vfs.FS, dir string) error {
	crashPoint("checkpoint: saving")
	data, err := json.MarshalIndent(ck, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(fs, filepath.Join(scratch(dir), checkpointName), append(data, '\n')); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	crashPoint("checkpoint: saved")
	return nil
}

func loadCheckpoint(dir string) (*checkpoint, error) {
	data, err := os.ReadFile(filepath.Join(scratch(dir), checkpointName))
	if err != nil {
		return nil, err
	}
	var ck checkpoint
	if err := json.Unmarshal(data, &ck); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(scratch(dir), checkpointName), err)
	}
	if ck.Version != checkpointVersion {
		return nil, fmt.Errorf("%s: version %d, this build writes %d", filepath.Join(scratch(dir), checkpointName), ck.Version, checkpointVersion)
	}
	if ck.Stats == nil {
		return nil, fmt.Errorf("%s: no stats", filepath.Join(scratch(dir), checkpointName))
	}
	return &ck, nil
}

// buildDir is a build directory this process has locked.
type buildDir struct {
	path string
	lock vfs.File
}

func (d *buildDir) close() { d.lock.Close() }

// newBuildDir creates and locks a fresh build directory next to out.
func newBuildDir(fs vfs.FS, parent, name string) (*buildDir, error) {
	tmp, err := fs.MkdirTemp(parent, "."+name+".building-")
	if err != nil {
		return nil, fmt.Errorf("create build directory: %w", err)
	}
	lock, err := lockDir(fs, tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &buildDir{path: tmp, lock: lock}, nil
}

// lockDir creates dir's scratch directory and takes its lock. The kernel
// drops the lock when the process dies, however it dies.
func lockDir(fs vfs.FS, dir string) (vfs.File, error) {
	if err := fs.MkdirAll(scratch(dir), 0o755); err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	f, err := fs.OpenFile(filepath.Join(scratch(dir), lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("build lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// errBuildRunning says a build of the same --out holds its lock.
var errBuildRunning = errors.New("another build of this index is running")

// findResumable returns the most advanced interrupted build of out (the
// lock free, a checkpoint readable), locked, with its checkpoint; nil if
// there is none. A directory whose lock is held belongs to a build still
// running.
func findResumable(fs vfs.FS, parent, name string) (*buildDir, *checkpoint, error) {
	matches, _ := filepath.Glob(filepath.Join(parent, "."+name+".building-*"))
	var best *buildDir
	var bestCk *checkpoint
	running := false
	for _, dir := range matches {
		if _, err := os.Stat(filepath.Join(scratch(dir), checkpointName)); err != nil {
			continue
		}
		lock, err := lockDir(fs, dir)
		if err != nil {
			running = running || errors.Is(err, unix.EWOULDBLOCK)
			continue
		}
		ck, err := loadCheckpoint(dir)
		if err != nil || (bestCk != nil && ck.progress() <= bestCk.progress()) {
			lock.Close()
			continue
		}
		if best != nil {
			best.close()
		}
		best, bestCk = &buildDir{path: dir, lock: lock}, ck
	}
	if best == nil && running {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(parent, name), errBuildRunning)
	}
	return best, bestCk, nil
}

// progress orders checkpoints by how far their build got.
func (ck *checkpoint) progress() int64 {
	switch {
	case ck.Manifest:
		return 1 << 62
	case ck.Postings != nil:
		return 1<<61 + int64(ck.Postings.Postings)
	case ck.Assign != nil:
		return 1<<60 + int64(ck.Assign.Rows)
	case ck.Graph != nil:
		return 3
	case ck.Heads != nil:
		return 2
	}
	return 1
}

// phaseDone is where a resumed build starts, for its progress line.
func (ck *checkpoint) phaseDone() string {
	switch {
	case ck.Manifest:
		return "the manifest (only the rename to --out was left)"
	case ck.Postings != nil && ck.Postings.Done:
		return "every posting and the directory"
	case ck.Postings != nil:
		return fmt.Sprintf("%d of %d spill buckets written as postings", ck.Postings.Buckets, ck.Assign.Buckets)
	case ck.Assign != nil && ck.Assign.Done:
		return "the assignment of every vector"
	case ck.Assign != nil:
		return fmt.Sprintf("%d of %d vectors assigned", ck.Assign.Rows, ck.Stats.N)
	case ck.Graph != nil:
		return "heads and head graph"
	case ck.Heads != nil:
		return "heads"
	}
	return "nothing yet (the build had just started)"
}

// checkFile reports whether dir/name has the size and SHA-256 recorded.
func checkFile(dir, name string, want *fileSum) error {
	got, err := indexfile.Describe(dir, name)
	if err != nil {
		return err
	}
	if got.Bytes != want.Bytes || got.SHA256 != want.SHA256 {
		return fmt.Errorf("%s: %d bytes, SHA-256 %s; the checkpoint recorded %d bytes, %s",
			filepath.Join(dir, name), got.Bytes, got.SHA256, want.Bytes, want.SHA256)
	}
	return nil
}

func sumFile(dir, name string) (*fileSum, error) {
	info, err := indexfile.Describe(dir, name)
	if err != nil {
		return nil, err
	}
	return &fileSum{Bytes: info.Bytes, SHA256: info.SHA256}, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newCRC() hash.Hash32 { return crc32.New(castagnoli) }

// prefixCRC returns the CRC-32C of f's first n bytes (an error if f is
// shorter).
func prefixCRC(f vfs.File, n int64) (uint32, error) {
	h := newCRC()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, n)); err != nil {
		return 0, err
	}
	if st, err := f.Stat(); err != nil {
		return 0, err
	} else if st.Size() < n {
		return 0, fmt.Errorf("%s: %d bytes, the checkpoint recorded %d", f.Name(), st.Size(), n)
	}
	return h.Sum32(), nil
}
