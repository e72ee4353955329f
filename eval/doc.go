// Package eval computes exact ground truth by brute force and scores search
// results against it with tie-aware recall, as big-ann-benchmarks does.
package eval
