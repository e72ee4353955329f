// Package sysmem reads the process's and the machine's memory figures from
// /proc (Linux); elsewhere the functions return 0.
package sysmem

import (
	"os"
	"strconv"
	"strings"
)

// PeakRSS returns the process's peak resident set size in bytes (VmHWM).
func PeakRSS() int64 { return procField("/proc/self/status", "VmHWM:") }

// ResetPeakRSS restarts the peak (VmHWM) from the current resident size, so
// that the peak of one phase of work can be measured (Linux 4.0 and later:
// writing 5 to /proc/self/clear_refs). It does nothing where unsupported.
func ResetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

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
