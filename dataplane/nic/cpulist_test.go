package nic

import (
	"reflect"
	"strings"
	"testing"
)

func TestCPUList(t *testing.T) {
	cases := []struct {
		in     string
		want   []int
		format string
	}{
		{"0", []int{0}, "0"},
		{"0-3\n", []int{0, 1, 2, 3}, "0-3"},
		{"0,2", []int{0, 2}, "0,2"},
		{"0-1,4,6-7", []int{0, 1, 4, 6, 7}, "0-1,4,6-7"},
		{"3,1-2", []int{1, 2, 3}, "1-3"},
		{"5,5", []int{5}, "5"},
		{"1023", []int{1023}, "1023"},
	}
	for _, tc := range cases {
		got, err := parseCPUList(tc.in)
		if err != nil {
			t.Errorf("parseCPUList(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseCPUList(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if f := formatCPUList(got); f != tc.format {
			t.Errorf("formatCPUList(%v) = %q, want %q", got, f, tc.format)
		}
	}
	bad := []struct{ in, wantErr string }{
		{"", "cpu list is empty"},
		{"a", `cpu "a" is not a number`},
		{"3-1", "range 3-1 ends before it starts"},
		{"0-", `cpu "" is not a number`},
		{"1024", "cpu 1024 is outside 0-1023"},
		{"-1", `cpu "" is not a number`},
	}
	for _, tc := range bad {
		_, err := parseCPUList(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parseCPUList(%q) error = %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}
