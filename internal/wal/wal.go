// Package wal is the write-ahead log of a mutable index: an update is
// acknowledged only once its record is durable in the log, and Open
// replays the records a crash left, discarding a torn tail.
//
// File layout (little-endian):
//
//	header, 36 bytes:
//	0   8   magic "SPANNWAL"
//	8   4   format version (1)
//	12  4   zero
//	16  16  build id of the index the log belongs to
//	32  4   CRC-32C (Castagnoli) of bytes 0..31
//
//	records, one after another:
//	0   4   payload length P
//	4   4   CRC-32C of bytes 8..17+P (sequence, type, payload)
//	8   8   sequence number: 1 for the first record after the header, then
//	        one more for each record
//	16  1   record type (the caller's)
//	17  P   payload
//
// Appends are group-committed: concurrent Appends queue their records and
// one of them writes and fsyncs the whole batch, so a batch costs one
// fsync however many updates it holds. A record is durable, and Append
// returns, only after the fsync that covers it.
//
// A crash can tear only the tail: the last batch may be cut anywhere, or
// hold zeros or garbage where the file system had not written it yet.
// Open accepts records while their length, CRC and sequence hold; at the
// first that does not, the rest of the file is damage (ErrCorrupt, nothing
// cut) if an intact record with the sequence after it follows anywhere —
// the log went on past it — and a torn tail (cut off, and counted in
// ReplayStats.TornBytes) otherwise. A damaged last record cannot be told
// from a torn one; the count says that something was discarded.
package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/gospann/spann/internal/crash"
	"github.com/gospann/spann/internal/vfs"
)

