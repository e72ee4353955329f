package indexfile

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/gospann/spann/internal/vfs"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The files of an index directory (see doc.go): names are part of the
// on-disk format.
const (
	HeadsFile     = "heads.bin"
	GraphFile     = "graph.bin"
	DirectoryFile = "directory.bin"
	PostingsFile  = "postings.bin"
)

// Manifest format constants: part of the on-disk format; never change.
const (
	ManifestName  = "manifest.json"
	manifestMagic = "spann-index"
	// ManifestMajor is bumped by incompatible changes to any index file.
	// Major 2 added the build id and replaced each file's CRC32C by its
	// SHA-256 (a file ending in its own CRC32C always had the same
	// whole-file CRC, so the manifest tied nothing together).
	ManifestMajor = 2
	// ManifestMinor is bumped by compatible additions. Minor 1 added
	// generations (an updated index's checkpoints) and prefix hashes.
	ManifestMinor = 1
	zeroChecksum  = "00000000"
)

// FileInfo records one index file's size and SHA-256.
type FileInfo struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"` // lowercase hex
	// HashedBytes, when not 0, is how many leading bytes SHA256 covers:
	// postings.bin of an updated index, whose checkpoints rewrite postings
	// in place of others (rehashing the whole file at every checkpoint
	// would read all of it), has only its header page hashed; every
	// posting is covered by its own CRC32C and located by the (whole-file
	// hashed) directory, which spann-search check reads through.
	HashedBytes int64 `json:"hashed_bytes,omitempty"`
}

// Hashed returns how many leading bytes of the file its SHA-256 covers.
func (f FileInfo) Hashed() int64 {
	if f.HashedBytes > 0 {
		return f.HashedBytes
	}
	return f.Bytes
}

// FileName returns the name of the index file of kind base (HeadsFile,
// GraphFile or DirectoryFile) written at generation gen: base itself as
// built (generation 0), stem-G.ext after the G-th checkpoint that changed
// it (G in six or more decimal digits), e.g. directory-000003.bin.
func FileName(base string, gen int64) string {
	if gen == 0 {
		return base
	}
	ext := filepath.Ext(base)
	return fmt.Sprintf("%s-%06d%s", strings.TrimSuffix(base, ext), gen, ext)
}

// FileGeneration returns the generation of name as a file of kind base,
// and whether it is one.
func FileGeneration(base, name string) (int64, bool) {
	if name == base {
		return 0, true
	}
	ext := filepath.Ext(base)
	digits, ok := strings.CutPrefix(strings.TrimSuffix(name, ext), strings.TrimSuffix(base, ext)+"-")
	if !ok || !strings.HasSuffix(name, ext) || len(digits) < 6 {
		return 0, false
	}
	g, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || g <= 0 || FileName(base, g) != name {
		return 0, false
	}
	return g, true
}

// DirectoryName returns generation gen's posting directory name.
func DirectoryName(gen int64) string { return FileName(DirectoryFile, gen) }

// BuildID identifies one build of an index: every file it writes carries
// it in its header, and the manifest records it, so that files of
// different builds are never mixed.
type BuildID [16]byte

// NewBuildID returns a random build id.
func NewBuildID() (BuildID, error) {
	var id BuildID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("build id: %w", err)
	}
	return id, nil
}

// String returns the id as 32 lowercase hex digits, as the manifest has it.
func (id BuildID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is unset (files written before build ids).
func (id BuildID) IsZero() bool { return id == BuildID{} }

// ParseBuildID parses 32 hex digits.
func ParseBuildID(s string) (BuildID, error) {
	var id BuildID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("build id %q: want %d hex digits", s, 2*len(id))
	}
	copy(id[:], b)
	if id.IsZero() {
		return id, fmt.Errorf("build id %q: must not be zero", s)
	}
	return id, nil
}

// BuildParams are the parameters an index was built with.
type BuildParams struct {
	HeadRatio      float64 `json:"head_ratio"`
	Replicas       int     `json:"replicas"`
	PostingLimit   int     `json:"posting_limit"`
	RNGFactor      float64 `json:"rng_factor"`
	ReplicaEps     float64 `json:"replica_eps"`
	CandidateHeads int     `json:"candidate_heads"`
	Codec          string  `json:"codec"`
	Seed           int64   `json:"seed"`
	Crop           int     `json:"crop"`
	Threads        int     `json:"threads"`
	MemoryBudget   int64   `json:"memory_budget"`
	GraphDegree    int     `json:"graph_degree"`
	GraphBuildList int     `json:"graph_build_list"`
	GraphAlpha     float64 `json:"graph_alpha"`
}

