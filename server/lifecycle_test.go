package server

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/client"
)

// scrape fetches /metrics with token and parses it.
func scrape(t *testing.T, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %v %v", resp, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// sample returns the metric of family name whose labels include want.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	fam := fams[name]
	if fam == nil {
		return nil
	}
next:
	for _, m := range fam.Metric {
		for k, v := range want {
			if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				continue next
			}
		}
		return m
	}
	return nil
}

// /metrics, behind the token, counts the requests sent by method and
// code, the pages each query read, and describes the index; the Go
// runtime's metrics are there too.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	url, _ := serve(t, f, Config{Token: "tok"})
	c, err := client.Dial(context.Background(), url, client.Options{Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	p := spann.SearchParams{NProbe: 8}
	pages := 0
	for q := 0; q < f.qs.N; q++ {
		_, st, err := c.Search(context.Background(), f.qs.Row(q), 5, p)
		if err != nil {
			t.Fatal(err)
		}
		pages += st.Pages
	}
	const bad = 3
	for i := 0; i < bad; i++ {
		if _, _, err := c.Search(context.Background(), f.qs.Row(0)[:3], 5, p); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("a short vector: %v", err)
		}
	}
	if _, err := client.Dial(context.Background(), url, client.Options{Token: "wrong"}); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without the token: %v %v", resp.Status, err)
	}
	resp.Body.Close()

	fams := scrape(t, url, "tok")
	counter := func(method, code string) float64 {
		m := sample(fams, "spann_requests_total", map[string]string{"method": method, "code": code})
		if m == nil {
			return 0
		}
		return m.GetCounter().GetValue()
	}
	if got := counter("Search", "ok"); got != float64(f.qs.N) {
		t.Errorf("Search ok: %v, want %d", got, f.qs.N)
	}
	if got := counter("Search", "invalid_argument"); got != bad {
		t.Errorf("Search invalid_argument: %v, want %d", got, bad)
	}
	if got := counter("Info", "unauthenticated"); got != 1 {
		t.Errorf("Info unauthenticated: %v, want 1", got)
	}
	if got := counter("Info", "ok"); got != 1 {
		t.Errorf("Info ok: %v, want 1 (the Dial)", got)
	}
	h := sample(fams, "spann_query_pages", map[string]string{"index": "sift"}).GetHistogram()
	if h.GetSampleCount() != uint64(f.qs.N) || h.GetSampleSum() != float64(pages) {
		t.Errorf("pages histogram: %d queries, %v pages; sent %d queries that read %d", h.GetSampleCount(), h.GetSampleSum(), f.qs.N, pages)
	}
	for code, want := range map[string]int{"ok": f.qs.N, "invalid_argument": bad} {
		if lat := sample(fams, "spann_request_duration_seconds", map[string]string{"method": "Search", "code": code}).GetHistogram(); lat.GetSampleCount() != uint64(want) {
			t.Errorf("latency histogram of Search, %s: %d requests, want %d", code, lat.GetSampleCount(), want)
		}
	}
	if w := fams["spann_queue_wait_seconds"].GetMetric()[0].GetHistogram(); w.GetSampleCount() != uint64(f.qs.N) {
		t.Errorf("queue wait: %d searches, want %d", w.GetSampleCount(), f.qs.N)
	}
	if m := sample(fams, "spann_index_info", map[string]string{"index": "sift", "build_id": f.ix.Info().BuildID, "type": "uint8", "dim": "16"}); m == nil {
		t.Errorf("no spann_index_info for build %s", f.ix.Info().BuildID)
	}
	if m := sample(fams, "spann_index_vectors", map[string]string{"index": "sift"}); m.GetGauge().GetValue() != 3000 {
		t.Errorf("spann_index_vectors: %v", m)
	}
	if m := sample(fams, "spann_index_size_bytes", map[string]string{"index": "sift"}); m.GetGauge().GetValue() < 3000*16 {
		t.Errorf("spann_index_size_bytes: %v", m)
	}
	if m := fams["spann_requests_in_flight"]; m.GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Errorf("in flight after the requests: %v", m)
	}
	// (Counter vectors appear once a label set was counted: no read
	// failed here, so spann_read_errors_total is absent.)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "spann_refused_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

