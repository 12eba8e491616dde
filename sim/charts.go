package sim

import (
	"errors"
	"fmt"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// BarChart is one panel of grouped bars: a group per label, a bar per
// series in each group. This package is the home of gonum/plot, so other
// lab tools (afvs-lab bench) draw their charts through it.
type BarChart struct {
	Title, YLabel string
	Labels        []string
	Series        []BarSeries
}

// BarSeries is one bar of every group; NaN leaves a group's bar out.
type BarSeries struct {
	Name   string
	Values []float64
}

// WriteBarCharts draws the charts one above the other as a PNG.
func WriteBarCharts(w io.Writer, charts []BarChart) error {
	if len(charts) == 0 {
		return errors.New("plot: no charts")
	}
	plots := make([][]*plot.Plot, len(charts))
	for i, c := range charts {
		if len(c.Labels) == 0 || len(c.Series) == 0 {
			return fmt.Errorf("plot %q: no labels or no series", c.Title)
		}
		p := plot.New()
		p.Title.Text = c.Title
		p.Y.Label.Text = c.YLabel
		p.Y.Min = 0
		p.Legend.Top = true
		p.NominalX(c.Labels...)
		// A group's bars share a width that leaves a gap between groups.
		width := vg.Points(min(90, 500/float64(len(c.Labels))) / float64(len(c.Series)))
		for j, s := range c.Series {
			if len(s.Values) != len(c.Labels) {
				return fmt.Errorf("plot %q: series %q has %d values for %d labels", c.Title, s.Name, len(s.Values), len(c.Labels))
			}
			vals := make(plotter.Values, len(s.Values))
			for k, v := range s.Values {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					v = 0
				}
				vals[k] = v
			}
			b, err := plotter.NewBarChart(vals, width)
			if err != nil {
				return fmt.Errorf("plot %q series %q: %w", c.Title, s.Name, err)
			}
			b.Color = plotutil.Color(j)
			b.LineStyle.Width = 0
			b.Offset = width * vg.Length(float64(j)-float64(len(c.Series)-1)/2)
			p.Add(b)
			p.Legend.Add(s.Name, b)
		}
		plots[i] = []*plot.Plot{p}
	}
	img := vgimg.New(26*vg.Centimeter, vg.Length(len(charts))*11*vg.Centimeter)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(charts), Cols: 1, PadY: vg.Centimeter, PadTop: vg.Millimeter * 3,
		PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align(plots, t, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}
