package indexfile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/gospann/spann/internal/vfs"
)

// ShardsName is the file that makes a directory a sharded index: S
// complete indexes in its subdirectories shard-000, shard-001, …, base
// vector i in shard i mod S as that shard's vector i div S ("mod"
// routing: see docs/scale.md for why). It is written last, after every
// shard's own manifest, so a directory with it holds every shard.
//
// Layout: JSON, self-checksummed like the manifest (the CRC-32C of the
// file with the checksum field's value set to eight zeros):
//
//	{
//	  "magic": "spann-shards",
//	  "format": 1,
//	  "routing": "mod",
//	  "shards": S,
//	  "n": N,                      // base vectors in all
//	  "dirs": ["shard-000", …],    // S names, in shard order
//	  "build_ids": ["<32 hex>", …], // each shard's build id, in shard order
//	  "checksum": "<8 hex>"
//	}
const ShardsName = "shards.json"

const (
	shardsMagic  = "spann-shards"
	shardsFormat = 1
	// RoutingMod is the only routing: base vector i goes to shard i mod S.
	RoutingMod = "mod"
)

// Shards is a decoded shards file.
type Shards struct {
	Magic    string   `json:"magic"`
	Format   int      `json:"format"`
	Routing  string   `json:"routing"`
	Shards   int      `json:"shards"`
	N        int64    `json:"n"`
	Dirs     []string `json:"dirs"`
	BuildIDs []string `json:"build_ids"`
	Checksum string   `json:"checksum"`
}

// ShardDir returns the directory name of shard s.
func ShardDir(s int) string { return fmt.Sprintf("shard-%03d", s) }

// ShardBuildID derives shard s's build id from a set's id, so that a
// sharded build given one id is reproducible and its shards' ids differ.
func ShardBuildID(id BuildID, s int) BuildID {
	id[15] ^= byte(s)
	id[14] ^= byte(s >> 8)
	return id
}

var shardDirName = regexp.MustCompile(`^shard-[0-9]{3,}$`)

// WriteShards writes sh as dir's shards file, atomically.
func WriteShards(fs vfs.FS, dir string, sh *Shards) error {
	sh.Magic, sh.Format = shardsMagic, shardsFormat
	data, err := signJSON(sh, func(sum string) { sh.Checksum = sum })
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, ShardsName), data)
}

// ReadShards reads dir's shards file: (nil, nil) if there is none (dir is
// not sharded), an error wrapping ErrCorrupt if it is damaged.
func ReadShards(dir string) (*Shards, error) {
	path := filepath.Join(dir, ShardsName)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sh, err := ParseShards(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sh, nil
}

// ParseShards decodes and checks a shards file's bytes.
func ParseShards(data []byte) (*Shards, error) {
	var sh Shards
	if err := json.Unmarshal(data, &sh); err != nil {
		return nil, fmt.Errorf("not a shards file: %v: %w", err, ErrCorrupt)
	}
	if sh.Magic != shardsMagic {
		return nil, fmt.Errorf("magic %q, not %q: %w", sh.Magic, shardsMagic, ErrCorrupt)
	}
	if ok, got := verifyJSON(data, sh.Checksum); !ok {
		return nil, fmt.Errorf("checksum %q, computed %s: %w", sh.Checksum, got, ErrCorrupt)
	}
	if sh.Format != shardsFormat {
		return nil, fmt.Errorf("%w: shards format %d, this program reads %d", ErrVersion, sh.Format, shardsFormat)
	}
	switch {
	case sh.Routing != RoutingMod:
		return nil, fmt.Errorf("routing %q, not %q: %w", sh.Routing, RoutingMod, ErrCorrupt)
	case sh.Shards < 1 || len(sh.Dirs) != sh.Shards || len(sh.BuildIDs) != sh.Shards:
		return nil, fmt.Errorf("%d shards with %d directories and %d build ids: %w", sh.Shards, len(sh.Dirs), len(sh.BuildIDs), ErrCorrupt)
	case sh.N < 0 || sh.N > 1<<31:
		return nil, fmt.Errorf("%d vectors: %w", sh.N, ErrCorrupt)
	}
	for i, d := range sh.Dirs {
		if !shardDirName.MatchString(d) {
			return nil, fmt.Errorf("shard %d in directory %q, not shard-NNN: %w", i, d, ErrCorrupt)
		}
	}
	return &sh, nil
}

// ShardOf returns the shard of base vector id and its id there, for S
// shards with mod routing.
func ShardOf(id int64, shards int) (shard int, local int64) {
	return int(id % int64(shards)), id / int64(shards)
}

// GlobalID returns the base id of shard s's vector local, for S shards
// with mod routing.
func GlobalID(local int64, s, shards int) int64 { return local*int64(shards) + int64(s) }
