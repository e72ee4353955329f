// Command spann-serve serves indexes over the network: gRPC, gRPC-Web and
// JSON over HTTP on one listener (package server), with the gRPC health
// service, Prometheus metrics, an optional bearer token and TLS, limits,
// and hot reload on SIGHUP.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gospann/spann/internal/cmdutil"
	"github.com/gospann/spann/server"
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	return &cli.App{
		Name:      "spann-serve",
		Usage:     "serve indexes over gRPC and JSON over HTTP",
		UsageText: "spann-serve --index [NAME=]DIR [--index NAME=DIR ...] [--listen 127.0.0.1:7070] [--token-file F] [--tls-cert F --tls-key F]",
		Description: "Opens each --index and serves the API of proto/spann/v1/spann.proto on --listen: gRPC and JSON over " +
			"HTTP POST (/spann.v1.SpannService/Search, SearchBatch, Info, Insert, Delete, Reload) from the same handlers, " +
			"the standard gRPC health service, and Prometheus metrics at /metrics. Without TLS it speaks HTTP/1.1 and " +
			"unencrypted HTTP/2 (gRPC); with --tls-cert and --tls-key, HTTPS. With --token-file every request but " +
			"health checks (metrics included) must carry 'Authorization: Bearer TOKEN', else UNAUTHENTICATED / 401 and " +
			"no work is done. Requests past --max-concurrent searches are refused with RESOURCE_EXHAUSTED (429), " +
			"never queued. SIGHUP (or the Reload method) reopens each read-only index from its directory, say after " +
			"spann-build --force rebuilt it, and swaps it in: searches in flight finish on the old one, and a failed " +
			"reload keeps the old one serving. SIGTERM or SIGINT stops taking requests, lets those in flight finish " +
			"(up to --drain) and exits 0.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "index", Usage: "index to serve, as DIR (named by its base name) or NAME=DIR; repeatable (or --shards)"},
			&cli.StringFlag{Name: "shards", Usage: "instead of --index, route: the shard servers' URLs, comma-separated, in shard order (spann-build --shards: shard s holds base vectors s, s+S, …); every query goes to all of them and their answers are merged by distance, with base ids"},
			&cli.StringFlag{Name: "shards-file", Usage: "with --shards: the set's shards.json, to check that each URL serves the shard it lists in that place"},
			&cli.DurationFlag{Name: "shard-timeout", Value: server.DefaultShardTimeout, Usage: "with --shards: deadline of each shard's part of a request; a shard past it or down is left out and the answer flagged partial"},
			&cli.StringFlag{Name: "shard-token-file", Usage: "with --shards: file holding the bearer token to send to the shards (default: none)"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7070", Usage: "address to listen on (loopback unless told otherwise)"},
			&cli.StringFlag{Name: "token-file", Usage: "file holding the bearer token requests must carry (default: none)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (chain) to serve HTTPS with; needs --tls-key (default: no TLS)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key of --tls-cert"},
			&cli.BoolFlag{Name: "writable", Usage: "open the indexes for updates: Insert and Delete are served (one writer per index; Reload is refused)"},
			&cli.DurationFlag{Name: "checkpoint-every", Value: time.Minute, Usage: "with --writable, fold the write-ahead log into the index files this often (0 = never; updates are durable in the log either way)"},
			&cli.IntFlag{Name: "workers", Usage: "search workers per index (0 = one per core); each keeps --in-flight queries in flight, and requests beyond wait for one"},
			&cli.IntFlag{Name: "in-flight", Usage: "queries each search worker keeps in flight (0 = 8): while one query's postings are read it searches the next one's heads"},
			&cli.IntFlag{Name: "max-k", Value: 1000, Usage: "most neighbours a query may ask for"},
			&cli.IntFlag{Name: "max-batch", Value: 1024, Usage: "most vectors in one SearchBatch or Insert"},
			&cli.IntFlag{Name: "max-concurrent", Value: 64, Usage: "searches at once; more are refused"},
			&cli.IntFlag{Name: "max-bytes", Value: 16 << 20, Usage: "largest request message, bytes"},
			&cli.DurationFlag{Name: "read-timeout", Value: 30 * time.Second, Usage: "longest a client may take to send a request's headers and body (slow clients are cut off)"},
			&cli.StringFlag{Name: "io", Value: "auto", Usage: "posting reads: auto (io_uring, else Linux AIO, else pread), uring, aio or pread"},
			&cli.DurationFlag{Name: "drain", Value: 30 * time.Second, Usage: "how long SIGTERM waits for requests in flight"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a pprof CPU profile of the whole run, until exit, to this file"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			return run(ctx, c, nil, hup)
		},
	}
}

