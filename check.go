package spann

import (
	"errors"
	"fmt"
	"os"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/posting"
)

// CheckReport is what Check found in an index.
type CheckReport struct {
	Files        int     `json:"files"`    // files whose whole-content checksum matched the manifest
	Postings     int     `json:"postings"` // postings read and decoded
	Vectors      int     `json:"vectors"`  // indexed vectors (the manifest's n)
	Heads        int     `json:"heads"`
	Entries      int64   `json:"posting_entries"` // (head, vector) pairs stored in postings
	ReplicasMean float64 `json:"replicas_mean"`   // entries per stored non-head vector
	// Unreachable counts vectors that are neither a head nor in any
	// posting: no search can ever return them. It must be 0.
	Unreachable     int      `json:"unreachable"`
	UnreachableIDs  []uint32 `json:"unreachable_ids,omitempty"` // the first few
	HeadsInPostings int      `json:"heads_in_postings"`         // heads stored again in a posting (harmless, wasted pages)
	// Deleted counts the ids deleted by updates (wal.log and
	// tombstones.bin, both checked by Open): still stored, never returned.
	Deleted int `json:"deleted"`
	// LogTornBytes is the torn tail of wal.log that Open skipped (see
	// Info.LogTornBytes).
	LogTornBytes int64 `json:"log_torn_bytes"`
	// LabelLists and ListEntries count the label lists read and decoded
	// and the vectors they hold; each list must hold carriers of its
	// label only, and each carrier of a label with lists must be in one.
	LabelLists  int      `json:"label_lists"`
	ListEntries int64    `json:"label_list_entries"`
	Problems    []string `json:"problems,omitempty"`
}

// OK reports whether the index passed every check.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// ErrCheckFailed is returned by Check when it found problems; the report
// lists them.
var ErrCheckFailed = errors.New("spann: index check failed")

// maxListed bounds the ids and problems a report lists one by one.
const maxListed = 20

// Check verifies the whole index in dir, beyond what Open checks (the
// build id in every file's header, the small files' checksums): every
// file's full SHA-256 against the manifest, every posting read and
// decoded (its CRC, header, ids and vector count), and every vector
// accounted for, as a head or in at least one posting; the same for the
// label lists, against their labels' carriers. It reads every byte
// of the index once. It returns the report, and ErrCheckFailed (wrapped,
// with the first problem) when anything is wrong; an index that cannot be
// opened at all returns Open's error.
func Check(dir string) (*CheckReport, error) {
	ix, err := Open(dir, Options{IO: "pread"})
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	r := &CheckReport{Vectors: ix.N(), Heads: len(ix.eng.headIDs()), Deleted: ix.Deleted(), LogTornBytes: ix.tornBytes}
	problem := func(format string, a ...any) {
		if len(r.Problems) < maxListed {
			r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
		}
	}
	for _, f := range ix.Manifest.Files {
		if err := ix.Manifest.CheckFile(dir, f.Name, true); err != nil {
			problem("%v", err)
			continue
		}
		r.Files++
	}
	copies, err := ix.countCopies(r, problem)
	if err != nil {
		return r, err
	}
	for buf := ix.buf.Load(); buf != nil; buf = buf.prev.Load() { // inserted vectors, stored in the log
		for h := range buf.lists {
			for _, e := range buf.list(int32(h)) {
				copies[e.id] = min(copies[e.id]+1, 255)
			}
		}
	}
	r.account(copies, ix.eng.headIDs(), ix.dead.Load(), problem)
	if err := ix.checkLists(r, problem); err != nil {
		return r, err
	}
	if !r.OK() {
		return r, fmt.Errorf("%w: %s: %s", ErrCheckFailed, dir, r.Problems[0])
	}
	return r, nil
}

// account fills the report's vector figures from each vector's number of
// posting copies and the head ids: every vector must be a head or in a
// posting, unless it is deleted (dead; a rewritten posting drops deleted
// vectors).
func (r *CheckReport) account(copies []uint8, heads []uint32, dead *roaring.Bitmap, problem func(string, ...any)) {
	isHead := make([]bool, len(copies))
	for _, id := range heads {
		if id == indexfile.RemovedHead {
			continue
		}
		if int(id) >= len(copies) {
			problem("%s: head id %d is not below n = %d", "heads", id, len(copies))
			continue
		}
		isHead[id] = true
		if copies[id] > 0 {
			r.HeadsInPostings++
		}
	}
	stored := 0
	for id, c := range copies {
		switch {
		case c > 0 && !isHead[id]:
			stored++
		case c == 0 && !isHead[id] && (dead == nil || !dead.Contains(uint32(id))):
			r.Unreachable++
			if len(r.UnreachableIDs) < maxListed {
				r.UnreachableIDs = append(r.UnreachableIDs, uint32(id))
			}
		}
	}
	if stored > 0 {
		r.ReplicasMean = float64(r.Entries) / float64(stored)
	}
	if r.Unreachable > 0 {
		problem("%d vectors are neither heads nor in any posting (first: %v): no search can return them", r.Unreachable, r.UnreachableIDs)
	}
}

// countCopies decodes every posting in file order and returns how many
// postings hold each vector (saturating at 255).
func (ix *Index) countCopies(r *CheckReport, problem func(string, ...any)) ([]uint8, error) {
	copies := make([]uint8, ix.N())
	err := ix.eachPosting(func(h int32, ids []uint32, _ []byte, err error) error {
		if err != nil {
			problem("%s: posting %d: %v", ix.postings, h, err)
			return nil
		}
		r.Postings++
		r.Entries += int64(len(ids))
		for _, id := range ids {
			if int(id) >= len(copies) {
				problem("%s: posting %d holds id %d, not below n = %d", ix.postings, h, id, len(copies))
				continue
			}
			if copies[id] < 255 {
				copies[id]++
			}
		}
		return nil
	})
	return copies, err
}

// eachPosting reads and decodes every posting of the current directory,
// in head order, and calls fn with its ids and rows — or with the error
// that decoding it met (a posting that cannot be read at all stops the
// walk with that error). fn's error stops the walk and is returned.
func (ix *Index) eachPosting(fn func(h int32, ids []uint32, rows []byte, err error) error) error {
	return eachExtent(ix.store, fn)
}

// eachExtent is eachPosting over any postings store (the label lists').
func eachExtent(st *posting.Store, fn func(h int32, ids []uint32, rows []byte, err error) error) error {
	f, err := os.Open(st.Path())
	if err != nil {
		return fmt.Errorf("index file missing or unreadable: %w", err)
	}
	defer f.Close()
	dec, err := st.NewDecoder()
	if err != nil {
		return err
	}
	defer dec.Close()
	var buf []byte
	view := st.Snapshot()
	for h := range int32(view.Len()) {
		e := view.Entry(h)
		if cap(buf) < int(e.Bytes) {
			buf = make([]byte, e.Bytes)
		}
		b := buf[:e.Bytes]
		if _, err := f.ReadAt(b, int64(e.Offset)); err != nil {
			return fmt.Errorf("%s: posting %d: %w", st.Path(), h, err)
		}
		ids, rows, err := dec.Decode(b, e)
		if err := fn(h, ids, rows, err); err != nil {
			return err
		}
	}
	return nil
}
