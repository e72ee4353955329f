//go:build linux

package iouring

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// openDirect opens path read-only with O_DIRECT. Filesystems without direct
// I/O (tmpfs, some overlay setups) reject the flag with EINVAL; the file is
// then opened buffered and direct=false, so callers still work (with the page
// cache in the way) instead of failing on a developer's tmpfs /tmp.
func openDirect(path string) (fd int, direct bool, err error) {
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err == nil {
		return fd, true, nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return -1, false, fmt.Errorf("iouring: open %s with O_DIRECT: %w", path, err)
	}
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return -1, false, fmt.Errorf("iouring: open %s: %w", path, err)
	}
	return fd, false, nil
}

func closeFd(fd int) error {
	// close(2) must not be retried on EINTR on Linux: the fd is released
	// either way.
	return unix.Close(fd)
}

// isRetryable reports errnos after which the same read is simply issued
// again: EAGAIN (io_uring with a nowait-capable device that was busy) and
// EINTR (a signal — Go's preemption uses SIGURG — hit a blocking read).
func isRetryable(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)
}
