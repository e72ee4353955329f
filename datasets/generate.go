package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// GenParams describes a synthetic data set that resembles real embeddings more
// than uniform noise does: a mixture of Clusters Gaussian clusters of skewed
// sizes (cluster c has weight ∝ 1/(c+1)^Skew), each living in its own random
// IntrinsicDim-dimensional subspace (with decaying variance along its
// directions) plus isotropic Noise. The same parameters and Seed always give
// the same vectors, row by row, whatever the thread count.
type GenParams struct {
	N            int
	Dim          int
	Type         ElemType
	Clusters     int     // 0 = max(4, N/5000) capped at 1000
	IntrinsicDim int     // 0 = min(16, Dim)
	Noise        float64 // 0 = 0.05; standard deviation of the full-dimensional noise
	Skew         float64 // 0 = 1 (Zipf-like sizes); use a tiny value such as 1e-9 for equal sizes
	Seed         uint64
	// Stream selects an independent sample from the same mixture: base vectors
	// use stream 0 and queries stream 1, so queries resemble but never copy the base.
	Stream uint64
}

func (p *GenParams) fill() error {
	if p.N <= 0 {
		return fmt.Errorf("generate: n must be positive, got %d", p.N)
	}
	if p.Dim <= 0 || p.Dim > MaxDim {
		return fmt.Errorf("generate: dim %d out of range 1..%d", p.Dim, MaxDim)
	}
	switch p.Type {
	case Float32, Uint8, Int8:
	default:
		return fmt.Errorf("generate: unknown element type %v", p.Type)
	}
	if p.Clusters == 0 {
		p.Clusters = min(1000, max(4, p.N/5000))
	}
	if p.IntrinsicDim == 0 {
		p.IntrinsicDim = min(16, p.Dim)
	}
	if p.Noise == 0 {
		p.Noise = 0.05
	}
	if p.Skew == 0 {
		p.Skew = 1
	}
	if p.Clusters < 1 || p.IntrinsicDim < 1 || p.IntrinsicDim > p.Dim || p.Noise < 0 || p.Skew < 0 {
		return fmt.Errorf("generate: bad parameters clusters=%d intrinsic-dim=%d (dim %d) noise=%g skew=%g",
			p.Clusters, p.IntrinsicDim, p.Dim, p.Noise, p.Skew)
	}
	return nil
}

// Mixture is the generative model behind a GenParams.
type Mixture struct {
	p       GenParams
	cum     []float64   // cumulative cluster weights, last = 1
	centers [][]float32 // Clusters × Dim
	bases   [][]float32 // Clusters × (IntrinsicDim × Dim), row j = direction j scaled
}

// NewMixture builds the mixture model of p.
func NewMixture(p GenParams) (*Mixture, error) {
	if err := p.fill(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(p.Seed, 0x5eed))
	m := &Mixture{p: p}
	total := 0.0
	for c := 0; c < p.Clusters; c++ {
		total += 1 / math.Pow(float64(c+1), p.Skew)
		m.cum = append(m.cum, total)
	}
	for c := range m.cum {
		m.cum[c] /= total
	}
	r := p.IntrinsicDim
	for c := 0; c < p.Clusters; c++ {
		center := make([]float32, p.Dim)
		for i := range center {
			center[i] = float32(rng.NormFloat64())
		}
		basis := make([]float32, r*p.Dim)
		for j := 0; j < r; j++ {
			// Direction j has spread 0.35/sqrt(j+1) per coordinate: a few
			// dominant directions and a tail, as in real embeddings' spectra,
			// and clusters tighter than the distance between their centres.
			scale := 0.35 / math.Sqrt(float64(j+1))
			for i := 0; i < p.Dim; i++ {
				basis[j*p.Dim+i] = float32(rng.NormFloat64() * scale)
			}
		}
		m.centers = append(m.centers, center)
		m.bases = append(m.bases, basis)
	}
	return m, nil
}

// Params returns the filled-in parameters.
func (m *Mixture) Params() GenParams { return m.p }

// rowFloat fills dst (len Dim) with row i of the sample in float space.
func (m *Mixture) rowFloat(i int, dst []float32, z []float64) {
	p := &m.p
	rng := rand.New(rand.NewPCG(p.Seed^0x9e3779b97f4a7c15*(p.Stream+1), uint64(i)))
	u := rng.Float64()
	c := 0
	for c < len(m.cum)-1 && m.cum[c] < u {
		c++
	}
	for j := range z {
		z[j] = rng.NormFloat64()
	}
	center, basis := m.centers[c], m.bases[c]
	for k := 0; k < p.Dim; k++ {
		v := float64(center[k]) + p.Noise*rng.NormFloat64()
		for j := range z {
			v += z[j] * float64(basis[j*p.Dim+k])
		}
		dst[k] = float32(v)
	}
}

// Row writes row i as raw bytes of the mixture's element type into dst (len
// Dim*Type.Size()). Integer types map the float value x to round(64+40x)
// clipped to 0..255 (uint8) or round(40x) clipped to -128..127 (int8).
func (m *Mixture) Row(i int, dst []byte) {
	f := make([]float32, m.p.Dim)
	z := make([]float64, m.p.IntrinsicDim)
	m.row(i, dst, f, z)
}

func (m *Mixture) row(i int, dst []byte, f []float32, z []float64) {
	m.rowFloat(i, f, z)
	switch m.p.Type {
	case Float32:
		copy(Rows[float32](dst), f)
	case Uint8:
		for k, x := range f {
			dst[k] = uint8(math.Max(0, math.Min(255, math.Round(64+40*float64(x)))))
		}
	case Int8:
		for k, x := range f {
			dst[k] = byte(int8(math.Max(-128, math.Min(127, math.Round(40*float64(x))))))
		}
	}
}

// Fill writes rows [start, start+count) into dst using up to threads goroutines.
func (m *Mixture) Fill(start, count int, dst []byte, threads int) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	rb := m.p.Dim * m.p.Type.Size()
	var wg sync.WaitGroup
	chunk := (count + threads - 1) / threads
	for t := 0; t < threads; t++ {
		lo, hi := t*chunk, min(count, (t+1)*chunk)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := make([]float32, m.p.Dim)
			z := make([]float64, m.p.IntrinsicDim)
			for i := lo; i < hi; i++ {
				m.row(start+i, dst[i*rb:(i+1)*rb], f, z)
			}
		}()
	}
	wg.Wait()
}

// Generate writes p.N rows of the mixture to path, in blocks (bounded memory),
// calling progress (if not nil) with the rows written so far.
func Generate(path string, p GenParams, threads int, progress func(done, total int)) error {
	m, err := NewMixture(p)
	if err != nil {
		return err
	}
	p = m.p
	w, err := CreateVectors(path, p.Type, p.Dim)
	if err != nil {
		return err
	}
	rb := p.Dim * p.Type.Size()
	block := max(1, (8<<20)/rb)
	buf := alignedBytes(block * rb)
	for s := 0; s < p.N; s += block {
		cnt := min(block, p.N-s)
		m.Fill(s, cnt, buf[:cnt*rb], threads)
		if err := w.Write(buf[:cnt*rb]); err != nil {
			w.Abort()
			return err
		}
		if progress != nil {
			progress(s+cnt, p.N)
		}
	}
	return w.Close()
}
