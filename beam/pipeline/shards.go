package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/gospann/spann/buildkit"
	"github.com/gospann/spann/datasets"
)

// splitDir holds a sharded build's split base inside its output.
const splitDir = ".split"

// Sharded is a sharded build: the base split by mod routing (vector i in
// shard i mod S as its vector i div S, as spann-build --shards splits it)
// and one build per shard.
type Sharded struct {
	Out    string
	Shards []Config
}

// NewSharded splits cfg's base into shards files under cfg.Out/.split
// (one sequential pass, on the launcher) and returns the shards' builds,
// each New's, into cfg.Out/shard-NNN with the build ids spann-build
// --shards derives from cfg's, so that each shard equals spann-build's.
func NewSharded(cfg Config, shards int) (*Sharded, error) {
	if shards < 2 || shards > 999 {
		return nil, fmt.Errorf("--shards %d: must be 2 to 999 (1 is an unsharded build)", shards)
	}
	if cfg.Base == "" || cfg.Out == "" {
		return nil, errors.New("both --base and --out are needed")
	}
	if _, err := os.Stat(cfg.Out); err == nil {
		return nil, fmt.Errorf("%s already exists", cfg.Out)
	}
	if cfg.BuildID == "" {
		id, err := buildkit.NewBuildID()
		if err != nil {
			return nil, err
		}
		cfg.BuildID = id.String()
	}
	id, err := buildkit.ParseBuildID(cfg.BuildID)
	if err != nil {
		return nil, fmt.Errorf("--build-id: %w", err)
	}
	typ, err := datasets.TypeFromPath(cfg.Base)
	if cfg.Type != "" {
		typ, err = datasets.ParseType(cfg.Type)
	}
	if err != nil {
		return nil, err
	}
	split := filepath.Join(cfg.Out, splitDir)
	if err := os.MkdirAll(split, 0o755); err != nil {
		return nil, err
	}
	bases := make([]string, shards)
	for s := range bases {
		bases[s] = filepath.Join(split, buildkit.ShardDir(s)+typ.Ext())
	}
	if _, err := datasets.SplitVectors(cfg.Base, typ, 0, bases); err != nil {
		os.RemoveAll(cfg.Out)
		return nil, err
	}
	sh := &Sharded{Out: cfg.Out}
	for s := range shards {
		c := cfg
		c.Base, c.Out = bases[s], filepath.Join(cfg.Out, buildkit.ShardDir(s))
		c.BuildID = buildkit.ShardBuildID(id, s).String()
		if c, err = New(c); err != nil {
			os.RemoveAll(cfg.Out)
			return nil, fmt.Errorf("shard %d: %w", s, err)
		}
		sh.Shards = append(sh.Shards, c)
	}
	return sh, nil
}

// Construct adds every shard's build to the pipeline, then the step that
// writes shards.json (last) and removes the split base.
func (sh *Sharded) Construct(s beam.Scope) {
	var done []beam.PCollection
	for _, c := range sh.Shards {
		done = append(done, Construct(s.Scope(filepath.Base(c.Out)), c))
	}
	beam.ParDo0(s, &shardsFn{Out: sh.Out, Shards: len(sh.Shards)}, beam.Impulse(s),
		beam.SideInput{Input: beam.Flatten(s, done...)})
}

func init() {
	register.DoFn3x1[context.Context, []byte, func(*Committed) bool, error](&shardsFn{})
	register.Iter1[Committed]()
}

// shardsFn writes shards.json once every shard is committed.
type shardsFn struct {
	Out    string
	Shards int
}

func (f *shardsFn) ProcessElement(ctx context.Context, _ []byte, committed func(*Committed) bool) error {
	ids := make([]string, f.Shards)
	var n int64
	var c Committed
	for committed(&c) {
		s := -1
		for i := range ids {
			if filepath.Clean(c.Out) == filepath.Join(f.Out, buildkit.ShardDir(i)) {
				s = i
			}
		}
		if s < 0 {
			return fmt.Errorf("a shard committed at %s, not in %s", c.Out, f.Out)
		}
		if ids[s] == "" {
			ids[s] = c.BuildID
			n += int64(c.N)
		}
	}
	for s, id := range ids {
		if id == "" {
			return fmt.Errorf("shard %d of %s was never committed", s, f.Out)
		}
	}
	if err := os.RemoveAll(filepath.Join(f.Out, splitDir)); err != nil {
		return err
	}
	if err := buildkit.WriteShards(f.Out, ids, n); err != nil {
		return err
	}
	log.Infof(ctx, "spann: %d shards of %d vectors written to %s", f.Shards, n, f.Out)
	return nil
}
