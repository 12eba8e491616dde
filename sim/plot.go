package sim

import (
	"errors"
	"fmt"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WritePlot draws active connections per real server over time as a PNG.
func (sum *Summary) WritePlot(w io.Writer) error {
	ser := &sum.Series
	if len(ser.TimesMS) == 0 || len(ser.Servers) == 0 {
		return errors.New("plot: no samples: the trace had no events or the table no real servers")
	}
	p := plot.New()
	p.Title.Text = "active connections per real server"
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "active connections"
	p.Legend.Top = true
	p.Legend.Left = true
	for i, name := range ser.Servers {
		xys := make(plotter.XYs, len(ser.TimesMS))
		for j, t := range ser.TimesMS {
			xys[j].X = float64(t) / 1000
			xys[j].Y = float64(ser.Active[i][j])
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
		p.Add(l)
		p.Legend.Add(name, l)
	}
	wt, err := p.WriterTo(24*vg.Centimeter, 14*vg.Centimeter, "png")
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := wt.WriteTo(w); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}
