// Command spann-update changes an index in place: inserts vectors and
// deletes ids (each batch durable in the index's write-ahead log before
// the next) and checkpoints the log into the index's files.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/cmdutil"
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	return &cli.App{
		Name:  "spann-update",
		Usage: "insert and delete vectors of an index in place, durably; attach labels for filtered search",
		UsageText: "spann-update --index DIR [--insert FILE [--ids IDS.ibin] [--upsert] [--insert-labels FILE]] [--delete IDS.ibin] [--batch 1000] [--checkpoint]\n" +
			"   spann-update --index DIR --labels FILE",
		Description: "Opens the index for writing (an exclusive lock: one writer at a time; searches in other " +
			"processes that open it afterwards see the changes). --delete reads ids from an .ibin file with one " +
			"column (uint32 n, uint32 1, then n int32 ids) and deletes them in batches of --batch: each batch is " +
			"in the index's write-ahead log (wal.log, fsynced) before the next starts, so a crash loses at most " +
			"the batch in flight; a deleted id is never returned by a search again, and deleting one twice does " +
			"nothing. An id outside the index fails the whole batch it is in, and stops. --insert adds the vectors of " +
			"FILE (.fbin/.u8bin/.i8bin of the index's type and dimension) under new ids, following the largest so far, " +
			"each assigned to its heads as a built vector is, logged the same way, and searched from memory until a " +
			"checkpoint. --ids gives them ids of your own instead (an .ibin file with one column, one id per vector, " +
			"each >= 0 and given once): an id already in the index is an error unless --upsert, which replaces its " +
			"vector; a deleted id is never given again; automatic ids then continue after the largest. " +
			"Inserts run before deletes, so --delete may name the new ids. --checkpoint then folds the log " +
			"into the index's files: the deletes into tombstones.bin, the inserted vectors into their postings (each " +
			"posting rewritten without its deleted vectors, one past the build's posting limit split in two under a new " +
			"head, in space freed by earlier checkpoints when no other process has the index open, else at the end of " +
			"postings.bin), and a new generation of directory, heads, graph and manifest. --labels instead stores " +
			"the vectors' labels (labels.bin: each label's bitmap of carriers, each vector's home posting, found by " +
			"reading every posting once, and label lists); checkpoints carry them on. Inserted vectors carry no labels.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "index", Required: true, Usage: "index directory"},
			&cli.StringFlag{Name: "insert", Usage: "vectors to insert: .fbin, .u8bin or .i8bin of the index's type and dimension"},
			&cli.StringFlag{Name: "ids", Usage: "ids for the vectors of --insert, in order: .ibin file with one column (default: the next unused ids)"},
			&cli.BoolFlag{Name: "upsert", Usage: "with --ids: replace the vector of an id already in the index instead of failing"},
			&cli.StringFlag{Name: "insert-labels", Usage: "labels of the vectors of --insert, one row per vector (.spmat, or text: one line of labels per vector); the index must have labels"},
			&cli.StringFlag{Name: "delete", Usage: "ids to delete: .ibin file with one column"},
			&cli.IntFlag{Name: "batch", Value: 1000, Usage: "ids per logged batch (one fsync each)"},
			&cli.BoolFlag{Name: "checkpoint", Usage: "fold the write-ahead log into the index files afterwards, and empty it"},
			&cli.StringFlag{Name: "labels", Usage: "instead of updating: give the index its vectors' labels for filtered search (.spmat, or text: one line of labels per vector, a line for every vector), replacing any; stored as labels.bin"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object on stdout"},
		}, cmdutil.LabelListFlags()...),
		Action: run,
	}
}

type summary struct {
	Inserted     int     `json:"inserted"`
	FirstID      int32   `json:"first_inserted_id,omitempty"`
	InsertPerSec float64 `json:"inserted_per_second,omitempty"`
	Deleted      int     `json:"deleted_now"`
	DeletedTotal int     `json:"deleted_total"`
	Batches      int     `json:"batches"`
	Seconds      float64 `json:"seconds"`
	PerSecond    float64 `json:"ids_per_second"`
	Checkpoint   bool    `json:"checkpointed"`
	CheckpointS  float64 `json:"checkpoint_seconds,omitempty"`
}

