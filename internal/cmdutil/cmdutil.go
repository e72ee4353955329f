// Package cmdutil holds what the command-line programs share: running an
// urfave/cli app with one-line errors, JSON output, and flag parsing helpers.
package cmdutil

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gospann/spann"
	"github.com/gospann/spann/internal/progress"
	"github.com/gospann/spann/internal/sysmem"
)

// Main runs app with os.Args and exits: 0 on success, 1 with a single
// "program: error" line on stderr otherwise.
func Main(app *cli.App) {
	app.OnUsageError = func(c *cli.Context, err error, isSubcommand bool) error {
		return fmt.Errorf("%w (see --help)", err)
	}
	app.ExitErrHandler = func(*cli.Context, error) {}
	if err := app.Run(os.Args); err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		fmt.Fprintf(os.Stderr, "%s: %s\n", app.Name, msg)
		os.Exit(1)
	}
}

// Progress returns where a command reports progress: stderr, or nowhere
// when quiet (--json, --quiet).
func Progress(quiet bool) io.Writer {
	if quiet {
		return nil
	}
	return os.Stderr
}

// PrintJSON writes v as one indented JSON object.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Threads turns a --threads value into a goroutine count (0 = all cores).
func Threads(n int) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("--threads %d: must be 0 (all cores) or positive", n)
	}
	if n == 0 {
		return runtime.NumCPU(), nil
	}
	return n, nil
}

// ParseSize parses a byte size such as "1GiB", "512MiB", "2G", "1e9" or "4096".
// K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024; KB/MB/GB/TB powers of 1000.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := float64(1)
	units := []struct {
		suffix string
		m      float64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	up := strings.ToUpper(t)
	for _, u := range units {
		if strings.HasSuffix(up, u.suffix) {
			mult = u.m
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 512MiB, 2GiB or a byte count)", s)
	}
	return int64(v * mult), nil
}

// PeakRSS returns the process's peak resident set size in bytes.
func PeakRSS() int64 { return sysmem.PeakRSS() }

// StartCPUProfile writes a pprof CPU profile to path until the returned
// stop is called; an empty path profiles nothing.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// LabelListFlags are the flags choosing which labels get label lists, for
// the commands that attach labels (spann-build, spann-update); read them
// with LabelLists.
func LabelListFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "lists-min", Value: spann.DefaultListsMin, Usage: "with --labels: a label carried by at least this share of the vectors (0..1) gets label lists, its carriers clustered into small postings of their own that a filter on it reads instead of scattered homes"},
		&cli.Float64Flag{Name: "lists-max", Value: spann.DefaultListsMax, Usage: "with --labels: ... and by at most this share (wider labels are searched by walking the heads)"},
		&cli.BoolFlag{Name: "no-lists", Usage: "with --labels: build no label lists (smaller index; mid-frequency filters read several times the pages)"},
	}
}

// LabelLists returns the label options of LabelListFlags' flags.
func LabelLists(c *cli.Context, threads int) spann.LabelOptions {
	return spann.LabelOptions{ListsMin: c.Float64("lists-min"), ListsMax: c.Float64("lists-max"), NoLists: c.Bool("no-lists"), Threads: threads}
}

// LabelProgress reports spann.AttachLabels' two phases to w (reading the
// postings, clustering the label lists): it sets o's callbacks and returns
// the function that ends the report.
func LabelProgress(w io.Writer, o *spann.LabelOptions) (end func()) {
	read := progress.New(w, "attach labels", 0)
	var lists *progress.Reporter
	o.Progress = func(done, total int) {
		read.SetTotal(int64(total))
		read.Set(int64(done))
	}
	o.ListsProgress = func(done, total int) { // (called one at a time)
		if lists == nil {
			read.Done()
			lists = progress.New(w, "label lists", int64(total))
		}
		lists.Set(int64(done))
	}
	return func() {
		read.Done()
		if lists != nil {
			lists.Done()
		}
	}
}