// config turns the flags into the server's configuration.
func config(c *cli.Context) (server.Config, error) {
	cfg := server.Config{IO: c.String("io"), CheckpointEvery: c.Duration("checkpoint-every"), Workers: c.Int("workers"), InFlight: c.Int("in-flight"),
		Limits: server.Limits{MaxK: c.Int("max-k"), MaxBatch: c.Int("max-batch"), MaxConcurrent: c.Int("max-concurrent"), MaxBytes: c.Int("max-bytes")},
		Logf:   log.New(os.Stderr, "spann-serve: ", log.LstdFlags).Printf}
	for _, name := range []string{"max-k", "max-batch", "max-concurrent", "max-bytes"} {
		if c.Int(name) <= 0 {
			return cfg, fmt.Errorf("--%s %d: must be positive", name, c.Int(name))
		}
	}
	if c.Duration("read-timeout") <= 0 {
		return cfg, fmt.Errorf("--read-timeout %v: must be positive", c.Duration("read-timeout"))
	}
	for _, name := range []string{"workers", "in-flight"} {
		if c.Int(name) < 0 {
			return cfg, fmt.Errorf("--%s %d: must not be negative (0 = the default)", name, c.Int(name))
		}
	}
	switch c.String("io") {
	case "auto", "uring", "aio", "pread":
	default:
		return cfg, fmt.Errorf("--io %q: want auto, uring, aio or pread", c.String("io"))
	}
	for _, spec := range c.StringSlice("index") {
		name, dir, ok := strings.Cut(spec, "=")
		if !ok {
			dir = spec
			name = strings.TrimSuffix(dir[strings.LastIndexByte(strings.TrimRight(dir, "/"), '/')+1:], "/")
		}
		if name == "" || dir == "" {
			return cfg, fmt.Errorf("--index %q: want DIR or NAME=DIR", spec)
		}
		cfg.Indexes = append(cfg.Indexes, server.IndexSpec{Name: name, Dir: dir, Writable: c.Bool("writable")})
	}
	if p := c.String("token-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return cfg, fmt.Errorf("--token-file: %w", err)
		}
		if cfg.Token = strings.TrimSpace(string(b)); cfg.Token == "" {
			return cfg, fmt.Errorf("--token-file %s: empty", p)
		}
	}
	return cfg, nil
}

// tlsConfig loads --tls-cert and --tls-key, if given.
func tlsConfig(c *cli.Context) (*tls.Config, error) {
	cert, key := c.String("tls-cert"), c.String("tls-key")
	if cert == "" && key == "" {
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", cert, key, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// run serves until ctx ends, reloading on each value from hup; ready, if
// set, gets the listening address.
func run(ctx context.Context, c *cli.Context, ready chan<- string, hup <-chan os.Signal) error {
	cfg, err := config(c)
	if err != nil {
		return err
	}
	tc, err := tlsConfig(c)
	if err != nil {
		return err
	}
	stopProfile, err := cmdutil.StartCPUProfile(c.String("cpuprofile"))
	if err != nil {
		return err
	}
	defer stopProfile()
	handler, reload, closeAll, what, err := serving(ctx, c, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, Protocols: new(http.Protocols), TLSConfig: tc,
		ReadHeaderTimeout: min(10*time.Second, c.Duration("read-timeout")), ReadTimeout: c.Duration("read-timeout"), IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	srv.Protocols.SetHTTP1(true)
	scheme := "http"
	if tc != nil {
		srv.Protocols.SetHTTP2(true)
		ln, scheme = tls.NewListener(ln, tc), "https"
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	cfg.Logf("serving %s on %s://%s", what, scheme, ln.Addr())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	for {
		select {
		case err := <-done:
			return err
		case <-hup:
			if err := reload(); err != nil {
				cfg.Logf("%v", err)
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	drain, cancel := context.WithTimeout(context.Background(), c.Duration("drain"))
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := closeAll(); err != nil {
		return err
	}
	cfg.Logf("drained, exiting")
	return nil
}

// serving makes what run serves: the indexes of --index, or with --shards
// a router over shard servers. It returns the handler, what SIGHUP does,
// what ends it (safe to call twice) and a description for the log.
func serving(ctx context.Context, c *cli.Context, cfg server.Config) (http.Handler, func() error, func() error, string, error) {
	urls := c.String("shards")
	switch {
	case urls == "" && len(cfg.Indexes) == 0:
		return nil, nil, nil, "", errors.New("give --index DIR (repeatable) or --shards URL,URL,…")
	case urls != "" && len(cfg.Indexes) > 0:
		return nil, nil, nil, "", errors.New("--index and --shards do not go together: a router serves no index of its own")
	case urls == "":
		s, err := server.New(cfg)
		if err != nil {
			return nil, nil, nil, "", err
		}
		return s.Handler(), s.ReloadAll, s.Close, fmt.Sprintf("%d index(es)", len(cfg.Indexes)), nil
	}
	if c.Duration("shard-timeout") <= 0 {
		return nil, nil, nil, "", fmt.Errorf("--shard-timeout %v: must be positive", c.Duration("shard-timeout"))
	}
	rc := server.RouterConfig{Shards: strings.Split(urls, ","), ShardsFile: c.String("shards-file"), ShardTimeout: c.Duration("shard-timeout"),
		Token: cfg.Token, MaxBytes: cfg.Limits.MaxBytes}
	if p := c.String("shard-token-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, nil, "", fmt.Errorf("--shard-token-file: %w", err)
		}
		rc.ShardToken = strings.TrimSpace(string(b))
	}
	r, err := server.NewRouter(ctx, rc)
	if err != nil {
		return nil, nil, nil, "", err
	}
	nothing := func() error { return nil }
	return r.Handler(), nothing, nothing, fmt.Sprintf("a router over %d shards", len(rc.Shards)), nil
}
