package main

import (
	"context"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/client"
	"github.com/gospann/spann/datasets"
)

// --shards runs a router: over two servers of the same index (as a set of
// two shards), a base vector comes back under its routed id; --index and
// --shards together, or neither, are one-line errors.
func TestServeShards(t *testing.T) {
	index, base := build(t, t.TempDir(), 1)
	a, _ := start(t, []string{"--index", index, "--listen", "127.0.0.1:0"}, nil)
	b, _ := start(t, []string{"--index", index, "--listen", "127.0.0.1:0"}, nil)
	r, _ := start(t, []string{"--shards", "http://" + a + ",http://" + b, "--listen", "127.0.0.1:0"}, nil)
	ctx := context.Background()
	c, err := client.Dial(ctx, "http://"+r, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if in := c.Info(); in.Shards != 2 || in.N != 2000 {
		t.Fatalf("router Info: %v", in)
	}
	m, _ := datasets.LoadVectors(base, 0, 0)
	got, _, err := c.Search(ctx, m.Row(7), 2, spann.SearchParams{NProbe: 8})
	// Both "shards" hold vector 7 as their local 7: base ids 14 and 15.
	if err != nil || len(got) != 2 || got[0].ID != 14 || got[1].ID != 15 || got[0].Dist != 0 {
		t.Fatalf("through the router: %v, %v", got, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "127.0.0.1:0"}, "give --index DIR"},
		{[]string{"--index", index, "--shards", "http://" + a}, "do not go together"},
		{[]string{"--shards", "http://" + a, "--shards-file", filepath.Join(index, "nothing.json")}, "nothing.json"},
	} {
		app := newApp()
		set := flag.NewFlagSet("spann-serve", flag.ContinueOnError)
		for _, f := range app.Flags {
			f.Apply(set)
		}
		set.Parse(c.args)
		if err := run(ctx, cli.NewContext(app, set, nil), nil, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
