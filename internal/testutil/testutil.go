// Package testutil finds the real data sets for tests and benchmarks, and
// compares indexes.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/gospann/spann/internal/indexfile"
)

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// DataFile returns the path of file (e.g. "realsift-100k/base.u8bin") in the
// first place that has it: $SPANN_DATA, the git-ignored data/ of the
// repository (made by ../shared/data/unpack), or ../shared/data beside the
// repository. It returns "" when none has it.
func DataFile(file string) string {
	var dirs []string
	if d := os.Getenv("SPANN_DATA"); d != "" {
		dirs = append(dirs, d)
	}
	root := RepoRoot()
	dirs = append(dirs, filepath.Join(root, "data"), filepath.Join(root, "..", "shared", "data"))
	for _, d := range dirs {
		p := filepath.Join(d, file)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// RequireDataFile is DataFile, skipping the test (with the reason) when the
// file is nowhere to be found.
func RequireDataFile(tb testing.TB, file string) string {
	tb.Helper()
	p := DataFile(file)
	if p == "" {
		tb.Skipf("%s not found: set SPANN_DATA or run ../shared/data/unpack data", file)
	}
	return p
}

// SameIndex reports how the index in b differs from the one in a: any of
// the four index files not byte for byte equal, manifests listing other
// files or another build id, or b holding anything but those files and
// its manifest. nil when they are the same index.
func SameIndex(a, b string) error {
	for _, name := range []string{indexfile.HeadsFile, indexfile.GraphFile, indexfile.DirectoryFile, indexfile.PostingsFile} {
		x, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			return err
		}
		y, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			return err
		}
		if !bytes.Equal(x, y) {
			return fmt.Errorf("%s differs between %s and %s", name, a, b)
		}
	}
	m1, err := indexfile.ReadManifest(a)
	if err != nil {
		return err
	}
	m2, err := indexfile.ReadManifest(b)
	if err != nil {
		return err
	}
	if !slices.Equal(m1.Files, m2.Files) || m1.BuildID != m2.BuildID {
		return fmt.Errorf("manifests of %s and %s list other files or build ids", a, b)
	}
	if ents, _ := os.ReadDir(b); len(ents) != 5 {
		return fmt.Errorf("%s holds %d entries, want the 4 files and the manifest", b, len(ents))
	}
	return nil
}