func run(c *cli.Context) error {
	if path := c.String("labels"); path != "" {
		if c.String("insert") != "" || c.String("delete") != "" || c.Bool("checkpoint") {
			return fmt.Errorf("--labels goes alone: attach the labels, then update (checkpoints keep them)")
		}
		return attachLabels(c, path)
	}
	if c.Int("batch") < 1 {
		return fmt.Errorf("--batch %d: must be at least 1", c.Int("batch"))
	}
	if c.String("insert") == "" && c.String("delete") == "" && !c.Bool("checkpoint") {
		return fmt.Errorf("nothing to do: give --insert FILE, --delete IDS.ibin and/or --checkpoint")
	}
	if (c.String("ids") != "" || c.Bool("upsert")) && c.String("insert") == "" {
		return fmt.Errorf("--ids and --upsert go with --insert")
	}
	if c.Bool("upsert") && c.String("ids") == "" {
		return fmt.Errorf("--upsert needs --ids")
	}
	ids, err := readIDs(c.String("delete"))
	if err != nil {
		return err
	}
	given, err := readIDs(c.String("ids"))
	if err != nil {
		return err
	}
	ix, err := spann.Open(c.String("index"), spann.Options{Writable: true})
	if err != nil {
		return err
	}
	defer ix.Close()
	var s summary
	var labels *datasets.Labels
	if lp := c.String("insert-labels"); lp != "" {
		if c.String("insert") == "" {
			return fmt.Errorf("--insert-labels needs --insert")
		}
		if labels, err = datasets.ReadLabels(lp); err != nil {
			return err
		}
	}
	if p := c.String("insert"); p != "" {
		if err := insertFile(ix, p, given, labels, c.Bool("upsert"), c.Int("batch"), &s); err != nil {
			return err
		}
	}
	before := ix.Deleted()
	start := time.Now()
	for lo := 0; lo < len(ids); lo += c.Int("batch") {
		hi := min(len(ids), lo+c.Int("batch"))
		if err := ix.Delete(ids[lo:hi]); err != nil {
			return fmt.Errorf("%s: ids %d..%d of %s: %w (the %d before them are deleted)", c.String("index"), lo, hi-1, c.String("delete"), err, lo)
		}
		s.Batches++
	}
	s.Seconds = time.Since(start).Seconds()
	s.DeletedTotal = ix.Deleted()
	s.Deleted = s.DeletedTotal - before
	if s.Seconds > 0 {
		s.PerSecond = float64(len(ids)) / s.Seconds
	}
	if c.Bool("checkpoint") {
		start := time.Now()
		if err := ix.Checkpoint(); err != nil {
			return err
		}
		s.Checkpoint, s.CheckpointS = true, time.Since(start).Seconds()
	}
	if err := ix.Close(); err != nil {
		return err
	}
	if c.Bool("json") {
		return cmdutil.PrintJSON(os.Stdout, s)
	}
	switch {
	case s.Inserted > 0 && given != nil:
		fmt.Printf("%s: %d vectors inserted under the ids of %s (%.0f vectors/s)\n", c.String("index"), s.Inserted, c.String("ids"), s.InsertPerSec)
	case s.Inserted > 0:
		fmt.Printf("%s: %d vectors inserted as ids %d..%d (%.0f vectors/s)\n", c.String("index"), s.Inserted, s.FirstID, int(s.FirstID)+s.Inserted-1, s.InsertPerSec)
	}
	fmt.Printf("%s: %d ids deleted now (%d given, in %d batches, %.0f ids/s), %d deleted in all",
		c.String("index"), s.Deleted, len(ids), s.Batches, s.PerSecond, s.DeletedTotal)
	if s.Checkpoint {
		fmt.Printf("; log checkpointed in %.1f s", s.CheckpointS)
	}
	fmt.Println()
	return nil
}

// readIDs reads an id file (.ibin, one column); none for path "".
func readIDs(path string) ([]int32, error) {
	if path == "" {
		return nil, nil
	}
	r, err := datasets.ReadResults(path)
	if err != nil {
		return nil, err
	}
	if r.K != 1 {
		return nil, fmt.Errorf("%s: %d columns, an id file has 1", path, r.K)
	}
	return r.IDs, nil
}

// insertFile inserts the vectors of path, batch rows at a time, under ids
// if given (one per vector), with labels if given (a row per vector).
func insertFile(ix *spann.Index, path string, ids []int32, labels *datasets.Labels, upsert bool, batch int, s *summary) error {
	vf, err := datasets.OpenVectors(path, 0)
	if err != nil {
		return err
	}
	defer vf.Close()
	if vf.Type != ix.Type() || vf.Dim != ix.Dim() {
		return fmt.Errorf("%s: %d-dimensional %s vectors, the index holds %d-dimensional %s", path, vf.Dim, vf.Type, ix.Dim(), ix.Type())
	}
	if ids != nil && len(ids) != vf.N {
		return fmt.Errorf("%s: %d vectors, but %d ids", path, vf.N, len(ids))
	}
	if labels != nil && labels.Rows() != vf.N {
		return fmt.Errorf("%s: %d vectors, but labels for %d", path, vf.N, labels.Rows())
	}
	start := time.Now()
	err = vf.Stream(batch, func(row int, rows []byte) error {
		n := len(rows) / vf.RowBytes()
		var first int32
		var err error
		var rl [][]int32 // the batch's labels
		if labels != nil {
			rl = make([][]int32, n)
			for i := range rl {
				rl[i] = labels.Row(row + i)
			}
		}
		switch {
		case ids != nil && rl != nil:
			first, err = ids[row], ix.InsertWithIDsLabeled(ids[row:row+n], rows, rl, upsert)
		case ids != nil:
			first, err = ids[row], ix.InsertWithIDs(ids[row:row+n], rows, upsert)
		case rl != nil:
			first, err = ix.InsertLabeled(rows, rl)
		default:
			first, err = ix.Insert(rows)
		}
		if err != nil {
			return fmt.Errorf("%s: rows %d..: %w (the %d before them are inserted)", path, row, err, s.Inserted)
		}
		if s.Inserted == 0 {
			s.FirstID = first
		}
		s.Inserted += n
		return nil
	})
	if secs := time.Since(start).Seconds(); secs > 0 {
		s.InsertPerSec = float64(s.Inserted) / secs
	}
	return err
}

// attachLabels is --labels: spann.AttachLabels with progress and a
// summary.
func attachLabels(c *cli.Context, path string) error {
	labels, err := datasets.ReadLabels(path)
	if err != nil {
		return err
	}
	start := time.Now()
	o := cmdutil.LabelLists(c, 0)
	end := cmdutil.LabelProgress(cmdutil.Progress(c.Bool("json")), &o)
	err = spann.AttachLabels(c.String("index"), labels, o)
	end()
	if err != nil {
		return err
	}
	out := struct {
		Labels  int     `json:"labels"`
		Vectors int     `json:"vectors"`
		Seconds float64 `json:"seconds"`
	}{labels.Vocab, labels.Rows(), time.Since(start).Seconds()}
	if c.Bool("json") {
		return cmdutil.PrintJSON(os.Stdout, out)
	}
	fmt.Printf("%s: %d labels on %d vectors attached in %.1f s\n", c.String("index"), out.Labels, out.Vectors, out.Seconds)
	return nil
}
