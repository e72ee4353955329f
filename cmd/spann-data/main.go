// Command spann-data makes and inspects vector data sets: a seeded synthetic
// generator, TEXMEX conversion, cropping and a validating file summary.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/cmdutil"
	"github.com/gospann/spann/internal/progress"
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	return &cli.App{
		Name:  "spann-data",
		Usage: "generate, convert, crop and check vector files (.fbin/.u8bin/.i8bin)",
		Commands: []*cli.Command{
			generateCommand(), labelsCommand(), convertCommand(), cropCommand(), infoCommand(),
		},
	}
}

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "write a seeded synthetic base and query set that resembles real embeddings",
		Description: "A mixture of Gaussian clusters of skewed sizes, each in its own low-dimensional subspace " +
			"plus noise. Writes DIR/base.EXT and DIR/query.EXT (EXT from --type); queries are drawn from the " +
			"same mixture as the base but never copy it. The same flags always give the same bytes.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "directory to write base and query files into (created)"},
			&cli.IntFlag{Name: "n", Value: 100000, Usage: "base vectors"},
			&cli.IntFlag{Name: "nq", Value: 1000, Usage: "query vectors (0 = none)"},
			&cli.IntFlag{Name: "dim", Value: 128, Usage: "dimension"},
			&cli.StringFlag{Name: "type", Value: "uint8", Usage: "float32, uint8 or int8"},
			&cli.IntFlag{Name: "clusters", Usage: "mixture components (0 = n/5000, between 4 and 1000)"},
			&cli.IntFlag{Name: "intrinsic-dim", Usage: "dimension of each cluster's subspace (0 = min(16, dim))"},
			&cli.Float64Flag{Name: "noise", Usage: "full-dimensional noise standard deviation (0 = 0.05)"},
			&cli.Float64Flag{Name: "skew", Usage: "cluster size skew: weight of cluster c ∝ 1/(c+1)^skew (0 = 1)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed"},
			&cli.IntFlag{Name: "threads", Usage: "worker threads (0 = all cores)"},
			&cli.BoolFlag{Name: "labels", Usage: "also write labels for the base and one query filter per query (see the labels command and its --label-* flags)"},
		}, labelFlags()...),
		Action: func(c *cli.Context) error {
			typ, err := datasets.ParseType(c.String("type"))
			if err != nil {
				return err
			}
			threads, err := cmdutil.Threads(c.Int("threads"))
			if err != nil {
				return err
			}
			if c.Int("nq") < 0 {
				return fmt.Errorf("--nq %d: must not be negative", c.Int("nq"))
			}
			if err := os.MkdirAll(c.String("out"), 0o755); err != nil {
				return err
			}
			p := datasets.GenParams{N: c.Int("n"), Dim: c.Int("dim"), Type: typ, Clusters: c.Int("clusters"),
				IntrinsicDim: c.Int("intrinsic-dim"), Noise: c.Float64("noise"), Skew: c.Float64("skew"), Seed: c.Uint64("seed")}
			basePath := filepath.Join(c.String("out"), "base"+typ.Ext())
			bar := progress.New(os.Stderr, "generate base", int64(p.N))
			err = datasets.Generate(basePath, p, threads, bar.Func())
			bar.Done()
			if err != nil {
				return err
			}
			fmt.Printf("wrote %s: %d × %d %s\n", basePath, p.N, p.Dim, typ)
			if nq := c.Int("nq"); nq > 0 {
				q := p
				q.N, q.Stream = nq, 1
				if q.Clusters == 0 {
					// Keep the base's mixture: the default depends on n.
					m, _ := datasets.NewMixture(p)
					q.Clusters = m.Params().Clusters
				}
				qPath := filepath.Join(c.String("out"), "query"+typ.Ext())
				if err := datasets.Generate(qPath, q, threads, nil); err != nil {
					return err
				}
				fmt.Printf("wrote %s: %d × %d %s\n", qPath, nq, p.Dim, typ)
			}
			if c.Bool("labels") {
				return writeLabels(c, basePath, c.String("out"), c.Int("nq"), threads)
			}
			return nil
		},
	}
}

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:  "convert",
		Usage: "convert TEXMEX .fvecs/.bvecs/.ivecs to .fbin/.u8bin/.ibin",
		Description: "How SIFT1M, GIST1M and the BIGANN ground truth are distributed. .fvecs becomes .fbin, " +
			".bvecs .u8bin and .ivecs (neighbour ids) .ibin. Streams, so any size converts.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "TEXMEX file"},
			&cli.StringFlag{Name: "out", Usage: "output file (default: the input with the matching extension)"},
			&cli.IntFlag{Name: "crop", Usage: "keep only the first N vectors (0 = all)"},
		},
		Action: func(c *cli.Context) error {
			in, out := c.String("in"), c.String("out")
			if out == "" {
				ext := map[string]string{".fvecs": ".fbin", ".bvecs": ".u8bin", ".ivecs": ".ibin"}[strings.ToLower(filepath.Ext(in))]
				if ext == "" {
					return fmt.Errorf("%s: not a TEXMEX file (want .fvecs, .bvecs or .ivecs)", in)
				}
				out = strings.TrimSuffix(in, filepath.Ext(in)) + ext
			}
			n, d, err := datasets.ConvertTexmex(in, out, c.Int("crop"))
			if err != nil {
				return err
			}
			fmt.Printf("wrote %s: %d × %d\n", out, n, d)
			return nil
		},
	}
}

