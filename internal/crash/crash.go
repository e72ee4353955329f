// Package crash kills the process at named points when a test asks for it
// (environment variable SPANN_TEST_CRASH_AT, empty in normal use), so that
// crash tests kill a real process exactly where they mean to instead of
// after a guessed delay. "NAME#K" kills at the K-th pass through NAME,
// "NAME" at the first. The points are listed where they are placed
// (internal/build/crash.go, internal/wal).
package crash

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

var (
	at   = os.Getenv("SPANN_TEST_CRASH_AT")
	mu   sync.Mutex
	seen = map[string]int{}
)

// Point kills the process with SIGKILL if the test asked for a crash at
// name (this pass through it).
func Point(name string) {
	if at == "" {
		return
	}
	mu.Lock()
	seen[name]++
	hit := at == name && seen[name] == 1 || at == fmt.Sprintf("%s#%d", name, seen[name])
	mu.Unlock()
	if hit {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
