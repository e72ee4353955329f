package datasets

import (
	"fmt"
)

// SplitVectors writes the rows of src (its first crop rows; 0: all) into
// len(dsts) files of the same type and dimension, row i into dsts[i mod
// S] (a sharded build's "mod" routing), streaming: memory holds a block.
// It returns each file's row count. On error no destination is left
// behind.
func SplitVectors(src string, t ElemType, crop int, dsts []string) ([]int, error) {
	if len(dsts) < 1 {
		return nil, fmt.Errorf("split %s: no destination", src)
	}
	vf, err := OpenVectors(src, t)
	if err != nil {
		return nil, err
	}
	defer vf.Close()
	if crop > 0 && crop < vf.N {
		if err := vf.Crop(crop); err != nil {
			return nil, err
		}
	}
	if vf.N < len(dsts) {
		return nil, fmt.Errorf("split %s: %d vectors for %d shards: each shard needs one", src, vf.N, len(dsts))
	}
	ws := make([]*VectorWriter, len(dsts))
	defer func() {
		for _, w := range ws {
			if w != nil {
				w.Abort()
			}
		}
	}()
	for s, d := range dsts {
		if ws[s], err = CreateVectors(d, vf.Type, vf.Dim); err != nil {
			return nil, err
		}
	}
	rb := vf.RowBytes()
	err = vf.Stream(4096, func(start int, rows []byte) error {
		for i := 0; i < len(rows)/rb; i++ {
			if err := ws[(start+i)%len(ws)].Write(rows[i*rb : (i+1)*rb]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	counts := make([]int, len(ws))
	for s, w := range ws {
		counts[s] = w.Rows()
		ws[s] = nil
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	return counts, nil
}
