package datasets

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// atomicFile writes to a temporary file beside path and renames it into place
// on Commit, so that a reader never sees a half-written file at path.
type atomicFile struct {
	path string
	tmp  *os.File
	w    *bufio.Writer
}

func createAtomic(path string) (*atomicFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &atomicFile{path: path, tmp: tmp, w: bufio.NewWriterSize(tmp, 1<<20)}, nil
}

func (a *atomicFile) commit(header []byte) error {
	if err := a.w.Flush(); err != nil {
		a.abort()
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	if header != nil {
		if _, err := a.tmp.WriteAt(header, 0); err != nil {
			a.abort()
			return fmt.Errorf("write %s: %w", a.path, err)
		}
	}
	if err := a.tmp.Sync(); err != nil {
		a.abort()
		return fmt.Errorf("sync %s: %w", a.path, err)
	}
	if err := a.tmp.Close(); err != nil {
		os.Remove(a.tmp.Name())
		return fmt.Errorf("close %s: %w", a.path, err)
	}
	if err := os.Rename(a.tmp.Name(), a.path); err != nil {
		os.Remove(a.tmp.Name())
		return fmt.Errorf("rename into %s: %w", a.path, err)
	}
	return nil
}

func (a *atomicFile) abort() {
	a.tmp.Close()
	os.Remove(a.tmp.Name())
}

// VectorWriter writes a vector file row by row. The file appears at its path
// only when Close succeeds; Abort (or a failed Close) leaves nothing behind.
// A VectorWriter must be used by one goroutine.
type VectorWriter struct {
	f    *atomicFile
	typ  ElemType
	dim  int
	rows int
	err  error
}

// CreateVectors starts a vector file of the given type and dimension.
func CreateVectors(path string, t ElemType, dim int) (*VectorWriter, error) {
	if dim <= 0 || dim > MaxDim {
		return nil, fmt.Errorf("create %s: dim %d out of range 1..%d", path, dim, MaxDim)
	}
	f, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	// Placeholder header; the real row count is written by Close.
	if _, err := f.w.Write(make([]byte, 8)); err != nil {
		f.abort()
		return nil, err
	}
	return &VectorWriter{f: f, typ: t, dim: dim}, nil
}

// Write appends rows given as raw little-endian bytes (a whole number of rows).
func (w *VectorWriter) Write(rows []byte) error {
	if w.err != nil {
		return w.err
	}
	rb := w.dim * w.typ.Size()
	if len(rows)%rb != 0 {
		return fmt.Errorf("write %s: %d bytes is not a whole number of %d-byte rows", w.f.path, len(rows), rb)
	}
	if _, err := w.f.w.Write(rows); err != nil {
		w.err = fmt.Errorf("write %s: %w", w.f.path, err)
		return w.err
	}
	w.rows += len(rows) / rb
	return nil
}

// Rows returns the number of rows written so far.
func (w *VectorWriter) Rows() int { return w.rows }

// Close writes the header and moves the file into place.
func (w *VectorWriter) Close() error {
	if w.err != nil {
		w.f.abort()
		return w.err
	}
	if w.rows == 0 {
		w.f.abort()
		return fmt.Errorf("write %s: no rows written", w.f.path)
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(w.rows))
	binary.LittleEndian.PutUint32(h[4:], uint32(w.dim))
	return w.f.commit(h[:])
}

// Abort discards the file.
func (w *VectorWriter) Abort() { w.f.abort() }

// WriteVectors writes a whole in-memory matrix to path.
func WriteVectors(path string, m *Matrix) error {
	w, err := CreateVectors(path, m.Type, m.Dim)
	if err != nil {
		return err
	}
	if err := w.Write(m.Data[:m.N*m.Dim*m.Type.Size()]); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}
