// Package testutil finds the real data sets for tests and benchmarks.
package testutil

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
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