// Manifest describes an index directory; it is written last.
type Manifest struct {
	Magic       string `json:"magic"`
	FormatMajor int    `json:"format_major"`
	FormatMinor int    `json:"format_minor"`
	BuildID     string `json:"build_id"` // BuildID.String()
	Base        string `json:"base"`
	Type        string `json:"type"`
	Dim         int    `json:"dim"`
	Metric      string `json:"metric"`
	N           int    `json:"n"` // ids the files hold: the build's, then those inserted and checkpointed
	// Generation counts the checkpoints that rewrote postings (0 as
	// built); DirectoryName(Generation) is the directory in use.
	Generation int64          `json:"generation,omitempty"`
	Heads      int            `json:"heads"`
	Params     BuildParams    `json:"params"`
	Stats      map[string]any `json:"stats,omitempty"`
	Files      []FileInfo     `json:"files"`
	Checksum   string         `json:"checksum"`
}

// Directory returns the name of the manifest's posting directory.
func (m *Manifest) Directory() string { return DirectoryName(m.Generation) }

// Current returns the name of the manifest's file of kind base (HeadsFile
// or GraphFile: the generation that last changed it), base if it lists
// none.
func (m *Manifest) Current(base string) string {
	for _, f := range m.Files {
		if _, ok := FileGeneration(base, f.Name); ok {
			return f.Name
		}
	}
	return base
}

// File returns the recorded info of the named file.
func (m *Manifest) File(name string) (FileInfo, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return FileInfo{}, false
}

// CRCString formats a CRC32C as the manifest stores it.
func CRCString(c uint32) string { return fmt.Sprintf("%08x", c) }

// EncodeManifest returns the manifest's bytes, with its checksum filled in.
func EncodeManifest(m *Manifest) ([]byte, error) {
	m.Magic, m.FormatMajor, m.FormatMinor = manifestMagic, ManifestMajor, ManifestMinor
	return signJSON(m, func(sum string) { m.Checksum = sum })
}

// WriteManifest writes the manifest into dir atomically (temporary file,
// fsync, rename, fsync of the directory).
func WriteManifest(fs vfs.FS, dir string, m *Manifest) error {
	data, err := EncodeManifest(m)
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, ManifestName), data)
}

// SyncDir fsyncs a directory so that renames inside it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadManifest reads and validates dir's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestName)
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: not an index directory (no %s; was the build interrupted?)", dir, ManifestName)
		}
		return nil, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Resign recomputes the checksum of manifest bytes after their body was
// edited by hand (tests use it so that only the edit is what a reader
// objects to).
func Resign(data []byte) ([]byte, error) {
	loc := checksumField.FindSubmatchIndex(data)
	if loc == nil {
		return nil, fmt.Errorf("manifest has no checksum field")
	}
	out := bytes.Clone(data)
	copy(out[loc[2]:loc[3]], zeroChecksum)
	copy(out[loc[2]:loc[3]], CRCString(crc32.Checksum(out, castagnoli)))
	return out, nil
}

var checksumField = regexp.MustCompile(`"checksum": "([0-9a-f]{8})"`)

// ParseManifest decodes and validates manifest bytes.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest is not valid JSON: %v", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the manifest", ErrCorrupt)
	}
	if m.Magic != manifestMagic {
		return nil, fmt.Errorf("%w: not a spann manifest (magic %q)", ErrCorrupt, m.Magic)
	}
	if len(m.Checksum) != 8 {
		return nil, fmt.Errorf("%w: manifest checksum %q", ErrCorrupt, m.Checksum)
	}
	if ok, got := verifyJSON(data, m.Checksum); !ok {
		return nil, fmt.Errorf("%w: manifest checksum mismatch (stored %s, computed %s)", ErrCorrupt, m.Checksum, got)
	}
	if m.FormatMajor != ManifestMajor {
		return nil, fmt.Errorf("%w: index format %d.%d, this program reads %d.x", ErrVersion, m.FormatMajor, m.FormatMinor, ManifestMajor)
	}
	if m.N <= 0 || m.Dim <= 0 || m.Heads <= 0 || m.Heads > m.N || m.Generation < 0 {
		return nil, fmt.Errorf("%w: manifest n=%d dim=%d heads=%d generation=%d", ErrCorrupt, m.N, m.Dim, m.Heads, m.Generation)
	}
	if _, err := ParseBuildID(m.BuildID); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	for _, f := range m.Files {
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%w: manifest: %s: sha256 %q is not %d hex digits", ErrCorrupt, f.Name, f.SHA256, 2*sha256.Size)
		}
		if f.HashedBytes < 0 || f.HashedBytes > f.Bytes {
			return nil, fmt.Errorf("%w: manifest: %s: %d hashed bytes of %d", ErrCorrupt, f.Name, f.HashedBytes, f.Bytes)
		}
	}
	return &m, nil
}

