// Package vfs is the small filesystem interface the index build writes
// through, so that tests can make any one of a real build's writes fail
// (Injector) and check what the build leaves behind. pebble's vfs and
// vfs/errorfs are the model; this one holds only what the build uses.
package vfs

import (
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Seeker
	Sync() error
	Close() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Name() string
	Fd() uintptr // for flock
}

// FS is the file system.
type FS interface {
	Create(name string) (File, error)
	Open(name string) (File, error)
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	MkdirAll(path string, perm os.FileMode) error
	MkdirTemp(dir, pattern string) (string, error)
	Rename(oldpath, newpath string) error
	// Exchange swaps two paths atomically (renameat2 RENAME_EXCHANGE);
	// file systems without it return EINVAL or ENOSYS.
	Exchange(a, b string) error
	Remove(name string) error
	RemoveAll(path string) error
	// SyncDir fsyncs a directory, so that the renames inside it are
	// durable.
	SyncDir(dir string) error
}

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) Create(name string) (File, error) { return wrap(os.Create(name)) }
func (osFS) Open(name string) (File, error)   { return wrap(os.Open(name)) }
func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	return wrap(os.OpenFile(name, flag, perm))
}
func (osFS) MkdirAll(path string, perm os.FileMode) error  { return os.MkdirAll(path, perm) }
func (osFS) MkdirTemp(dir, pattern string) (string, error) { return os.MkdirTemp(dir, pattern) }
func (osFS) Rename(oldpath, newpath string) error          { return os.Rename(oldpath, newpath) }
func (osFS) Exchange(a, b string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		return &os.LinkError{Op: "exchange", Old: a, New: b, Err: err}
	}
	return nil
}
func (osFS) Remove(name string) error    { return os.Remove(name) }
func (osFS) RemoveAll(path string) error { return os.RemoveAll(path) }
func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: err}
	}
	return nil
}

// wrap keeps a nil *os.File from becoming a non-nil File.
func wrap(f *os.File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return f, nil
}

// WriteFileAtomic replaces path with data so that a crash at any instant
// leaves either the old file or the complete new one: it writes and syncs
// path+".tmp", renames it over path and syncs the directory.
func WriteFileAtomic(fs FS, path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		fs.Remove(tmp)
		return &os.PathError{Op: "write", Path: tmp, Err: err}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		fs.Remove(tmp)
		return &os.PathError{Op: "sync", Path: tmp, Err: err}
	}
	if err := f.Close(); err != nil {
		fs.Remove(tmp)
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		fs.Remove(tmp)
		return err
	}
	return fs.SyncDir(filepath.Dir(path))
}
