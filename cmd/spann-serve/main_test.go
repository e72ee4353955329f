package main

import (
	"context"
	"flag"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
)

// The command serves an index, answers an Info request over JSON, and on
// cancellation (what SIGTERM does) drains and returns nil.
func TestServeAndDrain(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.u8bin")
	if err := datasets.Generate(base, datasets.GenParams{N: 1000, Dim: 8, Type: datasets.Uint8, Seed: 2}, 2, nil); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "idx")
	if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: base, Out: index, Threads: 2, Seed: 1, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	app := newApp()
	set := flag.NewFlagSet("spann-serve", flag.ContinueOnError)
	for _, f := range app.Flags {
		f.Apply(set)
	}
	if err := set.Parse([]string{"--index", "docs=" + index, "--listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	c := cli.NewContext(app, set, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, c, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/spann.v1.SpannService/Info", "application/json", strings.NewReader(`{"index": "docs"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("info: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after the drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after the cancellation")
	}
	if err := newApp().Run([]string{"spann-serve", "--index", filepath.Join(dir, "none")}); err == nil {
		t.Fatal("a missing index served")
	}
}
