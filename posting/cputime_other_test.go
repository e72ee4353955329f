//go:build !linux

package posting

// threadCPU is unavailable off Linux; the CPU metrics then read 0.
func threadCPU() int64 { return 0 }
