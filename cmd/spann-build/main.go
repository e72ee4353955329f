// Command spann-build builds a SPANN index from a big-ann-benchmarks vector
// file, streaming the base and staying within a memory budget.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
	"github.com/gospann/spann/internal/cmdutil"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	return &cli.App{
		Name:      "spann-build",
		Usage:     "build a SPANN index: heads in memory, replicated posting lists on disk",
		UsageText: "spann-build --base FILE --out DIR [options]",
		Description: "Picks about --head-ratio of the vectors as heads by hierarchical balanced k-means, builds a " +
			"graph over them, assigns every other vector to up to --replicas nearby heads with the RNG rule, and " +
			"writes each head's posting list compressed to one postings file, placed so that one aligned read of the fewest " +
			"possible 4 KiB pages fetches it. The index is " +
			"built in a temporary directory beside --out and renamed into place only when complete, so an " +
			"interrupted build leaves nothing at --out; each step commits a checkpoint there, and --resume continues from the last one. Distances are squared L2, or the negated inner product " +
			"(ip, cosine).",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "base", Required: true, Usage: "base vector file (.fbin, .u8bin or .i8bin)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "index directory to create"},
			&cli.StringFlag{Name: "type", Usage: "element type overriding the extension: float32, uint8 or int8"},
			&cli.StringFlag{Name: "metric", Value: "l2", Usage: "l2, ip or cosine (cosine: float32 only, vectors normalised at ingest)"},
			&cli.Float64Flag{Name: "head-ratio", Value: 0.18, Usage: "fraction of the vectors that become heads, in (0,1); more heads mean smaller postings, fewer pages per query and more memory (docs/benchmarks.md)"},
			&cli.IntFlag{Name: "replicas", Value: 10, Usage: "most heads a vector is stored under (the RNG rule keeps fewer where heads lie behind one another); more replicas mean larger postings and higher recall per posting read (docs/benchmarks.md)"},
			&cli.IntFlag{Name: "posting-limit", Value: 96, Usage: "vectors per posting: the closest to the head are kept, plus any vector whose nearest head it is (so no vector is lost)"},
			&cli.Float64Flag{Name: "rng-factor", Value: 1, Usage: "RNG rule: skip head c when factor·d(c,c') < d(x,c) for a chosen head c' (squared distances)"},
			&cli.Float64Flag{Name: "replica-eps", Value: -1, Usage: "only heads within d1+eps·|d1| of the vector (d1: nearest head); negative = no bound"},
			&cli.IntFlag{Name: "candidates", Value: 64, Usage: "candidate heads searched per vector"},
			&cli.StringFlag{Name: "codec", Value: posting.DefaultCodec.String(), Usage: "posting compression: none, zstd, zstd-planes, huff (a Huffman table per posting) or huff-shared (one table for the file: faster to decode, about 2 % larger)"},
			&cli.IntFlag{Name: "graph-degree", Usage: "head graph: most neighbours per head (0 = default, 48)"},
			&cli.IntFlag{Name: "graph-build-list", Value: 0, Usage: "head graph: search list while building (0 = default)"},
			&cli.IntFlag{Name: "threads", Usage: "worker threads (0 = all cores)"},
			&cli.StringFlag{Name: "memory-budget", Usage: "peak memory to stay within, e.g. 1GiB (default: a quarter of RAM)"},
			&cli.StringFlag{Name: "tmp-dir", Usage: "directory for assignment spill files (default: inside the build directory)"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "random seed; the same seed gives the same index"},
			&cli.IntFlag{Name: "crop", Usage: "use only the first N base vectors (0 = all)"},
			&cli.BoolFlag{Name: "resume", Usage: "continue the interrupted build of --out (killed, crashed, out of memory, or stopped with Ctrl-C) from its last checkpoint: " +
				"the heads, the head graph, the vectors assigned and the postings written so far are kept once their checksums are verified, the rest is redone; " +
				"give the same flags (--threads and --memory-budget may differ); the index is byte for byte the one an uninterrupted build makes. " +
				"With no interrupted build to continue, it starts afresh"},
			&cli.StringFlag{Name: "build-id", Usage: "the build id written into every index file, 32 hex digits (default: random); " +
				"the same id, base, flags and seed give a byte-identical index"},
			&cli.BoolFlag{Name: "force", Usage: "replace --out if it is a spann index or an empty directory (anything else is refused); the swap is atomic"},
			&cli.IntFlag{Name: "shards", Value: 1, Usage: "split the base into this many shards, each a complete index in --out/shard-NNN over the vectors i with i mod shards = its number (that shard's vector i div shards), with --out/shards.json written last; for an index too big for one machine, each shard served by its own spann-serve"},
			&cli.StringFlag{Name: "labels", Usage: "labels of the base vectors for filtered search (.spmat, or text: one line of space-separated labels per vector); stored in the index as labels.bin"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object on stdout"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress output"},
		}, cmdutil.LabelListFlags()...),
		Action: runBuild,
	}
}