// A rebuilt index swapped in while searches run: no search fails, each
// answer is the old index's or the new one's, and afterwards the new
// one's. A reload that cannot open the directory keeps the old index
// serving and says why.
func TestReloadUnderLoad(t *testing.T) {
	f := newFixture(t)
	url, s := serve(t, f, Config{})
	c, err := client.Dial(context.Background(), url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := spann.SearchParams{NProbe: 8}
	before := c.Info().BuildId

	var stop atomic.Bool
	var searches, failures atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				if _, _, err := c.Search(context.Background(), f.qs.Row(i%f.qs.N), 10, p); err != nil {
					failures.Add(1)
					t.Errorf("search during reloads: %v", err)
					return
				}
				searches.Add(1)
			}
		}(w)
	}
	f.build(t, 2, true) // a different build at the same path
	now, was, err := s.Reload("sift")
	if err != nil || was != before || now == before {
		t.Fatalf("reload: now %s, was %s (first %s): %v", now, was, before, err)
	}
	for i := 0; i < 5; i++ { // reloads in a row, each swapping under the searches
		if _, _, err := s.Reload(""); err != nil {
			t.Fatal(err)
		}
	}
	// A broken directory: the reload fails, the old index keeps serving.
	manifest := filepath.Join(f.dir, "manifest.json")
	good, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reload("sift"); connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "keeps serving") ||
		!strings.Contains(err.Error(), "manifest.json") {
		t.Fatalf("reload of a broken index: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); searches.Load() < 20 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // searches keep going against the kept index meanwhile
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 || searches.Load() < 10 {
		t.Fatalf("%d searches, %d failed", searches.Load(), failures.Load())
	}
	if err := os.WriteFile(manifest, good, 0o644); err != nil {
		t.Fatal(err)
	}
	// Through the API too; the answers are now the rebuilt index's.
	if id, err := c.Reload(context.Background()); err != nil || id != now {
		t.Fatalf("Reload method: %s %v, want %s", id, err, now)
	}
	rebuilt, err := spann.Open(f.dir, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close()
	for q := 0; q < f.qs.N; q++ {
		want, _ := rebuilt.Search(f.qs.Row(q), 10, p)
		got, _, err := c.Search(context.Background(), f.qs.Row(q), 10, p)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("query %d after the reload: %v %v, want %v", q, got, err, want)
		}
	}
	fams := scrape(t, url, "")
	if m := sample(fams, "spann_reloads_total", map[string]string{"index": "sift", "result": "ok"}); m.GetCounter().GetValue() != 7 {
		t.Errorf("reloads ok: %v, want 7", m)
	}
	if m := sample(fams, "spann_reloads_total", map[string]string{"index": "sift", "result": "error"}); m.GetCounter().GetValue() != 1 {
		t.Errorf("reloads failed: %v, want 1", m)
	}
}

// A writable index takes inserts and deletes through the API; a
// read-only one refuses them, and a writable one refuses reloads.
func TestUpdatesOverAPI(t *testing.T) {
	f := newFixture(t)
	f.ix.Close()
	url, s := serve(t, f, Config{Indexes: []IndexSpec{{Name: "w", Dir: f.dir, Writable: true}}, CheckpointEvery: 20 * time.Millisecond})
	c, err := client.Dial(context.Background(), url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := spann.SearchParams{NProbe: 8}
	rows := f.qs.Data[:3*16] // three queries, inserted as vectors
	first, err := c.Insert(ctx, rows, nil, false)
	if err != nil || first != 3000 {
		t.Fatalf("insert: first %d, %v", first, err)
	}
	if _, err := c.Insert(ctx, f.qs.Row(3), []int32{7000}, false); err != nil {
		t.Fatalf("insert with an id: %v", err)
	}
	if _, err := c.Insert(ctx, f.qs.Row(4), []int32{7000}, false); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "already in the index") {
		t.Fatalf("insert of a present id without upsert: %v", err)
	}
	if _, err := c.Insert(ctx, f.qs.Row(4), []int32{7000}, true); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	for q, want := range map[int]int32{0: 3000, 1: 3001, 2: 3002, 4: 7000} {
		got, _, err := c.Search(ctx, f.qs.Row(q), 1, p)
		if err != nil || len(got) != 1 || got[0].ID != want || got[0].Dist != 0 {
			t.Fatalf("query %d after its insert: %v %v, want id %d at 0", q, got, err, want)
		}
	}
	if err := c.Delete(ctx, []int32{3001, 7000}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, []int32{99999}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("delete of an unknown id: %v", err)
	}
	// Let a checkpoint fold the log: wait for the first one to succeed
	// (a fixed sleep was too short on a loaded CI machine).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := sample(scrape(t, url, ""), "spann_checkpoints_total", map[string]string{"index": "w", "result": "ok"})
		if m.GetCounter().GetValue() >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint succeeded in 20 s: %v", sample(scrape(t, url, ""), "spann_checkpoints_total", map[string]string{"index": "w", "result": "error"}))
		}
	}
	for _, q := range []int{1, 4} {
		got, _, err := c.Search(ctx, f.qs.Row(q), 10, p)
		if err != nil || slices.ContainsFunc(got, func(n spann.Neighbor) bool { return n.ID == 3001 || n.ID == 7000 }) {
			t.Fatalf("query %d after the delete: %v %v", q, got, err)
		}
	}
	if _, _, err := s.Reload("w"); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("reload of a writable index: %v", err)
	}
	fams := scrape(t, url, "")
	if m := sample(fams, "spann_inserted_vectors_total", map[string]string{"index": "w"}); m.GetCounter().GetValue() != 5 {
		t.Errorf("inserted: %v, want 5", m)
	}
	if m := sample(fams, "spann_checkpoints_total", map[string]string{"index": "w", "result": "ok"}); m.GetCounter().GetValue() < 1 {
		t.Errorf("checkpoints: %v", m)
	}
	// N counts internal ids: the upsert gave 7000 a new one (3004).
	if c.Refresh(ctx) != nil || !c.Info().Writable || c.Info().Deleted != 3 || c.Info().N != 3005 {
		t.Errorf("info: %v", c.Info())
	}

	// Read-only: refused.
	g := newFixture(t)
	url2, _ := serve(t, g, Config{})
	ro, err := client.Dial(ctx, url2, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Insert(ctx, g.qs.Row(0), nil, false); connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("insert into a read-only index: %v", err)
	}
	if err := ro.Delete(ctx, []int32{1}); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("delete from a read-only index: %v", err)
	}
}
