// Command loadgen drives spann-serve at a steady concurrency for a fixed
// time and reports what happened to every request: answered, refused
// (RESOURCE_EXHAUSTED) or failed, with latency percentiles of each, and —
// for the soak of docs/benchmarks.md — the server's resident memory
// (from its /metrics) over time, optionally reloading the index every so
// often, alternating the directory a symlink names between two builds.
// A refused request is retried after 1 ms. Latencies are as the client
// sees them; the server's own, by status code, are in its /metrics
// (spann_request_duration_seconds).
//
//	go run ./scripts/loadgen --server http://127.0.0.1:7070 --queries Q --concurrency 64 --duration 30s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/client"
	"github.com/gospann/spann/datasets"
)

type outcome struct {
	lat []time.Duration
}

func (o *outcome) summary() map[string]any {
	slices.Sort(o.lat)
	pct := func(f float64) float64 {
		if len(o.lat) == 0 {
			return 0
		}
		return float64(o.lat[min(len(o.lat)-1, int(f*float64(len(o.lat))))].Microseconds())
	}
	return map[string]any{"count": len(o.lat), "p50_us": pct(0.5), "p99_us": pct(0.99), "max_us": pct(1)}
}

func main() {
	server := flag.String("server", "http://127.0.0.1:7070", "spann-serve URL")
	queries := flag.String("queries", "", "query vectors")
	conc := flag.Int("concurrency", 16, "requests in flight")
	dur := flag.Duration("duration", 30*time.Second, "how long to run")
	nprobe := flag.Int("nprobe", 16, "postings per query")
	reload := flag.Duration("reload-every", 0, "call Reload this often (0 = never)")
	link := flag.String("swap-link", "", "with --reload-every: before each reload, point this symlink at the other of --swap-dirs")
	dirs := flag.String("swap-dirs", "", "two index directories, comma-separated, the symlink alternates between")
	sample := flag.Duration("sample-every", 10*time.Second, "how often to record the server's resident memory")
	flag.Parse()
	if err := run(*server, *queries, *conc, *dur, *nprobe, *reload, *link, *dirs, *sample); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(url, qpath string, conc int, dur time.Duration, nprobe int, reloadEvery time.Duration, link, dirs string, sampleEvery time.Duration) error {
	qs, err := datasets.LoadVectors(qpath, 0, 0)
	if err != nil {
		return err
	}
	ctx := context.Background()
	c, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	ok, refused, failed := &outcome{}, &outcome{}, &outcome{}
	var failures []string
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i += conc {
				t0 := time.Now()
				_, _, err := c.Search(ctx, qs.Row(i%qs.N), 10, spann.SearchParams{NProbe: nprobe})
				lat := time.Since(t0)
				mu.Lock()
				switch {
				case err == nil:
					ok.lat = append(ok.lat, lat)
				case connect.CodeOf(err) == connect.CodeResourceExhausted:
					refused.lat = append(refused.lat, lat)
					mu.Unlock()
					time.Sleep(time.Millisecond) // back off, as a client should (else it spins on the same 2 cores)
					continue
				default:
					failed.lat = append(failed.lat, lat)
					if len(failures) < 10 {
						failures = append(failures, err.Error())
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	var rss []map[string]any
	var reloads []string
	start := time.Now()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	var reloadC <-chan time.Time
	if reloadEvery > 0 {
		t := time.NewTicker(reloadEvery)
		defer t.Stop()
		reloadC = t.C
	}
	swap := strings.Split(dirs, ",")
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for n := 0; ; {
		select {
		case <-done:
			b, _ := json.MarshalIndent(map[string]any{"concurrency": conc, "seconds": time.Since(start).Seconds(),
				"qps": float64(len(ok.lat)) / time.Since(start).Seconds(), "ok": ok.summary(), "refused": refused.summary(),
				"failed": failed.summary(), "failures": failures, "rss": rss, "reloads": reloads}, "", "  ")
			fmt.Println(string(b))
			return nil
		case <-tick.C:
			if m, err := residentBytes(url); err == nil {
				rss = append(rss, map[string]any{"t_s": int(time.Since(start).Seconds()), "rss_mib": m / (1 << 20)})
			}
		case <-reloadC:
			if link != "" && len(swap) == 2 {
				n++
				tmp := link + ".new"
				os.Remove(tmp)
				if err := os.Symlink(swap[n%2], tmp); err != nil {
					return err
				}
				if err := os.Rename(tmp, link); err != nil {
					return err
				}
			}
			id, err := c.Reload(ctx)
			if err != nil {
				return fmt.Errorf("reload: %w", err)
			}
			reloads = append(reloads, fmt.Sprintf("%ds %s %s", int(time.Since(start).Seconds()), filepath.Base(swap[n%2]), id))
		}
	}
}

// residentBytes reads process_resident_memory_bytes from the server's
// /metrics.
func residentBytes(url string) (float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err
		}
	}
	return 0, fmt.Errorf("no process_resident_memory_bytes in %s/metrics", url)
}
