package indexfile

import (
	"bytes"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/internal/vfs"
)

func testShards() *Shards {
	return &Shards{Routing: RoutingMod, Shards: 2, N: 7, Dirs: []string{ShardDir(0), ShardDir(1)},
		BuildIDs: []string{strings.Repeat("a", 32), strings.Repeat("b", 32)}}
}

// A shards file reads back; edits with the checksum fixed fail their own
// checks, edits without it the checksum; no file is not an error.
func TestShardsFile(t *testing.T) {
	dir := t.TempDir()
	if sh, err := ReadShards(dir); sh != nil || err != nil {
		t.Fatalf("no file: %v, %v", sh, err)
	}
	if err := WriteShards(vfs.OS, dir, testShards()); err != nil {
		t.Fatal(err)
	}
	sh, err := ReadShards(dir)
	if err != nil || sh.Shards != 2 || sh.N != 7 || sh.Dirs[1] != "shard-001" || sh.BuildIDs[1] != strings.Repeat("b", 32) {
		t.Fatalf("read back %+v, %v", sh, err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, ShardsName))
	for _, c := range []struct{ from, to, want string }{
		{`"n": 7`, `"n": 8`, "checksum"},
		{`"shards": 2`, `"shards": 3`, "3 shards with 2 directories"},
		{`"routing": "mod"`, `"routing": "hash"`, `routing "hash"`},
		{`"shard-001"`, `"../x"`, `directory "../x"`},
		{`"format": 1`, `"format": 2`, "shards format 2"},
	} {
		bad := bytes.Replace(good, []byte(c.from), []byte(c.to), 1)
		if c.want != "checksum" {
			bad = resignShards(t, bad)
		}
		_, err := ParseShards(bad)
		if err == nil || !strings.Contains(err.Error(), c.want) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrVersion)) {
			t.Errorf("%s -> %s: %v, want %q", c.from, c.to, err, c.want)
		}
	}
	if s, l := ShardOf(GlobalID(5, 1, 3), 3); s != 1 || l != 5 {
		t.Errorf("ShardOf(GlobalID(5, 1, 3)) = %d, %d", s, l)
	}
}

// resignShards fixes the checksum of edited shards-file bytes.
func resignShards(t *testing.T, data []byte) []byte {
	t.Helper()
	i := bytes.Index(data, []byte(`"checksum": "`)) + len(`"checksum": "`)
	out := bytes.Clone(data)
	copy(out[i:], zeroChecksum)
	copy(out[i:], CRCString(crc32.Checksum(out, castagnoli)))
	return out
}

func FuzzShardsFile(f *testing.F) {
	dir := f.TempDir()
	WriteShards(vfs.OS, dir, testShards())
	good, _ := os.ReadFile(filepath.Join(dir, ShardsName))
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		sh, err := ParseShards(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrVersion: %v", err)
			}
			return
		}
		if sh.Shards < 1 || len(sh.Dirs) != sh.Shards || len(sh.BuildIDs) != sh.Shards || sh.N < 0 {
			t.Fatalf("accepted %+v", sh)
		}
		for _, d := range sh.Dirs {
			if strings.ContainsAny(d, "/\\.") {
				t.Fatalf("accepted directory %q", d)
			}
		}
	})
}