func cropCommand() *cli.Command {
	return &cli.Command{
		Name:  "crop",
		Usage: "write the first N vectors of a vector file to a new file",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "vector file"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output vector file"},
			&cli.IntFlag{Name: "n", Required: true, Usage: "vectors to keep"},
			&cli.StringFlag{Name: "type", Usage: "element type, overriding the extension"},
		},
		Action: func(c *cli.Context) error {
			typ, err := optType(c.String("type"))
			if err != nil {
				return err
			}
			v, err := datasets.OpenVectors(c.String("in"), typ)
			if err != nil {
				return err
			}
			defer v.Close()
			if err := v.Crop(c.Int("n")); err != nil {
				return err
			}
			w, err := datasets.CreateVectors(c.String("out"), v.Type, v.Dim)
			if err != nil {
				return err
			}
			if err := v.Stream(max(1, (16<<20)/v.RowBytes()), func(_ int, rows []byte) error { return w.Write(rows) }); err != nil {
				w.Abort()
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			fmt.Printf("wrote %s: %d × %d %s\n", c.String("out"), v.N, v.Dim, v.Type)
			return nil
		},
	}
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "validate a vector, ground-truth or result file and print its shape",
		Description: "Vector files are checked in full (size against header; every float32 value finite). " +
			"Files ending in .ibin are read as results, other non-vector files as ground truth.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "type", Usage: "element type for vector files, overriding the extension"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per file"},
		},
		ArgsUsage: "FILE...",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("info: name at least one file")
			}
			typ, err := optType(c.String("type"))
			if err != nil {
				return err
			}
			for _, path := range c.Args().Slice() {
				if strings.HasPrefix(path, "-") {
					return fmt.Errorf("info: %q after a file name: give flags before the files", path)
				}
			}
			for _, path := range c.Args().Slice() {
				info, err := describe(path, typ)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					cmdutil.PrintJSON(os.Stdout, info)
				} else {
					fmt.Println(info["summary"])
				}
			}
			return nil
		},
	}
}

func optType(s string) (datasets.ElemType, error) {
	if s == "" {
		return 0, nil
	}
	return datasets.ParseType(s)
}

func describe(path string, typ datasets.ElemType) (map[string]any, error) {
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case ext == ".ibin":
		r, err := datasets.ReadResults(path)
		if err != nil {
			return nil, err
		}
		return map[string]any{"file": path, "kind": "results", "n": r.N, "k": r.K,
			"summary": fmt.Sprintf("%s: results, %d queries × %d ids", path, r.N, r.K)}, nil
	case typ != 0 || ext == ".fbin" || ext == ".u8bin" || ext == ".i8bin":
		v, err := datasets.OpenVectors(path, typ)
		if err != nil {
			return nil, err
		}
		defer v.Close()
		if err := v.Stream(max(1, (16<<20)/v.RowBytes()), func(int, []byte) error { return nil }); err != nil {
			return nil, err
		}
		return map[string]any{"file": path, "kind": "vectors", "n": v.N, "dim": v.Dim, "type": v.Type.String(),
			"summary": fmt.Sprintf("%s: %d × %d %s vectors, all valid", path, v.N, v.Dim, v.Type)}, nil
	default:
		g, err := datasets.ReadGroundTruth(path)
		if err != nil {
			return nil, err
		}
		return map[string]any{"file": path, "kind": "groundtruth", "nq": g.NQ, "k": g.K,
			"summary": fmt.Sprintf("%s: ground truth, %d queries × %d neighbours", path, g.NQ, g.K)}, nil
	}
}
