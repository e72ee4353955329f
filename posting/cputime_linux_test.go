package posting

import "syscall"

// threadCPU returns the calling OS thread's CPU time in ns (user+system).
// Benchmarks lock their goroutine to a thread and report CPU time as well
// as wall time, because the shared benchmark machine's wall time includes
// waiting for other processes.
func threadCPU() int64 {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