const (
	magic      = "SPANNWAL"
	version    = 1
	headerSize = 36
	recHeader  = 17
	// MaxPayload bounds one record (and what Open will allocate for one).
	MaxPayload = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks a log that is damaged other than by a torn tail.
var ErrCorrupt = errors.New("wal: corrupt log")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("wal: log is closed")

// Record is one replayed record. Payload is valid only during the replay
// callback.
type Record struct {
	Seq     uint64
	Type    byte
	Payload []byte
}

// Log is an open write-ahead log. Append is safe for concurrent use.
type Log struct {
	fs   vfs.FS
	path string
	f    vfs.File
	id   [16]byte

	mu      sync.Mutex
	cond    *sync.Cond
	next    uint64 // sequence of the next record appended
	synced  uint64 // every record up to this one is durable
	buf     []byte // records waiting for the next batch
	spare   []byte
	syncing bool
	err     error // sticky: after a failed write or fsync nothing is durable any more
	closed  bool
}

// ReplayStats says what Open found.
type ReplayStats struct {
	Records   int // records replayed
	LastSeq   uint64
	TornBytes int64 // bytes of a torn tail cut off (0 if none)
}

// Create makes a new, empty log at path (replacing any file there) for the
// index of build id.
func Create(fs vfs.FS, path string, id [16]byte) (*Log, error) {
	f, err := fs.Create(path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(encodeHeader(id)); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := fs.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return newLog(fs, path, f, id, 1), nil
}

func newLog(fs vfs.FS, path string, f vfs.File, id [16]byte, next uint64) *Log {
	l := &Log{fs: fs, path: path, f: f, id: id, next: next, synced: next - 1}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func encodeHeader(id [16]byte) []byte {
	h := make([]byte, headerSize)
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[8:], version)
	copy(h[16:], id[:])
	binary.LittleEndian.PutUint32(h[32:], crc32.Checksum(h[:32], castagnoli))
	return h
}

// Open opens the log at path, checks that it belongs to build id, calls
// replay for every intact record in order, cuts off a torn tail, and
// returns the log ready to append after the last record. A replay error
// stops Open and is returned.
func Open(fs vfs.FS, path string, id [16]byte, replay func(Record) error) (*Log, ReplayStats, error) {
	var st ReplayStats
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, st, err
	}
	end, err := scan(f, path, id, replay, &st)
	if err != nil {
		f.Close()
		return nil, st, err
	}
	if st.TornBytes > 0 {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, st, fmt.Errorf("%s: cut the torn tail: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, st, fmt.Errorf("%s: %w", path, err)
		}
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, st, err
	}
	return newLog(fs, path, f, id, st.LastSeq+1), st, nil
}

// Replay calls replay for every intact record of the log at path, without
// changing the file (a torn tail is skipped, not cut): for a reader that
// does not own the log.
func Replay(path string, id [16]byte, replay func(Record) error) (ReplayStats, error) {
	var st ReplayStats
	f, err := os.Open(path)
	if err != nil {
		return st, err
	}
	defer f.Close()
	_, err = scan(f, path, id, replay, &st)
	return st, err
}

// scan replays the records of f and returns where the intact log ends.
func scan(f vfs.File, path string, id [16]byte, replay func(Record) error, st *ReplayStats) (int64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := info.Size()
	r := io.NewSectionReader(f, 0, size)
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, fmt.Errorf("%s: header: %d bytes: %w", path, size, ErrCorrupt)
	}
	if string(hdr[:8]) != magic || binary.LittleEndian.Uint32(hdr[32:]) != crc32.Checksum(hdr[:32], castagnoli) {
		return 0, fmt.Errorf("%s: not a write-ahead log, or its header is damaged: %w", path, ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != version {
		return 0, fmt.Errorf("%s: log format version %d, this program reads %d: %w", path, v, version, ErrCorrupt)
	}
	if !bytes.Equal(hdr[16:32], id[:]) {
		return 0, fmt.Errorf("%s: log of build %x, the index is build %x: %w", path, hdr[16:32], id, ErrCorrupt)
	}
	off := int64(headerSize)
	var rec [recHeader]byte
	var payload []byte
	for off < size {
		bad := ""
		var p int64
		if size-off < recHeader {
			bad = "a record header cut short"
		} else if _, err := r.ReadAt(rec[:], off); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		} else if p = int64(binary.LittleEndian.Uint32(rec[0:])); p > MaxPayload {
			bad = fmt.Sprintf("a record of %d bytes", p)
		} else if off+recHeader+p > size {
			bad = "a record cut short"
		} else {
			if cap(payload) < int(p) {
				payload = make([]byte, p)
			}
			payload = payload[:p]
			if _, err := r.ReadAt(payload, off+recHeader); err != nil && p > 0 {
				return 0, fmt.Errorf("%s: %w", path, err)
			}
			crc := crc32.Update(crc32.Checksum(rec[8:], castagnoli), castagnoli, payload)
			seq := binary.LittleEndian.Uint64(rec[8:])
			switch {
			case crc != binary.LittleEndian.Uint32(rec[4:]):
				bad = "a record whose CRC does not match"
			case seq != st.LastSeq+1:
				bad = fmt.Sprintf("record %d where %d was due", seq, st.LastSeq+1)
			}
		}
		if bad != "" {
			if torn, err := tornTail(r, off, size, st.LastSeq+2); err != nil {
				return 0, err
			} else if !torn {
				return 0, fmt.Errorf("%s: %s at byte %d, followed by more of the log: %w", path, bad, off, ErrCorrupt)
			}
			st.TornBytes = size - off
			return off, nil
		}
		if err := replay(Record{Seq: st.LastSeq + 1, Type: rec[16], Payload: payload}); err != nil {
			return 0, err
		}
		st.Records++
		st.LastSeq++
		off += recHeader + p
	}
	return off, nil
}

// tornTail reports whether the bad record at off is the torn end of the
// last batch: no intact record follows it. It looks for the record that
// would come next (sequence next, its CRC good) at every byte after off;
// only that proves the log went on past the damage. A crash tears only
// the last batch, so whatever it left — a record cut short, zeros,
// garbage — has no intact successor.
func tornTail(r *io.SectionReader, off, size int64, next uint64) (bool, error) {
	const window = 64 << 10
	buf := make([]byte, window+recHeader)
	var payload []byte
	for base := off + 1; base+recHeader <= size; base += window {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if err != nil && err != io.EOF {
			return false, err
		}
		for i := 0; i+recHeader <= n && i < window; i++ {
			h := buf[i : i+recHeader]
			if binary.LittleEndian.Uint64(h[8:]) != next {
				continue
			}
			p := int64(binary.LittleEndian.Uint32(h))
			pos := base + int64(i)
			if p > MaxPayload || pos+recHeader+p > size {
				continue
			}
			if cap(payload) < int(p) {
				payload = make([]byte, p)
			}
			payload = payload[:p]
			if _, err := r.ReadAt(payload, pos+recHeader); err != nil && p > 0 {
				return false, err
			}
			if crc32.Update(crc32.Checksum(h[8:], castagnoli), castagnoli, payload) == binary.LittleEndian.Uint32(h[4:]) {
				return false, nil
			}
		}
	}
	return true, nil
}

// Append adds one record and returns its sequence number once it is
// durable. A failed write or fsync fails this and every later Append (the
// log must be reopened: what was durable is what Open replays).
func (l *Log) Append(typ byte, payload []byte) (uint64, error) {
	if len(payload) > MaxPayload {
		return 0, fmt.Errorf("wal: record of %d bytes, the limit is %d", len(payload), MaxPayload)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.err != nil {
		return 0, l.err
	}
	seq := l.next
	l.next++
	l.buf = appendRecord(l.buf, seq, typ, payload)
	for l.synced < seq && l.err == nil {
		if l.syncing {
			l.cond.Wait() // the batch in flight may not hold ours: loop
			continue
		}
		l.commitBatch()
	}
	if l.synced >= seq {
		return seq, nil
	}
	return 0, l.err
}

// commitBatch writes and fsyncs the queued records (l.mu held on entry and
// on return, released while writing).
func (l *Log) commitBatch() {
	batch, last := l.buf, l.next-1
	l.buf, l.spare = l.spare[:0], nil
	l.syncing = true
	l.mu.Unlock()
	crash.Point("wal: batch")
	_, err := l.f.Write(batch)
	if err == nil {
		crash.Point("wal: written")
		err = l.f.Sync()
	}
	if err == nil {
		crash.Point("wal: synced")
	}
	l.mu.Lock()
	l.syncing = false
	l.spare = batch
	if err != nil {
		l.err = fmt.Errorf("%s: %w (updates after the last durable one are lost; reopen the log)", l.path, err)
	} else {
		l.synced = last
	}
	l.cond.Broadcast()
}

func appendRecord(b []byte, seq uint64, typ byte, payload []byte) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, 0, 0, 0, 0) // CRC, below
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = append(b, typ)
	b = append(b, payload...)
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], castagnoli))
	return b
}

