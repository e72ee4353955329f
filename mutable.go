package spann

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
	"golang.org/x/sys/unix"

	"github.com/gospann/spann/internal/crash"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/wal"
)

// Updates (issue 10; deletes so far). An Index opened with
// Options.Writable takes an exclusive lock on the directory (update.lock)
// and owns its write-ahead log, wal.log: Delete appends a record and
// returns once it is durable (concurrent Deletes share one fsync), then
// publishes a new tombstone bitmap that searches consult, so a deleted id
// is never returned. Checkpoint folds the log into tombstones.bin and
// empties the log. Open — read-only or writable — replays the log, then
// reads tombstones.bin: in that order a read-only Open racing a
// checkpoint sees every delete acknowledged before it started (both
// before the checkpoint, both after, or the old log with the new file:
// deletes are a union, so each combination holds them all).

// ErrReadOnly is returned by updates on an Index not opened with
// Options.Writable.
var ErrReadOnly = errors.New("spann: index is open read-only")

// ErrLogWrite is matched (errors.Is) by an update that failed because its
// write-ahead log record could not be written or synced: the update was
// not applied, and the caller may retry. Other update errors refuse the
// request itself (an unknown id, a vector of the wrong size).
var ErrLogWrite = errors.New("spann: write-ahead log write failed")

// Record types in wal.log.
const recDelete byte = 1

// File names of a mutable index's state.
const (
	walFile     = "wal.log"
	updateLock  = "update.lock"
	readersLock = "readers.lock"
)

// Readers in other processes. A checkpoint may overwrite the extents of
// postings rewritten before (merge.go), which an Index opened earlier in
// another process may still read. So a read-only Open holds a shared
// flock on readers.lock from before it reads the manifest until Close,
// and a checkpoint reuses space only if it gets the exclusive lock at
// once, holding it until the new generation is committed (an Open
// meanwhile waits for it); when readers are present it appends instead.

// lockReaders takes the shared readers lock of dir, or returns nil when
// the lock file can be neither opened nor created (a directory the
// process may not write, which no writer of another user should share).
func lockReaders(dir string) *os.File {
	path := filepath.Join(dir, readersLock)
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	}
	if err != nil {
		return nil
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH)
		if err != unix.EINTR {
			break
		}
	}
	return f
}

// excludeReaders takes the exclusive readers lock if no other process
// holds the shared one, and returns its unlock; ok is false otherwise.
func (ix *Index) excludeReaders() (unlock func(), ok bool) {
	f, err := os.OpenFile(filepath.Join(ix.dir, readersLock), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// openUpdates loads the deletes of ix (log, then tombstones file) and,
// when writable, locks the directory and opens the log for appending.
func (ix *Index) openUpdates(writable bool) error {
	id, err := indexfile.ParseBuildID(ix.Manifest.BuildID)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", ix.dir, ErrCorrupt, err)
	}
	ix.id = id
	ix.total.Store(int64(ix.Manifest.N))
	ix.acked.Store(int64(ix.Manifest.N))
	logPath := filepath.Join(ix.dir, walFile)
	if err := ix.loadIDMap(); err != nil {
		return err
	}
	dead := roaring.New()
	apply := func(r wal.Record) error { return ix.replayRecord(dead, r) }
	if writable {
		lock, err := os.OpenFile(filepath.Join(ix.dir, updateLock), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("open %s for writing: %w", ix.dir, err)
		}
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			lock.Close()
			return fmt.Errorf("%s is open for writing by another process (%s is locked)", ix.dir, lock.Name())
		}
		ix.lock = lock
		if err := ix.cutUncommitted(); err != nil {
			ix.closeUpdates()
			return err
		}
		var st wal.ReplayStats
		if _, serr := os.Stat(logPath); os.IsNotExist(serr) {
			ix.log, err = wal.Create(ix.fs, logPath, id)
		} else {
			ix.log, st, err = wal.Open(ix.fs, logPath, id, apply)
		}
		ix.tornBytes = st.TornBytes
		if err != nil {
			ix.closeUpdates()
			return walError(err)
		}
	} else if st, err := wal.Replay(logPath, id, apply); err != nil && !os.IsNotExist(err) {
		return walError(err)
	} else {
		ix.tornBytes = st.TornBytes
	}
	file, err := indexfile.ReadTombstones(ix.dir, id)
	if err != nil {
		ix.closeUpdates()
		return err
	}
	dead.Or(file)
	if !dead.IsEmpty() {
		ix.dead.Store(dead)
	}
	return nil
}

