package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
)

func run(args ...string) error {
	return newApp().Run(append([]string{"spann-data"}, args...))
}

func TestGenerateCropInfo(t *testing.T) {
	dir := t.TempDir()
	if err := run("generate", "--out", dir, "--n", "3000", "--nq", "20", "--dim", "12", "--type", "int8", "--seed", "4"); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base.i8bin")
	m, err := datasets.LoadVectors(base, 0, 0)
	if err != nil || m.N != 3000 || m.Dim != 12 {
		t.Fatalf("generated base: %v", err)
	}
	q, err := datasets.LoadVectors(filepath.Join(dir, "query.i8bin"), 0, 0)
	if err != nil || q.N != 20 {
		t.Fatalf("generated queries: %v", err)
	}
	// The same flags give the same bytes.
	dir2 := t.TempDir()
	run("generate", "--out", dir2, "--n", "3000", "--nq", "20", "--dim", "12", "--type", "int8", "--seed", "4")
	a, _ := os.ReadFile(base)
	b, _ := os.ReadFile(filepath.Join(dir2, "base.i8bin"))
	if !bytes.Equal(a, b) {
		t.Fatal("generate is not deterministic")
	}
	cropped := filepath.Join(dir, "c.i8bin")
	if err := run("crop", "--in", base, "--out", cropped, "--n", "100"); err != nil {
		t.Fatal(err)
	}
	c, err := datasets.LoadVectors(cropped, 0, 0)
	if err != nil || c.N != 100 || !bytes.Equal(c.Data, m.Data[:100*12]) {
		t.Fatalf("crop: %v", err)
	}
	if err := run("info", "--json", base, cropped); err != nil {
		t.Fatal(err)
	}
	if err := run("info", base, "--json"); err == nil || !strings.Contains(err.Error(), "before the files") {
		t.Errorf("flag after file: %v", err)
	}
}

func TestConvertCommand(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	for i := 0; i < 5; i++ {
		binary.Write(&b, binary.LittleEndian, int32(3))
		binary.Write(&b, binary.LittleEndian, []float32{float32(i), 1, 2})
	}
	src := filepath.Join(dir, "x.fvecs")
	os.WriteFile(src, b.Bytes(), 0o644)
	if err := run("convert", "--in", src); err != nil {
		t.Fatal(err)
	}
	m, err := datasets.LoadVectors(filepath.Join(dir, "x.fbin"), 0, 0)
	if err != nil || m.N != 5 || datasets.Rows[float32](m.Data)[12] != 4 {
		t.Fatalf("converted: %v", err)
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	trunc := filepath.Join(dir, "t.u8bin")
	os.WriteFile(trunc, []byte{5, 0, 0, 0, 2, 0, 0, 0, 1, 2, 3}, 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--out", dir, "--n", "0"}, "n must be positive"},
		{[]string{"generate", "--out", dir, "--type", "complex128"}, "complex128"},
		{[]string{"generate", "--out", dir, "--dim", "8", "--intrinsic-dim", "9"}, "intrinsic-dim=9"},
		{[]string{"info", trunc}, "t.u8bin: truncated: header says n=5 dim=2"},
		{[]string{"info"}, "name at least one file"},
		{[]string{"crop", "--in", trunc, "--out", filepath.Join(dir, "o.u8bin"), "--n", "1"}, "truncated"},
		{[]string{"convert", "--in", filepath.Join(dir, "x.txt")}, "not a TEXMEX file"},
	} {
		err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want mention of %q", c.args, err, c.want)
		}
	}
}
