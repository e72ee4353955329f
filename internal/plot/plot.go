// Package plot draws recall-against-QPS curves of search sweeps as PNG,
// with gonum/plot.
package plot

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
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

// RecallQPS writes a PNG (or SVG/PDF, by extension) plot of QPS (log scale)
// against recall@k for every series.
func RecallQPS(path, title string, k int, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = fmt.Sprintf("recall@%d", k)
	p.Y.Label.Text = "queries per second"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	for i, s := range series {
		xys := make(plotter.XYs, len(s.Points))
		labels := make([]string, len(s.Points))
		for j, pt := range s.Points {
			if pt.QPS <= 0 {
				return fmt.Errorf("plot %s: QPS %g of point %d cannot go on a log scale", path, pt.QPS, j)
			}
			xys[j] = plotter.XY{X: pt.Recall, Y: pt.QPS}
			labels[j] = pt.Label
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		line.Color = plotter.DefaultLineStyle.Color
		if i > 0 {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		p.Add(line, points, lab)
		p.Legend.Add(s.Name, line, points)
	}
	p.Legend.Top = true
	if err := p.Save(7*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