func walError(err error) error {
	if errors.Is(err, wal.ErrCorrupt) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// replayRecord applies one logged update to the tombstones being rebuilt.
func (ix *Index) replayRecord(dead *roaring.Bitmap, r wal.Record) error {
	switch r.Type {
	case recInsert, recInsertIDs, recInsertLabels:
		return ix.replayInsert(r, dead)
	case recDelete:
		ids, err := decodeIDs(r.Payload, ix.N())
		if err != nil {
			return fmt.Errorf("%w: %s record %d: %v", ErrCorrupt, filepath.Join(ix.dir, walFile), r.Seq, err)
		}
		dead.AddMany(ids)
		return nil
	}
	return fmt.Errorf("%w: %s record %d: unknown type %d", ErrCorrupt, filepath.Join(ix.dir, walFile), r.Seq, r.Type)
}

// decodeIDs reads a delete record's payload: uint32 ids, each below n.
func decodeIDs(p []byte, n int) ([]uint32, error) {
	if len(p)%4 != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of ids", len(p))
	}
	ids := make([]uint32, len(p)/4)
	for i := range ids {
		ids[i] = binary.LittleEndian.Uint32(p[4*i:])
		if int64(ids[i]) >= int64(n) {
			return nil, fmt.Errorf("id %d is not below n = %d", ids[i], n)
		}
	}
	return ids, nil
}

// Delete marks ids deleted: no search that starts after Delete returns
// returns any of them. It returns once the deletion is durable in the
// write-ahead log. Deleting an id already deleted does nothing; an id
// outside [0, N) is an error and nothing is deleted. Safe to call while
// searches and other Deletes run; needs Options.Writable. (Deleted
// vectors stay in their postings until those are rewritten.)
func (ix *Index) Delete(ids []int32) error {
	if ix.log == nil {
		return ErrReadOnly
	}
	if ix.idm.Load() != nil {
		ix.dmu.Lock()
		internal, err := ix.internals(ids)
		ix.dmu.Unlock()
		if err != nil {
			return err
		}
		ids = internal
	}
	payload := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		if id < 0 || int(id) >= ix.N() {
			return fmt.Errorf("spann: delete %d: no such id (the index holds 0..%d)", id, ix.N()-1)
		}
		payload = binary.LittleEndian.AppendUint32(payload, uint32(id))
	}
	if len(ids) == 0 {
		return nil
	}
	// Shared with other Deletes (their records share an fsync), exclusive
	// with Checkpoint, which must not empty the log between our record
	// and its effect.
	ix.umu.RLock()
	defer ix.umu.RUnlock()
	if _, err := ix.log.Append(recDelete, payload); err != nil {
		return ix.updateError("delete", err)
	}
	ix.dmu.Lock()
	defer ix.dmu.Unlock()
	next := roaring.New()
	if cur := ix.dead.Load(); cur != nil {
		next = cur.Clone()
	}
	for _, id := range ids {
		next.Add(uint32(id))
	}
	ix.dead.Store(next) // searches holding the old bitmap keep it
	return nil
}

// updateError classifies a failed log append.
func (ix *Index) updateError(op string, err error) error {
	if errors.Is(err, wal.ErrClosed) {
		return ErrClosed
	}
	return logWriteError{fmt.Errorf("spann: %s: %w", op, err)}
}

// logWriteError is an update's failed log append: its message is the
// cause's; it also matches ErrLogWrite.
type logWriteError struct{ error }

func (e logWriteError) Unwrap() []error { return []error{e.error, ErrLogWrite} }

// Deleted returns how many ids are deleted.
func (ix *Index) Deleted() int {
	if bm := ix.dead.Load(); bm != nil {
		return int(bm.GetCardinality())
	}
	return 0
}

// Checkpoint folds the write-ahead log into the index files and empties
// it: the deletes into tombstones.bin (replaced atomically), the inserts
// into postings.bin and a new generation of the directory and manifest
// (merge.go), rewriting too the postings that deletes left sparse.
// Updates wait only while it freezes what it folds and, at the end, while
// it drops those records from the log; searches never wait. Checkpoints
// run one at a time. Needs Options.Writable. If it fails, the index stays
// as it was, every update still in the log.
func (ix *Index) Checkpoint() error {
	if ix.log == nil {
		return ErrReadOnly
	}
	// The work runs on an OS thread of its own at a lower priority, so
	// that searches keep the cores they need (the Go scheduler does not
	// know priorities; the kernel does, per thread). The thread is
	// discarded afterwards: the goroutine exits still locked to it.
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), checkpointNice) // best effort
		done <- ix.checkpoint()
	}()
	return <-done
}

// checkpointNice is the nice value of a checkpoint's thread.
const checkpointNice = 10

