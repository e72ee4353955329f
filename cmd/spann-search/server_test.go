package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
	"github.com/gospann/spann/server"
)

// spann-search --server measures a served index as it measures a local
// one: the same result ids, hence the same recall, over a sweep and a
// plot too; a wrong token or a missing server is a one-line error.
func TestSearchAgainstServer(t *testing.T) {
	dir := t.TempDir()
	base, q := gen(t, dir, datasets.Uint8, 3000, 40, 16)
	gt := filepath.Join(dir, "gt.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "20", "--out", gt, "--json"); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "index")
	if _, err := build.Run(context.Background(), build.Options{Base: base, Out: index, Threads: 2, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	url := serveIndex(t, index, "tok")
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("tok\n"), 0o600)

	local, remote := filepath.Join(dir, "local.ibin"), filepath.Join(dir, "remote.ibin")
	if err := run("--index", index, "--queries", q, "--gt", gt, "--k", "10", "--nprobe", "8", "--out", local, "--json"); err != nil {
		t.Fatal(err)
	}
	if err := run("--server", url, "--token-file", token, "--queries", q, "--gt", gt, "--k", "10", "--nprobe", "8",
		"--threads", "4", "--out", remote, "--json"); err != nil {
		t.Fatal(err)
	}
	batched := filepath.Join(dir, "batched.ibin")
	if err := run("--server", url, "--token-file", token, "--queries", q, "--k", "10", "--nprobe", "8",
		"--threads", "2", "--server-batch", "7", "--out", batched, "--json"); err != nil {
		t.Fatal(err)
	}
	a, err := datasets.ReadResults(local)
	if err != nil {
		t.Fatal(err)
	}
	b, err := datasets.ReadResults(remote)
	if err != nil {
		t.Fatal(err)
	}
	if a.N != b.N || a.K != b.K || !slices.Equal(a.IDs, b.IDs) {
		t.Fatalf("the served index answered differently: %d×%d vs %d×%d", a.N, a.K, b.N, b.K)
	}
	if c, err := datasets.ReadResults(batched); err != nil || !slices.Equal(a.IDs, c.IDs) {
		t.Fatalf("batched requests answered differently: %v", err)
	}
	csvOut, png := filepath.Join(dir, "sweep.csv"), filepath.Join(dir, "sweep.png")
	if err := run("--server", url, "--index", "ix", "--token-file", token, "--queries", q, "--gt", gt, "--sweep", "nprobe=2,8",
		"--sweep-out", csvOut, "--plot", png, "--json"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(csvOut); err != nil || strings.Count(string(b), "\n") != 3 {
		t.Fatalf("sweep csv: %v %q", err, b)
	}
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("guess\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", url, "--token-file", wrong}, "unauthenticated"},
		{[]string{"--server", url}, "unauthenticated"},
		{[]string{"--server", url, "--token-file", token, "--index", "other"}, "no index \"other\""},
		{[]string{"--server", "localhost:1"}, "http:// or https://"},
		{[]string{"--index", index, "--token-file", token}, "go with --server"},
		{[]string{"--server", url, "--server-batch", "0"}, "at least 1"},
	} {
		err := run(append(c.args, "--queries", q)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line mentioning %q", c.args, err, c.want)
		}
	}
}

// serveIndex serves index as "ix" (with bearer token, if not empty) on
// loopback until the test ends, and returns its URL.
func serveIndex(t *testing.T, index, token string) string {
	t.Helper()
	s, err := server.New(server.Config{Indexes: []server.IndexSpec{{Name: "ix", Dir: index}}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(), Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return "http://" + ln.Addr().String()
}
