package build

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/gospann/spann/internal/progress"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/posting"
)

// postingsOut is postings.bin being written, with what a checkpoint
// records about it.
type postingsOut struct {
	f   vfs.File
	crc uint32 // CRC-32C of every byte written to f
	bw  *bufio.Writer
	pw  *posting.Writer

	entries   []posting.Entry
	sizes     []int
	stored    []uint64 // bit per vector kept in some posting
	head      int      // next head to write
	bucket    int      // next spill bucket to write
	dropped   int64
	pastLimit int64
}

func (p *postingsOut) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.crc = crc32.Update(p.crc, castagnoli, b[:n])
	return n, err
}

// writePostings writes every head's posting (its closest PostingLimit
// vectors) in head order, bucket by bucket, committing a checkpoint after
// each bucket but the last; then the directory.
func (b *builder[T]) writePostings(sp *spill) error {
	nh := len(b.headID)
	table, err := b.sharedTable()
	if err != nil {
		return err
	}
	out, err := b.openPostings(table, len(sp.files))
	if err != nil {
		return err
	}
	defer out.f.Close()
	var buf []byte
	bar := progress.New(b.o.Progress, "write postings", int64(nh))
	bar.Set(int64(out.head))
	for out.bucket < len(sp.files) {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if buf, err = b.writeBucket(sp, out, buf, bar); err != nil {
			return err
		}
		out.bucket++
		if out.bucket == len(sp.files)/2+1 {
			crashPoint("postings: half")
		}
		if out.bucket < len(sp.files) {
			crashPoint("postings: bucket")
			if err := b.commitPostings(out); err != nil {
				return err
			}
		}
	}
	bar.Done()
	return b.finishPostings(out)
}

// writeBucket writes the postings of spill bucket out.bucket's heads.
func (b *builder[T]) writeBucket(sp *spill, out *postingsOut, buf []byte, bar *progress.Reporter) ([]byte, error) {
	nh := len(b.headID)
	bk := out.bucket
	bucket, buf, err := sp.loadBucket(bk, buf)
	if err != nil {
		return buf, err
	}
	var ids []uint32
	var rows []byte
	i, m := 0, bucket.len()
	hiHead := min(nh, (bk+1)*sp.headsPerBucket)
	for ; out.head < hiHead; out.head++ {
		var p postingOf
		ids, rows, i, p = bucket.posting(i, int32(out.head), b.o.PostingLimit, ids[:0], rows[:0])
		out.dropped += p.dropped
		out.pastLimit += p.pastLimit
		for _, id := range ids {
			out.stored[id/64] |= 1 << (id % 64)
		}
		e, err := out.pw.Add(ids, rows)
		if err != nil {
			return buf, fmt.Errorf("head %d: %w", out.head, err)
		}
		out.entries[out.head] = e
		out.sizes[out.head] = len(ids)
		bar.Set(int64(out.head + 1))
	}
	if i != m {
		return buf, fmt.Errorf("spill bucket %d: %d records for heads outside its range", bk, m-i)
	}
	return buf, nil
}

// postingOf counts what the posting limit did to one head's records.
type postingOf struct {
	dropped   int64 // records the limit dropped
	pastLimit int64 // records kept beyond the limit (nearest head)
	nearest   int64 // records whose head is their vector's nearest
}

// posting takes head's records, from position i of the sorted bucket on,
// and appends the ones its posting keeps to ids and rows: its limit
// closest vectors, and any further vector whose nearest head it is (no
// vector loses its last replica to the cap). It returns the position
// after head's records.
func (bk *bucket) posting(i int, head int32, limit int, ids []uint32, rows []byte) ([]uint32, []byte, int, postingOf) {
	var p postingOf
	for ; i < bk.len() && bk.head(i) == head; i++ {
		near := bk.nearest(i)
		if near {
			p.nearest++
		}
		if len(ids) >= limit && !near {
			p.dropped++
			continue
		}
		if len(ids) >= limit {
			p.pastLimit++
		}
		ids = append(ids, bk.id(i))
		rows = append(rows, bk.row(i)...)
	}
	return ids, rows, i, p
}

