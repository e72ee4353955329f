// Command spann-serve serves indexes over the network: gRPC, gRPC-Web and
// JSON over HTTP on one listener (package server), with the gRPC health
// service, an optional bearer token and limits.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/internal/cmdutil"
	"github.com/gospann/spann/server"
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	return &cli.App{
		Name:      "spann-serve",
		Usage:     "serve indexes over gRPC and JSON over HTTP",
		UsageText: "spann-serve --index [NAME=]DIR [--index NAME=DIR ...] [--listen 127.0.0.1:7070] [--token-file F]",
		Description: "Opens each --index (read-only) and serves the API of proto/spann/v1/spann.proto on --listen: " +
			"gRPC (HTTP/2 without TLS) and JSON over HTTP POST (/spann.v1.SpannService/Search, SearchBatch, Info) from the " +
			"same handlers, plus the standard gRPC health service. With --token-file every request but health checks " +
			"must carry 'Authorization: Bearer TOKEN' (else UNAUTHENTICATED / 401, and no work is done). Requests past " +
			"--max-concurrent searches are refused with RESOURCE_EXHAUSTED (429), never queued. SIGTERM or SIGINT stops " +
			"taking requests, lets those in flight finish (up to --drain) and exits 0.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "index", Required: true, Usage: "index to serve, as DIR (named by its base name) or NAME=DIR; repeatable"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7070", Usage: "address to listen on (loopback unless told otherwise)"},
			&cli.StringFlag{Name: "token-file", Usage: "file holding the bearer token requests must carry (default: none)"},
			&cli.IntFlag{Name: "max-k", Value: 1000, Usage: "most neighbours a query may ask for"},
			&cli.IntFlag{Name: "max-batch", Value: 1024, Usage: "most queries in one SearchBatch"},
			&cli.IntFlag{Name: "max-concurrent", Value: 64, Usage: "searches at once; more are refused"},
			&cli.IntFlag{Name: "max-bytes", Value: 16 << 20, Usage: "largest request message, bytes"},
			&cli.DurationFlag{Name: "drain", Value: 30 * time.Second, Usage: "how long SIGTERM waits for requests in flight"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return run(ctx, c, nil)
		},
	}
}

// run serves until ctx ends; ready, if set, gets the listening address.
func run(ctx context.Context, c *cli.Context, ready chan<- string) error {
	indexes := map[string]*spann.Index{}
	defer func() {
		for _, ix := range indexes {
			ix.Close()
		}
	}()
	for _, spec := range c.StringSlice("index") {
		name, dir, ok := strings.Cut(spec, "=")
		if !ok {
			dir = spec
			name = strings.TrimSuffix(dir[strings.LastIndexByte(strings.TrimRight(dir, "/"), '/')+1:], "/")
		}
		if _, dup := indexes[name]; dup {
			return fmt.Errorf("--index %s: a second index named %q", spec, name)
		}
		ix, err := spann.Open(dir, spann.Options{})
		if err != nil {
			return err
		}
		indexes[name] = ix
	}
	token := ""
	if p := c.String("token-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return fmt.Errorf("--token-file %s: empty", p)
		}
	}
	s, err := server.New(indexes, token, server.Limits{MaxK: c.Int("max-k"), MaxBatch: c.Int("max-batch"),
		MaxConcurrent: c.Int("max-concurrent"), MaxBytes: c.Int("max-bytes")})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler(), Protocols: new(http.Protocols), ReadHeaderTimeout: 10 * time.Second}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	fmt.Fprintf(os.Stderr, "spann-serve: serving %d index(es) on %s\n", len(indexes), ln.Addr())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), c.Duration("drain"))
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		return fmt.Errorf("spann-serve: drain: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(os.Stderr, "spann-serve: drained, exiting")
	return nil
}
