//go:build integration

package vmtest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/testenv"
)

// TestNetServeHTTP serves inside a namespace, fetches from inside it, and checks that
// the server's goroutines are gone after the clean-up.
func TestNetServeHTTP(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip"))
	before := runtime.NumGoroutine()
	t.Run("serve", func(t *testing.T) {
		n := NewNet(t, "vmh", netip.MustParsePrefix("10.98.12.1/24"))
		if got := n.Host(5).String(); got != "10.98.12.5" {
			t.Errorf("Host(5) = %s", got)
		}
		base := n.ServeHTTP(t, 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
		var body []byte
		// Dial inside the namespace (http.Transport would dial from another goroutine,
		// outside it), then speak HTTP on that connection.
		err := n.NS.Do(func() error {
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			req, _ := http.NewRequest(http.MethodGet, base+"/x", nil)
			req.Close = true
			if err := req.Write(conn); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err = io.ReadAll(resp.Body)
			return err
		})
		if err != nil || string(body) != "hello" {
			t.Fatalf("GET %s from inside the namespace: %q, %v", base, body, err)
		}
		if tap := n.Tap(t); tap != "tap0" {
			t.Errorf("first tap is %q", tap)
		}
	})
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
