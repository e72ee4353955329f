package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/client"
	"github.com/gospann/spann/datasets"
)

// build makes a small index in dir/idx with seed (replacing one there).
func build(t *testing.T, dir string, seed int64) (index, base string) {
	t.Helper()
	base, index = filepath.Join(dir, "base.u8bin"), filepath.Join(dir, "idx")
	if _, err := os.Stat(base); err != nil {
		if err := datasets.Generate(base, datasets.GenParams{N: 1000, Dim: 8, Type: datasets.Uint8, Seed: 2}, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: base, Out: index, Threads: 2, Seed: seed,
		MemoryBudget: 256 << 20, Force: seed > 1}); err != nil {
		t.Fatal(err)
	}
	return index, base
}

// start runs the command with args until the returned stop is called;
// stop returns run's error.
func start(t *testing.T, args []string, hup <-chan os.Signal) (addr string, stop func() error) {
	t.Helper()
	app := newApp()
	set := flag.NewFlagSet("spann-serve", flag.ContinueOnError)
	for _, f := range app.Flags {
		f.Apply(set)
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	c := cli.NewContext(app, set, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, c, ready, hup) }()
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no exit after the cancellation")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

// The command serves an index; SIGHUP while a search loop runs swaps in
// the rebuilt index with no failed request; on cancellation (what SIGTERM
// does) it lets the requests in flight finish and returns nil.
func TestServeReloadAndDrain(t *testing.T) {
	dir := t.TempDir()
	index, _ := build(t, dir, 1)
	hup := make(chan os.Signal, 1)
	addr, stop := start(t, []string{"--index", "docs=" + index, "--listen", "127.0.0.1:0"}, hup)
	resp, err := http.Post("http://"+addr+"/spann.v1.SpannService/Info", "application/json", strings.NewReader(`{"index": "docs"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("info: %v %v", resp, err)
	}
	resp.Body.Close()
	c, err := client.Dial(context.Background(), "http://"+addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := c.Info().BuildId
	q := make([]byte, 8)
	var stopLoop atomic.Bool
	var searches atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopLoop.Load() {
				if _, _, err := c.Search(context.Background(), q, 10, spann.SearchParams{NProbe: 8}); err != nil {
					t.Errorf("search around the reload and the drain: %v", err)
					return
				}
				searches.Add(1)
			}
		}()
	}
	build(t, dir, 2)
	hup <- syscall.SIGHUP
	deadline := time.Now().Add(10 * time.Second)
	for c.Refresh(context.Background()) == nil && c.Info().BuildId == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.Info().BuildId == before {
		t.Fatalf("still build %s after SIGHUP", before)
	}
	n := searches.Load()
	for searches.Load() < n+20 {
		time.Sleep(time.Millisecond)
	}
	stopLoop.Store(true)
	wg.Wait()
	if err := stop(); err != nil {
		t.Fatalf("after the drain: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Fatal("still serving after the drain")
	}
	if err := newApp().Run([]string{"spann-serve", "--index", filepath.Join(dir, "none")}); err == nil || !strings.Contains(err.Error(), "none") {
		t.Fatalf("a missing index: %v", err)
	}
	if err := newApp().Run([]string{"spann-serve", "--index", index, "--tls-cert", "x.pem"}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("a certificate without a key: %v", err)
	}
}

// With --tls-cert and --tls-key it serves HTTPS (gRPC over TLS): a client
// trusting the certificate searches, a plain-HTTP one is refused.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	index, _ := build(t, dir, 1)
	certFile, keyFile, pool := selfSigned(t, dir)
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, stop := start(t, []string{"--index", index, "--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile, "--token-file", token}, nil)
	c, err := client.Dial(context.Background(), "https://"+addr, client.Options{Token: "s3cret", TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := c.Search(context.Background(), make([]byte, 8), 3, spann.SearchParams{})
	if err != nil || len(got) != 3 {
		t.Fatalf("search over TLS: %v %v", got, err)
	}
	if _, err := client.Dial(context.Background(), "https://"+addr, client.Options{Token: "s3cret"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client not trusting the certificate: %v", err)
	}
	if _, err := client.Dial(context.Background(), "http://"+addr, client.Options{Token: "s3cret"}); err == nil {
		t.Fatal("plain HTTP to the TLS listener answered")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spann-serve test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// A client that sends half a request's headers, or half its body, is cut
// off after --read-timeout instead of holding its connection.
func TestSlowClient(t *testing.T) {
	dir := t.TempDir()
	index, _ := build(t, dir, 1)
	addr, _ := start(t, []string{"--index", index, "--listen", "127.0.0.1:0", "--read-timeout", "300ms"}, nil)
	for _, partial := range []string{
		"POST /spann.v1.SpannService/Info HTTP/1.1\r\nHost: x\r\n",
		"POST /spann.v1.SpannService/Info HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"ind",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(partial)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		var got []byte
		for {
			n, err := conn.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("%q: connection still open after 10 s", partial)
				}
				break // closed by the server
			}
		}
		conn.Close()
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%q: cut off after %v", partial, took)
		}
		if strings.Contains(string(got), "200 OK") {
			t.Errorf("%q: answered %q", partial, got)
		}
	}
}
