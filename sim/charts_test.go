package sim

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"
)

func TestWriteBarCharts(t *testing.T) {
	var b bytes.Buffer
	err := WriteBarCharts(&b, []BarChart{
		{Title: "rates", YLabel: "Mpps", Labels: []string{"offered", "dr"}, Series: []BarSeries{{Name: "default", Values: []float64{1, 0.5}}, {Name: "threaded", Values: []float64{math.NaN(), 0.7}}}},
		{Title: "latency", YLabel: "us", Labels: []string{"direct", "afvs-dr"}, Series: []BarSeries{{Name: "p50", Values: []float64{25, 30}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 500 || r.Dy() < 2*r.Dx()/3 {
		t.Errorf("image %v: want two panels of a readable size, one above the other", r)
	}
	for _, tc := range []struct {
		charts []BarChart
		want   string
	}{
		{nil, "no charts"},
		{[]BarChart{{Title: "x"}}, `plot "x": no labels`},
		{[]BarChart{{Title: "x", Labels: []string{"a"}, Series: []BarSeries{{Name: "s", Values: []float64{1, 2}}}}}, `series "s" has 2 values for 1 labels`},
	} {
		if err := WriteBarCharts(&b, tc.charts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WriteBarCharts(%v) = %v, want %q", tc.charts, err, tc.want)
		}
	}
}
