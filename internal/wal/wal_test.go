package wal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gospann/spann/internal/vfs"
)

var testID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// payload is what writer g appends as its i-th record.
func payload(g, i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("g%d-i%d;", g, i)), 1+(g*7+i)%40)
}

// TestMain lets the test binary be the child that the kill test runs.
func TestMain(m *testing.M) {
	if os.Getenv("SPANN_WAL_CHILD") != "" {
		child(os.Getenv("SPANN_WAL_CHILD"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child appends from 4 goroutines to the log at path and prints "seq g i"
// for every acknowledged record, until it is killed (or has appended 400).
func child(path string) {
	l, _, err := Open(vfs.OS, path, testID, func(Record) error { return nil })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				seq, err := l.Append(byte(g), payload(g, i))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %d %d\n", seq, g, i)
				out.Flush()
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
}

func appendAll(t *testing.T, l *Log, writers, each int) map[uint64][]byte {
	t.Helper()
	var mu sync.Mutex
	got := map[uint64][]byte{}
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := payload(g, i)
				seq, err := l.Append(byte(g), p)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[seq] = p
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	return got
}

func replayAll(t *testing.T, path string) (map[uint64][]byte, ReplayStats, *Log) {
	t.Helper()
	got := map[uint64][]byte{}
	l, st, err := Open(vfs.OS, path, testID, func(r Record) error {
		got[r.Seq] = bytes.Clone(r.Payload)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, st, l
}

// Concurrent appends are all replayed, in sequence, with their payloads;
// appends continue after a reopen.
func TestAppendReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	l, err := Create(vfs.OS, path, testID)
	if err != nil {
		t.Fatal(err)
	}
	want := appendAll(t, l, 8, 50)
	if len(want) != 400 || l.LastSeq() != 400 {
		t.Fatalf("%d distinct sequence numbers, last %d", len(want), l.LastSeq())
	}
	l.Close()
	if _, err := l.Append(0, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	got, st, l := replayAll(t, path)
	if st.Records != 400 || st.LastSeq != 400 || st.TornBytes != 0 {
		t.Fatalf("replay %+v", st)
	}
	for seq, p := range want {
		if !bytes.Equal(got[seq], p) {
			t.Fatalf("record %d differs", seq)
		}
	}
	if seq, err := l.Append(9, []byte("after")); err != nil || seq != 401 {
		t.Fatalf("append after reopen: %d %v", seq, err)
	}
	l.Close()
}

// slowSync makes every fsync take a while, as on a real disk, so that
// concurrent appends pile up behind it.
type slowSync struct{ vfs.FS }

func (s slowSync) Create(name string) (vfs.File, error) {
	f, err := s.FS.Create(name)
	return slowFile{f}, err
}

type slowFile struct{ vfs.File }

func (f slowFile) Sync() error { time.Sleep(2 * time.Millisecond); return f.File.Sync() }

// Appends waiting behind an fsync share the next one (group commit).
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	count := &vfs.Injector{FS: slowSync{vfs.OS}}
	l, err := Create(count, path, testID)
	if err != nil {
		t.Fatal(err)
	}
	before := count.Ops()
	appendAll(t, l, 16, 20)
	l.Close()
	// Each batch is one write and one fsync.
	if ops := count.Ops() - before; ops > 320/2 {
		t.Errorf("%d write and sync operations for 320 appends by 16 writers: no batching", ops)
	}
}

// A tail cut anywhere inside the last record, or followed by zeros, is
// torn: cut off, the records before it kept; appends go on after them.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wal.log")
	l, _ := Create(vfs.OS, path, testID)
	for i := 0; i < 5; i++ {
		if _, err := l.Append(1, payload(0, i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	full, _ := os.ReadFile(path)
	lastStart := len(full) - (recHeader + len(payload(0, 4)))
	for cut := lastStart + 1; cut < len(full); cut++ {
		os.WriteFile(path, full[:cut], 0o644)
		got, st, l := replayAll(t, path)
		if st.Records != 4 || st.TornBytes != int64(cut-lastStart) || len(got) != 4 {
			t.Fatalf("cut at %d: %+v", cut, st)
		}
		if seq, err := l.Append(1, []byte("x")); err != nil || seq != 5 {
			t.Fatalf("cut at %d: append %d %v", cut, seq, err)
		}
		l.Close()
		if _, st, l := replayAll(t, path); st.Records != 5 || st.TornBytes != 0 {
			t.Fatalf("cut at %d, appended: %+v", cut, st)
		} else {
			l.Close()
		}
	}
	os.WriteFile(path, append(bytes.Clone(full), make([]byte, 9000)...), 0o644)
	if _, st, l := replayAll(t, path); st.Records != 5 || st.TornBytes != 9000 {
		t.Fatalf("zeros after the log: %+v", st)
	} else {
		l.Close()
	}
	// Garbage with no intact record in it is a torn tail too.
	os.WriteFile(path, append(bytes.Clone(full), bytes.Repeat([]byte("garbage!"), 1000)...), 0o644)
	if _, st, l := replayAll(t, path); st.Records != 5 || st.TornBytes != 8000 {
		t.Fatalf("garbage after the log: %+v", st)
	} else {
		l.Close()
	}
}

// Whatever follows a valid header, Open neither panics nor replays a
// record out of sequence.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.log")
	l, _ := Create(vfs.OS, seed, testID)
	for i := 0; i < 3; i++ {
		l.Append(1, payload(0, i))
	}
	l.Close()
	full, _ := os.ReadFile(seed)
	f.Add(full[headerSize:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, tail []byte) {
		path := filepath.Join(t.TempDir(), "wal.log")
		os.WriteFile(path, append(bytes.Clone(full[:headerSize]), tail...), 0o644)
		var last uint64
		l, st, err := Open(vfs.OS, path, testID, func(r Record) error {
			if r.Seq != last+1 {
				t.Fatalf("record %d after %d", r.Seq, last)
			}
			last = r.Seq
			return nil
		})
		if err == nil {
			l.Close()
			if st.LastSeq != last {
				t.Fatalf("stats %+v, last replayed %d", st, last)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error not ErrCorrupt: %v", err)
		}
	})
}

// A damaged record with more of the log after it is corruption: Open fails
// naming the byte, and cuts nothing. So are a foreign or damaged header.
func TestDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wal.log")
	l, _ := Create(vfs.OS, path, testID)
	for i := 0; i < 5; i++ {
		l.Append(1, payload(0, i))
	}
	l.Close()
	full, _ := os.ReadFile(path)
	second := headerSize + recHeader + len(payload(0, 0))
	for _, pos := range []int{second + 2, second + 6, second + 10, second + recHeader + 3} {
		c := bytes.Clone(full)
		c[pos] ^= 0x10
		os.WriteFile(path, c, 0o644)
		_, _, err := Open(vfs.OS, path, testID, func(Record) error { return nil })
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("at byte %d", second)) {
			t.Errorf("byte %d flipped: %v", pos, err)
		}
		if st, _ := os.Stat(path); st.Size() != int64(len(full)) {
			t.Errorf("byte %d flipped: the log was cut to %d bytes", pos, st.Size())
		}
	}
	os.WriteFile(path, full, 0o644)
	other := testID
	other[0] ^= 1
	if _, _, err := Open(vfs.OS, path, other, func(Record) error { return nil }); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "build") {
		t.Errorf("another build's log: %v", err)
	}
	c := bytes.Clone(full)
	c[3] ^= 1
	os.WriteFile(path, c, 0o644)
	if _, _, err := Open(vfs.OS, path, testID, func(Record) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged header: %v", err)
	}
	os.WriteFile(path, full, 0o644)
	stop := errors.New("stop")
	if _, _, err := Open(vfs.OS, path, testID, func(Record) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("replay error: %v", err)
	}
}

// A failed write or fsync fails its Append and every later one; the
// records acknowledged before it are replayed.
func TestFailedSyncIsSticky(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	for _, fault := range []vfs.Fault{vfs.EIO, vfs.Short} {
		in := &vfs.Injector{FS: vfs.OS}
		l, err := Create(in, path, testID)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := l.Append(1, payload(0, i)); err != nil {
				t.Fatal(err)
			}
		}
		in.Fail, in.Fault = in.Ops()+1+int(fault%2), fault // the write (Short) or the sync (EIO)
		if _, err := l.Append(1, payload(0, 3)); !vfs.IsInjected(err) || !strings.Contains(err.Error(), "wal.log") {
			t.Fatalf("%s: append: %v", fault, err)
		}
		if _, err := l.Append(1, payload(0, 4)); !vfs.IsInjected(err) {
			t.Fatalf("%s: append after the failure: %v", fault, err)
		}
		l.Close()
		got, st, l2 := replayAll(t, path)
		if st.Records < 3 || !bytes.Equal(got[3], payload(0, 2)) {
			t.Fatalf("%s: replayed %+v", fault, st)
		}
		l2.Close()
	}
}

// Reset leaves an empty log; sequence numbers start again at 1.
func TestReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.log")
	l, _ := Create(vfs.OS, path, testID)
	appendAll(t, l, 2, 10)
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	if seq, err := l.Append(3, []byte("new")); err != nil || seq != 1 {
		t.Fatalf("append after Reset: %d %v", seq, err)
	}
	l.Close()
	got, st, l := replayAll(t, path)
	if st.Records != 1 || string(got[1]) != "new" {
		t.Fatalf("after Reset: %+v", st)
	}
	l.Close()
	if _, err := os.Stat(path + ".new"); !os.IsNotExist(err) {
		t.Errorf("Reset left %s.new", path)
	}
	// Rewrite keeps the records given, renumbered; appends follow them.
	l, _, _ = Open(vfs.OS, path, testID, func(Record) error { return nil })
	if err := l.Rewrite([]Record{{Type: 7, Payload: []byte("a")}, {Type: 8, Payload: []byte("bb")}}); err != nil {
		t.Fatal(err)
	}
	if seq, err := l.Append(9, []byte("ccc")); err != nil || seq != 3 {
		t.Fatalf("append after Rewrite: %d %v", seq, err)
	}
	l.Close()
	var types []byte
	l, st, err := Open(vfs.OS, path, testID, func(r Record) error { types = append(types, r.Type); return nil })
	if err != nil || st.Records != 3 || string(types) != "\x07\x08\x09" {
		t.Fatalf("after Rewrite: %+v %v %v", st, types, err)
	}
	// DropThrough keeps the records after a sequence number.
	if err := l.DropThrough(2); err != nil {
		t.Fatal(err)
	}
	if seq, err := l.Append(10, []byte("d")); err != nil || seq != 2 {
		t.Fatalf("append after DropThrough: %d %v", seq, err)
	}
	l.Close()
	var kept []string
	l, _, err = Open(vfs.OS, path, testID, func(r Record) error {
		kept = append(kept, fmt.Sprintf("%d %d %s", r.Seq, r.Type, r.Payload))
		return nil
	})
	if err != nil || !slices.Equal(kept, []string{"1 9 ccc", "2 10 d"}) {
		t.Fatalf("after DropThrough: %q %v", kept, err)
	}
	l.Close()
}

// A writer killed (SIGKILL, at hook points inside group commit) loses no
// acknowledged record: every one is replayed with its payload, and the
// replayed records are exactly 1..n.
func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs writers in child processes")
	}
	dir := t.TempDir()
	for _, point := range []string{"wal: batch#3", "wal: written#5", "wal: synced#7", "wal: written#20", "wal: batch#40", "wal: synced#60", "wal: written#90"} {
		path := filepath.Join(dir, strings.NewReplacer(":", "", " ", "-", "#", "-").Replace(point)+".log")
		l, err := Create(vfs.OS, path, testID)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SPANN_WAL_CHILD="+path, "SPANN_TEST_CRASH_AT="+point)
		out, _ := cmd.Output()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("%s: the writer was not killed there: %v", point, cmd.ProcessState)
		}
		got, st, l2 := replayAll(t, path)
		l2.Close()
		acked := 0
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" {
				continue
			}
			f := strings.Fields(line)
			seq, _ := strconv.ParseUint(f[0], 10, 64)
			g, _ := strconv.Atoi(f[1])
			i, _ := strconv.Atoi(f[2])
			if !bytes.Equal(got[seq], payload(g, i)) {
				t.Fatalf("%s: acknowledged record %d (writer %d, #%d) lost or changed", point, seq, g, i)
			}
			acked++
		}
		if uint64(len(got)) != st.LastSeq || st.Records != len(got) {
			t.Fatalf("%s: replayed %d records, last %d", point, len(got), st.LastSeq)
		}
		if acked == 0 && point != "wal: batch#3" {
			t.Logf("%s: nothing acknowledged before the kill", point)
		}
		t.Logf("%s: %d acknowledged, %d replayed, %d torn bytes", point, acked, st.Records, st.TornBytes)
	}
}
