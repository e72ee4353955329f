package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// Fault is what an Injector does to the operation it fails.
type Fault int

const (
	ENOSPC Fault = iota // the operation fails with ENOSPC, nothing written
	EIO                 // the operation fails with EIO, nothing written
	// Short makes a Write store only the first half of its bytes and
	// return io.ErrShortWrite (other operations fail with EIO).
	Short
)

func (f Fault) String() string {
	return [...]string{"ENOSPC", "EIO", "short write"}[f]
}

// Injector is an FS that passes everything to FS but makes the Fail-th
// mutating operation (1-based; 0 fails none) fail with Fault. Mutating
// operations are Create, OpenFile with a write flag, MkdirAll, MkdirTemp,
// Rename, Exchange and SyncDir, and a File's Write, Sync and Truncate;
// reads, Open and removals always pass. Ops counts the mutating
// operations seen, so a first run with Fail 0 tells a test how many there
// are to fail one by one. Safe for concurrent use.
type Injector struct {
	FS    FS
	Fail  int
	Fault Fault

	mu  sync.Mutex
	ops int
	hit string
}

// Ops returns how many mutating operations were seen.
func (in *Injector) Ops() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.ops
}

// Hit describes the operation that was failed ("" if none was).
func (in *Injector) Hit() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hit
}

// fail counts one mutating operation and reports whether to fail it.
func (in *Injector) fail(op, path string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.ops++
	if in.ops != in.Fail {
		return false
	}
	in.hit = fmt.Sprintf("%s %s (%s)", op, path, in.Fault)
	return true
}

func (in *Injector) errno() error {
	if in.Fault == ENOSPC {
		return syscall.ENOSPC
	}
	return syscall.EIO
}

func (in *Injector) pathErr(op, path string) error {
	return &os.PathError{Op: op, Path: path, Err: in.errno()}
}

func (in *Injector) Create(name string) (File, error) {
	if in.fail("create", name) {
		return nil, in.pathErr("open", name)
	}
	f, err := in.FS.Create(name)
	return in.file(f, err)
}

func (in *Injector) Open(name string) (File, error) {
	f, err := in.FS.Open(name)
	return in.file(f, err)
}

func (in *Injector) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 && in.fail("open", name) {
		return nil, in.pathErr("open", name)
	}
	f, err := in.FS.OpenFile(name, flag, perm)
	return in.file(f, err)
}

func (in *Injector) MkdirAll(path string, perm os.FileMode) error {
	if in.fail("mkdir", path) {
		return in.pathErr("mkdir", path)
	}
	return in.FS.MkdirAll(path, perm)
}

func (in *Injector) MkdirTemp(dir, pattern string) (string, error) {
	if in.fail("mkdirtemp", dir) {
		return "", in.pathErr("mkdirtemp", dir)
	}
	return in.FS.MkdirTemp(dir, pattern)
}

func (in *Injector) Rename(oldpath, newpath string) error {
	if in.fail("rename", oldpath) {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: in.errno()}
	}
	return in.FS.Rename(oldpath, newpath)
}

func (in *Injector) Exchange(a, b string) error {
	if in.fail("exchange", a) {
		return &os.LinkError{Op: "exchange", Old: a, New: b, Err: in.errno()}
	}
	return in.FS.Exchange(a, b)
}

func (in *Injector) Remove(name string) error    { return in.FS.Remove(name) }
func (in *Injector) RemoveAll(path string) error { return in.FS.RemoveAll(path) }

func (in *Injector) SyncDir(dir string) error {
	if in.fail("syncdir", dir) {
		return in.pathErr("sync", dir)
	}
	return in.FS.SyncDir(dir)
}

func (in *Injector) file(f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &injectedFile{File: f, in: in}, nil
}

type injectedFile struct {
	File
	in *Injector
}

func (f *injectedFile) Write(p []byte) (int, error) {
	if len(p) > 0 && f.in.fail("write", f.Name()) {
		if f.in.Fault != Short {
			return 0, f.in.pathErr("write", f.Name())
		}
		n, err := f.File.Write(p[:len(p)/2])
		if err == nil {
			err = io.ErrShortWrite
		}
		return n, err
	}
	return f.File.Write(p)
}

func (f *injectedFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) > 0 && f.in.fail("write", f.Name()) {
		if f.in.Fault != Short {
			return 0, f.in.pathErr("write", f.Name())
		}
		n, err := f.File.WriteAt(p[:len(p)/2], off)
		if err == nil {
			err = io.ErrShortWrite
		}
		return n, err
	}
	return f.File.WriteAt(p, off)
}

func (f *injectedFile) Sync() error {
	if f.in.fail("sync", f.Name()) {
		return f.in.pathErr("sync", f.Name())
	}
	return f.File.Sync()
}

func (f *injectedFile) Truncate(size int64) error {
	if f.in.fail("truncate", f.Name()) {
		return f.in.pathErr("truncate", f.Name())
	}
	return f.File.Truncate(size)
}

// IsInjected reports whether err is one an Injector made (ENOSPC, EIO or a
// short write), through any wrapping.
func IsInjected(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) || errors.Is(err, io.ErrShortWrite)
}
