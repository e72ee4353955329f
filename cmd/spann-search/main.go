// Command spann-search searches a SPANN index and evaluates the results, and
// computes exact ground truth and recall for any big-ann-benchmarks data set.
package main

import (
	"github.com/urfave/cli/v2"

	"github.com/gospann/spann/internal/cmdutil"
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	return &cli.App{
		Name:  "spann-search",
		Usage: "search a SPANN index; compute exact ground truth and tie-aware recall",
		Description: "Vector files are big-ann-benchmarks .fbin (float32), .u8bin (uint8) or .i8bin (int8): " +
			"uint32 n, uint32 dim, then n*dim row-major elements. Distances are squared L2, or the negated " +
			"inner product for ip and cosine (cosine normalises float32 vectors to unit length first).",
		UsageText: "spann-search --index DIR --queries Q [--k 10] [--gt GT] [--out R.ibin] [options]\n" +
			"spann-search groundtruth --base B --queries Q --k 100 --out GT\n" +
			"spann-search recall --gt GT --results R.ibin --k 10\n" +
			"spann-search plot --out F.png [NAME=]SWEEP.csv ...\n" +
			"spann-search check --index DIR",
		Flags:    searchFlags(),
		Action:   runSearch,
		Commands: []*cli.Command{groundtruthCommand(), recallCommand(), plotCommand(), checkCommand()},
	}
}
