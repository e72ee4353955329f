// Package sysmem reads the process's and the machine's memory figures from
// /proc (Linux); elsewhere the functions return 0.
package sysmem

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// PeakRSS returns the process's peak resident set size in bytes (VmHWM).
func PeakRSS() int64 { return procField("/proc/self/status", "VmHWM:") }

// RSS returns the current resident set size in bytes (VmRSS).
func RSS() int64 { return procField("/proc/self/status", "VmRSS:") }

// Physical returns the machine's total memory in bytes (MemTotal).
func Physical() int64 { return procField("/proc/meminfo", "MemTotal:") }

// procField returns a "Name:   123 kB" field of a /proc file in bytes.
func procField(path, name string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, name) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// Sampler records the largest resident set size seen between resets by
// reading VmRSS periodically. Unlike resetting VmHWM, it leaves the
// process's own peak (what /usr/bin/time reports) intact; short spikes
// between samples can be missed, so use it to attribute memory to phases
// and PeakRSS for the overall figure.
type Sampler struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

// StartSampler samples every interval until Stop.
func StartSampler(interval time.Duration) *Sampler {
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.max.Store(RSS())
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				r := RSS()
				for {
					m := s.max.Load()
					if r <= m || s.max.CompareAndSwap(m, r) {
						break
					}
				}
			}
		}
	}()
	return s
}

// TakeMax returns the largest RSS sampled since the last TakeMax (or the
// start) and restarts from the current RSS.
func (s *Sampler) TakeMax() int64 {
	r := RSS()
	m := s.max.Swap(r)
	return max(m, r)
}

// Stop ends the sampling.
func (s *Sampler) Stop() {
	close(s.stop)
	<-s.done
}