// ID returns the manifest's build id (validated by ParseManifest).
func (m *Manifest) ID() BuildID {
	id, _ := ParseBuildID(m.BuildID)
	return id
}

// CheckID reports files of another build: got is the id read from the
// header of dir/name.
func (m *Manifest) CheckID(dir, name string, got BuildID) error {
	if want := m.ID(); got != want {
		return fmt.Errorf("%w: %s is from build %s, the manifest is build %s: the index mixes files of different builds",
			ErrCorrupt, filepath.Join(dir, name), got, want)
	}
	return nil
}

// CheckFile verifies that dir/name has the size (postings.bin: at least
// the size) and, when full is set, the SHA-256 recorded in the manifest
// (of its first HashedBytes bytes, if set).
func (m *Manifest) CheckFile(dir, name string, full bool) error {
	info, ok := m.File(name)
	if !ok {
		return fmt.Errorf("%w: manifest lists no %s", ErrCorrupt, name)
	}
	path := filepath.Join(dir, name)
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("index file missing: %w", err)
	}
	// postings.bin may be longer: the tail is what a checkpoint was
	// appending (or an interrupted one appended), which no directory names.
	if st.Size() < info.Bytes || (st.Size() > info.Bytes && name != PostingsFile) {
		return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrCorrupt, path, st.Size(), info.Bytes)
	}
	if !full {
		return nil
	}
	sum, err := fileSHA256(path, info.Hashed())
	if err != nil {
		return err
	}
	if sum != info.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrCorrupt, path, sum, info.SHA256)
	}
	return nil
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// OpenChecked opens dir/name for streaming and returns a reader whose
// Verify, called after the last byte was consumed, checks the size and
// SHA-256 recorded in the manifest. It lets large files be loaded without
// holding their bytes twice.
func (m *Manifest) OpenChecked(dir, name string) (*CheckedReader, error) {
	info, ok := m.File(name)
	if !ok {
		return nil, fmt.Errorf("%w: manifest lists no %s", ErrCorrupt, name)
	}
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("index file missing or unreadable: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() != info.Bytes {
		f.Close()
		return nil, fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrCorrupt, path, st.Size(), info.Bytes)
	}
	h := sha256.New()
	return &CheckedReader{Reader: bufio.NewReaderSize(io.TeeReader(f, h), 64<<10), f: f, h: h, info: info, path: path}, nil
}

// CheckedReader streams an index file while checksumming it.
type CheckedReader struct {
	*bufio.Reader
	f    *os.File
	h    hash.Hash
	info FileInfo
	path string
}

// Verify consumes what the caller left unread and compares the file's
// SHA-256 with the manifest's; it closes the file.
func (c *CheckedReader) Verify() error {
	defer c.f.Close()
	if _, err := io.Copy(io.Discard, c.Reader); err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	if got := hex.EncodeToString(c.h.Sum(nil)); got != c.info.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrCorrupt, c.path, got, c.info.SHA256)
	}
	return nil
}

// Close closes the file without verifying.
func (c *CheckedReader) Close() error { return c.f.Close() }

// Size returns the file's size in bytes (checked against the manifest).
func (c *CheckedReader) Size() int64 { return c.info.Bytes }

// FileSHA256 returns the SHA-256 of a whole file, in lowercase hex.
func FileSHA256(path string) (string, error) { return fileSHA256(path, -1) }

// PrefixSHA256 returns the SHA-256 of the first n bytes of a file, in
// lowercase hex; a file shorter than n is ErrCorrupt.
func PrefixSHA256(path string, n int64) (string, error) { return fileSHA256(path, n) }

// fileSHA256 returns the SHA-256 of the first n bytes of a file (all of
// it when n < 0); a file shorter than n is an error.
func fileSHA256(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if n >= 0 {
		r = io.LimitReader(r, n)
	}
	got, err := io.Copy(h, r)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if n >= 0 && got < n {
		return "", fmt.Errorf("%w: %s is %d bytes, shorter than its %d hashed bytes", ErrCorrupt, path, got, n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DescribeBytes returns the info of a file whose content is data.
func DescribeBytes(name string, data []byte) FileInfo {
	return FileInfo{Name: name, Bytes: int64(len(data)), SHA256: sha256Hex(data)}
}

// Describe returns info (size, SHA-256) for a file just written.
func Describe(dir, name string) (FileInfo, error) {
	path := filepath.Join(dir, name)
	st, err := os.Stat(path)
	if err != nil {
		return FileInfo{}, err
	}
	sum, err := FileSHA256(path)
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Name: name, Bytes: st.Size(), SHA256: sum}, nil
}