func options(c *cli.Context) (build.Options, error) {
	o := build.Options{Base: c.String("base"), Out: c.String("out"), Crop: c.Int("crop"),
		HeadRatio: c.Float64("head-ratio"), Replicas: c.Int("replicas"), PostingLimit: c.Int("posting-limit"),
		RNGFactor: c.Float64("rng-factor"), ReplicaEps: c.Float64("replica-eps"), CandidateHeads: c.Int("candidates"),
		TmpDir: c.String("tmp-dir"), Seed: c.Int64("seed"), Force: c.Bool("force"), Resume: c.Bool("resume"),
		Graph: memindex.Params{Degree: c.Int("graph-degree"), BuildList: c.Int("graph-build-list")}}
	var err error
	if s := c.String("build-id"); s != "" {
		if o.BuildID, err = indexfile.ParseBuildID(s); err != nil {
			return o, fmt.Errorf("--build-id: %w", err)
		}
	}
	if s := c.String("type"); s != "" {
		if o.Type, err = datasets.ParseType(s); err != nil {
			return o, err
		}
	}
	if o.Metric, err = vec.ParseMetric(c.String("metric")); err != nil {
		return o, err
	}
	if o.Codec, err = posting.ParseCodec(c.String("codec")); err != nil {
		return o, err
	}
	for _, name := range []string{"head-ratio", "rng-factor"} {
		if c.IsSet(name) && c.Float64(name) <= 0 {
			return o, fmt.Errorf("--%s %g: must be positive", name, c.Float64(name))
		}
	}
	for _, name := range []string{"replicas", "posting-limit", "candidates"} {
		if c.Int(name) < 1 {
			return o, fmt.Errorf("--%s %d: must be at least 1", name, c.Int(name))
		}
	}
	if c.Int("graph-degree") < 0 || c.Int("graph-build-list") < 0 {
		return o, fmt.Errorf("--graph-degree and --graph-build-list must not be negative")
	}
	if o.Threads, err = cmdutil.Threads(c.Int("threads")); err != nil {
		return o, err
	}
	if s := c.String("memory-budget"); s != "" {
		if o.MemoryBudget, err = cmdutil.ParseSize(s); err != nil {
			return o, fmt.Errorf("--memory-budget: %w", err)
		}
		if o.MemoryBudget < 64<<20 {
			return o, fmt.Errorf("--memory-budget %s: too small, at least 64MiB", s)
		}
	}
	return o, nil
}

func runBuild(c *cli.Context) error {
	o, err := options(c)
	if err != nil {
		return err
	}
	o.Progress = cmdutil.Progress(c.Bool("json") || c.Bool("quiet"))
	labels, err := readBuildLabels(c.String("labels"), c.String("base"), o.Type, c.Int("crop"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if s := c.Int("shards"); s != 1 {
		if s < 1 || s > 999 {
			return fmt.Errorf("--shards %d: must be 1 to 999", s)
		}
		return runSharded(ctx, c, o, labels, s)
	}
	st, err := build.Run(ctx, o)
	if err != nil {
		return err
	}
	var labelSecs float64
	if labels != nil {
		start := time.Now()
		if err := attachLabels(c, o, labels); err != nil {
			return err
		}
		labelSecs = time.Since(start).Seconds()
	}
	if st.ResumedAfter != "" && !c.Bool("json") {
		fmt.Printf("resumed after: %s\n", st.ResumedAfter)
	}
	if c.Bool("json") {
		return cmdutil.PrintJSON(os.Stdout, struct {
			*build.Stats
			Labels       int     `json:"labels"`
			LabelSeconds float64 `json:"label_seconds"`
		}{st, labelVocab(labels), labelSecs})
	}
	if labels != nil {
		fmt.Printf("labels: %d labels on %d vectors, attached in %.1f s\n", labels.Vocab, labels.Rows(), labelSecs)
	}
	fmt.Printf("built %s: %d %s vectors of dim %d (%s), %d heads\n", o.Out, st.N, st.Type, st.Dim, st.Metric, st.Heads)
	fmt.Printf("  replicas per stored vector: mean %.2f, max %d; dropped by --posting-limit: %d (kept past it as their nearest head: %d; vectors in no posting: %d)\n",
		st.ReplicasMean, st.ReplicasMax, st.Dropped, st.KeptPastLimit, st.Unstored)
	fmt.Printf("  posting sizes: min %d, mean %.1f, p99 %d, max %d; %.2f pages each on average\n",
		st.PostingMin, st.PostingMean, st.PostingP99, st.PostingMax, st.PagesMean)
	names := make([]string, 0, len(st.FileBytes))
	for n := range st.FileBytes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("  %-14s %10.1f MiB\n", n, float64(st.FileBytes[n])/(1<<20))
	}
	fmt.Printf("  %-14s %10.1f MiB\n", "total", float64(st.TotalBytes)/(1<<20))
	for _, ph := range []string{"select heads", "head graph", "assign and write postings"} {
		fmt.Printf("  %-26s %8.1f s\n", ph, st.Seconds[ph])
	}
	fmt.Printf("  total %.1f s, peak RSS %.1f MiB (budget %.0f MiB)\n", st.TotalSeconds, float64(st.PeakRSS)/(1<<20), float64(st.MemoryBudget)/(1<<20))
	return nil
}

// readBuildLabels reads --labels, if given, before the build (so that a
// bad file fails in a second, not after the build): it must have a row
// for every base vector in use (crop: the first crop rows are used).
func readBuildLabels(path, base string, typ datasets.ElemType, crop int) (*datasets.Labels, error) {
	if path == "" {
		return nil, nil
	}
	labels, err := datasets.ReadLabels(path)
	if err != nil {
		return nil, err
	}
	vf, err := datasets.OpenVectors(base, typ)
	if err != nil {
		return nil, err
	}
	n := vf.N
	vf.Close()
	if crop > 0 && crop < n {
		n = crop
	}
	switch {
	case labels.Rows() < n || (crop == 0 && labels.Rows() != n):
		return nil, fmt.Errorf("%s: labels for %d vectors, the base %s has %d", path, labels.Rows(), base, n)
	case labels.Rows() > n:
		labels.Indptr = labels.Indptr[:n+1]
		labels.Indices = labels.Indices[:labels.Indptr[n]]
	}
	return labels, nil
}

func labelVocab(l *datasets.Labels) int {
	if l == nil {
		return 0
	}
	return l.Vocab
}