// openPostings continues the postings.bin of a resumed build, cut back to
// its last checkpoint, or starts a new one.
func (b *builder[T]) openPostings(table *posting.Table, buckets int) (*postingsOut, error) {
	nh := len(b.headID)
	out := &postingsOut{entries: make([]posting.Entry, nh), sizes: make([]int, nh),
		stored: make([]uint64, (b.base.N+63)/64)}
	path := filepath.Join(b.tmp, PostingsFile)
	if ps := b.ck.Postings; ps != nil {
		err := b.reopenPostings(out, ps, path, buckets, table)
		if err == nil {
			return out, nil
		}
		b.note("postings: %v; writing them again", err)
		b.ck.Postings = nil
		*out = postingsOut{entries: out.entries, sizes: out.sizes, stored: out.stored}
		clear(out.entries)
		clear(out.sizes)
		clear(out.stored)
	}
	f, err := b.fs.Create(path)
	if err != nil {
		return nil, err
	}
	out.f = f
	out.bw = bufio.NewWriterSize(out, 4<<20)
	if out.pw, err = posting.NewWriter(out.bw, b.base.RowBytes(), b.o.Codec, table, b.id); err != nil {
		f.Close()
		return nil, err
	}
	return out, nil
}

func (b *builder[T]) reopenPostings(out *postingsOut, ps *postingsState, path string, buckets int, table *posting.Table) error {
	if ps.Buckets > buckets || ps.Postings > len(b.headID) {
		return fmt.Errorf("checkpoint of %d buckets and %d postings does not fit %d buckets and %d heads", ps.Buckets, ps.Postings, buckets, len(b.headID))
	}
	if err := b.readState(out, ps); err != nil {
		return err
	}
	f, err := b.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	crc, err := prefixCRC(f, int64(ps.Offset))
	if err == nil && crc != ps.CRC {
		err = fmt.Errorf("%s: CRC-32C %08x of its first %d bytes, the checkpoint recorded %08x", path, crc, ps.Offset, ps.CRC)
	}
	if err == nil {
		err = f.Truncate(int64(ps.Offset))
	}
	if err == nil {
		_, err = f.Seek(int64(ps.Offset), io.SeekStart)
	}
	if err != nil {
		f.Close()
		return err
	}
	out.f, out.bucket, out.head, out.dropped, out.pastLimit = f, ps.Buckets, ps.Postings, ps.Dropped, ps.PastLimit
	out.crc = ps.CRC
	out.bw = bufio.NewWriterSize(out, 4<<20)
	if out.pw, err = posting.ResumeWriter(out.bw, b.base.RowBytes(), b.o.Codec, table, ps.Offset, ps.Postings); err != nil {
		f.Close()
		return err
	}
	return nil
}

// commitPostings makes postings.bin durable up to the heads written,
// saves the state that goes with it and commits a checkpoint.
func (b *builder[T]) commitPostings(out *postingsOut) error {
	if err := out.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", PostingsFile, err)
	}
	if err := out.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", PostingsFile, err)
	}
	crashPoint("postings: synced")
	sum, err := b.writeState(out)
	if err != nil {
		return err
	}
	b.ck.Postings = &postingsState{Buckets: out.bucket, Postings: out.head, Offset: out.pw.Offset(), CRC: out.crc,
		StateSHA: sum, Dropped: out.dropped, PastLimit: out.pastLimit}
	return b.ck.save(b.fs, b.tmp)
}

