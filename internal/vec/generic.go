package vec

// Pure-Go reference kernels. They are always compiled: the assembly is tested
// against them, and they serve every platform without assembly and the noasm
// build. The float loops keep four independent accumulators, which lets the
// compiler overlap the additions and roughly matches the summation order of
// the vector code (so results agree to a few ulps, not bit for bit).

// L2F32Go is the reference for L2F32.
func L2F32Go(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0 := a[i] - b[i]
		d1 := a[i+1] - b[i+1]
		d2 := a[i+2] - b[i+2]
		d3 := a[i+3] - b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// DotF32Go is the reference for DotF32.
func DotF32Go(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// L2U8Go is the reference for L2U8.
func L2U8Go(a, b []uint8) uint32 {
	b = b[:len(a)]
	var s uint32
	for i := range a {
		d := int32(a[i]) - int32(b[i])
		s += uint32(d * d)
	}
	return s
}

// DotU8Go is the reference for DotU8.
func DotU8Go(a, b []uint8) uint32 {
	b = b[:len(a)]
	var s uint32
	for i := range a {
		s += uint32(a[i]) * uint32(b[i])
	}
	return s
}

// L2I8Go is the reference for L2I8.
func L2I8Go(a, b []int8) uint32 {
	b = b[:len(a)]
	var s uint32
	for i := range a {
		d := int32(a[i]) - int32(b[i])
		s += uint32(d * d)
	}
	return s
}

// DotI8Go is the reference for DotI8.
func DotI8Go(a, b []int8) int32 {
	b = b[:len(a)]
	var s int32
	for i := range a {
		s += int32(a[i]) * int32(b[i])
	}
	return s
}

// L2F32BatchGo is the reference for L2F32Batch.
func L2F32BatchGo(q, data, out []float32) {
	d := len(q)
	for i := range out {
		out[i] = L2F32Go(q, data[i*d:(i+1)*d])
	}
}

// DotF32BatchGo is the reference for DotF32Batch.
func DotF32BatchGo(q, data, out []float32) {
	d := len(q)
	for i := range out {
		out[i] = DotF32Go(q, data[i*d:(i+1)*d])
	}
}

// L2U8BatchGo is the reference for L2U8Batch.
func L2U8BatchGo(q, data []uint8, out []float32) {
	d := len(q)
	for i := range out {
		out[i] = float32(L2U8Go(q, data[i*d:(i+1)*d]))
	}
}

// DotU8BatchGo is the reference for DotU8Batch.
func DotU8BatchGo(q, data []uint8, out []float32) {
	d := len(q)
	for i := range out {
		out[i] = float32(DotU8Go(q, data[i*d:(i+1)*d]))
	}
}

// L2I8BatchGo is the reference for L2I8Batch.
func L2I8BatchGo(q, data []int8, out []float32) {
	d := len(q)
	for i := range out {
		out[i] = float32(L2I8Go(q, data[i*d:(i+1)*d]))
	}
}

// DotI8BatchGo is the reference for DotI8Batch.
func DotI8BatchGo(q, data []int8, out []float32) {
	d := len(q)
	for i := range out {
		out[i] = float32(DotI8Go(q, data[i*d:(i+1)*d]))
	}
}
