package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/internal/cmdutil"
	"github.com/gospann/spann/internal/indexfile"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "verify a whole index: every file's checksum, every posting, every vector reachable",
		Description: "Reads every byte of the index once: checks that every file is of the manifest's build (the build id in " +
			"its header) and that its full SHA-256 is the manifest's, " +
			"decodes every posting (its CRC, header, ids and count) and counts each vector's copies. Every " +
			"vector must be a head or in at least one posting, else no search can return it. Prints a summary " +
			"(or one JSON object with --json) and exits non-zero on any problem. A sharded index (spann-build --shards) " +
			"is checked shard by shard, each against the build id shards.json lists, their vectors adding up to its n.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "index", Required: true, Usage: "index directory made by spann-build"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON object on stdout"},
		},
		Action: func(c *cli.Context) error {
			start := time.Now()
			if sh, err := indexfile.ReadShards(c.String("index")); sh != nil || err != nil {
				if err != nil {
					return err
				}
				return checkShards(c, sh)
			}
			r, err := spann.Check(c.String("index"))
			if r == nil {
				return err
			}
			if c.Bool("json") {
				if jerr := cmdutil.PrintJSON(os.Stdout, r); jerr != nil {
					return jerr
				}
			} else {
				fmt.Printf("files: %d checksums match the manifest\n", r.Files)
				fmt.Printf("postings: %d decoded, %d entries, %.2f replicas per stored vector\n", r.Postings, r.Entries, r.ReplicasMean)
				fmt.Printf("vectors: %d, heads %d (%d of them also in a posting), unreachable %d, deleted %d\n", r.Vectors, r.Heads, r.HeadsInPostings, r.Unreachable, r.Deleted)
				if r.LabelLists > 0 {
					fmt.Printf("label lists: %d decoded, %d entries\n", r.LabelLists, r.ListEntries)
				}
				if r.LogTornBytes > 0 {
					fmt.Printf("write-ahead log: a torn tail of %d bytes skipped (updates a crash cut before they were acknowledged, or a damaged last record)\n", r.LogTornBytes)
				}
				for _, p := range r.Problems {
					fmt.Println("problem:", p)
				}
				fmt.Printf("checked in %.1f s\n", time.Since(start).Seconds())
			}
			if errors.Is(err, spann.ErrCheckFailed) {
				return fmt.Errorf("%s: %d problem(s), first: %s", c.String("index"), len(r.Problems), r.Problems[0])
			}
			return err
		},
	}
}

// checkShards checks every shard of a sharded index as check checks one
// index, and the set against its shards.json.
func checkShards(c *cli.Context, sh *indexfile.Shards) error {
	dir := c.String("index")
	var reports []*spann.CheckReport
	var n int64
	for s, d := range sh.Dirs {
		path := filepath.Join(dir, d)
		r, err := spann.Check(path)
		if err != nil {
			return fmt.Errorf("shard %d: %w", s, err)
		}
		ix, err := spann.Open(path, spann.Options{IO: "pread"})
		if err != nil {
			return fmt.Errorf("shard %d: %w", s, err)
		}
		id := ix.Manifest.BuildID
		ix.Close()
		if id != sh.BuildIDs[s] {
			return fmt.Errorf("%s: shard %d is build %s, %s lists %s", path, s, id, indexfile.ShardsName, sh.BuildIDs[s])
		}
		n += int64(r.Vectors)
		reports = append(reports, r)
		if !c.Bool("json") {
			fmt.Printf("%s: %d vectors, %d postings decoded, %d files match, unreachable %d\n", d, r.Vectors, r.Postings, r.Files, r.Unreachable)
		}
	}
	if n != sh.N {
		return fmt.Errorf("%s: the shards hold %d vectors, %s says %d", dir, n, indexfile.ShardsName, sh.N)
	}
	if c.Bool("json") {
		return cmdutil.PrintJSON(os.Stdout, struct {
			Shards  int                  `json:"shards"`
			Vectors int64                `json:"vectors"`
			Each    []*spann.CheckReport `json:"each"`
		}{sh.Shards, n, reports})
	}
	fmt.Printf("%d shards, %d vectors: every shard checks\n", sh.Shards, n)
	return nil
}
