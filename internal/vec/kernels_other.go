//go:build noasm || !amd64 || !gc

package vec

// asmKernels reports that this build has no assembly kernels: the platform is
// not amd64, the compiler is not gc, or the noasm build tag was given.
func asmKernels() (kernelSet, bool) { return kernelSet{}, false }
