// Command spann-beam builds a SPANN index as an Apache Beam pipeline: the
// phases of spann-build spread over a runner's workers, the index equal to
// spann-build's for the same base, flags, memory budget, seed and build id.
// It runs on Beam's Prism runner in this process by default, and on Flink,
// Spark or Dataflow with Beam's --runner flags (README, "spann-beam").
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/gospann/spann/beam/pipeline"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "spann-beam:", err)
		os.Exit(1)
	}
}

func flags() (*pipeline.Config, *int, *string) {
	beamFlag := map[string]bool{} // registered by Beam's packages
	flag.VisitAll(func(f *flag.Flag) { beamFlag[f.Name] = true })
	c := &pipeline.Config{}
	flag.StringVar(&c.Base, "base", "", "base vector file (.fbin, .u8bin or .i8bin); every worker must be able to open it (required)")
	flag.StringVar(&c.Out, "out", "", "index directory to create; every worker must be able to write beside it (required)")
	flag.StringVar(&c.Type, "type", "", "element type overriding the extension: float32, uint8 or int8")
	flag.StringVar(&c.Metric, "metric", "l2", "l2, ip or cosine (cosine: float32 only)")
	flag.StringVar(&c.Codec, "codec", "default", "posting compression: none, zstd, zstd-planes, huff or huff-shared (default: spann-build's)")
	flag.Float64Var(&c.HeadRatio, "head-ratio", 0.18, "fraction of the vectors that become heads, in (0,1)")
	flag.IntVar(&c.Replicas, "replicas", 10, "most heads a vector is stored under")
	flag.IntVar(&c.PostingLimit, "posting-limit", 96, "vectors per posting (plus any vector whose nearest head it is)")
	flag.Float64Var(&c.RNGFactor, "rng-factor", 1, "RNG rule factor (squared distances)")
	flag.Float64Var(&c.ReplicaEps, "replica-eps", -1, "only heads within d1+eps·|d1| of the vector; negative = no bound")
	flag.IntVar(&c.CandidateHeads, "candidates", 64, "candidate heads searched per vector")
	flag.IntVar(&c.GraphDegree, "graph-degree", 0, "head graph: most neighbours per head (0 = default, 48)")
	flag.IntVar(&c.GraphBuildList, "graph-build-list", 0, "head graph: search list while building (0 = default)")
	flag.IntVar(&c.Threads, "threads", 0, "threads of the one-worker steps (head selection, head graph); 0 = all cores. The index does not depend on it")
	flag.Int64Var(&c.Seed, "seed", 1, "random seed; the same seed gives the same index")
	flag.StringVar(&c.BuildID, "build-id", "", "the build id written into every index file, 32 hex digits (default: random); with spann-build's flags, seed, memory budget and id the index is spann-build's byte for byte")
	flag.IntVar(&c.BlockRows, "block-rows", 16384, "base vectors per assignment element (the unit of work of the assign step)")
	flag.IntVar(&c.Ranges, "ranges", 0, "head ranges, the shuffle's keys: each is encoded by one call holding all its records (0 = about 64 MiB of records each)")
	flag.IntVar(&c.Workers, "workers", 0, "most assign or encode calls computing at once in one worker process (0 = as many as the runner runs; Prism runs up to 8 bundles at once)")
	flag.StringVar(&c.Shuffle, "shuffle", "runner", "how the assignment records reach their head range: runner (through the runner's GroupByKey) or files (written to files beside --out, only their names through the runner: for Prism, which holds its shuffle in memory)")
	budget := flag.String("memory-budget", "", "memory budget in bytes or with a unit (e.g. 6GiB) that sizes the clustering sample as in spann-build; give spann-build's to get its heads (default: a quarter of the launcher's RAM)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (with Prism: the runner and the workers) to this file")
	shards := flag.Int("shards", 1, "split the base into this many shards, each a complete index in --out/shard-NNN over the vectors i with i mod shards = its number, with --out/shards.json written last (as spann-build --shards)")
	flag.Usage = func() {
		w := flag.CommandLine.Output()
		fmt.Fprintf(w, "usage: spann-beam --base FILE --out DIR [flags] [Beam flags]\n\n"+
			"Builds a SPANN index as an Apache Beam pipeline: on Beam's Prism runner in this process unless --runner\n"+
			"says otherwise. The index equals spann-build's for the same base, flags, --memory-budget, --seed and --build-id.\n\n")
		flag.VisitAll(func(f *flag.Flag) {
			if !beamFlag[f.Name] {
				fmt.Fprintf(w, "  --%s\n    \t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
			}
		})
		fmt.Fprintf(w, "\nBeam's flags are accepted too: --runner (prism, flink, spark, dataflow, universal), --endpoint (a job\n"+
			"server, e.g. localhost:8099), --environment_type (LOOPBACK, DOCKER, PROCESS), --job_name, and for Dataflow\n"+
			"--project, --region, --staging_location, --temp_location (README, \"spann-beam\", for the exact commands).\n")
	}
	return c, shards, budget
}

var cpuProfile string

func run() error {
	cfg, shards, budget := flags()
	flag.Parse()
	beam.Init() // a worker started by a runner serves here and never returns
	if *budget != "" {
		b, err := parseSize(*budget)
		if err != nil {
			return fmt.Errorf("--memory-budget: %w", err)
		}
		cfg.MemoryBudget = b
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	p, s := beam.NewPipelineWithRoot()
	var cleanup []string
	if *shards > 1 {
		sh, err := pipeline.NewSharded(*cfg, *shards)
		if err != nil {
			return err
		}
		sh.Construct(s)
		cleanup = append(cleanup, sh.Out)
	} else {
		c, err := pipeline.New(*cfg)
		if err != nil {
			return err
		}
		pipeline.Construct(s, c)
		cleanup = append(cleanup, c.Staging)
	}
	if err := beamx.Run(ctx, p); err != nil {
		for _, dir := range cleanup {
			os.RemoveAll(dir) // (on a cluster: what the launcher can reach)
		}
		return err
	}
	fmt.Printf("built %s in %.1f s\n", cfg.Out, time.Since(start).Seconds())
	return nil
}

// parseSize parses a byte count with an optional KiB/MiB/GiB/TiB (or
// K/M/G/T) unit.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 64<<20/float64(mult) {
		return 0, fmt.Errorf("%q is not a size of at least 64MiB", s)
	}
	return int64(v * float64(mult)), nil
}
