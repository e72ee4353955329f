package plot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecallQPS(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sweep.png")
	err := RecallQPS(p, "test", 10, []Series{
		{Name: "spann", Points: []Point{{0.8, 3000, "8"}, {0.9, 2000, "16"}, {0.95, 1200, "32"}}},
		{Name: "sptag", Points: []Point{{0.85, 1600, "12"}, {0.96, 1100, "32"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) || len(b) < 1000 {
		t.Fatalf("not a PNG: %v, %d bytes", err, len(b))
	}
	for _, c := range []struct {
		s    []Series
		want string
	}{
		{[]Series{{Name: "a", Points: []Point{{0.5, 0, ""}}}}, "log scale"},
		{[]Series{{Name: "a", Points: []Point{{0.5, -3, ""}}}}, "log scale"},
		{[]Series{{Name: "empty"}}, "no points"},
		{nil, "no series"},
	} {
		if err := RecallQPS(p, "bad", 10, c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.s, err, c.want)
		}
	}
}

// A sweep inside one decade (1,000-3,000 QPS) still gets labelled QPS
// ticks; a wide one gets 1-2-5 labels.
func TestQPSTicks(t *testing.T) {
	labels := func(min, max float64) []string {
		var out []string
		for _, tk := range (qpsTicks{}).Ticks(min, max) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	got := strings.Join(labels(1000, 3000), " ")
	if got != "1,000 1,500 2,000 2,500 3,000" {
		t.Errorf("1000-3000: labels %q", got)
	}
	got = strings.Join(labels(300, 20000), " ")
	if got != "500 1,000 2,000 5,000 10,000 20,000" {
		t.Errorf("300-20000: labels %q", got)
	}
	if len(labels(0, 10)) != 0 || len(labels(5, 5)) != 0 {
		t.Error("degenerate ranges produced ticks")
	}
}

func TestRecallTicks(t *testing.T) {
	var got []string
	for _, tk := range (recallTicks{}).Ticks(0.86, 0.975) {
		if tk.Label != "" {
			got = append(got, tk.Label)
		}
	}
	if s := strings.Join(got, " "); s != "0.86 0.87 0.88 0.89 0.90 0.91 0.92 0.93 0.94 0.95 0.96 0.97" {
		t.Errorf("recall labels %q", s)
	}
}
