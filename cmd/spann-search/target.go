package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/client"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
)

// target is what the evaluation searches: an index opened in process, or
// one served by spann-serve (--server), measured the same way.
type target interface {
	Type() datasets.ElemType
	Dim() int
	N() int
	Info() spann.Info
	// SearchBatch answers every query with threads workers in process,
	// or threads requests in flight against a server.
	SearchBatch(queries []byte, k int, p spann.SearchParams, threads int) (*spann.BatchResult, error)
	// SearchBatchFiltered is SearchBatch with a filter per query.
	SearchBatchFiltered(ctx context.Context, queries []byte, filters [][]int32, k int, p spann.SearchParams, threads int) (*spann.BatchResult, error)
	// SearchRangeBatch finds every vector within radius of each query.
	SearchRangeBatch(ctx context.Context, queries []byte, radius float32, p spann.SearchParams, threads int) (*spann.RangeBatchResult, error)
	// CheckRadius reports whether a range search takes radius.
	CheckRadius(radius float32) error
	// CheckFilter reports whether the index can search with filter.
	CheckFilter(filter []int32) error
	Close() error
}

// openTarget opens --index, or dials --server.
func openTarget(c *cli.Context) (target, error) {
	url := c.String("server")
	if b := c.Int("server-batch"); b < 1 {
		return nil, fmt.Errorf("--server-batch %d: must be at least 1", b)
	}
	if url == "" {
		if c.String("token-file") != "" || c.String("tls-ca") != "" || c.Int("server-batch") != 1 {
			return nil, fmt.Errorf("--token-file, --tls-ca and --server-batch go with --server")
		}
		return spann.Open(c.String("index"), spann.Options{IO: c.String("io")})
	}
	o := client.Options{Index: c.String("index")}
	if p := c.String("token-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		if o.Token = strings.TrimSpace(string(b)); o.Token == "" {
			return nil, fmt.Errorf("--token-file %s: empty", p)
		}
	}
	if p := c.String("tls-ca"); p != "" {
		pem, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", p)
		}
		o.TLS = &tls.Config{RootCAs: pool}
	}
	cl, err := client.Dial(context.Background(), url, o)
	if err != nil {
		return nil, err
	}
	in := cl.Info()
	typ, err := datasets.ParseType(in.Type)
	if err != nil {
		return nil, fmt.Errorf("server %s: index %s: %w", url, in.Name, err)
	}
	return &remote{c: cl, typ: typ, batch: c.Int("server-batch"), labels: int(in.Labels), info: spann.Info{Dir: url + "/" + in.Name, BuildID: in.BuildId, Type: in.Type, Metric: in.Metric,
		Dim: int(in.Dim), N: int(in.N), Heads: int(in.Heads), Backend: "server:" + in.Backend}}, nil
}

// remote is a served index.
type remote struct {
	c      *client.Client
	typ    datasets.ElemType
	batch  int // queries per request
	info   spann.Info
	labels int // the served index's label vocabulary
}

func (r *remote) Type() datasets.ElemType { return r.typ }
func (r *remote) Dim() int                { return r.info.Dim }
func (r *remote) N() int                  { return r.info.N }
func (r *remote) Info() spann.Info        { return r.info }
func (r *remote) Close() error            { return nil }

func (r *remote) SearchBatch(queries []byte, k int, p spann.SearchParams, threads int) (*spann.BatchResult, error) {
	return r.c.SearchMany(context.Background(), queries, k, p, threads, r.batch)
}

func (r *remote) SearchBatchFiltered(ctx context.Context, queries []byte, filters [][]int32, k int, p spann.SearchParams, threads int) (*spann.BatchResult, error) {
	return r.c.SearchManyFiltered(ctx, queries, filters, k, p, threads, r.batch)
}

func (r *remote) SearchRangeBatch(ctx context.Context, queries []byte, radius float32, p spann.SearchParams, threads int) (*spann.RangeBatchResult, error) {
	return r.c.SearchRangeMany(ctx, queries, radius, p, threads, r.batch)
}

// CheckRadius checks radius under the served index's metric (the server
// checks again).
func (r *remote) CheckRadius(radius float32) error {
	m, err := vec.ParseMetric(r.info.Metric)
	if err != nil {
		return err
	}
	return vec.CheckRadius(m, float64(radius))
}

// CheckFilter checks filter against the served index's label count (the
// server checks again).
func (r *remote) CheckFilter(filter []int32) error {
	if r.labels == 0 {
		return spann.ErrNoLabels
	}
	if len(filter) == 0 {
		return fmt.Errorf("the filter names no label (nil means no filter)")
	}
	for _, x := range filter {
		if x < 0 || int(x) >= r.labels {
			return fmt.Errorf("the filter names label %d, but the index's labels are 0..%d", x, r.labels-1)
		}
	}
	return nil
}