// LastSeq returns the sequence number of the last durable record.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.synced
}

// Reset empties the log once a checkpoint has folded its records into the
// index (Rewrite with no records).
func (l *Log) Reset() error { return l.Rewrite(nil) }

// DropThrough removes the records up to and including sequence seq, once
// a checkpoint has folded them into the index, keeping the later ones
// (renumbered from 1; see Rewrite). No Append may run concurrently.
func (l *Log) DropThrough(seq uint64) error {
	var keep []Record
	_, err := Replay(l.path, l.id, func(r Record) error {
		if r.Seq > seq {
			keep = append(keep, Record{Type: r.Type, Payload: bytes.Clone(r.Payload)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return l.Rewrite(keep)
}

// Rewrite replaces the log with one holding only keep (their types and
// payloads, renumbered from 1), once a checkpoint has folded the other
// records into the index: the new log is written beside the old one,
// synced and renamed over it, so a crash leaves the old log or the new
// one, never a mix. No Append may run concurrently.
func (l *Log) Rewrite(keep []Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	data := encodeHeader(l.id)
	for i, r := range keep {
		data = appendRecord(data, uint64(i+1), r.Type, r.Payload)
	}
	// Written and synced under a temporary name, kept open to append to,
	// then renamed over the log.
	tmp := l.path + ".new"
	f, err := l.fs.Create(tmp)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		l.fs.Remove(tmp)
		return fmt.Errorf("%s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := l.fs.Rename(tmp, l.path); err != nil {
		return fail(err)
	}
	if err := l.fs.SyncDir(filepath.Dir(l.path)); err != nil {
		f.Close()
		return err
	}
	l.f.Close()
	l.f, l.next, l.synced = f, uint64(len(keep))+1, uint64(len(keep))
	return nil
}

// Close closes the log file; later Appends fail with ErrClosed. Records
// already acknowledged are durable.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.syncing {
		l.cond.Wait()
	}
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.Close()
}
