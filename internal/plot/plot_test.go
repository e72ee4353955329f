package plot

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRecallQPS(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sweep.png")
	err := RecallQPS(p, "test", 10, []Series{{Name: "spann", Points: []Point{{0.8, 3000, "8"}, {0.9, 2000, "16"}, {0.95, 1200, "32"}}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) || len(b) < 1000 {
		t.Fatalf("not a PNG: %v, %d bytes", err, len(b))
	}
	if err := RecallQPS(p, "bad", 10, []Series{{Points: []Point{{0.5, 0, ""}}}}); err == nil {
		t.Error("zero QPS accepted on a log scale")
	}
}
