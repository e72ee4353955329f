// Package plot draws recall-against-QPS curves of search sweeps as PNG (or
// SVG/PDF), with gonum/plot, the way ann-benchmarks draws them: recall@k
// across, queries per second up on a log scale, both axes with labelled
// ticks, every point marked with the setting that produced it.
package plot

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Point is one measured setting.
type Point struct {
	Recall float64
	QPS    float64
	Label  string // the swept parameter's value, drawn beside the point
}

// Series is one curve.
type Series struct {
	Name   string
	Points []Point
}

// palette gives each series its own colour (Okabe–Ito, readable by the
// colour-blind) and, past eight, a dash pattern too.
var palette = []color.RGBA{
	{0, 114, 178, 255}, {213, 94, 0, 255}, {0, 158, 115, 255}, {204, 121, 167, 255},
	{86, 180, 233, 255}, {230, 159, 0, 255}, {0, 0, 0, 255}, {240, 228, 66, 255},
}

// RecallQPS writes a plot of QPS (log scale) against recall@k for every
// series to path; the format follows the extension (.png, .svg, .pdf).
func RecallQPS(path, title string, k int, series []Series) error {
	if len(series) == 0 {
		return fmt.Errorf("plot %s: no series to draw", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = fmt.Sprintf("recall@%d", k)
	p.Y.Label.Text = "queries per second (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = qpsTicks{}
	p.X.Tick.Marker = recallTicks{}
	p.Add(plotter.NewGrid())
	for i, s := range series {
		if len(s.Points) == 0 {
			return fmt.Errorf("plot %s: series %q has no points", path, s.Name)
		}
		xys := make(plotter.XYs, len(s.Points))
		labels := make([]string, len(s.Points))
		for j, pt := range s.Points {
			if !(pt.QPS > 0) || math.IsInf(pt.QPS, 0) {
				return fmt.Errorf("plot %s: series %q point %d: QPS %g cannot go on a log scale", path, s.Name, j, pt.QPS)
			}
			if math.IsNaN(pt.Recall) || math.IsInf(pt.Recall, 0) {
				return fmt.Errorf("plot %s: series %q point %d: recall %g", path, s.Name, j, pt.Recall)
			}
			xys[j] = plotter.XY{X: pt.Recall, Y: pt.QPS}
			labels[j] = pt.Label
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		c := palette[i%len(palette)]
		line.Color, line.Width = c, vg.Points(1.5)
		if i >= len(palette) {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		points.Color, points.Shape, points.Radius = c, draw.CircleGlyph{}, vg.Points(2.5)
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		for j := range lab.TextStyle {
			lab.TextStyle[j].Color = c
			lab.TextStyle[j].Font.Size = vg.Points(8)
		}
		lab.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(3)}
		p.Add(line, points, lab)
		p.Legend.Add(s.Name, line, points)
	}
	p.Legend.Left = true // bottom left: curves fall to the right, so it is usually empty
	if err := p.Save(8*vg.Inch, 5.5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

// qpsTicks labels a log axis at 1, 2 and 5 times the powers of ten, and at
// every integer multiple when the range spans less than one decade, so a
// sweep between 1,000 and 3,000 QPS still shows numbers.
type qpsTicks struct{}

func (qpsTicks) Ticks(min, max float64) []plot.Tick {
	if !(min > 0) || !(max > min) {
		return nil
	}
	labelled := map[float64]bool{1: true, 2: true, 5: true}
	if max/min < 10 {
		labelled = map[float64]bool{1: true, 1.5: true, 2: true, 2.5: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		decade := math.Pow(10, e)
		for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9} {
			v := m * decade
			if v < min || v > max || (m != math.Trunc(m) && !labelled[m]) {
				continue
			}
			t := plot.Tick{Value: v}
			if labelled[m] {
				t.Label = formatQPS(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// formatQPS prints 1500 as "1,500" and 0.5 as "0.5".
func formatQPS(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if v < 1000 || v != math.Trunc(v) {
		return s
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// recallTicks labels the recall axis every 0.01, 0.02, 0.05 or 0.1,
// whichever gives four to twelve labels.
type recallTicks struct{}

func (recallTicks) Ticks(min, max float64) []plot.Tick {
	if !(max > min) {
		return []plot.Tick{{Value: min, Label: strconv.FormatFloat(min, 'f', 3, 64)}}
	}
	step := 0.1
	for _, s := range []float64{0.005, 0.01, 0.02, 0.05, 0.1} {
		if (max-min)/s <= 12 {
			step = s
			break
		}
	}
	prec := 2
	if step < 0.01 {
		prec = 3
	}
	var ticks []plot.Tick
	for i := math.Ceil(min/step - 1e-9); i*step <= max+1e-9; i++ {
		v := i * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
		// Unlabelled minor ticks halfway.
		if h := v + step/2; h <= max {
			ticks = append(ticks, plot.Tick{Value: h})
		}
	}
	return ticks
}