// finishPostings ends postings.bin, checks that every vector is stored,
// writes the directory and commits the phase.
func (b *builder[T]) finishPostings(out *postingsOut) error {
	if err := out.pw.Finish(); err != nil {
		return err
	}
	if err := out.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", PostingsFile, err)
	}
	if err := out.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", PostingsFile, err)
	}
	b.stats.Dropped, b.stats.KeptPastLimit = out.dropped, out.pastLimit
	for _, id := range b.headID {
		out.stored[id/64] |= 1 << (id % 64) // heads are found through the graph
	}
	b.stats.Unstored = 0
	for id := 0; id < b.base.N; id++ {
		if out.stored[id/64]&(1<<(id%64)) == 0 {
			b.stats.Unstored++
		}
	}
	if b.stats.Unstored > 0 {
		return fmt.Errorf("%d vectors would be in no posting and are not heads (a bug: every vector's nearest head keeps it)", b.stats.Unstored)
	}
	b.stats.Postings = len(b.headID)
	postingStats(b.stats, out.entries, out.sizes)
	if err := writeFile(b.fs, filepath.Join(b.tmp, DirectoryFile), func(w io.Writer) error {
		return posting.WriteDirectory(w, out.entries, b.id)
	}); err != nil {
		return err
	}
	ps := &postingsState{Buckets: out.bucket, Postings: out.head, Offset: out.pw.Offset(), CRC: out.crc,
		Dropped: out.dropped, PastLimit: out.pastLimit, Done: true}
	var err error
	if ps.PostingsFile, err = sumFile(b.tmp, PostingsFile); err != nil {
		return err
	}
	if ps.DirectoryFile, err = sumFile(b.tmp, DirectoryFile); err != nil {
		return err
	}
	b.ck.Postings = ps
	os.Remove(filepath.Join(scratch(b.tmp), stateName))
	return b.ck.save(b.fs, b.tmp)
}

// restorePostings checks the finished postings and directory of an
// interrupted build against its checkpoint.
func (b *builder[T]) restorePostings() error {
	ps := b.ck.Postings
	if err := checkFile(b.tmp, PostingsFile, ps.PostingsFile); err != nil {
		return err
	}
	return checkFile(b.tmp, DirectoryFile, ps.DirectoryFile)
}

// postings.state (build scratch, never part of an index) holds what a
// resumed build needs to continue writing postings: the directory entries
// and vector counts of the postings written so far and the bitmap of the
// vectors stored so far. Its integrity is the SHA-256 the checkpoint
// records. Layout, little-endian:
//
//	0   8        magic "SPBSTATE"
//	8   4        version (1)
//	12  4        P, postings written
//	16  8        N, vectors in the base
//	24  16·P     entries: offset uint64, bytes uint32, count uint32
//	    4·P      vectors kept in each posting, uint32
//	    8·⌈N/64⌉ stored-vector bitmap, uint64 words
const stateMagic = "SPBSTATE"

func (b *builder[T]) writeState(out *postingsOut) (string, error) {
	var w bytes.Buffer
	w.WriteString(stateMagic)
	binary.Write(&w, binary.LittleEndian, [2]uint32{1, uint32(out.head)})
	binary.Write(&w, binary.LittleEndian, uint64(b.base.N))
	for _, e := range out.entries[:out.head] {
		binary.Write(&w, binary.LittleEndian, e)
	}
	for _, c := range out.sizes[:out.head] {
		binary.Write(&w, binary.LittleEndian, uint32(c))
	}
	binary.Write(&w, binary.LittleEndian, out.stored)
	if err := vfs.WriteFileAtomic(b.fs, filepath.Join(scratch(b.tmp), stateName), w.Bytes()); err != nil {
		return "", err
	}
	sum := sha256.Sum256(w.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

func (b *builder[T]) readState(out *postingsOut, ps *postingsState) error {
	path := filepath.Join(scratch(b.tmp), stateName)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != ps.StateSHA {
		return fmt.Errorf("%s: SHA-256 is not the checkpoint's", path)
	}
	p := ps.Postings
	want := 24 + 20*p + 8*len(out.stored)
	if len(data) != want || string(data[:8]) != stateMagic || binary.LittleEndian.Uint32(data[12:]) != uint32(p) ||
		binary.LittleEndian.Uint64(data[16:]) != uint64(b.base.N) {
		return fmt.Errorf("%s: not the state of %d postings over %d vectors", path, p, b.base.N)
	}
	r := bytes.NewReader(data[24:])
	if err := binary.Read(r, binary.LittleEndian, out.entries[:p]); err != nil {
		return err
	}
	counts := make([]uint32, p)
	if err := binary.Read(r, binary.LittleEndian, counts); err != nil {
		return err
	}
	for i, c := range counts {
		out.sizes[i] = int(c)
	}
	return binary.Read(r, binary.LittleEndian, out.stored)
}