func (ix *Index) checkpoint() error {
	// A checkpoint reads the heads, the directory and the label state
	// off the Go heap. Close waits for ckmu (however long the checkpoint
	// takes) before it closes the files and frees that memory, and a
	// search that ends after a Close that timed out frees it only when no
	// checkpoint holds ckmu (release); else the checkpoint does, here, at
	// its end. None starts once closed.
	ix.ckmu.Lock()
	defer ix.ckmu.Unlock()
	ix.mu.Lock()
	closed := ix.closed
	ix.mu.Unlock()
	if closed {
		return ErrClosed
	}
	defer func() {
		ix.mu.Lock()
		if ix.closed && ix.busy == 0 {
			ix.freeMemory()
		}
		ix.mu.Unlock()
	}()
	if ix.ckBroken != nil {
		return ix.ckBroken
	}
	frozen, dead, seq, n := ix.freeze()
	if checkpointFrozen != nil {
		checkpointFrozen(ix)
	}
	ix.dmu.Lock() // (the map is the writers')
	err := ix.saveIDMap(n)
	ix.dmu.Unlock()
	if err != nil {
		return fmt.Errorf("spann: checkpoint: %w", err)
	}
	if err := indexfile.WriteTombstones(ix.fs, ix.dir, ix.id, dead); err != nil {
		return fmt.Errorf("spann: checkpoint: %w", err)
	}
	crash.Point("checkpoint: tombstones written")
	if err := ix.rewritePostings(frozen, dead, n); err != nil {
		return err
	}
	ix.umu.Lock()
	err = ix.log.DropThrough(seq)
	ix.umu.Unlock()
	if err != nil {
		return fmt.Errorf("spann: checkpoint: %w", err)
	}
	crash.Point("checkpoint: log reset")
	ix.mu.Lock()
	for _, w := range ix.free {
		w.dropStaleLists()
	}
	ix.mu.Unlock()
	if err := ix.removeStale(); err != nil {
		fmt.Fprintf(os.Stderr, "spann: checkpoint: %v\n", err) // wasted space, not an error
	}
	return nil
}

// checkpointFrozen, when set (by tests), runs in every Checkpoint right
// after the freeze, while updates are free to go on.
var checkpointFrozen func(*Index)

// freeze takes what a checkpoint folds, excluding updates for a moment:
// the insert buffer (a new one takes the inserts from now on, the frozen
// one staying searchable as its prev), the deleted ids, the log's last
// record, and the ids acknowledged (every one of them in the frozen
// buffer or the files; later inserts get ids from n on).
func (ix *Index) freeze() (frozen *insertBuffer, dead *roaring.Bitmap, seq uint64, n int) {
	ix.umu.Lock()
	defer ix.umu.Unlock()
	if dead = ix.dead.Load(); dead == nil {
		dead = roaring.New()
	}
	if frozen = ix.buf.Load(); frozen != nil {
		active := newInsertBuffer(len(ix.eng.headIDs()))
		active.prev.Store(frozen)
		ix.dmu.Lock()
		ix.buf.Store(active)
		ix.dmu.Unlock()
	}
	return frozen, dead, ix.log.LastSeq(), ix.N()
}

// cutUncommitted removes what an interrupted checkpoint left behind: the
// postings it appended past the committed length of postings.bin and the
// generation files the manifest does not name (removeStale). Called by a
// writable Open, under the lock.
func (ix *Index) cutUncommitted() error {
	pinfo, _ := ix.state.File(indexfile.PostingsFile)
	if st, err := os.Stat(ix.postings); err != nil {
		return err
	} else if st.Size() > pinfo.Bytes {
		if err := os.Truncate(ix.postings, pinfo.Bytes); err != nil {
			return fmt.Errorf("open %s for writing: cut an interrupted checkpoint's postings: %w", ix.dir, err)
		}
	}
	return ix.removeStale()
}

// removeStale removes the generation files (directory, heads, graph, labels) that
// the manifest does not name, but for each kind the newest one before the
// manifest's (which a read-only Open that read the previous manifest a
// moment ago may be opening); files of generations past the manifest's
// are an interrupted checkpoint's, and go too.
func (ix *Index) removeStale() error {
	entries, err := os.ReadDir(ix.dir)
	if err != nil {
		return err
	}
	for _, base := range []string{indexfile.DirectoryFile, indexfile.HeadsFile, indexfile.GraphFile, indexfile.LabelsFile} {
		cur, _ := indexfile.FileGeneration(base, ix.state.Current(base))
		if base == indexfile.DirectoryFile || base == indexfile.LabelsFile {
			cur = ix.state.Generation
		}
		prev := int64(-1)
		for _, e := range entries {
			if g, ok := indexfile.FileGeneration(base, e.Name()); ok && g < cur {
				prev = max(prev, g)
			}
		}
		for _, e := range entries {
			name, tmp := strings.CutSuffix(e.Name(), ".tmp")
			g, ok := indexfile.FileGeneration(base, name)
			if !ok || (!tmp && (g == cur || g == prev)) {
				continue
			}
			if err := os.Remove(filepath.Join(ix.dir, e.Name())); err != nil {
				return fmt.Errorf("remove %s: %w", e.Name(), err)
			}
		}
	}
	return removeStaleLists(ix.dir)
}

// closeUpdates closes the log and releases the directory locks.
func (ix *Index) closeUpdates() error {
	var err error
	if ix.log != nil {
		err = ix.log.Close()
	}
	for _, f := range []**os.File{&ix.lock, &ix.readLock} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
	return err
}
